//! Callers who found this site's node down. The deploy dialplan's hangup handler
//! (`[lineup-missed]` in `deploy/asterisk/extensions.conf`) writes one AstDB entry per such
//! caller with every field in its key and the value `1`:
//! `lineup-missed/<queue>:<gate>:<arrival epoch>:<hangup epoch>:<abandoned|fallback>:<caller
//! number>:<uniqueid>`. The uniqueid goes last, so a `:` in Asterisk's system name (part of a
//! uniqueid) cannot move the other fields; the caller number is filtered to `0-9+*#` by the
//! dialplan, and queue and gate are ids, so no key holds `/` or `,`.
//!
//! After each reconcile the controller asks for the keys (`Action::ReadMissedRecords`). ARI
//! evaluates a dialplan function only on a channel (`GET /channels/{id}/variable`), and only
//! the functions Asterisk allows from an HTTP thread: `DB_KEYS` is, `DB()` is not. So the
//! driver creates a short-lived reader channel (`Local/s@lineup-missed-reader` into the
//! `lineup` application with the argument `missed-reader`), reads
//! `DB_KEYS(lineup-missed)` on it and hangs it up. The controller proposes one
//! `MissedWhileDown` per key, and deletes the entry (`AriRequest::DeleteMissedRecord`, a
//! `POST /asterisk/variable` writing `DB_DELETE(lineup-missed/KEY)`, a write Asterisk allows
//! from ARI) only once its command has a committed result.
//!
//! The command id is `(missed_origin, serial from the uniqueid)`, so the same record read
//! twice (a second reconcile, a restarted node) is the same command to the core; and the
//! core refuses a call id it knows, so a caller who got into Lineup after all is not booked
//! twice.

use super::output::{Pending, Purpose};
use super::proposals::never_committed;
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
/// `LINEUP_RESULT` of a caller whose entry never committed (no quorum heard through all its
/// retries): the deploy dialplan sends such a caller to the box's own fallback, and its
/// handler writes a missed-caller record, as for a caller who found the node down.
pub const UNAVAILABLE_RESULT: &str = "UNAVAILABLE";
/// While callers handed to the box's fallback may still be there, the records are read this
/// often: each such caller's record is written when they hang up in the fallback, and no
/// event tells the site (the channel has left its Stasis application).
pub const MISSED_RECORDS_POLL_INTERVAL_MS: u64 = 60_000;
/// How long after the last caller handed to the fallback the records are still polled (a
/// caller in the box's own queue rarely waits longer).
pub const FALLBACK_WATCH_MS: u64 = 3_600_000;

/// Polling of the missed-caller records after callers were handed to the fallback.
#[derive(Clone, Copy, Debug)]
pub(super) struct FallbackWatch {
    pub(super) until_ms: u64,
    pub(super) last_read_ms: u64,
}

/// Most records handled per reconcile (read, proposed, deleted); the rest wait for the next.
pub const MISSED_RECORDS_PER_RECONCILE_MAX: usize = 1_000;
/// Longest caller number a record may carry (the dialplan cuts it to this length).
pub const MISSED_CALLER_NUMBER_MAX_CHARS: usize = 32;
/// Fields of a record's key: queue, gate, arrival, hangup, end, caller number, uniqueid.
pub const MISSED_KEY_FIELDS_COUNT: usize = 7;
/// The endpoint of the reader channel: the deploy dialplan's `[lineup-missed-reader]`,
/// which only hangs up (the channel is never dialed; it only carries the function reads).
pub const MISSED_READER_ENDPOINT: &str = "Local/s@lineup-missed-reader";
/// The id of every reader channel starts with this, so a reconcile knows one left behind.
pub const MISSED_READER_CHANNEL_ID_PREFIX: &str = "lineup-missed-reader-";

/// The function read on the reader channel: the family's keys, comma-separated (a comma in a
/// key escaped with `\`).
pub fn missed_keys_variable() -> String {
    format!("DB_KEYS({MISSED_FAMILY})")
}
/// The function `POST /asterisk/variable` writes to delete one record.
pub fn missed_delete_variable(key: &str) -> String {
    format!("DB_DELETE({MISSED_FAMILY}/{key})")
}
/// A reader channel's id, unique per read: the time of the read and a sequence number.
pub fn missed_reader_channel_id(now_ms: u64, sequence: u64) -> ChannelId {
    ChannelId::new(format!("{MISSED_READER_CHANNEL_ID_PREFIX}{now_ms}-{sequence}")).expect("digits and the prefix")
}
/// Whether a channel is a missed-caller reader (of this run or of one that died mid-read).
pub fn is_missed_reader(channel: &ChannelId) -> bool {
    channel.as_str().starts_with(MISSED_READER_CHANNEL_ID_PREFIX)
}
/// Splits a `DB_KEYS` answer into keys: commas separate, `\,` is a comma inside a key (and
/// `\\` a backslash), as Asterisk escapes them. Empty keys are skipped.
pub fn split_db_keys(answer: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut key = String::new();
    let mut characters = answer.chars();
    while let Some(c) = characters.next() {
        match c {
            '\\' => key.extend(characters.next()),
            ',' => keys.push(std::mem::take(&mut key)),
            other => key.push(other),
        }
    }
    keys.push(key);
    keys.retain(|key| !key.is_empty());
    keys
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
    let digits = !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit());
    let seconds: u64 = field.parse().ok().filter(|_| digits).ok_or_else(|| format!("\"{field}\" is not an epoch"))?;
    seconds.checked_mul(1000).ok_or_else(|| format!("\"{field}\" is out of range"))
}

/// A record's key taken apart: the uniqueid (the caller's channel id) and its fields.
struct MissedKey<'a> {
    uniqueid: &'a str,
    queue: &'a str,
    gate: &'a str,
    arrived: &'a str,
    hung_up: &'a str,
    end: &'a str,
    number: &'a str,
}

/// Splits a key into its `MISSED_KEY_FIELDS_COUNT` fields (the last, the uniqueid, keeps any
/// `:` it has).
fn split_key(key: &str) -> Result<MissedKey<'_>, String> {
    let fields: Vec<&str> = key.splitn(MISSED_KEY_FIELDS_COUNT, ':').collect();
    let [queue, gate, arrived, hung_up, end, number, uniqueid] = fields.as_slice() else {
        return Err(format!("{} fields where {MISSED_KEY_FIELDS_COUNT} were expected", fields.len()));
    };
    Ok(MissedKey { uniqueid, queue, gate, arrived, hung_up, end, number })
}

/// Parses the fields of one record strictly; the error says what is wrong with it.
fn parse_record(call: CallId, site: SiteId, key: &MissedKey<'_>) -> Result<MissedCall, String> {
    let queue = QueueId::new(key.queue);
    queue.validate().map_err(|e| format!("queue: {e}"))?;
    let gate = match key.gate {
        "" => None,
        g => {
            let gate = GateId::new(g);
            gate.validate().map_err(|e| format!("gate: {e}"))?;
            Some(gate)
        }
    };
    let fallback = match key.end {
        "abandoned" => false,
        "fallback" => true,
        other => return Err(format!("\"{other}\" is neither abandoned nor fallback")),
    };
    // The dialplan wrote only these characters; anything else is not its record.
    let number_ok = |c: char| c.is_ascii_digit() || matches!(c, '+' | '*' | '#');
    if key.number.chars().count() > MISSED_CALLER_NUMBER_MAX_CHARS || !key.number.chars().all(number_ok) {
        return Err(format!("caller number is not at most {MISSED_CALLER_NUMBER_MAX_CHARS} of 0-9 + * #"));
    }
    let (entered_at_ms, ended_at_ms) = (epoch_ms(key.arrived)?, epoch_ms(key.hung_up)?);
    Ok(MissedCall {
        call,
        queue,
        gate,
        site,
        caller_number: key.number.to_string(),
        entered_at_ms,
        ended_at_ms,
        fallback,
    })
}

impl SiteController {
    /// A caller was handed to the box's fallback: read the records every
    /// `MISSED_RECORDS_POLL_INTERVAL_MS` for `FALLBACK_WATCH_MS` from now.
    pub(super) fn watch_fallback(&mut self) {
        let last_read_ms = self.fallback_watch.map_or(self.now_ms, |w| w.last_read_ms);
        self.fallback_watch = Some(FallbackWatch { until_ms: self.now_ms + FALLBACK_WATCH_MS, last_read_ms });
    }

    /// On each tick: the records read again when a poll is due, the watch ended when over.
    pub(super) fn poll_fallback_records(&mut self) {
        let Some(watch) = self.fallback_watch else { return };
        if self.now_ms < watch.last_read_ms + MISSED_RECORDS_POLL_INTERVAL_MS {
            return;
        }
        self.fallback_watch =
            (self.now_ms < watch.until_ms).then_some(FallbackWatch { last_read_ms: self.now_ms, ..watch });
        self.ask_for_missed_records();
    }

    /// Asked after every reconcile: the driver reads the records and answers
    /// `Input::MissedRecords`.
    pub(super) fn ask_for_missed_records(&mut self) {
        let room = MISSED_RECORDS_PER_RECONCILE_MAX.saturating_sub(self.missed_in_flight.len());
        if room > 0 {
            self.out.push(Action::ReadMissedRecords { max: room });
        }
    }

    /// The record keys the driver read: each becomes a proposal, or is deleted with the
    /// reason it cannot be one. Records already being handled are skipped.
    pub(super) fn on_missed_records(&mut self, keys: Vec<String>) {
        let room = MISSED_RECORDS_PER_RECONCILE_MAX.saturating_sub(self.missed_in_flight.len());
        let fresh: Vec<String> =
            keys.into_iter().filter(|key| !self.missed_in_flight.contains(key)).take(room).collect();
        for key in fresh {
            self.missed_in_flight.insert(key.clone());
            let parsed = split_key(&key).and_then(|fields| {
                let channel = ChannelId::new(fields.uniqueid).map_err(|e| format!("uniqueid: {e}"))?;
                let serial =
                    serial_of(fields.uniqueid).ok_or_else(|| "uniqueid is not seconds.sequence".to_string())?;
                let missed = parse_record(self.call_id_for(&channel), self.cfg.site, &fields)?;
                Ok((missed, serial))
            });
            match parsed {
                Ok((missed, serial)) => self.propose_missed(key, missed, serial),
                Err(reason) => {
                    let warning = format!("unreadable record: {reason}");
                    self.delete_missed(key, Some(warning))
                }
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
        if never_committed(result) {
            self.missed_in_flight.remove(&key);
            return;
        }
        let warning = match result {
            Ok(_) | Err(CoreError::DuplicateCall(_)) => None,
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

    fn parse(key: &str) -> Result<MissedCall, String> {
        let fields = split_key(key)?;
        parse_record(CallId::new(fields.uniqueid), SiteId(1), &fields)
    }

    #[test]
    fn records_parse_strictly() {
        let m = parse("sales:main:1700000000:1700000017:abandoned:+1555*#:1700000000.3").unwrap();
        assert_eq!((m.entered_at_ms, m.ended_at_ms, m.fallback), (1_700_000_000_000, 1_700_000_017_000, false));
        assert_eq!((m.gate, m.caller_number.as_str()), (Some(GateId::new("main")), "+1555*#"));
        assert_eq!(m.call, CallId::new("1700000000.3"));
        let m = parse("sales::1:2:fallback::pbx:a-1700000000.3").unwrap();
        assert_eq!((m.gate, m.fallback, m.caller_number.as_str()), (None, true, ""));
        assert_eq!(m.call, CallId::new("pbx:a-1700000000.3"), "a ':' in the uniqueid stays in it");
        let long_number = "1".repeat(MISSED_CALLER_NUMBER_MAX_CHARS + 1);
        for bad in [
            "".to_string(),
            "sales:main:1:2:abandoned:1700000000.3".to_string(),
            "sales:main:x:2:abandoned::1700000000.3".to_string(),
            "sales:main:+1:2:abandoned::1700000000.3".to_string(),
            "sales:main:1:2:left::1700000000.3".to_string(),
            "sa les::1:2:fallback::1700000000.3".to_string(),
            "sales::1:2:fallback:12a:1700000000.3".to_string(),
            format!("sales::1:2:fallback:{long_number}:1700000000.3"),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn db_keys_answers_split_on_unescaped_commas() {
        assert_eq!(split_db_keys(""), Vec::<String>::new());
        assert_eq!(split_db_keys("a:1,b:2"), ["a:1", "b:2"]);
        assert_eq!(split_db_keys("a\\,b,c\\\\,d"), ["a,b", "c\\", "d"]);
    }

    #[test]
    fn reader_channels_are_recognised_by_their_id() {
        let reader = missed_reader_channel_id(1_700_000_000_000, 7);
        assert!(is_missed_reader(&reader));
        assert!(!is_missed_reader(&ChannelId::new("1700000000.3").unwrap()));
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
