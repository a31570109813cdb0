//! The stand-in over real HTTP + WebSocket on loopback, driven by the typed client: two
//! sites joined by a trunk, a caller at site A answered by an operator at site B, with the
//! deploy snippets as the dialplan.

use lineup_ari::events::EventStreamItem;
use lineup_ari::stasis_args::{parse_stasis_entry, StasisEntry};
use lineup_ari::{
    ApplicationName, Ari, AriConfig, AriError, AriEvent, AriEvents, BridgeId, BridgeType, CallerId, ChannelId,
    CreateBridgeRequest, Endpoint, EventKind, HangupReason, HttpAri, OriginateRequest, OriginateTarget,
};
use lineup_pbx_server::{serve_box, BoxServer, LiveWorld, SimCredentials};
use lineup_pbx_sim::{AudioPath, BoxConfig, BoxIndex, Dialplan, PbxWorld, PhoneBehaviour, PhoneCall, TrunkRoute};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const EXTENSIONS_CONF: &str = include_str!("../../../deploy/asterisk/extensions.conf");
const WAIT_LIMIT: Duration = Duration::from_secs(10);
/// Most stream items looked at while waiting for one event.
const ITEMS_PER_WAIT_MAX_COUNT: usize = 1_000;
const SITE_A: BoxIndex = BoxIndex(0);
const SITE_B: BoxIndex = BoxIndex(1);

fn credentials() -> SimCredentials {
    SimCredentials { username: "lineup".into(), password: "s3cret".into() }
}

fn two_sites() -> PbxWorld {
    let dialplan = Dialplan::parse(EXTENSIONS_CONF).unwrap();
    let site = |name: &str, id: &str, trunk: TrunkRoute| BoxConfig {
        name: name.into(),
        asterisk_id: id.into(),
        dialplan: dialplan.clone(),
        trunks: vec![trunk],
    };
    let to_b = TrunkRoute {
        technology: "PJSIP".into(),
        trunk: "site-b".into(),
        target: SITE_B,
        context: "from-lineup".into(),
    };
    let to_a =
        TrunkRoute { technology: "IAX2".into(), trunk: "site-a".into(), target: SITE_A, context: "from-lineup".into() };
    PbxWorld::new(
        1_795_325_224_000,
        vec![site("site-a", "02:fc:00:00:00:0a", to_b), site("site-b", "02:fc:00:00:00:0b", to_a)],
    )
    .unwrap()
}

fn client_config(server: &BoxServer) -> AriConfig {
    AriConfig {
        base_url: server.base_url(),
        username: "lineup".into(),
        password: "s3cret".into(),
        applications: vec![ApplicationName::new("lineup").unwrap()],
        request_timeout_ms: 5_000,
    }
}

async fn start_site(live: &Arc<LiveWorld>, site: BoxIndex) -> (BoxServer, HttpAri, AriEvents) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = serve_box(Arc::clone(live), site, listener, credentials()).await.unwrap();
    let ari = HttpAri::new(&client_config(&server)).unwrap();
    let mut events = AriEvents::connect(&client_config(&server)).unwrap();
    let first = tokio::time::timeout(WAIT_LIMIT, events.next()).await.unwrap().unwrap();
    assert_eq!(first, EventStreamItem::Connected { connection_serial: 1 });
    (server, ari, events)
}

/// The next event matching `wanted`, within `WAIT_LIMIT` and `ITEMS_PER_WAIT_MAX_COUNT`.
async fn wait_for(events: &mut AriEvents, what: &str, wanted: impl Fn(&AriEvent) -> bool) -> AriEvent {
    let search = async {
        for _ in 0..ITEMS_PER_WAIT_MAX_COUNT {
            match events.next().await {
                Some(EventStreamItem::Event(event)) if wanted(&event) => return event,
                Some(_) => continue,
                None => panic!("event stream ended while waiting for {what}"),
            }
        }
        panic!("no {what} within {ITEMS_PER_WAIT_MAX_COUNT} items");
    };
    tokio::time::timeout(WAIT_LIMIT, search).await.unwrap_or_else(|_| panic!("no {what} within {WAIT_LIMIT:?}"))
}

fn is_type(event: &AriEvent, type_name: &str, channel: &str) -> bool {
    event.kind.type_name() == type_name && event.kind.channel().is_some_and(|c| c.id.as_str() == channel)
}

fn id(text: &str) -> ChannelId {
    ChannelId::new(text).unwrap()
}

#[tokio::test]
async fn errors_and_authentication_follow_asterisk() {
    let live = LiveWorld::start(two_sites());
    let (server, ari, _events) = start_site(&live, SITE_A).await;
    let error = ari.answer(&id("no-such-channel")).await.unwrap_err();
    assert!(matches!(&error, AriError::NotFound { message } if message == "Channel not found"), "{error:?}");

    let bridge = CreateBridgeRequest {
        bridge_id: BridgeId::new("b1").unwrap(),
        bridge_type: BridgeType::MixingDtmfEvents,
        name: None,
    };
    let created = ari.create_bridge(&bridge).await.unwrap();
    assert_eq!(created.id.as_str(), "b1");
    assert!(matches!(ari.create_bridge(&bridge).await, Err(AriError::Conflict { .. })));
    let missing = ari.add_channels(&BridgeId::new("b2").unwrap(), &[id("x")]).await.unwrap_err();
    assert!(matches!(missing, AriError::NotFound { .. }), "{missing:?}");
    let not_a_channel = ari.add_channels(&BridgeId::new("b1").unwrap(), &[id("x")]).await.unwrap_err();
    assert!(matches!(not_a_channel, AriError::BadRequest { .. }), "{not_a_channel:?}");

    let mut wrong = client_config(&server);
    wrong.password = "wrong".into();
    let refused = HttpAri::new(&wrong).unwrap().list_channels().await.unwrap_err();
    assert!(matches!(refused, AriError::Unauthorized { status: 401, .. }), "{refused:?}");
}

#[tokio::test]
async fn caller_at_site_a_is_answered_by_an_operator_at_site_b() {
    let live = LiveWorld::start(two_sites());
    let (_server_a, ari_a, mut events_a) = start_site(&live, SITE_A).await;
    let (_server_b, ari_b, mut events_b) = start_site(&live, SITE_B).await;
    let ring_mode = PhoneBehaviour { answer_after_ms: Some(100), ..PhoneBehaviour::default() };
    live.with_world(|world| world.register_phone(SITE_B, "op-100", ring_mode)).unwrap();

    // A caller dials the sales main-number gate at site A.
    let call = alice_dials_sales();
    let caller = live.with_world(|world| world.place_call(SITE_A, call)).unwrap();
    let start = wait_for(&mut events_a, "caller StasisStart", |e| is_type(e, "StasisStart", caller.as_str())).await;
    let EventKind::StasisStart { args, .. } = &start.kind else { unreachable!() };
    assert_eq!(
        parse_stasis_entry(&start.application, args).unwrap(),
        StasisEntry::Caller { queue: "sales".into(), gate: Some("main".into()), priority: None }
    );
    ari_a.answer(&caller).await.unwrap();
    ari_a.start_moh(&caller, None).await.unwrap();
    let hears = live.with_world(|world| world.audio_path(SITE_A, &caller));
    assert_eq!(hears, Some(AudioPath::MusicOnHold { class: "default".into() }));

    // Site A dials the trunk leg to site B for call c1.
    let leg_a = id("c1-leg-a");
    let originate = OriginateRequest {
        endpoint: Endpoint::new("PJSIP/lineup-c1@site-b").unwrap(),
        target: OriginateTarget::Application {
            app: ApplicationName::new("lineup").unwrap(),
            app_args: vec!["xfer=c1".into()],
        },
        channel_id: Some(leg_a.clone()),
        other_channel_id: None,
        caller_id: Some("Alice <5551234>".into()),
        timeout_s: Some(20),
        originator: Some(caller.clone()),
        variables: BTreeMap::new(),
    };
    ari_a.originate(&originate).await.unwrap();

    // Site B sees the inbound leg through its [from-lineup] entry, answers, rings the operator.
    let inbound = wait_for(&mut events_b, "trunk StasisStart", |e| e.kind.type_name() == "StasisStart").await;
    let EventKind::StasisStart { args, channel, .. } = &inbound.kind else { unreachable!() };
    assert_eq!(parse_stasis_entry("lineup", args).unwrap(), StasisEntry::TrunkLeg { call: "c1".into() });
    assert_eq!(channel.caller.number, "5551234");
    let leg_b = channel.id.clone();
    ari_b.answer(&leg_b).await.unwrap();
    let operator = id("c1-operator");
    let ring_operator = OriginateRequest {
        endpoint: Endpoint::new("PJSIP/op-100").unwrap(),
        target: OriginateTarget::Application { app: ApplicationName::new("lineup").unwrap(), app_args: vec![] },
        channel_id: Some(operator.clone()),
        timeout_s: Some(15),
        originator: None,
        other_channel_id: None,
        caller_id: None,
        variables: BTreeMap::new(),
    };
    ari_b.originate(&ring_operator).await.unwrap();
    wait_for(&mut events_b, "operator StasisStart", |e| is_type(e, "StasisStart", operator.as_str())).await;
    let bridge_b = BridgeId::new("c1-b").unwrap();
    let request =
        CreateBridgeRequest { bridge_id: bridge_b.clone(), bridge_type: BridgeType::MixingDtmfEvents, name: None };
    ari_b.create_bridge(&request).await.unwrap();
    ari_b.add_channels(&bridge_b, &[leg_b.clone(), operator.clone()]).await.unwrap();

    // Site A's leg was answered when site B answered; A bridges it with the caller.
    wait_for(&mut events_a, "leg StasisStart", |e| is_type(e, "StasisStart", leg_a.as_str())).await;
    ari_a.stop_moh(&caller).await.unwrap();
    let bridge_a = BridgeId::new("c1-a").unwrap();
    let request =
        CreateBridgeRequest { bridge_id: bridge_a.clone(), bridge_type: BridgeType::MixingDtmfEvents, name: None };
    ari_a.create_bridge(&request).await.unwrap();
    ari_a.add_channels(&bridge_a, &[caller.clone(), leg_a.clone()]).await.unwrap();
    wait_for(&mut events_a, "leg entered", |e| is_type(e, "ChannelEnteredBridge", leg_a.as_str())).await;
    wait_for(&mut events_b, "operator entered", |e| is_type(e, "ChannelEnteredBridge", operator.as_str())).await;

    // The caller at A now talks with the operator's phone at B.
    let hears = live.with_world(|world| world.audio_path(SITE_A, &caller)).unwrap();
    let AudioPath::Connected { parties } = hears else { panic!("caller should be connected, hears {hears:?}") };
    assert_eq!(parties.len(), 1);
    assert_eq!(parties[0].0, SITE_B);
    assert!(parties[0].1.starts_with("PJSIP/op-100-"), "{parties:?}");
    let bridges = ari_a.list_bridges().await.unwrap();
    assert_eq!(bridges.len(), 1);
    assert_eq!(bridges[0].channels.len(), 2);

    // DTMF from the caller is seen (mixing,dtmf_events keeps media in the core).
    live.with_world(|world| world.phone_press(SITE_A, &caller, "5")).unwrap();
    let digit = wait_for(&mut events_a, "caller DTMF", |e| is_type(e, "ChannelDtmfReceived", caller.as_str())).await;
    assert!(matches!(&digit.kind, EventKind::ChannelDtmfReceived { digit, .. } if digit == "5"));

    // The caller hangs up; A ends the leg, and site B sees its side go.
    assert!(live.with_world(|world| world.phone_hangup(SITE_A, &caller)));
    wait_for(&mut events_a, "caller StasisEnd", |e| is_type(e, "StasisEnd", caller.as_str())).await;
    ari_a.hangup(&leg_a, HangupReason::Normal).await.unwrap();
    wait_for(&mut events_b, "leg StasisEnd at B", |e| is_type(e, "StasisEnd", leg_b.as_str())).await;
    let remaining = ari_b.list_channels().await.unwrap();
    assert_eq!(remaining.len(), 1, "only the operator is left at B: {remaining:?}");
    assert_eq!(remaining[0].id, operator);
}

/// `HttpAri::snoop` over HTTP: the snoop channel comes back up, enters the application with
/// its arguments, ends with its target; a retried snoopId is a 409, a missing direction a 400.
#[tokio::test]
async fn a_snoop_over_http_enters_the_application_and_ends_with_its_target() {
    let live = LiveWorld::start(two_sites());
    let (_server, ari, mut events) = start_site(&live, SITE_A).await;
    let call = alice_dials_sales();
    let caller = live.with_world(|world| world.place_call(SITE_A, call)).unwrap();
    wait_for(&mut events, "the caller's StasisStart", |e| is_type(e, "StasisStart", caller.as_str())).await;
    let request = lineup_ari::SnoopRequest {
        channel: caller.clone(),
        app: ApplicationName::new("lineup").unwrap(),
        app_args: vec!["monitor".into()],
        spy: lineup_ari::SnoopDirection::Both,
        whisper: lineup_ari::SnoopDirection::Out,
        snoop_id: Some(id("snoop-1")),
    };
    let snoop = ari.snoop(&request).await.unwrap();
    assert_eq!((snoop.id.as_str(), snoop.state), ("snoop-1", lineup_ari::ChannelState::Up));
    assert!(snoop.name.starts_with(&format!("Snoop/{caller}-")), "{}", snoop.name);
    let started = wait_for(&mut events, "the snoop's StasisStart", |e| is_type(e, "StasisStart", "snoop-1")).await;
    assert!(matches!(started.kind, EventKind::StasisStart { args, .. } if args == ["monitor"]));
    assert!(matches!(ari.snoop(&request).await, Err(AriError::Conflict { .. })));
    let no_direction = lineup_ari::SnoopRequest {
        spy: lineup_ari::SnoopDirection::None,
        whisper: lineup_ari::SnoopDirection::None,
        snoop_id: None,
        ..request
    };
    assert!(matches!(ari.snoop(&no_direction).await, Err(AriError::BadRequest { .. })));

    ari.hangup(&caller, HangupReason::Normal).await.unwrap();
    wait_for(&mut events, "the snoop's end", |e| is_type(e, "ChannelDestroyed", "snoop-1")).await;
}

/// Alice dials the sales main-number gate (exten 5000).
fn alice_dials_sales() -> PhoneCall {
    PhoneCall {
        phone: "alice".into(),
        caller: CallerId { name: "Alice".into(), number: "5551234".into() },
        context: "lineup-gates".into(),
        exten: "5000".into(),
        patience_ms: None,
        keys: vec![],
    }
}
