//! What a user sees when a command fails: one `error:` line with the causes as sentences,
//! exit status 1, never Rust's Debug form of a value and never a backtrace (even with
//! RUST_BACKTRACE=1, which operators often leave set).

use std::process::{Command, Output};

fn lineup(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lineup"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("LINEUP_TOKEN", "unused-token-0123456789")
        // Nothing listens there: a command that got as far as the network would fail at once.
        .env("LINEUP_API", "http://127.0.0.1:9")
        .output()
        .expect("the lineup binary runs")
}

fn assert_user_error(output: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(expected), "expected {expected:?} in:\n{stderr}");
    for debug_form in ["backtrace", "Backtrace", "QueueId(", "Some(", "Os {"] {
        assert!(!stderr.contains(debug_form), "{debug_form:?} in:\n{stderr}");
    }
}

#[test]
fn a_missing_file_is_one_plain_sentence() {
    let output = lineup(&["config", "apply", "/nonexistent/routing.toml"]);
    assert_user_error(&output, "/nonexistent/routing.toml: cannot read");
}

#[test]
fn a_gate_of_an_unknown_queue_names_the_queue_plainly() {
    let dir = std::env::temp_dir().join(format!("lineup-cli-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("routing.toml");
    std::fs::write(&file, "[[queues]]\nid = \"sales\"\n\n[[gates]]\nid = \"main\"\nqueue = \"salez\"\n").unwrap();
    let output = lineup(&["config", "apply", file.to_str().unwrap(), "--dry-run"]);
    assert_user_error(&output, "no queue named `salez`");
    let _ = std::fs::remove_dir_all(&dir);
}
