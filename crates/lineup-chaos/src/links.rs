//! The links between the real nodes, for partitions: one userspace UDP relay per ordered pair
//! of sites, in front of the receiving node's QUIC port. Node `a` dials node `b` at the relay
//! of `(a, b)`, so cutting a site means blackholing every relay it sends or answers through,
//! and a one-way cut blackholes only what travels towards it. A relay that is not cut adds
//! no delay and no loss.

use crate::setup::PeerAddresses;
use lineup_cluster::relay::{Direction, LinkConditions, UdpRelay};
use std::collections::BTreeMap;
use std::net::SocketAddr;

const OPEN: LinkConditions = LinkConditions { delay_ms: 0, loss_percent: 0, blackhole: false };
const CUT: LinkConditions = LinkConditions { delay_ms: 0, loss_percent: 0, blackhole: true };

/// What a partition does to one site's links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Nothing reaches the site and nothing from it reaches anyone.
    Isolated,
    /// The site sends, but hears nothing: not the answers to what it sends, not the requests
    /// of others.
    Deaf,
}

pub struct Links {
    /// `(from, to)` → the relay in front of `to` that `from` dials.
    relays: BTreeMap<(u64, u64), UdpRelay>,
}

impl Links {
    /// A relay for every ordered pair of `sites` (site, QUIC port).
    pub async fn start(sites: &[(u64, u16)]) -> anyhow::Result<Links> {
        let mut relays = BTreeMap::new();
        for (from, _) in sites {
            for (to, port) in sites.iter().filter(|(to, _)| to != from) {
                let upstream = SocketAddr::from(([127, 0, 0, 1], *port));
                relays.insert((*from, *to), UdpRelay::start(upstream, OPEN).await?);
            }
        }
        Ok(Links { relays })
    }

    /// Every `(from, to)` → the address `from` dials, for the node files.
    pub fn addresses(&self) -> PeerAddresses {
        self.relays.iter().map(|(pair, relay)| (*pair, relay.local_addr())).collect()
    }

    /// Cuts `site` off as `cut` says; the other links stay as they are.
    pub fn cut(&self, site: u64, cut: Cut) {
        for ((from, to), relay) in &self.relays {
            if *to == site {
                // Requests to the site; their answers travel back through the same relay.
                relay.set_conditions(Direction::ToUpstream, CUT);
                relay.set_conditions(Direction::FromUpstream, if cut == Cut::Isolated { CUT } else { OPEN });
            } else if *from == site {
                // The site's requests to others, and their answers to it.
                relay.set_conditions(Direction::ToUpstream, if cut == Cut::Isolated { CUT } else { OPEN });
                relay.set_conditions(Direction::FromUpstream, CUT);
            }
        }
    }

    /// Every link open again.
    pub fn heal(&self) {
        for relay in self.relays.values() {
            relay.set_conditions(Direction::ToUpstream, OPEN);
            relay.set_conditions(Direction::FromUpstream, OPEN);
        }
    }
}
