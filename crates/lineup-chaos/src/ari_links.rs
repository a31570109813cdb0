//! The ARI links between each node and its box: one userspace TCP relay per site in front of
//! the stand-in's ARI port (REST and the events WebSocket both go through it). Cutting a site's
//! link closes every connection through it at once and refuses new ones until it heals — what
//! a node sees when Asterisk's HTTP server restarts or the loopback link is reset, while the
//! box itself keeps every channel and bridge up.

use anyhow::Context;
use std::collections::BTreeMap;
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
struct TcpRelay {
    local_addr: SocketAddr,
    cut: watch::Sender<bool>,
    accept_task: JoinHandle<()>,
}

impl TcpRelay {
    async fn start(upstream: SocketAddr) -> anyhow::Result<TcpRelay> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.context("bind an ARI relay")?;
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

/// Every site's ARI relay.
pub struct AriLinks {
    relays: BTreeMap<u64, TcpRelay>,
}

impl AriLinks {
    /// A relay in front of each `(site, ARI port of its box)`.
    pub async fn start(boxes: &[(u64, u16)]) -> anyhow::Result<AriLinks> {
        let mut relays = BTreeMap::new();
        for (site, port) in boxes {
            relays.insert(*site, TcpRelay::start(SocketAddr::from(([127, 0, 0, 1], *port))).await?);
        }
        Ok(AriLinks { relays })
    }

    /// The port a site's node dials for its box's ARI.
    pub fn port(&self, site: u64) -> Option<u16> {
        self.relays.get(&site).map(|relay| relay.local_addr.port())
    }

    /// Closes the site's ARI connections and refuses new ones (`true`), or lets them through
    /// again (`false`).
    pub fn set_cut(&self, site: u64, cut: bool) {
        if let Some(relay) = self.relays.get(&site) {
            relay.cut.send_replace(cut);
        }
    }
}
