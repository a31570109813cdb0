//! A small filesystem of the run's own under each node's data directory (tmpfs, mounted by
//! the harness, which needs root), so a fault can fill a node's disk to the last byte and
//! free it again, while the rest of the machine is untouched.

use anyhow::Context;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Size of each node's data filesystem: room for a run's Raft log, history and queue_log.
pub const DATA_FS_SIZE_MB: u64 = 256;
/// The filler is written in blocks of this size until the filesystem refuses one.
const FILL_BLOCK_BYTES: usize = 1 << 20;
/// Bound on the filler's blocks (the filesystem's size in blocks, and a margin).
const FILL_BLOCKS_MAX_COUNT: u64 = DATA_FS_SIZE_MB + 16;
/// Bound on the filler's bytes: never more than the filesystem could hold, even if the
/// directory turned out not to be the small filesystem (the machine's disk is never filled).
const FILL_BYTES_MAX: u64 = FILL_BLOCKS_MAX_COUNT * FILL_BLOCK_BYTES as u64;
const FILLER_NAME: &str = "chaos-disk-filler";

pub struct DataDisks {
    /// Site → its mounted data directory.
    mounts: BTreeMap<u64, PathBuf>,
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(program).args(args).output().with_context(|| format!("run {program}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

impl DataDisks {
    /// Mounts a `DATA_FS_SIZE_MB` tmpfs on every `(site, data directory)`; an error (not root,
    /// no `mount`) says why, and nothing stays mounted.
    pub fn mount(sites: &[(u64, &Path)]) -> anyhow::Result<DataDisks> {
        let mut disks = DataDisks { mounts: BTreeMap::new() };
        for (site, dir) in sites {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            let size = format!("size={DATA_FS_SIZE_MB}m");
            let target = dir.display().to_string();
            run("mount", &["-t", "tmpfs", "-o", &size, "lineup-chaos", &target])?;
            disks.mounts.insert(*site, dir.to_path_buf());
        }
        Ok(disks)
    }

    fn filler(&self, site: u64) -> anyhow::Result<PathBuf> {
        let dir = self.mounts.get(&site).with_context(|| format!("no data filesystem for site {site}"))?;
        Ok(dir.join(FILLER_NAME))
    }

    /// Fills `site`'s data filesystem until it refuses another byte; the bytes written.
    pub fn fill(&self, site: u64) -> anyhow::Result<u64> {
        let path = self.filler(site)?;
        let mut file = std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
        let block = vec![0xA5u8; FILL_BLOCK_BYTES];
        let mut written = 0u64;
        for _ in 0..FILL_BLOCKS_MAX_COUNT {
            match file.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(error) if error.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(error) => return Err(error).context("fill the data filesystem"),
            }
        }
        // The last partial block: byte by byte is too slow, so halve until nothing fits.
        let mut size = FILL_BLOCK_BYTES / 2;
        while size > 0 && written < FILL_BYTES_MAX {
            match file.write(&block[..size]) {
                Ok(n) if n > 0 => written += n as u64,
                _ => size /= 2,
            }
        }
        Ok(written)
    }

    /// Deletes the filler: the node's disk has room again.
    pub fn free(&self, site: u64) -> anyhow::Result<()> {
        let path = self.filler(site)?;
        std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))
    }
}

impl Drop for DataDisks {
    fn drop(&mut self) {
        for dir in self.mounts.values() {
            // What the nodes left (Raft log, history, queue_log) outlives the mount, beside it,
            // for a failed run's post-mortem.
            let kept = dir.with_extension("data");
            let _ = run("cp", &["-a", &dir.display().to_string(), &kept.display().to_string()]);
            // Lazy: a node still holding a file open must not keep the mount alive.
            let _ = run("umount", &["-l", &dir.display().to_string()]);
        }
    }
}
