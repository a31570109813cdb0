//! Replays every committed corpus file (`fuzz/corpus/<target>/*`) and crash regression
//! (`fuzz/regressions/<target>/*`) through the fuzz targets' functions, on stable, in the
//! normal test run: a target that panics on any of them fails this test. Every target has a
//! corpus; the whole replay is kept small (seed corpora of a handful of inputs each).

use std::path::{Path, PathBuf};

/// Files replayed per target and directory, at most (the corpora are small by design).
const FILES_PER_DIRECTORY_MAX: usize = 200;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    assert!(files.len() <= FILES_PER_DIRECTORY_MAX, "{} holds {} files; minimise it", dir.display(), files.len());
    files
}

#[test]
fn every_corpus_file_and_regression_replays() {
    for (name, target) in lineup_fuzz::TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(name));
        assert!(!corpus.is_empty(), "target {name} has no seed corpus in fuzz/corpus/{name}");
        let regressions = files(&fuzz_dir().join("regressions").join(name));
        for path in corpus.iter().chain(&regressions) {
            let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "target {name} panicked on {}", path.display());
        }
    }
}

#[test]
fn every_target_has_a_libfuzzer_entry_point() {
    for (name, _) in lineup_fuzz::TARGETS {
        let path = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            text.contains(&format!("lineup_fuzz::{name}(")),
            "{} does not call lineup_fuzz::{name}",
            path.display()
        );
    }
}
