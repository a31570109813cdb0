//! The CLI against an HTTPS API: `lineup certs init` and `lineup certs api` make the CA and
//! the API's certificate, an API serves with them on loopback, and `lineup status` runs as a
//! process with `--ca-file` (or LINEUP_CA_FILE); without a CA file, or trusting another CA,
//! it fails with a plain sentence.

use lineup_api::local::LocalBackend;
use lineup_api::{ApiConfig, ApiTls, ApiToken, Role};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

const ADMIN: &str = "admin-token-0123456789";

fn lineup(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lineup"));
    command.args(args).env_remove("LINEUP_CA_FILE").env_remove("LINEUP_API").env_remove("LINEUP_TOKEN");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the lineup binary runs")
}

fn succeeded(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn failed(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A fresh directory with a cluster CA (`ca.pem`) and an API certificate for 127.0.0.1.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let _ = std::fs::remove_dir_all(dir);
    let d = dir.to_str().unwrap();
    succeeded(&lineup(&["certs", "init", "--dir", d], &[]));
    let printed = succeeded(&lineup(&["certs", "api", "--ca-dir", d, "--name", "api", "--san", "127.0.0.1"], &[]));
    assert!(printed.contains("tls = {"), "the command says what to put in [api]: {printed}");
    (dir.join("ca.pem"), dir.join("api.pem"), dir.join("api.key"))
}

#[test]
fn status_runs_over_https_with_a_ca_file_and_refuses_without_the_right_one() {
    let base = std::env::temp_dir().join(format!("lineup-https-cli-{}", std::process::id()));
    let (ca, cert, key) = certificates(&base.join("cluster"));
    let (other_ca, _, _) = certificates(&base.join("other"));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let config = ApiConfig {
        tokens: vec![ApiToken::plain("ops", ADMIN, Role::Admin)],
        tls: Some(ApiTls::from_pem_files(&cert, &key).unwrap()),
        ..ApiConfig::default()
    };
    let backend = Arc::new(LocalBackend::new(lineup_core::SiteId(1), 1_700_000_000_000));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(lineup_api::serve(listener, backend, config, async move {
        let _ = stopped.await;
    }));

    let target = ["--api", url.as_str(), "--token", ADMIN];
    let ca = ca.to_str().unwrap();
    let status = succeeded(&lineup(&[&["status", "--json", "--ca-file", ca][..], &target].concat(), &[]));
    let answer: serde_json::Value = serde_json::from_str(&status).expect("JSON");
    assert_eq!(answer["cluster"]["leader"], 1, "{answer}");
    let from_env = lineup(&[&["status"][..], &target].concat(), &[("LINEUP_CA_FILE", ca)]);
    assert!(succeeded(&from_env).contains("leader: site 1"));

    let without = failed(&lineup(&[&["status"][..], &target].concat(), &[]));
    assert!(without.contains("--ca-file") && without.contains("LINEUP_CA_FILE"), "{without}");
    let other_ca = other_ca.to_str().unwrap();
    let wrong = failed(&lineup(&[&["status", "--ca-file", other_ca][..], &target].concat(), &[]));
    assert!(wrong.contains("TLS handshake") && wrong.contains("certificate"), "{wrong}");

    let _ = stop.send(());
    let stopped = runtime.block_on(server);
    assert!(matches!(stopped, Ok(Ok(()))), "the server stops cleanly");
    let _ = std::fs::remove_dir_all(&base);
}
