//! A federation rig in virtual time: the Asterisk stand-in's sans-IO model (one box per
//! site, joined by PJSIP trunks), one real site controller per box, and a single-node
//! "cluster" that applies every proposal to one `Routing` in order and hands each committed
//! entry to every site. Every loop is bounded in steps and virtual time.
#![allow(dead_code)]

use lineup_ari::{AriError, ChannelId};
use lineup_core::*;
use lineup_pbx_sim::{
    AudioPath, BoxConfig, BoxIndex, Dialplan, PbxWorld, PhoneBehaviour, PhoneCall, ScriptedKeys, TrunkRoute,
};
use lineup_site::{Action, AriFailure, AriRequest, Input, ProposeFailure, SiteConfig, SiteController};
use std::collections::VecDeque;

pub const EPOCH_MS: u64 = 1_795_400_000_000;
pub const TICK_MS: u64 = 250;
pub const STEPS_MAX: usize = 200_000;
pub const BOX: BoxIndex = BoxIndex(0);
pub const SITE: SiteId = SiteId(1);

/// Test-only stand-in for an argon2 PHC string: the rig "verifies" by comparing.
pub fn fake_phc(pin: &str) -> String {
    format!("$argon2id$v=19$m=8,t=1,p=1$test${pin}")
}

pub struct Rig {
    pub world: PbxWorld,
    /// One controller per box: box i is site i + 1.
    pub sites: Vec<SiteController>,
    pub routing: Routing,
    pub index: u64,
    serial: u64,
    inputs: VecDeque<(usize, Input)>,
    pub effects: Vec<Effect>,
    pub ari_log: Vec<AriRequest>,
    next_tick_ms: u64,
    /// Sites whose events socket is down: their ARI events are lost, as on a real drop.
    pub deaf: Vec<bool>,
    /// Sites whose proposals never reach the leader (kept here, never committed).
    pub unheard: Vec<bool>,
    pub unheard_proposals: Vec<Command>,
    /// Sites whose node hears no quorum: each proposal is answered "not committed" at once,
    /// as a node answers one it could not get into the log.
    pub no_quorum: Vec<bool>,
    /// Deliver every ARI event twice (as with two subscribed applications, undeduplicated).
    pub duplicate_events: bool,
    /// The next N bridge additions answer 500 without doing anything.
    pub fail_add_channels: u32,
    /// Sites whose node lags: committed effects for them wait in `lagging_effects` until
    /// `catch_up` (another site may act on an entry first, as across a WAN).
    pub lagging: Vec<bool>,
    lagging_effects: VecDeque<(usize, Input)>,
}

impl Rig {
    pub fn new() -> Rig {
        Rig::federation(1)
    }

    /// `sites` boxes joined by PJSIP trunks named `site-<n>`, each with its site controller.
    /// Queue `sales` (gate `main`) whose only operator, 1001, is talking to a caller who
    /// hangs up after `busy_patience_ms`: the queue's ETA (5 min) is above
    /// `callback_offer_above_eta_ms`, so it offers callbacks.
    pub fn callbacks_offered_behind_a_busy_operator(callback_offer_above_eta_ms: u64, busy_patience_ms: u64) -> Rig {
        let mut rig = Rig::new();
        rig.queue(QueueConfig {
            id: QueueId::new("sales"),
            callback_offer_above_eta_ms: Some(callback_offer_above_eta_ms),
            default_handle_ms: 300_000,
            ..Default::default()
        });
        rig.gate("main", "sales", None);
        rig.operator("1001", "4321", OperatorMode::Persistent, &["sales"]);
        rig.login_call("desk-1001", "1001", "4321");
        assert!(rig.run_until(20_000, |r| r.operator_status("1001") == OperatorStatus::Available));
        let first = rig.caller("busy", "5000", Some(busy_patience_ms));
        let first_call = rig.call_id(&first);
        let connected =
            |r: &Rig| matches!(r.routing.call_view(&first_call).map(|v| v.status), Some(CallStatus::Connected));
        assert!(rig.run_until(20_000, connected));
        rig
    }

    pub fn federation(sites: usize) -> Rig {
        let dialplan = Dialplan::parse(include_str!("../../../../deploy/asterisk/extensions.conf"))
            .expect("deploy dialplan parses");
        let boxes = (0..sites)
            .map(|i| BoxConfig {
                name: format!("site-{}", i + 1),
                asterisk_id: format!("02:00:00:00:00:0{}", i + 1),
                dialplan: dialplan.clone(),
                trunks: (0..sites)
                    .filter(|j| *j != i)
                    .map(|j| TrunkRoute {
                        technology: "PJSIP".into(),
                        trunk: format!("site-{}", j + 1),
                        target: BoxIndex(j),
                        context: "from-lineup".into(),
                    })
                    .collect(),
            })
            .collect();
        let mut world = PbxWorld::new(EPOCH_MS, boxes).expect("world");
        let mut controllers = Vec::new();
        for i in 0..sites {
            world.register_application(BoxIndex(i), "lineup");
            world.register_application(BoxIndex(i), "lineup-login");
            let mut cfg = SiteConfig::new(SiteId(i as u64 + 1), 1);
            cfg.callback_endpoint = Some("PJSIP/{number}".into());
            for j in (0..sites).filter(|j| *j != i) {
                cfg.trunk_endpoints.insert(SiteId(j as u64 + 1), format!("PJSIP/lineup-{{call}}@site-{}", j + 1));
            }
            controllers.push(SiteController::new(cfg));
        }
        let mut rig = Rig {
            world,
            sites: controllers,
            routing: Routing::new(),
            index: 0,
            serial: 0,
            inputs: VecDeque::new(),
            effects: Vec::new(),
            ari_log: Vec::new(),
            next_tick_ms: 0,
            deaf: vec![false; sites],
            unheard: vec![false; sites],
            unheard_proposals: Vec::new(),
            no_quorum: vec![false; sites],
            duplicate_events: false,
            fail_add_channels: 0,
            lagging: vec![false; sites],
            lagging_effects: VecDeque::new(),
        };
        rig.admin(CommandBody::Tick { now_ms: EPOCH_MS }).expect("tick");
        rig
    }

    /// The controller of site 1.
    pub fn site(&self) -> &SiteController {
        &self.sites[0]
    }

    /// The controller of site `index + 1`.
    pub fn site_at(&self, index: usize) -> &SiteController {
        &self.sites[index]
    }

    pub fn now_ms(&self) -> u64 {
        EPOCH_MS + self.world.now_ms()
    }

    /// Applies a command as an administrator would (config, supervisor actions).
    pub fn admin(&mut self, body: CommandBody) -> CommandResult {
        self.serial += 1;
        let cmd = Command { id: CommandId { origin: 999, serial: self.serial }, at_ms: self.now_ms(), body };
        self.commit(&cmd)
    }

    pub fn commit(&mut self, cmd: &Command) -> CommandResult {
        self.index += 1;
        let applied = self.routing.apply(self.index, cmd);
        self.routing.check_invariants().expect("core invariants");
        self.effects.extend(applied.effects.iter().cloned());
        // Every site sees every committed entry in log order and keeps what is for it.
        for site in 0..self.sites.len() {
            let input = Input::Effects { apply_index: self.index, effects: applied.effects.clone() };
            if self.lagging[site] {
                self.lagging_effects.push_back((site, input));
            } else {
                self.inputs.push_back((site, input));
            }
        }
        applied.result
    }

    pub fn queue(&mut self, cfg: QueueConfig) {
        self.admin(CommandBody::PutQueue(cfg)).expect("queue");
    }

    pub fn gate(&mut self, id: &str, queue: &str, whisper: Option<&str>) {
        self.admin(CommandBody::PutGate(GateConfig {
            id: GateId::new(id),
            queue: QueueId::new(queue),
            whisper: whisper.map(str::to_string),
            ..Default::default()
        }))
        .expect("gate");
    }

    pub fn operator(&mut self, id: &str, pin: &str, mode: OperatorMode, queues: &[&str]) {
        self.operator_at(SITE, id, pin, mode, queues)
    }

    pub fn operator_at(&mut self, site: SiteId, id: &str, pin: &str, mode: OperatorMode, queues: &[&str]) {
        self.admin(CommandBody::PutOperator(OperatorConfig {
            id: OperatorId::new(id),
            name: format!("Operator {id}"),
            site,
            pin_hash: fake_phc(pin),
            mode,
            endpoint: (mode == OperatorMode::Ring).then(|| format!("PJSIP/phone-{id}")),
            memberships: queues.iter().map(|q| (QueueId::new(*q), 0)).collect(),
            ..Default::default()
        }))
        .expect("operator");
    }

    pub fn dial(
        &mut self,
        phone: &str,
        number: &str,
        exten: &str,
        context: &str,
        patience_ms: Option<u64>,
        keys: Vec<ScriptedKeys>,
    ) -> ChannelId {
        self.dial_at(BOX, phone, number, exten, context, patience_ms, keys)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn dial_at(
        &mut self,
        at: BoxIndex,
        phone: &str,
        number: &str,
        exten: &str,
        context: &str,
        patience_ms: Option<u64>,
        keys: Vec<ScriptedKeys>,
    ) -> ChannelId {
        let call = PhoneCall {
            phone: phone.into(),
            caller: lineup_ari::CallerId { name: format!("Caller {phone}"), number: number.into() },
            context: context.into(),
            exten: exten.into(),
            patience_ms,
            keys,
        };
        self.world.place_call(at, call).expect("place call")
    }

    pub fn caller(&mut self, phone: &str, exten: &str, patience_ms: Option<u64>) -> ChannelId {
        self.dial(phone, "+15551230000", exten, "lineup-gates", patience_ms, vec![])
    }

    pub fn login_call(&mut self, phone: &str, operator: &str, pin: &str) -> ChannelId {
        self.login_call_at(BOX, phone, operator, pin)
    }

    pub fn login_call_at(&mut self, at: BoxIndex, phone: &str, operator: &str, pin: &str) -> ChannelId {
        let call = PhoneCall::operator_login(
            phone,
            lineup_ari::CallerId { name: operator.into(), number: phone.into() },
            "lineup-operators",
            &format!("*55{operator}"),
            pin,
            3_000,
        );
        self.world.place_call(at, call).expect("login call")
    }

    pub fn phone(&mut self, resource: &str, behaviour: PhoneBehaviour) {
        self.phone_at(BOX, resource, behaviour)
    }

    pub fn phone_at(&mut self, at: BoxIndex, resource: &str, behaviour: PhoneBehaviour) {
        self.world.register_phone(at, resource, behaviour).expect("phone");
    }

    /// Runs until `done` holds or `limit_ms` of virtual time passes; returns whether it held.
    pub fn run_until(&mut self, limit_ms: u64, mut done: impl FnMut(&Rig) -> bool) -> bool {
        let deadline = self.world.now_ms() + limit_ms;
        for _ in 0..STEPS_MAX {
            if done(self) {
                return true;
            }
            if self.process_pending() {
                continue;
            }
            if self.world.now_ms() >= deadline {
                return done(self);
            }
            // Nothing to do now: advance virtual time to the next thing that happens.
            let next = self.world.next_timer_due_ms().unwrap_or(u64::MAX).min(self.next_tick_ms).min(deadline);
            self.world.advance_to(next.max(self.world.now_ms()));
            if self.world.now_ms() >= self.next_tick_ms {
                self.next_tick_ms = self.world.now_ms() + TICK_MS;
                let now = self.now_ms();
                self.admin(CommandBody::Tick { now_ms: now }).expect("tick");
                for site in 0..self.sites.len() {
                    self.inputs.push_back((site, Input::Tick));
                }
            }
        }
        panic!("rig did not settle within {STEPS_MAX} steps");
    }

    /// Lagging sites catch up: their held effects are delivered, in log order.
    pub fn catch_up(&mut self) {
        self.lagging.iter_mut().for_each(|l| *l = false);
        self.inputs.extend(self.lagging_effects.drain(..));
    }

    /// Runs for a stretch of virtual time.
    pub fn run_for(&mut self, ms: u64) {
        self.run_until(ms, |_| false);
    }

    /// Handles one pending world event or input; false when there was nothing.
    fn process_pending(&mut self) -> bool {
        for output in self.world.drain_outputs() {
            if !self.deaf[output.box_index.0] {
                self.inputs.push_back((output.box_index.0, Input::Ari(output.event.clone())));
                if self.duplicate_events {
                    // Asterisk sends one copy per subscribed application; the second copy follows.
                    let mut copy = output.event.clone();
                    copy.application = if copy.application == "lineup" { "lineup-login" } else { "lineup" }.into();
                    self.inputs.push_back((output.box_index.0, Input::Ari(copy)));
                }
            }
        }
        let Some((site, input)) = self.inputs.pop_front() else { return false };
        let now = self.now_ms();
        let actions = self.sites[site].handle(now, input, &self.routing);
        for action in actions {
            self.execute(site, action);
        }
        true
    }

    fn execute(&mut self, site: usize, action: Action) {
        match action {
            Action::Propose { command, .. } if self.unheard[site] => {
                // The site's node is cut off from the leader: nothing it proposes commits, and
                // its own retries are lost too.
                self.unheard_proposals.push(command);
            }
            Action::Propose { token, .. } if self.no_quorum[site] => {
                let failure = ProposeFailure::NotCommitted("no quorum heard".into());
                self.inputs.push_back((site, Input::Proposed { token, result: Err(failure) }));
            }
            Action::Propose { token, command } => {
                let result = self.commit(&command);
                self.inputs.push_back((site, Input::Proposed { token, result: Ok(result) }));
            }
            Action::Reconcile => {
                let channels = self.world.list_channels(BoxIndex(site)).expect("channels");
                let bridges = self.world.list_bridges(BoxIndex(site)).expect("bridges");
                self.inputs.push_back((site, Input::Reconcile { channels, bridges }));
            }
            Action::ReadMissedRecords { max } => {
                let keys = lineup_testkit::read_missed_records(&mut self.world, BoxIndex(site), max).expect("records");
                self.inputs.push_back((site, Input::MissedRecords { keys }));
            }
            Action::VerifyPin { token, pin, phc } => {
                self.inputs.push_back((site, Input::PinVerified { token, ok: phc.phc() == fake_phc(pin.digits()) }));
            }
            Action::Ari { token, request } => {
                self.ari_log.push(request.clone());
                let result = self.ari(BoxIndex(site), &request).map_err(|e| match e {
                    AriError::NotFound { message } => AriFailure::Gone(message),
                    other => AriFailure::Failed(other.to_string()),
                });
                self.inputs.push_back((site, Input::AriDone { token, result }));
            }
        }
    }

    fn ari(&mut self, at: BoxIndex, request: &AriRequest) -> Result<(), AriError> {
        if matches!(request, AriRequest::AddChannels { bridge, .. } if bridge.as_str().starts_with("call-"))
            && self.fail_add_channels > 0
        {
            self.fail_add_channels -= 1;
            return Err(AriError::ServerError { message: "Internal Server Error".into() });
        }
        lineup_testkit::execute_ari(&mut self.world, at, request)
    }

    /// The events socket of `site` comes back: the controller reconciles against what the
    /// box holds now.
    pub fn reconnect(&mut self, site: usize) {
        self.reconnect_with(site, |_| {});
    }

    /// As `reconnect`, with `between_lists` run on the box after the controller read the
    /// channels and before it reads the bridges (two requests, so anything can happen in
    /// between); the events it causes arrive after the reconcile, as on the socket.
    pub fn reconnect_with(&mut self, site: usize, between_lists: impl FnOnce(&mut PbxWorld)) {
        self.deaf[site] = false;
        let channels = self.world.list_channels(BoxIndex(site)).expect("channels");
        between_lists(&mut self.world);
        let bridges = self.world.list_bridges(BoxIndex(site)).expect("bridges");
        self.inputs.push_back((site, Input::Reconcile { channels, bridges }));
    }

    /// The site's process restarts: a fresh controller (new serial range), then reconcile.
    pub fn restart(&mut self, site: usize) {
        self.restart_with(site, |_| {});
    }

    /// As `restart`, reconciling with `reconnect_with`.
    pub fn restart_with(&mut self, site: usize, between_lists: impl FnOnce(&mut PbxWorld)) {
        let old = &self.sites[site];
        let mut cfg = SiteConfig::new(old.site(), 1_000_000 * (self.serial + 1));
        cfg.callback_endpoint = Some("PJSIP/{number}".into());
        for j in (0..self.sites.len()).filter(|j| *j != site) {
            cfg.trunk_endpoints.insert(SiteId(j as u64 + 1), format!("PJSIP/lineup-{{call}}@site-{}", j + 1));
        }
        self.sites[site] = SiteController::new(cfg);
        self.inputs.retain(|(s, _)| *s != site);
        self.reconnect_with(site, between_lists);
    }

    pub fn call_id(&self, channel: &ChannelId) -> CallId {
        self.sites[0].call_id_for(channel)
    }

    pub fn outcome(&self, call: &CallId) -> Option<Outcome> {
        self.effects.iter().find_map(|e| match e {
            Effect::CallEnded(r) if &r.call == call => Some(r.outcome.clone()),
            _ => None,
        })
    }

    pub fn operator_status(&self, id: &str) -> OperatorStatus {
        self.routing.operator_view(&OperatorId::new(id)).expect("operator").status
    }

    pub fn audio(&self, channel: &ChannelId) -> Option<AudioPath> {
        self.world.audio_path(BOX, channel)
    }

    pub fn audio_at(&self, at: BoxIndex, channel: &ChannelId) -> Option<AudioPath> {
        self.world.audio_path(at, channel)
    }
}
