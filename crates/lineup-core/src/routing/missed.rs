//! `MissedWhileDown`: a caller who never reached Lineup because its site's node was down.
//! It only writes history (queue_log and the call record, at the caller's own times); no
//! state but the remembered id and the counters changes, and nothing is offered.

use super::records::secs;
use super::{CommandResult, Response, Routing};
use crate::command::MissedCall;
use crate::config::validate_text;
use crate::effect::{CallRecord, Effect, Outcome, QueueLogEntry, QueueLogVerb};
use crate::CoreError;

impl Routing {
    pub(super) fn missed_while_down(&mut self, m: &MissedCall) -> CommandResult {
        let priority = self.check_missed(m)?;
        // Remembered like any ended call, so a second report of it (another command id) and a
        // late entry of the same channel are both refused.
        self.remember_ended(&m.call);
        let wait_ms = m.ended_at_ms - m.entered_at_ms;
        let (outcome, verb) = if m.fallback {
            (Outcome::LocalFallback, QueueLogVerb::ExitWithTimeout)
        } else {
            (Outcome::AbandonedNodeDown, QueueLogVerb::Abandon)
        };
        let line = |at_ms, verb, data| {
            Effect::QueueLog(QueueLogEntry {
                at_ms,
                call: Some(m.call.clone()),
                queue: Some(m.queue.clone()),
                gate: m.gate.clone(),
                agent: None,
                verb,
                data,
            })
        };
        // As app_queue writes them: ENTERQUEUE url|callerid|position, then the end with
        // position|origposition|waittime; the caller was alone in its (local) line.
        let enter = vec![String::new(), m.caller_number.clone(), "1".into()];
        self.scratch.out.push(line(m.entered_at_ms, QueueLogVerb::EnterQueue, enter));
        let end = vec!["1".into(), "1".into(), secs(wait_ms)];
        self.scratch.out.push(line(m.ended_at_ms, verb, end));
        self.bump_stats(&m.queue.clone(), m.gate.as_ref(), |s| {
            s.offered += 1;
            if m.fallback {
                s.timed_out += 1;
            } else {
                s.abandoned += 1;
            }
        });
        self.scratch.out.push(Effect::CallEnded(CallRecord {
            call: m.call.clone(),
            queue: m.queue.clone(),
            gate: m.gate.clone(),
            priority,
            entry_site: m.site,
            caller_number: m.caller_number.clone(),
            caller_name: String::new(),
            outcome,
            entered_at_ms: m.entered_at_ms,
            ended_at_ms: m.ended_at_ms,
            wait_ms,
            handle_ms: None,
            operator: None,
            operator_site: None,
            callback_number: None,
            callback_attempts: 0,
        }));
        Ok(Response::Done)
    }

    /// Every refusal first; answers the priority the call would have had (its gate's, else
    /// its queue's).
    fn check_missed(&self, m: &MissedCall) -> Result<u8, CoreError> {
        m.call.validate().map_err(|err| CoreError::InvalidField { field: "call".into(), reason: err.to_string() })?;
        validate_text("caller_number", &m.caller_number)?;
        if m.ended_at_ms < m.entered_at_ms {
            return Err(CoreError::InvalidField {
                field: "ended_at_ms".into(),
                reason: format!("{} is before the entry at {}", m.ended_at_ms, m.entered_at_ms),
            });
        }
        // A caller who got into Lineup after all has its own history already.
        if self.indexes.call_numbers.contains_key(&m.call) || self.indexes.ended_calls.contains(&m.call) {
            return Err(CoreError::DuplicateCall(m.call.clone()));
        }
        Ok(self.gate_priority(&m.queue, m.gate.as_ref())?.0)
    }
}
