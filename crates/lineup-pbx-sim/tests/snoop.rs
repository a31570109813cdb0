//! Snoop channels in the model: who hears whom for each spy/whisper direction, the REST
//! face's refusals, and the teardown rules (a snoop ends with the channel it is on; hanging
//! it up leaves the call alone).

use lineup_ari::{CallerId, ChannelId, EventKind, SnoopDirection};
use lineup_pbx_sim::world::SnoopParams;
use lineup_pbx_sim::{
    handle_rest, AudioPath, BoxConfig, BoxIndex, Dialplan, OriginateParams, PbxWorld, PhoneBehaviour, PhoneCall,
    RestParams,
};

const EXTENSIONS_CONF: &str = include_str!("../../../deploy/asterisk/extensions.conf");
const SITE: BoxIndex = BoxIndex(0);
/// Long enough for every originate in these tests to be answered.
const SETTLE_MS: u64 = 100;

/// A connected call (caller and operator in a mixing bridge) and a supervisor's phone in
/// Stasis, not yet bridged with anything.
struct Call {
    world: PbxWorld,
    caller: ChannelId,
    operator: ChannelId,
    supervisor: ChannelId,
}

fn answering_phone() -> PhoneBehaviour {
    PhoneBehaviour { answer_after_ms: Some(10), ..PhoneBehaviour::default() }
}

fn originate(world: &mut PbxWorld, resource: &str) -> ChannelId {
    let params = OriginateParams {
        endpoint: format!("PJSIP/{resource}"),
        app: Some("lineup".into()),
        ..OriginateParams::default()
    };
    world.originate(SITE, &params).unwrap().id
}

fn connected_call() -> Call {
    let config = BoxConfig {
        name: "site-a".into(),
        asterisk_id: "02:fc:00:00:00:0a".into(),
        dialplan: Dialplan::parse(EXTENSIONS_CONF).unwrap(),
        trunks: vec![],
    };
    let mut world = PbxWorld::new(1_795_325_224_000, vec![config]).unwrap();
    world.register_application(SITE, "lineup");
    world.register_phone(SITE, "op-1", answering_phone()).unwrap();
    world.register_phone(SITE, "2001", answering_phone()).unwrap();
    let call = PhoneCall {
        phone: "alice".into(),
        caller: CallerId { name: "Alice".into(), number: "5551234".into() },
        context: "lineup-gates".into(),
        exten: "5000".into(),
        patience_ms: None,
        keys: vec![],
    };
    let caller = world.place_call(SITE, call).unwrap();
    world.answer(SITE, caller.as_str()).unwrap();
    let operator = originate(&mut world, "op-1");
    let supervisor = originate(&mut world, "2001");
    world.advance_to(SETTLE_MS);
    world.create_bridge(SITE, Some("mixing"), Some("call"), None).unwrap();
    world.add_channels(SITE, "call", &[caller.to_string(), operator.to_string()]).unwrap();
    world.drain_outputs();
    Call { world, caller, operator, supervisor }
}

impl Call {
    /// A snoop on the operator's channel bridged with the supervisor's phone.
    fn monitor(&mut self, spy: SnoopDirection, whisper: SnoopDirection) -> ChannelId {
        let params = SnoopParams {
            app: "lineup".into(),
            app_args: vec!["monitor".into()],
            spy,
            whisper,
            snoop_id: Some(ChannelId::new("snoop-1").unwrap()),
        };
        let snoop = self.world.snoop(SITE, self.operator.as_str(), &params).unwrap().id;
        self.world.create_bridge(SITE, Some("mixing"), Some("monitor"), None).unwrap();
        self.world.add_channels(SITE, "monitor", &[snoop.to_string(), self.supervisor.to_string()]).unwrap();
        snoop
    }

    fn name(&self, channel: &ChannelId) -> (BoxIndex, String) {
        (SITE, self.world.get_channel(SITE, channel.as_str()).unwrap().name)
    }

    /// The humans `channel`'s phone hears.
    fn hears(&self, channel: &ChannelId) -> Vec<(BoxIndex, String)> {
        match self.world.audio_path(SITE, channel) {
            Some(AudioPath::Connected { parties }) => parties,
            other => panic!("{channel} is not connected: {other:?}"),
        }
    }

    fn names(&self, channels: &[&ChannelId]) -> Vec<(BoxIndex, String)> {
        let mut names: Vec<_> = channels.iter().map(|channel| self.name(channel)).collect();
        names.sort();
        names
    }
}

#[test]
fn listen_lets_the_supervisor_hear_both_parties_and_neither_hear_the_supervisor() {
    let mut call = connected_call();
    call.monitor(SnoopDirection::Both, SnoopDirection::None);
    assert_eq!(call.hears(&call.supervisor), call.names(&[&call.caller, &call.operator]));
    assert_eq!(call.hears(&call.caller), call.names(&[&call.operator]));
    assert_eq!(call.hears(&call.operator), call.names(&[&call.caller]));
}

#[test]
fn whisper_out_on_the_operator_reaches_the_operator_only() {
    let mut call = connected_call();
    call.monitor(SnoopDirection::Both, SnoopDirection::Out);
    assert_eq!(call.hears(&call.supervisor), call.names(&[&call.caller, &call.operator]));
    assert_eq!(call.hears(&call.operator), call.names(&[&call.caller, &call.supervisor]));
    assert_eq!(call.hears(&call.caller), call.names(&[&call.operator]));
}

#[test]
fn whisper_in_on_the_operator_reaches_the_caller_only() {
    let mut call = connected_call();
    call.monitor(SnoopDirection::Both, SnoopDirection::In);
    assert_eq!(call.hears(&call.caller), call.names(&[&call.operator, &call.supervisor]));
    assert_eq!(call.hears(&call.operator), call.names(&[&call.caller]));
}

#[test]
fn whisper_both_is_a_barge_everyone_hears_everyone() {
    let mut call = connected_call();
    call.monitor(SnoopDirection::Both, SnoopDirection::Both);
    assert_eq!(call.hears(&call.supervisor), call.names(&[&call.caller, &call.operator]));
    assert_eq!(call.hears(&call.operator), call.names(&[&call.caller, &call.supervisor]));
    assert_eq!(call.hears(&call.caller), call.names(&[&call.operator, &call.supervisor]));
}

#[test]
fn spy_in_hears_the_operator_only_and_spy_out_the_caller_only() {
    let mut call = connected_call();
    call.monitor(SnoopDirection::In, SnoopDirection::None);
    assert_eq!(call.hears(&call.supervisor), call.names(&[&call.operator]));
    call.world.destroy_bridge(SITE, "monitor").unwrap();
    call.world.hangup_channel(SITE, "snoop-1", 16).unwrap();
    call.monitor(SnoopDirection::Out, SnoopDirection::None);
    assert_eq!(call.hears(&call.supervisor), call.names(&[&call.caller]));
}

#[test]
fn the_snoop_channel_is_up_in_the_application_and_named_after_its_target() {
    let mut call = connected_call();
    let snoop = call.monitor(SnoopDirection::Both, SnoopDirection::None);
    let channel = call.world.get_channel(SITE, snoop.as_str()).unwrap();
    assert!(channel.name.starts_with(&format!("Snoop/{}-", call.operator)), "{}", channel.name);
    assert_eq!(channel.state, lineup_ari::ChannelState::Up);
    let started = call.world.drain_outputs().into_iter().any(|output| {
        matches!(&output.event.kind, EventKind::StasisStart { channel, args, .. }
            if channel.id == snoop && args == &["monitor".to_string()])
    });
    assert!(started, "the snoop channel's StasisStart carries its arguments");
}

#[test]
fn the_snoop_ends_with_the_operator_and_leaves_the_supervisor_to_the_application() {
    let mut call = connected_call();
    let snoop = call.monitor(SnoopDirection::Both, SnoopDirection::None);
    call.world.drain_outputs();
    assert!(call.world.phone_hangup(SITE, &call.operator));
    let destroyed: Vec<ChannelId> = call
        .world
        .drain_outputs()
        .into_iter()
        .filter_map(|output| match output.event.kind {
            EventKind::ChannelDestroyed { channel, .. } => Some(channel.id),
            _ => None,
        })
        .collect();
    assert!(destroyed.contains(&snoop), "{destroyed:?}");
    assert!(call.world.get_channel(SITE, snoop.as_str()).is_err());
    // Asterisk hangs up nothing else: the supervisor's leg and the bridge are the app's.
    assert!(call.world.get_channel(SITE, call.supervisor.as_str()).is_ok());
    assert_eq!(call.world.get_bridge(SITE, "monitor").unwrap().channels, vec![call.supervisor.clone()]);
}

#[test]
fn hanging_up_the_snoop_or_the_supervisor_leaves_the_call_alone() {
    let mut call = connected_call();
    let snoop = call.monitor(SnoopDirection::Both, SnoopDirection::Both);
    assert!(call.world.phone_hangup(SITE, &call.supervisor));
    assert!(call.world.get_channel(SITE, snoop.as_str()).is_ok(), "the snoop outlives the supervisor's leg");
    call.world.hangup_channel(SITE, snoop.as_str(), 16).unwrap();
    assert_eq!(call.hears(&call.caller), call.names(&[&call.operator]));
    assert_eq!(call.hears(&call.operator), call.names(&[&call.caller]));
    assert_eq!(call.world.get_bridge(SITE, "call").unwrap().channels.len(), 2);
}

fn rest(world: &mut PbxWorld, path: &str, pairs: &[(&str, &str)]) -> u16 {
    handle_rest(world, SITE, "POST", path, &RestParams::from_pairs(pairs.iter().copied())).status
}

#[test]
fn snoop_requests_are_refused_as_asterisk_refuses_them() {
    let mut call = connected_call();
    let path = format!("/channels/{}/snoop", call.operator);
    let world = &mut call.world;
    assert_eq!(rest(world, &path, &[("app", "lineup")]), 400, "no direction");
    assert_eq!(rest(world, &path, &[("app", "lineup"), ("spy", "sideways")]), 400);
    assert_eq!(rest(world, &path, &[("spy", "both")]), 400, "no application");
    assert_eq!(rest(world, "/channels/nobody/snoop", &[("app", "lineup"), ("spy", "both")]), 404);
    let pairs = [("app", "lineup"), ("spy", "both"), ("whisper", "out"), ("snoopId", "snoop-x")];
    assert_eq!(rest(world, &path, &pairs), 200);
    assert_eq!(rest(world, &path, &pairs), 409, "a retried snoop does not snoop twice");
}
