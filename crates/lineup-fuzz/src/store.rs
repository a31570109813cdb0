//! Files a node finds on its disk after a crash, a full disk or a bad copy: the queue_log
//! file with its sidecar, and the outbox's redb file, torn, truncated or damaged.

use crate::input::ByteReader;
use crate::rigs::EPOCH_MS;
use crate::runtime::block_on;
use crate::scratch::scratch_dir;
use lineup_core::{CallId, Effect, QueueId, QueueLogEntry, QueueLogVerb};
use lineup_store::{AppliedEntry, Outbox, OutboxSink, QueueLogFile, StoreError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The outbox's sink in these targets.
const SINK: &str = "history";
/// Damaged bytes per outbox input, at most.
const OUTBOX_DAMAGES_MAX: usize = 64;
/// Entries written into the intact outbox file the damage is applied to.
const BASE_OUTBOX_ENTRIES: u64 = 3;
/// How long a drainer is watched, in polls of `DRAIN_POLL_MS`.
const DRAIN_POLLS_MAX: u32 = 200;
const DRAIN_POLL_MS: u64 = 1;

fn queue_log_line(at_ms: u64) -> Effect {
    Effect::QueueLog(QueueLogEntry {
        at_ms,
        call: Some(CallId::new("1-1795325224.1")),
        queue: Some(QueueId::new("sales")),
        gate: None,
        agent: None,
        verb: QueueLogVerb::EnterQueue,
        data: vec![String::new(), "5551234".into(), "1".into()],
    })
}

/// Input: where the file's bytes end (u16), then the file's bytes and the sidecar's text.
/// The file is opened (a half-recorded append cut off), one entry appended, and reopened:
/// the entry's line is the file's last and its index the one remembered.
pub fn queue_log_recovery(data: &[u8]) {
    let mut input = ByteReader::new(data);
    let split = usize::from(input.u16());
    let rest = input.rest();
    let (file, sidecar) = rest.split_at(split.min(rest.len()));
    let dir = scratch_dir();
    let path = dir.join("queue_log");
    let sidecar_path = dir.join(format!("queue_log{}", lineup_store::queue_log::SIDECAR_SUFFIX));
    std::fs::write(&path, file).expect("scratch file written");
    if sidecar.is_empty() {
        let _ = std::fs::remove_file(&sidecar_path);
    } else {
        std::fs::write(&sidecar_path, sidecar).expect("scratch sidecar written");
    }
    let Ok(mut log) = QueueLogFile::open(&path) else { return };
    let Some(next) = log.last_index().checked_add(1) else { return };
    let line = queue_log_line(EPOCH_MS);
    log.append(&[(next, vec![line.clone()])]).expect("an append to a scratch file succeeds");
    drop(log);
    let reopened = QueueLogFile::open(&path).expect("the file reopens after an append");
    assert_eq!(reopened.last_index(), next, "the appended index is remembered");
    let Effect::QueueLog(entry) = line else { unreachable!("built as a queue_log line") };
    let written = std::fs::read(&path).expect("the file reads");
    assert!(written.ends_with(format!("{}\n", entry.to_line()).as_bytes()), "the appended line ends the file");
}

fn base_outbox() -> Vec<u8> {
    thread_local! {
        static BASE: Vec<u8> = {
            let path = scratch_dir().join("outbox-base.redb");
            let _ = std::fs::remove_file(&path);
            {
                let outbox = Outbox::open(&path, &[SINK]).expect("a fresh outbox opens");
                for index in 1..=BASE_OUTBOX_ENTRIES {
                    outbox.submit(index * 256, vec![queue_log_line(EPOCH_MS + index)]).expect("submit");
                }
            }
            std::fs::read(&path).expect("the outbox file reads")
        };
    }
    BASE.with(Clone::clone)
}

/// Input: a length to cut the intact file to (if the first byte says so), then up to 64
/// damaged bytes (offset, xor). The damaged file is opened; if it opens, its lag is read,
/// an entry submitted and everything drained: entries come out in increasing index order.
pub fn outbox_recovery(data: &[u8]) {
    let mut input = ByteReader::new(data);
    let mut bytes = base_outbox();
    if input.bool() {
        let keep = input.u32() as usize % (bytes.len() + 1);
        bytes.truncate(keep);
    }
    for _ in 0..OUTBOX_DAMAGES_MAX {
        if input.is_empty() || bytes.is_empty() {
            break;
        }
        let at = input.u32() as usize % bytes.len();
        bytes[at] ^= input.u8();
    }
    let path = scratch_dir().join("outbox-case.redb");
    std::fs::write(&path, &bytes).expect("scratch outbox written");
    let Ok(outbox) = Outbox::open(&path, &[SINK]) else { return };
    let Ok(lag) = outbox.lag() else { return };
    let next = lag.newest_index.unwrap_or(0).max(BASE_OUTBOX_ENTRIES * 256) + 256;
    let _ = outbox.submit(next, vec![queue_log_line(EPOCH_MS + next)]);
    drain(&outbox);
}

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<u64>>>);

impl OutboxSink for Collect {
    async fn deliver(&mut self, entries: &[AppliedEntry]) -> Result<(), StoreError> {
        let mut seen = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.extend(entries.iter().map(|(index, _)| *index));
        Ok(())
    }
}

fn drain(outbox: &Outbox) {
    let sink = Collect::default();
    let seen = Arc::clone(&sink.0);
    block_on(async {
        let Ok(drainer) = outbox.spawn_drainer(SINK, sink) else { return };
        for _ in 0..DRAIN_POLLS_MAX {
            let status = drainer.status();
            let empty = outbox.lag().map(|lag| lag.entries == 0 && lag.pending == 0).unwrap_or(true);
            if status.consecutive_failures > 0 || empty {
                break;
            }
            tokio::time::sleep(Duration::from_millis(DRAIN_POLL_MS)).await;
        }
        drainer.stop().await;
    });
    let seen = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    assert!(seen.windows(2).all(|pair| pair[0] < pair[1]), "drained out of order: {seen:?}");
}
