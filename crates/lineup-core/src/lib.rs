//! lineup-core: the sans-IO routing engine.
//!
//! One deterministic state machine that every site runs as its Raft state machine:
//! `Routing::apply(apply_index, &Command) -> Applied { result, effects }`. No clock, no
//! randomness, no IO, no async: time arrives in commands, timers are `Tick` commands, and
//! every output path iterates ordered maps, so all nodes compute byte-identical effects.
//!
//! Code map:
//! - [`audit`]: who made a supervisor's or admin's write (the `Audited` wrapper's checks).
//! - [`command`]: the log entry type (config changes, call and operator events, Tick, sites).
//! - [`routing`]: apply and its handlers, matching, timers, reads, invariant self-check.
//! - [`model`]: the persisted state (what a snapshot holds).
//! - [`order`]: the global order key and the O(log n) position index.
//! - [`effect`]: what apply asks sites to do, projections, history (queue_log) records.
//! - [`config_set`]: the whole configuration as one document (apply, export, diff).
//! - [`config`], [`schedule`], [`stats`], [`ids`]: settings, opening hours, counters, names.
//! - [`codec`]: the one module that knows the wire/disk encoding.
//! - [`apply_index`]: the apply index (Raft log index × 256 + position in the entry).
//! - [`island`]: island mode's fork and who owns which party while a site is cut off.
//! - [`island_merge`]: what an island's merge carries back, and the marks that make it count once.
//! - [`webhook`]: the webhook list (part of the routing config) and its checks.

pub mod alarm_policy;
pub mod apply_index;
pub mod audit;
pub mod callback_policy;
pub mod codec;
pub mod command;
pub mod config;
pub mod config_set;
pub mod effect;
mod error;
pub mod ids;
pub mod ingress;
pub mod island;
pub mod island_merge;
pub mod model;
pub mod monitor;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod order;
pub mod routing;
pub mod schedule;
pub mod stats;
pub mod webhook;

pub use alarm_policy::{AlarmPolicy, QueueAlarmClear, ALARM_HOLD_DEFAULT_MS};
pub use apply_index::ApplyIndex;
pub use audit::{AuditActor, AuditRecord, AuditRole, AUDIT_ACTOR_NAME_MAX_BYTES};
pub use callback_policy::{
    is_callback_number, CallbackPolicy, PolicyRefusal, CALLBACK_NUMBER_MAX_DIGITS, CALLBACK_NUMBER_MIN_DIGITS,
};
pub use command::{Command, CommandBody, CommandId, Enqueue, HungUpBy, MissedCall, OfferFailure, RequestedState};
pub use config::{
    CivilDate, EmptyRule, GateConfig, OpeningHours, OperatorConfig, OperatorMode, QueueConfig, ScheduleConfig, Target,
    TierRule,
};
pub use config_set::{ChangeAction, ConfigChange, ConfigKind, ConfigProblem, RoutingConfigSet};
pub use effect::{
    AlarmKind, Announcement, CallRecord, CallStatus, CallView, Effect, Offer, OperatorStatus, OperatorView, Outcome,
    QueueLogEntry, QueueLogVerb, SiteHealth,
};
pub use error::CoreError;
pub use ids::{CallId, GateId, OperatorId, QueueId, ScheduleId, SiteId, Skill};
pub use island::{IslandEpoch, IslandFork, IslandState, Party, Side, ISLAND_APPLY_INDEX_BASE};
pub use island_merge::{
    IslandHistory, IslandMark, IslandRecord, MergeCounts, MergePlan, MergeProgress, MergedCall, MergedOperator,
    PartiesProgress, StatsDelta,
};
pub use model::LoginChannel;
pub use monitor::{MonitorMode, MonitorOrder, MONITOR_ENDPOINT_MAX_BYTES};
pub use order::{OrderKey, PRIORITY_LOW, PRIORITY_NORMAL, PRIORITY_VIP};
pub use routing::{Applied, CommandResult, GateSummary, QueueSummary, Response, Routing, WaitingCall};
pub use webhook::{
    WebhookConfig, WebhookEventKind, WEBHOOKS_MAX_COUNT, WEBHOOK_SECRET_MAX_BYTES, WEBHOOK_SECRET_MIN_BYTES,
    WEBHOOK_SECRET_REDACTED,
};
