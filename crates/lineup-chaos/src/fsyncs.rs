//! Failing fsync on the real nodes: every node starts with a small preloaded library of the
//! harness's own (`shim/fsync_fault.c`, compiled with the machine's C compiler into the run
//! directory) and a flag file of its own. While the flag exists, the node's fsync, fdatasync
//! and syncfs fail with EIO, as when a disk's write-back fails; nothing else changes.

use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The shim's C source, written into the run directory and compiled there.
const SHIM_SOURCE: &str = include_str!("../shim/fsync_fault.c");
/// The environment variable the shim reads for its flag file.
const FLAG_ENV: &str = "LINEUP_CHAOS_FSYNC_FAIL_FILE";

pub struct FsyncFaults {
    library: PathBuf,
    /// Site → its flag file (present = fsync fails).
    flags: BTreeMap<u64, PathBuf>,
}

impl FsyncFaults {
    /// Compiles the shim into `dir` (with `cc`) and names a flag file per site, none present.
    pub fn prepare(dir: &Path, sites: &[u64]) -> anyhow::Result<FsyncFaults> {
        let source = dir.join("fsync_fault.c");
        let library = dir.join("libfsync_fault.so");
        std::fs::write(&source, SHIM_SOURCE).with_context(|| format!("write {}", source.display()))?;
        let output = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&library)
            .arg(&source)
            .arg("-ldl")
            .output()
            .context("run cc (a C compiler builds the fsync shim)")?;
        anyhow::ensure!(
            output.status.success(),
            "cc fsync_fault.c: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        let flags = sites.iter().map(|site| (*site, dir.join(format!("site-{site}.fsync-fail")))).collect();
        Ok(FsyncFaults { library, flags })
    }

    /// The library to preload into `site`'s node, and its flag file's variable.
    pub fn env(&self, site: u64) -> Option<(&Path, (&'static str, String))> {
        let flag = self.flags.get(&site)?;
        Some((self.library.as_path(), (FLAG_ENV, flag.display().to_string())))
    }

    /// Makes `site`'s fsyncs fail (`on`) or work again.
    pub fn set_failing(&self, site: u64, on: bool) -> anyhow::Result<()> {
        let flag = self.flags.get(&site).with_context(|| format!("no fsync flag for site {site}"))?;
        if on {
            std::fs::write(flag, b"EIO\n").with_context(|| format!("write {}", flag.display()))
        } else {
            match std::fs::remove_file(flag) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    Err(error).with_context(|| format!("remove {}", flag.display()))
                }
                _ => Ok(()),
            }
        }
    }
}
