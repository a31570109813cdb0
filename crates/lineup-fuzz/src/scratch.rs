//! The directory the store targets write their damaged files into: one per process and thread,
//! memory-backed when the machine has `/dev/shm` (these targets sync files on every input).
//! A directory is removed when its thread ends, and directories left by processes that died
//! without cleaning up (a libFuzzer run ends by exit or abort) are removed by the next process,
//! so runs never fill `/dev/shm`, which is small on many machines (64 MiB in a container).

use std::path::{Path, PathBuf};

/// How a scratch directory's name starts; the process id and thread follow.
const SCRATCH_PREFIX: &str = "lineup-fuzz-";

/// The calling thread's scratch directory, made on first use.
pub(crate) fn scratch_dir() -> PathBuf {
    thread_local! {
        static DIR: ScratchDir = ScratchDir::make();
    }
    DIR.with(|dir| dir.0.clone())
}

struct ScratchDir(PathBuf);

impl ScratchDir {
    fn make() -> Self {
        let shm = Path::new("/dev/shm");
        let root = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        remove_dead_processes_dirs(&root);
        let name = format!("{SCRATCH_PREFIX}{}-{:?}", std::process::id(), std::thread::current().id());
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("scratch directory {}: {e}", dir.display()));
        Self(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Remove the scratch directories of processes that no longer run. Only where `/proc` tells
/// which processes run; elsewhere nothing is removed.
fn remove_dead_processes_dirs(root: &Path) {
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = owning_process(&name.to_string_lossy()) else { continue };
        if !proc_root.join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The process id in a scratch directory's name, or None for any other name.
fn owning_process(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(SCRATCH_PREFIX)?;
    rest.split_once('-')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_scratch_names_give_a_process() {
        assert_eq!(owning_process("lineup-fuzz-4242-ThreadId(2)"), Some(4242));
        assert_eq!(owning_process("lineup-fuzz-x-ThreadId(2)"), None);
        assert_eq!(owning_process("PostgreSQL.1011095870"), None);
        assert_eq!(owning_process("lineup-fuzz-4242"), None);
    }

    #[test]
    fn a_dead_processes_directory_is_removed_and_a_live_ones_kept() {
        let root = std::env::temp_dir().join(format!("lineup-scratch-test-{}", std::process::id()));
        // Process ids above the kernel's maximum (4,194,304) never run.
        let dead = root.join(format!("{SCRATCH_PREFIX}4999999-ThreadId(2)"));
        let live = root.join(format!("{SCRATCH_PREFIX}{}-ThreadId(9)", std::process::id()));
        let other = root.join("unrelated");
        for dir in [&dead, &live, &other] {
            std::fs::create_dir_all(dir).expect("test directory");
        }
        remove_dead_processes_dirs(&root);
        let kept = (dead.exists(), live.exists(), other.exists());
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(kept, (false, true, true));
    }

    #[test]
    fn a_threads_directory_is_removed_when_the_thread_ends() {
        let dir = std::thread::spawn(|| {
            let dir = scratch_dir();
            assert!(dir.is_dir());
            dir
        })
        .join()
        .expect("the thread ran");
        assert!(!dir.exists(), "{} outlived its thread", dir.display());
    }
}
