//! The simulated people: callers (Poisson arrivals per gate, talk times, patience, callback
//! takers), operators (PIN logins over DTMF, ring-mode phones that miss rings, breaks) and
//! the API clients that set their state; the bootstrap configuration they are routed by;
//! and how they react to what was committed.

use lineup_ari::{CallerId, ChannelId};
use lineup_cluster::origin::origin_for;
use lineup_core::*;
use lineup_pbx_sim::{BoxIndex, PhoneBehaviour, PhoneCall};

use super::events::Ev;
use super::replication::Replication;
use super::sites::{Waiter, PROPOSE_TIMEOUT_MS};
use super::Sim;
use crate::config::{SimConfig, EPOCH_MS};
use crate::rng::Dice;

/// Operator care (re-login, return from a missed-ring break) runs this often.
pub const CARE_EVERY_MS: u64 = 20_000;
/// Fake PIN for every simulated operator.
const PIN: &str = "2468";
/// Run numbers of the simulated admin's config and of the API clients' writes: command
/// origins name the site that proposes them (peers refuse a forwarded write in another
/// site's name), and these run numbers are far above any node's own.
const CONFIG_ORIGIN_INCARNATION: u32 = u32::MAX;
const CLIENT_ORIGIN_INCARNATION: u32 = u32::MAX - 1;

/// The PIN hash the bootstrap configures and the sites' PIN check compares with.
pub(crate) fn fake_phc(pin: &str) -> String {
    format!("$argon2id$v=19$m=8,t=1,p=1$sim${pin}")
}

pub(crate) struct CallerRec {
    pub(crate) site: usize,
    pub(crate) channel: ChannelId,
    pub(crate) call: CallId,
    taker: bool,
    pub(crate) entered_ms: u64,
    /// How long this caller talks once connected (drawn at arrival, so the M/M/c reference
    /// queue can be fed the same sample path).
    pub(crate) talk_ms: u64,
}

pub(crate) struct OperatorRec {
    id: OperatorId,
    site: usize,
    ring: bool,
    login_until_ms: u64,
    on_break: bool,
}

/// The run's operators, `operators_per_site` at each site, each ring-mode with the
/// workload's share.
pub(crate) fn draw_operators(cfg: &SimConfig, load_dice: &mut Dice) -> Vec<OperatorRec> {
    let w = &cfg.workload;
    let mut operators = Vec::new();
    for site in 0..cfg.sites {
        for k in 0..w.operators_per_site {
            let ring = load_dice.chance(w.ring_mode_share);
            operators.push(OperatorRec {
                id: OperatorId::new(format!("{}{:03}", site + 1, k + 1)),
                site,
                ring,
                login_until_ms: 0,
                on_break: false,
            });
        }
    }
    operators
}

/// The simulated caller behind a caller channel's name: `PJSIP/c12-…` (their own leg) or
/// `PJSIP/+15550000012-…` (a callback to their number).
pub(crate) fn caller_of_channel_name(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("PJSIP/c").or_else(|| name.strip_prefix("PJSIP/+1555"))?;
    rest.split('-').next()?.parse().ok()
}

/// The configuration the cluster starts with: two queues, three gates, the operators, a
/// first tick.
pub(crate) fn bootstrap_commands(cfg: &SimConfig, operators: &[OperatorRec]) -> Vec<Command> {
    let w = &cfg.workload;
    let mut bodies = Vec::new();
    for q in ["sales", "support"] {
        bodies.push(CommandBody::PutQueue(QueueConfig {
            id: QueueId::new(q),
            callback_offer_above_eta_ms: w.callback_offer_above_eta_ms,
            callback_max_attempts: 2,
            callback_retry_delay_ms: 15_000,
            wrap_up_ms: w.wrap_up_ms,
            ring_timeout_ms: 12_000,
            announce_every_ms: w.announce_every_ms,
            max_waiting: 5_000,
            default_handle_ms: w.aht_ms as u64,
            ..Default::default()
        }));
    }
    for (gate, queue) in [("main", "sales"), ("vip", "sales"), ("web", "support")] {
        bodies.push(CommandBody::PutGate(GateConfig {
            id: GateId::new(gate),
            queue: QueueId::new(queue),
            ..Default::default()
        }));
    }
    for op in operators {
        let id = op.id.as_str();
        bodies.push(CommandBody::PutOperator(OperatorConfig {
            id: op.id.clone(),
            name: format!("Operator {id}"),
            site: SiteId(op.site as u64 + 1),
            pin_hash: fake_phc(PIN),
            mode: if op.ring { OperatorMode::Ring } else { OperatorMode::Persistent },
            endpoint: op.ring.then(|| format!("PJSIP/phone-{id}")),
            memberships: [(QueueId::new("sales"), 0), (QueueId::new("support"), 0)].into_iter().collect(),
            ..Default::default()
        }));
    }
    bodies.push(CommandBody::Tick { now_ms: EPOCH_MS });
    bodies
        .into_iter()
        .enumerate()
        .map(|(k, body)| Command {
            id: CommandId { origin: origin_for(1, CONFIG_ORIGIN_INCARNATION), serial: k as u64 + 1 },
            at_ms: EPOCH_MS,
            body,
        })
        .collect()
}

impl<R: Replication> Sim<R> {
    pub(super) fn arrival_mean_ms(&self) -> f64 {
        3_600_000.0 / self.cfg.workload.arrivals_per_hour_per_site
    }

    /// An operator's first login, break and missed ring.
    pub(super) fn schedule_operator(&mut self, op: usize) {
        self.push(200 + 37 * op as u64, Ev::Login { op });
        if let Some(every) = self.cfg.workload.break_every_ms {
            let at = 60_000 + self.load_dice.exponential_ms(every);
            self.push(at, Ev::BreakStart { op });
        }
        if self.operators[op].ring {
            if let Some(every) = self.cfg.workload.ring_miss_every_ms {
                let at = self.load_dice.exponential_ms(every);
                self.push(at, Ev::RingMiss { op, missing: true });
            }
        }
    }

    /// A caller arrives at `site` (and the next arrival is scheduled): a gate, a talk
    /// time, whether they take callbacks and how patient they are are drawn, then the call
    /// is placed at the site's box.
    pub(super) fn arrival(&mut self, site: usize) {
        if !self.arrivals_on {
            return;
        }
        let next = self.load_dice.exponential_ms(self.arrival_mean_ms());
        self.push(self.now_ms + next, Ev::Arrival { site });
        let exten = self.draw_gate();
        let w = &self.cfg.workload;
        let talk = self.load_dice.exponential_ms(w.aht_ms).min((w.aht_ms * w.handle_cap_factor) as u64);
        let taker = self.load_dice.chance(w.callback_takers);
        let patience = w.patience_mean_ms.map(|m| self.load_dice.exponential_ms(m).min(w.patience_max_ms));
        let n = self.next_caller;
        self.next_caller += 1;
        let number = format!("+1555{n:07}");
        if taker {
            self.register_callback_phone(&number, talk);
        }
        let call = PhoneCall {
            phone: format!("c{n}"),
            caller: CallerId { name: format!("Caller {n}"), number },
            context: "lineup-gates".into(),
            exten: exten.into(),
            patience_ms: None,
            keys: vec![],
        };
        let Ok(channel) = self.world.place_call(BoxIndex(site), call) else {
            self.checker.violation(self.now_ms, "I8 the stand-in refused a call".into());
            return;
        };
        let call = self.sites[site].ctl.call_id_for(&channel);
        self.caller_by_call.insert(call.clone(), n);
        self.callers.insert(n, CallerRec { site, channel, call, taker, entered_ms: self.now_ms, talk_ms: talk });
        self.checker.calls.calls += 1;
        if let Some(p) = patience {
            self.push(self.now_ms + p, Ev::Abandon { caller: n });
        }
    }

    /// The gate a caller dials, by the workload's shares.
    fn draw_gate(&mut self) -> &'static str {
        let w = &self.cfg.workload;
        let mut pick = self.load_dice.unit();
        let mut exten = w.gates[0].exten;
        for g in &w.gates {
            if pick < g.share {
                exten = g.exten;
                break;
            }
            pick -= g.share;
        }
        exten
    }

    /// The callback rings the caller's number at the operator's site, whichever that is.
    fn register_callback_phone(&mut self, number: &str, talk_ms: u64) {
        let no_answer = self.load_dice.chance(self.cfg.workload.callback_no_answer);
        let behaviour = PhoneBehaviour {
            answer_after_ms: if no_answer { None } else { Some(3_000) },
            hang_up_after_answer_ms: Some(talk_ms),
            ..Default::default()
        };
        for b in 0..self.cfg.sites {
            let _ = self.world.register_phone(BoxIndex(b), number, behaviour.clone());
        }
    }

    /// A patient caller's patience ran out: they hang up unless connected.
    pub(super) fn abandon(&mut self, caller: u64) {
        let Some(rec) = self.callers.get(&caller) else { return };
        if self.checker.is_connected(&rec.call) {
            return;
        }
        let (b, ch) = (BoxIndex(rec.site), rec.channel.clone());
        self.world.phone_hangup(b, &ch);
    }

    pub(super) fn hang_up(&mut self, caller: u64) {
        let Some(rec) = self.callers.get(&caller) else { return };
        let (b, ch) = (BoxIndex(rec.site), rec.channel.clone());
        self.world.phone_hangup(b, &ch);
    }

    pub(super) fn press(&mut self, caller: u64, digits: &'static str) {
        let Some(rec) = self.callers.get(&caller) else { return };
        let (b, ch) = (BoxIndex(rec.site), rec.channel.clone());
        // The caller may have hung up meanwhile; pressing into nothing is fine.
        let _ = self.world.phone_press(b, &ch, digits);
    }

    pub(super) fn login(&mut self, op: usize) {
        let rec = &self.operators[op];
        let site = rec.site;
        if !self.sites[site].up {
            return;
        }
        let id = rec.id.as_str().to_string();
        if rec.ring {
            let behaviour = PhoneBehaviour { answer_after_ms: Some(1_500), ..Default::default() };
            let _ = self.world.register_phone(BoxIndex(site), &format!("phone-{id}"), behaviour);
        }
        let call = PhoneCall::operator_login(
            &format!("desk-{id}"),
            CallerId { name: id.clone(), number: id.clone() },
            "lineup-operators",
            &format!("*55{id}"),
            PIN,
            3_000,
        );
        let _ = self.world.place_call(BoxIndex(site), call);
        self.operators[op].login_until_ms = self.now_ms + 30_000;
    }

    pub(super) fn break_start(&mut self, op: usize) {
        if self.arrivals_on {
            self.operators[op].on_break = true;
            self.client_propose(op, RequestedState::Break { reason: "coffee".into() });
            let len = self.load_dice.exponential_ms(self.cfg.workload.break_mean_ms);
            self.push(self.now_ms + len, Ev::BreakEnd { op });
        }
    }

    pub(super) fn break_end(&mut self, op: usize) {
        self.operators[op].on_break = false;
        self.client_propose(op, RequestedState::Available);
        if let Some(every) = self.cfg.workload.break_every_ms {
            let at = self.now_ms + self.load_dice.exponential_ms(every);
            self.push(at, Ev::BreakStart { op });
        }
    }

    /// A ring-mode phone stops answering for a while (`missing`), or answers again.
    pub(super) fn ring_miss(&mut self, op: usize, missing: bool) {
        let site = self.operators[op].site;
        let resource = format!("phone-{}", self.operators[op].id);
        let missing = missing && self.arrivals_on;
        let behaviour =
            PhoneBehaviour { answer_after_ms: if missing { None } else { Some(1_500) }, ..Default::default() };
        let _ = self.world.register_phone(BoxIndex(site), &resource, behaviour);
        if missing {
            let len = self.load_dice.exponential_ms(60_000.0);
            self.push(self.now_ms + len, Ev::RingMiss { op, missing: false });
        } else if let Some(every) = self.cfg.workload.ring_miss_every_ms {
            let at = self.now_ms + self.load_dice.exponential_ms(every);
            self.push(at, Ev::RingMiss { op, missing: true });
        }
    }

    /// The fault phase ended: operators on break come back and phones answer again.
    pub(super) fn operators_return(&mut self) {
        for op in 0..self.operators.len() {
            if self.operators[op].on_break {
                self.push(self.now_ms, Ev::BreakEnd { op });
            }
            if self.operators[op].ring {
                self.push(self.now_ms, Ev::RingMiss { op, missing: false });
            }
        }
    }

    /// An API client at the operator's site asks for a state change (breaks).
    pub(super) fn client_propose(&mut self, op: usize, state: RequestedState) {
        let site = self.operators[op].site;
        if !self.sites[site].up {
            return;
        }
        self.client_serial += 1;
        let command = Command {
            id: CommandId {
                origin: origin_for(site as u64 + 1, CLIENT_ORIGIN_INCARNATION),
                serial: self.client_serial,
            },
            at_ms: self.abs_ms(),
            body: CommandBody::OperatorState { operator: self.operators[op].id.clone(), state },
        };
        let gen = self.sites[site].gen;
        self.sites[site].pending.insert(command.id, Waiter::Client { command: command.clone(), attempts: 1 });
        self.push(self.now_ms + PROPOSE_TIMEOUT_MS, Ev::ProposeTimeout { site, gen, id: command.id });
        self.propose_on(site, command);
    }

    /// Operators who were logged out (a lost leg, a restart) log in again; those put on
    /// break by missed rings come back.
    pub(super) fn care(&mut self) {
        for op in 0..self.operators.len() {
            let site = self.operators[op].site;
            if !self.sites[site].up || self.now_ms < self.operators[op].login_until_ms {
                continue;
            }
            let id = &self.operators[op].id;
            let Some(view) = self.read(site, |routing| routing.operator_view(id)) else { continue };
            match view.status {
                OperatorStatus::Offline => self.login(op),
                OperatorStatus::Break { reason } if reason != "coffee" || !self.operators[op].on_break => {
                    self.client_propose(op, RequestedState::Available)
                }
                _ => {}
            }
        }
    }

    /// The simulated humans react to what was committed (once per entry, whoever applied
    /// it first): a connected caller talks, then hangs up; an offered callback is taken.
    pub(super) fn observe(&mut self, cmd: &Command, applied: &Applied) {
        for effect in &applied.effects {
            match effect {
                Effect::CallChanged(view) if view.status == CallStatus::Connected => self.connected(&view.call),
                Effect::CallChanged(view) if view.status == CallStatus::CallbackConnected => {
                    let promised = self.checker.callback_promised_at(&view.call);
                    if promised.is_some_and(|at| self.last_restart_ms > at) {
                        self.coverage.callbacks_served_after_restart += 1;
                    }
                }
                Effect::OfferCallback { call, .. } => self.take_callback(call),
                _ => {}
            }
        }
        match cmd.body {
            CommandBody::SiteUnreachable { .. } => self.coverage.sites_unreachable += 1,
            CommandBody::SiteBack { .. } => self.coverage.sites_back += 1,
            CommandBody::SiteLost { .. } => self.coverage.sites_lost += 1,
            _ => {}
        }
    }

    /// A caller connected the first time talks for their talk time, then hangs up.
    fn connected(&mut self, call: &CallId) {
        if self.checker.mark_connected(call) {
            let caller = self.caller_by_call.get(call).copied();
            if let Some((caller, rec)) = caller.and_then(|c| Some((c, self.callers.get(&c)?))) {
                let talk = rec.talk_ms;
                self.push(self.now_ms + talk, Ev::Hangup { caller });
            }
        }
    }

    /// A callback taker accepts the first callback offer.
    fn take_callback(&mut self, call: &CallId) {
        if let Some(&caller) = self.caller_by_call.get(call) {
            if self.callers[&caller].taker && self.checker.first_callback_offer(call) {
                // "1" accepts, then "1" confirms the caller id as the number.
                self.push(self.now_ms + 4_000, Ev::Press { caller, digits: "1" });
                self.push(self.now_ms + 14_000, Ev::Press { caller, digits: "1" });
            }
        }
    }
}
