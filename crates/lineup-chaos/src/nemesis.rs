//! The fault schedule of `--scenario nemesis`, applied to the real processes while calls are
//! live: SIGSTOP/SIGCONT of the leader and of a cross-site caller's node; a symmetric
//! partition of a cross-site operator's node and of the leader; a one-way cut (a node that
//! sends but hears nothing); a flapping link to the leader; round after round for the
//! run's duration. After each heal it measures how long until the leader hears the site
//! again; after the last, how long a new caller waits for a free operator (the federation
//! is live again).

use crate::faults::{Chaos, OutageRecord, Target};
use crate::links::{Cut, Links};
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
/// Calm between two faults: calls connect again and the next fault finds one to aim at.
pub const FAULT_GAP_MS: u64 = 2_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Pause(Target),
    Isolate(Target),
    Deaf(Target),
    Flap(Target),
}

impl Fault {
    fn target(self) -> Target {
        match self {
            Fault::Pause(t) | Fault::Isolate(t) | Fault::Deaf(t) | Fault::Flap(t) => t,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Fault::Pause(_) => "pause",
            Fault::Isolate(_) => "isolate",
            Fault::Deaf(_) => "one_way",
            Fault::Flap(_) => "flap",
        }
    }
}

pub const NEMESIS: [Fault; 6] = [
    Fault::Pause(Target::Leader),
    Fault::Pause(Target::CallerNode { cross: true }),
    Fault::Isolate(Target::OperatorNode),
    Fault::Isolate(Target::Leader),
    Fault::Deaf(Target::CallerNode { cross: false }),
    Fault::Flap(Target::Leader),
];

impl Chaos<'_> {
    /// Runs the schedule in whole rounds, a gap between faults, until `duration_ms` has
    /// passed (at least one round), then the liveness probe.
    pub async fn run_nemesis(&mut self, links: &Links, duration_ms: u64) {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(duration_ms);
        loop {
            for fault in NEMESIS {
                self.nemesis_fault(links, fault).await;
                tokio::time::sleep(Duration::from_millis(FAULT_GAP_MS)).await;
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        self.settle().await;
        self.answer_after_faults().await;
    }

    async fn nemesis_fault(&mut self, links: &Links, fault: Fault) {
        self.settle().await;
        let what = format!("{fault:?}");
        let Some(site) = self.aim(fault.target()).await else {
            self.note(format!("skipped {what}: nothing to aim at")).await;
            self.figures.skipped.push(what);
            return;
        };
        let what = format!("{what} (site {site})");
        let log_at_cut = self.log_at_stop(site).await;
        let from_unix_ms = lineup_util::now_ms();
        self.note(format!("{what}: begins")).await;
        if let Err(error) = self.apply(links, fault, site).await {
            self.note(format!("{what}: {error:#}")).await;
            self.figures.skipped.push(what);
            return;
        }
        let until_unix_ms = lineup_util::now_ms();
        self.figures.count(fault.kind());
        let heard_after_heal_ms = match log_at_cut {
            Some(log) => self.heard(site, log).await,
            None => None,
        };
        self.note(format!("{what}: healed; heard by the leader {heard_after_heal_ms:?} ms after")).await;
        let paused = matches!(fault, Fault::Pause(_));
        let record = OutageRecord { what, site, paused, from_unix_ms, until_unix_ms, heard_after_heal_ms };
        self.figures.outages.push(record);
    }

    /// Does the fault to `site` for its whole length, and undoes it.
    async fn apply(&mut self, links: &Links, fault: Fault, site: u64) -> anyhow::Result<()> {
        match fault {
            Fault::Pause(_) => {
                self.nodes.pause(site, true)?;
                tokio::time::sleep(Duration::from_millis(PAUSE_MS)).await;
                self.nodes.pause(site, false)?;
            }
            Fault::Isolate(_) | Fault::Deaf(_) => {
                links.cut(site, if matches!(fault, Fault::Deaf(_)) { Cut::Deaf } else { Cut::Isolated });
                tokio::time::sleep(Duration::from_millis(PARTITION_MS)).await;
                links.heal();
            }
            Fault::Flap(_) => {
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
        }
        Ok(())
    }

    /// After every heal: a caller at a site other than the leader's, for that site's probe
    /// operator, logged in and free. How long it waits is how live the federation is again.
    async fn answer_after_faults(&mut self) {
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
