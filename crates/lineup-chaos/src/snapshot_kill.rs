//! kill -9 aimed at a node while it builds and writes a Raft snapshot. The harness asks the
//! node for a snapshot (`POST /v1/cluster/snapshot`, admin), a watcher thread reads the node's
//! log as it grows and, a delay from a small spread after the node logs `snapshot: building`,
//! sends SIGKILL. The node logs `snapshot: writing` (its bytes encoded, the redb transaction
//! begins) and `snapshot: written` (committed), so the log the dead process left says where the
//! kill landed; after the restart, `snapshot: restored` says which snapshot the node came back
//! from (the one before, when the write was cut; never a torn one, or it would not start).

use crate::faults::{Chaos, Stop};
use crate::procs::sigkill_pid;
use serde::Serialize;
use serde_json::Value;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant as StdInstant};
use tokio::time::Instant;

/// Bound on the node beginning to build the snapshot after it was asked for one.
pub const SNAPSHOT_BUILD_WAIT_MS: u64 = 5_000;
/// The watcher reads the node's log this often.
const WATCH_POLL_US: u64 = 100;
/// Delays from `snapshot: building` to the kill, one per kill in turn: some land while the
/// state is encoded, some while it is written, some after.
pub const KILL_DELAYS_US: [u64; 6] = [0, 250, 500, 1_000, 2_000, 4_000];

/// Where a kill landed, from the lines the node logged before it died.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// No snapshot had begun (the node did not start one within `SNAPSHOT_BUILD_WAIT_MS`).
    BeforeBuild,
    /// Encoding the state.
    Building,
    /// Its bytes going into the redb file: the transaction not yet committed (the restarted
    /// node restored the snapshot before it).
    Writing,
    /// Logged `writing` but not `written`, yet the restarted node restored this very
    /// snapshot: the commit was durable, the kill came before the line was logged.
    CommittedUnlogged,
    /// Written and committed.
    AfterWrite,
}

#[derive(Clone, Debug, Serialize)]
pub struct SnapshotKillRecord {
    pub what: String,
    pub site: u64,
    pub delay_us: u64,
    pub phase: Phase,
    /// The log index of the snapshot the kill cut into, and its size.
    pub snapshot_index: Option<u64>,
    pub snapshot_bytes: Option<u64>,
    /// The snapshot the restarted node restored (None: it started without one, or its log
    /// could not be read).
    pub restored_index: Option<u64>,
}

/// What one log line says about snapshots: its message and fields.
fn snapshot_line(line: &str) -> Option<(String, Value)> {
    let value: Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields").cloned().unwrap_or_else(|| value.clone());
    let message = fields.get("message")?.as_str()?.to_string();
    message.starts_with("snapshot: ").then_some((message, fields))
}

/// The phase the log text (what the node wrote since the snapshot was asked for) ends in,
/// with the index and size of the snapshot under way.
pub fn phase_of(text: &str) -> (Phase, Option<u64>, Option<u64>) {
    let (mut phase, mut index, mut bytes) = (Phase::BeforeBuild, None, None);
    for (message, fields) in text.lines().filter_map(snapshot_line) {
        let at = fields.get("snapshot_index").and_then(Value::as_u64);
        match message.as_str() {
            "snapshot: building" => (phase, index, bytes) = (Phase::Building, at, None),
            "snapshot: writing" => {
                (phase, index) = (Phase::Writing, at);
                bytes = fields.get("bytes").and_then(Value::as_u64);
            }
            "snapshot: written" => phase = Phase::AfterWrite,
            _ => {}
        }
    }
    (phase, index, bytes)
}

/// The index of the snapshot a node restored at start, from its log since then.
fn restored_index(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(snapshot_line)
        .find(|(message, _)| message == "snapshot: restored")
        .and_then(|(_, fields)| fields.get("snapshot_index").and_then(Value::as_u64))
}

pub fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        if file.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = file.read_to_string(&mut text);
        }
    }
    text
}

/// On a thread of its own (finer than the runtime's 1 ms timers): reads the log from `offset`
/// until the node logs `marker` (at most `limit_ms`), waits `delay_us`, and kills `pid`.
pub fn watch_and_kill(log: PathBuf, offset: u64, pid: u32, marker: &str, delay_us: u64, limit_ms: u64) {
    let deadline = StdInstant::now() + Duration::from_millis(limit_ms);
    let rounds = limit_ms * 1_000 / WATCH_POLL_US;
    let mut seen = String::new();
    let mut read = offset;
    for _ in 0..rounds {
        let more = read_from(&log, read);
        read += more.len() as u64;
        seen.push_str(&more);
        if seen.contains(marker) || StdInstant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_micros(WATCH_POLL_US));
    }
    std::thread::sleep(Duration::from_micros(delay_us));
    sigkill_pid(pid);
}

impl Chaos<'_> {
    /// Asks `site` for a snapshot and kills it -9 while it builds or writes it (see the module
    /// comment), keeps it down `RESTART_DOWN_MS`, starts it and measures it as any restart.
    pub(crate) async fn snapshot_kill(&mut self, site: u64, what: &str) {
        let delay_us = KILL_DELAYS_US[self.figures.snapshot_kills.len() % KILL_DELAYS_US.len()];
        let (Ok(layout), Some(pid)) = (self.nodes.site(site).cloned(), self.nodes.pid(site)) else {
            self.note(format!("skipped {what}: site {site} is not running")).await;
            self.figures.skipped.push(what.to_string());
            return;
        };
        let log_at_stop = self.log_at_stop(site).await;
        let down_from_ms = self.standin_now_ms().await;
        let offset = log_len(&layout.log);
        let watcher = std::thread::spawn({
            let log = layout.log.clone();
            move || watch_and_kill(log, offset, pid, "snapshot: building", delay_us, SNAPSHOT_BUILD_WAIT_MS)
        });
        let asked = self.api.post_admin(&layout.api_url(), "/v1/cluster/snapshot").await;
        let killed_at = Instant::now();
        // The watcher ends within its bound; joining it on the blocking pool keeps the runtime free.
        let _ = tokio::task::spawn_blocking(move || watcher.join()).await;
        let _ = self.nodes.kill(site);
        let (phase, snapshot_index, snapshot_bytes) = phase_of(&read_from(&layout.log, offset));
        self.note(format!(
            "{what}: snapshot asked for ({asked:?}), killed {delay_us} µs after it began: {phase:?} (index {snapshot_index:?}, {snapshot_bytes:?} bytes)"
        ))
        .await;
        let started_at = log_len(&layout.log);
        tokio::time::sleep_until(killed_at + Duration::from_millis(crate::faults::RESTART_DOWN_MS)).await;
        self.bring_back(site, Stop::Kill, what, log_at_stop, down_from_ms, "snapshot_kill").await;
        let restored_index = restored_index(&read_from(&layout.log, started_at));
        let phase = match phase {
            Phase::Writing if restored_index.is_some() && restored_index == snapshot_index => Phase::CommittedUnlogged,
            other => other,
        };
        self.note(format!("{what}: restarted from the snapshot at {restored_index:?}")).await;
        let record = SnapshotKillRecord {
            what: what.to_string(),
            site,
            delay_us,
            phase,
            snapshot_index,
            snapshot_bytes,
            restored_index,
        };
        self.figures.snapshot_kills.push(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(message: &str, index: u64) -> String {
        format!(r#"{{"level":"INFO","fields":{{"message":"{message}","snapshot_index":{index},"bytes":900}}}}"#)
    }

    #[test]
    fn the_last_snapshot_line_before_the_kill_says_where_it_landed() {
        assert_eq!(phase_of("not json\n").0, Phase::BeforeBuild);
        let building = line("snapshot: building", 70);
        assert_eq!(phase_of(&building), (Phase::Building, Some(70), None));
        let writing = format!("{building}\n{}\n", line("snapshot: writing", 70));
        assert_eq!(phase_of(&writing), (Phase::Writing, Some(70), Some(900)));
        let written = format!("{writing}{}\n", line("snapshot: written", 70));
        assert_eq!(phase_of(&written).0, Phase::AfterWrite);
        assert_eq!(restored_index(&line("snapshot: restored", 64)), Some(64));
    }
}
