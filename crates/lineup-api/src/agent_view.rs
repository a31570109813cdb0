//! What an operator's own panel shows: its state, the call offered to or connected with it
//! (with the gate's whisper), in pull mode the callers it may take, and its figures today.
//! Times are routing-clock instants (`since_ms`); the page counts the seconds itself from
//! the `now_ms` each answer carries, so the view changes only when something happens.

use crate::today::TodayOperator;
use lineup_core::{CallId, CallStatus, GateId, OperatorId, OperatorMode, OperatorStatus, QueueId, Routing, SiteId};
use serde::Serialize;

/// Most callers listed for an operator in pull mode (the head of the global order).
pub const AGENT_PULL_LIST_MAX: usize = 50;

/// An operator's panel.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    pub operator: OperatorId,
    pub name: String,
    pub mode: OperatorMode,
    pub home_site: SiteId,
    /// `offline`, `available`, `offered`, `busy`, `wrap_up` or `break`.
    pub state: &'static str,
    pub break_reason: Option<String>,
    /// Since when the operator is in its state (routing clock, Unix ms).
    pub since_ms: u64,
    /// Where the operator is logged in.
    pub site: Option<SiteId>,
    /// The queues it is a member of, and of those the ones served by pulling only.
    pub queues: Vec<QueueId>,
    pub pull_queues: Vec<QueueId>,
    /// The call offered to or connected with the operator.
    pub call: Option<AgentCall>,
    /// The callers it may take now by pulling, in the global order (at most
    /// [`AGENT_PULL_LIST_MAX`]); empty unless it is a member of a pull-only queue.
    pub pullable: Vec<PullableCall>,
    /// Calls taken and talk time since local midnight (absent without a history database).
    pub today: Option<TodayOperator>,
}

/// The call in front of the operator.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentCall {
    pub call: CallId,
    pub status: CallStatus,
    pub queue: QueueId,
    pub gate: Option<GateId>,
    pub caller_number: String,
    pub caller_name: String,
    /// Since when the call is in its status (offered, connected).
    pub since_ms: u64,
    /// The gate's whisper (what the operator hears before the caller), if any.
    pub whisper: Option<String>,
}

/// A caller the operator may take.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PullableCall {
    pub call: CallId,
    pub queue: QueueId,
    pub gate: Option<GateId>,
    pub priority: u8,
    pub position: u32,
    /// When the caller joined its queue.
    pub since_ms: u64,
    pub caller_number: String,
    pub caller_name: String,
}

/// The panel of `operator`, or None when it is not configured.
pub fn agent_view(r: &Routing, operator: &OperatorId, today: Option<TodayOperator>) -> Option<AgentView> {
    let config = r.operator_config(operator)?;
    let view = r.operator_view(operator)?;
    let break_reason = match &view.status {
        OperatorStatus::Break { reason } => Some(reason.clone()),
        _ => None,
    };
    let call = match &view.status {
        OperatorStatus::Offered { call, .. } | OperatorStatus::Busy { call, .. } => agent_call(r, call),
        _ => None,
    };
    let queues: Vec<QueueId> = config.memberships.keys().cloned().collect();
    let pull_queues: Vec<QueueId> =
        queues.iter().filter(|q| r.queue_config(q).is_some_and(|c| c.pull_only)).cloned().collect();
    let pullable = if pull_queues.is_empty() { Vec::new() } else { pullable_calls(r, operator) };
    Some(AgentView {
        operator: operator.clone(),
        name: config.name.clone(),
        mode: config.mode,
        home_site: config.site,
        state: view.status.name(),
        break_reason,
        since_ms: view.since_ms,
        site: view.site,
        queues,
        pull_queues,
        call,
        pullable,
        today,
    })
}

fn agent_call(r: &Routing, call: &CallId) -> Option<AgentCall> {
    let view = r.call_view(call)?;
    let (number, name) = r.call_caller(call).unwrap_or_default();
    let whisper = view.gate.as_ref().and_then(|g| r.gate_config(g)).and_then(|g| g.whisper.clone());
    Some(AgentCall {
        caller_number: number.to_owned(),
        caller_name: name.to_owned(),
        call: view.call,
        status: view.status,
        queue: view.queue,
        gate: view.gate,
        since_ms: view.since_ms,
        whisper,
    })
}

fn pullable_calls(r: &Routing, operator: &OperatorId) -> Vec<PullableCall> {
    r.pullable_calls(operator, AGENT_PULL_LIST_MAX)
        .into_iter()
        .filter_map(|call| {
            let view = r.call_view(&call)?;
            let (position, _) = r.call_position(&call)?;
            let (number, name) = r.call_caller(&call).unwrap_or_default();
            Some(PullableCall {
                caller_number: number.to_owned(),
                caller_name: name.to_owned(),
                call,
                queue: view.queue,
                gate: view.gate,
                priority: view.priority,
                position,
                since_ms: view.since_ms,
            })
        })
        .collect()
}
