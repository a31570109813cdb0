//! The whole routing configuration as one document: what `lineup config apply` sends, what
//! `lineup config export` prints, and what the REST API reads and replaces. Applying a set is
//! one command (`CommandBody::ApplyConfig`), so every site switches from the old settings to
//! the new ones at the same log index and a refused set changes nothing.

use crate::config::{GateConfig, OperatorConfig, QueueConfig, ScheduleConfig, Target};
use crate::ids::{QueueId, ScheduleId};
use crate::CoreError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Most objects of one kind in a config set (queues, gates, operators or schedules).
pub const CONFIG_SET_OBJECTS_MAX: usize = 10_000;

/// Every queue, gate, operator and schedule, each list sorted by id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfigSet {
    pub schedules: Vec<ScheduleConfig>,
    pub queues: Vec<QueueConfig>,
    pub gates: Vec<GateConfig>,
    pub operators: Vec<OperatorConfig>,
}

/// Which object a problem or a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConfigKind {
    Schedule,
    Queue,
    Gate,
    Operator,
}

impl ConfigKind {
    /// The plural the config file and the API use as the section name.
    pub fn section(self) -> &'static str {
        match self {
            ConfigKind::Schedule => "schedules",
            ConfigKind::Queue => "queues",
            ConfigKind::Gate => "gates",
            ConfigKind::Operator => "operators",
        }
    }
}

/// A problem with one field of one object, precise enough to point at a line in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{} `{id}`, field {field}: {reason}", kind.section())]
pub struct ConfigProblem {
    pub kind: ConfigKind,
    pub id: String,
    pub field: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangeAction {
    Added,
    Changed,
    Removed,
}

/// One line of a diff: what applying a set would do to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigChange {
    pub action: ChangeAction,
    pub kind: ConfigKind,
    pub id: String,
    /// Top-level fields that differ (for `Changed`).
    pub fields: Vec<String>,
}

fn problem(kind: ConfigKind, id: &str, field: &str, reason: impl Into<String>) -> ConfigProblem {
    ConfigProblem { kind, id: id.to_string(), field: field.to_string(), reason: reason.into() }
}

fn from_core(kind: ConfigKind, id: &str, e: CoreError) -> ConfigProblem {
    match e {
        CoreError::InvalidField { field, reason } => problem(kind, id, &field, reason),
        other => problem(kind, id, "id", other.to_string()),
    }
}

/// Top-level fields whose serialized values differ (both sides serialize to JSON objects).
fn changed_fields<T: Serialize>(old: &T, new: &T) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return vec!["*".into()];
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).cloned().collect()
}

fn diff_kind<K: Ord + Clone + ToString, T: Serialize + PartialEq>(
    kind: ConfigKind,
    old: &BTreeMap<K, &T>,
    new: &BTreeMap<K, &T>,
    out: &mut Vec<ConfigChange>,
) {
    for (id, cfg) in new {
        match old.get(id) {
            None => out.push(ConfigChange { action: ChangeAction::Added, kind, id: id.to_string(), fields: vec![] }),
            Some(before) if *before != *cfg => out.push(ConfigChange {
                action: ChangeAction::Changed,
                kind,
                id: id.to_string(),
                fields: changed_fields(*before, *cfg),
            }),
            Some(_) => {}
        }
    }
    for id in old.keys().filter(|id| !new.contains_key(*id)) {
        out.push(ConfigChange { action: ChangeAction::Removed, kind, id: id.to_string(), fields: vec![] });
    }
}

fn by_id<K: Ord + Clone, T>(items: &[T], id: impl Fn(&T) -> &K) -> BTreeMap<K, &T> {
    items.iter().map(|c| (id(c).clone(), c)).collect()
}

impl RoutingConfigSet {
    /// Sorts every list by id, so equal configurations compare and serialize equal.
    pub fn normalized(mut self) -> Self {
        self.schedules.sort_by(|a, b| a.id.cmp(&b.id));
        self.queues.sort_by(|a, b| a.id.cmp(&b.id));
        self.gates.sort_by(|a, b| a.id.cmp(&b.id));
        self.operators.sort_by(|a, b| a.id.cmp(&b.id));
        self
    }

    pub fn object_count(&self) -> usize {
        self.schedules.len() + self.queues.len() + self.gates.len() + self.operators.len()
    }

    /// Every object valid on its own, ids unique, and every reference (schedule, overflow
    /// target, gate queue, membership) pointing at an object of this same set.
    pub fn validate(&self) -> Result<(), ConfigProblem> {
        use ConfigKind::Queue;
        self.validate_counts()?;
        let schedules = self.validate_schedules()?;
        let queues: BTreeSet<&QueueId> = self.queues.iter().map(|q| &q.id).collect();
        if queues.len() != self.queues.len() {
            let dup = self.queues.iter().find(|q| self.queues.iter().filter(|o| o.id == q.id).count() > 1);
            return Err(problem(Queue, dup.map(|q| q.id.as_str()).unwrap_or(""), "id", "defined twice"));
        }
        for q in &self.queues {
            validate_queue(q, &schedules, &queues)?;
        }
        self.validate_gates(&queues)?;
        self.validate_operators(&queues)
    }

    /// No section holds more than `CONFIG_SET_OBJECTS_MAX` objects.
    fn validate_counts(&self) -> Result<(), ConfigProblem> {
        use ConfigKind::*;
        for (kind, len) in [
            (Schedule, self.schedules.len()),
            (Queue, self.queues.len()),
            (Gate, self.gates.len()),
            (Operator, self.operators.len()),
        ] {
            if len > CONFIG_SET_OBJECTS_MAX {
                return Err(problem(kind, "", kind.section(), format!("more than {CONFIG_SET_OBJECTS_MAX} objects")));
            }
        }
        Ok(())
    }

    /// Each schedule valid and defined once; their ids.
    fn validate_schedules(&self) -> Result<BTreeSet<&ScheduleId>, ConfigProblem> {
        use ConfigKind::Schedule;
        let mut schedules = BTreeSet::new();
        for s in &self.schedules {
            s.id.validate().map_err(|e| problem(Schedule, s.id.as_str(), "id", e.to_string()))?;
            crate::schedule::validate(s).map_err(|e| from_core(Schedule, s.id.as_str(), e))?;
            if !schedules.insert(&s.id) {
                return Err(problem(Schedule, s.id.as_str(), "id", "defined twice"));
            }
        }
        Ok(schedules)
    }

    /// Each gate valid, defined once, and in a queue of the set.
    fn validate_gates(&self, queues: &BTreeSet<&QueueId>) -> Result<(), ConfigProblem> {
        use ConfigKind::Gate;
        let mut gates = BTreeSet::new();
        for g in &self.gates {
            let id = g.id.as_str();
            g.validate().map_err(|e| from_core(Gate, id, e))?;
            if !queues.contains(&g.queue) {
                return Err(problem(Gate, id, "queue", format!("no queue named `{}`", g.queue)));
            }
            if !gates.insert(&g.id) {
                return Err(problem(Gate, id, "id", "defined twice"));
            }
        }
        Ok(())
    }

    /// Each operator valid, defined once, and a member of queues of the set only.
    fn validate_operators(&self, queues: &BTreeSet<&QueueId>) -> Result<(), ConfigProblem> {
        use ConfigKind::Operator;
        let mut operators = BTreeSet::new();
        for o in &self.operators {
            let id = o.id.as_str();
            o.validate().map_err(|e| from_core(Operator, id, e))?;
            if let Some(q) = o.memberships.keys().find(|q| !queues.contains(q)) {
                return Err(problem(Operator, id, "memberships", format!("no queue named `{q}`")));
            }
            if !operators.insert(&o.id) {
                return Err(problem(Operator, id, "id", "defined twice"));
            }
        }
        Ok(())
    }

    /// What applying `self` over `current` changes, schedules first, operators last.
    pub fn diff_from(&self, current: &RoutingConfigSet) -> Vec<ConfigChange> {
        let mut out = Vec::new();
        diff_kind(
            ConfigKind::Schedule,
            &by_id(&current.schedules, |c| &c.id),
            &by_id(&self.schedules, |c| &c.id),
            &mut out,
        );
        diff_kind(ConfigKind::Queue, &by_id(&current.queues, |c| &c.id), &by_id(&self.queues, |c| &c.id), &mut out);
        diff_kind(ConfigKind::Gate, &by_id(&current.gates, |c| &c.id), &by_id(&self.gates, |c| &c.id), &mut out);
        diff_kind(
            ConfigKind::Operator,
            &by_id(&current.operators, |c| &c.id),
            &by_id(&self.operators, |c| &c.id),
            &mut out,
        );
        out
    }

    /// The same set with every operator's PIN hash blanked (for readers who may not see them).
    pub fn without_pin_hashes(mut self) -> Self {
        for o in &mut self.operators {
            if !o.pin_hash.is_empty() {
                o.pin_hash = REDACTED_PIN_HASH.into();
            }
        }
        self
    }
}

/// Stands in for a PIN hash in exports for readers without the admin role. Applying a set
/// that carries it keeps the operator's current hash.
pub const REDACTED_PIN_HASH: &str = "(redacted)";

/// A queue valid, its schedule in the set, and each overflow target another queue of the set.
fn validate_queue(
    q: &QueueConfig,
    schedules: &BTreeSet<&ScheduleId>,
    queues: &BTreeSet<&QueueId>,
) -> Result<(), ConfigProblem> {
    use ConfigKind::Queue;
    let id = q.id.as_str();
    q.validate().map_err(|e| from_core(Queue, id, e))?;
    if let Some(s) = &q.schedule {
        if !schedules.contains(s) {
            return Err(problem(Queue, id, "schedule", format!("no schedule named `{s}`")));
        }
    }
    for (field, target) in [
        ("timeout_target", &q.timeout_target),
        ("full_target", &q.full_target),
        ("empty_target", &q.empty_target),
        ("after_hours_target", &q.after_hours_target),
    ] {
        if let Target::Queue { queue, .. } = target {
            if !queues.contains(queue) {
                return Err(problem(Queue, id, field, format!("no queue named `{queue}`")));
            }
            if queue == &q.id {
                return Err(problem(Queue, id, field, "a queue cannot overflow into itself"));
            }
        }
    }
    Ok(())
}
