//! The island journal (docs/rfcs/island-mode.md §2.2): batches journaled by an island survive
//! a restart and replay into the fork that was live; epochs open and close one at a time;
//! refused batches change nothing; a damaged file is an error, never a panic.

mod common;

use common::*;
use lineup_cluster::island::{
    apply_entry, IslandJournal, JournalState, ISLAND_ENTRY_COMMANDS_MAX, ISLAND_JOURNAL_ENTRIES_MAX,
    ISLAND_JOURNAL_FILE,
};
use lineup_cluster::ClusterError;
use lineup_core::island::fork_apply_index;
use lineup_core::*;

const ISLAND: u64 = 1;
const MEMBERS: [SiteId; 3] = [SiteId(1), SiteId(2), SiteId(3)];
const START_MS: u64 = 1_000_000;
/// Damage positions tried per file: spread over the whole file.
const DAMAGE_POSITIONS: usize = 24;

/// Stamps commands of one origin with increasing serials.
struct Commands {
    serial: u64,
    at_ms: u64,
}

impl Commands {
    fn new() -> Self {
        Commands { serial: 0, at_ms: START_MS }
    }

    fn next(&mut self, body: CommandBody) -> Command {
        self.serial += 1;
        Command { id: CommandId { origin: ISLAND, serial: self.serial }, at_ms: self.at_ms, body }
    }

    fn tick(&mut self, advance_ms: u64) -> Command {
        self.at_ms += advance_ms;
        let now_ms = self.at_ms;
        self.next(CommandBody::Tick { now_ms })
    }
}

/// A global state with callers and operators at the island's site and elsewhere, and its
/// fork at the island's site with the snapshot bytes the journal begins from.
fn forked(commands: &mut Commands, seq: u64) -> (IslandEpoch, Routing) {
    let mut global = Routing::new();
    let bodies = vec![
        CommandBody::Tick { now_ms: START_MS },
        queue_config("sales"),
        operator_config("home", ISLAND, "sales"),
        operator_config("spare", ISLAND, "sales"),
        operator_config("away", 2, "sales"),
        login("away", 2),
        enqueue("c-before", "sales", ISLAND),
        enqueue("c-away", "sales", 2),
    ];
    let mut index = 0;
    for body in bodies {
        index += 256;
        let applied = global.apply(index, &commands.next(body));
        applied.result.expect("the global state's setup applies");
    }
    let epoch = IslandEpoch { site: SiteId(ISLAND), seq, fork_index: index / 256 };
    (epoch, global.fork_island(epoch, &MEMBERS, START_MS))
}

/// Applies `batch` as journal entry `entry` directly through the core (not through the
/// journal's helper), returning its effects.
fn apply_live(fork: &mut Routing, entry: u64, batch: &[Command]) -> Vec<Effect> {
    let mut effects = Vec::new();
    for (position, command) in batch.iter().enumerate() {
        let index = fork_apply_index(entry, position as u64).expect("in the band");
        effects.extend(fork.apply(index, command).effects);
    }
    fork.check_invariants().expect("the live fork keeps its invariants");
    effects
}

/// An island's day in batches, decided as the island goes (offers answered with their
/// fences), journaled and applied live. Answers the batches and each one's live effects.
fn island_day_with_effects(
    journal: &IslandJournal,
    commands: &mut Commands,
    fork: &mut Routing,
) -> (Vec<Vec<Command>>, Vec<Vec<Effect>>) {
    let mut journaled = Vec::new();
    let mut live_effects = Vec::new();
    let mut offered = Vec::new();
    let mut step = |batch: Vec<Command>, fork: &mut Routing| -> Vec<Effect> {
        let entry = journal.append(&batch).expect("a batch is journaled");
        assert_eq!(entry, journaled.len() as u64, "entries are numbered 0, 1, … in order");
        let effects = apply_live(fork, entry, &batch);
        journaled.push(batch);
        live_effects.push(effects.clone());
        effects
    };
    let batch = vec![
        commands.tick(1_000),
        commands.next(login("home", ISLAND)),
        commands.next(enqueue("c-island-1", "sales", ISLAND)),
        commands.next(enqueue("c-island-2", "sales", ISLAND)),
        // Refused on the fork (another site's login): journaled all the same, replayed alike.
        commands.next(login("away", 2)),
    ];
    offered.extend(offers(&step(batch, fork)));
    let mut batch = vec![commands.tick(2_000)];
    batch.extend(offered.iter().map(|o| {
        commands.next(CommandBody::Connected { call: o.call.clone(), operator: o.operator.clone(), fence: o.fence })
    }));
    batch.push(commands.next(CommandBody::Abandoned { call: CallId::new("c-island-2") }));
    batch.push(commands.next(login("spare", ISLAND)));
    offered = offers(&step(batch, fork));
    let mut batch = vec![commands.tick(30_000)];
    batch.extend(offered.iter().map(|o| {
        commands.next(CommandBody::Connected { call: o.call.clone(), operator: o.operator.clone(), fence: o.fence })
    }));
    step(batch, fork);
    let batch = vec![commands.tick(1_000), commands.next(enqueue("c-island-3", "sales", ISLAND))];
    step(batch, fork);
    assert!(journaled.len() >= 4);
    (journaled, live_effects)
}

fn island_day(journal: &IslandJournal, commands: &mut Commands, fork: &mut Routing) -> Vec<Vec<Command>> {
    island_day_with_effects(journal, commands, fork).0
}

fn journal_path(dir: &TempDir) -> std::path::PathBuf {
    dir.0.join(ISLAND_JOURNAL_FILE)
}

#[test]
fn batches_survive_a_restart_and_replay_into_the_fork_that_was_live() {
    let dir = TempDir::new("island-journal-replay");
    let mut commands = Commands::new();
    let (epoch, fork) = forked(&mut commands, 1);
    let mut live = fork.clone();
    let (journaled, live_effects) = {
        let journal = IslandJournal::open(journal_path(&dir)).expect("a new journal opens");
        assert!(journal.restore().expect("restore").is_none(), "a new journal has no epoch");
        journal.begin(epoch, &fork.snapshot_bytes()).expect("the first epoch begins");
        journal.mark_merge_step("begin", 1).expect("a merge step is marked");
        island_day_with_effects(&journal, &mut commands, &mut live)
    };
    assert!(live_effects.iter().flatten().any(|e| matches!(e, Effect::Offer(_))), "the island offered");
    assert!(live.call_view(&CallId::new("c-island-1")).is_some(), "the island routed its own callers");

    let journal = IslandJournal::open(journal_path(&dir)).expect("the journal reopens");
    let restored = journal.restore().expect("restore").expect("the epoch is still open");
    assert_eq!(restored.epoch, epoch);
    assert_eq!(restored.state, JournalState::Open);
    assert_eq!(restored.fork.snapshot_bytes(), fork.snapshot_bytes(), "the fork restores as it began");
    let expected: Vec<(u64, Vec<Command>)> = journaled.into_iter().enumerate().map(|(j, b)| (j as u64, b)).collect();
    assert_eq!(restored.entries, expected, "every batch comes back, in order");
    assert_eq!(restored.merge.get("begin"), Some(&1));
    let replayed = restored.replay().expect("the journal replays");
    assert_eq!(replayed.snapshot_bytes(), live.snapshot_bytes(), "replay rebuilds the live fork");
    assert_eq!(replayed.island().map(|f| f.epoch), Some(epoch));

    // Entry by entry through the journal's own apply, the replay gives the live effects too.
    let mut again = restored.fork.clone();
    for ((entry, batch), live) in restored.entries.iter().zip(&live_effects) {
        let applied = apply_entry(&mut again, *entry, batch).expect("an entry applies");
        let effects: Vec<Effect> = applied.into_iter().flat_map(|a| a.effects).collect();
        assert_eq!(&effects, live, "entry {entry} replays with its live effects");
    }
}

#[test]
fn a_second_begin_while_an_epoch_is_open_is_refused() {
    let dir = TempDir::new("island-journal-second-begin");
    let mut commands = Commands::new();
    let (epoch, fork) = forked(&mut commands, 1);
    let journal = IslandJournal::open(journal_path(&dir)).unwrap();
    journal.begin(epoch, &fork.snapshot_bytes()).unwrap();
    journal.append(&[commands.tick(1_000)]).unwrap();
    let (next, next_fork) = forked(&mut commands, 2);
    for state in [JournalState::Open, JournalState::Frozen, JournalState::Merging] {
        journal.set_state(state).unwrap();
        match journal.begin(next, &next_fork.snapshot_bytes()) {
            Err(ClusterError::IslandEpochOpen { open }) => assert_eq!(open, epoch),
            other => panic!("a begin while {state:?} must be refused, got {other:?}"),
        }
    }
    let restored = journal.restore().unwrap().expect("still open");
    assert_eq!((restored.epoch, restored.state, restored.entries.len()), (epoch, JournalState::Merging, 1));
}

#[test]
fn a_closed_epoch_makes_way_for_the_next_and_only_a_newer_one() {
    let dir = TempDir::new("island-journal-close");
    let mut commands = Commands::new();
    let (epoch, fork) = forked(&mut commands, 1);
    {
        let journal = IslandJournal::open(journal_path(&dir)).unwrap();
        journal.begin(epoch, &fork.snapshot_bytes()).unwrap();
        journal.append(&[commands.tick(1_000)]).unwrap();
        journal.mark_merge_step("records", 7).unwrap();
        assert_eq!(journal.close().unwrap(), epoch);
    }
    let journal = IslandJournal::open(journal_path(&dir)).unwrap();
    assert!(journal.restore().unwrap().is_none(), "a closed epoch restores nothing");
    assert_eq!(journal.last_epoch().unwrap(), Some((epoch, JournalState::Closed)));
    assert!(journal.append(&[commands.tick(1_000)]).is_err(), "no epoch to append to");
    assert!(journal.close().is_err(), "nothing to close");
    // The same epoch again is refused: an epoch's seq is never reused.
    assert!(journal.begin(epoch, &fork.snapshot_bytes()).is_err());

    let (next, next_fork) = forked(&mut commands, 2);
    journal.begin(next, &next_fork.snapshot_bytes()).expect("the next epoch begins");
    assert_eq!(journal.append(&[commands.tick(1_000)]).unwrap(), 0, "its entries start at 0");
    let restored = journal.restore().unwrap().expect("open");
    assert_eq!(restored.epoch, next);
    assert_eq!(restored.entries.len(), 1);
    assert!(restored.merge.is_empty(), "the last epoch's merge steps are gone");
}

#[test]
fn a_begin_with_another_epochs_fork_is_refused() {
    let dir = TempDir::new("island-journal-wrong-fork");
    let mut commands = Commands::new();
    let (_, fork) = forked(&mut commands, 1);
    let (other, _) = forked(&mut commands, 2);
    let journal = IslandJournal::open(journal_path(&dir)).unwrap();
    assert!(matches!(journal.begin(other, &fork.snapshot_bytes()), Err(ClusterError::IslandJournal { .. })));
    assert!(journal.begin(other, &Routing::new().snapshot_bytes()).is_err(), "the global state is no fork");
    assert!(journal.begin(other, b"not a snapshot").is_err());
    assert_eq!(journal.last_epoch().unwrap(), None, "nothing was begun");
}

#[test]
fn a_batch_over_an_entrys_commands_or_empty_is_refused_and_changes_nothing() {
    let dir = TempDir::new("island-journal-batch-size");
    let mut commands = Commands::new();
    let (epoch, fork) = forked(&mut commands, 1);
    let journal = IslandJournal::open(journal_path(&dir)).unwrap();
    journal.begin(epoch, &fork.snapshot_bytes()).unwrap();
    let first = vec![commands.tick(1_000)];
    journal.append(&first).unwrap();
    let too_many: Vec<Command> = (0..=ISLAND_ENTRY_COMMANDS_MAX).map(|_| commands.tick(1)).collect();
    match journal.append(&too_many) {
        Err(ClusterError::IslandBatch { commands, limit_commands }) => {
            assert_eq!((commands, limit_commands), (ISLAND_ENTRY_COMMANDS_MAX + 1, ISLAND_ENTRY_COMMANDS_MAX));
        }
        other => panic!("a batch of 257 must be refused, got {other:?}"),
    }
    assert!(matches!(journal.append(&[]), Err(ClusterError::IslandBatch { commands: 0, .. })));
    let restored = journal.restore().unwrap().unwrap();
    assert_eq!(restored.entries, vec![(0, first)], "the refused batches left nothing");
    let full: Vec<Command> = too_many[..ISLAND_ENTRY_COMMANDS_MAX].to_vec();
    assert_eq!(journal.append(&full).unwrap(), 1, "a full entry is accepted, numbered next");
}

#[test]
fn the_entry_bound_leaves_room_in_the_fork_band() {
    let last = ISLAND_JOURNAL_ENTRIES_MAX - 1;
    assert!(fork_apply_index(last, ISLAND_ENTRY_COMMANDS_MAX as u64 - 1).is_some());
}

/// Damages a copy of `intact` with `damage` and opens and restores it: an error or (damage
/// where nothing lives) the intact journal's contents, never a panic or other contents.
fn open_damaged(dir: &TempDir, intact: &[u8], expected: &[u8], damage: impl Fn(&mut Vec<u8>)) -> bool {
    let path = dir.0.join("damaged.redb");
    let mut bytes = intact.to_vec();
    damage(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    let outcome = IslandJournal::open(&path).and_then(|journal| {
        // A journal that lost its epoch is as refused as one that does not open.
        let lost = || ClusterError::Storage { what: "the open epoch is gone".into(), source: None };
        let restored = journal.restore()?.ok_or_else(lost)?;
        restored.replay()
    });
    let _ = std::fs::remove_file(&path);
    match outcome {
        Ok(replayed) => {
            assert_eq!(replayed.snapshot_bytes(), expected, "damage that went unseen changed nothing");
            false
        }
        Err(_) => true,
    }
}

#[test]
fn a_damaged_or_truncated_file_is_an_error_not_a_panic() {
    let dir = TempDir::new("island-journal-damaged");
    let mut commands = Commands::new();
    let (epoch, fork) = forked(&mut commands, 1);
    let mut live = fork.clone();
    {
        let journal = IslandJournal::open(journal_path(&dir)).unwrap();
        journal.begin(epoch, &fork.snapshot_bytes()).unwrap();
        island_day(&journal, &mut commands, &mut live);
    }
    let intact = std::fs::read(journal_path(&dir)).unwrap();
    let expected = live.snapshot_bytes();
    assert!(!open_damaged(&dir, &intact, &expected, |_| {}), "the intact copy restores");

    let mut truncations_refused = 0;
    for k in 0..DAMAGE_POSITIONS {
        let cut = intact.len() * k / DAMAGE_POSITIONS;
        if open_damaged(&dir, &intact, &expected, |b| b.truncate(cut)) {
            truncations_refused += 1;
        }
    }
    // Flips where the file holds something (most of a new redb file is zeroed room).
    let used: Vec<usize> = (0..intact.len()).filter(|&at| intact[at] != 0).collect();
    let mut flips_refused = 0;
    for k in 0..DAMAGE_POSITIONS {
        let at = used[used.len() * k / DAMAGE_POSITIONS];
        if open_damaged(&dir, &intact, &expected, |b| b[at] ^= 0xFF) {
            flips_refused += 1;
        }
    }
    assert_eq!(truncations_refused, DAMAGE_POSITIONS, "every truncation is refused");
    eprintln!(
        "flipped bytes refused at {flips_refused} of {DAMAGE_POSITIONS} used positions ({} bytes file, {} used)",
        intact.len(),
        used.len()
    );
}

/// Where `needle` occurs in `haystack` (redb copies pages on write, so a value may sit in
/// the file more than once: live, and in pages freed since).
fn occurrences(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(at, _)| at).collect()
}

#[test]
fn a_byte_changed_in_the_fork_or_an_entry_is_an_error_not_another_history() {
    let dir = TempDir::new("island-journal-sealed");
    let mut commands = Commands::new();
    let (epoch, fork) = forked(&mut commands, 1);
    let mut live = fork.clone();
    let journaled = {
        let journal = IslandJournal::open(journal_path(&dir)).unwrap();
        journal.begin(epoch, &fork.snapshot_bytes()).unwrap();
        island_day(&journal, &mut commands, &mut live)
    };
    let intact = std::fs::read(journal_path(&dir)).unwrap();
    let expected = live.snapshot_bytes();
    let fork_bytes = fork.snapshot_bytes();
    let last_entry = lineup_core::codec::encode_versioned(journaled.last().unwrap()).unwrap();
    for value in [&fork_bytes, &last_entry] {
        let found = occurrences(&intact, value);
        assert!(!found.is_empty(), "the value is stored as encoded");
        // A byte in the middle, the first and the last, in every copy at once.
        for offset in [value.len() / 2, 1, value.len() - 1] {
            let refused = open_damaged(&dir, &intact, &expected, |b| {
                for at in &found {
                    b[at + offset] ^= 0x01;
                }
            });
            assert!(refused, "a changed byte at {offset} of a {}-byte value is refused", value.len());
        }
    }
}
