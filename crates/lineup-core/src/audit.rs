//! The audit trail: who made a supervisor's or an admin's write. The API wraps such a write
//! in `CommandBody::Audited`, so the actor is in the replicated log entry and every node's
//! history records the same row; apply answers the inner command's result and effects, plus
//! one `Effect::Audit` appended last (accepted writes only: a refusal changes nothing).

use crate::command::CommandBody;
use crate::routing::Response;
use crate::CoreError;
use serde::{Deserialize, Serialize};

/// Longest actor name (the API token's configured name).
pub const AUDIT_ACTOR_NAME_MAX_BYTES: usize = 64;

/// The role the actor's token had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditRole {
    Supervisor,
    Admin,
}

impl AuditRole {
    pub fn name(self) -> &'static str {
        match self {
            AuditRole::Supervisor => "supervisor",
            AuditRole::Admin => "admin",
        }
    }
}

/// Who made a write: the name of the API token it came with (never the token) and its role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditActor {
    pub token_name: String,
    pub role: AuditRole,
}

/// One audited write, as history records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The routing clock when the write was applied (Unix ms).
    pub at_ms: u64,
    pub actor: AuditActor,
    /// The inner command's kind (`reassign`, `apply_config`...).
    pub action: String,
    /// What the write was about (`call:c1 queue:support`), empty for whole-config writes.
    pub target: String,
    /// The accepted result's kind (`done`, `pulled`, `after_current_call`...).
    pub outcome: String,
}

/// Checks an actor name: not empty, at most [`AUDIT_ACTOR_NAME_MAX_BYTES`], no control
/// characters (it goes into logs and history rows). The API checks token names with it at
/// start, so a configured name can never be refused at apply.
pub fn validate_actor_name(name: &str) -> Result<(), CoreError> {
    let refuse = |reason: String| Err(CoreError::InvalidField { field: "actor.token_name".into(), reason });
    if name.is_empty() {
        return refuse("must not be empty".into());
    }
    if name.len() > AUDIT_ACTOR_NAME_MAX_BYTES {
        return refuse(format!("longer than {AUDIT_ACTOR_NAME_MAX_BYTES} bytes"));
    }
    if name.chars().any(char::is_control) {
        return refuse("contains a control character".into());
    }
    Ok(())
}

/// Checks the wrapper itself: a valid actor, and an inner command that may be audited (not
/// another `Audited`, not the leader's `Tick`, which is nobody's write).
pub(crate) fn validate_audited(actor: &AuditActor, body: &CommandBody) -> Result<(), CoreError> {
    validate_actor_name(&actor.token_name)?;
    match body {
        CommandBody::Audited { .. } => Err(CoreError::InvalidField {
            field: "body".into(),
            reason: "an audited command cannot wrap another audited command".into(),
        }),
        CommandBody::Tick { .. } => {
            Err(CoreError::InvalidField { field: "body".into(), reason: "a Tick is not an audited write".into() })
        }
        _ => Ok(()),
    }
}

/// The ids a command is about, as `kind:id` words.
pub fn target_of(body: &CommandBody) -> String {
    use CommandBody as C;
    let words: Vec<String> = match body {
        C::PutQueue(q) => vec![format!("queue:{}", q.id)],
        C::DeleteQueue { queue } => vec![format!("queue:{queue}")],
        C::PutGate(g) => vec![format!("gate:{}", g.id)],
        C::DeleteGate { gate } => vec![format!("gate:{gate}")],
        C::PutOperator(o) => vec![format!("operator:{}", o.id)],
        C::DeleteOperator { operator }
        | C::OperatorLogin { operator, .. }
        | C::OperatorLoginFrom { operator, .. }
        | C::OperatorLogout { operator }
        | C::OperatorState { operator, .. }
        | C::PinRejected { operator } => vec![format!("operator:{operator}")],
        C::PutSchedule(s) => vec![format!("schedule:{}", s.id)],
        C::DeleteSchedule { schedule } => vec![format!("schedule:{schedule}")],
        C::Enqueue(e) => vec![format!("call:{}", e.call), format!("queue:{}", e.queue)],
        C::MissedWhileDown(m) => vec![format!("call:{}", m.call), format!("queue:{}", m.queue)],
        C::Reassign { call, queue, .. } => vec![format!("call:{call}"), format!("queue:{queue}")],
        C::Connected { call, operator, .. }
        | C::OfferFailed { call, operator, .. }
        | C::RingNoAnswer { call, operator, .. }
        | C::CallbackResult { call, operator, .. }
        | C::OperatorLegEnded { call, operator, .. } => vec![format!("call:{call}"), format!("operator:{operator}")],
        C::Pull { operator, call } => {
            let mut words = vec![format!("operator:{operator}")];
            words.extend(call.iter().map(|c| format!("call:{c}")));
            words
        }
        C::Completed { call, .. }
        | C::Transferred { call, .. }
        | C::Abandoned { call }
        | C::ExitWithKey { call, .. }
        | C::RequestCallback { call, .. }
        | C::ChangePriority { call, .. }
        | C::HangUpCall { call } => vec![format!("call:{call}")],
        C::MonitorCall { call, mode, endpoint, .. } => {
            vec![format!("call:{call}"), format!("mode:{}", mode.as_str()), format!("endpoint:{endpoint}")]
        }
        C::SiteLost { site } | C::SiteBack { site } | C::SiteUnreachable { site } => vec![format!("site:{site}")],
        C::IslandMergeBegin { epoch, .. }
        | C::IslandMergeRecords { epoch, .. }
        | C::IslandMergeEnd { epoch, .. }
        | C::IslandMergeCall { epoch, .. }
        | C::IslandMergeOperators { epoch, .. } => vec![format!("site:{}", epoch.site)],
        C::PutWebhooks(list) => list.iter().map(|w| format!("webhook:{}", w.id)).collect(),
        C::Tick { .. }
        | C::ApplyConfig(_)
        | C::PutCallbackPolicy(_)
        | C::PutAlarmPolicy(_)
        | C::PutIngress(_)
        | C::Audited { .. } => Vec::new(),
    };
    words.join(" ")
}

/// The record of an accepted audited write of `body`, applied at `at_ms`.
pub(crate) fn record(at_ms: u64, actor: &AuditActor, body: &CommandBody, response: &Response) -> AuditRecord {
    AuditRecord {
        at_ms,
        actor: actor.clone(),
        action: body.kind().to_string(),
        target: target_of(body),
        outcome: outcome_name(response).to_string(),
    }
}

fn outcome_name(response: &Response) -> &'static str {
    match response {
        Response::Done => "done",
        Response::Enqueued { .. } => "enqueued",
        Response::CallbackAccepted { .. } => "callback_accepted",
        Response::Pulled { .. } => "pulled",
        Response::AfterCurrentCall => "after_current_call",
        Response::CallbackDenied { .. } => "callback_denied",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_names_are_bounded_and_printable() {
        assert!(validate_actor_name("ops-alice").is_ok());
        assert!(validate_actor_name(&"x".repeat(AUDIT_ACTOR_NAME_MAX_BYTES)).is_ok());
        for bad in [String::new(), "x".repeat(AUDIT_ACTOR_NAME_MAX_BYTES + 1), "a\nb".into(), "a\u{7}".into()] {
            let error = validate_actor_name(&bad).unwrap_err();
            assert!(matches!(error, CoreError::InvalidField { ref field, .. } if field == "actor.token_name"));
        }
    }
}
