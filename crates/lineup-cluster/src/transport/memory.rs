//! An in-process network with composable fault filters.
//!
//! Every message (a request on its way to the target, then the response on its way back) is
//! judged by each installed [`Filter`] in turn; the verdicts compose: any drop drops, delays
//! add up, duplicates deliver an extra copy of a request. Filters are values installed and
//! removed at run time, so a test states its faults instead of editing production code
//! (the TiKV `transport_simulate` pattern). Randomness comes from one seeded generator, so a
//! seed reproduces the same fault decisions for the same message order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{PeerHandler, PeerTransport, SplitMix64};
use crate::frame::PEER_FRAME_MAX_BYTES;
use crate::ClusterError;

/// Which directed links a filter applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Links {
    All,
    /// Messages sent by this site.
    From(u64),
    /// Messages sent to this site.
    To(u64),
    /// Messages from the first site to the second (one direction only).
    Directed(u64, u64),
    /// Messages between the two sites, both directions.
    Between(u64, u64),
}

impl Links {
    fn matches(&self, from: u64, to: u64) -> bool {
        match *self {
            Links::All => true,
            Links::From(site) => from == site,
            Links::To(site) => to == site,
            Links::Directed(a, b) => from == a && to == b,
            Links::Between(a, b) => (from == a && to == b) || (from == b && to == a),
        }
    }
}

/// One composable fault.
#[derive(Debug, Clone)]
pub enum Filter {
    /// Drop `percent` of matching messages.
    Drop { links: Links, percent: u8 },
    /// Delay matching messages by a uniform time in `min_ms..=max_ms`.
    Delay { links: Links, min_ms: u64, max_ms: u64 },
    /// Deliver an extra copy of `percent` of matching requests (the copy's response is
    /// discarded, as a network duplicate's would be).
    Duplicate { links: Links, percent: u8 },
    /// Hold back `percent` of matching messages by up to `max_ms`, so later messages
    /// overtake them.
    Reorder { links: Links, percent: u8, max_ms: u64 },
    /// Cut every message from a site in `from` to a site in `to`. Install it once for a
    /// one-way partition, or use [`Filter::partition`] for both directions.
    Cut { from: BTreeSet<u64>, to: BTreeSet<u64> },
}

impl Filter {
    /// A symmetric partition between two groups of sites (two one-way cuts).
    pub fn partition(side_a: &[u64], side_b: &[u64]) -> [Filter; 2] {
        let a: BTreeSet<u64> = side_a.iter().copied().collect();
        let b: BTreeSet<u64> = side_b.iter().copied().collect();
        [Filter::Cut { from: a.clone(), to: b.clone() }, Filter::Cut { from: b, to: a }]
    }

    fn judge(&self, from: u64, to: u64, rng: &mut SplitMix64, verdict: &mut Verdict) {
        // Randomness is drawn only for matching links, so adding a filter for one link does
        // not change the fault decisions on the others for a given seed.
        match self {
            Filter::Drop { links, percent } if links.matches(from, to) && rng.chance_percent(*percent) => {
                verdict.dropped = true;
            }
            Filter::Delay { links, min_ms, max_ms } if links.matches(from, to) => {
                let span = max_ms.saturating_sub(*min_ms);
                verdict.delay_ms += min_ms + rng.below(span + 1);
            }
            Filter::Duplicate { links, percent } if links.matches(from, to) && rng.chance_percent(*percent) => {
                verdict.duplicated = true;
            }
            Filter::Reorder { links, percent, max_ms } if links.matches(from, to) && rng.chance_percent(*percent) => {
                verdict.delay_ms += rng.below(max_ms + 1);
            }
            Filter::Cut { from: senders, to: receivers } if senders.contains(&from) && receivers.contains(&to) => {
                verdict.dropped = true;
            }
            _ => {}
        }
    }
}

#[derive(Debug, Default)]
struct Verdict {
    dropped: bool,
    delay_ms: u64,
    duplicated: bool,
}

/// Identifies an installed filter for removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FilterId(u64);

struct Inner {
    handlers: BTreeMap<u64, Arc<dyn PeerHandler>>,
    filters: BTreeMap<FilterId, Filter>,
    next_filter: u64,
    rng: SplitMix64,
}

/// The in-process network shared by all sites of a test.
#[derive(Clone)]
pub struct MemoryNetwork {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryNetwork {
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                handlers: BTreeMap::new(),
                filters: BTreeMap::new(),
                next_filter: 0,
                rng: SplitMix64::new(seed),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Only plain data lives behind this lock; a panic while holding it cannot leave it
        // inconsistent, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The transport that `site` uses to send (and, after `serve`, receive).
    pub fn transport(&self, site: u64) -> MemoryTransport {
        MemoryTransport { network: self.clone(), site }
    }

    /// Takes `site` off the network (a crash): calls to it fail as unreachable.
    pub fn disconnect(&self, site: u64) {
        self.lock().handlers.remove(&site);
    }

    pub fn add_filter(&self, filter: Filter) -> FilterId {
        let mut inner = self.lock();
        let id = FilterId(inner.next_filter);
        inner.next_filter += 1;
        inner.filters.insert(id, filter);
        id
    }

    pub fn remove_filter(&self, id: FilterId) {
        self.lock().filters.remove(&id);
    }

    /// Heals everything.
    pub fn clear_filters(&self) {
        self.lock().filters.clear();
    }

    fn judge(&self, from: u64, to: u64) -> Verdict {
        let mut inner = self.lock();
        let Inner { filters, rng, .. } = &mut *inner;
        let mut verdict = Verdict::default();
        for filter in filters.values() {
            filter.judge(from, to, rng, &mut verdict);
        }
        verdict
    }

    async fn exchange(&self, from: u64, to: u64, request: Vec<u8>) -> Result<Vec<u8>, ClusterError> {
        if request.len() > PEER_FRAME_MAX_BYTES {
            return Err(ClusterError::Frame(format!("request of {} bytes exceeds the frame limit", request.len())));
        }
        let outbound = self.judge(from, to);
        if outbound.dropped {
            // A lost message is indistinguishable from a slow one: wait for the caller's
            // timeout.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_millis(outbound.delay_ms)).await;
        let handler = self.lock().handlers.get(&to).cloned();
        let Some(handler) = handler else {
            return Err(ClusterError::Unreachable { site: to, reason: "not on the network".into() });
        };
        if outbound.duplicated {
            tokio::spawn(handler.handle(from, request.clone()));
        }
        let response = handler.handle(from, request).await;
        let inbound = self.judge(to, from);
        if inbound.dropped {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_millis(inbound.delay_ms)).await;
        Ok(response)
    }
}

/// One site's handle on a [`MemoryNetwork`].
#[derive(Clone)]
pub struct MemoryTransport {
    network: MemoryNetwork,
    site: u64,
}

impl PeerTransport for MemoryTransport {
    fn serve(&self, handler: Arc<dyn PeerHandler>) {
        self.network.lock().handlers.insert(self.site, handler);
    }

    async fn call(
        &self,
        target: u64,
        _target_addr: &str,
        request: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ClusterError> {
        match tokio::time::timeout(timeout, self.network.exchange(self.site, target, request)).await {
            Ok(result) => result,
            Err(_) => Err(ClusterError::Timeout { site: target, timeout_ms: timeout.as_millis() as u64 }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::ResponseFuture;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Echoes the request and counts deliveries.
    struct Echo(Arc<AtomicUsize>);

    impl PeerHandler for Echo {
        fn handle(&self, _from: u64, request: Vec<u8>) -> ResponseFuture {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { request })
        }
    }

    const TIMEOUT: Duration = Duration::from_millis(200);

    fn network_with_echo(site: u64) -> (MemoryNetwork, Arc<AtomicUsize>) {
        let network = MemoryNetwork::new(7);
        let count = Arc::new(AtomicUsize::new(0));
        network.transport(site).serve(Arc::new(Echo(count.clone())));
        (network, count)
    }

    #[tokio::test(start_paused = true)]
    async fn one_way_cut_drops_only_its_direction() {
        let (network, count) = network_with_echo(2);
        network.transport(1).serve(Arc::new(Echo(Arc::new(AtomicUsize::new(0)))));
        let one = network.transport(1);
        assert_eq!(one.call(2, "", b"a".to_vec(), TIMEOUT).await.unwrap(), b"a");
        // Responses from 2 to 1 are cut: the request arrives, the answer does not.
        let cut = network.add_filter(Filter::Cut { from: [2].into(), to: [1].into() });
        let err = one.call(2, "", b"b".to_vec(), TIMEOUT).await.unwrap_err();
        assert!(matches!(err, ClusterError::Timeout { site: 2, .. }));
        assert_eq!(count.load(Ordering::SeqCst), 2, "the request still reached site 2");
        network.remove_filter(cut);
        assert_eq!(one.call(2, "", b"c".to_vec(), TIMEOUT).await.unwrap(), b"c");
    }

    #[tokio::test(start_paused = true)]
    async fn partition_and_unknown_target() {
        let (network, count) = network_with_echo(2);
        let [a, b] = Filter::partition(&[1], &[2, 3]);
        network.add_filter(a);
        network.add_filter(b);
        let err = network.transport(1).call(2, "", vec![1], TIMEOUT).await.unwrap_err();
        assert!(matches!(err, ClusterError::Timeout { .. }));
        assert_eq!(count.load(Ordering::SeqCst), 0);
        network.clear_filters();
        let err = network.transport(1).call(9, "", vec![1], TIMEOUT).await.unwrap_err();
        assert!(matches!(err, ClusterError::Unreachable { site: 9, .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn delay_duplicate_and_drop_compose() {
        let (network, count) = network_with_echo(2);
        network.add_filter(Filter::Delay { links: Links::Directed(1, 2), min_ms: 50, max_ms: 50 });
        network.add_filter(Filter::Duplicate { links: Links::All, percent: 100 });
        let started = tokio::time::Instant::now();
        assert_eq!(network.transport(1).call(2, "", vec![5], TIMEOUT).await.unwrap(), vec![5]);
        assert!(started.elapsed() >= Duration::from_millis(50));
        tokio::task::yield_now().await;
        assert_eq!(count.load(Ordering::SeqCst), 2, "the duplicate was delivered too");
        network.add_filter(Filter::Drop { links: Links::To(2), percent: 100 });
        assert!(network.transport(1).call(2, "", vec![5], TIMEOUT).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn reorder_lets_later_messages_overtake() {
        let (network, _count) = network_with_echo(2);
        network.add_filter(Filter::Reorder { links: Links::All, percent: 50, max_ms: 100 });
        let transport = network.transport(1);
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..20u8 {
            let transport = transport.clone();
            calls.spawn(async move { transport.call(2, "", vec![i], TIMEOUT).await.unwrap()[0] });
        }
        let mut finished = Vec::new();
        while let Some(done) = calls.join_next().await {
            finished.push(done.unwrap());
        }
        let mut sorted = finished.clone();
        sorted.sort();
        assert_eq!(sorted, (0..20).collect::<Vec<u8>>(), "every message arrives");
        assert_ne!(finished, sorted, "some message was overtaken");
    }

    #[tokio::test]
    async fn oversized_request_is_refused() {
        let (network, count) = network_with_echo(2);
        let err = network.transport(1).call(2, "", vec![0; PEER_FRAME_MAX_BYTES + 1], TIMEOUT).await.unwrap_err();
        assert!(matches!(err, ClusterError::Frame(_)));
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }
}
