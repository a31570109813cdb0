//! The fault schedules of `--scenario nemesis` and `--scenario random`, applied to the real
//! processes while calls are live: SIGSTOP/SIGCONT of the leader and of a cross-site caller's
//! node; a symmetric partition of a cross-site operator's node and of the leader; a one-way
//! cut (a node that sends but hears nothing); a flapping link to the leader; a node's wall
//! clock stepped hours ahead, then behind, then back; a node's ARI connections to its box cut;
//! a node's disk full; a node's fsyncs failing (EIO); site 1's history database and its
//! Redis unreachable; kill -9 of the
//! leader and of a cross-site caller's node while each writes a snapshot (`snapshot_kill.rs`);
//! kill -9 of the leader while a spare site is added, and of the spare while it is removed
//! (`member_kill.rs`).
//! `nemesis` runs them round after round; `random` draws each fault and its target (the
//! restarts' SIGTERM and kill -9 among them) from the seed. After each heal it measures how
//! long until the leader hears the site again; after the last, how long a new caller waits
//! for a free operator (the federation is live again).

use crate::ari_links::AriLinks;
use crate::disks::DataDisks;
use crate::faults::{Chaos, OutageRecord, Stop, Target};
use crate::links::{Cut, Links};
use crate::services::{Services, SERVICES_SITE};
use lineup_util::rng::SplitMix64;
use std::time::Duration;
use tokio::time::Instant;

/// How long a paused node stays frozen: longer than the site-unreachable threshold (3 s), so
/// the others mark it unreachable, and a frozen leader is replaced.
pub const PAUSE_MS: u64 = 5_000;
/// How long a partition lasts: well past the site-unreachable threshold and an election.
pub const PARTITION_MS: u64 = 8_000;
/// A flapping link is cut and healed every this many ms...
pub const FLAP_HALF_PERIOD_MS: u64 = 500;
/// ...for this long.
pub const FLAP_MS: u64 = 6_000;
/// A skewed clock runs this far ahead of true time...
pub const SKEW_AHEAD_S: i64 = 2 * 3_600;
/// ...then jumps this far behind it...
pub const SKEW_BEHIND_S: i64 = -3 * 3_600;
/// ...each for this long, then is right again.
pub const SKEW_STEP_MS: u64 = 6_000;
/// How long a node's ARI connections stay cut: past the node's reconnect backoff, so it
/// reconnects into a box whose calls moved on without it.
pub const ARI_CUT_MS: u64 = 5_000;
/// How long a node's disk stays full: long enough for every writer (Raft log, history,
/// queue_log) to hit it.
pub const DISK_FULL_MS: u64 = 5_000;
/// How long a node's fsyncs fail: long enough for every writer that syncs (Raft log, outbox,
/// queue_log) to be told.
pub const FSYNC_FAIL_MS: u64 = 5_000;
/// How long the database or Redis stays unreachable: past the history drainer's longest
/// retry pause (10 s would be one; this is most of one) and a few projection retries.
pub const SERVICE_DOWN_MS: u64 = 8_000;
/// Calm between two faults: calls connect again and the next fault finds one to aim at.
pub const FAULT_GAP_MS: u64 = 2_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Pause(Target),
    Isolate(Target),
    Deaf(Target),
    Flap(Target),
    Skew(Target),
    AriCut(Target),
    /// The node's data filesystem filled to the last byte for `DISK_FULL_MS`, then freed.
    DiskFull(Target),
    /// The node's fsync, fdatasync and syncfs failing with EIO for `FSYNC_FAIL_MS`
    /// (`fsyncs.rs`), then working again.
    FsyncFail(Target),
    /// The site's history database unreachable for `SERVICE_DOWN_MS` (connections cut,
    /// new ones refused).
    DatabaseDown(Target),
    /// The site's Redis unreachable for `SERVICE_DOWN_MS`.
    RedisDown(Target),
    /// SIGTERM or kill -9, down `RESTART_DOWN_MS`, started again (`random` only).
    Restart(Stop, Target),
    /// kill -9 while the node builds and writes a snapshot it was asked for, down
    /// `RESTART_DOWN_MS`, started again (`snapshot_kill.rs`).
    SnapshotKill(Target),
    /// kill -9 while a membership change is in flight (`member_kill.rs`), aimed at the leader:
    /// the spare added when it is not a voter (the leader killed), removed when it is (the
    /// spare killed).
    MemberKill(Target),
    /// Both membership kills, one after the other (`random`): the spare added and removed
    /// again, so the other faults always find the founding voters alone (the harness's
    /// peer relays are between founding sites only).
    MemberKillRoundTrip(Target),
}

impl Fault {
    fn target(self) -> Target {
        match self {
            Fault::Pause(t) | Fault::Isolate(t) | Fault::Deaf(t) | Fault::Flap(t) => t,
            Fault::Skew(t) | Fault::AriCut(t) | Fault::DiskFull(t) | Fault::FsyncFail(t) | Fault::Restart(_, t) => t,
            Fault::DatabaseDown(t) | Fault::RedisDown(t) | Fault::SnapshotKill(t) => t,
            Fault::MemberKill(t) | Fault::MemberKillRoundTrip(t) => t,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Fault::Pause(_) => "pause",
            Fault::Isolate(_) => "isolate",
            Fault::Deaf(_) => "one_way",
            Fault::Flap(_) => "flap",
            Fault::Skew(_) => "clock_skew",
            Fault::AriCut(_) => "ari_cut",
            Fault::DiskFull(_) => "disk_full",
            Fault::FsyncFail(_) => "fsync_fail",
            Fault::DatabaseDown(_) => "database_down",
            Fault::RedisDown(_) => "redis_down",
            Fault::Restart(Stop::Term, _) => "term",
            Fault::Restart(Stop::Kill, _) => "kill",
            Fault::SnapshotKill(_) => "snapshot_kill",
            Fault::MemberKill(_) | Fault::MemberKillRoundTrip(_) => "member_kill",
        }
    }

    /// The node read no ARI event while it lasted (frozen, its events socket cut, or exited
    /// for want of disk or of a working fsync and started again), so on its return it finds
    /// both legs of a call ended then gone, without knowing who hung up.
    fn blinds(self) -> bool {
        matches!(self, Fault::Pause(_) | Fault::AriCut(_) | Fault::DiskFull(_) | Fault::FsyncFail(_))
    }

    /// The site could not put a new caller in the global order while it lasted: its node
    /// frozen, cut from the others (wholly, one way or flapping), blind to its box, out of
    /// disk or unable to sync it. (A skewed clock, the database or Redis away change nothing
    /// of that.)
    fn cuts_off(self) -> bool {
        matches!(
            self,
            Fault::Pause(_)
                | Fault::Isolate(_)
                | Fault::Deaf(_)
                | Fault::Flap(_)
                | Fault::AriCut(_)
                | Fault::DiskFull(_)
                | Fault::FsyncFail(_)
        )
    }
}

impl Fault {
    /// Of the cut-offs, those that may let some of the site's writes commit while they last:
    /// a flapping link (up half the time), a node that sends but hears nothing.
    fn cuts_off_partly(self) -> bool {
        matches!(self, Fault::Flap(_) | Fault::Deaf(_))
    }
}

pub const NEMESIS: [Fault; 20] = [
    Fault::Pause(Target::Leader),
    Fault::Pause(Target::CallerNode { cross: true }),
    Fault::Isolate(Target::OperatorNode),
    Fault::Isolate(Target::Leader),
    Fault::Deaf(Target::CallerNode { cross: false }),
    Fault::Flap(Target::Leader),
    Fault::Skew(Target::Leader),
    Fault::Skew(Target::CallerNode { cross: true }),
    Fault::AriCut(Target::CallerNode { cross: true }),
    Fault::AriCut(Target::OperatorNode),
    Fault::DiskFull(Target::CallerNode { cross: true }),
    Fault::DiskFull(Target::Leader),
    Fault::FsyncFail(Target::CallerNode { cross: true }),
    Fault::FsyncFail(Target::Leader),
    Fault::DatabaseDown(Target::Site(SERVICES_SITE)),
    Fault::RedisDown(Target::Site(SERVICES_SITE)),
    Fault::SnapshotKill(Target::Leader),
    Fault::SnapshotKill(Target::CallerNode { cross: true }),
    // The spare added (the leader killed), then removed again (the spare killed).
    Fault::MemberKill(Target::Leader),
    Fault::MemberKill(Target::Leader),
];

/// The targets `random` draws from.
const TARGETS: [Target; 4] =
    [Target::Leader, Target::CallerNode { cross: true }, Target::CallerNode { cross: false }, Target::OperatorNode];

/// One fault of a kind drawn from `rng`, at a target drawn from it (the database and Redis
/// outages hit the site that has them; a membership kill is aimed by the change it is).
fn draw(rng: &mut SplitMix64) -> Fault {
    let target = TARGETS[rng.pick(TARGETS.len())];
    let services = Target::Site(SERVICES_SITE);
    let kinds: [fn(Target) -> Fault; 14] = [
        Fault::Pause,
        Fault::Isolate,
        Fault::Deaf,
        Fault::Flap,
        Fault::Skew,
        Fault::AriCut,
        Fault::DiskFull,
        Fault::FsyncFail,
        |t| Fault::Restart(Stop::Term, t),
        |t| Fault::Restart(Stop::Kill, t),
        Fault::DatabaseDown,
        Fault::RedisDown,
        Fault::SnapshotKill,
        Fault::MemberKillRoundTrip,
    ];
    let fault = kinds[rng.pick(kinds.len())](target);
    match fault {
        Fault::DatabaseDown(_) => Fault::DatabaseDown(services),
        Fault::RedisDown(_) => Fault::RedisDown(services),
        Fault::MemberKillRoundTrip(_) => Fault::MemberKillRoundTrip(Target::Leader),
        other => other,
    }
}

/// The seams a fault is done through.
/// The stream of `SplitMix64::fork` that draws `random`'s faults.
const FAULT_STREAM: u64 = 0xFA17;

pub struct Seams {
    pub links: Links,
    pub ari: AriLinks,
    /// Err (why) when the data filesystems could not be mounted.
    pub disks: Result<DataDisks, String>,
    /// Err (why) when the run's database could not be made.
    pub services: Result<Services, String>,
}

impl Chaos<'_> {
    /// Runs the schedule in whole rounds, a gap between faults, until `duration_ms` has
    /// passed (at least one round), then the liveness probe.
    pub async fn run_nemesis(&mut self, seams: &Seams, duration_ms: u64) {
        self.run_rounds(seams, duration_ms, || NEMESIS.to_vec()).await;
    }

    /// Faults drawn from `seed`, one after another with a gap, until `duration_ms` has
    /// passed (at least one), then the liveness probe.
    pub async fn run_random(&mut self, seams: &Seams, duration_ms: u64, seed: u64) {
        // Its own stream: the workload draws from the same seed.
        let mut rng = SplitMix64::from_seed(seed).fork(FAULT_STREAM);
        self.run_rounds(seams, duration_ms, || vec![draw(&mut rng)]).await;
    }

    /// Rounds of faults from `next_round`, a gap after each fault, until `duration_ms` has
    /// passed (one round at least); then every node ready and the liveness probe.
    async fn run_rounds(&mut self, seams: &Seams, duration_ms: u64, mut next_round: impl FnMut() -> Vec<Fault>) {
        let deadline = Instant::now() + Duration::from_millis(duration_ms);
        loop {
            for fault in next_round() {
                self.nemesis_fault(seams, fault).await;
                tokio::time::sleep(Duration::from_millis(FAULT_GAP_MS)).await;
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        self.settle().await;
        self.answer_after_faults().await;
    }

    async fn nemesis_fault(&mut self, seams: &Seams, fault: Fault) {
        self.settle().await;
        let what = format!("{fault:?}");
        let Some(site) = self.aim(fault.target()).await else {
            self.note(format!("skipped {what}: nothing to aim at")).await;
            self.figures.skipped.push(what);
            return;
        };
        let what = format!("{what} (site {site})");
        // Counted and measured as the restarts scenario's.
        match fault {
            Fault::Restart(stop, _) => return self.restart(site, stop, &what).await,
            Fault::SnapshotKill(_) => return self.snapshot_kill(site, &what).await,
            Fault::MemberKill(_) => return self.member_kill(site, &what).await,
            Fault::MemberKillRoundTrip(_) => {
                self.member_kill(site, &what).await;
                self.settle().await;
                let Some(leader) = self.leader().await else { return };
                return self.member_kill(leader, &what).await;
            }
            _ => {}
        }
        let log_at_cut = self.log_at_stop(site).await;
        let from_ms = self.standin_now_ms().await;
        self.note(format!("{what}: begins")).await;
        if let Err(error) = self.apply(seams, fault, site).await {
            self.note(format!("{what}: {error:#}")).await;
            self.figures.skipped.push(what);
            return;
        }
        let until_ms = self.standin_now_ms().await;
        self.figures.count(fault.kind());
        let heard_after_heal_ms = match log_at_cut {
            Some(log) => self.heard(site, log).await,
            None => None,
        };
        self.note(format!("{what}: healed; heard by the leader {heard_after_heal_ms:?} ms after")).await;
        let (blind, cut_off, partial) = (fault.blinds(), fault.cuts_off(), fault.cuts_off_partly());
        let record = OutageRecord { what, site, blind, cut_off, partial, from_ms, until_ms, heard_after_heal_ms };
        self.figures.outages.push(record);
    }

    /// Does the fault to `site` for its whole length, and undoes it.
    async fn apply(&mut self, seams: &Seams, fault: Fault, site: u64) -> anyhow::Result<()> {
        match fault {
            Fault::Pause(_) => {
                self.nodes.pause(site, true)?;
                tokio::time::sleep(Duration::from_millis(PAUSE_MS)).await;
                self.nodes.pause(site, false)?;
            }
            Fault::Isolate(_) | Fault::Deaf(_) => {
                seams.links.cut(site, if matches!(fault, Fault::Deaf(_)) { Cut::Deaf } else { Cut::Isolated });
                tokio::time::sleep(Duration::from_millis(PARTITION_MS)).await;
                seams.links.heal();
            }
            Fault::Flap(_) => flap(&seams.links, site).await,
            Fault::Skew(_) => self.skew(site).await?,
            Fault::AriCut(_) => {
                seams.ari.set_cut(site, true);
                tokio::time::sleep(Duration::from_millis(ARI_CUT_MS)).await;
                seams.ari.set_cut(site, false);
            }
            Fault::DiskFull(_) => {
                let disks = seams.disks.as_ref().map_err(|why| anyhow::anyhow!("no data filesystem: {why}"))?;
                let bytes = disks.fill(site)?;
                self.note(format!("site {site}'s disk full ({bytes} bytes of filler)")).await;
                tokio::time::sleep(Duration::from_millis(DISK_FULL_MS)).await;
                disks.free(site)?;
                self.revive_if_exited(site).await?;
            }
            Fault::FsyncFail(_) => {
                let fsyncs = self.nodes.fsyncs.as_ref().map_err(|why| anyhow::anyhow!("no fsync shim: {why}"))?;
                fsyncs.set_failing(site, true)?;
                tokio::time::sleep(Duration::from_millis(FSYNC_FAIL_MS)).await;
                let fsyncs = self.nodes.fsyncs.as_ref().map_err(|why| anyhow::anyhow!("no fsync shim: {why}"))?;
                fsyncs.set_failing(site, false)?;
                self.revive_if_exited(site).await?;
            }
            Fault::DatabaseDown(_) | Fault::RedisDown(_) => {
                let services = seams.services.as_ref().map_err(|why| anyhow::anyhow!("no run database: {why}"))?;
                let database = matches!(fault, Fault::DatabaseDown(_));
                let cut = |on| if database { services.set_database_cut(on) } else { services.set_redis_cut(on) };
                cut(true);
                tokio::time::sleep(Duration::from_millis(SERVICE_DOWN_MS)).await;
                cut(false);
            }
            Fault::Restart(..) | Fault::SnapshotKill(_) | Fault::MemberKill(_) | Fault::MemberKillRoundTrip(_) => {
                anyhow::bail!("a restart is not applied as an outage")
            }
        }
        Ok(())
    }

    /// Starts the site's node again if it exited (as systemd's `Restart=on-failure` would), and
    /// counts it.
    async fn revive_if_exited(&mut self, site: u64) -> anyhow::Result<()> {
        if self.nodes.running(site) {
            return Ok(());
        }
        self.note(format!("site {site}'s node had exited; started again")).await;
        self.figures.count("node_exited");
        self.nodes.start(site)?;
        self.settle().await;
        Ok(())
    }

    /// The site's wall clock `SKEW_AHEAD_S` ahead, then `SKEW_BEHIND_S` behind, then right.
    async fn skew(&mut self, site: u64) -> anyhow::Result<()> {
        let clocks =
            self.nodes.clocks.as_ref().ok_or_else(|| anyhow::anyhow!("no libfaketime: install Debian's faketime"))?;
        clocks.set_offset(site, SKEW_AHEAD_S)?;
        tokio::time::sleep(Duration::from_millis(SKEW_STEP_MS)).await;
        clocks.set_offset(site, SKEW_BEHIND_S)?;
        tokio::time::sleep(Duration::from_millis(SKEW_STEP_MS)).await;
        clocks.set_offset(site, 0)
    }

    /// After every heal: a caller at a site other than the leader's, for that site's probe
    /// operator, logged in and free. How long it waits is how live the federation is again.
    pub(crate) async fn answer_after_faults(&mut self) {
        let leader = self.leader().await.unwrap_or(0);
        match self.free_probe_operator(leader).await {
            Ok(site) => {
                let answered_ms = self.probe_answer(site, Instant::now()).await;
                self.figures.after_faults_answer_ms = Some(answered_ms);
            }
            Err(why) => {
                self.note(format!("after the faults: no answer probe: {why}")).await;
                self.figures.skipped.push("the answer probe after the faults".into());
            }
        }
    }
}

/// Cuts and heals `site`'s links every `FLAP_HALF_PERIOD_MS` for `FLAP_MS`, then heals.
async fn flap(links: &Links, site: u64) {
    for flip in 0..FLAP_MS / FLAP_HALF_PERIOD_MS {
        if flip % 2 == 0 {
            links.cut(site, Cut::Isolated);
        } else {
            links.heal();
        }
        tokio::time::sleep(Duration::from_millis(FLAP_HALF_PERIOD_MS)).await;
    }
    links.heal();
}
