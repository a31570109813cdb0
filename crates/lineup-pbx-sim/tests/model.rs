//! The model in memory, on virtual time: scripted humans, ring-mode operators, hold music,
//! DTMF and bridges, dialplan continuation, error answers, and determinism.

use lineup_ari::stasis_args::{parse_stasis_entry, StasisEntry};
use lineup_ari::{AriError, CallerId, ChannelId, EventKind, PlaybackState};
use lineup_pbx_sim::world::ORIGINATE_DIAL_DELAY_MS;
use lineup_pbx_sim::{
    handle_rest, AudioPath, BoxConfig, BoxIndex, Dialplan, OriginateParams, PbxWorld, PhoneBehaviour, PhoneCall,
    RestParams, ScriptedKeys, WorldOutput,
};

const EXTENSIONS_CONF: &str = include_str!("../../../deploy/asterisk/extensions.conf");
const SITE: BoxIndex = BoxIndex(0);

struct Harness {
    world: PbxWorld,
    outputs: Vec<WorldOutput>,
}

impl Harness {
    fn new() -> Harness {
        let config = BoxConfig {
            name: "site-a".into(),
            asterisk_id: "02:fc:00:00:00:0a".into(),
            dialplan: Dialplan::parse(EXTENSIONS_CONF).unwrap(),
            trunks: vec![],
        };
        let mut world = PbxWorld::new(1_795_325_224_000, vec![config]).unwrap();
        world.register_application(SITE, "lineup");
        world.register_application(SITE, "lineup-login");
        Harness { world, outputs: Vec::new() }
    }

    fn collect(&mut self) {
        self.outputs.extend(self.world.drain_outputs());
    }

    fn advance(&mut self, delta_ms: u64) {
        let now = self.world.now_ms();
        self.world.advance_to(now + delta_ms);
        self.collect();
    }

    fn take(&mut self) -> Vec<WorldOutput> {
        self.collect();
        std::mem::take(&mut self.outputs)
    }

    fn types(&mut self) -> Vec<String> {
        self.take().iter().map(|output| output.event.kind.type_name().to_string()).collect()
    }

    fn caller(&mut self, exten: &str, patience_ms: Option<u64>, keys: Vec<ScriptedKeys>) -> ChannelId {
        let call = PhoneCall {
            phone: "alice".into(),
            caller: CallerId { name: "Alice".into(), number: "5551234".into() },
            context: "lineup-gates".into(),
            exten: exten.into(),
            patience_ms,
            keys,
        };
        self.world.place_call(SITE, call).unwrap()
    }

    /// A caller in Stasis, answered.
    fn answered_caller(&mut self) -> ChannelId {
        let caller = self.caller("5000", None, vec![]);
        self.world.answer(SITE, caller.as_str()).unwrap();
        self.take();
        caller
    }
}

fn originate_to_phone(resource: &str, timeout_s: i64) -> OriginateParams {
    OriginateParams {
        endpoint: format!("PJSIP/{resource}"),
        app: Some("lineup".into()),
        timeout_s: Some(timeout_s),
        ..OriginateParams::default()
    }
}

#[test]
fn a_caller_out_of_patience_hangs_up() {
    let mut harness = Harness::new();
    let caller = harness.caller("5001", Some(5_000), vec![]);
    let start = harness.take();
    let EventKind::StasisStart { args, .. } = &start[0].event.kind else { panic!("{start:?}") };
    assert_eq!(
        parse_stasis_entry("lineup", args).unwrap(),
        StasisEntry::Caller { queue: "sales".into(), gate: Some("vip".into()), priority: Some(1) }
    );
    harness.world.answer(SITE, caller.as_str()).unwrap();
    harness.advance(4_999);
    assert_eq!(harness.types(), ["ChannelStateChange"]);
    harness.advance(1);
    let outputs = harness.take();
    let types: Vec<&str> = outputs.iter().map(|output| output.event.kind.type_name()).collect();
    // The application's subscription ends with StasisEnd, so ChannelDestroyed is not sent.
    assert_eq!(types, ["ChannelHangupRequest", "StasisEnd"]);
    assert!(matches!(outputs[0].event.kind, EventKind::ChannelHangupRequest { cause: Some(16), soft: None, .. }));
    assert!(harness.world.get_channel(SITE, caller.as_str()).is_err());
}

#[test]
fn a_ring_mode_operator_who_never_answers_times_out() {
    let mut harness = Harness::new();
    harness.world.register_phone(SITE, "op-7", PhoneBehaviour::default()).unwrap();
    let channel = harness.world.originate(SITE, &originate_to_phone("op-7", 15)).unwrap();
    harness.advance(14_999);
    let ringing = harness.take();
    let statuses: Vec<&str> = ringing
        .iter()
        .filter_map(|output| match &output.event.kind {
            EventKind::Dial { dialstatus, .. } => Some(dialstatus.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(statuses, ["", "RINGING"]);
    harness.advance(2);
    let outputs = harness.take();
    assert!(matches!(&outputs[0].event.kind, EventKind::Dial { dialstatus, .. } if dialstatus == "NOANSWER"));
    assert!(
        matches!(&outputs[1].event.kind, EventKind::ChannelDestroyed { cause: 19, cause_txt, .. } if cause_txt == "User alerting, no answer")
    );
    assert!(harness.world.get_channel(SITE, channel.id.as_str()).is_err());
}

#[test]
fn an_unregistered_phone_is_unavailable() {
    let mut harness = Harness::new();
    harness.world.originate(SITE, &originate_to_phone("nobody", 15)).unwrap();
    harness.advance(1);
    let outputs = harness.take();
    assert!(matches!(&outputs.last().unwrap().event.kind, EventKind::ChannelDestroyed { cause: 20, .. }));
    assert!(outputs
        .iter()
        .any(|o| matches!(&o.event.kind, EventKind::Dial { dialstatus, .. } if dialstatus == "CHANUNAVAIL")));
}

#[test]
fn a_ring_mode_operator_answers_after_the_delay_and_enters_stasis() {
    let mut harness = Harness::new();
    let behaviour = PhoneBehaviour {
        answer_after_ms: Some(2_000),
        hang_up_after_answer_ms: Some(10_000),
        ..PhoneBehaviour::default()
    };
    harness.world.register_phone(SITE, "op-8", behaviour).unwrap();
    let channel = harness.world.originate(SITE, &originate_to_phone("op-8", 15)).unwrap();
    // Dialing starts ORIGINATE_DIAL_DELAY_MS after the originate's answer.
    harness.advance(ORIGINATE_DIAL_DELAY_MS + 1_999);
    assert!(!harness.types().contains(&"StasisStart".to_string()));
    harness.advance(1);
    assert_eq!(harness.types(), ["ChannelStateChange", "Dial", "ChannelVarset", "StasisStart"]);
    harness.advance(10_000);
    let types = harness.types();
    assert_eq!(types.first().map(String::as_str), Some("ChannelHangupRequest"));
    assert_eq!(types.last().map(String::as_str), Some("ChannelDestroyed"));
    assert!(harness.world.get_channel(SITE, channel.id.as_str()).is_err());
}

#[test]
fn create_then_dial_enters_stasis_first_and_rings_after() {
    let mut harness = Harness::new();
    let behaviour = PhoneBehaviour { answer_after_ms: Some(500), ..PhoneBehaviour::default() };
    harness.world.register_phone(SITE, "op-5", behaviour).unwrap();
    let params =
        OriginateParams { endpoint: "PJSIP/op-5".into(), app: Some("lineup".into()), ..OriginateParams::default() };
    let channel = harness.world.create_channel(SITE, &params).unwrap();
    assert_eq!(harness.types(), ["ChannelVarset", "StasisStart"]);
    harness.world.dial(SITE, channel.id.as_str(), 10).unwrap();
    harness.advance(ORIGINATE_DIAL_DELAY_MS + 500);
    let types = harness.types();
    assert_eq!(types, ["Dial", "ChannelStateChange", "Dial", "ChannelStateChange", "Dial"]);
    let state = harness.world.get_channel(SITE, channel.id.as_str()).unwrap().state;
    assert_eq!(state, lineup_ari::ChannelState::Up);
    assert!(matches!(harness.world.dial(SITE, channel.id.as_str(), 10), Err(AriError::Conflict { .. })));
}

#[test]
fn a_play_pauses_hold_music_for_good() {
    let mut harness = Harness::new();
    let caller = harness.answered_caller();
    harness.world.start_moh(SITE, caller.as_str(), Some("queue")).unwrap();
    assert_eq!(harness.world.audio_path(SITE, &caller), Some(AudioPath::MusicOnHold { class: "queue".into() }));
    let playback = harness.world.play(SITE, caller.as_str(), None, &["sound:queue-youarenext".into()]).unwrap();
    assert_eq!(playback.state, PlaybackState::Queued);
    assert_eq!(
        harness.world.audio_path(SITE, &caller),
        Some(AudioPath::Prompt { media_uri: "sound:queue-youarenext".into() })
    );
    harness.advance(1_900);
    assert_eq!(harness.types(), ["PlaybackStarted", "PlaybackFinished"]);
    assert_eq!(harness.world.audio_path(SITE, &caller), Some(AudioPath::Silence));
    harness.world.start_moh(SITE, caller.as_str(), None).unwrap();
    assert_eq!(harness.world.audio_path(SITE, &caller), Some(AudioPath::MusicOnHold { class: "default".into() }));
}

#[test]
fn stopping_a_playback_frees_the_channel_for_the_next_command() {
    let mut harness = Harness::new();
    let caller = harness.answered_caller();
    let first = harness.world.play(SITE, caller.as_str(), None, &["sound:queue-periodic-announce".into()]).unwrap();
    let second = harness.world.play(SITE, caller.as_str(), None, &["digits:12".into()]).unwrap();
    harness.advance(100);
    harness.world.stop_playback(SITE, first.id.as_str()).unwrap();
    let outputs = harness.take();
    let started: Vec<String> = outputs
        .iter()
        .filter_map(|o| match &o.event.kind {
            EventKind::PlaybackStarted { playback } => Some(playback.id.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(started, [first.id.to_string(), second.id.to_string()]);
    assert!(matches!(harness.world.stop_playback(SITE, "no-such"), Err(AriError::NotFound { .. })));
}

fn digits_reported(harness: &mut Harness, bridge_type: &str) -> usize {
    let first = harness.answered_caller();
    let second = harness.answered_caller();
    let bridge = harness.world.create_bridge(SITE, Some(bridge_type), None, None).unwrap();
    harness.world.add_channels(SITE, bridge.id.as_str(), &[first.to_string(), second.to_string()]).unwrap();
    harness.take();
    harness.world.phone_press(SITE, &first, "5").unwrap();
    harness.advance(10);
    harness.take().iter().filter(|o| o.event.kind.type_name() == "ChannelDtmfReceived").count()
}

#[test]
fn dtmf_is_reported_only_when_the_bridge_keeps_media_in_the_core() {
    let mut harness = Harness::new();
    assert_eq!(digits_reported(&mut harness, "mixing,dtmf_events"), 1);
    assert_eq!(digits_reported(&mut harness, "mixing,proxy_media"), 1);
    // Plain mixing may go native, and order matters: dtmf_events before mixing is undone.
    assert_eq!(digits_reported(&mut harness, "mixing"), 0);
    assert_eq!(digits_reported(&mut harness, "dtmf_events,mixing"), 0);
}

#[test]
fn continue_hands_the_caller_back_to_the_dialplan_with_a_result() {
    let mut harness = Harness::new();
    let caller = harness.answered_caller();
    harness.world.set_variable(SITE, caller.as_str(), "LINEUP_RESULT", "FULL").unwrap();
    assert_eq!(harness.world.get_variable(SITE, caller.as_str(), "LINEUP_RESULT").unwrap(), "FULL");
    // A playing prompt finishes before the channel leaves Stasis.
    harness.world.play(SITE, caller.as_str(), None, &["sound:queue-thankyou".into()]).unwrap();
    harness.world.continue_in_dialplan(SITE, caller.as_str(), None, None, None).unwrap();
    harness.advance(2_099);
    assert!(!harness.types().contains(&"StasisEnd".to_string()));
    harness.advance(1);
    // The subscription ends with StasisEnd: nothing after it reaches the application.
    assert_eq!(harness.types(), ["PlaybackFinished", "StasisEnd"]);
    // Back in 5000 with STASISSTATUS=SUCCESS and LINEUP_RESULT=FULL: neither GotoIf jumps
    // (no retry, no overflow), and Hangup() ends the call.
    assert!(harness.world.get_channel(SITE, caller.as_str()).is_err());
}

#[test]
fn an_operator_login_call_keys_the_pin() {
    let mut harness = Harness::new();
    let operator_caller = CallerId { name: "Op".into(), number: "100".into() };
    let call = PhoneCall::operator_login("op-100", operator_caller, "lineup-operators", "*55100", "1234", 3_000);
    let channel = harness.world.place_call(SITE, call).unwrap();
    let outputs = harness.take();
    let start = outputs.iter().find(|o| o.event.kind.type_name() == "StasisStart").unwrap();
    let EventKind::StasisStart { args, .. } = &start.event.kind else { unreachable!() };
    assert_eq!(start.event.application, "lineup-login");
    assert_eq!(
        parse_stasis_entry("lineup-login", args).unwrap(),
        StasisEntry::OperatorLogin { operator: Some("100".into()) }
    );
    harness.world.answer(SITE, channel.as_str()).unwrap();
    harness.advance(5_000);
    let digits: String = harness
        .take()
        .iter()
        .filter_map(|o| match &o.event.kind {
            EventKind::ChannelDtmfReceived { digit, .. } => Some(digit.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(digits, "1234#");
}

#[test]
fn keys_after_a_hangup_are_not_reported() {
    let mut harness = Harness::new();
    let keys = vec![ScriptedKeys { at_ms: 1_000, digits: "1".into() }];
    harness.caller("5000", Some(500), keys);
    harness.advance(2_000);
    assert!(!harness.types().contains(&"ChannelDtmfReceived".to_string()));
}

#[test]
fn errors_answer_with_asterisk_statuses() {
    let mut harness = Harness::new();
    let caller = harness.answered_caller();
    let bridge = harness.world.create_bridge(SITE, Some("mixing,dtmf_events"), Some("b1"), None).unwrap();
    let status = |error: AriError| error.http_status();
    assert_eq!(status(harness.world.answer(SITE, "gone").unwrap_err()), Some(404));
    assert_eq!(status(harness.world.create_bridge(SITE, None, Some("b1"), None).unwrap_err()), Some(409));
    let failed = harness.world.create_bridge(SITE, Some("no-such-type"), None, None).unwrap_err();
    assert_eq!(failed.ari_message(), Some("Unable to create bridge. Possible duplicate bridge id '(null)'"));
    assert_eq!(status(failed), Some(500));
    assert_eq!(status(harness.world.add_channels(SITE, "b2", &[caller.to_string()]).unwrap_err()), Some(404));
    assert_eq!(status(harness.world.add_channels(SITE, bridge.id.as_str(), &["gone".into()]).unwrap_err()), Some(400));
    assert_eq!(
        status(harness.world.remove_channels(SITE, bridge.id.as_str(), &[caller.to_string()]).unwrap_err()),
        Some(422)
    );
    assert_eq!(status(harness.world.play(SITE, caller.as_str(), None, &["sound:a,b".into()]).unwrap_err()), Some(400));
    let duplicate = OriginateParams { channel_id: Some(caller.clone()), ..originate_to_phone("op-1", 10) };
    assert_eq!(status(harness.world.originate(SITE, &duplicate).unwrap_err()), Some(409));
    // A Local channel's dialplan half is not in Stasis: 409, and 422 when added to a bridge.
    let local = OriginateParams {
        endpoint: "Local/5000@lineup-gates".into(),
        context: Some("lineup-overflow".into()),
        extension: Some("s".into()),
        ..OriginateParams::default()
    };
    let first_half = harness.world.originate(SITE, &local).unwrap();
    assert_eq!(status(harness.world.answer(SITE, first_half.id.as_str()).unwrap_err()), Some(409));
    let add = harness.world.add_channels(SITE, bridge.id.as_str(), &[first_half.id.to_string()]).unwrap_err();
    assert_eq!(status(add), Some(422));
    // The control queue is bounded.
    // The first digit starts at once; the queue then holds CONTROL_QUEUE_MAX_COMMANDS more.
    let overflow = (0..=lineup_pbx_sim::world::CONTROL_QUEUE_MAX_COMMANDS + 1)
        .map(|_| harness.world.send_dtmf(SITE, caller.as_str(), "1"))
        .find_map(Result::err)
        .expect("the queue fills up");
    assert_eq!(status(overflow), Some(500));
}

#[test]
fn malformed_rest_requests_get_error_answers_not_panics() {
    let mut harness = Harness::new();
    let caller = harness.answered_caller();
    let path = format!("/channels/{caller}");
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        ("GET", "/nothing".into(), vec![]),
        ("POST", "/channels".into(), vec![]),
        ("POST", "/channels".into(), vec![("endpoint", "nope")]),
        ("POST", "/channels".into(), vec![("endpoint", "PJSIP/x"), ("app", "lineup"), ("extension", "s")]),
        ("POST", "/channels".into(), vec![("endpoint", "PJSIP/x"), ("app", "unregistered")]),
        ("POST", "/channels".into(), vec![("endpoint", "PJSIP/x"), ("app", "lineup"), ("timeout", "soon")]),
        ("DELETE", path.clone(), vec![("reason", "bogus")]),
        ("DELETE", path.clone(), vec![("reason", "busy"), ("reason_code", "17")]),
        ("POST", format!("{path}/play"), vec![]),
        ("POST", format!("{path}/dtmf"), vec![("dtmf", "1;2")]),
        ("POST", format!("{path}/variable"), vec![("variable", "A=B")]),
        ("GET", format!("{path}/variable"), vec![("variable", "UNSET")]),
        ("POST", "/channels/..%2F/answer".into(), vec![]),
        ("POST", "/bridges".into(), vec![("bridgeId", "a/b")]),
        ("POST", "/bridges/x/addChannel".into(), vec![]),
        ("GET", "/channels/a/b/c/d/e/f/g".into(), vec![]),
        ("PUT", path.clone(), vec![]),
    ];
    for (method, path, pairs) in cases {
        let reply = handle_rest(&mut harness.world, SITE, method, &path, &RestParams::from_pairs(pairs.clone()));
        assert!(reply.status >= 400, "{method} {path} {pairs:?} answered {}", reply.status);
        let message = reply.body.as_ref().and_then(|body| body["message"].as_str());
        assert!(message.is_some_and(|m| !m.is_empty()), "{method} {path}: {reply:?}");
    }
    let mut params = RestParams::default();
    assert!(params.merge_body(&serde_json::json!(["not", "an", "object"])).is_err());
    assert!(params.merge_body(&serde_json::json!({"variables": 5})).is_err());
}

#[test]
fn the_same_script_gives_the_same_events() {
    let run = || {
        let mut harness = Harness::new();
        let behaviour = PhoneBehaviour { answer_after_ms: Some(700), ..PhoneBehaviour::default() };
        harness.world.register_phone(SITE, "op-1", behaviour).unwrap();
        let caller = harness.caller("5000", Some(20_000), vec![ScriptedKeys { at_ms: 4_000, digits: "12".into() }]);
        harness.world.answer(SITE, caller.as_str()).unwrap();
        harness.world.play(SITE, caller.as_str(), None, &["sound:queue-thereare".into(), "number:7".into()]).unwrap();
        let operator = harness.world.originate(SITE, &originate_to_phone("op-1", 10)).unwrap();
        harness.advance(1_000);
        let bridge = harness.world.create_bridge(SITE, Some("mixing,dtmf_events"), Some("call-1"), None).unwrap();
        harness.world.add_channels(SITE, bridge.id.as_str(), &[caller.to_string(), operator.id.to_string()]).unwrap();
        harness.advance(30_000);
        harness.take().into_iter().map(|output| output.event.to_value().to_string()).collect::<Vec<_>>()
    };
    let first = run();
    assert!(first.len() > 10, "the script produced events: {first:?}");
    assert_eq!(first, run());
}

#[test]
fn a_busy_phone_rejects_the_call() {
    let mut harness = Harness::new();
    harness.world.register_phone(SITE, "op-9", PhoneBehaviour { busy: true, ..PhoneBehaviour::default() }).unwrap();
    harness.world.originate(SITE, &originate_to_phone("op-9", 15)).unwrap();
    harness.advance(ORIGINATE_DIAL_DELAY_MS);
    let outputs = harness.take();
    assert!(outputs
        .iter()
        .any(|o| matches!(&o.event.kind, EventKind::Dial { dialstatus, .. } if dialstatus == "BUSY")));
    assert!(matches!(&outputs.last().unwrap().event.kind, EventKind::ChannelDestroyed { cause: 17, .. }));
}

#[test]
fn hanging_up_a_ringing_leg_cancels_the_dial() {
    let mut harness = Harness::new();
    harness.world.register_phone(SITE, "op-3", PhoneBehaviour::default()).unwrap();
    let channel = harness.world.originate(SITE, &originate_to_phone("op-3", 15)).unwrap();
    harness.advance(1_000);
    harness.take();
    harness.world.hangup_channel(SITE, channel.id.as_str(), 16).unwrap();
    let types = harness.types();
    assert_eq!(types, ["ChannelHangupRequest", "Dial", "ChannelDestroyed"]);
}

#[test]
fn continue_takes_the_channel_out_of_its_bridge_first() {
    let mut harness = Harness::new();
    let caller = harness.answered_caller();
    let bridge = harness.world.create_bridge(SITE, Some("mixing,dtmf_events"), Some("b-1"), None).unwrap();
    harness.world.add_channels(SITE, bridge.id.as_str(), &[caller.to_string()]).unwrap();
    harness.take();
    harness
        .world
        .continue_in_dialplan(SITE, caller.as_str(), Some("lineup-overflow".into()), Some("s".into()), None)
        .unwrap();
    let types = harness.types();
    assert_eq!(types[..2], ["ChannelLeftBridge", "StasisEnd"]);
    assert!(harness.world.get_bridge(SITE, "b-1").unwrap().channels.is_empty());
}

#[test]
fn a_trunk_leg_refused_at_the_far_site_reports_busy_at_the_near_site() {
    let dialplan = Dialplan::parse(EXTENSIONS_CONF).unwrap();
    let route = |trunk: &str, target: usize| lineup_pbx_sim::TrunkRoute {
        technology: "PJSIP".into(),
        trunk: trunk.into(),
        target: BoxIndex(target),
        context: "from-lineup".into(),
    };
    let site = |name: &str, trunk| BoxConfig {
        name: name.into(),
        asterisk_id: name.into(),
        dialplan: dialplan.clone(),
        trunks: vec![trunk],
    };
    let mut world =
        PbxWorld::new(0, vec![site("site-a", route("site-b", 1)), site("site-b", route("site-a", 0))]).unwrap();
    world.register_application(BoxIndex(0), "lineup");
    world.register_application(BoxIndex(1), "lineup");
    let leg = world
        .originate(
            BoxIndex(0),
            &OriginateParams {
                endpoint: "PJSIP/lineup-c9@site-b".into(),
                app: Some("lineup".into()),
                ..OriginateParams::default()
            },
        )
        .unwrap();
    world.advance_to(ORIGINATE_DIAL_DELAY_MS);
    let outputs = world.drain_outputs();
    let inbound = outputs
        .iter()
        .find_map(|o| match &o.event.kind {
            EventKind::StasisStart { channel, args, .. } if o.box_index == BoxIndex(1) => {
                assert_eq!(args, &["xfer=c9"]);
                Some(channel.id.clone())
            }
            _ => None,
        })
        .expect("the far site sees the leg enter Stasis");
    world.hangup_channel(BoxIndex(1), inbound.as_str(), 17).unwrap();
    let near: Vec<EventKind> =
        world.drain_outputs().into_iter().filter(|o| o.box_index == BoxIndex(0)).map(|o| o.event.kind).collect();
    assert!(near.iter().any(|kind| matches!(kind, EventKind::Dial { dialstatus, .. } if dialstatus == "BUSY")));
    assert!(
        matches!(near.last(), Some(EventKind::ChannelDestroyed { cause: 17, channel, .. }) if channel.id == leg.id)
    );
}

#[test]
fn operators_waiting_in_a_holding_bridge_do_not_hear_each_other() {
    let mut harness = Harness::new();
    let first = harness.answered_caller();
    let second = harness.answered_caller();
    let holding = harness.world.create_bridge(SITE, Some("holding"), Some("hold-1"), None).unwrap();
    assert_eq!(holding.bridge_type, lineup_ari::BridgeKind::Holding);
    harness.world.add_channels(SITE, holding.id.as_str(), &[first.to_string(), second.to_string()]).unwrap();
    assert_eq!(harness.world.audio_path(SITE, &first), Some(AudioPath::Silence));
    let mixing = harness.world.create_bridge(SITE, Some("mixing,dtmf_events"), Some("call-1"), None).unwrap();
    harness.world.add_channels(SITE, mixing.id.as_str(), &[first.to_string(), second.to_string()]).unwrap();
    let Some(AudioPath::Connected { parties }) = harness.world.audio_path(SITE, &first) else { panic!("connected") };
    assert_eq!(parties.len(), 1);
    assert!(harness.world.get_bridge(SITE, "hold-1").unwrap().channels.is_empty(), "moved out of the holding bridge");
}

#[test]
fn federated_sites_reach_each_other_over_trunks() {
    let mut world = lineup_pbx_sim::federated_sites(0, &["site-a", "site-b", "site-c"]).unwrap();
    for index in 0..3 {
        world.register_application(BoxIndex(index), "lineup");
    }
    let leg = OriginateParams {
        endpoint: "PJSIP/lineup-c5@site-c".into(),
        app: Some("lineup".into()),
        ..OriginateParams::default()
    };
    world.originate(BoxIndex(1), &leg).unwrap();
    world.advance_to(ORIGINATE_DIAL_DELAY_MS);
    let arrived = world.drain_outputs().into_iter().find(|o| o.event.kind.type_name() == "StasisStart").unwrap();
    assert_eq!(arrived.box_index, BoxIndex(2));
    let EventKind::StasisStart { args, channel, .. } = arrived.event.kind else { unreachable!() };
    assert_eq!(args, ["xfer=c5"]);
    assert!(channel.name.starts_with("PJSIP/site-b-"), "{}", channel.name);
}

/// Seen on Asterisk 22: a sound the box does not have is accepted, starts, and finishes at once
/// with state `failed`; an earlier missing item only moves the playback on. The stand-in used
/// to play any unknown name for 1.5 s, so a prompt that did not exist went unnoticed.
#[test]
fn a_sound_the_box_does_not_have_fails_at_once() {
    let mut harness = Harness::new();
    let caller = harness.answered_caller();
    harness.world.play(SITE, caller.as_str(), None, &["sound:lineup-no-such-prompt".into()]).unwrap();
    harness.advance(0);
    let finished: Vec<PlaybackState> = harness
        .take()
        .iter()
        .filter_map(|o| match &o.event.kind {
            EventKind::PlaybackFinished { playback } => Some(playback.state),
            _ => None,
        })
        .collect();
    assert_eq!(finished, [PlaybackState::Failed]);

    let media = ["sound:lineup-no-such-prompt".to_string(), "sound:lineup-callback-offer".to_string()];
    harness.world.play(SITE, caller.as_str(), None, &media).unwrap();
    harness.advance(0);
    assert_eq!(harness.types(), ["PlaybackStarted", "PlaybackContinuing", "PlaybackStarted"]);
    harness.advance(6_117);
    let events = harness.take();
    let EventKind::PlaybackFinished { playback } = &events.last().unwrap().event.kind else { panic!("finished") };
    assert_eq!(playback.state, PlaybackState::Done, "the shipped prompt played for its length");
}

/// Seen on Asterisk 22: originating a Local channel with only a `channelId` X names the second
/// half `X;2`.
#[test]
fn the_second_half_of_a_local_channel_is_named_after_the_first() {
    let mut harness = Harness::new();
    let local = OriginateParams {
        endpoint: "Local/5000@lineup-gates".into(),
        channel_id: Some(ChannelId::new("cb-2-17").unwrap()),
        context: Some("lineup-overflow".into()),
        extension: Some("s".into()),
        ..OriginateParams::default()
    };
    let first = harness.world.originate(SITE, &local).unwrap();
    assert_eq!(first.id.as_str(), "cb-2-17");
    let ids: Vec<String> = harness.world.list_channels(SITE).unwrap().into_iter().map(|c| c.id.to_string()).collect();
    assert!(ids.contains(&"cb-2-17;2".to_string()), "{ids:?}");
}
