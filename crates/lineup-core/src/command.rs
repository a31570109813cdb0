//! Commands: the Raft log entry type. Everything that changes routing state is one of these.

use crate::config::{GateConfig, OperatorConfig, QueueConfig, ScheduleConfig};
use crate::ids::{CallId, GateId, OperatorId, QueueId, ScheduleId, SiteId, Skill};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Idempotency key: `origin` is the proposer (a site, or an API client mapped to one),
/// `serial` increases per origin. Applying a duplicate is a no-op that returns the first
/// result; proposers read results back by this key when a write's outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CommandId {
    pub origin: u64,
    pub serial: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub id: CommandId,
    /// The proposer's wall clock (Unix ms). Apply never reads a clock; see `Routing::apply`
    /// for how this is clamped against the leader's Tick time.
    pub at_ms: u64,
    pub body: CommandBody,
}

/// What an operator or supervisor asks the operator's state to become.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestedState {
    Available,
    Break { reason: String },
    Offline,
}

/// Who ended a connected call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HungUpBy {
    Caller,
    Operator,
    /// The site carrying one of the legs was declared lost.
    SiteLost,
}

/// Why a site could not carry out an Offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferFailure {
    /// The operator's channel or endpoint is gone: log the operator out.
    OperatorUnreachable,
    /// The bridge or originate failed for another reason: counts as a miss.
    BridgeFailed,
    /// The trunk call to the operator's site was refused or failed before it rang the
    /// operator (`cause` is the Q.850 hangup cause): not the operator's miss.
    TrunkFailed { cause: u16 },
    /// A restarted site took down an offer it was half-way through: not the operator's miss.
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enqueue {
    pub call: CallId,
    pub queue: QueueId,
    pub gate: Option<GateId>,
    /// Overrides the gate's and the queue's default priority.
    pub priority: Option<u8>,
    pub caller_number: String,
    pub caller_name: String,
    /// Site whose Asterisk holds the caller's channel.
    pub site: SiteId,
    /// The caller's ARI channel id (None for a web-widget callback request with no channel).
    pub channel: Option<String>,
    /// Skills this caller needs beyond the queue's and the gate's (e.g. from an IVR choice).
    pub skills: BTreeMap<Skill, u8>,
    /// Number to call back when the entry itself is a callback request (web widget).
    pub callback_number: Option<String>,
}

/// A caller who found its site's node down: `Stasis(lineup)` failed, the deploy dialplan
/// retried, and the caller hung up during the retries or went to the box's local fallback.
/// The box's hangup handler wrote it to the AstDB; the site reads it when its node is back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissedCall {
    /// The id the caller would have had in Lineup (the site and the channel's uniqueid).
    pub call: CallId,
    pub queue: QueueId,
    pub gate: Option<GateId>,
    pub site: SiteId,
    pub caller_number: String,
    /// The caller's arrival at the gate (Unix ms, whole seconds: the dialplan's `${EPOCH}`).
    pub entered_at_ms: u64,
    /// The caller's hangup (Unix ms, whole seconds).
    pub ended_at_ms: u64,
    /// Served by the box's local fallback (else the caller hung up during the retries).
    pub fallback: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandBody {
    PutQueue(QueueConfig),
    DeleteQueue {
        queue: QueueId,
    },
    PutGate(GateConfig),
    DeleteGate {
        gate: GateId,
    },
    PutOperator(OperatorConfig),
    DeleteOperator {
        operator: OperatorId,
    },
    PutSchedule(ScheduleConfig),
    DeleteSchedule {
        schedule: ScheduleId,
    },

    Enqueue(Enqueue),
    /// `channel` is the operator's persistent leg (holding bridge), None in ring mode.
    OperatorLogin {
        operator: OperatorId,
        site: SiteId,
        channel: Option<String>,
    },
    OperatorLogout {
        operator: OperatorId,
    },
    OperatorState {
        operator: OperatorId,
        state: RequestedState,
    },
    /// The bridge is up.
    Connected {
        call: CallId,
        operator: OperatorId,
        fence: u64,
    },
    OfferFailed {
        call: CallId,
        operator: OperatorId,
        fence: u64,
        reason: OfferFailure,
    },
    RingNoAnswer {
        call: CallId,
        operator: OperatorId,
        fence: u64,
    },
    Completed {
        call: CallId,
        fence: u64,
        by: HungUpBy,
    },
    /// The operator transferred the caller out of Lineup.
    Transferred {
        call: CallId,
        fence: u64,
        target: String,
    },
    /// The caller hung up before being connected.
    Abandoned {
        call: CallId,
    },
    ExitWithKey {
        call: CallId,
        key: char,
    },
    RequestCallback {
        call: CallId,
        number: String,
    },
    CallbackResult {
        call: CallId,
        operator: OperatorId,
        fence: u64,
        answered: bool,
    },
    /// Supervisor moves a waiting call to another queue.
    Reassign {
        call: CallId,
        queue: QueueId,
        keep_age: bool,
    },
    ChangePriority {
        call: CallId,
        priority: u8,
    },
    /// The operator takes the next eligible caller, or the named one.
    Pull {
        operator: OperatorId,
        call: Option<CallId>,
    },
    /// The leader's clock; drives every timer.
    Tick {
        now_ms: u64,
    },
    /// The site is declared gone (an admin's `lineup cluster declare-lost`, or silent for
    /// the long `site_lost_after_ms`): its calls end and its operators are logged out.
    SiteLost {
        site: SiteId,
    },
    /// The site answers again: it is neither unreachable nor lost any more.
    SiteBack {
        site: SiteId,
    },
    /// Replace the whole routing configuration at once (`lineup config apply`): validated as
    /// a set, then applied all or nothing. Appended last so older entries decode unchanged.
    ApplyConfig(Box<crate::config_set::RoutingConfigSet>),
    /// The leader has not heard the site for a while. Its calls go on (its Asterisk carries
    /// them); nothing is offered across it until `SiteBack`. Appended last so older
    /// entries decode unchanged.
    SiteUnreachable {
        site: SiteId,
    },
    /// From the operator's site: its side of a connected cross-site call ended (the operator
    /// hung up, or the trunk call went away) and the caller's site has not reported it. The
    /// operator is freed; the outcome waits for the caller's site.
    OperatorLegEnded {
        call: CallId,
        operator: OperatorId,
        fence: u64,
    },
    /// A PIN login from a phone: `OperatorLogin` plus the call the operator logged in from,
    /// for queue_log. Appended last so older entries decode unchanged; `OperatorLogin` stays
    /// for logins that come from no phone call.
    OperatorLoginFrom {
        operator: OperatorId,
        site: SiteId,
        channel: Option<String>,
        login: crate::model::LoginChannel,
    },
    /// A site's PIN check failed for this operator: counted towards the lockout every site
    /// reads (`Routing::pin_locked_out`). Appended last so older entries decode unchanged.
    PinRejected {
        operator: OperatorId,
    },
    /// Replace the callback destination policy (part of the routing config). Appended last
    /// so older entries decode unchanged.
    PutCallbackPolicy(crate::callback_policy::CallbackPolicy),
    /// A supervisor's or an admin's write with who made it: applied as `body` alone, plus one
    /// `Effect::Audit` when accepted (see `crate::audit`). Nested wrapping is refused.
    /// Appended last so older entries decode unchanged.
    Audited {
        actor: crate::audit::AuditActor,
        body: Box<CommandBody>,
    },
    /// A caller who never reached Lineup because its node was down (see [`MissedCall`]):
    /// recorded in history, refused if the call is known. Appended last so older entries
    /// decode unchanged.
    MissedWhileDown(MissedCall),
    /// Replace the queue alarms' clear levels and hold (part of the routing config).
    /// Appended last so older entries decode unchanged.
    PutAlarmPolicy(crate::alarm_policy::AlarmPolicy),
    /// An island starts merging into the global state: how many records follow and their
    /// digest. Its site stays unreachable until the End. Answered done, changing nothing,
    /// when this epoch already merged or is open. Appended last so older entries decode
    /// unchanged, as are the other merge commands.
    IslandMergeBegin {
        epoch: crate::island::IslandEpoch,
        counts: crate::island_merge::MergeCounts,
        digest: u64,
    },
    /// A chunk of the history the island wrote (at most
    /// `ISLAND_MERGE_RECORDS_PER_COMMAND_MAX`), starting at record number `first_record`
    /// of the merge; records already merged are skipped.
    IslandMergeRecords {
        epoch: crate::island::IslandEpoch,
        first_record: u64,
        records: Vec<crate::island_merge::IslandRecord>,
    },
    /// The island's stats delta, added once; the merge closes and the site is back (this is
    /// an island's `SiteBack`). Refused until every announced record is merged.
    IslandMergeEnd {
        epoch: crate::island::IslandEpoch,
        stats: crate::island_merge::StatsDelta,
        /// The island's handle times per queue, oldest first (at most `HANDLE_WINDOW_SAMPLES`
        /// each), added to the queues' ETA windows.
        handle_samples: std::collections::BTreeMap<crate::ids::QueueId, Vec<u64>>,
        /// Wrong PINs typed on the island per operator, oldest first (at most
        /// `PIN_LOCKOUT_FAILURES_MAX` each), added to the replicated lockout.
        pin_failures: std::collections::BTreeMap<crate::ids::OperatorId, Vec<u64>>,
    },
    /// Replace the webhook list (part of the routing config); a redacted secret keeps the
    /// named webhook's current one. Appended last so older entries decode unchanged.
    PutWebhooks(Vec<crate::webhook::WebhookConfig>),
    /// One live call of a merging island, after its records: upserted by call id (a call
    /// from before the fork keeps its number and place; one born on the island gets this
    /// command's index as its number and a place by its arrival), with its operator when it
    /// is offered or connected. A call whose end the global state knows is skipped.
    /// Appended last so older entries decode unchanged.
    IslandMergeCall {
        epoch: crate::island::IslandEpoch,
        call: crate::island_merge::MergedCall,
    },
    /// A chunk of a merging island's other operators (at most
    /// `ISLAND_MERGE_OPERATORS_PER_COMMAND_MAX`, in id order), after its calls: each one's
    /// state replaces the global one. Appended last so older entries decode unchanged.
    IslandMergeOperators {
        epoch: crate::island::IslandEpoch,
        operators: Vec<crate::island_merge::MergedOperator>,
    },
    /// Replace the DID map that steers new calls to sites (part of the routing config).
    /// Appended last so older entries decode unchanged.
    PutIngress(crate::ingress::IngressPolicy),
    /// A supervisor monitors a connected call from the phone at `endpoint`, at
    /// `supervisor_site` (`crate::monitor`). Changes nothing; answered with `Effect::Monitor`.
    /// Appended last so older entries decode unchanged.
    MonitorCall {
        call: CallId,
        mode: crate::monitor::MonitorMode,
        endpoint: String,
        supervisor_site: SiteId,
    },
    /// A supervisor hangs up a caller on the line (`crate::routing` `hang_up`). Changes
    /// nothing; answered with `Effect::HangUp` to the caller's site, whose report of the
    /// ended channel ends the call. Appended last so older entries decode unchanged.
    HangUpCall {
        call: CallId,
    },
}

impl CommandBody {
    /// Short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CommandBody::PutQueue(_) => "put_queue",
            CommandBody::DeleteQueue { .. } => "delete_queue",
            CommandBody::PutGate(_) => "put_gate",
            CommandBody::DeleteGate { .. } => "delete_gate",
            CommandBody::PutOperator(_) => "put_operator",
            CommandBody::DeleteOperator { .. } => "delete_operator",
            CommandBody::PutSchedule(_) => "put_schedule",
            CommandBody::DeleteSchedule { .. } => "delete_schedule",
            CommandBody::Enqueue(_) => "enqueue",
            CommandBody::OperatorLogin { .. } => "operator_login",
            CommandBody::OperatorLogout { .. } => "operator_logout",
            CommandBody::OperatorState { .. } => "operator_state",
            CommandBody::Connected { .. } => "connected",
            CommandBody::OfferFailed { .. } => "offer_failed",
            CommandBody::RingNoAnswer { .. } => "ring_no_answer",
            CommandBody::Completed { .. } => "completed",
            CommandBody::Transferred { .. } => "transferred",
            CommandBody::Abandoned { .. } => "abandoned",
            CommandBody::ExitWithKey { .. } => "exit_with_key",
            CommandBody::RequestCallback { .. } => "request_callback",
            CommandBody::CallbackResult { .. } => "callback_result",
            CommandBody::Reassign { .. } => "reassign",
            CommandBody::ChangePriority { .. } => "change_priority",
            CommandBody::Pull { .. } => "pull",
            CommandBody::Tick { .. } => "tick",
            CommandBody::SiteLost { .. } => "site_lost",
            CommandBody::SiteBack { .. } => "site_back",
            CommandBody::ApplyConfig(_) => "apply_config",
            CommandBody::SiteUnreachable { .. } => "site_unreachable",
            CommandBody::OperatorLegEnded { .. } => "operator_leg_ended",
            CommandBody::OperatorLoginFrom { .. } => "operator_login_from",
            CommandBody::PinRejected { .. } => "pin_rejected",
            CommandBody::PutCallbackPolicy(_) => "put_callback_policy",
            CommandBody::PutAlarmPolicy(_) => "put_alarm_policy",
            CommandBody::Audited { .. } => "audited",
            CommandBody::MissedWhileDown(_) => "missed_while_down",
            CommandBody::IslandMergeBegin { .. } => "island_merge_begin",
            CommandBody::IslandMergeRecords { .. } => "island_merge_records",
            CommandBody::IslandMergeEnd { .. } => "island_merge_end",
            CommandBody::PutWebhooks(_) => "put_webhooks",
            CommandBody::IslandMergeCall { .. } => "island_merge_call",
            CommandBody::IslandMergeOperators { .. } => "island_merge_operators",
            CommandBody::PutIngress(_) => "put_ingress",
            CommandBody::MonitorCall { .. } => "monitor_call",
            CommandBody::HangUpCall { .. } => "hang_up_call",
        }
    }
}
