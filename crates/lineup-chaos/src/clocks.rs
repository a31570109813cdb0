//! Wall-clock skew of the real nodes through Debian's libfaketime: every node starts with the
//! library preloaded and a timestamp file of its own holding its offset (`+0` when healthy).
//! Writing the file steps that node's wall clock (hours ahead, behind, and jumps between) on
//! the fly; its monotonic clock is left alone, as when NTP or an admin steps a real clock.

use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where Debian installs the thread-safe libfaketime (package `faketime`).
pub const LIBFAKETIME_PATHS: [&str; 2] =
    ["/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1"];
/// How often a node reads its timestamp file again (libfaketime caches it for this long).
pub const OFFSET_REREAD_INTERVAL_S: u64 = 1;

pub struct Clocks {
    library: PathBuf,
    /// Site → its timestamp file.
    files: BTreeMap<u64, PathBuf>,
}

impl Clocks {
    /// Clocks for `sites`, each at offset 0, their files in the run directory `dir`; None
    /// when libfaketime is not installed.
    pub fn prepare(dir: &Path, sites: &[u64]) -> anyhow::Result<Option<Clocks>> {
        let Some(library) = LIBFAKETIME_PATHS.iter().map(PathBuf::from).find(|path| path.is_file()) else {
            return Ok(None);
        };
        let mut clocks = Clocks { library, files: BTreeMap::new() };
        for site in sites {
            clocks.files.insert(*site, dir.join(format!("site-{site}.clock-offset")));
            clocks.set_offset(*site, 0)?;
        }
        Ok(Some(clocks))
    }

    /// The library to preload into `site`'s node, and the environment that puts it under its
    /// offset.
    pub fn env(&self, site: u64) -> (Option<String>, Vec<(&'static str, String)>) {
        let Some(file) = self.files.get(&site) else { return (None, Vec::new()) };
        let env = vec![
            ("FAKETIME_TIMESTAMP_FILE", file.display().to_string()),
            ("FAKETIME_CACHE_DURATION", OFFSET_REREAD_INTERVAL_S.to_string()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
        ];
        (Some(self.library.display().to_string()), env)
    }

    /// Steps `site`'s wall clock to `offset_s` seconds from true time (within
    /// `OFFSET_REREAD_INTERVAL_S`). Written whole, then renamed: a node never reads half.
    pub fn set_offset(&self, site: u64, offset_s: i64) -> anyhow::Result<()> {
        let file = self.files.get(&site).with_context(|| format!("no clock for site {site}"))?;
        let partial = file.with_extension("partial");
        std::fs::write(&partial, format!("{offset_s:+}\n")).with_context(|| format!("write {}", partial.display()))?;
        std::fs::rename(&partial, file).with_context(|| format!("rename to {}", file.display()))?;
        Ok(())
    }
}
