//! kill -9 while a membership change (openraft's joint consensus) is in flight, during live
//! calls. The change that leaves the calls alone: a spare site past the founding ones, whose
//! box takes no calls, is added and removed again (removing a founding site would stop its
//! node hearing the log while its box still carries calls, which no operator does on purpose).
//!
//! - `MemberKill(Leader)`: the spare's node started, `POST /v1/cluster/members` at the leader,
//!   and the leader killed a delay from `ADD_KILL_DELAYS_US` after it logged the request (a
//!   watcher thread reads its log): the add takes tens of ms on loopback (the spare joins as a
//!   learner from a snapshot, then the joint configuration, then the final one), and whether
//!   the leader had answered by the kill, and the last membership entry in its stopped log
//!   (`learner`, `joint`, `final`), say where it landed. Started again 2 s later and measured
//!   as any restart.
//! - `MemberKill(Spare)`: `DELETE /v1/cluster/members/{spare}` at the leader, and the spare
//!   (the site being changed) killed right after the request went out; started again 2 s
//!   later, then stopped once the founding sites agree it is gone (a removed node is
//!   decommissioned).
//!
//! After each, the change is asked again at whoever leads until it answers 200 (an operator's
//! retry: openraft 0.9 leaves a change its leader died in for the next leader to be asked
//! again), and every founding node must list the same voters, bounded.

use crate::faults::{Chaos, Stop, RESTART_DOWN_MS};
use crate::raft_logs::raft_log_path;
use crate::snapshot_kill::{log_len, watch_and_kill};
use crate::wait::poll;
use lineup_cluster::log_store::StoredLog;
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// Bound on one membership request: adding waits for the spare to catch up as a learner.
pub const MEMBERSHIP_REQUEST_TIMEOUT_MS: u64 = 20_000;
/// Bound on the leader logging the add request after it was sent.
pub const ADD_REQUEST_SEEN_WAIT_MS: u64 = 5_000;
/// What the leader's API logs when an add arrives.
const ADD_REQUEST_LOGGED: &str = "membership change: add a site";
/// Delays from the leader logging the add to its kill, one per add in turn, spread over the
/// change (it is answered 50-100 ms after the request in a debug build on loopback).
pub const ADD_KILL_DELAYS_US: [u64; 5] = [25_000, 5_000, 50_000, 12_000, 0];
/// The spare is killed this long after its removal was sent (the request has reached the
/// leader; the change commits without the spare, 3 of 4 voters).
const REMOVE_KILL_AFTER_MS: u64 = 5;
/// Bound on the founding nodes agreeing on the voters after a change was asked again.
pub const MEMBERSHIP_CONVERGE_WAIT_MS: u64 = 20_000;
/// Most times a change is asked again before the fault is reported unconverged.
pub const MEMBERSHIP_ATTEMPTS_MAX: u32 = 5;
const CONVERGE_POLL_MS: u64 = 100;

/// One membership change with a kill in it.
#[derive(Clone, Debug, Serialize)]
pub struct MembershipRecord {
    pub what: String,
    pub killed_site: u64,
    /// `add` or `remove` (of the spare).
    pub change: &'static str,
    /// Whether the change was under way when the kill came: its request not yet answered
    /// (and, for the removal, the spare a voter before it).
    pub in_flight_at_kill: bool,
    /// From the leader logging the add to its kill (add only).
    pub kill_delay_us: Option<u64>,
    /// The last membership entry in the killed leader's Raft log (add only): `learner` (the
    /// spare added as a learner), `joint` (both configurations: joint consensus under way),
    /// `final` (the spare a voter) or `before` (nothing of the change), and whether committed.
    pub leader_log_at_kill: Option<String>,
    /// The first request's answer: None when it died with the leader or timed out.
    pub first_answer: Option<u16>,
    /// Requests until one answered 200 and the nodes agreed.
    pub attempts: u32,
    /// The founding nodes' voters at the end (every node the same when `converged`).
    pub voters: Vec<u64>,
    pub converged: bool,
}

impl Chaos<'_> {
    /// Adds the spare at the leader and kills the leader as the change goes in (see the module
    /// comment).
    pub(crate) async fn add_spare_killing_leader(&mut self, leader: u64, what: &str) {
        let Some(spare) = self.nodes.layout.spare.clone() else { return self.skip(what, "no spare site").await };
        if !self.nodes.running(spare.site) {
            if let Err(error) = self.nodes.start(spare.site) {
                return self.skip(what, &format!("starting the spare: {error:#}")).await;
            }
        }
        let (Ok(layout), Some(pid)) = (self.nodes.site(leader).cloned(), self.nodes.pid(leader)) else { return };
        let (leader_api, delay_us) =
            (layout.api_url(), ADD_KILL_DELAYS_US[self.figures.memberships.len() % ADD_KILL_DELAYS_US.len()]);
        let (spare_site, address) = (spare.site, format!("127.0.0.1:{}", spare.quic_port));
        let log_at_stop = self.log_at_stop(leader).await;
        let down_from_ms = self.standin_now_ms().await;
        let offset = log_len(&layout.log);
        let watcher = std::thread::spawn(move || {
            watch_and_kill(layout.log, offset, pid, ADD_REQUEST_LOGGED, delay_us, ADD_REQUEST_SEEN_WAIT_MS)
        });
        let add = {
            let (api, leader_api, address) = (self.api.clone(), leader_api.clone(), address.clone());
            tokio::spawn(async move {
                api.add_member(&leader_api, spare_site, &address, MEMBERSHIP_REQUEST_TIMEOUT_MS).await
            })
        };
        let _ = tokio::task::spawn_blocking(move || watcher.join()).await;
        let killed_at = Instant::now();
        // Not answered when the leader died: the change was under way.
        let in_flight = !add.is_finished();
        let _ = self.nodes.kill(leader);
        let log_at_kill = membership_in_log(&raft_log_path(&layout.data_dir), spare_site);
        self.note(format!(
            "{what}: killed {delay_us} µs after the request; under way: {in_flight}; its log: {log_at_kill}"
        ))
        .await;
        let first_answer = add.await.ok().flatten();
        tokio::time::sleep_until(killed_at + Duration::from_millis(RESTART_DOWN_MS)).await;
        self.bring_back(leader, Stop::Kill, what, log_at_stop, down_from_ms, "member_kill").await;
        let ask = |chaos: &Chaos<'_>, api: String| {
            let (client, address) = (chaos.api.clone(), address.clone());
            async move { client.add_member(&api, spare_site, &address, MEMBERSHIP_REQUEST_TIMEOUT_MS).await }
        };
        let (attempts, voters, converged) = self.converge(true, ask).await;
        self.note(format!("{what}: voters {voters:?} after {attempts} request(s), agreed: {converged}")).await;
        let record = MembershipRecord {
            what: what.to_string(),
            killed_site: leader,
            change: "add",
            in_flight_at_kill: in_flight,
            kill_delay_us: Some(delay_us),
            leader_log_at_kill: Some(log_at_kill),
            first_answer,
            attempts,
            voters,
            converged,
        };
        self.figures.memberships.push(record);
    }

    /// Removes the spare at the leader and kills the spare as the change goes in, then starts
    /// it again and, once the founding sites agree it is gone, stops it.
    pub(crate) async fn remove_spare_killing_it(&mut self, what: &str) {
        let Some(spare) = self.nodes.layout.spare.clone() else { return self.skip(what, "no spare site").await };
        let Some(leader) = self.leader().await else { return self.skip(what, "no leader known").await };
        let Ok(leader_api) = self.nodes.site(leader).map(|s| s.api_url()) else { return };
        let spare_site = spare.site;
        let was_voter = self.api.voters(&leader_api).await.is_some_and(|voters| voters.contains(&spare_site));
        let remove = {
            let (api, leader_api) = (self.api.clone(), leader_api.clone());
            tokio::spawn(async move { api.remove_member(&leader_api, spare_site, MEMBERSHIP_REQUEST_TIMEOUT_MS).await })
        };
        tokio::time::sleep(Duration::from_millis(REMOVE_KILL_AFTER_MS)).await;
        let in_flight = was_voter && !remove.is_finished();
        let killed_at = Instant::now();
        let _ = self.nodes.kill(spare.site);
        self.figures.kills += 1;
        self.figures.count("member_kill");
        self.note(format!("{what}: killed the spare (site {}) as it was being removed", spare.site)).await;
        let first_answer = remove.await.ok().flatten();
        tokio::time::sleep_until(killed_at + Duration::from_millis(RESTART_DOWN_MS)).await;
        if let Err(error) = self.nodes.start(spare.site) {
            self.note(format!("{what}: could not start the spare again: {error:#}")).await;
        }
        let ask = |chaos: &Chaos<'_>, api: String| {
            let client = chaos.api.clone();
            async move { client.remove_member(&api, spare_site, MEMBERSHIP_REQUEST_TIMEOUT_MS).await }
        };
        let (attempts, voters, converged) = self.converge(false, ask).await;
        self.note(format!("{what}: voters {voters:?} after {attempts} request(s), agreed: {converged}")).await;
        let _ = self.nodes.terminate(spare.site).await;
        let record = MembershipRecord {
            what: what.to_string(),
            killed_site: spare.site,
            change: "remove",
            in_flight_at_kill: in_flight,
            kill_delay_us: None,
            leader_log_at_kill: None,
            first_answer,
            attempts,
            voters,
            converged,
        };
        self.figures.memberships.push(record);
    }

    /// The membership change due next, with its kill: the spare added (killing the leader,
    /// `leader`) when it is not a voter, removed (killing it) when it is.
    pub(crate) async fn member_kill(&mut self, leader: u64, what: &str) {
        let spare = self.nodes.layout.spare.as_ref().map(|spare| spare.site);
        let Ok(leader_api) = self.nodes.site(leader).map(|s| s.api_url()) else { return };
        let voters = self.api.voters(&leader_api).await;
        match (spare, voters) {
            (Some(spare), Some(voters)) if voters.contains(&spare) => self.remove_spare_killing_it(what).await,
            (Some(_), Some(_)) => self.add_spare_killing_leader(leader, what).await,
            (None, _) => self.skip(what, "no spare site").await,
            (_, None) => self.skip(what, "the leader's voters could not be read").await,
        }
    }

    async fn skip(&mut self, what: &str, why: &str) {
        self.note(format!("skipped {what}: {why}")).await;
        self.figures.skipped.push(what.to_string());
    }

    /// Asks the change again (`ask` at the leader's API) until it answers 200 (or, for a
    /// removal, 422: not a member any more) and every founding node lists the wanted voters:
    /// the founding sites, and the spare when `with_spare`. Bounded by
    /// `MEMBERSHIP_ATTEMPTS_MAX`; answers the attempts, the voters seen and whether they agree.
    async fn converge<F, Fut>(&mut self, with_spare: bool, ask: F) -> (u32, Vec<u64>, bool)
    where
        F: Fn(&Chaos<'_>, String) -> Fut,
        Fut: std::future::Future<Output = Option<u16>>,
    {
        let mut wanted = self.nodes.sites();
        wanted.extend(self.nodes.layout.spare.as_ref().filter(|_| with_spare).map(|spare| spare.site));
        let mut seen = Vec::new();
        for attempt in 1..=MEMBERSHIP_ATTEMPTS_MAX {
            let leader_api = match self.leader().await {
                Some(leader) => self.nodes.site(leader).map(|s| s.api_url()).ok(),
                None => None,
            };
            let answer = match leader_api {
                Some(api) => ask(&*self, api).await,
                None => None,
            };
            let done = matches!(answer, Some(200)) || (!with_spare && answer == Some(422));
            let agreed =
                poll(MEMBERSHIP_CONVERGE_WAIT_MS / u64::from(MEMBERSHIP_ATTEMPTS_MAX), CONVERGE_POLL_MS, || {
                    self.founding_voters_agree(&wanted)
                })
                .await;
            seen = self.founding_voters().await.into_iter().next().unwrap_or_default();
            if done && agreed.is_some() {
                return (attempt, seen, true);
            }
            self.note(format!("membership not settled (answer {answer:?}, voters {seen:?}); asking again")).await;
        }
        (MEMBERSHIP_ATTEMPTS_MAX, seen, false)
    }

    /// Every founding node's voters, in site order (a node that does not answer is left out).
    async fn founding_voters(&self) -> Vec<Vec<u64>> {
        let mut all = Vec::new();
        for site in self.nodes.sites() {
            let Ok(api) = self.nodes.site(site).map(|s| s.api_url()) else { continue };
            all.extend(self.api.voters(&api).await);
        }
        all
    }

    async fn founding_voters_agree(&self, wanted: &[u64]) -> Option<()> {
        let all = self.founding_voters().await;
        (all.len() == self.nodes.sites().len() && all.iter().all(|voters| voters == wanted)).then_some(())
    }
}

/// Where the membership change adding `spare` stands in the stopped node's Raft log at `path`:
/// its last membership entry, read offline (the process is dead; redb recovers the file as the
/// node's own start would).
fn membership_in_log(path: &std::path::Path, spare: u64) -> String {
    let read = StoredLog::read(path).and_then(|log| Ok((log.memberships()?, log.committed)));
    let (memberships, committed) = match read {
        Ok(found) => found,
        Err(error) => return format!("unreadable: {error}"),
    };
    let Some((index, last)) = memberships.iter().next_back() else { return "no membership entry".into() };
    let stage = if !last.nodes.contains(&spare) {
        "before"
    } else if last.voters.len() > 1 {
        "joint"
    } else if last.voters.iter().any(|voters| voters.contains(&spare)) {
        "final"
    } else {
        "learner"
    };
    let state = if committed.is_some_and(|c| c >= *index) { "committed" } else { "not committed" };
    format!("{stage} at index {index}, {state} (committed index {committed:?})")
}
