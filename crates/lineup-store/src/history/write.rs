//! Writing history: the rows each committed effect adds (calls, operator events, callback
//! events, the queue_log table, the audit trail) and the watermark that makes a replayed
//! batch add nothing.

use lineup_core::{
    AuditRecord, CallRecord, Effect, HungUpBy, OperatorStatus, OperatorView, Outcome, QueueLogEntry, QueueLogVerb,
};

use super::sql::{int, Arg, Statement};
use super::{HistoryStore, QUEUE_LOG_DATA_COLUMNS};
use crate::error::StoreError;

/// What one [`HistoryStore::write_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    /// Entries above the watermark, written.
    pub entries_written: usize,
    /// Entries at or below the watermark, skipped (already in the database).
    pub entries_skipped: usize,
    /// Rows inserted across all tables.
    pub rows_inserted: u64,
    /// The watermark after the batch.
    pub watermark: u64,
}

// Row locks serialise writers when several sites share one PostgreSQL database: the second
// writer waits, then sees the first one's watermark and skips what it already wrote.
/// `outcome_detail` of a call that never reached Lineup because its site's node was down.
pub const NODE_DOWN_DETAIL: &str = "node_down";

const SELECT_WATERMARK: Statement = Statement {
    postgres: "SELECT log_index FROM history_watermark WHERE id = 1 FOR UPDATE",
    sqlite: "SELECT log_index FROM history_watermark WHERE id = 1",
};

const UPDATE_WATERMARK: Statement = Statement {
    postgres: "UPDATE history_watermark SET log_index = $1 WHERE id = 1",
    sqlite: "UPDATE history_watermark SET log_index = ?1 WHERE id = 1",
};

const INSERT_CALL: Statement = Statement {
    postgres: "INSERT INTO calls (log_index, seq, call_id, queue, gate, priority, entry_site, caller_number, \
               caller_name, outcome, outcome_detail, entered_at_ms, ended_at_ms, wait_ms, handle_ms, operator, \
               operator_site, callback_number, callback_attempts) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
               ON CONFLICT DO NOTHING",
    sqlite: "INSERT INTO calls (log_index, seq, call_id, queue, gate, priority, entry_site, caller_number, \
             caller_name, outcome, outcome_detail, entered_at_ms, ended_at_ms, wait_ms, handle_ms, operator, \
             operator_site, callback_number, callback_attempts) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) \
             ON CONFLICT DO NOTHING",
};

const INSERT_OPERATOR_EVENT: Statement = Statement {
    postgres: "INSERT INTO operator_events (log_index, seq, operator, status, reason, call_id, site, channel, at_ms) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
    sqlite: "INSERT INTO operator_events (log_index, seq, operator, status, reason, call_id, site, channel, at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
};

const INSERT_CALLBACK_EVENT: Statement = Statement {
    postgres: "INSERT INTO callback_events (log_index, seq, call_id, queue, gate, event, number, position, operator, \
               attempts_left, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
    sqlite: "INSERT INTO callback_events (log_index, seq, call_id, queue, gate, event, number, position, operator, \
             attempts_left, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT DO NOTHING",
};

const INSERT_QUEUE_LOG: Statement = Statement {
    postgres: "INSERT INTO queue_log (log_index, seq, time, at_ms, callid, queuename, agent, event, data1, data2, \
               data3, data4, data5) VALUES ($1, $2, to_timestamp($3::float8 / 1000), $3, $4, $5, $6, $7, $8, $9, \
               $10, $11, $12) ON CONFLICT DO NOTHING",
    sqlite: "INSERT INTO queue_log (log_index, seq, time, at_ms, callid, queuename, agent, event, data1, data2, \
             data3, data4, data5) VALUES (?1, ?2, strftime('%Y-%m-%d %H:%M:%f', ?3 / 1000.0, 'unixepoch'), ?3, ?4, \
             ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT DO NOTHING",
};

const INSERT_AUDIT: Statement = Statement {
    postgres: "INSERT INTO audit (log_index, seq, at_ms, actor, role, action, target, outcome) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    sqlite: "INSERT INTO audit (log_index, seq, at_ms, actor, role, action, target, outcome) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
};

fn audit_args(apply_index: u64, seq: usize, r: &AuditRecord) -> Vec<Arg> {
    vec![
        Arg::Int(int(apply_index)),
        Arg::Int(int(seq as u64)),
        Arg::Int(int(r.at_ms)),
        Arg::Text(r.actor.token_name.clone()),
        Arg::Text(r.actor.role.name().to_string()),
        Arg::Text(r.action.clone()),
        Arg::Text(r.target.clone()),
        Arg::Text(r.outcome.clone()),
    ]
}

fn outcome_columns(outcome: &Outcome) -> (&'static str, Option<String>) {
    match outcome {
        Outcome::Completed { by } => ("completed", Some(hung_up_by_name(*by).to_string())),
        Outcome::Transferred { target } => ("transferred", Some(target.clone())),
        Outcome::Abandoned => ("abandoned", None),
        Outcome::TimedOut => ("timed_out", None),
        Outcome::Full => ("full", None),
        Outcome::Closed => ("closed", None),
        Outcome::Empty => ("empty", None),
        Outcome::ExitWithKey { key } => ("exit_with_key", Some(key.to_string())),
        Outcome::CallbackFailed => ("callback_failed", None),
        Outcome::SiteLost => ("site_lost", None),
        Outcome::AbandonedNodeDown => ("abandoned", Some(NODE_DOWN_DETAIL.to_string())),
        Outcome::LocalFallback => ("local_fallback", Some(NODE_DOWN_DETAIL.to_string())),
    }
}

fn hung_up_by_name(by: HungUpBy) -> &'static str {
    match by {
        HungUpBy::Caller => "caller",
        HungUpBy::Operator => "operator",
        HungUpBy::SiteLost => "site_lost",
    }
}

fn call_args(apply_index: u64, seq: usize, r: &CallRecord) -> Vec<Arg> {
    let (outcome, detail) = outcome_columns(&r.outcome);
    vec![
        Arg::Int(int(apply_index)),
        Arg::Int(int(seq as u64)),
        Arg::Text(r.call.to_string()),
        Arg::Text(r.queue.to_string()),
        Arg::OptText(r.gate.as_ref().map(ToString::to_string)),
        Arg::Int(i64::from(r.priority)),
        Arg::Int(int(r.entry_site.0)),
        Arg::Text(r.caller_number.clone()),
        Arg::Text(r.caller_name.clone()),
        Arg::Text(outcome.to_string()),
        Arg::OptText(detail),
        Arg::Int(int(r.entered_at_ms)),
        Arg::Int(int(r.ended_at_ms)),
        Arg::Int(int(r.wait_ms)),
        Arg::OptInt(r.handle_ms.map(int)),
        Arg::OptText(r.operator.as_ref().map(ToString::to_string)),
        Arg::OptInt(r.operator_site.map(|s| int(s.0))),
        Arg::OptText(r.callback_number.clone()),
        Arg::Int(i64::from(r.callback_attempts)),
    ]
}

fn operator_event_args(apply_index: u64, seq: usize, v: &OperatorView) -> Vec<Arg> {
    let (reason, call) = match &v.status {
        OperatorStatus::Break { reason } => (Some(reason.clone()), None),
        OperatorStatus::Offered { call, .. } | OperatorStatus::Busy { call, .. } => (None, Some(call.to_string())),
        OperatorStatus::Offline | OperatorStatus::Available | OperatorStatus::WrapUp { .. } => (None, None),
    };
    vec![
        Arg::Int(int(apply_index)),
        Arg::Int(int(seq as u64)),
        Arg::Text(v.operator.to_string()),
        Arg::Text(v.status.name().to_string()),
        Arg::OptText(reason),
        Arg::OptText(call),
        Arg::OptInt(v.site.map(|s| int(s.0))),
        Arg::OptText(v.channel.clone()),
        Arg::Int(int(v.since_ms)),
    ]
}

/// The adaptive queue_log columns of one entry, taken apart from [`QueueLogEntry::to_line`]
/// so the table and the flat file can never disagree. Ids cannot hold `|` and data fields
/// have it replaced, so splitting on `|` is exact.
pub fn queue_log_columns(entry: &QueueLogEntry) -> QueueLogColumns {
    let line = entry.to_line();
    let mut fields = line.split('|');
    let mut next = || fields.next().unwrap_or("").to_string();
    let _epoch = next();
    let (callid, queuename, agent, event) = (next(), next(), next(), next());
    let rest: Vec<&str> = line.splitn(6, '|').nth(5).map(|d| d.split('|').collect()).unwrap_or_default();
    let mut data: [String; QUEUE_LOG_DATA_COLUMNS] = Default::default();
    for (i, field) in rest.iter().enumerate() {
        if i < QUEUE_LOG_DATA_COLUMNS - 1 {
            data[i] = field.to_string();
        } else {
            // Asterisk keeps whatever does not fit in the last column.
            data[QUEUE_LOG_DATA_COLUMNS - 1] = rest[i..].join("|");
            break;
        }
    }
    QueueLogColumns { callid, queuename, agent, event, data }
}

/// One queue_log row as Asterisk's adaptive realtime table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLogColumns {
    pub callid: String,
    pub queuename: String,
    pub agent: String,
    pub event: String,
    pub data: [String; QUEUE_LOG_DATA_COLUMNS],
}

fn queue_log_args(apply_index: u64, seq: usize, e: &QueueLogEntry) -> Vec<Arg> {
    let c = queue_log_columns(e);
    let mut args = vec![
        Arg::Int(int(apply_index)),
        Arg::Int(int(seq as u64)),
        Arg::Int(int(e.at_ms)),
        Arg::Text(c.callid),
        Arg::Text(c.queuename),
        Arg::Text(c.agent),
        Arg::Text(c.event),
    ];
    args.extend(c.data.into_iter().map(Arg::Text));
    args
}

/// CALLBACKREQUEST data is `number|position|origpos|wait_s`; CALLBACKFAILED is
/// `attempts_left`, with the operator as agent (see lineup-core's routing).
fn callback_event_args(apply_index: u64, seq: usize, e: &QueueLogEntry) -> Option<Vec<Arg>> {
    let field = |i: usize| e.data.get(i).cloned();
    let number = |i: usize| field(i).and_then(|s| s.parse::<i64>().ok());
    let (event, number_text, position, attempts_left) = match e.verb {
        QueueLogVerb::CallbackRequest => ("request", field(0), number(1), None),
        QueueLogVerb::CallbackFailed => ("failed", None, None, number(0)),
        _ => return None,
    };
    Some(vec![
        Arg::Int(int(apply_index)),
        Arg::Int(int(seq as u64)),
        Arg::Text(e.call.as_ref().map_or_else(|| "NONE".to_string(), ToString::to_string)),
        Arg::Text(e.queue.as_ref().map_or_else(|| "NONE".to_string(), ToString::to_string)),
        Arg::OptText(e.gate.as_ref().map(ToString::to_string)),
        Arg::Text(event.to_string()),
        Arg::OptText(number_text),
        Arg::OptInt(position),
        Arg::OptText(e.agent.as_ref().map(ToString::to_string)),
        Arg::OptInt(attempts_left),
        Arg::Int(int(e.at_ms)),
    ])
}

/// Is this effect something history records? [`Effect::is_history`], under the name the
/// simulator's history model imports.
pub fn is_history_effect(effect: &Effect) -> bool {
    effect.is_history()
}

impl HistoryStore {
    /// Writes the history rows of `entries` (log index, that entry's effects, in increasing
    /// index order) in one transaction that also advances the watermark. Entries at or below
    /// the watermark are skipped, so a replayed batch writes nothing twice. Effects that are
    /// not history (call control, projections other than operator changes) are ignored.
    pub async fn write_batch(&self, entries: &[(u64, Vec<Effect>)]) -> Result<BatchOutcome, StoreError> {
        for pair in entries.windows(2) {
            if pair[1].0 <= pair[0].0 {
                return Err(StoreError::BatchOutOfOrder { previous: pair[0].0, index: pair[1].0 });
            }
        }
        let mut tx = self.begin().await?;
        let watermark = u64::try_from(tx.fetch_i64(&SELECT_WATERMARK).await?).unwrap_or(0);
        let mut outcome = BatchOutcome { watermark, ..BatchOutcome::default() };
        for (apply_index, effects) in entries {
            if *apply_index <= watermark {
                outcome.entries_skipped += 1;
                continue;
            }
            outcome.entries_written += 1;
            for (seq, effect) in effects.iter().enumerate() {
                outcome.rows_inserted += match effect {
                    Effect::CallEnded(record) => {
                        tx.execute(&INSERT_CALL, &call_args(*apply_index, seq, record)).await?
                    }
                    Effect::OperatorChanged(view) => {
                        tx.execute(&INSERT_OPERATOR_EVENT, &operator_event_args(*apply_index, seq, view)).await?
                    }
                    Effect::QueueLog(entry) => {
                        let mut rows = tx.execute(&INSERT_QUEUE_LOG, &queue_log_args(*apply_index, seq, entry)).await?;
                        if let Some(args) = callback_event_args(*apply_index, seq, entry) {
                            rows += tx.execute(&INSERT_CALLBACK_EVENT, &args).await?;
                        }
                        rows
                    }
                    Effect::Audit(record) => tx.execute(&INSERT_AUDIT, &audit_args(*apply_index, seq, record)).await?,
                    _ => 0,
                };
            }
            outcome.watermark = *apply_index;
        }
        if outcome.watermark > watermark {
            tx.execute(&UPDATE_WATERMARK, &[Arg::Int(int(outcome.watermark))]).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineup_core::{CallId, GateId, OperatorId, QueueId};

    #[test]
    fn queue_log_columns_follow_the_flat_line_and_keep_overflow_in_data5() {
        let entry = QueueLogEntry {
            at_ms: 1_732_250_000_123,
            call: Some(CallId::new("a-1.42")),
            queue: Some(QueueId::new("sales")),
            gate: Some(GateId::new("web")),
            agent: Some(OperatorId::new("alice")),
            verb: QueueLogVerb::BlindTransfer,
            data: ["1", "2", "3", "4", "5", "6|7"].iter().map(|s| s.to_string()).collect(),
        };
        let c = queue_log_columns(&entry);
        assert_eq!((c.callid.as_str(), c.queuename.as_str(), c.agent.as_str()), ("a-1.42", "sales", "alice"));
        assert_eq!(c.event, "BLINDTRANSFER");
        assert_eq!(c.data, ["1", "2", "3", "4", "5|6_7"].map(String::from));

        let bare = QueueLogEntry { data: vec![], call: None, queue: None, gate: None, ..entry };
        let c = queue_log_columns(&bare);
        assert_eq!((c.callid.as_str(), c.queuename.as_str()), ("NONE", "NONE"));
        assert_eq!(c.data, <[String; QUEUE_LOG_DATA_COLUMNS]>::default());
    }
}
