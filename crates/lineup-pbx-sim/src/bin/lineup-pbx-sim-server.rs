//! `lineup-pbx-sim-server`: the Asterisk stand-in as a process of its own (a real Asterisk
//! outlives its Lineup node). Serves `--boxes` boxes joined by trunks over real ARI, one
//! port per box, running `--dialplan`, plus the control API of `lineup_pbx_sim::standin`.
//! The ARI password comes from the environment variable named by `--ari-password-env`.
//! Once serving, writes `{"control": port, "ari": [port, ...]}` to `--ports-file`.

use lineup_pbx_sim::standin::{serve, StandInConfig};
use lineup_pbx_sim::{Dialplan, SimCredentials};
use std::path::PathBuf;

#[derive(clap::Parser)]
#[command(about = "The Asterisk stand-in, served over real ARI in its own process")]
struct Args {
    #[arg(long, default_value_t = 3)]
    boxes: usize,
    /// An extensions.conf the boxes run.
    #[arg(long)]
    dialplan: PathBuf,
    #[arg(long, default_value = "lineup")]
    ari_user: String,
    /// Name of the environment variable holding the ARI password.
    #[arg(long, default_value = "LINEUP_CHAOS_ARI_PASSWORD")]
    ari_password_env: String,
    /// Where to write the chosen ports (JSON), once serving.
    #[arg(long)]
    ports_file: PathBuf,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    use anyhow::Context;
    use clap::Parser;
    let args = Args::parse();
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
        // Serves until the harness ends the process (SIGTERM or SIGKILL).
        std::future::pending::<()>().await;
        anyhow::Ok(())
    })
}
