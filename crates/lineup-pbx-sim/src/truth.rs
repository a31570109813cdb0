//! Ground truth for the chaos harness: what the phones really experienced.
//!
//! Sans-IO: `observe(&PbxWorld)` runs after every change of the world (under its lock, see
//! `LiveWorld::set_observer`) and keeps, per scripted caller, when it entered Stasis, when it
//! was connected to which operator, and who tore its legs down; per operator, every caller
//! it is engaged with. The scripted humans' next moves (hang up after the talk time, give up
//! after the patience, log in again) come out as `ScriptAction`s with a due time.
//!
//! An *engagement* is an operator leg and a caller who heard each other. It lasts while both
//! legs live and either they still hear each other or the operator leg was only moved out of
//! the bridge the caller's path still leads to (the caller is left talking to nobody: the
//! operator was taken away mid-call). An operator engaged with two callers at once is
//! *double booked*. An engagement that ends without a scripted hangup of either party, and a
//! caller whose channel ends without one, is a *call dropped by fault*.

use crate::world::{AudioPath, BoxIndex, EndedBy, PbxWorld};
use lineup_ari::{BridgeKind, ChannelId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Most scripted callers tracked; later ones are refused by `add_caller`.
pub const CALLERS_MAX_COUNT: usize = 100_000;
/// Most incidents (double bookings, drops) kept with details; later ones are only counted.
pub const INCIDENTS_MAX_COUNT: usize = 1_000;
/// Most scripted actions waiting to be due.
pub const ACTIONS_MAX_COUNT: usize = 100_000;
/// Most hops followed from a caller when looking for the bridge its operator was in.
pub const PATH_HOPS_MAX_COUNT: usize = 64;
/// How long a persistent operator whose leg ended waits before dialling in again.
pub const RELOGIN_DELAY_MS: u64 = 3_000;
/// When, after dialling the login extension, the operator keys the PIN (the prompt plays).
pub const PIN_AFTER_DIAL_MS: u64 = 2_500;

/// A channel of a box.
pub type Leg = (usize, String);

/// Which human hangs up a connected call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    Caller,
    Operator,
}

/// How a caller behaves: hangs up `talk_ms` after being connected (or lets the operator),
/// gives up after `patience_ms` if never connected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerPlan {
    pub talk_ms: u64,
    pub hang_up_by: Party,
    pub patience_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorMode {
    Persistent,
    Ring,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub operator: String,
    pub operator_box: usize,
    pub at_ms: u64,
}

/// One scripted caller, as the phones saw it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallerTruth {
    /// `<site>-<channel>`, Lineup's call id (site = box + 1).
    pub call_id: String,
    pub box_index: usize,
    pub channel: String,
    pub plan: CallerPlan,
    pub placed_at_ms: u64,
    pub entered_at_ms: Option<u64>,
    pub connections: Vec<Connection>,
    /// The first scripted hangup that ended a connection (or the caller while waiting).
    pub scripted_by: Option<Party>,
    pub ended_at_ms: Option<u64>,
    pub ended_by: Option<String>,
    /// Why the call counts as dropped by a fault, if it does.
    pub dropped: Option<String>,
}

impl CallerTruth {
    /// The outcome Lineup's history must hold: `("completed", Some(by))` or
    /// `("abandoned", None)`; None when the truth has no single answer (a drop, a caller
    /// that never reached Lineup, a call still live).
    pub fn expected_outcome(&self) -> Option<(&'static str, Option<&'static str>)> {
        if self.dropped.is_some() || self.entered_at_ms.is_none() || self.ended_at_ms.is_none() {
            return None;
        }
        match (self.connections.is_empty(), self.scripted_by?) {
            (true, _) => Some(("abandoned", None)),
            (false, Party::Caller) => Some(("completed", Some("caller"))),
            (false, Party::Operator) => Some(("completed", Some("operator"))),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OperatorTruth {
    pub id: String,
    pub box_index: usize,
    pub mode: OperatorMode,
    pub pin: String,
    /// A persistent operator's current login leg.
    pub login_leg: Option<String>,
    /// That leg has been in a bridge (the node took the login); only then does its end
    /// count as a logout by a fault.
    #[serde(default)]
    pub login_taken: bool,
    pub logins: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Incident {
    pub at_ms: u64,
    pub what: String,
}

#[derive(Clone, Debug)]
struct Engagement {
    caller: Leg,
    operator_leg: Leg,
    operator: String,
    /// The bridge the operator leg was in while they heard each other.
    bridge: Option<(usize, String)>,
}

/// A scripted human's next move.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptAction {
    Hangup {
        leg: Leg,
        party: Party,
    },
    /// A caller gives up waiting unless connected by then.
    Patience {
        leg: Leg,
    },
    Login {
        operator: String,
    },
}

/// What `/truth` answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TruthReport {
    pub now_ms: u64,
    pub callers: Vec<CallerTruth>,
    pub operators: Vec<OperatorTruth>,
    pub double_booked: u64,
    pub double_bookings: Vec<Incident>,
    pub calls_dropped: u64,
    pub drops: Vec<Incident>,
    pub operator_legs_dropped: u64,
    pub operator_leg_drops: Vec<Incident>,
    /// Channels destroyed, by what ended them (`ari`, `human`, `dialplan`, `peer`, `dial_failed`).
    pub teardowns: BTreeMap<String, u64>,
    /// Scripted actions lost because `ACTIONS_MAX_COUNT` were pending.
    pub actions_dropped: u64,
}

/// The live state the harness times its faults by.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LiveState {
    pub now_ms: u64,
    pub engaged: Vec<LiveEngagement>,
    /// Callers in Stasis, alive, never connected.
    pub waiting: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LiveEngagement {
    pub call_id: String,
    pub caller_box: usize,
    pub operator: String,
    pub operator_box: usize,
    pub since_ms: u64,
    /// When the script hangs up (since + the caller's talk time).
    pub ends_at_ms: u64,
}

#[derive(Default)]
pub struct Truth {
    now_ms: u64,
    callers: BTreeMap<Leg, CallerTruth>,
    operators: BTreeMap<String, OperatorTruth>,
    scripted: BTreeMap<Leg, Party>,
    live: BTreeMap<Leg, String>,
    engagements: Vec<Engagement>,
    reported_bookings: BTreeSet<(String, Vec<Leg>)>,
    double_booked: u64,
    double_bookings: Vec<Incident>,
    calls_dropped: u64,
    drops: Vec<Incident>,
    operator_legs_dropped: u64,
    operator_leg_drops: Vec<Incident>,
    teardowns: BTreeMap<String, u64>,
    actions: BTreeMap<(u64, u64), ScriptAction>,
    action_sequence: u64,
    actions_dropped: u64,
}

fn push_incident(list: &mut Vec<Incident>, at_ms: u64, what: String) {
    if list.len() < INCIDENTS_MAX_COUNT {
        list.push(Incident { at_ms, what });
    }
}

/// `PJSIP/desk-1101-0000000a` → `1101`: the operator behind a login (`desk-`) or ring-mode
/// (`phone-`) leg.
pub fn operator_of(name: &str) -> Option<String> {
    let resource = name.strip_prefix("PJSIP/")?.rsplit_once('-')?.0;
    let id = resource.strip_prefix("desk-").or_else(|| resource.strip_prefix("phone-"))?;
    Some(id.to_string())
}

fn ended_kind(ended_by: &EndedBy) -> &'static str {
    match ended_by {
        EndedBy::Ari => "ari",
        EndedBy::Human => "human",
        EndedBy::Dialplan => "dialplan",
        EndedBy::Peer { .. } => "peer",
        EndedBy::DialFailed => "dial_failed",
    }
}

impl Truth {
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Tracks a caller just placed at `leg`; schedules its patience.
    pub fn add_caller(&mut self, leg: Leg, plan: CallerPlan, now_ms: u64) -> bool {
        if self.callers.len() >= CALLERS_MAX_COUNT {
            return false;
        }
        let call_id = format!("{}-{}", leg.0 + 1, leg.1);
        self.schedule(now_ms + plan.patience_ms, ScriptAction::Patience { leg: leg.clone() });
        let truth = CallerTruth {
            call_id,
            box_index: leg.0,
            channel: leg.1.clone(),
            plan,
            placed_at_ms: now_ms,
            entered_at_ms: None,
            connections: Vec::new(),
            scripted_by: None,
            ended_at_ms: None,
            ended_by: None,
            dropped: None,
        };
        self.callers.insert(leg, truth);
        true
    }

    pub fn add_operator(&mut self, operator: OperatorTruth) {
        self.operators.insert(operator.id.clone(), operator);
    }

    pub fn operator(&self, id: &str) -> Option<&OperatorTruth> {
        self.operators.get(id)
    }

    /// A persistent operator dialled in on `leg`.
    pub fn login_placed(&mut self, operator: &str, leg: Option<String>) {
        if let Some(record) = self.operators.get_mut(operator) {
            record.logins += 1;
            if record.mode == OperatorMode::Persistent {
                record.login_leg = leg;
                record.login_taken = false;
            }
        }
    }

    /// Records a scripted hangup of `leg` by `party`, before the world carries it out.
    pub fn mark_scripted(&mut self, leg: &Leg, party: Party) {
        self.scripted.entry(leg.clone()).or_insert(party);
    }

    pub fn is_caller(&self, leg: &Leg) -> bool {
        self.callers.contains_key(leg)
    }

    /// Live callers (for the drain: everyone still there hangs up).
    pub fn live_callers(&self) -> Vec<Leg> {
        self.callers.iter().filter(|(_, c)| c.ended_at_ms.is_none()).map(|(leg, _)| leg.clone()).collect()
    }

    fn schedule(&mut self, at_ms: u64, action: ScriptAction) {
        if self.actions.len() >= ACTIONS_MAX_COUNT {
            self.actions_dropped += 1;
            return;
        }
        self.action_sequence += 1;
        self.actions.insert((at_ms, self.action_sequence), action);
    }

    /// Scripted moves due by `now_ms`, in order; a patience that is moot is skipped.
    pub fn take_due(&mut self, now_ms: u64) -> Vec<ScriptAction> {
        let mut due = Vec::new();
        while let Some(entry) = self.actions.first_entry() {
            if entry.key().0 > now_ms {
                break;
            }
            let action = entry.remove();
            let moot = match &action {
                ScriptAction::Patience { leg } => {
                    self.callers.get(leg).is_none_or(|c| !c.connections.is_empty() || c.ended_at_ms.is_some())
                }
                _ => false,
            };
            if !moot {
                due.push(action);
            }
        }
        due
    }

    /// Brings the truth up to the world as it is now.
    pub fn observe(&mut self, world: &PbxWorld) {
        self.now_ms = world.now_ms();
        let current = live_channels(world);
        let mut gone: Vec<(Leg, String)> = self
            .live
            .iter()
            .filter(|(leg, _)| !current.contains_key(*leg))
            .map(|(l, n)| (l.clone(), n.clone()))
            .collect();
        // A caller the dialplan hung up inside the step that placed it was never seen live.
        for (leg, _) in self.callers.iter().filter(|(leg, c)| c.ended_at_ms.is_none() && !current.contains_key(*leg)) {
            if !self.live.contains_key(leg) {
                gone.push((leg.clone(), "caller".into()));
            }
        }
        let by_name: BTreeMap<(usize, String), Leg> =
            current.iter().map(|(leg, name)| ((leg.0, name.clone()), leg.clone())).collect();
        self.live = current;
        let mut ended: BTreeMap<Leg, String> = BTreeMap::new();
        for (leg, name) in &gone {
            let kind = world
                .ended_channel(BoxIndex(leg.0), &channel_id(&leg.1))
                .map(|e| describe_end(&e.ended_by))
                .unwrap_or_else(|| "unknown".into());
            *self.teardowns.entry(kind.split(' ').next().unwrap_or("unknown").to_string()).or_default() += 1;
            ended.insert(leg.clone(), format!("{name} ended by {kind}"));
        }
        let parties = self.caller_parties(world, &by_name);
        self.note_entries(world);
        self.start_engagements(world, &parties);
        self.settle_engagements(world, &parties, &ended);
        self.check_double_booking();
        self.settle_ended_callers(&ended);
        self.note_logins_taken(world);
        self.settle_operator_legs(&ended);
    }

    fn note_logins_taken(&mut self, world: &PbxWorld) {
        for operator in self.operators.values_mut().filter(|o| !o.login_taken) {
            let Some(leg) = operator.login_leg.clone().map(|id| (operator.box_index, id)) else { continue };
            operator.login_taken = bridge_of(world, &leg).is_some();
        }
    }

    /// For every live caller: the operator legs it hears now.
    fn caller_parties(&self, world: &PbxWorld, by_name: &BTreeMap<(usize, String), Leg>) -> BTreeMap<Leg, Vec<Leg>> {
        let mut parties = BTreeMap::new();
        for leg in self.callers.keys().filter(|leg| self.live.contains_key(*leg)) {
            let heard = match world.audio_path(BoxIndex(leg.0), &channel_id(&leg.1)) {
                Some(AudioPath::Connected { parties }) => parties,
                _ => Vec::new(),
            };
            let operators: Vec<Leg> = heard
                .into_iter()
                .filter(|(_, name)| operator_of(name).is_some())
                .filter_map(|(box_index, name)| by_name.get(&(box_index.0, name)).cloned())
                .collect();
            parties.insert(leg.clone(), operators);
        }
        parties
    }

    fn note_entries(&mut self, world: &PbxWorld) {
        let now_ms = self.now_ms;
        for (leg, caller) in self.callers.iter_mut().filter(|(_, c)| c.entered_at_ms.is_none()) {
            let Ok(snapshot) = world.get_channel(BoxIndex(leg.0), &leg.1) else { continue };
            if snapshot.dialplan.app_name == "Stasis" && snapshot.dialplan.app_data.starts_with("lineup,") {
                caller.entered_at_ms = Some(now_ms);
            }
        }
    }

    fn start_engagements(&mut self, world: &PbxWorld, parties: &BTreeMap<Leg, Vec<Leg>>) {
        for (caller_leg, operator_legs) in parties {
            for operator_leg in operator_legs {
                let known = self.engagements.iter().any(|e| &e.caller == caller_leg && &e.operator_leg == operator_leg);
                if known {
                    continue;
                }
                let name = self.live.get(operator_leg).cloned().unwrap_or_default();
                let operator = operator_of(&name).unwrap_or_default();
                let bridge = bridge_of(world, operator_leg);
                self.engagements.push(Engagement {
                    caller: caller_leg.clone(),
                    operator_leg: operator_leg.clone(),
                    operator: operator.clone(),
                    bridge,
                });
                self.connected(caller_leg, operator_leg, operator);
            }
        }
    }

    /// A caller and an operator leg just heard each other: the talk starts.
    fn connected(&mut self, caller_leg: &Leg, operator_leg: &Leg, operator: String) {
        let now_ms = self.now_ms;
        let Some(caller) = self.callers.get_mut(caller_leg) else { return };
        caller.connections.push(Connection { operator, operator_box: operator_leg.0, at_ms: now_ms });
        let (talk_ms, party) = (caller.plan.talk_ms, caller.plan.hang_up_by);
        let leg = match party {
            Party::Caller => caller_leg.clone(),
            Party::Operator => operator_leg.clone(),
        };
        self.schedule(now_ms + talk_ms, ScriptAction::Hangup { leg, party });
    }

    fn settle_engagements(
        &mut self,
        world: &PbxWorld,
        parties: &BTreeMap<Leg, Vec<Leg>>,
        ended: &BTreeMap<Leg, String>,
    ) {
        let engagements = std::mem::take(&mut self.engagements);
        for mut engagement in engagements {
            let hears = parties.get(&engagement.caller).is_some_and(|legs| legs.contains(&engagement.operator_leg));
            if hears {
                engagement.bridge = bridge_of(world, &engagement.operator_leg).or(engagement.bridge);
                self.engagements.push(engagement);
                continue;
            }
            let both_live =
                self.live.contains_key(&engagement.caller) && self.live.contains_key(&engagement.operator_leg);
            let taken_away = both_live
                && engagement.bridge.as_ref().is_some_and(|bridge| {
                    bridge_of(world, &engagement.operator_leg).as_ref() != Some(bridge)
                        && path_reaches(world, &engagement.caller, bridge)
                });
            if taken_away {
                self.engagements.push(engagement);
                continue;
            }
            let scene = describe_scene(world, &engagement);
            self.engagement_ended(&engagement, ended, scene);
        }
    }

    fn engagement_ended(&mut self, engagement: &Engagement, ended: &BTreeMap<Leg, String>, scene: String) {
        let scripted =
            self.scripted.get(&engagement.caller).or_else(|| self.scripted.get(&engagement.operator_leg)).copied();
        let now_ms = self.now_ms;
        let Some(caller) = self.callers.get_mut(&engagement.caller) else { return };
        match scripted {
            Some(party) => {
                caller.scripted_by.get_or_insert(party);
            }
            None => {
                let torn: Vec<&String> = ended.values().collect();
                let what = format!(
                    "call {} with operator {} broke without a scripted hangup; torn down now: {:?}; {scene}",
                    caller.call_id, engagement.operator, torn
                );
                if caller.dropped.is_none() {
                    caller.dropped = Some(what.clone());
                    self.calls_dropped += 1;
                    push_incident(&mut self.drops, now_ms, what);
                }
            }
        }
    }

    fn check_double_booking(&mut self) {
        let mut by_operator: BTreeMap<&str, BTreeSet<&Leg>> = BTreeMap::new();
        for engagement in &self.engagements {
            by_operator.entry(&engagement.operator).or_default().insert(&engagement.caller);
        }
        let mut found = Vec::new();
        for (operator, callers) in by_operator.into_iter().filter(|(_, callers)| callers.len() > 1) {
            let legs: Vec<Leg> = callers.into_iter().cloned().collect();
            found.push((operator.to_string(), legs));
        }
        for key in found {
            if self.reported_bookings.insert(key.clone()) {
                self.double_booked += 1;
                let calls: Vec<String> = key.1.iter().map(|leg| format!("{}-{}", leg.0 + 1, leg.1)).collect();
                let what = format!("operator {} engaged with {} callers at once: {:?}", key.0, calls.len(), calls);
                push_incident(&mut self.double_bookings, self.now_ms, what);
            }
        }
    }

    fn settle_ended_callers(&mut self, ended: &BTreeMap<Leg, String>) {
        let now_ms = self.now_ms;
        for (leg, description) in ended {
            let scripted = self.scripted.get(leg).copied();
            let Some(caller) = self.callers.get_mut(leg) else { continue };
            caller.ended_at_ms = Some(now_ms);
            caller.ended_by = Some(description.clone());
            if let Some(party) = scripted {
                caller.scripted_by.get_or_insert(party);
            }
            // Ended by the dialplan after its operator hung up (sent on with COMPLETED): fine.
            if caller.scripted_by.is_some() || caller.dropped.is_some() {
                continue;
            }
            let stage = match (caller.entered_at_ms, caller.connections.is_empty()) {
                (None, _) => "before reaching Lineup",
                (Some(_), true) => "while waiting",
                (Some(_), false) => "after being connected",
            };
            let what = format!("caller {} torn down {stage}: {description}", caller.call_id);
            caller.dropped = Some(what.clone());
            self.calls_dropped += 1;
            push_incident(&mut self.drops, now_ms, what);
        }
    }

    /// A persistent operator's login leg ended: unless scripted, a fault logged them out.
    /// Either way they dial in again after `RELOGIN_DELAY_MS`.
    fn settle_operator_legs(&mut self, ended: &BTreeMap<Leg, String>) {
        let now_ms = self.now_ms;
        let mut relogins = Vec::new();
        for operator in self.operators.values_mut() {
            let Some(leg) = operator.login_leg.clone().map(|id| (operator.box_index, id)) else { continue };
            let Some(description) = ended.get(&leg) else { continue };
            operator.login_leg = None;
            relogins.push(operator.id.clone());
            if operator.login_taken && !self.scripted.contains_key(&leg) {
                self.operator_legs_dropped += 1;
                let what = format!("operator {} logged out by a teardown: {description}", operator.id);
                push_incident(&mut self.operator_leg_drops, now_ms, what);
            }
        }
        for operator in relogins {
            self.schedule(now_ms + RELOGIN_DELAY_MS, ScriptAction::Login { operator });
        }
    }

    pub fn report(&self) -> TruthReport {
        TruthReport {
            now_ms: self.now_ms,
            callers: self.callers.values().cloned().collect(),
            operators: self.operators.values().cloned().collect(),
            double_booked: self.double_booked,
            double_bookings: self.double_bookings.clone(),
            calls_dropped: self.calls_dropped,
            drops: self.drops.clone(),
            operator_legs_dropped: self.operator_legs_dropped,
            operator_leg_drops: self.operator_leg_drops.clone(),
            teardowns: self.teardowns.clone(),
            actions_dropped: self.actions_dropped,
        }
    }

    pub fn live_state(&self) -> LiveState {
        let engaged = self
            .engagements
            .iter()
            .filter_map(|e| {
                let caller = self.callers.get(&e.caller)?;
                let since_ms = caller.connections.last().map(|c| c.at_ms).unwrap_or(self.now_ms);
                Some(LiveEngagement {
                    call_id: caller.call_id.clone(),
                    caller_box: e.caller.0,
                    operator: e.operator.clone(),
                    operator_box: e.operator_leg.0,
                    since_ms,
                    ends_at_ms: since_ms + caller.plan.talk_ms,
                })
            })
            .collect();
        let waiting = self
            .callers
            .values()
            .filter(|c| c.entered_at_ms.is_some() && c.connections.is_empty() && c.ended_at_ms.is_none())
            .map(|c| c.call_id.clone())
            .collect();
        LiveState { now_ms: self.now_ms, engaged, waiting }
    }
}

fn describe_end(ended_by: &EndedBy) -> String {
    match ended_by {
        EndedBy::Peer { box_index, channel } => format!("peer (box {} channel {channel})", box_index.0),
        other => ended_kind(other).to_string(),
    }
}

/// Where the caller and the operator leg are now, for an incident's details.
fn describe_scene(world: &PbxWorld, engagement: &Engagement) -> String {
    let describe = |leg: &Leg| match world.get_channel(BoxIndex(leg.0), &leg.1) {
        Err(_) => "gone".to_string(),
        Ok(channel) => {
            let bridge = bridge_of(world, leg).and_then(|b| world.get_bridge(BoxIndex(b.0), &b.1).ok());
            let bridge =
                bridge.map(|b| format!("{:?} bridge {} with {} channels", b.bridge_type, b.id, b.channels.len()));
            let place = format!("{}({})", channel.dialplan.app_name, channel.dialplan.app_data);
            format!("{:?}, at {place}, {}", channel.state, bridge.unwrap_or_else(|| "in no bridge".into()))
        }
    };
    format!("caller: {}; operator leg: {}", describe(&engagement.caller), describe(&engagement.operator_leg))
}

fn channel_id(id: &str) -> ChannelId {
    // Ids come from the world itself, so they are valid; an invalid one finds nothing.
    ChannelId::new(id.to_string()).unwrap_or_else(|_| ChannelId::new("invalid".to_string()).expect("literal id"))
}

fn live_channels(world: &PbxWorld) -> BTreeMap<Leg, String> {
    let mut live = BTreeMap::new();
    for box_index in 0..world.box_count() {
        for (id, name) in world.channel_names(BoxIndex(box_index)) {
            live.insert((box_index, id.to_string()), name);
        }
    }
    live
}

fn bridge_of(world: &PbxWorld, leg: &Leg) -> Option<(usize, String)> {
    world.channel_bridge(BoxIndex(leg.0), &channel_id(&leg.1)).map(|bridge| (leg.0, bridge))
}

/// Whether `target` is among the mixing bridges reachable from `start` through bridges and
/// answered Local pairs or trunk legs.
fn path_reaches(world: &PbxWorld, start: &Leg, target: &(usize, String)) -> bool {
    let mut seen: BTreeSet<Leg> = BTreeSet::from([start.clone()]);
    let mut frontier = vec![start.clone()];
    for _ in 0..PATH_HOPS_MAX_COUNT {
        let Some(leg) = frontier.pop() else { return false };
        let mut next = Vec::new();
        if let Some(bridge) = bridge_of(world, &leg) {
            if &bridge == target {
                return true;
            }
            if let Ok(found) = world.get_bridge(BoxIndex(bridge.0), &bridge.1) {
                if found.bridge_type == BridgeKind::Mixing {
                    next.extend(found.channels.iter().map(|id| (bridge.0, id.to_string())));
                }
            }
        }
        if let Some((box_index, peer, true)) = world.media_peer(BoxIndex(leg.0), &channel_id(&leg.1)) {
            next.push((box_index.0, peer.to_string()));
        }
        for candidate in next {
            if seen.insert(candidate.clone()) {
                frontier.push(candidate);
            }
        }
    }
    false
}
