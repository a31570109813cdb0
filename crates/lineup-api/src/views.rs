//! What the API shows: rows built from reads of the routing state, shared by REST answers
//! and the `/v1/live` snapshot and deltas (so a delta and a GET describe a thing alike).

use lineup_core::{
    CallId, CallStatus, CallView, GateId, GateSummary, OperatorId, OperatorMode, OperatorStatus, OperatorView, QueueId,
    QueueSummary, Routing, SiteId,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// A queue's live figures with its gates.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QueueRow {
    #[serde(flatten)]
    pub summary: QueueSummary,
    pub name: String,
    /// Cross-queue weight (heavier queues are served first; part of the global order).
    pub weight: u8,
    /// Answered within the service level over answered + abandoned + timed out, per mille.
    pub service_level_permille: Option<u64>,
    pub abandon_rate_permille: Option<u64>,
    pub gates: Vec<GateRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GateRow {
    #[serde(flatten)]
    pub summary: GateSummary,
    pub service_level_permille: Option<u64>,
    pub abandon_rate_permille: Option<u64>,
}

/// An operator as the agent board shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OperatorRow {
    pub operator: OperatorId,
    pub name: String,
    pub home_site: SiteId,
    pub mode: OperatorMode,
    /// `offline`, `available`, `offered`, `busy`, `wrap_up` or `break`.
    pub state: &'static str,
    pub break_reason: Option<String>,
    /// The call offered to or connected with the operator.
    pub call: Option<CallId>,
    /// Where the operator is logged in.
    pub site: Option<SiteId>,
    pub since_ms: u64,
    /// `now_ms - since_ms` at the time of the read.
    pub time_in_state_ms: u64,
    pub rest_until_ms: Option<u64>,
    pub queues: Vec<QueueId>,
}

/// A call in the system (waiting, offered or connected).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CallRow {
    pub call: CallId,
    pub status: CallStatus,
    pub queue: QueueId,
    pub gate: Option<GateId>,
    pub priority: u8,
    pub order_seq: u64,
    /// Sort waiting calls ascending by this array (compared element by element) for the
    /// global serving order across queues and sites: [255 − queue weight, priority, arrival].
    #[schema(value_type = Vec<u64>, min_items = 3, max_items = 3)]
    pub global_order: [u64; 3],
    pub entry_site: SiteId,
    pub operator: Option<OperatorId>,
    /// Since when the call is in its status (a waiting call: when it joined its queue).
    pub since_ms: u64,
    /// `now_ms - since_ms` at the time of the read.
    pub wait_ms: u64,
    /// 1-based place in its queue (waiting calls; absent in live deltas, where
    /// `global_order` gives the order).
    pub position: Option<u32>,
    pub eta_ms: Option<u64>,
    pub callback: bool,
    /// The caller's number, in REST answers, snapshots and live `call` deltas alike (readers
    /// of these are viewers and above; a caller's widget sees only [`PositionView`]).
    pub caller_number: Option<String>,
    /// As `caller_number` (empty when the caller's channel gave none).
    pub caller_name: Option<String>,
}

/// A call's place for the caller widget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PositionView {
    pub call: CallId,
    pub status: CallStatus,
    pub queue: QueueId,
    pub position: Option<u32>,
    pub eta_ms: Option<u64>,
}

pub fn queue_rows(r: &Routing) -> Vec<QueueRow> {
    let mut gates: BTreeMap<&QueueId, Vec<GateRow>> = BTreeMap::new();
    for g in r.gate_configs() {
        if let Some(summary) = r.gate_summary(&g.id) {
            gates.entry(&g.queue).or_default().push(GateRow {
                service_level_permille: summary.stats.service_level_permille(),
                abandon_rate_permille: summary.stats.abandon_rate_permille(),
                summary,
            });
        }
    }
    r.queue_configs()
        .filter_map(|q| {
            let summary = r.queue_summary(&q.id)?;
            Some(QueueRow {
                name: q.name.clone(),
                weight: q.weight,
                service_level_permille: summary.stats.service_level_permille(),
                abandon_rate_permille: summary.stats.abandon_rate_permille(),
                gates: gates.remove(&q.id).unwrap_or_default(),
                summary,
            })
        })
        .collect()
}

pub fn operator_row(r: &Routing, view: OperatorView) -> OperatorRow {
    let config = r.operator_config(&view.operator);
    let (break_reason, call) = match &view.status {
        OperatorStatus::Break { reason } => (Some(reason.clone()), None),
        OperatorStatus::Offered { call, .. } | OperatorStatus::Busy { call, .. } => (None, Some(call.clone())),
        _ => (None, None),
    };
    OperatorRow {
        name: config.map(|c| c.name.clone()).unwrap_or_default(),
        home_site: config.map_or(SiteId(0), |c| c.site),
        mode: config.map(|c| c.mode).unwrap_or_default(),
        state: view.status.name(),
        break_reason,
        call,
        site: view.site,
        since_ms: view.since_ms,
        time_in_state_ms: r.now_ms().saturating_sub(view.since_ms),
        rest_until_ms: view.rest_until_ms,
        queues: view.queues,
        operator: view.operator,
    }
}

pub fn operator_rows(r: &Routing) -> Vec<OperatorRow> {
    r.operators().map(|v| operator_row(r, v)).collect()
}

fn queue_weight(r: &Routing, queue: &QueueId) -> u8 {
    r.queue_config(queue).map_or(0, |q| q.weight)
}

/// A row from a `CallChanged` view (no position: see [`CallRow::global_order`]).
pub fn call_row_from_view(r: &Routing, v: CallView) -> CallRow {
    let weight = queue_weight(r, &v.queue);
    let (caller_number, caller_name) = r.call_caller(&v.call).map(|(n, m)| (n.to_owned(), m.to_owned())).unzip();
    CallRow {
        global_order: [u64::from(255 - weight), u64::from(v.priority), v.order_seq],
        wait_ms: r.now_ms().saturating_sub(v.since_ms),
        callback: matches!(
            v.status,
            CallStatus::CallbackWaiting | CallStatus::CallbackOffered | CallStatus::CallbackConnected
        ),
        call: v.call,
        status: v.status,
        queue: v.queue,
        gate: v.gate,
        priority: v.priority,
        order_seq: v.order_seq,
        entry_site: v.entry_site,
        operator: v.operator,
        since_ms: v.since_ms,
        position: None,
        eta_ms: None,
        caller_number,
        caller_name,
    }
}

/// Every call: waiting calls first in global order (with position and ETA), then offered
/// and connected calls by arrival.
pub fn call_rows(r: &Routing) -> Vec<CallRow> {
    let mut rows: Vec<CallRow> = Vec::with_capacity(r.call_count());
    for w in r.waiting_calls() {
        let Some(view) = r.call_view(&w.call) else { continue };
        let mut row = call_row_from_view(r, view);
        row.position = Some(w.position);
        row.eta_ms = r.eta_ms(&w.queue, w.position);
        rows.push(row);
    }
    let waiting = rows.len();
    rows.extend(
        r.calls()
            .filter(|v| !matches!(v.status, CallStatus::Waiting | CallStatus::CallbackWaiting))
            .map(|v| call_row_from_view(r, v)),
    );
    debug_assert!(rows[waiting..].iter().all(|c| c.position.is_none()));
    rows
}

/// One call as `GET /v1/calls/{id}` shows it.
pub fn call_row(r: &Routing, id: &CallId) -> Option<CallRow> {
    let view = r.call_view(id)?;
    let mut row = call_row_from_view(r, view);
    if let Some((position, eta_ms)) = r.call_position(id) {
        row.position = Some(position);
        row.eta_ms = eta_ms;
    }
    Some(row)
}

pub fn position_view(r: &Routing, id: &CallId) -> Option<PositionView> {
    let view = r.call_view(id)?;
    let (position, eta_ms) = r.call_position(id).map_or((None, None), |(p, e)| (Some(p), e));
    Some(PositionView { call: view.call, status: view.status, queue: view.queue, position, eta_ms })
}

/// Whether a call is still going (known to the routing state and without a final outcome):
/// a widget token lasts exactly as long.
pub fn call_is_live(r: &Routing, id: &CallId) -> bool {
    r.call_view(id).is_some_and(|view| view.status != CallStatus::Ended)
}
