//! The island proposer (docs/rfcs/island-mode.md §2.2 "Proposer"): while this node is an
//! island, it decides the fork's commands alone, as the leader's proposer decides the log's.
//!
//! Commands wait on a bounded queue ([`ISLAND_PROPOSAL_QUEUE_COMMANDS_MAX`]). One thread of
//! its own (the journal's redb IO blocks, so never on the async executor) takes what waits,
//! up to [`ISLAND_ENTRY_COMMANDS_MAX`] commands, as one batch, and for each batch:
//! 1. appends it to the [`IslandJournal`] (returns once fsynced): "sync before ack", so a
//!    crash loses only batches nobody saw the effects of;
//! 2. applies it to the fork with [`apply_entry`] (command `p` of entry `j` at
//!    `fork_apply_index(j, p)`, the same indexes a restart's replay uses);
//! 3. publishes the effects for this site on a bounded broadcast stream (as
//!    `ClusterNode::subscribe_effects` does for the log; a subscriber that lags reconciles
//!    from [`IslandProposer::read`]);
//! 4. answers each submitter with its [`Committed`] (its result and fork apply index).
//!
//! A batch the journal refuses (a full journal, a failing disk) is answered with the error
//! and applied nowhere. A journaled batch that leaves the fork contradicting itself stops the
//! proposer: every later batch is refused, since a replay would stop at the same entry.
//!
//! A ticker proposes `Tick` every tick interval through the same queue, with the leader's
//! rules (`clock_rules::tick_ms`) anchored at the fork's last Tick: the monotonic course,
//! pulled by the wall clock only within the slew. No voter can be asked on an island, so a
//! wall clock outside the slew never steps the fork's clock.

use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use lineup_core::island::{fork_apply_index, IslandEpoch};
use lineup_core::{Command, CommandBody, CommandId, Routing, SiteId};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use super::journal::{apply_entry, IslandJournal, ISLAND_ENTRY_COMMANDS_MAX};
use crate::node::clock_rules::{tick_ms, ClockAnchor, PeerClocks};
use crate::node::{SiteEffect, WallClock, EFFECT_STREAM_CAPACITY};
use crate::rpc::Committed;
use crate::ClusterError;

/// Commands waiting for the island proposer at most; a submitter beyond waits for room.
pub const ISLAND_PROPOSAL_QUEUE_COMMANDS_MAX: usize = 4 * ISLAND_ENTRY_COMMANDS_MAX;
/// Effects the island's stream holds for a slow subscriber (as the log's stream).
pub const ISLAND_EFFECT_STREAM_CAPACITY: usize = EFFECT_STREAM_CAPACITY;
/// How long stopping waits for the proposer's thread to finish its batch and release the
/// journal.
pub const ISLAND_STOP_WAIT_MS: u64 = 5_000;

/// A new command id for the island's Ticks (the node's own origin and serials).
pub type NextCommandId = Arc<dyn Fn() -> CommandId + Send + Sync>;

/// What the island proposer needs besides its fork and journal.
#[derive(Clone)]
pub struct IslandProposerConfig {
    /// This node's site: the effects published are those addressed to it.
    pub site: SiteId,
    /// How often the island proposes a Tick (`ClusterTiming::tick_interval_ms`).
    pub tick_interval: Duration,
    pub clock: WallClock,
    pub next_id: NextCommandId,
}

struct Proposal {
    command: Command,
    reply: oneshot::Sender<Result<Committed, ClusterError>>,
}

/// The island proposer of one open epoch. Cheap to clone; [`IslandProposer::stop`] ends it.
#[derive(Clone)]
pub struct IslandProposer {
    shared: Arc<Shared>,
}

struct Shared {
    epoch: IslandEpoch,
    /// `None` once stopped: the thread ends when the last sender is gone.
    queue: Mutex<Option<mpsc::Sender<Proposal>>>,
    fork: Arc<RwLock<Routing>>,
    effects: broadcast::Sender<SiteEffect>,
    thread: Mutex<Option<JoinHandle<()>>>,
    ticker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl IslandProposer {
    /// Starts serving `fork` (the fork as journaled so far) for `epoch`, journaling into
    /// `journal` (which must have `epoch` open). Must be called inside a Tokio runtime (the
    /// ticker is a task).
    pub fn start(
        epoch: IslandEpoch,
        fork: Routing,
        journal: Arc<IslandJournal>,
        config: IslandProposerConfig,
    ) -> Result<Self, ClusterError> {
        let (queue, proposals) = mpsc::channel(ISLAND_PROPOSAL_QUEUE_COMMANDS_MAX);
        let (effects, _) = broadcast::channel(ISLAND_EFFECT_STREAM_CAPACITY);
        let fork = Arc::new(RwLock::new(fork));
        let writer =
            ForkWriter { journal, fork: fork.clone(), effects: effects.clone(), site: config.site, broken: None };
        let thread = std::thread::Builder::new()
            .name(format!("island-proposer-{}", config.site.0))
            .spawn(move || run_writer(proposals, writer))?;
        let proposer = IslandProposer {
            shared: Arc::new(Shared {
                epoch,
                queue: Mutex::new(Some(queue)),
                fork,
                effects,
                thread: Mutex::new(Some(thread)),
                ticker: Mutex::new(None),
            }),
        };
        let ticker = tokio::spawn(run_ticker(Arc::downgrade(&proposer.shared), config));
        *lock(&proposer.shared.ticker) = Some(ticker);
        Ok(proposer)
    }

    /// The epoch this proposer serves.
    pub fn epoch(&self) -> IslandEpoch {
        self.shared.epoch
    }

    /// Decides `command` on the fork: journaled, applied, answered with its result and fork
    /// apply index. An error means it was applied nowhere.
    pub async fn submit(&self, command: Command) -> Result<Committed, ClusterError> {
        submit_to(&self.shared, command).await
    }

    /// Reads the fork as applied so far (stale only by the batch being applied).
    pub fn read<R>(&self, read: impl FnOnce(&Routing) -> R) -> R {
        read(&self.shared.fork.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The fork's effects addressed to this site, in apply order, from now on.
    pub fn subscribe_effects(&self) -> broadcast::Receiver<SiteEffect> {
        self.shared.effects.subscribe()
    }

    /// Stops taking commands, lets the thread finish the batch it holds and waits (at most
    /// [`ISLAND_STOP_WAIT_MS`]) until it has released the journal. The fork stays readable.
    pub async fn stop(&self) {
        let ticker = lock(&self.shared.ticker).take();
        if let Some(ticker) = ticker {
            ticker.abort();
            let _ = ticker.await;
        }
        lock(&self.shared.queue).take();
        let thread = lock(&self.shared.thread).take();
        let Some(thread) = thread else { return };
        let joined = tokio::task::spawn_blocking(move || thread.join());
        if tokio::time::timeout(Duration::from_millis(ISLAND_STOP_WAIT_MS), joined).await.is_err() {
            tracing::warn!(epoch = ?self.shared.epoch, "the island proposer did not stop within the bound");
        }
    }
}

async fn submit_to(shared: &Shared, command: Command) -> Result<Committed, ClusterError> {
    let Some(queue) = lock(&shared.queue).clone() else { return Err(ClusterError::NoIsland) };
    let (reply, answer) = oneshot::channel();
    queue.send(Proposal { command, reply }).await.map_err(|_| ClusterError::NoIsland)?;
    drop(queue);
    answer.await.unwrap_or(Err(ClusterError::NoIsland))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The proposer's thread: one batch at a time until every sender is gone.
fn run_writer(mut proposals: mpsc::Receiver<Proposal>, mut writer: ForkWriter) {
    while let Some(first) = proposals.blocking_recv() {
        let batch = gather(first, &mut proposals, ISLAND_ENTRY_COMMANDS_MAX);
        writer.decide(batch);
    }
}

/// `first` and whatever else waits, up to `commands_max`.
fn gather(first: Proposal, proposals: &mut mpsc::Receiver<Proposal>, commands_max: usize) -> Vec<Proposal> {
    let mut batch = vec![first];
    while batch.len() < commands_max {
        match proposals.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    batch
}

/// Journals, applies, publishes and answers one batch at a time.
struct ForkWriter {
    journal: Arc<IslandJournal>,
    fork: Arc<RwLock<Routing>>,
    effects: broadcast::Sender<SiteEffect>,
    site: SiteId,
    /// Why the fork stopped (a journaled batch broke its invariants).
    broken: Option<String>,
}

impl ForkWriter {
    fn decide(&mut self, batch: Vec<Proposal>) {
        if let Some(why) = &self.broken {
            let what = format!("the island's fork stopped: {why}");
            return answer_all(batch, |_| ClusterError::IslandJournal { what: what.clone(), source: None });
        }
        let commands: Vec<Command> = batch.iter().map(|p| p.command.clone()).collect();
        let entry = match self.journal.append(&commands) {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(error = %e, commands = commands.len(), "an island batch was not journaled");
                return answer_all(batch, |_| not_journaled(&e));
            }
        };
        let applied = {
            let mut fork = self.fork.write().unwrap_or_else(|p| p.into_inner());
            apply_entry(&mut fork, entry, &commands)
        };
        let applied = match applied {
            Ok(applied) => applied,
            Err(e) => {
                tracing::error!(error = %e, entry, "the island's fork contradicts itself; it serves no more");
                self.broken = Some(e.to_string());
                let what = format!("entry {entry} was journaled but broke the fork: {e}");
                return answer_all(batch, |_| ClusterError::IslandJournal { what: what.clone(), source: None });
            }
        };
        for (position, (proposal, applied)) in batch.into_iter().zip(applied).enumerate() {
            // apply_entry succeeded, so every position has its index.
            let Some(apply_index) = fork_apply_index(entry, position as u64) else { continue };
            for effect in applied.effects.iter().filter(|e| e.is_for(self.site)) {
                // No subscriber is fine: the fork holds the state and the journal the commands.
                let _ = self.effects.send(SiteEffect { apply_index, effect: effect.clone() });
            }
            let _ = proposal.reply.send(Ok(Committed::from_applied(apply_index, applied)));
        }
    }
}

fn answer_all(batch: Vec<Proposal>, error: impl Fn(&Command) -> ClusterError) {
    for proposal in batch {
        let _ = proposal.reply.send(Err(error(&proposal.command)));
    }
}

/// The error each submitter of a refused batch gets: a full journal stays recognisable
/// (the island refuses new callers), anything else says the batch was not journaled.
fn not_journaled(e: &ClusterError) -> ClusterError {
    match e {
        ClusterError::IslandJournalFull { entries_max } => {
            ClusterError::IslandJournalFull { entries_max: *entries_max }
        }
        other => ClusterError::IslandJournal { what: format!("the batch was not journaled: {other}"), source: None },
    }
}

/// Proposes a Tick every tick interval while the proposer lives, anchored at the fork's
/// last Tick (the fork's clock when the proposer started) and then at each applied Tick.
async fn run_ticker(shared: std::sync::Weak<Shared>, config: IslandProposerConfig) {
    let start_ms = match shared.upgrade() {
        Some(shared) => shared.fork.read().unwrap_or_else(|p| p.into_inner()).now_ms(),
        None => return,
    };
    let mut anchor = (start_ms, Instant::now());
    let mut interval = tokio::time::interval_at(Instant::now() + config.tick_interval, config.tick_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        let now = Instant::now();
        let shared_now_ms = shared.fork.read().unwrap_or_else(|p| p.into_inner()).now_ms();
        let (anchor_ms, at) = anchor;
        let course_ms = next_tick_ms(config.clock.now_unix_ms(), anchor_ms, now.duration_since(at));
        let now_ms = course_ms.max(shared_now_ms);
        let tick = Command { id: (config.next_id)(), at_ms: now_ms, body: CommandBody::Tick { now_ms } };
        match submit_to(&shared, tick).await {
            Ok(Committed { result: Ok(_), .. }) => anchor = (course_ms, now),
            Ok(Committed { result: Err(e), .. }) => tracing::debug!(error = ?e, "island tick refused"),
            Err(e) => tracing::debug!(error = %e, "island tick not decided"),
        }
    }
}

/// The fork's next Tick on its own course: the leader's rule with nobody to ask (the wall
/// clock within the slew of the monotonic time since the anchor). The anchor keeps the
/// island's own course, as the leader's does.
fn next_tick_ms(wall_ms: u64, anchor_ms: u64, elapsed: Duration) -> u64 {
    let anchor = ClockAnchor { shared_ms: anchor_ms, elapsed_ms: elapsed.as_millis() as u64 };
    tick_ms(wall_ms, 0, anchor, PeerClocks::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineup_core::island::ISLAND_APPLY_INDEX_BASE;
    use std::collections::BTreeSet;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};

    const SITE: SiteId = SiteId(2);
    const EPOCH: IslandEpoch = IslandEpoch { site: SITE, seq: 1, fork_index: 7 };
    const NOW_MS: u64 = 1_800_000_000_000;
    /// Bound on every wait in these tests.
    const WAIT: Duration = Duration::from_secs(20);

    /// A journal file in its own temporary directory, removed on drop.
    struct TempJournal(PathBuf);

    impl TempJournal {
        fn new(name: &str) -> Self {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "lineup-island-proposer-{name}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn path(&self) -> PathBuf {
            self.0.join(crate::island::ISLAND_JOURNAL_FILE)
        }
    }

    impl Drop for TempJournal {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn fork() -> Routing {
        let mut global = Routing::new();
        global.apply(1, &tick(0, NOW_MS));
        global.fork_island(EPOCH, &[SiteId(1), SITE, SiteId(3)], NOW_MS)
    }

    fn tick(serial: u64, now_ms: u64) -> Command {
        Command { id: CommandId { origin: 9, serial }, at_ms: now_ms, body: CommandBody::Tick { now_ms } }
    }

    fn config(tick_interval: Duration) -> IslandProposerConfig {
        let serials = Arc::new(AtomicU64::new(1_000_000));
        IslandProposerConfig {
            site: SITE,
            tick_interval,
            clock: WallClock::System,
            next_id: Arc::new(move || CommandId { origin: 10, serial: serials.fetch_add(1, Ordering::Relaxed) }),
        }
    }

    fn proposal(serial: u64) -> (Proposal, oneshot::Receiver<Result<Committed, ClusterError>>) {
        let (reply, answer) = oneshot::channel();
        (Proposal { command: tick(serial, NOW_MS + serial), reply }, answer)
    }

    #[test]
    fn a_batch_holds_at_most_an_entrys_commands_and_leaves_the_rest_waiting() {
        let (queue, mut proposals) = mpsc::channel(ISLAND_PROPOSAL_QUEUE_COMMANDS_MAX);
        let extra = 44;
        let mut answers = Vec::new();
        for serial in 0..(ISLAND_ENTRY_COMMANDS_MAX + extra) as u64 {
            let (proposal, answer) = proposal(serial);
            queue.try_send(proposal).map_err(|_| "room").unwrap();
            answers.push(answer);
        }
        let first = proposals.try_recv().unwrap();
        let batch = gather(first, &mut proposals, ISLAND_ENTRY_COMMANDS_MAX);
        assert_eq!(batch.len(), ISLAND_ENTRY_COMMANDS_MAX);
        let serials: Vec<u64> = batch.iter().map(|p| p.command.id.serial).collect();
        assert_eq!(serials, (0..ISLAND_ENTRY_COMMANDS_MAX as u64).collect::<Vec<_>>(), "in submission order");
        let first = proposals.try_recv().unwrap();
        assert_eq!(gather(first, &mut proposals, ISLAND_ENTRY_COMMANDS_MAX).len(), extra);
    }

    /// Submitters side by side: each answered at its own fork apply index, batches within an
    /// entry's bound, and the journal replays to exactly the state the proposer serves.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_submitter_is_answered_at_its_fork_index_and_the_journal_replays_the_fork() {
        let dir = TempJournal::new("answers");
        let journal = Arc::new(IslandJournal::open(dir.path()).unwrap());
        let fork = fork();
        journal.begin(EPOCH, &fork.snapshot_bytes()).unwrap();
        // No Tick of its own within the test: only the submitted commands are journaled.
        let proposer = IslandProposer::start(EPOCH, fork, journal.clone(), config(WAIT * 10)).unwrap();
        let submitted = ISLAND_ENTRY_COMMANDS_MAX as u64 + 100;
        let mut submits = tokio::task::JoinSet::new();
        for serial in 0..submitted {
            let proposer = proposer.clone();
            submits.spawn(async move { proposer.submit(tick(serial, NOW_MS + serial)).await });
        }
        let mut indexes = BTreeSet::new();
        while let Some(answer) = tokio::time::timeout(WAIT, submits.join_next()).await.unwrap() {
            let committed = answer.unwrap().unwrap();
            committed.result.unwrap();
            let index = committed.apply_index.unwrap();
            assert!(index >= ISLAND_APPLY_INDEX_BASE, "{index} is no fork apply index");
            indexes.insert(index);
        }
        assert_eq!(indexes.len() as u64, submitted, "every command at its own index");
        assert_eq!(proposer.read(|r| r.now_ms()), NOW_MS + submitted - 1);
        proposer.stop().await;
        let restored = journal.restore().unwrap().unwrap();
        let journaled: usize = restored.entries.iter().map(|(_, commands)| commands.len()).sum();
        assert_eq!(journaled as u64, submitted);
        assert!(restored.entries.len() >= 2, "more than one entry's worth was submitted");
        assert!(restored.entries.iter().all(|(_, c)| c.len() <= ISLAND_ENTRY_COMMANDS_MAX));
        assert_eq!(restored.replay().unwrap().snapshot_bytes(), proposer.read(|r| r.snapshot_bytes()));
        assert!(matches!(proposer.submit(tick(submitted, NOW_MS)).await, Err(ClusterError::NoIsland)));
    }

    /// A batch the journal refuses is answered with the error and applied nowhere.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_the_journal_refuses_is_answered_with_an_error_and_not_applied() {
        let dir = TempJournal::new("refused");
        // No epoch begun: every append is refused.
        let journal = Arc::new(IslandJournal::open(dir.path()).unwrap());
        let fork = fork();
        let before = fork.snapshot_bytes();
        let proposer = IslandProposer::start(EPOCH, fork, journal, config(WAIT * 10)).unwrap();
        let answer = tokio::time::timeout(WAIT, proposer.submit(tick(1, NOW_MS + 5))).await.unwrap();
        assert!(matches!(answer, Err(ClusterError::IslandJournal { .. })), "{answer:?}");
        assert_eq!(proposer.read(|r| r.snapshot_bytes()), before, "nothing applied");
        proposer.stop().await;
    }

    /// The ticker moves the fork's clock on its own, from the fork's last Tick.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_island_ticks_on_its_own() {
        let dir = TempJournal::new("ticks");
        let journal = Arc::new(IslandJournal::open(dir.path()).unwrap());
        let fork = fork();
        journal.begin(EPOCH, &fork.snapshot_bytes()).unwrap();
        let proposer = IslandProposer::start(EPOCH, fork, journal.clone(), config(Duration::from_millis(20))).unwrap();
        let deadline = Instant::now() + WAIT;
        while journal.restore().unwrap().unwrap().entries.len() < 2 {
            assert!(Instant::now() < deadline, "no two Ticks within the bound");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        proposer.stop().await;
        assert!(proposer.read(|r| r.now_ms()) > NOW_MS, "the fork's clock moved");
    }

    #[test]
    fn an_island_tick_follows_its_course_within_the_slew() {
        let elapsed = Duration::from_millis(1_000);
        assert_eq!(next_tick_ms(NOW_MS + 1_010, NOW_MS, elapsed), NOW_MS + 1_010);
        assert_eq!(next_tick_ms(NOW_MS + 3_600_000, NOW_MS, elapsed), NOW_MS + 1_050, "no step without voters");
        assert_eq!(next_tick_ms(NOW_MS - 3_600_000, NOW_MS, elapsed), NOW_MS + 950);
    }
}
