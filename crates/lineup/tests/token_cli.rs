//! `lineup token new` as a user runs it: its output parses as node config lines, the hash is
//! the token's, and two runs never print the same token.

use std::process::Command;

fn token_new() -> toml::Table {
    let output = Command::new(env!("CARGO_BIN_EXE_lineup")).args(["token", "new"]).output().expect("lineup runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    toml::from_str(&String::from_utf8(output.stdout).unwrap()).expect("the output is TOML")
}

#[test]
fn token_new_prints_a_fresh_token_and_its_hash() {
    let (first, second) = (token_new(), token_new());
    let token = first["token"].as_str().unwrap();
    assert!(token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    assert_eq!(first["token_sha256"].as_str().unwrap(), lineup_api::secret::sha256_hex(token));
    assert_ne!(first["token"], second["token"]);
}
