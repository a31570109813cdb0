//! Effects: what apply asks the world to do, addressed to sites, plus the history stream.
//! Every node computes the same effects; each site acts on the ones addressed to it.

use crate::command::HungUpBy;
use crate::config::OperatorMode;
use crate::ids::{CallId, GateId, OperatorId, QueueId, SiteId};
use serde::{Deserialize, Serialize};

/// How a call ended. Every call gets exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed {
        by: HungUpBy,
    },
    Transferred {
        target: String,
    },
    Abandoned,
    TimedOut,
    Full,
    Closed,
    /// Left (or refused) because nobody could answer (join/leave-when-empty).
    Empty,
    ExitWithKey {
        key: char,
    },
    /// A callback promise ran out of attempts.
    CallbackFailed,
    /// The caller's site was declared lost while the caller waited.
    SiteLost,
    /// The caller hung up while the box retried `Stasis` with its node down: never in Lineup.
    /// Appended last: effects are stored in the history outbox.
    AbandonedNodeDown,
    /// The box's local fallback (its own `Queue()`) took the caller after the retries with its
    /// node down: never in Lineup.
    LocalFallback,
}

impl Outcome {
    /// Value of the `LINEUP_RESULT` channel variable when the caller returns to the dialplan.
    pub fn dialplan_result(&self) -> &'static str {
        match self {
            Outcome::Completed { .. } => "COMPLETED",
            Outcome::Transferred { .. } => "TRANSFERRED",
            Outcome::Abandoned => "ABANDONED",
            Outcome::TimedOut => "TIMEOUT",
            Outcome::Full => "FULL",
            Outcome::Closed => "CLOSED",
            Outcome::Empty => "EMPTY",
            Outcome::ExitWithKey { .. } => "EXITWITHKEY",
            Outcome::CallbackFailed => "CALLBACKFAILED",
            Outcome::SiteLost => "SITELOST",
            Outcome::AbandonedNodeDown => "ABANDONED",
            Outcome::LocalFallback => "FALLBACK",
        }
    }
}

/// The router's exclusive decision "this call goes to this operator".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub call: CallId,
    pub operator: OperatorId,
    /// Log index of the command that made the offer. Sites refuse anything older than the
    /// newest fence they have executed for this call or operator.
    pub fence: u64,
    pub queue: QueueId,
    pub gate: Option<GateId>,
    pub caller_site: SiteId,
    pub operator_site: SiteId,
    /// The caller's channel (None for a callback promise: there is no caller leg yet).
    pub caller_channel: Option<String>,
    pub caller_number: String,
    pub caller_name: String,
    pub mode: OperatorMode,
    /// The operator's persistent leg, in persistent mode.
    pub operator_channel: Option<String>,
    /// Dial string, in ring mode.
    pub endpoint: Option<String>,
    pub ring_timeout_ms: u64,
    /// Gate whisper to play to the operator before connecting.
    pub whisper: Option<String>,
    /// For a callback promise: the number the operator's site dials.
    pub callback_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Announcement {
    /// "You are number N; expected wait M minutes." `eta_ms` is None when nobody is staffed.
    Position { position: u32, eta_ms: Option<u64> },
    /// A periodic message (a sound name).
    Message { sound: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    LongestWait,
    Depth,
}

/// A site's health as the routing core sees it (see routing/sites.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteHealth {
    /// Heard again after being unreachable or lost (`SiteBack`).
    Back,
    /// Not heard for a while; its calls go on (`SiteUnreachable`).
    Unreachable,
    /// Declared gone; its calls ended (`SiteLost`).
    Lost,
}

/// State of an operator as projected to dashboards and Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorStatus {
    Offline,
    Available,
    Offered { call: CallId, fence: u64 },
    Busy { call: CallId, fence: u64 },
    WrapUp { until_ms: u64 },
    Break { reason: String },
}

impl OperatorStatus {
    pub fn name(&self) -> &'static str {
        match self {
            OperatorStatus::Offline => "offline",
            OperatorStatus::Available => "available",
            OperatorStatus::Offered { .. } => "offered",
            OperatorStatus::Busy { .. } => "busy",
            OperatorStatus::WrapUp { .. } => "wrap_up",
            OperatorStatus::Break { .. } => "break",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorView {
    pub operator: OperatorId,
    pub status: OperatorStatus,
    /// Where the operator is logged in (None when offline).
    pub site: Option<SiteId>,
    pub channel: Option<String>,
    pub since_ms: u64,
    /// Available but resting after a missed offer until then (no offers meanwhile).
    pub rest_until_ms: Option<u64>,
    /// Queues the operator serves (for `operator:<id>:queue` and `queue:<id>:operators`).
    pub queues: Vec<QueueId>,
}

/// A call's live state, as projected to dashboards and Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Waiting,
    Offered,
    Connected,
    CallbackWaiting,
    CallbackOffered,
    CallbackConnected,
    Ended,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallView {
    pub call: CallId,
    pub status: CallStatus,
    pub queue: QueueId,
    pub gate: Option<GateId>,
    pub priority: u8,
    pub order_seq: u64,
    pub entry_site: SiteId,
    pub operator: Option<OperatorId>,
    /// Fence of the current offer or connection.
    pub fence: Option<u64>,
    /// Since when the call is in its current status (for a waiting call: when it joined its queue).
    pub since_ms: u64,
    /// A callback promise is not offered again before this time (after a failed attempt).
    pub not_before_ms: Option<u64>,
}

/// The history record of a finished call (one per call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub call: CallId,
    pub queue: QueueId,
    pub gate: Option<GateId>,
    pub priority: u8,
    pub entry_site: SiteId,
    pub caller_number: String,
    pub caller_name: String,
    pub outcome: Outcome,
    pub entered_at_ms: u64,
    pub ended_at_ms: u64,
    /// Time in the last queue before connect (or before the end, if never connected).
    pub wait_ms: u64,
    /// Talk time (connect → end), for answered calls.
    pub handle_ms: Option<u64>,
    pub operator: Option<OperatorId>,
    pub operator_site: Option<SiteId>,
    pub callback_number: Option<String>,
    pub callback_attempts: u8,
}

/// Asterisk queue_log verbs, as app_queue writes them, plus the refusals upstream app_queue
/// does not log (FULL, CLOSED, JOINEMPTY, as Wazo's patched app_queue writes them) and
/// Lineup's own events (REASSIGN, CALLBACKREQUEST, CALLBACKFAILED, SITELOST, CALLBACKDENIED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueLogVerb {
    EnterQueue,
    Connect,
    CompleteCaller,
    CompleteAgent,
    Abandon,
    ExitWithTimeout,
    ExitWithKey,
    ExitEmpty,
    RingNoAnswer,
    RingCanceled,
    BlindTransfer,
    AddMember,
    RemoveMember,
    Pause,
    Unpause,
    AgentLogin,
    AgentLogoff,
    Full,
    Closed,
    JoinEmpty,
    /// Lineup: a supervisor moved the caller to another queue (terminal in the old queue).
    Reassign,
    /// Lineup: the caller asked to be called back (keeps its place).
    CallbackRequest,
    /// Lineup: a callback attempt did not reach the caller.
    CallbackFailed,
    /// Lineup: the caller's site was lost while it waited.
    SiteLost,
    /// Lineup: the callback policy denied the number a caller asked to be called back on.
    CallbackDenied,
}

impl QueueLogVerb {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueLogVerb::EnterQueue => "ENTERQUEUE",
            QueueLogVerb::Connect => "CONNECT",
            QueueLogVerb::CompleteCaller => "COMPLETECALLER",
            QueueLogVerb::CompleteAgent => "COMPLETEAGENT",
            QueueLogVerb::Abandon => "ABANDON",
            QueueLogVerb::ExitWithTimeout => "EXITWITHTIMEOUT",
            QueueLogVerb::ExitWithKey => "EXITWITHKEY",
            QueueLogVerb::ExitEmpty => "EXITEMPTY",
            QueueLogVerb::RingNoAnswer => "RINGNOANSWER",
            QueueLogVerb::RingCanceled => "RINGCANCELED",
            QueueLogVerb::BlindTransfer => "BLINDTRANSFER",
            QueueLogVerb::AddMember => "ADDMEMBER",
            QueueLogVerb::RemoveMember => "REMOVEMEMBER",
            QueueLogVerb::Pause => "PAUSE",
            QueueLogVerb::Unpause => "UNPAUSE",
            QueueLogVerb::AgentLogin => "AGENTLOGIN",
            QueueLogVerb::AgentLogoff => "AGENTLOGOFF",
            QueueLogVerb::Full => "FULL",
            QueueLogVerb::Closed => "CLOSED",
            QueueLogVerb::JoinEmpty => "JOINEMPTY",
            QueueLogVerb::Reassign => "REASSIGN",
            QueueLogVerb::CallbackRequest => "CALLBACKREQUEST",
            QueueLogVerb::CallbackFailed => "CALLBACKFAILED",
            QueueLogVerb::SiteLost => "SITELOST",
            QueueLogVerb::CallbackDenied => "CALLBACKDENIED",
        }
    }
}

/// One queue_log line, with every data field already computed (history never recomputes
/// state). `queue` and `gate` are kept apart; `to_line` says where each goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLogEntry {
    pub at_ms: u64,
    /// None is written as `NONE`.
    pub call: Option<CallId>,
    pub queue: Option<QueueId>,
    pub gate: Option<GateId>,
    pub agent: Option<OperatorId>,
    pub verb: QueueLogVerb,
    pub data: Vec<String>,
}

impl QueueLogEntry {
    /// The Asterisk flat-file line: `epoch|callid|queue|agent|EVENT|data...`.
    ///
    /// The queue field is the queue alone, as app_queue writes it, so tools that read
    /// Asterisk's queue_log group a queue's calls and its members' ADDMEMBER/PAUSE lines
    /// together. The gate goes where app_queue writes `Queue()`'s URL argument, which Lineup
    /// has no use for: ENTERQUEUE's first data field (`…|ENTERQUEUE|web|+15551234|1`).
    pub fn to_line(&self) -> String {
        let queue = self.queue.as_ref().map_or_else(|| "NONE".to_string(), |q| q.to_string());
        let mut data = self.data.clone();
        if let (QueueLogVerb::EnterQueue, Some(gate)) = (self.verb, &self.gate) {
            match data.first_mut() {
                Some(url) if url.is_empty() => *url = gate.to_string(),
                Some(_) => {}
                None => data.push(gate.to_string()),
            }
        }
        let mut line = format!(
            "{}|{}|{}|{}|{}|",
            self.at_ms / 1000,
            self.call.as_ref().map_or("NONE", |c| c.as_str()),
            queue,
            self.agent.as_ref().map_or("NONE", |a| a.as_str()),
            self.verb.as_str()
        );
        line.push_str(&data.iter().map(|d| d.replace('|', "_")).collect::<Vec<_>>().join("|"));
        line
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Caller's site (and operator's site when different): connect call and operator.
    Offer(Offer),
    /// Operator's site: dial the callback number and connect it with the operator.
    DialCallback(Offer),
    /// The offer with this fence is over (no answer, withdrawn, timed out): stop ringing,
    /// tear down anything half-built. Sites ignore it for offers they already finished.
    CancelOffer {
        call: CallId,
        operator: OperatorId,
        fence: u64,
        caller_site: SiteId,
        operator_site: SiteId,
    },
    Announce {
        call: CallId,
        site: SiteId,
        channel: String,
        announcement: Announcement,
    },
    /// Caller's site: offer "press 1 to be called back".
    OfferCallback {
        call: CallId,
        site: SiteId,
        channel: String,
        eta_ms: u64,
    },
    /// Caller's site: send the caller back to the dialplan with `LINEUP_RESULT`.
    Exit {
        call: CallId,
        site: SiteId,
        channel: String,
        outcome: Outcome,
    },
    Alarm {
        queue: QueueId,
        kind: AlarmKind,
        raised: bool,
        value: u64,
        threshold: u64,
    },
    OperatorChanged(OperatorView),
    CallChanged(CallView),
    CallEnded(CallRecord),
    QueueLog(QueueLogEntry),
    /// Who made an accepted supervisor's or admin's write (history's `audit` table).
    /// Appended last: effects are stored in the history outbox.
    Audit(crate::audit::AuditRecord),
    /// An island's merge ended at `end_index` (its `IslandMergeEnd`): the site is back, and
    /// its controller lowers the fork fences it executed to `end_index` so the first global
    /// offer after the merge passes its fence check. Appended last: effects are stored.
    IslandMerged {
        site: SiteId,
        epoch: crate::island::IslandEpoch,
        end_index: u64,
    },
    /// A site's health changed (emitted only on a change, never for a repeated command):
    /// for webhooks. Appended last: effects are stored in the history outbox.
    SiteHealthChanged {
        site: SiteId,
        health: SiteHealth,
    },
    /// The operator's site (and the supervisor's, when another) carries out a monitoring
    /// session of a connected call. Appended last: effects are stored in the history outbox.
    Monitor(crate::monitor::MonitorOrder),
    /// Caller's site: a supervisor hung up this caller; hang up the channel (its hangup is
    /// reported as any other). Appended last: effects are stored in the history outbox.
    HangUp {
        call: CallId,
        site: SiteId,
        channel: String,
    },
}

impl Effect {
    /// Is this effect for `site` to act on or record? Projection and history effects go to
    /// every site; call-control effects only to the sites that hold a leg.
    pub fn is_for(&self, site: SiteId) -> bool {
        match self {
            Effect::Offer(o) | Effect::DialCallback(o) => o.caller_site == site || o.operator_site == site,
            Effect::CancelOffer { caller_site, operator_site, .. } => *caller_site == site || *operator_site == site,
            Effect::Monitor(order) => order.operator_site == site || order.supervisor_site == site,
            Effect::Announce { site: s, .. }
            | Effect::OfferCallback { site: s, .. }
            | Effect::Exit { site: s, .. }
            | Effect::HangUp { site: s, .. } => *s == site,
            Effect::Alarm { .. }
            | Effect::OperatorChanged(_)
            | Effect::CallChanged(_)
            | Effect::CallEnded(_)
            | Effect::QueueLog(_)
            | Effect::Audit(_)
            | Effect::IslandMerged { .. }
            | Effect::SiteHealthChanged { .. } => true,
        }
    }

    /// True for effects that ask a site to act on a channel (as opposed to projections).
    pub fn is_call_control(&self) -> bool {
        matches!(
            self,
            Effect::Offer(_)
                | Effect::DialCallback(_)
                | Effect::CancelOffer { .. }
                | Effect::Announce { .. }
                | Effect::OfferCallback { .. }
                | Effect::Exit { .. }
                | Effect::Monitor(_)
                | Effect::HangUp { .. }
        )
    }

    /// True for effects the history store records (the history outbox keeps only these).
    pub fn is_history(&self) -> bool {
        matches!(self, Effect::CallEnded(_) | Effect::QueueLog(_) | Effect::OperatorChanged(_) | Effect::Audit(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_log_line_matches_asterisk_layout() {
        let e = QueueLogEntry {
            at_ms: 1_732_250_000_123,
            call: Some(CallId::new("a-1732250000.42")),
            queue: Some(QueueId::new("sales")),
            gate: Some(GateId::new("web")),
            agent: None,
            verb: QueueLogVerb::EnterQueue,
            data: vec!["".into(), "5551234".into(), "1".into()],
        };
        // Queue alone in the queue field; the gate where app_queue writes Queue()'s URL.
        assert_eq!(e.to_line(), "1732250000|a-1732250000.42|sales|NONE|ENTERQUEUE|web|5551234|1");
        let connect = QueueLogEntry { verb: QueueLogVerb::Connect, data: vec!["12".into()], ..e.clone() };
        assert_eq!(connect.to_line(), "1732250000|a-1732250000.42|sales|NONE|CONNECT|12");
        let pause = QueueLogEntry {
            at_ms: 5_000,
            call: None,
            queue: Some(QueueId::new("sales")),
            gate: None,
            agent: Some(OperatorId::new("alice")),
            verb: QueueLogVerb::Pause,
            data: vec!["lunch|late".into()],
        };
        assert_eq!(pause.to_line(), "5|NONE|sales|alice|PAUSE|lunch_late");
        let start = QueueLogEntry { data: vec![], verb: QueueLogVerb::AgentLogin, queue: None, ..pause };
        assert_eq!(start.to_line(), "5|NONE|NONE|alice|AGENTLOGIN|");
    }
}
