//! `lineup run` as a systemd service: the unit's hardening score, and the notify protocol
//! spoken to a notify socket this test binds (READY=1 once the node can serve, WATCHDOG=1
//! pings, RELOADING=1/READY=1 around a SIGHUP reload, STOPPING=1 at SIGTERM). systemd itself
//! does not run here; the socket stands in for it.

#[path = "../../lineup-store/tests/common/mod.rs"]
mod store_common;

use lineup_pbx_server::{serve_box, LiveWorld, SimCredentials};
use lineup_pbx_sim::{federated_sites, BoxIndex};
use lineup_util::now_ms;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store_common::TempDir;

/// The unit's `systemd-analyze security` exposure must stay at or below this (10 is fully
/// exposed; systemd calls ≤ 2.9 "OK").
const EXPOSURE_MAX: f64 = 2.5;
/// Bound on each wait for a notification.
const NOTIFY_WAIT: Duration = Duration::from_secs(45);
/// The watchdog period the test hands the node (it pings every half period).
const WATCHDOG_USEC: u64 = 400_000;
const ARI_PASSWORD: &str = "service-test-ari-secret";

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_unit_is_hardened_to_an_exposure_of_at_most_2_5() {
    let unit = repository_root().join("deploy/systemd/lineup.service");
    let output = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian package systemd; scripts/test installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    let score = text
        .lines()
        .find_map(|line| line.split("Overall exposure level for lineup.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|score| score.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}\n{}", String::from_utf8_lossy(&output.stderr)));
    assert!(score <= EXPOSURE_MAX, "exposure {score} > {EXPOSURE_MAX}:\n{text}");
    let unit_text = std::fs::read_to_string(&unit).expect("read the unit");
    assert!(unit_text.contains("Type=notify"), "the unit must wait for READY=1");
    assert!(unit_text.contains("WatchdogSec="), "the unit must run a watchdog");
}

fn lineup() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lineup"))
}

fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("udp port")
    } else {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("tcp port")
    }
}

/// A one-site cluster (it bootstraps alone) with SQLite history in its data directory.
fn node_toml(dir: &Path, ari_url: &str, level: &str) -> String {
    format!(
        r#"site = 1
data_dir = "{data}"

[cluster]
listen = "127.0.0.1:{quic}"
ca_cert = "{certs}/ca.pem"
cert = "{certs}/site-1.pem"
key = "{certs}/site-1.key"
bootstrap = true

[ari]
url = "{ari_url}"
username = "lineup"
password_env = "LINEUP_SERVICE_ARI_PASSWORD"

[api]
listen = "127.0.0.1:{api}"

[log]
format = "json"
level = "{level}"
"#,
        data = dir.join("data").display(),
        certs = dir.join("certs").display(),
        quic = free_port(true),
        api = free_port(false),
    )
}

/// What the node has sent to the notify socket so far.
struct NotifySocket {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(path: &Path) -> Self {
        let socket = UnixDatagram::bind(path).expect("bind the notify socket");
        socket.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
        Self { socket, seen: Vec::new() }
    }

    /// Waits (bounded) for a message containing `line` after the `from`-th message; returns
    /// its index.
    fn wait_for(&mut self, line: &str, from: usize) -> usize {
        let deadline = Instant::now() + NOTIFY_WAIT;
        loop {
            if let Some(i) = self.seen.iter().skip(from).position(|m| m.lines().any(|l| l == line)) {
                return from + i;
            }
            assert!(Instant::now() < deadline, "no {line} within {NOTIFY_WAIT:?}; got {:?}", self.seen);
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().expect("kill");
    assert!(status.success(), "kill -{name}");
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + NOTIFY_WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "the node did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log_contains(log: &Path, text: &str) -> bool {
    std::fs::read_to_string(log).is_ok_and(|l| l.contains(text))
}

/// Waits (bounded) until the node's log holds `text`.
fn wait_for_log(log: &Path, text: &str) {
    let deadline = Instant::now() + NOTIFY_WAIT;
    while !log_contains(log, text) {
        assert!(
            Instant::now() < deadline,
            "the log never said {text:?}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_speaks_the_notify_protocol_and_reloads_its_log_level_on_sighup() {
    let dir = TempDir::new();
    let certs = dir.0.join("certs");
    for args in [vec!["certs", "init", "--dir"], vec!["certs", "issue", "--site", "1", "--ca-dir"]] {
        let out = lineup().args(args).arg(&certs).output().expect("lineup certs");
        assert!(out.status.success(), "lineup certs: {}", String::from_utf8_lossy(&out.stderr));
    }
    let live = LiveWorld::start(federated_sites(now_ms(), &["site-1"]).expect("stand-in world"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind ARI");
    let credentials = SimCredentials { username: "lineup".into(), password: ARI_PASSWORD.into() };
    let ari = serve_box(Arc::clone(&live), BoxIndex(0), listener, credentials).await.expect("serve ARI");
    let config = dir.0.join("site-1.toml");
    std::fs::write(&config, node_toml(&dir.0, &ari.base_url(), "info,openraft=warn")).expect("write config");
    let mut notify = NotifySocket::bind(&dir.0.join("notify.sock"));
    let log = dir.0.join("node.log");
    let mut child = lineup()
        .args(["run", "--config"])
        .arg(&config)
        .env("LINEUP_SERVICE_ARI_PASSWORD", ARI_PASSWORD)
        .env("NOTIFY_SOCKET", dir.0.join("notify.sock"))
        .env("WATCHDOG_USEC", WATCHDOG_USEC.to_string())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn lineup run");

    let ready = tokio::task::block_in_place(|| notify.wait_for("READY=1", 0));
    let first_ping = tokio::task::block_in_place(|| notify.wait_for("WATCHDOG=1", ready));
    tokio::task::block_in_place(|| notify.wait_for("WATCHDOG=1", first_ping + 1));

    // A new level applies on SIGHUP; a file that no longer loads changes nothing.
    std::fs::write(&config, node_toml(&dir.0, &ari.base_url(), "debug")).expect("rewrite config");
    signal(&child, "HUP");
    let reloading = tokio::task::block_in_place(|| notify.wait_for("RELOADING=1", ready + 1));
    tokio::task::block_in_place(|| notify.wait_for("READY=1", reloading));
    wait_for_log(&log, "log.level applied");
    std::fs::write(&config, "site = \"not a number\"\n").expect("break config");
    signal(&child, "HUP");
    wait_for_log(&log, "reload refused");
    assert!(child.try_wait().expect("try_wait").is_none(), "a bad reload must not stop the node");

    signal(&child, "TERM");
    tokio::task::block_in_place(|| notify.wait_for("STOPPING=1", 0));
    let status = tokio::task::block_in_place(|| wait_exit(&mut child));
    assert!(status.success(), "the node stopped with {status}");
}
