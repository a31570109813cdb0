//! The island journal's redb file (lineup-cluster `island/journal.rs`) as an island's node
//! finds it after a crash or a bad copy: truncated or damaged. A damaged journal is an
//! error, never a panic, and never another history.

use crate::input::ByteReader;
use crate::rigs::{configured_routing, EPOCH_MS, SITE};
use crate::scratch::scratch_dir;
use lineup_cluster::island::IslandJournal;
use lineup_core::island::IslandEpoch;
use lineup_core::{Command, CommandBody, CommandId, OperatorId, SiteId};

/// Damaged bytes per input, at most.
const JOURNAL_DAMAGES_MAX: usize = 64;
/// Origin of the island's commands in the base journal.
const ISLAND_ORIGIN: u64 = 1;
/// Members of the cluster the base journal's island was cut from.
const MEMBERS: [SiteId; 3] = [SiteId(1), SiteId(2), SiteId(3)];

/// The intact journal the damage is applied to: one epoch open at `SITE`, a few batches.
struct Base {
    file: Vec<u8>,
    epoch: IslandEpoch,
    fork: Vec<u8>,
    entries: Vec<Vec<Command>>,
}

fn command(serial: u64, body: CommandBody) -> Command {
    Command { id: CommandId { origin: ISLAND_ORIGIN, serial }, at_ms: EPOCH_MS + serial * 1_000, body }
}

fn base_batches() -> Vec<Vec<Command>> {
    vec![
        vec![command(1, CommandBody::Tick { now_ms: EPOCH_MS + 1_000 })],
        vec![
            command(2, CommandBody::Tick { now_ms: EPOCH_MS + 2_000 }),
            command(
                3,
                CommandBody::OperatorLogin {
                    operator: OperatorId::new("alice"),
                    site: SITE,
                    channel: Some("a".into()),
                },
            ),
        ],
        vec![command(4, CommandBody::Tick { now_ms: EPOCH_MS + 4_000 })],
    ]
}

fn with_base<T>(f: impl FnOnce(&Base) -> T) -> T {
    thread_local! {
        static BASE: Base = {
            let path = scratch_dir().join("island-base.redb");
            let _ = std::fs::remove_file(&path);
            let (global, index) = configured_routing();
            let epoch = IslandEpoch { site: SITE, seq: 1, fork_index: index };
            let fork = global.fork_island(epoch, &MEMBERS, EPOCH_MS).snapshot_bytes();
            let entries = base_batches();
            {
                let journal = IslandJournal::open(&path).expect("a fresh journal opens");
                journal.begin(epoch, &fork).expect("the epoch begins");
                for batch in &entries {
                    journal.append(batch).expect("a batch is journaled");
                }
                journal.mark_merge_step("begin", 1).expect("a merge step is marked");
            }
            let file = std::fs::read(&path).expect("the journal file reads");
            Base { file, epoch, fork, entries }
        };
    }
    BASE.with(f)
}

/// Input: a length to cut the intact file to (if the first byte says so), then up to 64
/// damaged bytes (offset, xor). The damaged file is opened and restored; what restores is
/// the intact journal's epoch, fork and a prefix of its batches (redb may fall back to an
/// earlier commit), and it replays. Then a batch is appended and the epoch closed, which
/// may fail but must not panic.
pub fn island_journal(data: &[u8]) {
    let mut input = ByteReader::new(data);
    let mut bytes = with_base(|base| base.file.clone());
    if input.bool() {
        let keep = input.u32() as usize % (bytes.len() + 1);
        bytes.truncate(keep);
    }
    for _ in 0..JOURNAL_DAMAGES_MAX {
        if input.is_empty() || bytes.is_empty() {
            break;
        }
        let at = input.u32() as usize % bytes.len();
        bytes[at] ^= input.u8();
    }
    let path = scratch_dir().join("island-case.redb");
    std::fs::write(&path, &bytes).expect("scratch journal written");
    let Ok(journal) = IslandJournal::open(&path) else { return };
    if let Ok(Some(restored)) = journal.restore() {
        with_base(|base| {
            assert_eq!(restored.epoch, base.epoch, "a restored epoch is the one journaled");
            assert_eq!(restored.fork.snapshot_bytes(), base.fork, "a restored fork is the one journaled");
            assert!(restored.entries.len() <= base.entries.len(), "more batches than journaled");
            for (j, (entry, batch)) in restored.entries.iter().enumerate() {
                assert_eq!((*entry, batch), (j as u64, &base.entries[j]), "a restored batch is the one journaled");
            }
        });
        assert!(restored.replay().is_ok(), "journaled batches replay");
    }
    let _ = journal.append(&[command(5, CommandBody::Tick { now_ms: EPOCH_MS + 5_000 })]);
    let _ = journal.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_intact_journal_restores_every_batch_so_damage_has_something_to_break() {
        let path = scratch_dir().join("island-intact.redb");
        std::fs::write(&path, with_base(|base| base.file.clone())).unwrap();
        let restored = IslandJournal::open(&path).unwrap().restore().unwrap().expect("the epoch is open");
        assert_eq!(restored.entries.len(), base_batches().len());
        assert_eq!(restored.merge.get("begin"), Some(&1));
        restored.replay().expect("the batches replay");
        island_journal(&[0]);
    }
}
