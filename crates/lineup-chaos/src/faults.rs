//! The fault schedule of `--scenario restarts`, applied to the real processes: SIGTERM +
//! start and kill -9 + start of the caller's node (local and cross-site calls), the
//! operator's node and the leader, each while calls are connected through it, then a rolling
//! restart of every node. Around each restart it measures how long after the node is ready
//! the leader hears it again; around the leader's kill, how long a caller arriving at that
//! moment waits to be answered.

use crate::api::NodeApi;
use crate::nodes::Nodes;
use crate::run::RING_ANSWER_AFTER_MS;
use crate::setup::{aimed_gate_exten, aimed_operator, probe_operator, GATE_PROBE_EXTEN, OPERATOR_PIN};
use crate::standin::StandIn;
use crate::wait::{elapsed_ms, poll};
use crate::workload::plan;
use lineup_pbx_sim::truth::LiveEngagement;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a stopped node stays down before it is started again.
pub const RESTART_DOWN_MS: u64 = 2_000;
/// Bound on a started node becoming ready (`/readyz`).
pub const READY_WAIT_MS: u64 = 30_000;
/// Bound on the leader hearing a ready node again; the figure reported when it never does.
pub const HEARD_WAIT_MS: u64 = 15_000;
/// Bound on finding a workload call to aim a fault at (then the harness places one).
pub const WORKLOAD_TARGET_WAIT_MS: u64 = 10_000;
/// Bound on a call the harness placed being connected for `TARGET_CONNECTED_MIN_MS`.
pub const AIMED_CONNECT_WAIT_MS: u64 = 15_000;
/// Talk time of a call the harness placed: connected a while, then spans the whole fault.
pub const AIMED_TALK_MS: u64 = TARGET_CONNECTED_MIN_MS + TARGET_REMAINING_MIN_MS + 10_000;
/// Caller numbers of the calls the harness placed start here (the workload's at 1,000,000,
/// the leader-kill probe's at 9,000,000).
const AIMED_NUMBER_BASE: u64 = 8_000_000;
/// A targeted call has been connected this long...
pub const TARGET_CONNECTED_MIN_MS: u64 = 1_000;
/// ...and stays up (by its script) at least this much longer: it spans the whole restart.
pub const TARGET_REMAINING_MIN_MS: u64 = 8_000;
/// Bound on the probe operator being logged in and available before the leader is killed.
pub const AVAILABLE_OPERATOR_WAIT_MS: u64 = 30_000;
/// Bound on the caller arriving at the leader's kill being answered; reported when never.
pub const LEADER_KILL_ANSWER_WAIT_MS: u64 = 30_000;
/// Talk time of that caller.
const PROBE_TALK_MS: u64 = 5_000;
const POLL_MS: u64 = 50;
const ANSWER_POLL_MS: u64 = 20;
/// Entries the leader must have from a restarted node beyond what existed at its stop
/// (one more than could have been in flight then).
const HEARD_ENTRIES_BEYOND_STOP: u64 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Term,
    Kill,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The node of a connected caller's site; `cross`: answered at another site.
    CallerNode {
        cross: bool,
    },
    /// The node of the operator's site of a connected cross-site call.
    OperatorNode,
    Leader,
    /// One site, whatever its calls (the site whose history and Redis are behind relays).
    Site(u64),
}

pub const SCHEDULE: [(Stop, Target); 8] = [
    (Stop::Term, Target::CallerNode { cross: false }),
    (Stop::Term, Target::CallerNode { cross: true }),
    (Stop::Term, Target::OperatorNode),
    (Stop::Term, Target::Leader),
    (Stop::Kill, Target::CallerNode { cross: false }),
    (Stop::Kill, Target::CallerNode { cross: true }),
    (Stop::Kill, Target::OperatorNode),
    (Stop::Kill, Target::Leader),
];

/// What the faults did and measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FaultFigures {
    pub restarts: u64,
    pub kills: u64,
    /// Per restart: `(what, ready after start ms, heard after ready ms)`; None: never.
    pub restarts_detail: Vec<RestartRecord>,
    pub leader_kill_to_answer_ms: Option<u64>,
    /// How many faults of each kind were applied (`term`, `kill`, `pause`, `isolate`, ...).
    pub faults: BTreeMap<String, u64>,
    /// Pauses, partitions, clock skews and ARI cuts (`nemesis`, `random`), each with when the
    /// leader heard the site again.
    pub outages: Vec<OutageRecord>,
    /// A caller placed after the last fault healed, answered after this many ms (nemesis).
    pub after_faults_answer_ms: Option<u64>,
    /// Faults not applied (no call of the kind to aim at, no leader known) and why.
    pub skipped: Vec<String>,
    /// Calls the harness placed to aim a fault at (`Chaos::target_call`): outside the
    /// workload's queue, so the order check leaves them out.
    pub aimed_calls: Vec<String>,
    /// Each kill -9 aimed at a snapshot being built and written, with where it landed.
    pub snapshot_kills: Vec<crate::snapshot_kill::SnapshotKillRecord>,
    /// Each membership change with a kill in it, and whether the nodes agreed afterwards.
    pub memberships: Vec<crate::member_kill::MembershipRecord>,
    /// When no node could name a leader that named itself (`leaders.rs`).
    pub leaderless: Vec<crate::leaders::Leaderless>,
    /// The cut sites that became islands and merged back (`--scenario island`).
    pub islands: Vec<crate::island::IslandRecord>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RestartRecord {
    pub what: String,
    pub site: u64,
    pub ready_after_start_ms: Option<u64>,
    pub heard_after_ready_ms: Option<u64>,
    /// When the node was stopped and when it was ready again (the stand-in's clock, on which
    /// the truth's times are): the site saw no ARI event in between.
    pub down_from_ms: u64,
    pub ready_at_ms: Option<u64>,
}

/// A pause or a partition of one site.
#[derive(Clone, Debug, Serialize)]
pub struct OutageRecord {
    pub what: String,
    pub site: u64,
    /// The site's node read no ARI event while it lasted (frozen, or its events socket cut).
    pub blind: bool,
    /// Nothing the site proposed could commit, or it saw no new caller, while it lasted
    /// (frozen, partitioned, its ARI cut, its disk full): its callers join the global order
    /// only once it is back.
    pub cut_off: bool,
    /// The cut may have let some of the site's proposals through (a flapping link; a node
    /// that sends but hears nothing, whose writes the leader may still commit): a caller
    /// entering then may have joined the order at once, or only at the heal.
    pub partial: bool,
    /// When it began and healed, on the stand-in's clock (as the truth's times).
    pub from_ms: u64,
    pub until_ms: u64,
    /// Ms from the heal (or SIGCONT) until the leader had new entries acknowledged by the
    /// site; None: not within `HEARD_WAIT_MS`.
    pub heard_after_heal_ms: Option<u64>,
}

impl FaultFigures {
    pub fn count(&mut self, kind: &str) {
        *self.faults.entry(kind.to_string()).or_default() += 1;
    }

    /// The worst heal-to-heard time of the outages; one never heard counts as `HEARD_WAIT_MS`.
    pub fn max_heal_to_heard_ms(&self) -> Option<u64> {
        self.outages.iter().map(|o| o.heard_after_heal_ms.unwrap_or(HEARD_WAIT_MS)).max()
    }

    /// The worst restart-to-heard time; a node never heard counts as `HEARD_WAIT_MS`.
    pub fn max_restart_to_heard_ms(&self) -> u64 {
        self.restarts_detail.iter().map(|r| r.heard_after_ready_ms.unwrap_or(HEARD_WAIT_MS)).max().unwrap_or(0)
    }
}

pub struct Chaos<'a> {
    pub nodes: &'a mut Nodes,
    pub api: NodeApi,
    pub standin: Arc<StandIn>,
    pub figures: FaultFigures,
    pub log: Vec<String>,
}

impl Chaos<'_> {
    /// The stand-in's clock now (ms since it started; the truth's times are on it), 0 when it
    /// cannot be read.
    pub(crate) async fn standin_now_ms(&self) -> u64 {
        self.standin.state().await.map(|state| state.now_ms).unwrap_or_default()
    }

    /// Logs a step with the stand-in's clock (the truth's times are on it).
    pub(crate) async fn note(&mut self, line: String) {
        let at_ms = self.standin_now_ms().await;
        let line = format!("@{at_ms} ms {line}");
        eprintln!("lineup-chaos: {line}");
        self.log.push(line);
    }

    /// Runs the whole schedule, the faults spread over `duration_ms` (back to back when a
    /// fault takes longer than its share).
    pub async fn run_restarts(&mut self, duration_ms: u64) {
        let started = Instant::now();
        let slot_ms = duration_ms / (SCHEDULE.len() as u64 + 1);
        for (index, (stop, target)) in SCHEDULE.iter().enumerate() {
            let slot_start = started + Duration::from_millis(slot_ms * index as u64);
            tokio::time::sleep_until(slot_start).await;
            self.fault(*stop, *target).await;
        }
        for site in self.nodes.sites() {
            self.settle().await;
            self.restart(site, Stop::Term, &format!("rolling restart of site {site}")).await;
        }
        tokio::time::sleep_until(started + Duration::from_millis(duration_ms)).await;
    }

    async fn fault(&mut self, stop: Stop, target: Target) {
        self.settle().await;
        let what = format!("{stop:?} of the {target:?}");
        let Some(site) = self.aim(target).await else {
            self.note(format!("skipped {what}: nothing to aim at")).await;
            self.figures.skipped.push(what);
            return;
        };
        if (stop, target) == (Stop::Kill, Target::Leader) {
            self.kill_leader_with_probe(site).await;
        } else {
            self.restart(site, stop, &format!("{what} (site {site})")).await;
        }
    }

    /// The site a fault at `target` hits now, if there is one.
    pub(crate) async fn aim(&mut self, target: Target) -> Option<u64> {
        match target {
            Target::Leader => self.leader().await,
            Target::CallerNode { cross } => self.target_call(cross).await.map(|e| e.caller_box as u64 + 1),
            Target::OperatorNode => self.target_call(true).await.map(|e| e.operator_box as u64 + 1),
            Target::Site(site) => Some(site),
        }
    }

    /// Every node ready, bounded.
    pub(crate) async fn settle(&mut self) {
        for site in self.nodes.sites() {
            let Ok(layout) = self.nodes.site(site) else { continue };
            let api = layout.api_url();
            let ready = poll(READY_WAIT_MS, POLL_MS, || async { self.api.ready(&api).await.then_some(()) }).await;
            if ready.is_none() {
                self.note(format!("site {site} not ready before the next fault")).await;
            }
        }
    }

    pub(crate) async fn leader(&self) -> Option<u64> {
        for site in self.nodes.sites() {
            let Ok(layout) = self.nodes.site(site) else { continue };
            if let Some(leader) = self.api.leader(&layout.api_url()).await {
                return Some(leader);
            }
        }
        None
    }

    /// A connected call (local, or cross-site when `cross`) that spans the coming fault: one
    /// of the workload's, else one the harness places to an aimed operator.
    pub(crate) async fn target_call(&mut self, cross: bool) -> Option<LiveEngagement> {
        if let Some(call) = self.workload_call(cross).await {
            return Some(call);
        }
        self.aimed_call(cross).await
    }

    /// A workload call of the kind, connected a while and not ending soon, bounded.
    async fn workload_call(&self, cross: bool) -> Option<LiveEngagement> {
        poll(WORKLOAD_TARGET_WAIT_MS, POLL_MS, || async {
            let state = self.standin.state().await.ok()?;
            state
                .engaged
                .into_iter()
                .filter(|e| (e.caller_box != e.operator_box) == cross)
                .filter(|e| state.now_ms.saturating_sub(e.since_ms) >= TARGET_CONNECTED_MIN_MS)
                .find(|e| e.ends_at_ms.saturating_sub(state.now_ms) >= TARGET_REMAINING_MIN_MS)
        })
        .await
    }

    /// Places a caller to a free aimed operator (`setup::aimed_operator`) from its own box, or
    /// from the next one when `cross`, and waits until they have been connected a while.
    async fn aimed_call(&mut self, cross: bool) -> Option<LiveEngagement> {
        let sites = self.nodes.sites();
        let busy: Vec<String> = self.standin.state().await.ok()?.engaged.into_iter().map(|e| e.operator).collect();
        let rotation = self.figures.aimed_calls.len();
        let pick = (0..sites.len())
            .map(|k| (rotation + k) % sites.len())
            .find(|&i| !busy.contains(&aimed_operator(sites[i]).id))
            .unwrap_or(rotation % sites.len());
        let operator_site = sites[pick];
        let caller_site = if cross { sites[(pick + 1) % sites.len()] } else { operator_site };
        let number = format!("+1555{:07}", AIMED_NUMBER_BASE + rotation as u64);
        let exten = aimed_gate_exten(operator_site);
        let placed = self.standin.place_caller(caller_site as usize - 1, &exten, &number, plan(AIMED_TALK_MS, false));
        let call_id = match placed.await {
            Ok(call_id) => call_id,
            Err(error) => {
                self.note(format!("placing an aimed call failed: {error:#}")).await;
                return None;
            }
        };
        let operator = aimed_operator(operator_site).id;
        self.note(format!(
            "no workload call to aim at: placed {call_id} at site {caller_site} for operator {operator}"
        ))
        .await;
        self.figures.aimed_calls.push(call_id.clone());
        poll(AIMED_CONNECT_WAIT_MS, POLL_MS, || async {
            let state = self.standin.state().await.ok()?;
            let connected_for = |e: &LiveEngagement| state.now_ms.saturating_sub(e.since_ms);
            state.engaged.iter().find(|e| e.call_id == call_id && connected_for(e) >= TARGET_CONNECTED_MIN_MS).cloned()
        })
        .await
    }

    /// The leader's committed log index now (what a stopped node may have acknowledged).
    pub(crate) async fn log_at_stop(&self, member: u64) -> Option<u64> {
        let leader = self.leader().await?;
        let api = self.nodes.site(leader).ok()?.api_url();
        Some(self.api.leader_view(&api, leader, member).await?.committed_log)
    }

    async fn stop(&mut self, site: u64, stop: Stop) {
        match stop {
            Stop::Term => {
                if let Ok(false) = self.nodes.terminate(site).await {
                    self.note(format!("site {site} did not exit on SIGTERM in time; killed")).await;
                }
            }
            Stop::Kill => {
                let _ = self.nodes.kill(site);
            }
        }
    }

    /// Stops `site`, keeps it down `RESTART_DOWN_MS`, starts it and measures.
    pub(crate) async fn restart(&mut self, site: u64, stop: Stop, what: &str) {
        let log_at_stop = self.log_at_stop(site).await;
        let down_since = Instant::now();
        let down_from_ms = self.standin_now_ms().await;
        self.stop(site, stop).await;
        self.note(format!("{what}: stopped")).await;
        tokio::time::sleep_until(down_since + Duration::from_millis(RESTART_DOWN_MS)).await;
        let kind = if stop == Stop::Term { "term" } else { "kill" };
        self.bring_back(site, stop, what, log_at_stop, down_from_ms, kind).await;
    }

    /// Starts the stopped `site` again, counts it as a fault of `kind`, and measures it.
    pub(crate) async fn bring_back(
        &mut self,
        site: u64,
        stop: Stop,
        what: &str,
        log_at_stop: Option<u64>,
        down_from_ms: u64,
        kind: &str,
    ) {
        if let Err(error) = self.nodes.start(site) {
            self.note(format!("{what}: could not start site {site}: {error:#}")).await;
            return;
        }
        match stop {
            Stop::Term => self.figures.restarts += 1,
            Stop::Kill => self.figures.kills += 1,
        }
        self.figures.count(kind);
        let started = Instant::now();
        let Ok(api) = self.nodes.site(site).map(|s| s.api_url()) else { return };
        let ready = poll(READY_WAIT_MS, POLL_MS, || async { self.api.ready(&api).await.then_some(()) }).await;
        let ready_after_start_ms = ready.map(|_| elapsed_ms(started));
        let ready_at_ms = match ready {
            Some(()) => Some(self.standin_now_ms().await),
            None => None,
        };
        let heard_after_ready_ms = match (ready, log_at_stop) {
            (Some(()), Some(log)) => self.heard(site, log).await,
            _ => None,
        };
        self.note(format!(
            "{what}: ready {ready_after_start_ms:?} ms after start, heard by the leader {heard_after_ready_ms:?} ms after ready"
        )).await;
        let record = RestartRecord {
            what: what.to_string(),
            site,
            ready_after_start_ms,
            heard_after_ready_ms,
            down_from_ms,
            ready_at_ms,
        };
        self.figures.restarts_detail.push(record);
    }

    /// Ms from now (the node just became ready) until the leader has entries from `site`
    /// beyond what existed when it stopped.
    pub(crate) async fn heard(&self, site: u64, log_at_stop: u64) -> Option<u64> {
        let ready_at = Instant::now();
        let wanted = log_at_stop + HEARD_ENTRIES_BEYOND_STOP;
        poll(HEARD_WAIT_MS, POLL_MS, || async {
            let leader = self.leader().await?;
            let api = self.nodes.site(leader).ok()?.api_url();
            let view = self.api.leader_view(&api, leader, site).await?;
            (view.member_matched? >= wanted).then(|| elapsed_ms(ready_at))
        })
        .await
    }

    /// kill -9 of the leader while an operator is free at another site; a caller arriving
    /// there at that moment must be answered quickly (the write follows the new leader).
    async fn kill_leader_with_probe(&mut self, leader: u64) {
        let what = format!("Kill of the Leader (site {leader})");
        let free = match self.free_probe_operator(leader).await {
            Ok(site) => Some(site),
            Err(why) => {
                self.note(format!("{what}: no answer probe: {why}")).await;
                None
            }
        };
        // The login took a few seconds: kill whoever leads now, unless that is the probe's site.
        let leader = match self.leader().await {
            Some(now) if Some(now) != free => now,
            _ => leader,
        };
        let what = format!("Kill of the Leader (site {leader})");
        let log_at_stop = self.log_at_stop(leader).await;
        let killed_at = Instant::now();
        let down_from_ms = self.standin_now_ms().await;
        self.stop(leader, Stop::Kill).await;
        self.note(format!("{what}: killed; operator free elsewhere: {free:?}")).await;
        if let Some(site) = free {
            self.figures.leader_kill_to_answer_ms = Some(self.probe_answer(site, killed_at).await);
        } else {
            self.figures.skipped.push(format!("{what}: answer probe (no probe operator free at another site)"));
        }
        tokio::time::sleep_until(killed_at + Duration::from_millis(RESTART_DOWN_MS)).await;
        self.bring_back(leader, Stop::Kill, &what, log_at_stop, down_from_ms, "kill").await;
    }

    /// Logs in the probe operator of a site other than `leader` (see `probe_operator`) and
    /// waits until it is available; that site, or why not.
    pub(crate) async fn free_probe_operator(&self, leader: u64) -> Result<u64, String> {
        let site = self.nodes.sites().into_iter().find(|site| *site != leader).ok_or("no other site")?;
        let api = self.nodes.site(site).map_err(|e| format!("{e:#}"))?.api_url();
        let operator = probe_operator(site);
        // A persistent operator: its offer bridges at once, so the figure is Lineup's failover
        // and not a ring-mode phone's scripted answer delay.
        let login =
            self.standin.add_operator(&operator.id, site as usize - 1, false, OPERATOR_PIN, RING_ANSWER_AFTER_MS);
        login.await.map_err(|e| format!("logging in operator {}: {e:#}", operator.id))?;
        let available = poll(AVAILABLE_OPERATOR_WAIT_MS, POLL_MS, || async {
            let states = self.api.operators(&api).await?;
            states.iter().any(|(id, state)| *id == operator.id && state == "available").then_some(site)
        });
        let wait = AVAILABLE_OPERATOR_WAIT_MS;
        available.await.ok_or_else(|| format!("operator {} not available within {wait} ms", operator.id))
    }

    /// Places the probe's caller at `site` (gate `web`, the probe operator's queue) and waits
    /// until it is connected; ms since `since` (`LEADER_KILL_ANSWER_WAIT_MS` when never).
    pub(crate) async fn probe_answer(&mut self, site: u64, since: Instant) -> u64 {
        let number = format!("+1555{:07}", 9_000_000 + site);
        let placed =
            self.standin.place_caller(site as usize - 1, GATE_PROBE_EXTEN, &number, plan(PROBE_TALK_MS, false));
        let call_id = match placed.await {
            Ok(call_id) => call_id,
            Err(error) => {
                self.note(format!("answer probe: placing the caller failed: {error:#}")).await;
                return LEADER_KILL_ANSWER_WAIT_MS;
            }
        };
        let answered = poll(LEADER_KILL_ANSWER_WAIT_MS, ANSWER_POLL_MS, || async {
            let state = self.standin.state().await.ok()?;
            state.engaged.iter().any(|e| e.call_id == call_id).then(|| elapsed_ms(since))
        })
        .await;
        self.note(format!("answer probe: caller {call_id} answered after {answered:?} ms")).await;
        answered.unwrap_or(LEADER_KILL_ANSWER_WAIT_MS)
    }
}
