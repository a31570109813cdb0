//! Callers who found this site's node down. The deploy dialplan's hangup handler
//! (`[lineup-missed]` in `deploy/asterisk/extensions.conf`) writes one AstDB record per such
//! caller, `lineup-missed/<uniqueid>` = `queue,gate,arrival epoch,hangup epoch,
//! abandoned|fallback,caller number`. After each reconcile the controller asks for them
//! (`Action::ReadMissedRecords`), proposes one `MissedWhileDown` per record, and deletes a
//! record (`AriRequest::DeleteMissedRecord`) only once its command has a committed result.
//!
//! The command id is `(missed_origin, serial from the uniqueid)`, so the same record read
//! twice (a second reconcile, a restarted node) is the same command to the core; and the
//! core refuses a call id it knows, so a caller who got into Lineup after all is not booked
//! twice.

use super::output::{Pending, Purpose};
use super::proposals::NOT_COMMITTED;
use super::SiteController;
use crate::io::{Action, AriRequest};
use lineup_ari::ChannelId;
use lineup_core::{
    CallId, Command, CommandBody, CommandId, CommandResult, CoreError, GateId, MissedCall, QueueId, SiteId,
};

/// The AstDB family the deploy dialplan writes missed callers to.
pub const MISSED_FAMILY: &str = "lineup-missed";
/// The channel variable the site sets to `1` once a caller is in line
/// (`AriRequest::MarkQueued`); the deploy dialplan's handler writes no record for such a
/// caller.
pub const QUEUED_VARIABLE: &str = "LINEUP_QUEUED";
/// Most records handled per reconcile (read, proposed, deleted); the rest wait for the next.
pub const MISSED_RECORDS_PER_RECONCILE_MAX: usize = 1_000;
/// Longest caller number kept from a record (longer ones are cut).
pub const MISSED_CALLER_NUMBER_MAX_CHARS: usize = 64;

/// `GET /asterisk/variable` names: the family's keys, one record, one record read and deleted.
pub fn missed_keys_variable() -> String {
    format!("DB_KEYS({MISSED_FAMILY})")
}
pub fn missed_value_variable(key: &str) -> String {
    format!("DB({MISSED_FAMILY}/{key})")
}
pub fn missed_delete_variable(key: &str) -> String {
    format!("DB_DELETE({MISSED_FAMILY}/{key})")
}

/// The `CommandId::origin` of a site's missed-caller reports: `site << 32 | u32::MAX`, the
/// node-origin form with an incarnation no run reaches, so its serials (from uniqueids)
/// never meet site control's or a node run's.
pub fn missed_origin(site: SiteId) -> u64 {
    (site.0 << 32) | u64::from(u32::MAX)
}

/// A uniqueid's serial: `[system name-]seconds.sequence` → `seconds << 32 | sequence`, so
/// later channels have larger serials (the core's dedup window keeps the largest).
fn serial_of(uniqueid: &str) -> Option<u64> {
    let tail = uniqueid.rsplit('-').next()?;
    let (seconds, sequence) = tail.split_once('.')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(seconds) || !all_digits(sequence) {
        return None;
    }
    let seconds: u32 = seconds.parse().ok()?;
    let sequence: u32 = sequence.parse().ok()?;
    Some((u64::from(seconds) << 32) | u64::from(sequence))
}

/// Seconds since the epoch, as the dialplan's `${EPOCH}` writes them, in ms.
fn epoch_ms(field: &str) -> Result<u64, String> {
    let seconds: u64 = field.parse().map_err(|_| format!("{field:?} is not an epoch"))?;
    seconds.checked_mul(1000).ok_or_else(|| format!("{field:?} is out of range"))
}

/// Parses one record strictly; the error says what is wrong with it.
fn parse_record(call: CallId, site: SiteId, value: &str) -> Result<MissedCall, String> {
    let fields: Vec<&str> = value.splitn(6, ',').collect();
    let [queue, gate, arrived, hung_up, end, number] = fields.as_slice() else {
        return Err(format!("{} fields where 6 were expected", fields.len()));
    };
    let queue = QueueId::new(*queue);
    queue.validate().map_err(|e| format!("queue: {e}"))?;
    let gate = match *gate {
        "" => None,
        g => {
            let gate = GateId::new(g);
            gate.validate().map_err(|e| format!("gate: {e}"))?;
            Some(gate)
        }
    };
    let fallback = match *end {
        "abandoned" => false,
        "fallback" => true,
        other => return Err(format!("{other:?} is neither abandoned nor fallback")),
    };
    // The caller id is the caller's to choose: only what history can hold is kept.
    let caller_number: String =
        number.chars().filter(|c| !c.is_control() && *c != '|').take(MISSED_CALLER_NUMBER_MAX_CHARS).collect();
    let (entered_at_ms, ended_at_ms) = (epoch_ms(arrived)?, epoch_ms(hung_up)?);
    Ok(MissedCall { call, queue, gate, site, caller_number, entered_at_ms, ended_at_ms, fallback })
}

impl SiteController {
    /// Asked after every reconcile: the driver reads the records and answers
    /// `Input::MissedRecords`.
    pub(super) fn ask_for_missed_records(&mut self) {
        let room = MISSED_RECORDS_PER_RECONCILE_MAX.saturating_sub(self.missed_in_flight.len());
        if room > 0 {
            self.out.push(Action::ReadMissedRecords { max: room });
        }
    }

    /// The records the driver read: each becomes a proposal, or is deleted with the reason
    /// it cannot be one. Records already being handled are skipped.
    pub(super) fn on_missed_records(&mut self, records: Vec<(String, String)>) {
        let room = MISSED_RECORDS_PER_RECONCILE_MAX.saturating_sub(self.missed_in_flight.len());
        let fresh: Vec<(String, String)> =
            records.into_iter().filter(|(key, _)| !self.missed_in_flight.contains(key)).take(room).collect();
        for (key, value) in fresh {
            self.missed_in_flight.insert(key.clone());
            let parsed = ChannelId::new(key.as_str())
                .map_err(|e| format!("key: {e}"))
                .and_then(|channel| {
                    serial_of(&key).ok_or_else(|| "key is not a uniqueid".to_string()).map(|s| (channel, s))
                })
                .and_then(|(channel, serial)| {
                    parse_record(self.call_id_for(&channel), self.cfg.site, &value).map(|m| (m, serial))
                });
            match parsed {
                Ok((missed, serial)) => self.propose_missed(key, missed, serial),
                Err(reason) => self.delete_missed(key, Some(format!("unreadable record {value:?}: {reason}"))),
            }
        }
    }

    fn propose_missed(&mut self, key: String, missed: MissedCall, serial: u64) {
        let id = CommandId { origin: missed_origin(self.cfg.site), serial };
        let command = Command { id, at_ms: self.now_ms, body: CommandBody::MissedWhileDown(missed) };
        let token = self.token();
        let purpose = Purpose::Missed { key };
        self.pending
            .insert(token, Pending::Proposal { command: command.clone(), purpose, attempts: 0, retry_at_ms: None });
        self.out.push(Action::Propose { token, command });
    }

    /// A record's command has its result: committed (booked, or refused as known or bad), so
    /// the record goes; never committed, so it stays for the next reconcile.
    pub(super) fn on_missed_result(&mut self, key: String, result: &CommandResult) {
        let warning = match result {
            Ok(_) | Err(CoreError::DuplicateCall(_)) => None,
            Err(CoreError::InvalidState { what, .. }) if what == NOT_COMMITTED => {
                self.missed_in_flight.remove(&key);
                return;
            }
            Err(refusal) => Some(format!("refused by the cluster: {refusal}")),
        };
        self.delete_missed(key, warning);
    }

    fn delete_missed(&mut self, key: String, warning: Option<String>) {
        if warning.is_some() {
            self.counters.missed_records_bad += 1;
        } else {
            self.counters.missed_records_booked += 1;
        }
        self.missed_in_flight.remove(&key);
        self.ari(AriRequest::DeleteMissedRecord { key, warning });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_strictly() {
        let call = CallId::new("1-1700000000.3");
        let m = parse_record(call.clone(), SiteId(1), "sales,main,1700000000,1700000017,abandoned,+1 555").unwrap();
        assert_eq!((m.entered_at_ms, m.ended_at_ms, m.fallback), (1_700_000_000_000, 1_700_000_017_000, false));
        assert_eq!((m.gate, m.caller_number.as_str()), (Some(GateId::new("main")), "+1 555"));
        let m = parse_record(call.clone(), SiteId(1), "sales,,1,2,fallback,a,b|c").unwrap();
        assert_eq!((m.gate, m.fallback, m.caller_number.as_str()), (None, true, "a,bc"));
        for bad in [
            "",
            "sales,main,1,2,abandoned",
            "sales,main,x,2,abandoned,",
            "sales,main,1,2,left,",
            "sa les,,1,2,fallback,",
        ] {
            assert!(parse_record(call.clone(), SiteId(1), bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serials_follow_uniqueids() {
        assert_eq!(serial_of("1700000000.3"), Some((1_700_000_000 << 32) | 3));
        assert_eq!(serial_of("pbx-a-1700000000.3"), serial_of("1700000000.3"));
        assert!(serial_of("1700000000.4") > serial_of("1700000000.3"));
        for bad in ["", "17", "1.x", ".3", "99999999999.1"] {
            assert_eq!(serial_of(bad), None, "{bad:?}");
        }
    }
}
