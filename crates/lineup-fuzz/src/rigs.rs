//! What the targets start from: a routing state with a small configuration, and
//! `SiteRig`, a real site controller whose proposals a one-node "cluster" applies to a real
//! `Routing` in order (as `crates/lineup-site/tests/common` does, without the stand-in):
//! every ARI request succeeds unless the target scripts a failure, PINs are checked against
//! a test PHC string, and the core's invariants are checked after every applied command.

use lineup_ari::{AriEvent, Channel, ChannelId, EventKind};
use lineup_core::{
    Command, CommandBody, CommandId, GateConfig, GateId, OperatorConfig, OperatorId, OperatorMode, QueueConfig,
    QueueId, Routing, SiteId,
};
use lineup_site::{Action, AriFailure, Input, SiteConfig, SiteController};
use std::collections::{BTreeMap, VecDeque};

/// Virtual wall clock the rigs start at (Unix ms, late 2026).
pub const EPOCH_MS: u64 = 1_795_400_000_000;
/// The site the rigs' controller runs.
pub const SITE: SiteId = SiteId(1);
/// Origin of the commands an administrator (or the leader's Tick) proposes.
pub const ADMIN_ORIGIN: u64 = 999;
/// Inputs handled per `SiteRig::feed`, at most (a proposal, its result, its effects...).
pub const RIG_STEPS_MAX: usize = 4_096;
/// PIN of every configured operator.
pub const PIN: &str = "1234";
/// Commands per Raft entry stride, as lineup-cluster numbers apply indexes.
pub const STRIDE: u64 = lineup_cluster::batch::ENTRY_COMMANDS_MAX;

/// Test-only stand-in for an argon2 PHC string: the rig "verifies" by comparing.
pub fn fake_phc(pin: &str) -> String {
    format!("$argon2id$v=19$m=8,t=1,p=1$fuzz${pin}")
}

/// Panics (a finding) when the core's state contradicts itself.
pub fn check(routing: &Routing, after: &str) {
    if let Err(broken) = routing.check_invariants() {
        panic!("core invariant broken after {after}: {broken}");
    }
}

fn operator(id: &str, site: u64, mode: OperatorMode, queues: &[&str]) -> OperatorConfig {
    OperatorConfig {
        id: OperatorId::new(id),
        name: format!("Operator {id}"),
        site: SiteId(site),
        pin_hash: fake_phc(PIN),
        mode,
        endpoint: (mode == OperatorMode::Ring).then(|| format!("PJSIP/phone-{id}")),
        memberships: queues.iter().map(|q| (QueueId::new(*q), 0)).collect(),
        ..Default::default()
    }
}

/// The configuration the rigs apply: queues `sales` and `support`, gate `web` into sales,
/// operators `alice` (persistent) and `bob` (ring) at site 1, `carol` at site 2.
pub fn base_config() -> Vec<CommandBody> {
    vec![
        CommandBody::Tick { now_ms: EPOCH_MS },
        CommandBody::PutQueue(QueueConfig { id: QueueId::new("sales"), ..Default::default() }),
        CommandBody::PutQueue(QueueConfig { id: QueueId::new("support"), ..Default::default() }),
        CommandBody::PutGate(GateConfig { id: GateId::new("web"), queue: QueueId::new("sales"), ..Default::default() }),
        CommandBody::PutOperator(operator("alice", 1, OperatorMode::Persistent, &["sales"])),
        CommandBody::PutOperator(operator("bob", 1, OperatorMode::Ring, &["sales", "support"])),
        CommandBody::PutOperator(operator("carol", 2, OperatorMode::Persistent, &["support"])),
    ]
}

/// A `Routing` with [`base_config`] applied (log indexes 1..), and the last log index used.
pub fn configured_routing() -> (Routing, u64) {
    let mut routing = Routing::new();
    let mut index = 0;
    for (serial, body) in base_config().into_iter().enumerate() {
        index += 1;
        let command =
            Command { id: CommandId { origin: ADMIN_ORIGIN, serial: serial as u64 + 1 }, at_ms: EPOCH_MS, body };
        let applied = routing.apply(index * STRIDE, &command);
        assert!(applied.result.is_ok(), "the base config applies: {:?}", applied.result);
    }
    (routing, index)
}

/// A site controller and the routing state its proposals are applied to.
pub struct SiteRig {
    pub controller: SiteController,
    pub routing: Routing,
    pub now_ms: u64,
    log_index: u64,
    admin_serial: u64,
    inputs: VecDeque<Input>,
    /// Results of the next ARI requests (0 done, 1 gone, 2 failed); done when empty.
    pub ari_script: VecDeque<u8>,
    /// Channels Asterisk would list (entered Stasis, not destroyed), for reconciles.
    channels: BTreeMap<ChannelId, Channel>,
    /// The playbacks the controller started, most recent last.
    pub playbacks: Vec<(ChannelId, lineup_ari::PlaybackId)>,
    /// Events a target built for this rig so far (their timestamps differ by it).
    pub events_sent: u64,
    /// Calls the committed commands ended (`Effect::CallEnded`), so far.
    calls_ended: u64,
}

impl SiteRig {
    pub fn new() -> SiteRig {
        let (routing, log_index) = configured_routing();
        let mut cfg = SiteConfig::new(SITE, 1);
        cfg.callback_endpoint = Some("PJSIP/{number}".into());
        cfg.trunk_endpoints.insert(SiteId(2), "PJSIP/lineup-{call}@site-2".into());
        SiteRig {
            controller: SiteController::new(cfg),
            routing,
            now_ms: EPOCH_MS,
            log_index,
            admin_serial: 1_000,
            inputs: VecDeque::new(),
            ari_script: VecDeque::new(),
            channels: BTreeMap::new(),
            playbacks: Vec::new(),
            events_sent: 0,
            calls_ended: 0,
        }
    }

    /// An ARI event, as the events stream delivers it.
    pub fn event(&mut self, event: AriEvent) {
        match &event.kind {
            EventKind::StasisStart { channel, .. } => {
                self.channels.insert(channel.id.clone(), channel.clone());
            }
            EventKind::ChannelDestroyed { channel, .. } => {
                self.channels.remove(&channel.id);
            }
            _ => {}
        }
        self.feed(Input::Ari(event));
    }

    /// Time passes: the leader's Tick is committed and the controller ticks.
    pub fn advance(&mut self, ms: u64) {
        self.now_ms = self.now_ms.saturating_add(ms);
        self.admin(CommandBody::Tick { now_ms: self.now_ms });
        self.feed(Input::Tick);
    }

    /// A command an administrator or supervisor proposes.
    pub fn admin(&mut self, body: CommandBody) {
        self.admin_serial += 1;
        let command =
            Command { id: CommandId { origin: ADMIN_ORIGIN, serial: self.admin_serial }, at_ms: self.now_ms, body };
        // A refusal is the core's answer to this command, like any other.
        let _ = self.commit(&command);
    }

    /// What Asterisk holds now, as after a reconnect.
    pub fn reconcile(&mut self) {
        let channels = self.channels.values().cloned().collect();
        self.feed(Input::Reconcile { channels, bridges: Vec::new() });
    }

    fn commit(&mut self, command: &Command) -> lineup_core::CommandResult {
        self.log_index += 1;
        let apply_index = self.log_index * STRIDE;
        let applied = self.routing.apply(apply_index, command);
        check(&self.routing, command.body.kind());
        let ended = applied.effects.iter().filter(|e| matches!(e, lineup_core::Effect::CallEnded(_))).count();
        self.calls_ended += ended as u64;
        self.inputs.push_back(Input::Effects { apply_index, effects: applied.effects });
        applied.result
    }

    /// Calls the committed commands ended so far.
    pub fn calls_ended(&self) -> u64 {
        self.calls_ended
    }

    /// Hands `input` to the controller and carries out what it asks, until nothing is left.
    pub fn feed(&mut self, input: Input) {
        self.inputs.push_back(input);
        for _ in 0..RIG_STEPS_MAX {
            let Some(input) = self.inputs.pop_front() else { return };
            let actions = self.controller.handle(self.now_ms, input, &self.routing);
            for action in actions {
                self.act(action);
            }
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Propose { token, command } => {
                let result = self.commit(&command);
                self.inputs.push_back(Input::Proposed { token, result: Ok(result) });
            }
            Action::Ari { token, request } => {
                if let lineup_site::AriRequest::Play { channel, playback, .. } = &request {
                    self.playbacks.push((channel.clone(), playback.clone()));
                }
                let result = match self.ari_script.pop_front().unwrap_or(0) % 3 {
                    0 => Ok(()),
                    1 => Err(AriFailure::Gone("404 not found".into())),
                    _ => Err(AriFailure::Failed("500 internal error".into())),
                };
                self.inputs.push_back(Input::AriDone { token, result });
            }
            Action::VerifyPin { token, pin, phc } => {
                self.inputs.push_back(Input::PinVerified { token, ok: fake_phc(pin.digits()) == phc.phc() });
            }
            Action::Reconcile => {
                let channels = self.channels.values().cloned().collect();
                self.inputs.push_back(Input::Reconcile { channels, bridges: Vec::new() });
            }
            // This rig's box has no AstDB records.
            Action::ReadMissedRecords { .. } => self.inputs.push_back(Input::MissedRecords { keys: Vec::new() }),
        }
    }
}

impl Default for SiteRig {
    fn default() -> Self {
        Self::new()
    }
}

/// ARI's JSON for a channel (the shape a real Asterisk 22 sends; see
/// crates/lineup-ari/tests/data/asterisk22-queue-call.jsonl).
pub fn channel_json(id: &str, name: &str, number: &str, app_data: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id, "name": name, "state": "Up", "protocol_id": "",
        "caller": {"name": "", "number": number}, "connected": {"name": "", "number": ""},
        "accountcode": "",
        "dialplan": {"context": "callers", "exten": "s", "priority": 1, "app_name": "Stasis", "app_data": app_data},
        "creationtime": "2026-11-22T05:27:04.654+0000", "language": "en"
    })
}
