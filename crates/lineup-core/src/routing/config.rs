//! Configuration commands: put and delete one queue, gate, operator or schedule, or replace
//! the whole set at once.

use super::refusals::invalid;
use super::{CommandResult, Response, Routing};
use crate::config::{GateConfig, OperatorConfig, QueueConfig, ScheduleConfig};
use crate::config_set::{ChangeAction, ConfigChange, ConfigKind, ConfigProblem, RoutingConfigSet, REDACTED_PIN_HASH};
use crate::effect::{OperatorStatus, QueueLogVerb};
use crate::ids::{GateId, OperatorId, QueueId, ScheduleId};
use crate::model::{Gate, Operator, Queue};
use crate::stats::Stats;
use crate::CoreError;
use std::collections::BTreeSet;

impl Routing {
    /// Replaces the whole configuration, all or nothing: every check that a single put or
    /// delete would make runs first, against the set as a whole, so no step below can fail.
    pub(super) fn apply_config(&mut self, wanted: &RoutingConfigSet) -> CommandResult {
        let (wanted, changes) = self.check_apply_config(wanted)?;
        self.carry_out_changes(&wanted, &changes)?;
        debug_assert_eq!(self.config_set(), wanted);
        Ok(Response::Done)
    }

    /// What `apply_config` refuses, decided without changing anything; else the set to put
    /// in force (normalized, redacted hashes resolved) and its changes from the current one.
    pub(super) fn check_apply_config(
        &self,
        wanted: &RoutingConfigSet,
    ) -> Result<(RoutingConfigSet, Vec<ConfigChange>), CoreError> {
        let current = self.config_set();
        let mut wanted = wanted.clone().normalized();
        self.keep_redacted_pins(&mut wanted)?;
        wanted.validate().map_err(CoreError::InvalidConfig)?;
        let changes = wanted.diff_from(&current);
        self.check_changes_allowed(&wanted, &changes)?;
        Ok((wanted, changes))
    }

    /// A redacted PIN hash (what a non-admin export shows) keeps the operator's current one.
    fn keep_redacted_pins(&self, wanted: &mut RoutingConfigSet) -> Result<(), CoreError> {
        for o in &mut wanted.operators {
            if o.pin_hash == REDACTED_PIN_HASH {
                match self.state.operators.get(&o.id) {
                    Some(existing) => o.pin_hash = existing.config.pin_hash.clone(),
                    None => {
                        return Err(refuse(
                            ConfigKind::Operator,
                            o.id.as_str(),
                            "pin_hash",
                            "a redacted hash can only keep an existing operator's PIN".into(),
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    /// The checks of single deletes and puts that depend on live state (calls in a removed
    /// queue, a logged-in operator removed or switched between persistent and ring mode).
    fn check_changes_allowed(&self, wanted: &RoutingConfigSet, changes: &[ConfigChange]) -> Result<(), CoreError> {
        for change in changes {
            match (change.action, change.kind) {
                (ChangeAction::Removed, ConfigKind::Queue) => {
                    if let Some(call) = self.state.calls.values().find(|c| c.queue.as_str() == change.id) {
                        let reason = format!("call {} is still in it", call.id);
                        return Err(refuse(ConfigKind::Queue, &change.id, "id", reason));
                    }
                }
                (ChangeAction::Removed, ConfigKind::Operator)
                    if self.state.operators.values().any(|o| o.config.id.as_str() == change.id && o.is_logged_in()) =>
                {
                    return Err(refuse(ConfigKind::Operator, &change.id, "id", "still logged in".into()));
                }
                (ChangeAction::Changed, ConfigKind::Operator) => {
                    let new = wanted.operators.iter().find(|o| o.id.as_str() == change.id);
                    let old = self.state.operators.values().find(|o| o.config.id.as_str() == change.id);
                    if let (Some(new), Some(old)) = (new, old) {
                        if old.is_logged_in() && old.config.mode != new.mode {
                            return Err(refuse(
                                ConfigKind::Operator,
                                &change.id,
                                "mode",
                                "log the operator out before changing persistent/ring mode".into(),
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Puts in dependency order, then deletes in reverse dependency order; all pre-checked.
    fn carry_out_changes(&mut self, wanted: &RoutingConfigSet, changes: &[ConfigChange]) -> Result<(), CoreError> {
        let wanted_now = |kind: ConfigKind, id: &str| {
            changes.iter().any(|c| c.kind == kind && c.id == id && c.action != ChangeAction::Removed)
        };
        for s in wanted.schedules.iter().filter(|s| wanted_now(ConfigKind::Schedule, s.id.as_str())) {
            self.put_schedule(s)?;
        }
        for q in wanted.queues.iter().filter(|q| wanted_now(ConfigKind::Queue, q.id.as_str())) {
            self.put_queue(q)?;
        }
        for g in wanted.gates.iter().filter(|g| wanted_now(ConfigKind::Gate, g.id.as_str())) {
            self.put_gate(g)?;
        }
        for o in wanted.operators.iter().filter(|o| wanted_now(ConfigKind::Operator, o.id.as_str())) {
            self.put_operator(o)?;
        }
        for kind in [ConfigKind::Operator, ConfigKind::Gate, ConfigKind::Queue, ConfigKind::Schedule] {
            for change in changes.iter().filter(|c| c.kind == kind && c.action == ChangeAction::Removed) {
                let removed = match kind {
                    ConfigKind::Operator => self.delete_operator(&OperatorId::new(&change.id)),
                    ConfigKind::Gate => self.delete_gate(&GateId::new(&change.id)),
                    ConfigKind::Queue => self.delete_queue(&QueueId::new(&change.id)),
                    ConfigKind::Schedule => self.delete_schedule(&ScheduleId::new(&change.id)),
                };
                debug_assert!(removed.is_ok(), "pre-checked removal failed: {removed:?}");
                removed?;
            }
        }
        Ok(())
    }

    pub(super) fn check_put_queue(&self, cfg: &QueueConfig) -> Result<(), CoreError> {
        cfg.validate()?;
        match &cfg.schedule {
            Some(s) if !self.state.schedules.contains_key(s) => Err(CoreError::UnknownSchedule(s.clone())),
            _ => Ok(()),
        }
    }

    pub(super) fn put_queue(&mut self, cfg: &QueueConfig) -> CommandResult {
        self.check_put_queue(cfg)?;
        let queue = self.state.queues.entry(cfg.id.clone()).or_insert_with(|| Queue {
            config: cfg.clone(),
            stats: Stats::default(),
            handle_times: Default::default(),
            alarm_longest_wait_raised: false,
            alarm_depth_raised: false,
        });
        queue.config = cfg.clone();
        // Deadlines derived from the queue's settings follow the new settings.
        let now = self.state.now_ms;
        for call in self.state.calls.values_mut().filter(|c| c.queue == cfg.id) {
            call.max_wait_due_ms = cfg.max_wait_ms.map(|w| call.joined_at_ms.saturating_add(w));
            call.next_widen_ms = cfg
                .next_widening_after(now.saturating_sub(call.joined_at_ms))
                .map(|after| call.joined_at_ms.saturating_add(after));
        }
        self.rebuild_indexes();
        self.scratch.dirty_queues.insert(cfg.id.clone());
        Ok(Response::Done)
    }

    pub(super) fn check_delete_queue(&self, id: &QueueId) -> Result<(), CoreError> {
        if !self.state.queues.contains_key(id) {
            return Err(CoreError::UnknownQueue(id.clone()));
        }
        if let Some(call) = self.state.calls.values().find(|c| &c.queue == id) {
            return Err(CoreError::InUse {
                what: "queue".into(),
                id: id.to_string(),
                detail: format!("call {} is in it", call.id),
            });
        }
        if let Some(gate) = self.state.gates.values().find(|g| &g.config.queue == id) {
            return Err(CoreError::InUse {
                what: "queue".into(),
                id: id.to_string(),
                detail: format!("gate {} leads into it", gate.config.id),
            });
        }
        Ok(())
    }

    pub(super) fn delete_queue(&mut self, id: &QueueId) -> CommandResult {
        self.check_delete_queue(id)?;
        self.state.queues.remove(id);
        self.rebuild_indexes();
        Ok(Response::Done)
    }

    pub(super) fn check_put_gate(&self, cfg: &GateConfig) -> Result<(), CoreError> {
        cfg.validate()?;
        if !self.state.queues.contains_key(&cfg.queue) {
            return Err(CoreError::UnknownQueue(cfg.queue.clone()));
        }
        Ok(())
    }

    pub(super) fn put_gate(&mut self, cfg: &GateConfig) -> CommandResult {
        self.check_put_gate(cfg)?;
        let gate = self
            .state
            .gates
            .entry(cfg.id.clone())
            .or_insert_with(|| Gate { config: cfg.clone(), stats: Stats::default() });
        gate.config = cfg.clone();
        Ok(Response::Done)
    }

    pub(super) fn check_delete_gate(&self, id: &GateId) -> Result<(), CoreError> {
        match self.state.gates.contains_key(id) {
            true => Ok(()),
            false => Err(CoreError::UnknownGate(id.clone())),
        }
    }

    pub(super) fn delete_gate(&mut self, id: &GateId) -> CommandResult {
        self.check_delete_gate(id)?;
        self.state.gates.remove(id);
        // Calls keep their gate name for history; only the gate's counters go.
        Ok(Response::Done)
    }

    pub(super) fn check_put_operator(&self, cfg: &OperatorConfig) -> Result<(), CoreError> {
        cfg.validate()?;
        match self.state.operators.get(&cfg.id) {
            Some(existing) if existing.is_logged_in() && existing.config.mode != cfg.mode => {
                Err(invalid("operator is logged in", "log out before changing persistent/ring mode"))
            }
            _ => Ok(()),
        }
    }

    pub(super) fn put_operator(&mut self, cfg: &OperatorConfig) -> CommandResult {
        self.check_put_operator(cfg)?;
        let Some(existing) = self.state.operators.get(&cfg.id) else {
            self.state.operators.insert(
                cfg.id.clone(),
                Operator {
                    config: cfg.clone(),
                    status: OperatorStatus::Offline,
                    site: None,
                    channel: None,
                    since_ms: self.state.now_ms,
                    idle_since_ms: self.state.now_ms,
                    logged_in_at_ms: 0,
                    misses: 0,
                    wake_ms: None,
                    after_call: None,
                },
            );
            return Ok(Response::Done);
        };
        let logged_in = existing.is_logged_in();
        let old_queues: BTreeSet<QueueId> = existing.config.memberships.keys().cloned().collect();
        let new_queues: BTreeSet<QueueId> = cfg.memberships.keys().cloned().collect();
        self.with_operator(&cfg.id, |op| op.config = cfg.clone());
        if logged_in {
            for q in new_queues.difference(&old_queues) {
                self.log(
                    None,
                    Some(q.clone()),
                    None,
                    Some(cfg.id.clone()),
                    QueueLogVerb::AddMember,
                    vec![String::new()],
                );
            }
            for q in old_queues.difference(&new_queues) {
                self.log(None, Some(q.clone()), None, Some(cfg.id.clone()), QueueLogVerb::RemoveMember, vec![]);
            }
        }
        self.scratch.dirty_operators.insert(cfg.id.clone());
        Ok(Response::Done)
    }

    pub(super) fn check_delete_operator(&self, id: &OperatorId) -> Result<(), CoreError> {
        let op = self.state.operators.get(id).ok_or_else(|| CoreError::UnknownOperator(id.clone()))?;
        if op.is_logged_in() {
            return Err(CoreError::InUse { what: "operator".into(), id: id.to_string(), detail: "logged in".into() });
        }
        Ok(())
    }

    pub(super) fn delete_operator(&mut self, id: &OperatorId) -> CommandResult {
        self.check_delete_operator(id)?;
        self.state.operators.remove(id);
        self.forget_pin_failures(id);
        Ok(Response::Done)
    }

    pub(super) fn put_callback_policy(&mut self, policy: &crate::callback_policy::CallbackPolicy) -> CommandResult {
        policy.validate()?;
        self.state.callback_policy = policy.clone();
        Ok(Response::Done)
    }

    pub(super) fn put_alarm_policy(&mut self, policy: &crate::alarm_policy::AlarmPolicy) -> CommandResult {
        policy.validate()?;
        self.state.alarms.policy = policy.clone();
        Ok(Response::Done)
    }

    /// The DID map on its own, and every gate it names exists.
    pub(super) fn check_put_ingress(&self, policy: &crate::ingress::IngressPolicy) -> Result<(), CoreError> {
        policy.validate()?;
        match policy.dids.iter().find(|route| !self.state.gates.contains_key(&route.gate)) {
            Some(route) => Err(CoreError::InvalidField {
                field: "ingress.gate".into(),
                reason: format!("DID {} names gate {}, which does not exist", route.did, route.gate),
            }),
            None => Ok(()),
        }
    }

    pub(super) fn put_ingress(&mut self, policy: &crate::ingress::IngressPolicy) -> CommandResult {
        self.check_put_ingress(policy)?;
        self.state.ingress = policy.clone();
        Ok(Response::Done)
    }

    pub(super) fn put_webhooks(&mut self, list: &[crate::webhook::WebhookConfig]) -> CommandResult {
        self.state.webhooks = crate::webhook::resolve_webhooks(list, &self.state.webhooks)?;
        debug_assert!(self.state.webhooks.len() <= crate::webhook::WEBHOOKS_MAX_COUNT);
        Ok(Response::Done)
    }

    pub(super) fn put_schedule(&mut self, cfg: &ScheduleConfig) -> CommandResult {
        crate::schedule::validate(cfg)?;
        self.state.schedules.insert(cfg.id.clone(), cfg.clone());
        Ok(Response::Done)
    }

    pub(super) fn check_delete_schedule(&self, id: &ScheduleId) -> Result<(), CoreError> {
        if !self.state.schedules.contains_key(id) {
            return Err(CoreError::UnknownSchedule(id.clone()));
        }
        if let Some(q) = self.state.queues.values().find(|q| q.config.schedule.as_ref() == Some(id)) {
            return Err(CoreError::InUse {
                what: "schedule".into(),
                id: id.to_string(),
                detail: format!("queue {} uses it", q.config.id),
            });
        }
        Ok(())
    }

    pub(super) fn delete_schedule(&mut self, id: &ScheduleId) -> CommandResult {
        self.check_delete_schedule(id)?;
        self.state.schedules.remove(id);
        Ok(Response::Done)
    }
}

/// A configuration set refused, naming the kind, id and field at fault.
fn refuse(kind: ConfigKind, id: &str, field: &str, reason: String) -> CoreError {
    CoreError::InvalidConfig(ConfigProblem { kind, id: id.into(), field: field.into(), reason })
}
