//! A userspace UDP relay that imposes WAN conditions on real QUIC traffic.
//!
//! The machines have no `tc netem`, so tests and the benchmark put this relay in front of a
//! node: peers dial the relay's address, the relay forwards each datagram to the node (and
//! the node's answers back) after applying the conditions of that direction: a one-way
//! delay, a loss rate, or a blackhole. Conditions can change while traffic flows.
//!
//! Each client address gets its own upstream socket, so the node sees distinct peers. Every
//! queue is bounded; a datagram that finds its queue full is dropped, as a router would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::transport::SplitMix64;
use crate::ClusterError;

/// Largest datagram relayed (QUIC never sends more than this on loopback).
pub const RELAY_DATAGRAM_MAX_BYTES: usize = 65_535;
/// Datagrams in flight per direction (waiting out their delay).
pub const RELAY_QUEUE_DATAGRAMS_MAX: usize = 4_096;
/// Distinct client addresses served at once.
pub const RELAY_CLIENTS_MAX: usize = 64;

/// Conditions of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkConditions {
    pub delay_ms: u64,
    pub loss_percent: u8,
    /// Drop everything.
    pub blackhole: bool,
}

/// Which way a datagram travels through the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the dialling peer to the relayed node.
    ToUpstream,
    /// From the relayed node back to the dialling peer.
    FromUpstream,
}

struct Conditions {
    to_upstream: LinkConditions,
    from_upstream: LinkConditions,
    rng: SplitMix64,
}

impl Conditions {
    /// The delivery time of a datagram entering now, or None if it is lost.
    fn admit(&mut self, direction: Direction) -> Option<Instant> {
        let link = match direction {
            Direction::ToUpstream => self.to_upstream,
            Direction::FromUpstream => self.from_upstream,
        };
        if link.blackhole || self.rng.chance_percent(link.loss_percent) {
            return None;
        }
        Some(Instant::now() + Duration::from_millis(link.delay_ms))
    }
}

type Delayed = (Instant, Arc<UdpSocket>, SocketAddr, Vec<u8>);

/// A running relay; dropping it stops it.
pub struct UdpRelay {
    local_addr: SocketAddr,
    conditions: Arc<Mutex<Conditions>>,
    tasks: JoinSet<()>,
}

impl UdpRelay {
    /// Starts a relay on `127.0.0.1:0` in front of `upstream`, with the same conditions in
    /// both directions.
    pub async fn start(upstream: SocketAddr, both: LinkConditions) -> Result<Self, ClusterError> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let local_addr = front.local_addr()?;
        let conditions = Arc::new(Mutex::new(Conditions {
            to_upstream: both,
            from_upstream: both,
            rng: SplitMix64::from_entropy(),
        }));
        let mut tasks = JoinSet::new();
        let (to_upstream_tx, to_upstream_rx) = mpsc::channel::<Delayed>(RELAY_QUEUE_DATAGRAMS_MAX);
        let (from_upstream_tx, from_upstream_rx) = mpsc::channel::<Delayed>(RELAY_QUEUE_DATAGRAMS_MAX);
        tasks.spawn(delay_line(to_upstream_rx));
        tasks.spawn(delay_line(from_upstream_rx));
        tasks.spawn(front_loop(front, upstream, conditions.clone(), to_upstream_tx, from_upstream_tx));
        Ok(Self { local_addr, conditions, tasks })
    }

    /// The address peers dial instead of the node's own.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn set_conditions(&self, direction: Direction, link: LinkConditions) {
        let mut conditions = self.conditions.lock().unwrap_or_else(|p| p.into_inner());
        match direction {
            Direction::ToUpstream => conditions.to_upstream = link,
            Direction::FromUpstream => conditions.from_upstream = link,
        }
    }

    /// Stops relaying (also done on drop).
    pub fn stop(&mut self) {
        self.tasks.abort_all();
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// Sends each datagram at its delivery time. Delays are equal within a direction, so FIFO
/// order is delivery order.
async fn delay_line(mut queue: mpsc::Receiver<Delayed>) {
    while let Some((deliver_at, socket, destination, datagram)) = queue.recv().await {
        tokio::time::sleep_until(deliver_at).await;
        // A send error (e.g. the node is gone) is a lost datagram, which QUIC handles.
        let _ = socket.send_to(&datagram, destination).await;
    }
}

fn admit(conditions: &Mutex<Conditions>, direction: Direction) -> Option<Instant> {
    conditions.lock().unwrap_or_else(|p| p.into_inner()).admit(direction)
}

async fn front_loop(
    front: Arc<UdpSocket>,
    upstream: SocketAddr,
    conditions: Arc<Mutex<Conditions>>,
    to_upstream: mpsc::Sender<Delayed>,
    from_upstream: mpsc::Sender<Delayed>,
) {
    let mut sessions: BTreeMap<SocketAddr, Arc<UdpSocket>> = BTreeMap::new();
    let mut readers = JoinSet::new();
    let mut buffer = vec![0u8; RELAY_DATAGRAM_MAX_BYTES];
    loop {
        let Ok((len, client)) = front.recv_from(&mut buffer).await else { continue };
        let back = match sessions.get(&client) {
            Some(back) => back.clone(),
            None => {
                if sessions.len() >= RELAY_CLIENTS_MAX {
                    continue;
                }
                let Ok(back) = UdpSocket::bind("127.0.0.1:0").await else { continue };
                let back = Arc::new(back);
                sessions.insert(client, back.clone());
                readers.spawn(back_loop(
                    back.clone(),
                    front.clone(),
                    client,
                    conditions.clone(),
                    from_upstream.clone(),
                ));
                back
            }
        };
        if let Some(deliver_at) = admit(&conditions, Direction::ToUpstream) {
            let _ = to_upstream.try_send((deliver_at, back, upstream, buffer[..len].to_vec()));
        }
    }
}

/// Relays the node's answers to one client.
async fn back_loop(
    back: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    conditions: Arc<Mutex<Conditions>>,
    from_upstream: mpsc::Sender<Delayed>,
) {
    let mut buffer = vec![0u8; RELAY_DATAGRAM_MAX_BYTES];
    loop {
        let Ok(len) = back.recv(&mut buffer).await else { continue };
        if let Some(deliver_at) = admit(&conditions, Direction::FromUpstream) {
            let _ = from_upstream.try_send((deliver_at, front.clone(), client, buffer[..len].to_vec()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buffer = [0u8; 64];
            while let Ok((len, from)) = socket.recv_from(&mut buffer).await {
                let _ = socket.send_to(&buffer[..len], from).await;
            }
        });
        (addr, task)
    }

    const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn relays_with_delay_and_blackholes_per_direction() {
        let (server, _task) = echo_server().await;
        let relay =
            UdpRelay::start(server, LinkConditions { delay_ms: 20, ..LinkConditions::default() }).await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut buffer = [0u8; 64];

        let started = std::time::Instant::now();
        client.send_to(b"ping", relay.local_addr()).await.unwrap();
        let len = tokio::time::timeout(ANSWER_TIMEOUT, client.recv(&mut buffer)).await.unwrap().unwrap();
        assert_eq!(&buffer[..len], b"ping");
        assert!(started.elapsed() >= Duration::from_millis(40), "20 ms each way");

        // Answers blackholed: the request still reaches the server, nothing comes back.
        relay.set_conditions(Direction::FromUpstream, LinkConditions { blackhole: true, ..Default::default() });
        client.send_to(b"lost", relay.local_addr()).await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(200), client.recv(&mut buffer)).await.is_err());

        relay.set_conditions(Direction::FromUpstream, LinkConditions::default());
        client.send_to(b"back", relay.local_addr()).await.unwrap();
        let len = tokio::time::timeout(ANSWER_TIMEOUT, client.recv(&mut buffer)).await.unwrap().unwrap();
        assert_eq!(&buffer[..len], b"back");
    }

    #[tokio::test]
    async fn full_loss_drops_everything() {
        let (server, _task) = echo_server().await;
        let relay =
            UdpRelay::start(server, LinkConditions { loss_percent: 100, ..LinkConditions::default() }).await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"ping", relay.local_addr()).await.unwrap();
        let mut buffer = [0u8; 64];
        assert!(tokio::time::timeout(Duration::from_millis(200), client.recv(&mut buffer)).await.is_err());
    }
}
