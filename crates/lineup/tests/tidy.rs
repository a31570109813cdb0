//! Rules of the repository the machine checks (in the spirit of rust-analyzer's tidy test):
//! no non-test source file grows past `SOURCE_FILE_MAX_LINES`, every workspace crate has its
//! section in docs/ARCHITECTURE.md's code map, and every repository path the docs name exists.

use std::path::{Path, PathBuf};

/// Longest non-test part of a source file (the lines before its `#[cfg(test)]` module).
const SOURCE_FILE_MAX_LINES: usize = 800;
/// Top-level folders: a path in the docs that starts with one of these is a repository path.
const TOP_LEVEL_DIRS: [&str; 7] = ["crates/", "deploy/", "docs/", "migrations/", "scripts/", "sim/", "tests/"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root")
}

/// Every file under `dir` (recursively) whose name ends with `suffix`, skipping build output
/// and installed packages.
fn files_under(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if !["target", "node_modules", ".git"].contains(&name.as_str()) {
                files_under(&path, suffix, out);
            }
        } else if name.ends_with(suffix) {
            out.push(path);
        }
    }
}

/// Lines before the first top-level `#[cfg(test)]` (the whole file when there is none).
fn non_test_lines(text: &str) -> usize {
    text.lines().take_while(|line| !line.starts_with("#[cfg(test)]")).count()
}

#[test]
fn no_source_file_is_longer_than_the_limit() {
    let root = repo_root();
    let mut sources = Vec::new();
    for dir in ["crates", "sim"] {
        files_under(&root.join(dir), ".rs", &mut sources);
    }
    let long: Vec<String> = sources
        .iter()
        .filter(|path| !path.components().any(|c| c.as_os_str() == "tests"))
        .filter_map(|path| {
            let lines = non_test_lines(&std::fs::read_to_string(path).ok()?);
            (lines > SOURCE_FILE_MAX_LINES).then(|| format!("{} ({lines} lines)", path.display()))
        })
        .collect();
    assert!(sources.len() > 50, "found the sources");
    assert!(long.is_empty(), "split these by responsibility: {long:#?}");
}

#[test]
fn every_crate_has_its_place_in_the_code_map() {
    let root = repo_root();
    let manifest: toml::Value = toml::from_str(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
    let members = manifest["workspace"]["members"].as_array().expect("workspace members");
    let architecture = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let missing: Vec<&str> = members
        .iter()
        .filter_map(|m| m.as_str())
        .filter(|member| !architecture.lines().any(|l| l.starts_with("### ") && l.contains(&format!("`{member}"))))
        .collect();
    assert!(missing.is_empty(), "no `### `<path>`` section in docs/ARCHITECTURE.md for {missing:?}");
}

/// Repository paths named in backticks in a Markdown text (`crates/x/src/y.rs`, `deploy/…`);
/// for a glob (`*`, `…`) the folder it looks in.
fn named_paths(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|token| TOP_LEVEL_DIRS.iter().any(|dir| token.starts_with(dir)))
        .filter(|token| !token.contains(' ') && !token.contains('<') && !token.contains('{'))
        .map(|token| match token.find(['*', '…']) {
            Some(glob) => token[..glob].rsplit_once('/').map_or(token, |(dir, _)| dir).to_string(),
            None => token.trim_end_matches('/').to_string(),
        })
        .collect()
}

/// Whether `path` exists from the root, or — for a crate's own `tests/…` named inside that
/// crate's section — under some crate.
fn exists(root: &Path, path: &str) -> bool {
    if root.join(path).exists() {
        return true;
    }
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    crates.push(root.join("sim"));
    path.starts_with("tests/") && crates.iter().any(|dir| dir.join(path).exists())
}

#[test]
fn every_path_the_docs_name_exists() {
    let root = repo_root();
    let mut docs = vec![root.join("README.md")];
    files_under(&root.join("docs"), ".md", &mut docs);
    files_under(&root.join("deploy"), ".md", &mut docs);
    files_under(&root.join("migrations"), ".md", &mut docs);
    // A design proposal names the files it will add; the docs of what exists must not.
    let proposals = root.join("docs/rfcs");
    docs.retain(|doc| !doc.starts_with(&proposals));
    let mut checked = 0;
    let mut dangling = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for path in named_paths(&text) {
            checked += 1;
            if !exists(&root, &path) {
                dangling.push(format!("{}: {path}", doc.strip_prefix(&root).unwrap_or(doc).display()));
            }
        }
    }
    assert!(checked > 20, "the docs name repository paths ({checked} found)");
    assert!(dangling.is_empty(), "paths named in the docs that do not exist: {dangling:#?}");
}

#[test]
fn the_path_finder_reads_backticks_and_globs() {
    let text = "see `crates/lineup-core/src/routing.rs`, `deploy/asterisk/sounds/*.wav` and \
                `deploy/examples/site-*.toml`, not `lineup run`";
    assert_eq!(
        named_paths(text),
        ["crates/lineup-core/src/routing.rs", "deploy/asterisk/sounds", "deploy/examples"].map(String::from)
    );
}
