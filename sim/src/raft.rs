//! A deterministic Raft replication model that feeds the real routing core.
//!
//! Why not openraft itself: see `docs/ARCHITECTURE.md` (section `sim/`). In short, the
//! production node cannot be made bit-reproducible without changing production code
//! (thread_rng election timeouts through openraft's `TokioRuntime`, an unbiased `select!`
//! in its replication loop drawing from tokio's unseeded RNG, and a redb writer on an OS
//! thread that races the paused clock), and it would run two orders of magnitude below the
//! event rate the seed sweep needs.
//!
//! What is kept faithful (Raft paper §5): terms and votes (persisted before answering),
//! randomized election timeouts drawn from the seed, leader append of a blank entry on
//! election, log matching by (prev index, prev term), truncation of conflicting suffixes,
//! commit only of current-term entries on a majority, durability (an append is acknowledged
//! only after its sync; a crash loses the unsynced suffix), snapshots with log compaction
//! and InstallSnapshot for followers behind the compaction point, and lineup-cluster's
//! batching (up to 256 commands per entry, apply index `ApplyIndex::new(log_index, position)`).
//!
//! The model is sans-IO: a handler returns messages to send and entries applied; the
//! simulator owns the network, disks and clocks.

use lineup_cluster::leader_duty::{decide, HealthThresholds, IslandAnswer, MemberHealth};
use lineup_core::{ApplyIndex, Command, CommandBody, CommandId, Routing, SiteId};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::applied::{entry_digest, AppliedEntry};
use crate::rng::{Dice, TraceHash};

mod messages;
pub use messages::{Entry, Msg, Out, RaftTiming, Role};

/// Origin of the leader's own duty proposals (Tick): above every site origin.
pub const LEADER_DUTY_ORIGIN_BASE: u64 = 900;
/// Hops a forwarded proposal may take before it is dropped (the proposer retries).
pub const FORWARD_HOPS_MAX: u8 = 2;

pub struct Node {
    pub id: usize,
    pub n: usize,
    timing: RaftTiming,
    /// Planted bug: the leader applies (and its site acts on) entries as soon as it appends
    /// them, before a majority has them.
    ack_before_commit: bool,
    // ----- durable
    pub term: u64,
    voted_for: Option<usize>,
    snap_index: u64,
    snap_term: u64,
    snap_data: Rc<Vec<u8>>,
    log: Vec<Entry>,
    synced: u64,
    durable_commit: u64,
    // ----- volatile
    pub role: Role,
    pub leader_hint: Option<usize>,
    pub commit: u64,
    pub applied: u64,
    pub routing: Routing,
    pub election_deadline_ms: u64,
    batch: Vec<Command>,
    /// An append to acknowledge once synced: (leader, term, verified index).
    ack: Option<(usize, u64, u64)>,
    duty_serial: u64,
    /// When this process last heard each peer (virtual ms; None: not since it started),
    /// and since when it leads: the leader duty's view of its members' health.
    heard_at_ms: Vec<Option<u64>>,
    leader_since_ms: u64,
    /// Highest index any node has applied (shared): the node that goes beyond it runs the
    /// I3 order check, so each command is checked once, against the state it saw.
    first_applier: Rc<Cell<u64>>,
}

impl Node {
    /// A node whose durable log holds the bootstrap entry (index 1, term 1) and nothing else.
    pub fn new(
        id: usize,
        n: usize,
        timing: RaftTiming,
        bootstrap: Rc<Vec<Command>>,
        ack_before_commit: bool,
        first_applier: Rc<Cell<u64>>,
    ) -> Node {
        let mut node = Node {
            id,
            n,
            timing,
            ack_before_commit,
            term: 1,
            voted_for: None,
            snap_index: 0,
            snap_term: 0,
            snap_data: Rc::new(Vec::new()),
            log: vec![Entry { term: 1, commands: bootstrap }],
            synced: 1,
            durable_commit: 1,
            role: Role::Follower,
            leader_hint: None,
            commit: 0,
            applied: 0,
            routing: Routing::new(),
            election_deadline_ms: 0,
            batch: Vec::new(),
            ack: None,
            duty_serial: 0,
            heard_at_ms: vec![None; n],
            leader_since_ms: 0,
            first_applier,
        };
        let mut out = Out::default();
        node.commit = 1;
        node.apply(&mut out, true);
        node
    }

    pub fn last_index(&self) -> u64 {
        self.snap_index + self.log.len() as u64
    }

    pub fn last_term(&self) -> u64 {
        self.log.last().map_or(self.snap_term, |e| e.term)
    }

    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.snap_index {
            return Some(self.snap_term);
        }
        if index < self.snap_index || index > self.last_index() {
            return None;
        }
        Some(self.log[(index - self.snap_index - 1) as usize].term)
    }

    fn entry(&self, index: u64) -> Option<&Entry> {
        if index <= self.snap_index {
            return None;
        }
        self.log.get((index - self.snap_index - 1) as usize)
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }

    /// Uncompacted log entries held (for the I8 bound).
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    pub fn pending_batch(&self) -> usize {
        self.batch.len()
    }

    pub fn reset_election(&mut self, now_ms: u64, dice: &mut Dice) {
        self.election_deadline_ms = now_ms + dice.range(self.timing.election_min_ms, self.timing.election_max_ms);
    }

    fn step_down(&mut self, term: u64) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.leader_hint = None;
        }
        self.role = Role::Follower;
        self.batch.clear();
    }

    /// The election timer fired: start an election unless a leader was heard meanwhile.
    pub fn on_election_timer(&mut self, now_ms: u64, dice: &mut Dice, out: &mut Out) {
        if self.is_leader() || now_ms < self.election_deadline_ms {
            return;
        }
        self.term += 1;
        self.voted_for = Some(self.id);
        self.leader_hint = None;
        self.role = Role::Candidate { votes: 1 << self.id };
        self.reset_election(now_ms, dice);
        for peer in (0..self.n).filter(|p| *p != self.id) {
            out.msgs.push((
                peer,
                Msg::Vote {
                    term: self.term,
                    candidate: self.id,
                    last_index: self.last_index(),
                    last_term: self.last_term(),
                },
            ));
        }
        if self.n == 1 {
            self.become_leader(now_ms, out);
        }
    }

    /// A message from `peer` arrived (any message: the production leader counts every
    /// successful exchange as contact).
    pub fn heard(&mut self, peer: usize, now_ms: u64) {
        self.heard_at_ms[peer] = Some(now_ms);
    }

    fn become_leader(&mut self, now_ms: u64, out: &mut Out) {
        self.leader_since_ms = now_ms;
        let last = self.last_index();
        let mut matched = vec![0; self.n];
        matched[self.id] = self.synced;
        self.role = Role::Leader { next: vec![last + 1; self.n], matched };
        self.leader_hint = Some(self.id);
        out.became_leader = Some(self.term);
        // A blank entry of the new term lets earlier-term entries commit (§5.4.2).
        self.append_local(Vec::new(), out);
        self.broadcast(false, out);
    }

    /// The leader's duty: a Tick proposal, then the members' health as lineup-cluster's
    /// leader decides it (`leader_duty::decide`), from when this node last heard each peer.
    pub fn tick_duty(&mut self, now_ms: u64, thresholds: HealthThresholds, out: &mut Out) {
        if !self.is_leader() {
            return;
        }
        self.duty_proposal(now_ms, CommandBody::Tick { now_ms }, out);
        for body in decide(&self.members_health(now_ms), thresholds) {
            self.duty_proposal(now_ms, body, out);
        }
    }

    fn duty_proposal(&mut self, now_ms: u64, body: CommandBody, out: &mut Out) {
        self.duty_serial += 1;
        let id = CommandId {
            origin: LEADER_DUTY_ORIGIN_BASE + self.id as u64,
            serial: (self.term << 32) | self.duty_serial,
        };
        self.batch.push(Command { id, at_ms: now_ms, body });
        out.want_flush = true;
    }

    /// Each peer's health as the production leader duty computes it: silence counts from
    /// the last contact, or from taking office if that was later (a new leader has heard
    /// nobody yet); the site's state is this node's applied view.
    fn members_health(&self, now_ms: u64) -> BTreeMap<u64, MemberHealth> {
        (0..self.n)
            .map(|peer| {
                let site = SiteId(peer as u64 + 1);
                if peer == self.id {
                    // The leader hears itself (as lineup-cluster's leader duty does).
                    let (unreachable, lost) = (self.routing.is_site_unreachable(site), self.routing.is_site_lost(site));
                    return (site.0, MemberHealth::leader_itself(unreachable, lost));
                }
                let heard_at = self.heard_at_ms[peer];
                let since = heard_at.map_or(self.leader_since_ms, |at| at.max(self.leader_since_ms));
                let health = MemberHealth {
                    silent_for_ms: now_ms.saturating_sub(since),
                    heard: heard_at.is_some(),
                    unreachable: self.routing.is_site_unreachable(site),
                    lost: self.routing.is_site_lost(site),
                    // The model has no islands yet: every site heard again says it is none.
                    island: IslandAnswer::None,
                };
                (site.0, health)
            })
            .collect()
    }

    /// A proposal from this node's own site (or a client at it).
    pub fn propose(&mut self, command: Command, out: &mut Out) {
        self.on_forward(command, 0, out);
    }

    fn on_forward(&mut self, command: Command, hops: u8, out: &mut Out) {
        if self.is_leader() {
            self.batch.push(command);
            out.want_flush = true;
            return;
        }
        match self.leader_hint {
            Some(leader) if leader != self.id && hops < FORWARD_HOPS_MAX => {
                out.msgs.push((leader, Msg::Forward { command, hops: hops + 1 }));
            }
            _ => out.forwards_dropped += 1,
        }
    }

    /// Appends the gathered proposals as entries and sends them.
    pub fn flush(&mut self, out: &mut Out) {
        if !self.is_leader() || self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        for chunk in batch.chunks(ApplyIndex::STRIDE as usize) {
            self.append_local(chunk.to_vec(), out);
        }
        self.broadcast(false, out);
    }

    fn append_local(&mut self, commands: Vec<Command>, out: &mut Out) {
        self.log.push(Entry { term: self.term, commands: Rc::new(commands) });
        out.want_sync = true;
        if self.ack_before_commit {
            self.apply_to(self.last_index(), out, false);
        }
    }

    /// Appends to every follower: `heartbeat` resends from the last acknowledged index
    /// (recovering lost messages), otherwise only what was not sent yet.
    pub fn broadcast(&mut self, heartbeat: bool, out: &mut Out) {
        let me = self.id;
        for peer in (0..self.n).filter(|p| *p != me) {
            if heartbeat {
                if let Role::Leader { next, matched } = &mut self.role {
                    next[peer] = matched[peer] + 1;
                }
            }
            self.send_append(peer, heartbeat, out);
        }
    }

    fn send_append(&mut self, peer: usize, always: bool, out: &mut Out) {
        let last = self.last_index();
        let Role::Leader { next, .. } = &self.role else { return };
        let next_index = next[peer];
        if next_index <= self.snap_index {
            let msg = Msg::Snapshot {
                term: self.term,
                leader: self.id,
                index: self.snap_index,
                snap_term: self.snap_term,
                data: self.snap_data.clone(),
            };
            out.msgs.push((peer, msg));
            if let Role::Leader { next, .. } = &mut self.role {
                next[peer] = self.snap_index + 1;
            }
            return;
        }
        if next_index > last && !always {
            return;
        }
        let prev_index = next_index - 1;
        let prev_term = self.term_at(prev_index).unwrap_or(0);
        let end = last.min(next_index + self.timing.entries_per_append_max as u64 - 1);
        let entries: Vec<Entry> = (next_index..=end).filter_map(|i| self.entry(i).cloned()).collect();
        let sent_to = prev_index + entries.len() as u64;
        out.msgs.push((
            peer,
            Msg::Append { term: self.term, leader: self.id, prev_index, prev_term, entries, commit: self.commit },
        ));
        if let Role::Leader { next, .. } = &mut self.role {
            next[peer] = sent_to + 1;
        }
    }

    /// The disk caught up: everything appended so far is durable.
    pub fn on_sync(&mut self, out: &mut Out) {
        self.synced = self.last_index();
        self.durable_commit = self.durable_commit.max(self.commit.min(self.synced));
        if let Role::Leader { matched, .. } = &mut self.role {
            matched[self.id] = self.synced;
            self.advance_commit(out);
        } else if let Some((leader, term, verified)) = self.ack.take() {
            if term == self.term {
                out.msgs.push((
                    leader,
                    Msg::AppendResp { term, from: self.id, ok: true, index: verified.min(self.synced) },
                ));
            }
        }
    }

    fn advance_commit(&mut self, out: &mut Out) {
        let Role::Leader { matched, .. } = &self.role else { return };
        let mut sorted = matched.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let majority = sorted[self.n / 2];
        if majority > self.commit && self.term_at(majority) == Some(self.term) {
            self.commit = majority;
            self.apply(out, false);
        }
    }

    fn apply(&mut self, out: &mut Out, replay: bool) {
        self.apply_to(self.commit, out, replay);
    }

    fn apply_to(&mut self, target: u64, out: &mut Out, replay: bool) {
        while self.applied < target {
            let index = self.applied + 1;
            let Some(entry) = self.entry(index).cloned() else { break };
            let check_order = index > self.first_applier.get();
            if check_order {
                self.first_applier.set(index);
            }
            let mut order_issues = Vec::new();
            let mut applied = Vec::with_capacity(entry.commands.len());
            for (pos, cmd) in entry.commands.iter().enumerate() {
                let a = self.routing.apply(ApplyIndex::new(index, pos).get(), cmd);
                if check_order {
                    if let Some(issue) = crate::check::order_check(&self.routing, &a) {
                        order_issues.push(issue);
                    }
                }
                applied.push(a);
            }
            let digest = entry_digest(entry.term, index, &entry.commands, &applied);
            out.applied.push(AppliedEntry {
                log_index: index,
                term: entry.term,
                commands: entry.commands.clone(),
                applied,
                digest,
                replay,
                order_issues,
            });
            self.applied = index;
            if index % self.timing.snapshot_every_entries == 0 {
                self.take_snapshot(out);
            }
        }
    }

    fn take_snapshot(&mut self, out: &mut Out) {
        let index = self.applied;
        let Some(term) = self.term_at(index) else { return };
        let data = self.routing.snapshot_bytes();
        let mut h = TraceHash::default();
        h.bytes(&data);
        out.snapshots.push((index, h.0));
        let keep_from = (index - self.snap_index) as usize;
        self.log.drain(..keep_from.min(self.log.len()));
        self.snap_index = index;
        self.snap_term = term;
        self.snap_data = Rc::new(data);
        self.synced = self.synced.max(index);
        self.durable_commit = self.durable_commit.max(index);
    }

    pub fn handle(&mut self, now_ms: u64, msg: Msg, dice: &mut Dice, out: &mut Out) {
        let msg_term = match &msg {
            Msg::Append { term, .. }
            | Msg::AppendResp { term, .. }
            | Msg::Vote { term, .. }
            | Msg::VoteResp { term, .. }
            | Msg::Snapshot { term, .. } => Some(*term),
            Msg::Forward { .. } => None,
        };
        if let Some(t) = msg_term {
            if t > self.term {
                self.step_down(t);
            }
        }
        match msg {
            Msg::Forward { command, hops } => self.on_forward(command, hops, out),
            Msg::Vote { term, candidate, last_index, last_term } => {
                self.on_vote(now_ms, term, candidate, (last_index, last_term), dice, out)
            }
            Msg::VoteResp { term, from, granted } => self.on_vote_resp(now_ms, term, from, granted, out),
            Msg::Append { term, leader, prev_index, prev_term, entries, commit } => {
                self.on_append(now_ms, term, leader, prev_index, prev_term, entries, commit, dice, out)
            }
            Msg::AppendResp { term, from, ok, index } => self.on_append_resp(term, from, ok, index, out),
            Msg::Snapshot { term, leader, index, snap_term, data } => {
                self.on_snapshot(now_ms, term, leader, (index, snap_term, data), dice, out)
            }
        }
    }

    /// A candidate asks for this node's vote; `last` is its log's (last index, last term).
    fn on_vote(&mut self, now_ms: u64, term: u64, candidate: usize, last: (u64, u64), dice: &mut Dice, out: &mut Out) {
        let (last_index, last_term) = last;
        let up_to_date = (last_term, last_index) >= (self.last_term(), self.last_index());
        let granted =
            term == self.term && up_to_date && self.voted_for.is_none_or(|v| v == candidate) && !self.is_leader();
        if granted {
            // The vote is persisted before the answer leaves (modelled as synchronous).
            self.voted_for = Some(candidate);
            self.reset_election(now_ms, dice);
        }
        out.msgs.push((candidate, Msg::VoteResp { term: self.term, from: self.id, granted }));
    }

    fn on_vote_resp(&mut self, now_ms: u64, term: u64, from: usize, granted: bool, out: &mut Out) {
        if term != self.term || !granted {
            return;
        }
        if let Role::Candidate { votes } = &mut self.role {
            *votes |= 1 << from;
            if votes.count_ones() as usize > self.n / 2 {
                self.become_leader(now_ms, out);
            }
        }
    }

    fn on_append_resp(&mut self, term: u64, from: usize, ok: bool, index: u64, out: &mut Out) {
        if term != self.term {
            return;
        }
        let Role::Leader { next, matched } = &mut self.role else { return };
        if ok {
            matched[from] = matched[from].max(index);
            next[from] = next[from].max(index + 1);
            self.advance_commit(out);
        } else {
            next[from] = next[from].min(index + 1).max(1);
        }
        self.send_append(from, false, out);
    }

    /// The leader sends its snapshot `(index, its term, its bytes)` to a follower behind
    /// its compaction point.
    fn on_snapshot(
        &mut self,
        now_ms: u64,
        term: u64,
        leader: usize,
        snapshot: (u64, u64, Rc<Vec<u8>>),
        dice: &mut Dice,
        out: &mut Out,
    ) {
        if term < self.term {
            out.msgs.push((leader, Msg::AppendResp { term: self.term, from: self.id, ok: false, index: self.commit }));
            return;
        }
        self.role = Role::Follower;
        self.leader_hint = Some(leader);
        self.reset_election(now_ms, dice);
        let (index, snap_term, data) = snapshot;
        if index > self.commit && !self.install_snapshot(index, snap_term, data, out) {
            return;
        }
        out.msgs.push((leader, Msg::AppendResp { term: self.term, from: self.id, ok: true, index: self.commit }));
    }

    /// Replaces the state with the snapshot and keeps the log past it if it matches;
    /// false (a violation) if the snapshot cannot be restored.
    fn install_snapshot(&mut self, index: u64, snap_term: u64, data: Rc<Vec<u8>>, out: &mut Out) -> bool {
        match Routing::restore(&data) {
            Ok(routing) => self.routing = routing,
            Err(e) => {
                out.violations.push(format!("I5 node {} cannot restore a snapshot: {e}", self.id));
                return false;
            }
        }
        if self.term_at(index) == Some(snap_term) {
            let keep_from = (index - self.snap_index) as usize;
            self.log.drain(..keep_from.min(self.log.len()));
        } else {
            self.log.clear();
        }
        self.snap_index = index;
        self.snap_term = snap_term;
        self.snap_data = data;
        self.commit = index;
        self.applied = index;
        self.synced = self.synced.max(index);
        self.durable_commit = index;
        out.installed_snapshot = true;
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append(
        &mut self,
        now_ms: u64,
        term: u64,
        leader: usize,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
        dice: &mut Dice,
        out: &mut Out,
    ) {
        if term < self.term {
            out.msgs.push((
                leader,
                Msg::AppendResp { term: self.term, from: self.id, ok: false, index: self.last_index() },
            ));
            return;
        }
        if self.is_leader() {
            out.violations.push(format!("I5 two leaders in term {term}: {} and {leader}", self.id));
            return;
        }
        self.role = Role::Follower;
        self.leader_hint = Some(leader);
        self.reset_election(now_ms, dice);
        let Some((prev_index, entries)) = self.attach_point(term, leader, (prev_index, prev_term), entries, out) else {
            return;
        };
        let Some(changed) = self.append_entries(prev_index, &entries, out) else { return };
        let verified = prev_index + entries.len() as u64;
        self.commit_and_ack(term, leader, commit.min(verified), verified, changed, out);
    }

    /// Where the leader's entries attach to this log (`prev` is the leader's (index, term)
    /// before them): past this node's snapshot, after a matching entry. None when they do
    /// not attach (the leader is answered).
    fn attach_point(
        &self,
        term: u64,
        leader: usize,
        prev: (u64, u64),
        mut entries: Vec<Entry>,
        out: &mut Out,
    ) -> Option<(u64, Vec<Entry>)> {
        let (mut prev_index, mut prev_term) = prev;
        if prev_index < self.snap_index {
            // Entries up to our snapshot are committed and already in it.
            let skip = (self.snap_index - prev_index) as usize;
            if skip >= entries.len() {
                let verified = prev_index + entries.len() as u64;
                out.msgs.push((leader, Msg::AppendResp { term, from: self.id, ok: true, index: verified }));
                return None;
            }
            entries.drain(..skip);
            prev_index = self.snap_index;
            prev_term = self.snap_term;
        }
        if prev_index > self.last_index() {
            out.msgs.push((leader, Msg::AppendResp { term, from: self.id, ok: false, index: self.last_index() }));
            return None;
        }
        if self.term_at(prev_index) != Some(prev_term) {
            // The committed prefix matches the leader's log (leader completeness).
            let hint = self.commit.min(prev_index.saturating_sub(1));
            out.msgs.push((leader, Msg::AppendResp { term, from: self.id, ok: false, index: hint }));
            return None;
        }
        Some((prev_index, entries))
    }

    /// Appends the entries after `prev_index`, truncating a conflicting suffix; whether the
    /// log changed, None (a violation) if a committed entry would be overwritten.
    fn append_entries(&mut self, prev_index: u64, entries: &[Entry], out: &mut Out) -> Option<bool> {
        let mut changed = false;
        for (k, e) in entries.iter().enumerate() {
            let index = prev_index + 1 + k as u64;
            if index <= self.last_index() {
                if self.term_at(index) == Some(e.term) {
                    continue;
                }
                if index <= self.commit {
                    out.violations.push(format!(
                        "I5 node {} asked to overwrite committed entry {index} (commit {})",
                        self.id, self.commit
                    ));
                    return None;
                }
                self.log.truncate((index - self.snap_index - 1) as usize);
                self.synced = self.synced.min(index - 1);
            }
            self.log.push(e.clone());
            changed = true;
        }
        Some(changed)
    }

    /// Commits up to `new_commit` and acknowledges `verified` to the leader: at once, or
    /// after the sync if the log changed or is not yet synced that far.
    fn commit_and_ack(
        &mut self,
        term: u64,
        leader: usize,
        new_commit: u64,
        verified: u64,
        changed: bool,
        out: &mut Out,
    ) {
        if new_commit > self.commit {
            self.commit = new_commit;
            self.apply(out, false);
        }
        if changed || self.synced < verified {
            out.want_sync = true;
            let best =
                self.ack.filter(|(l, t, _)| *l == leader && *t == term).map_or(verified, |(_, _, v)| v.max(verified));
            self.ack = Some((leader, term, best));
        } else {
            out.msgs.push((leader, Msg::AppendResp { term, from: self.id, ok: true, index: verified }));
        }
    }

    /// The process dies: volatile state and the unsynced log suffix are gone. Answers how
    /// many entries that suffix held.
    pub fn crash(&mut self) -> u64 {
        self.heard_at_ms.iter_mut().for_each(|at| *at = None);
        let keep = self.synced.saturating_sub(self.snap_index) as usize;
        let lost = self.log.len().saturating_sub(keep) as u64;
        self.log.truncate(keep);
        self.role = Role::Follower;
        self.leader_hint = None;
        self.batch.clear();
        self.ack = None;
        lost
    }

    /// The process starts again from its durable snapshot, log, vote and commit index.
    pub fn restart(&mut self, now_ms: u64, dice: &mut Dice, out: &mut Out) {
        self.routing = if self.snap_data.is_empty() {
            Routing::new()
        } else {
            match Routing::restore(&self.snap_data) {
                Ok(r) => r,
                Err(e) => {
                    out.violations.push(format!("I5 node {} cannot restore its own snapshot: {e}", self.id));
                    Routing::new()
                }
            }
        };
        self.applied = self.snap_index;
        self.commit = self.durable_commit.max(self.snap_index).min(self.last_index());
        self.apply(out, true);
        self.reset_election(now_ms, dice);
    }
}
