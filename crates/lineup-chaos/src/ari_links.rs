//! The ARI links between each node and its box: one userspace TCP relay per site in front of
//! the stand-in's ARI port (REST and the events WebSocket both go through it). Cutting a site's
//! link closes every connection through it at once and refuses new ones until it heals — what
//! a node sees when Asterisk's HTTP server restarts or the loopback link is reset, while the
//! box itself keeps every channel and bridge up.

use crate::tcp_relay::TcpRelay;
use std::collections::BTreeMap;
use std::net::SocketAddr;

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
        self.relays.get(&site).map(TcpRelay::port)
    }

    /// Closes the site's ARI connections and refuses new ones (`true`), or lets them through
    /// again (`false`).
    pub fn set_cut(&self, site: u64, cut: bool) {
        if let Some(relay) = self.relays.get(&site) {
            relay.set_cut(cut);
        }
    }
}
