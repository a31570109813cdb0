//! Read-only queries for the API and dashboards: configuration, lists, counts, summaries.

use super::Routing;
use crate::config::{GateConfig, OperatorConfig, QueueConfig, ScheduleConfig};
use crate::config_set::RoutingConfigSet;
use crate::effect::{CallView, OperatorStatus, OperatorView};
use crate::ids::{CallId, GateId, OperatorId, QueueId, SiteId};
use crate::order::OrderKey;
use crate::stats::Stats;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;

/// Live figures of one queue (or gate) for dashboards and the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueSummary {
    pub queue: QueueId,
    pub waiting: u32,
    pub callbacks_waiting: u32,
    pub longest_wait_ms: Option<u64>,
    /// ETA a caller joining now would be told.
    pub eta_ms: Option<u64>,
    pub logged_in: u32,
    pub staffed: u32,
    pub available: u32,
    pub busy: u32,
    pub stats: Stats,
    pub alarm_longest_wait: bool,
    pub alarm_depth: bool,
}

/// Live figures of one gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GateSummary {
    pub gate: GateId,
    pub queue: QueueId,
    pub waiting: u32,
    pub longest_wait_ms: Option<u64>,
    pub stats: Stats,
}

/// A waiting call as listed for supervisors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingCall {
    pub call: CallId,
    pub queue: QueueId,
    pub gate: Option<GateId>,
    pub priority: u8,
    pub order_seq: u64,
    pub position: u32,
    pub entry_site: SiteId,
    pub wait_ms: u64,
    pub callback: bool,
    pub caller_number: String,
    /// As the caller's channel gave it (empty when it gave none).
    pub caller_name: String,
}

impl Routing {
    pub fn now_ms(&self) -> u64 {
        self.state.now_ms
    }

    /// The highest apply index applied so far (see [`crate::ApplyIndex`]).
    pub fn last_applied_index(&self) -> u64 {
        self.state.last_applied_index
    }

    pub fn is_site_lost(&self, site: SiteId) -> bool {
        self.state.lost_sites.contains(&site)
    }

    pub fn queue_config(&self, id: &QueueId) -> Option<&QueueConfig> {
        self.state.queues.get(id).map(|q| &q.config)
    }

    pub fn gate_config(&self, id: &GateId) -> Option<&GateConfig> {
        self.state.gates.get(id).map(|g| &g.config)
    }

    pub fn queue_configs(&self) -> impl Iterator<Item = &QueueConfig> {
        self.state.queues.values().map(|q| &q.config)
    }

    pub fn gate_configs(&self) -> impl Iterator<Item = &GateConfig> {
        self.state.gates.values().map(|g| &g.config)
    }

    pub fn operator_configs(&self) -> impl Iterator<Item = &OperatorConfig> {
        self.state.operators.values().map(|o| &o.config)
    }

    pub fn operator_config(&self, id: &OperatorId) -> Option<&OperatorConfig> {
        self.state.operators.get(id).map(|o| &o.config)
    }

    pub fn schedule_configs(&self) -> impl Iterator<Item = &ScheduleConfig> {
        self.state.schedules.values()
    }

    /// The whole configuration as one document, lists sorted by id.
    /// Which numbers a callback may dial.
    pub fn callback_policy(&self) -> &crate::callback_policy::CallbackPolicy {
        &self.state.callback_policy
    }

    /// When raised queue alarms clear.
    pub fn alarm_policy(&self) -> &crate::alarm_policy::AlarmPolicy {
        &self.state.alarms.policy
    }

    /// The webhook list, secrets included: the sender's read. Anything shown to a user
    /// goes through `WebhookConfig::redacted`.
    pub fn ingress_policy(&self) -> &crate::ingress::IngressPolicy {
        &self.state.ingress
    }

    pub fn webhooks(&self) -> &[crate::webhook::WebhookConfig] {
        &self.state.webhooks
    }

    pub fn config_set(&self) -> RoutingConfigSet {
        RoutingConfigSet {
            schedules: self.schedule_configs().cloned().collect(),
            queues: self.queue_configs().cloned().collect(),
            gates: self.gate_configs().cloned().collect(),
            operators: self.operator_configs().cloned().collect(),
        }
        .normalized()
    }

    /// Every call currently known (waiting, offered, connected), by arrival.
    pub fn calls(&self) -> impl Iterator<Item = CallView> + '_ {
        self.state.calls.keys().filter_map(|call_number| self.call_view_of(*call_number))
    }

    pub fn call_count(&self) -> usize {
        self.state.calls.len()
    }

    pub fn waiting_count(&self) -> usize {
        self.indexes.waiting_total
    }

    /// The caller channel of a call, if the caller is on the line.
    pub fn call_channel(&self, call: &CallId) -> Option<&str> {
        self.state.calls.get(self.indexes.call_numbers.get(call)?)?.channel.as_deref()
    }

    pub fn operators(&self) -> impl Iterator<Item = OperatorView> + '_ {
        self.state.operators.keys().filter_map(|id| self.operator_view(id))
    }

    pub fn queue_summary(&self, id: &QueueId) -> Option<QueueSummary> {
        let q = self.state.queues.get(id)?;
        let queue_index = self.indexes.queues.get(id)?;
        let now = self.state.now_ms;
        let busy = self
            .state
            .operators
            .values()
            .filter(|op| op.config.memberships.contains_key(id))
            .filter(|op| matches!(op.status, OperatorStatus::Offered { .. } | OperatorStatus::Busy { .. }))
            .count() as u32;
        Some(QueueSummary {
            queue: id.clone(),
            waiting: queue_index.order.len() as u32 - queue_index.callbacks_waiting,
            callbacks_waiting: queue_index.callbacks_waiting,
            longest_wait_ms: queue_index.live_by_joined.first().map(|(joined, _)| now.saturating_sub(*joined)),
            eta_ms: self.eta_ms(id, queue_index.order.len() as u32 + 1),
            logged_in: queue_index.logged_in,
            staffed: queue_index.ready,
            available: queue_index.available.len() as u32,
            busy,
            stats: q.stats.clone(),
            alarm_longest_wait: q.alarm_longest_wait_raised,
            alarm_depth: q.alarm_depth_raised,
        })
    }

    pub fn gate_summary(&self, id: &GateId) -> Option<GateSummary> {
        let g = self.state.gates.get(id)?;
        let waiting = self.indexes.gate_waiting.get(id);
        Some(GateSummary {
            gate: id.clone(),
            queue: g.config.queue.clone(),
            waiting: waiting.map_or(0, |w| w.len() as u32),
            longest_wait_ms: waiting
                .and_then(|w| w.first())
                .map(|(joined, _)| self.state.now_ms.saturating_sub(*joined)),
            stats: g.stats.clone(),
        })
    }

    /// Waiting calls in global order across all queues: (queue weight, priority, arrival).
    pub fn waiting_calls(&self) -> Vec<WaitingCall> {
        let mut all: Vec<((Reverse<u8>, OrderKey), WaitingCall)> = Vec::new();
        for (queue_id, queue_index) in &self.indexes.queues {
            let weight = Reverse(self.state.queues[queue_id].config.weight);
            for (position, (key, call_number)) in queue_index.order.iter().enumerate() {
                let c = &self.state.calls[&call_number];
                all.push((
                    (weight, key),
                    WaitingCall {
                        call: c.id.clone(),
                        queue: queue_id.clone(),
                        gate: c.gate.clone(),
                        priority: key.priority,
                        order_seq: key.seq,
                        position: position as u32 + 1,
                        entry_site: c.entry_site,
                        wait_ms: self.state.now_ms.saturating_sub(c.joined_at_ms),
                        callback: c.callback.is_some(),
                        caller_number: c.caller_number.clone(),
                        caller_name: c.caller_name.clone(),
                    },
                ));
            }
        }
        all.sort_by_key(|a| a.0);
        all.into_iter().map(|(_, w)| w).collect()
    }
}
