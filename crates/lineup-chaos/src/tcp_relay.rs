//! A userspace TCP relay on loopback: every connection to `local_addr` is carried to the
//! upstream server. Cutting it closes every connection through it at once and refuses new
//! ones until it heals — a server restarting, or a link reset, as the client sees it.

use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// Connections one relay carries at once (a node holds its events socket and a few REST
/// connections); more wait for a free slot.
pub const RELAY_CONNECTIONS_MAX_COUNT: usize = 64;
/// Bound on dialling the box behind the relay.
pub const UPSTREAM_CONNECT_TIMEOUT_MS: u64 = 2_000;

/// One relay: `local_addr` → `upstream`, cut and healed by a watch.
pub struct TcpRelay {
    local_addr: SocketAddr,
    cut: watch::Sender<bool>,
    accept_task: JoinHandle<()>,
}

impl TcpRelay {
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<TcpRelay> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.context("bind a TCP relay")?;
        let local_addr = listener.local_addr()?;
        let (cut, cut_seen) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(RELAY_CONNECTIONS_MAX_COUNT));
        let accept_task = tokio::spawn(accept_loop(listener, upstream, cut_seen, slots));
        Ok(TcpRelay { local_addr, cut, accept_task })
    }
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, cut: watch::Receiver<bool>, slots: Arc<Semaphore>) {
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let Ok((client, _)) = listener.accept().await else { continue };
        if *cut.borrow() {
            // Refused: the node sees its connection reset, as with a box that is not there.
            drop(client);
            continue;
        }
        let cut = cut.clone();
        tokio::spawn(async move {
            pump(client, upstream, cut).await;
            drop(slot);
        });
    }
}

/// Carries one connection both ways until either side closes it or the link is cut.
async fn pump(mut client: TcpStream, upstream: SocketAddr, mut cut: watch::Receiver<bool>) {
    let connect =
        tokio::time::timeout(Duration::from_millis(UPSTREAM_CONNECT_TIMEOUT_MS), TcpStream::connect(upstream));
    let Ok(Ok(mut server)) = connect.await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.wait_for(|cut| *cut) => {}
    }
}

impl TcpRelay {
    /// The port clients dial.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// Closes every connection and refuses new ones (`true`), or lets them through (`false`).
    pub fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}
