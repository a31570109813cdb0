//! Running `lineup` processes from a test: the binary, free loopback ports, commands that
//! must succeed or must fail, a bounded wait for a condition, and a node process that is
//! stopped as a service manager stops it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

/// Bound on each wait for a condition.
pub const WAIT_LIMIT: Duration = Duration::from_secs(60);
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Bound on a node's own shutdown after SIGTERM before it is killed.
const STOP_WAIT_ROUNDS_MAX: u32 = 200;
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(50);

pub fn lineup() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lineup"))
}

/// A free loopback port (bound, then released) for a node to bind itself.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("udp port")
}

pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("tcp port")
}

/// Runs `command`, which must succeed; answers its output.
pub fn run_ok(command: &mut Command, what: &str) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `command`, which must fail; answers its error output.
pub fn run_refused(command: &mut Command, what: &str) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(!out.status.success(), "{what} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `check` every [`POLL_INTERVAL`] until it returns Some, for at most [`WAIT_LIMIT`];
/// None when it never did (the caller panics with the nodes' logs).
pub async fn wait_for<T, F, Fut>(mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let rounds = (WAIT_LIMIT.as_millis() / POLL_INTERVAL.as_millis()) as u32;
    for _ in 0..rounds {
        if let Some(v) = check().await {
            return Some(v);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    None
}

/// A `lineup run` process: its site, API address and log file.
pub struct Node {
    pub site: u64,
    pub api: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Node {
    /// SIGTERM, as a service manager stops it; killed if it outlives the bound.
    pub fn stop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        for _ in 0..STOP_WAIT_ROUNDS_MAX {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(STOP_POLL_INTERVAL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
