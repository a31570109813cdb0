//! The stand-in server's command line, shared by the `lineup-pbx-sim-server` binary and
//! `lineup-chaos stand-in` (the harness starts itself in that mode, so it never depends on
//! another package's binary being built).

use super::{serve, StandInConfig};
use crate::server::SimCredentials;
use anyhow::Context;
use lineup_pbx_sim::dialplan::Dialplan;
use lineup_util::now_ms;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    #[arg(long, default_value_t = 3)]
    pub boxes: usize,
    /// An extensions.conf the boxes run.
    #[arg(long)]
    pub dialplan: PathBuf,
    #[arg(long, default_value = "lineup")]
    pub ari_user: String,
    /// Name of the environment variable holding the ARI password.
    #[arg(long, default_value = "LINEUP_CHAOS_ARI_PASSWORD")]
    pub ari_password_env: String,
    /// Where to write the chosen ports (`{"control": port, "ari": [port, ...]}`), once serving.
    #[arg(long)]
    pub ports_file: PathBuf,
}

/// Serves on loopback until the process is ended (SIGTERM or SIGKILL).
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.dialplan)
        .with_context(|| format!("read the dialplan {}", args.dialplan.display()))?;
    let dialplan = Dialplan::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.dialplan.display()))?;
    let password = std::env::var(&args.ari_password_env)
        .with_context(|| format!("the ARI password in ${}", args.ari_password_env))?;
    let config = StandInConfig {
        boxes: args.boxes,
        dialplan,
        credentials: SimCredentials { username: args.ari_user.clone(), password },
        epoch_ms: now_ms(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let standin = serve(config, std::net::Ipv4Addr::LOCALHOST.into()).await?;
        let ports = serde_json::json!({
            "control": standin.control.port(),
            "ari": standin.ari.iter().map(|server| server.address.port()).collect::<Vec<_>>(),
        });
        // Written whole, then renamed: a reader never sees half a file.
        let partial = args.ports_file.with_extension("partial");
        std::fs::write(&partial, ports.to_string())?;
        std::fs::rename(&partial, &args.ports_file)?;
        std::future::pending::<()>().await;
        anyhow::Ok(())
    })
}
