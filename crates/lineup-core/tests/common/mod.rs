//! A small harness: applies commands with increasing log indexes and serials, and lets
//! scenario tests speak in call-centre terms.
#![allow(dead_code)]

use lineup_core::*;
use std::collections::BTreeMap;

pub mod days;

pub const SITE_A: SiteId = SiteId(1);
pub const SITE_B: SiteId = SiteId(2);
pub const SITE_C: SiteId = SiteId(3);

pub struct Harness {
    pub routing: Routing,
    pub index: u64,
    pub serial: u64,
    pub now_ms: u64,
    pub effects: Vec<Effect>,
    /// Time of the last Tick applied: like the leader, the harness ticks before any command
    /// stamped later, so command times are never clamped (see COMMAND_CLOCK_LEAD_MAX_MS).
    pub ticked_ms: u64,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub fn new() -> Self {
        Self { routing: Routing::new(), index: 0, serial: 0, now_ms: 1_000_000, effects: Vec::new(), ticked_ms: 0 }
    }

    pub fn command(&mut self, body: CommandBody) -> Command {
        self.serial += 1;
        Command { id: CommandId { origin: 1, serial: self.serial }, at_ms: self.now_ms, body }
    }

    /// Applies and returns (result, effects of this command).
    pub fn apply(&mut self, body: CommandBody) -> (CommandResult, Vec<Effect>) {
        let cmd = self.command(body);
        self.apply_cmd(&cmd)
    }

    pub fn apply_cmd(&mut self, cmd: &Command) -> (CommandResult, Vec<Effect>) {
        if let CommandBody::Tick { now_ms } = cmd.body {
            self.ticked_ms = self.ticked_ms.max(now_ms);
        } else if cmd.at_ms > self.ticked_ms {
            let tick = self.command(CommandBody::Tick { now_ms: cmd.at_ms });
            self.apply_cmd(&tick).0.expect("a Tick is never refused");
        }
        self.index += 1;
        let checked = self.routing.check_command(&cmd.body);
        let fresh = self.routing.result_of(&cmd.id).is_none();
        let applied = self.routing.apply(self.index, cmd);
        if fresh {
            assert_check_agrees(&cmd.body, &checked, &applied.result);
        }
        self.routing.check_invariants().unwrap_or_else(|e| panic!("invariant broken after {:?}: {e}", cmd.body));
        self.effects.extend(applied.effects.iter().cloned());
        (applied.result, applied.effects)
    }

    /// Applies and insists on success.
    pub fn ok(&mut self, body: CommandBody) -> (Response, Vec<Effect>) {
        let kind = body.kind();
        let (result, effects) = self.apply(body);
        (result.unwrap_or_else(|e| panic!("{kind} refused: {e}")), effects)
    }

    pub fn advance(&mut self, ms: u64) -> Vec<Effect> {
        self.now_ms += ms;
        let now_ms = self.now_ms;
        self.ok(CommandBody::Tick { now_ms }).1
    }

    pub fn queue(&mut self, cfg: QueueConfig) {
        self.ok(CommandBody::PutQueue(cfg));
    }

    pub fn simple_queue(&mut self, id: &str) {
        self.queue(QueueConfig { id: QueueId::new(id), ..Default::default() });
    }

    pub fn gate(&mut self, id: &str, queue: &str, whisper: Option<&str>, priority: Option<u8>) {
        self.ok(CommandBody::PutGate(GateConfig {
            id: GateId::new(id),
            queue: QueueId::new(queue),
            whisper: whisper.map(str::to_string),
            priority,
            required_skills: BTreeMap::new(),
        }));
    }

    pub fn operator(&mut self, id: &str, site: SiteId, queues: &[(&str, u8)], skills: &[(&str, u8)]) {
        self.ok(CommandBody::PutOperator(OperatorConfig {
            id: OperatorId::new(id),
            name: id.to_string(),
            site,
            pin_hash: String::new(),
            mode: OperatorMode::Persistent,
            endpoint: None,
            skills: skills.iter().map(|(s, l)| (Skill::new(*s), *l)).collect(),
            memberships: queues.iter().map(|(q, p)| (QueueId::new(*q), *p)).collect(),
        }));
    }

    pub fn ring_operator(&mut self, id: &str, site: SiteId, queues: &[(&str, u8)]) {
        self.ok(CommandBody::PutOperator(OperatorConfig {
            id: OperatorId::new(id),
            name: id.to_string(),
            site,
            mode: OperatorMode::Ring,
            endpoint: Some(format!("PJSIP/{id}")),
            memberships: queues.iter().map(|(q, p)| (QueueId::new(*q), *p)).collect(),
            ..Default::default()
        }));
    }

    pub fn login(&mut self, id: &str, site: SiteId) -> Vec<Effect> {
        let channel = match self.routing.operator_config(&OperatorId::new(id)).map(|c| c.mode) {
            Some(OperatorMode::Ring) => None,
            _ => Some(format!("op-{id}")),
        };
        self.ok(CommandBody::OperatorLogin { operator: OperatorId::new(id), site, channel }).1
    }

    pub fn enqueue_full(
        &mut self,
        call: &str,
        queue: &str,
        gate: Option<&str>,
        priority: Option<u8>,
        site: SiteId,
        skills: &[(&str, u8)],
    ) -> (CommandResult, Vec<Effect>) {
        self.apply(CommandBody::Enqueue(Enqueue {
            call: CallId::new(call),
            queue: QueueId::new(queue),
            gate: gate.map(GateId::new),
            priority,
            caller_number: "5551234".into(),
            caller_name: "Caller".into(),
            site,
            channel: Some(format!("ch-{call}")),
            skills: skills.iter().map(|(s, l)| (Skill::new(*s), *l)).collect(),
            callback_number: None,
        }))
    }

    pub fn enqueue(&mut self, call: &str, queue: &str, site: SiteId) -> Vec<Effect> {
        let (r, e) = self.enqueue_full(call, queue, None, None, site, &[]);
        r.unwrap_or_else(|err| panic!("enqueue {call}: {err}"));
        e
    }

    pub fn offers(effects: &[Effect]) -> Vec<Offer> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Offer(o) | Effect::DialCallback(o) => Some(o.clone()),
                _ => None,
            })
            .collect()
    }

    /// The single offer in `effects` as (call, operator, fence).
    pub fn the_offer(effects: &[Effect]) -> (String, String, u64) {
        let offers = Self::offers(effects);
        assert_eq!(offers.len(), 1, "expected one offer, got {offers:?}");
        (offers[0].call.to_string(), offers[0].operator.to_string(), offers[0].fence)
    }

    pub fn no_offer(effects: &[Effect]) {
        assert!(Self::offers(effects).is_empty(), "unexpected offer {:?}", Self::offers(effects));
    }

    pub fn connect(&mut self, call: &str, operator: &str, fence: u64) -> Vec<Effect> {
        self.ok(CommandBody::Connected { call: CallId::new(call), operator: OperatorId::new(operator), fence }).1
    }

    pub fn complete(&mut self, call: &str, fence: u64, by: HungUpBy) -> Vec<Effect> {
        self.ok(CommandBody::Completed { call: CallId::new(call), fence, by }).1
    }

    pub fn status(&self, operator: &str) -> OperatorStatus {
        self.routing.operator_view(&OperatorId::new(operator)).unwrap().status
    }

    pub fn outcomes(&self) -> Vec<(String, Outcome)> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::CallEnded(r) => Some((r.call.to_string(), r.outcome.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn outcome_of(&self, call: &str) -> Option<Outcome> {
        self.outcomes().into_iter().find(|(c, _)| c == call).map(|(_, o)| o)
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::QueueLog(l) => Some(l.to_line()),
                _ => None,
            })
            .collect()
    }
}

/// `Routing::check_command` refuses exactly what apply refuses, with the same error, for the
/// commands the API proposes; for the others it may only refuse what apply refuses.
fn assert_check_agrees(body: &CommandBody, checked: &Result<(), CoreError>, applied: &CommandResult) {
    if let Err(refusal) = checked {
        assert_eq!(applied.as_ref().err(), Some(refusal), "check refused {body:?} but apply answered {applied:?}");
    }
    let from_api = matches!(
        body,
        CommandBody::PutQueue(_)
            | CommandBody::DeleteQueue { .. }
            | CommandBody::PutGate(_)
            | CommandBody::DeleteGate { .. }
            | CommandBody::PutOperator(_)
            | CommandBody::DeleteOperator { .. }
            | CommandBody::PutSchedule(_)
            | CommandBody::DeleteSchedule { .. }
            | CommandBody::ApplyConfig(_)
            | CommandBody::OperatorLogout { .. }
            | CommandBody::OperatorState { .. }
            | CommandBody::Pull { .. }
            | CommandBody::Reassign { .. }
            | CommandBody::ChangePriority { .. }
            | CommandBody::RequestCallback { .. }
            | CommandBody::SiteLost { .. }
            | CommandBody::Audited { .. }
    );
    if from_api {
        assert_eq!(checked.as_ref().err(), applied.as_ref().err(), "check and apply disagree on {body:?}");
    }
}
