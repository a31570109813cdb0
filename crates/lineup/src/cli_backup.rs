//! `lineup backup` (a running cluster's committed routing state to a file, through any
//! node's API) and `lineup restore` (a new node's data directory seeded from that file, so
//! that a new cluster starts from the backed-up state).

use crate::api_client::{describe, ApiTarget, CLI_REQUEST_TIMEOUT_MS};
use crate::api_http::HttpClient;
use crate::config_file::ConfigText;
use crate::node_config::NodeSettings;
use anyhow::Context;
use hyper::Method;
use lineup_cluster::backup::{seed_node_storage, Backup, BACKUP_MAX_BYTES};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const BACKUP_PATH: &str = "/v1/cluster/backup";

#[derive(clap::Args)]
pub struct BackupArgs {
    /// Where to write the backup file (written whole, then renamed into place).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    target: ApiTarget,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The backup file (`lineup backup`).
    #[arg(long)]
    from: PathBuf,
    /// The node config of the new node to seed (its data_dir must hold no Raft state).
    #[arg(long)]
    config: PathBuf,
}

pub fn backup(args: &BackupArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let bytes = runtime.block_on(async {
        let http = HttpClient::new(&args.target.api, args.target.ca_file.as_deref(), CLI_REQUEST_TIMEOUT_MS)?;
        let answer = http
            .request(Method::GET, BACKUP_PATH, &args.target.token, None)
            .await
            .with_context(|| format!("reach {}", args.target.api))?;
        if answer.status != 200 {
            let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
            anyhow::bail!("refused ({}): {}", answer.status, describe(&body));
        }
        Ok(answer.body.to_vec())
    })?;
    // Checked before it is kept: a file that would not restore is no backup.
    let backup = Backup::decode(&bytes).context("the node's answer is not a valid backup")?;
    write_whole(&args.out, &bytes)?;
    println!(
        "backup of log index {} (term {}) taken on site {}: {} bytes written to {}",
        backup.log_index,
        backup.log_term,
        backup.taken_on_site,
        bytes.len(),
        args.out.display()
    );
    println!("members then: {}", members_text(&backup.members));
    Ok(())
}

pub fn restore(args: &RestoreArgs) -> anyhow::Result<()> {
    let backup = read_backup(&args.from)?;
    let text = ConfigText::read(&args.config)?;
    let settings = NodeSettings::load(&text)?;
    let file = &settings.file;
    let own_address = match &file.cluster.advertise {
        Some(address) => address.clone(),
        None if file.cluster.listen.port() == 0 => {
            anyhow::bail!("cluster.listen has port 0: a restored node needs a fixed address (or cluster.advertise)")
        }
        None => file.cluster.listen.to_string(),
    };
    let mut members: BTreeMap<u64, String> = file.cluster.peers.iter().map(|p| (p.site, p.address.clone())).collect();
    members.insert(file.site, own_address);
    let raft_dir = file.data_dir.join(lineup_node::node::RAFT_DIR);
    let seeded = seed_node_storage(&raft_dir, file.site, &members, &backup)
        .with_context(|| format!("seed {}", raft_dir.display()))?;
    println!(
        "site {}: {} seeded from the backup of log index {} (taken on site {})",
        file.site,
        raft_dir.display(),
        seeded.log_index,
        backup.taken_on_site
    );
    println!("new cluster's members: {}", members_text(&members));
    if backup.members.keys().ne(members.keys()) {
        println!("note: the backup was taken in a cluster of sites {}", members_text(&backup.members));
    }
    println!("restore every new node from the same file with the same members, then start them (no bootstrap needed)");
    Ok(())
}

/// Reads and checks a backup file, refusing one over the size limit before reading it.
fn read_backup(path: &Path) -> anyhow::Result<Backup> {
    let size = std::fs::metadata(path).with_context(|| format!("read the backup file {}", path.display()))?.len();
    if size > BACKUP_MAX_BYTES as u64 {
        anyhow::bail!(
            "the backup file {} of {size} bytes exceeds the limit of {BACKUP_MAX_BYTES} bytes",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("read the backup file {}", path.display()))?;
    Backup::decode(&bytes).with_context(|| format!("the backup file {}", path.display()))
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it into place:
/// `path` is never left half-written.
fn write_whole(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = path.with_extension("partial");
    let mut file = std::fs::File::create(&temporary).with_context(|| format!("create {}", temporary.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).with_context(|| format!("write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("rename {} into place", temporary.display()))?;
    Ok(())
}

fn members_text(members: &BTreeMap<u64, String>) -> String {
    members.iter().map(|(site, address)| format!("site {site} at {address}")).collect::<Vec<_>>().join(", ")
}
