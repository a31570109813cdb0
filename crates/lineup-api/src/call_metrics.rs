//! Per-queue histograms of wait and handle time, observed by the live hub as calls end.
//!
//! Both are observed from the call's `CallEnded` record, the one effect the core emits exactly
//! once per call, carrying the wait (queue entry → answer) and talk time in milliseconds.
//! The wait is therefore observed when an answered call ends, not when it is answered: the
//! queue_log's CONNECT line is there at the answer, but only in whole seconds, which would
//! put a 20.7 s wait in the 20 s bucket and flatter the service level.
//!
//! Once per call per node: this node's effect stream carries each applied effect once, and
//! its subscription starts after openraft has re-applied the committed log on start (that
//! replay happens inside `Raft::new`, before the API subscribes), so a restart does not
//! observe again what the previous process observed. A lagging hub loses effects rather than
//! receiving them twice. As a guard against any future replay of the feed, a record at an
//! apply index below the newest observed one, or a call already observed at that index, is
//! skipped.

use lineup_core::{CallId, CallRecord, QueueId, Routing};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

/// Upper bounds of the wait histogram's buckets: the usual service-level thresholds
/// (10, 15, 20, 30, 60 s) each on a bound, so `le` gives the service level exactly.
pub const WAIT_BUCKETS_SECONDS: [f64; 12] = [5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0];
/// Upper bounds of the handle histogram's buckets: from a short call to an hour.
pub const HANDLE_BUCKETS_SECONDS: [f64; 9] = [30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 3600.0];

/// One series per configured queue: the only label is the queue's id.
pub(crate) type QueueLabel = [(&'static str, String); 1];
type Constructor = fn() -> Histogram;
pub(crate) type QueueHistograms = Family<QueueLabel, Histogram, Constructor>;

fn wait_histogram() -> Histogram {
    Histogram::new(WAIT_BUCKETS_SECONDS)
}

fn handle_histogram() -> Histogram {
    Histogram::new(HANDLE_BUCKETS_SECONDS)
}

fn label(queue: &QueueId) -> QueueLabel {
    [("queue", queue.to_string())]
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Where the feed was last observed (the newest apply index and the calls ended at it), and
/// the queues that have series (the families do not list their label sets).
#[derive(Default)]
struct Observed {
    index: u64,
    calls: BTreeSet<CallId>,
    queues: BTreeSet<QueueId>,
}

pub(crate) struct CallMetrics {
    pub(crate) wait: QueueHistograms,
    pub(crate) handle: QueueHistograms,
    observed: Mutex<Observed>,
}

impl Default for CallMetrics {
    fn default() -> Self {
        Self {
            wait: Family::new_with_constructor(wait_histogram),
            handle: Family::new_with_constructor(handle_histogram),
            observed: Mutex::new(Observed::default()),
        }
    }
}

impl CallMetrics {
    fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Observes an ended call once: its wait if it was answered, and its handle time (talk
    /// plus the queue's wrap-up as configured now). Calls of queues not configured are not
    /// observed, so the labels stay the configured queues.
    pub(crate) fn observe_end(&self, r: &Routing, apply_index: u64, record: &CallRecord) {
        let mut seen = self.observed();
        if !first_sight(&mut seen, apply_index, &record.call) {
            return;
        }
        let (Some(talk_ms), Some(queue)) = (record.handle_ms, r.queue_config(&record.queue)) else {
            return;
        };
        seen.queues.insert(record.queue.clone());
        let label = label(&record.queue);
        self.wait.get_or_create(&label).observe(seconds(record.wait_ms));
        self.handle.get_or_create(&label).observe(seconds(talk_ms.saturating_add(queue.wrap_up_ms)));
    }

    /// Keeps one series per configured queue: a new queue shows zeros at once (so rates are
    /// 0, not absent), and a deleted queue's series go.
    pub(crate) fn keep_queues<'a>(&self, configured: impl Iterator<Item = &'a QueueId>) {
        let mut seen = self.observed();
        let configured: BTreeSet<QueueId> = configured.cloned().collect();
        for gone in seen.queues.difference(&configured) {
            self.wait.remove(&label(gone));
            self.handle.remove(&label(gone));
        }
        for queue in &configured {
            let _ = self.wait.get_or_create(&label(queue));
            let _ = self.handle.get_or_create(&label(queue));
        }
        seen.queues = configured;
    }
}

/// False for a record the feed already brought (an older index, or this call again).
fn first_sight(seen: &mut Observed, apply_index: u64, call: &CallId) -> bool {
    if apply_index < seen.index {
        return false;
    }
    if apply_index > seen.index {
        seen.index = apply_index;
        seen.calls.clear();
    }
    seen.calls.insert(call.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineup_core::{Command, CommandBody, CommandId, HungUpBy, Outcome, QueueConfig, SiteId};

    fn routing_with(queue: &str) -> Routing {
        let mut r = Routing::new();
        let config = QueueConfig { id: QueueId::new(queue), name: queue.into(), ..QueueConfig::default() };
        let put = Command { id: CommandId { origin: 1, serial: 1 }, at_ms: 0, body: CommandBody::PutQueue(config) };
        assert!(r.apply(lineup_core::ApplyIndex::first_of(1).get(), &put).result.is_ok());
        r
    }

    fn record(call: &str, queue: &str, wait_ms: u64, talk_ms: Option<u64>) -> CallRecord {
        CallRecord {
            call: CallId::new(call),
            queue: QueueId::new(queue),
            gate: None,
            priority: 0,
            entry_site: SiteId(1),
            caller_number: String::new(),
            caller_name: String::new(),
            outcome: talk_ms.map_or(Outcome::Abandoned, |_| Outcome::Completed { by: HungUpBy::Caller }),
            entered_at_ms: 0,
            ended_at_ms: 0,
            wait_ms,
            handle_ms: talk_ms,
            operator: None,
            operator_site: None,
            callback_number: None,
            callback_attempts: 0,
        }
    }

    /// The families as `/metrics` writes them.
    fn text(m: &CallMetrics) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("wait", "", m.wait.clone());
        registry.register("handle", "", m.handle.clone());
        let mut text = String::new();
        assert!(prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).is_ok());
        text
    }

    fn has(m: &CallMetrics, line: &str) -> bool {
        text(m).lines().any(|l| l == line)
    }

    #[test]
    fn a_call_is_observed_once_whatever_the_feed_repeats() {
        let (r, m) = (routing_with("sales"), CallMetrics::default());
        m.observe_end(&r, 512, &record("c1", "sales", 12_000, Some(90_000)));
        m.observe_end(&r, 512, &record("c2", "sales", 3_000, Some(40_000)));
        // The same record again, and an older index: a replay, not new calls.
        m.observe_end(&r, 512, &record("c1", "sales", 12_000, Some(90_000)));
        m.observe_end(&r, 256, &record("c0", "sales", 1_000, Some(10_000)));
        assert!(has(&m, "wait_count{queue=\"sales\"} 2") && has(&m, "handle_count{queue=\"sales\"} 2"), "{}", text(&m));
        assert!(has(&m, "wait_sum{queue=\"sales\"} 15.0") && has(&m, "handle_sum{queue=\"sales\"} 130.0"));
        m.observe_end(&r, 768, &record("c1", "sales", 12_000, Some(90_000)));
        assert!(has(&m, "wait_count{queue=\"sales\"} 3"), "a later index is a later call");
    }

    #[test]
    fn unanswered_calls_and_unconfigured_queues_are_not_observed() {
        let (r, m) = (routing_with("sales"), CallMetrics::default());
        m.observe_end(&r, 512, &record("c1", "sales", 30_000, None));
        m.observe_end(&r, 512, &record("c2", "gone", 3_000, Some(40_000)));
        assert_eq!(text(&m), "", "no series at all");
    }
}
