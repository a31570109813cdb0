//! Talking to the service manager (systemd's notify protocol): `READY=1` once the node is
//! ready to serve (a Raft leader known, its state caught up, ARI connected — what /readyz
//! answers), `WATCHDOG=1` while the node's runtime keeps answering, `RELOADING=1` around a
//! SIGHUP reload and `STOPPING=1` at shutdown. Without `NOTIFY_SOCKET` (not started by
//! systemd, or `Type=simple`) every call is a no-op.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lineup_api::ApiBackend;
use lineup_node::NodeBackend;

/// How often the node checks whether it has become ready, until it has.
pub const READINESS_POLL_INTERVAL_MS: u64 = 100;
/// While starting, how often the service manager's status line says what the node waits for.
pub const STARTING_STATUS_INTERVAL_MS: u64 = 1_000;
/// The watchdog is fed this many times per `WatchdogSec` (systemd's advice: at least twice).
pub const WATCHDOG_PINGS_PER_PERIOD: u64 = 2;
/// Longest notify message sent (systemd reads one datagram; ours are a few dozen bytes).
const NOTIFY_MESSAGE_MAX_BYTES: usize = 4_096;

/// Where notifications go: the datagram socket systemd named in `NOTIFY_SOCKET`.
#[derive(Debug, Clone)]
pub struct Notifier {
    socket: Option<NotifySocket>,
    watchdog: Option<Duration>,
}

#[derive(Debug, Clone)]
enum NotifySocket {
    Path(PathBuf),
    /// Linux's abstract namespace (`@name` in the variable).
    Abstract(Vec<u8>),
}

impl Notifier {
    /// From this process's environment: `NOTIFY_SOCKET`, and `WATCHDOG_USEC` when
    /// `WATCHDOG_PID` is absent or names this process.
    pub fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|value| parse_socket(value.as_encoded_bytes()));
        let for_us = std::env::var("WATCHDOG_PID").ok().is_none_or(|pid| pid.trim() == std::process::id().to_string());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .filter(|_| for_us)
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|usec| *usec > 0)
            .map(Duration::from_micros);
        Self { socket, watchdog }
    }

    /// Sends one notification (`KEY=value` lines). A failure is logged, never fatal: the
    /// node serves the same without its service manager hearing it.
    pub fn notify(&self, message: &str) {
        let Some(socket) = &self.socket else { return };
        if let Err(error) = send(socket, message) {
            tracing::warn!(%error, "could not notify the service manager");
        }
    }

    /// How often to feed the watchdog, when the service manager runs one.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|period| period / WATCHDOG_PINGS_PER_PERIOD as u32)
    }
}

fn parse_socket(value: &[u8]) -> Option<NotifySocket> {
    match value {
        [] => None,
        [b'@', name @ ..] => Some(NotifySocket::Abstract(name.to_vec())),
        [b'/', ..] => Some(NotifySocket::Path(PathBuf::from(String::from_utf8_lossy(value).into_owned()))),
        // systemd also allows vsock addresses; a node never runs in a VM's vsock setup.
        _ => None,
    }
}

fn send(socket: &NotifySocket, message: &str) -> io::Result<()> {
    if message.len() > NOTIFY_MESSAGE_MAX_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "notify message too long"));
    }
    let datagram = UnixDatagram::unbound()?;
    match socket {
        NotifySocket::Path(path) => datagram.send_to(message.as_bytes(), path)?,
        NotifySocket::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            datagram.send_to_addr(message.as_bytes(), &address)?
        }
    };
    Ok(())
}

/// Tells the service manager when the node is ready, then feeds its watchdog for as long
/// as this task runs (it runs on the node's runtime: a wedged runtime stops the pings and
/// systemd restarts the node).
pub async fn supervise(backend: Arc<NodeBackend>, notifier: Notifier) {
    let poll = Duration::from_millis(READINESS_POLL_INTERVAL_MS);
    let mut waited_since = tokio::time::Instant::now();
    loop {
        let readiness = lineup_api::readiness(&backend.health());
        if readiness.ready {
            let status = format!("STATUS=serving site {}", readiness.site.0);
            notifier.notify(&format!("READY=1\n{status}"));
            tracing::info!(site = readiness.site.0, "ready: told the service manager");
            break;
        }
        if waited_since.elapsed() >= Duration::from_millis(STARTING_STATUS_INTERVAL_MS) {
            notifier.notify(&format!("STATUS=starting: {}", readiness.problems.join("; ")));
            waited_since = tokio::time::Instant::now();
        }
        // Still feeds the watchdog while starting: a slow join is not a hang.
        feed(&notifier);
        tokio::time::sleep(poll).await;
    }
    let Some(interval) = notifier.watchdog_interval() else { return };
    let mut ticks = tokio::time::interval(interval);
    loop {
        ticks.tick().await;
        feed(&notifier);
    }
}

fn feed(notifier: &Notifier) {
    if notifier.watchdog.is_some() {
        notifier.notify("WATCHDOG=1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_socket_variable_is_a_path_or_an_abstract_name() {
        assert!(
            matches!(parse_socket(b"/run/systemd/notify"), Some(NotifySocket::Path(p)) if p == Path::new("/run/systemd/notify"))
        );
        assert!(matches!(parse_socket(b"@lineup-test"), Some(NotifySocket::Abstract(n)) if n == b"lineup-test"));
        assert!(parse_socket(b"").is_none());
        assert!(parse_socket(b"vsock:2:1234").is_none());
    }

    #[test]
    fn a_message_reaches_the_socket() {
        let dir = std::env::temp_dir().join(format!("lineup-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier { socket: Some(NotifySocket::Path(path.clone())), watchdog: None };
        notifier.notify("READY=1");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_watchdog_is_fed_twice_per_period() {
        let notifier = Notifier { socket: None, watchdog: Some(Duration::from_secs(30)) };
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(15)));
        assert_eq!(Notifier { socket: None, watchdog: None }.watchdog_interval(), None);
    }
}
