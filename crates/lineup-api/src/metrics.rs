//! `/metrics`: the node's Prometheus exposition, encoded by `prometheus-client` in the
//! Prometheus text format 0.0.4.
//!
//! Text 0.0.4 rather than the library's default OpenMetrics: under OpenMetrics a counter's
//! `# TYPE` line names the family without `_total`, and a scraper that falls back to the
//! classic parser (or a person with curl) would see the counters as untyped. In 0.0.4 every
//! series keeps the name it has always had, and Prometheus scrapes it by default.
//!
//! The figures read from the routing state and the node's health at scrape time (queue
//! depths, operators by state, Raft position, ...) are a [`Collector`] over one read taken
//! for that scrape; the wait and handle histograms live in the hub (`call_metrics.rs`) and
//! are registered into the scrape's registry as they are.

use crate::auth::{Caller, Read};
use crate::backend::{Health, RaftRole};
use crate::views::{OperatorRow, QueueRow};
use crate::{ApiBackend, AppState};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use lineup_core::stats::Stats;
use lineup_core::QueueId;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::fmt::{self, Debug};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Operator states counted by `lineup_operators`, in the order they are written.
const OPERATOR_STATES: [&str; 6] = ["offline", "available", "offered", "busy", "wrap_up", "break"];

/// What one scrape reports besides the histograms, read once when the scrape starts.
struct Scrape {
    unreachable: Vec<(String, u64)>,
    queues: Vec<QueueRow>,
    operators: [(&'static str, usize); OPERATOR_STATES.len()],
    health: Health,
    offers_seen: u64,
    live_clients: u64,
    call_clients: u64,
    frames: u64,
    snapshots_sent: u64,
    resyncs: u64,
    widget_tokens: usize,
}

impl Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrape").field("queues", &self.queues.len()).finish_non_exhaustive()
    }
}

fn count_states(operators: &[OperatorRow]) -> [(&'static str, usize); OPERATOR_STATES.len()] {
    OPERATOR_STATES.map(|state| (state, operators.iter().filter(|o| o.state == state).count()))
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// A family's `# HELP` and `# TYPE` lines; the samples are written through the answer.
fn family<'a>(
    d: &'a mut DescriptorEncoder,
    name: &'a str,
    kind: MetricType,
    help: &str,
) -> Result<MetricEncoder<'a>, fmt::Error> {
    d.encode_descriptor(name, help, None, kind)
}

fn gauge(m: &mut MetricEncoder, labels: &impl EncodeLabelSet, value: impl GaugeValue) -> fmt::Result {
    value.write(&mut m.encode_family(labels)?)
}

fn counter(m: &mut MetricEncoder, labels: &impl EncodeLabelSet, value: u64) -> fmt::Result {
    m.encode_family(labels)?.encode_counter::<NoLabelSet, u64, f64>(&value, None)
}

/// The gauge values this module writes: counts as integers, durations as seconds.
trait GaugeValue {
    fn write(self, m: &mut MetricEncoder) -> fmt::Result;
}
macro_rules! gauge_value {
    ($($t:ty),*) => {$(
        impl GaugeValue for $t {
            fn write(self, m: &mut MetricEncoder) -> fmt::Result {
                m.encode_gauge(&self)
            }
        }
    )*};
}
gauge_value!(u32, u64, usize, f64);
impl GaugeValue for bool {
    fn write(self, m: &mut MetricEncoder) -> fmt::Result {
        m.encode_gauge(&u64::from(self))
    }
}

const NO_LABELS: [(&str, &str); 0] = [];

impl Collector for Scrape {
    fn encode(&self, mut d: DescriptorEncoder) -> fmt::Result {
        self.unreachable_sites(&mut d)?;
        self.queue_gauges(&mut d)?;
        self.queue_operators_and_alarms(&mut d)?;
        self.queue_counters(&mut d)?;
        self.offers_and_operators(&mut d)?;
        self.raft(&mut d)?;
        self.edges(&mut d)?;
        self.webhooks(&mut d)?;
        self.ingress(&mut d)?;
        self.api(&mut d)
    }
}

impl Scrape {
    /// Sites the cluster has not heard from, and for how long.
    fn unreachable_sites(&self, d: &mut DescriptorEncoder) -> fmt::Result {
        let help = "How long the cluster has not heard a site (present only while it is unreachable).";
        let mut m = family(d, "lineup_site_unreachable_seconds", MetricType::Gauge, help)?;
        for (site, for_ms) in &self.unreachable {
            gauge(&mut m, &[("site", site.as_str())], seconds(*for_ms))?;
        }
        Ok(())
    }

    /// Per queue: waiting callers and callbacks, longest wait, ETA.
    fn queue_gauges(&self, d: &mut DescriptorEncoder) -> fmt::Result {
        let help = "Callers waiting on the line in the queue.";
        let mut m = family(d, "lineup_queue_waiting_calls", MetricType::Gauge, help)?;
        for q in &self.queues {
            gauge(&mut m, &[("queue", q.summary.queue.as_str())], q.summary.waiting)?;
        }
        let help = "Callback promises holding a place in the queue.";
        let mut m = family(d, "lineup_queue_callbacks_waiting", MetricType::Gauge, help)?;
        for q in &self.queues {
            gauge(&mut m, &[("queue", q.summary.queue.as_str())], q.summary.callbacks_waiting)?;
        }
        let help = "Wait of the longest-waiting caller (0 when none).";
        let mut m = family(d, "lineup_queue_longest_wait_seconds", MetricType::Gauge, help)?;
        for q in &self.queues {
            let wait = seconds(q.summary.longest_wait_ms.unwrap_or(0));
            gauge(&mut m, &[("queue", q.summary.queue.as_str())], wait)?;
        }
        let help = "ETA a caller joining now would be told (absent when unstaffed).";
        let mut m = family(d, "lineup_queue_eta_seconds", MetricType::Gauge, help)?;
        for q in &self.queues {
            if let Some(eta) = q.summary.eta_ms {
                gauge(&mut m, &[("queue", q.summary.queue.as_str())], seconds(eta))?;
            }
        }
        Ok(())
    }

    /// Per queue: member operators by state, and alarms.
    fn queue_operators_and_alarms(&self, d: &mut DescriptorEncoder) -> fmt::Result {
        let help = "Member operators of the queue by state.";
        let mut m = family(d, "lineup_queue_operators", MetricType::Gauge, help)?;
        for q in &self.queues {
            let s = &q.summary;
            for (state, n) in
                [("logged_in", s.logged_in), ("staffed", s.staffed), ("available", s.available), ("busy", s.busy)]
            {
                gauge(&mut m, &[("queue", s.queue.as_str()), ("state", state)], n)?;
            }
        }
        let mut m = family(d, "lineup_queue_alarm", MetricType::Gauge, "1 while the queue's alarm is raised.")?;
        for q in &self.queues {
            let s = &q.summary;
            gauge(&mut m, &[("queue", s.queue.as_str()), ("kind", "longest_wait")], s.alarm_longest_wait)?;
            gauge(&mut m, &[("queue", s.queue.as_str()), ("kind", "depth")], s.alarm_depth)?;
        }
        Ok(())
    }

    /// Per queue and per gate: callers entered, and calls that left by outcome.
    fn queue_counters(&self, d: &mut DescriptorEncoder) -> fmt::Result {
        let help = "Callers that joined the queue (ENTERQUEUE).";
        let mut m = family(d, "lineup_queue_entered", MetricType::Counter, help)?;
        for q in &self.queues {
            counter(&mut m, &[("queue", q.summary.queue.as_str())], q.summary.stats.offered)?;
        }
        let help = "Calls that left the queue, by outcome.";
        let mut m = family(d, "lineup_queue_outcomes", MetricType::Counter, help)?;
        for q in &self.queues {
            for (outcome, n) in outcomes(&q.summary.stats) {
                counter(&mut m, &[("queue", q.summary.queue.as_str()), ("outcome", outcome)], n)?;
            }
        }
        let help = "Callers waiting that entered through the gate.";
        let mut m = family(d, "lineup_gate_waiting_calls", MetricType::Gauge, help)?;
        for q in &self.queues {
            for g in &q.gates {
                let labels = [("queue", q.summary.queue.as_str()), ("gate", g.summary.gate.as_str())];
                gauge(&mut m, &labels, g.summary.waiting)?;
            }
        }
        let help = "Calls that entered through the gate, by outcome.";
        let mut m = family(d, "lineup_gate_outcomes", MetricType::Counter, help)?;
        for q in &self.queues {
            for g in &q.gates {
                for (outcome, n) in outcomes(&g.summary.stats) {
                    let labels =
                        [("queue", q.summary.queue.as_str()), ("gate", g.summary.gate.as_str()), ("outcome", outcome)];
                    counter(&mut m, &labels, n)?;
                }
            }
        }
        Ok(())
    }

    /// Offers seen on the live feed, and configured operators by state.
    fn offers_and_operators(&self, d: &mut DescriptorEncoder) -> fmt::Result {
        let help = "Offers (call to operator) seen on this node's live feed since start.";
        counter(&mut family(d, "lineup_offers", MetricType::Counter, help)?, &NO_LABELS, self.offers_seen)?;
        let mut m = family(d, "lineup_operators", MetricType::Gauge, "Configured operators by state.")?;
        for (state, n) in self.operators {
            gauge(&mut m, &[("state", state)], n)?;
        }
        Ok(())
    }

    /// Raft position and role.
    fn raft(&self, d: &mut DescriptorEncoder) -> fmt::Result {
        let raft = &self.health.raft;
        let g = MetricType::Gauge;
        gauge(&mut family(d, "lineup_raft_term", g, "Current Raft term.")?, &NO_LABELS, raft.term)?;
        let help = "Highest committed apply index known here.";
        gauge(&mut family(d, "lineup_raft_committed_index", g, help)?, &NO_LABELS, raft.committed_index)?;
        let help = "Highest apply index applied here.";
        gauge(&mut family(d, "lineup_raft_applied_index", g, help)?, &NO_LABELS, raft.applied_index)?;
        let leader = raft.role == RaftRole::Leader;
        gauge(&mut family(d, "lineup_raft_is_leader", g, "1 on the leader.")?, &NO_LABELS, leader)?;
        let known = raft.leader.is_some();
        gauge(&mut family(d, "lineup_raft_leader_known", g, "1 when a leader is known.")?, &NO_LABELS, known)
    }

    /// The edges: ARI, refused callers, Redis, history.
    fn edges(&self, d: &mut DescriptorEncoder) -> fmt::Result {
        let (h, g) = (&self.health, MetricType::Gauge);
        let help = "1 while the ARI connection is up.";
        gauge(&mut family(d, "lineup_ari_connected", g, help)?, &NO_LABELS, h.ari_connected)?;
        let help = "1 while this node is an island (cut off from the quorum) or merging one back.";
        gauge(&mut family(d, "lineup_island", g, help)?, &NO_LABELS, h.island.is_some())?;
        let help = "Callers handed back at the door with LINEUP_RESULT=INVALID (a queue or gate the routing config does not have).";
        let mut m = family(d, "lineup_site_callers_refused", MetricType::Counter, help)?;
        counter(&mut m, &NO_LABELS, h.callers_refused_at_entry)?;
        let help = "1 while the Redis projection is current (absent when not configured).";
        let mut m = family(d, "lineup_redis_ok", g, help)?;
        if let Some(r) = &h.redis {
            gauge(&mut m, &NO_LABELS, r.ok)?;
        }
        let help = "1 while history sinks deliver (absent when not configured).";
        let mut m = family(d, "lineup_history_ok", g, help)?;
        if let Some(db) = &h.database {
            gauge(&mut m, &NO_LABELS, db.ok)?;
        }
        let help = "Entries in the history outbox not yet delivered.";
        let mut m = family(d, "lineup_history_outbox_lag_entries", g, help)?;
        if let Some(lag) = h.database.as_ref().and_then(|db| db.lag_entries) {
            gauge(&mut m, &NO_LABELS, lag)?;
        }
        Ok(())
    }

    /// Webhook events per webhook: sent, failed (given up) and dropped (queue full). Only
    /// the leader sends, so the cluster's figure is the sum over nodes.
    fn webhooks(&self, d: &mut DescriptorEncoder) -> fmt::Result {
        let help = "Webhook events by outcome: sent (2xx), failed (refused or out of attempts), dropped (queue full).";
        let mut m = family(d, "lineup_webhook_events", MetricType::Counter, help)?;
        for w in &self.health.webhooks {
            for (outcome, n) in [("sent", w.sent), ("failed", w.failed), ("dropped", w.dropped)] {
                counter(&mut m, &[("webhook", w.id.as_str()), ("outcome", outcome)], n)?;
            }
        }
        Ok(())
    }

    /// Ingress answers (`GET /v1/ingress`) by the site they put first and why; site "0" is
    /// an answer that named no site.
    fn ingress(&self, d: &mut DescriptorEncoder) -> fmt::Result {
        let help = "Ingress answers this node gave, by the site put first and its reason.";
        let mut m = family(d, "lineup_ingress_decisions", MetricType::Counter, help)?;
        for d in &self.health.ingress_decisions {
            counter(&mut m, &[("site", d.site.0.to_string().as_str()), ("reason", d.reason.as_str())], d.count)?;
        }
        Ok(())
    }

    /// The API's own connections and live-feed counters.
    fn api(&self, d: &mut DescriptorEncoder) -> fmt::Result {
        let mut m = family(d, "lineup_api_ws_clients", MetricType::Gauge, "Open WebSocket connections.")?;
        gauge(&mut m, &[("route", "live")], self.live_clients)?;
        gauge(&mut m, &[("route", "call")], self.call_clients)?;
        let c = MetricType::Counter;
        let help = "Frames published by the live hub.";
        counter(&mut family(d, "lineup_api_live_frames", c, help)?, &NO_LABELS, self.frames)?;
        let help = "Snapshots sent to live clients.";
        counter(&mut family(d, "lineup_api_live_snapshots", c, help)?, &NO_LABELS, self.snapshots_sent)?;
        let help = "Snapshots sent to clients that fell behind.";
        counter(&mut family(d, "lineup_api_live_resyncs", c, help)?, &NO_LABELS, self.resyncs)?;
        let help = "Per-call widget tokens held (swept as their calls end).";
        let mut m = family(d, "lineup_api_widget_tokens", MetricType::Gauge, help)?;
        gauge(&mut m, &NO_LABELS, self.widget_tokens)
    }
}

fn outcomes(s: &Stats) -> [(&'static str, u64); 10] {
    [
        ("answered", s.answered),
        ("abandoned", s.abandoned),
        ("timed_out", s.timed_out),
        ("full", s.full),
        ("closed", s.closed),
        ("empty", s.empty),
        ("exited_with_key", s.exited_with_key),
        ("overflowed", s.overflowed),
        ("callback_requested", s.callbacks_requested),
        ("callback_failed", s.callbacks_failed),
    ]
}

/// `lineup_build_info`'s labels: the release, and the format of the log, snapshots and peer
/// messages (what an upgrade across nodes must agree on).
fn build_info() -> Info<[(&'static str, String); 2]> {
    Info::new([
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("format_version", lineup_core::codec::FORMAT_VERSION.to_string()),
    ])
}

fn read_scrape<B: ApiBackend>(state: &AppState<B>) -> Scrape {
    let (unreachable, queues, operators, configured) = state.backend.read(|r| {
        let now_ms = r.now_ms();
        let unreachable: Vec<(String, u64)> =
            r.unreachable_sites().map(|(site, since)| (site.0.to_string(), now_ms.saturating_sub(since))).collect();
        let configured: Vec<QueueId> = r.queue_configs().map(|q| q.id.clone()).collect();
        (unreachable, crate::views::queue_rows(r), crate::views::operator_rows(r), configured)
    });
    // Histogram series for exactly the queues configured at this read.
    state.hub.calls.keep_queues(configured.iter());
    let c = &state.hub.counters;
    Scrape {
        unreachable,
        queues,
        operators: count_states(&operators),
        health: state.backend.health(),
        offers_seen: c.offers_seen.load(Ordering::Relaxed),
        live_clients: c.live_clients.load(Ordering::Relaxed),
        call_clients: c.call_clients.load(Ordering::Relaxed),
        frames: c.frames.load(Ordering::Relaxed),
        snapshots_sent: c.snapshots_sent.load(Ordering::Relaxed),
        resyncs: c.resyncs.load(Ordering::Relaxed),
        widget_tokens: state.widget_tokens.len(),
    }
}

/// The Prometheus exposition text for this node.
pub fn render_metrics<B: ApiBackend>(state: &AppState<B>) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(read_scrape(state)));
    let calls = &state.hub.calls;
    registry.register_with_unit(
        "lineup_queue_wait",
        "Time from entering the queue to being answered, per answered call (observed as it ends)",
        Unit::Seconds,
        calls.wait.clone(),
    );
    registry.register_with_unit(
        "lineup_queue_handle",
        "Talk plus the queue's wrap-up, per completed call",
        Unit::Seconds,
        calls.handle.clone(),
    );
    registry.register("lineup_build", "The running release (always 1)", build_info());
    let mut text = String::with_capacity(8 * 1024);
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

pub async fn metrics<B: ApiBackend>(State(s): State<Arc<AppState<B>>>, _caller: Caller<Read>) -> Response {
    match render_metrics(&s) {
        Ok(text) => {
            ([(header::CONTENT_TYPE, prometheus_client::encoding::prometheus_text::CONTENT_TYPE)], text).into_response()
        }
        // Writing into a String does not fail; answered all the same rather than unwrapped.
        Err(fmt::Error) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
