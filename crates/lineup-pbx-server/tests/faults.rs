//! The fault seams of the HTTP face: REST 500s, answers later than the client's timeout, a
//! dropped events WebSocket, duplicated events.

use lineup_ari::events::EventStreamItem;
use lineup_ari::{
    ApplicationName, Ari, AriConfig, AriError, AriEvent, AriEvents, CallerId, ChannelId, ChannelState, HttpAri,
};
use lineup_pbx_server::{serve_box, BoxServer, LiveWorld, RestFault, RestFaultKind, SimCredentials};
use lineup_pbx_sim::{AudioPath, BoxConfig, BoxIndex, Dialplan, PbxWorld, PhoneCall};
use std::sync::Arc;
use std::time::Duration;

const EXTENSIONS_CONF: &str = include_str!("../../../deploy/asterisk/extensions.conf");
const SITE: BoxIndex = BoxIndex(0);
const WAIT_LIMIT: Duration = Duration::from_secs(10);
const ITEMS_PER_WAIT_MAX_COUNT: usize = 1_000;

async fn start(request_timeout_ms: u64) -> (Arc<LiveWorld>, BoxServer, HttpAri, AriEvents) {
    let config = BoxConfig {
        name: "site-a".into(),
        asterisk_id: "02:fc:00:00:00:0a".into(),
        dialplan: Dialplan::parse(EXTENSIONS_CONF).unwrap(),
        trunks: vec![],
    };
    let live = LiveWorld::start(PbxWorld::new(1_795_325_224_000, vec![config]).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let credentials = SimCredentials { username: "lineup".into(), password: "s3cret".into() };
    let server = serve_box(Arc::clone(&live), SITE, listener, credentials).await.unwrap();
    let config = AriConfig {
        base_url: server.base_url(),
        username: "lineup".into(),
        password: "s3cret".into(),
        applications: vec![ApplicationName::new("lineup").unwrap()],
        request_timeout_ms,
    };
    let ari = HttpAri::new(&config).unwrap();
    let mut events = AriEvents::connect(&config).unwrap();
    let first = tokio::time::timeout(WAIT_LIMIT, events.next()).await.unwrap();
    assert_eq!(first, Some(EventStreamItem::Connected { connection_serial: 1 }));
    (live, server, ari, events)
}

async fn next_item(events: &mut AriEvents) -> EventStreamItem {
    tokio::time::timeout(WAIT_LIMIT, events.next()).await.expect("an item in time").expect("stream open")
}

async fn wait_for(events: &mut AriEvents, what: &str, wanted: impl Fn(&AriEvent) -> bool) -> AriEvent {
    for _ in 0..ITEMS_PER_WAIT_MAX_COUNT {
        if let EventStreamItem::Event(event) = next_item(events).await {
            if wanted(&event) {
                return event;
            }
        }
    }
    panic!("no {what} within {ITEMS_PER_WAIT_MAX_COUNT} items");
}

fn place_caller(live: &LiveWorld, phone: &str) -> ChannelId {
    let call = PhoneCall {
        phone: phone.into(),
        caller: CallerId { name: "Dan".into(), number: "5553333".into() },
        context: "lineup-gates".into(),
        exten: "5000".into(),
        patience_ms: None,
        keys: vec![],
    };
    live.with_world(|world| world.place_call(SITE, call)).unwrap()
}

fn stasis_start_of(event: &AriEvent, channel: &ChannelId) -> bool {
    event.kind.type_name() == "StasisStart" && event.kind.channel().is_some_and(|c| &c.id == channel)
}

#[tokio::test]
async fn an_injected_500_refuses_without_executing() {
    let (live, _server, ari, mut events) = start(2_000).await;
    let caller = place_caller(&live, "dan");
    wait_for(&mut events, "StasisStart", |e| stasis_start_of(e, &caller)).await;
    let fault = RestFault {
        box_index: SITE,
        method: Some("POST".into()),
        path_contains: "/answer".into(),
        kind: RestFaultKind::RefuseWithServerError,
        count: 1,
    };
    assert!(live.inject_rest_fault(fault));
    let mut requests = live.watch_requests();
    let error = ari.answer(&caller).await.unwrap_err();
    let record = requests.recv().await.unwrap();
    assert_eq!((record.method.as_str(), record.status), ("POST", 500));
    assert_eq!(record.path, format!("/channels/{caller}/answer"));
    assert!(matches!(&error, AriError::ServerError { message } if message == "Injected fault"), "{error:?}");
    assert_eq!(ari.get_channel(&caller).await.unwrap().state, ChannelState::Ring);
    ari.answer(&caller).await.unwrap();
    assert_eq!(ari.get_channel(&caller).await.unwrap().state, ChannelState::Up);
}

#[tokio::test]
async fn a_late_answer_times_out_but_the_request_took_effect() {
    let (live, _server, ari, mut events) = start(200).await;
    let caller = place_caller(&live, "dan");
    wait_for(&mut events, "StasisStart", |e| stasis_start_of(e, &caller)).await;
    ari.answer(&caller).await.unwrap();
    let fault = RestFault {
        box_index: SITE,
        method: None,
        path_contains: "/moh".into(),
        kind: RestFaultKind::AnswerLate { delay_ms: 1_000 },
        count: 1,
    };
    assert!(live.inject_rest_fault(fault));
    let error = ari.start_moh(&caller, None).await.unwrap_err();
    assert!(matches!(error, AriError::Timeout { timeout_ms: 200, .. }), "{error:?}");
    // The outcome was unknown to the client; reading state back shows it happened.
    let hears = live.with_world(|world| world.audio_path(SITE, &caller));
    assert_eq!(hears, Some(AudioPath::MusicOnHold { class: "default".into() }));
}

#[tokio::test]
async fn a_late_execution_meets_the_world_as_it_is_by_then() {
    let (live, _server, ari, mut events) = start(5_000).await;
    let caller = place_caller(&live, "dan");
    wait_for(&mut events, "StasisStart", |e| stasis_start_of(e, &caller)).await;
    let fault = RestFault {
        box_index: SITE,
        method: Some("POST".into()),
        path_contains: "/answer".into(),
        kind: RestFaultKind::ExecuteLate { delay_ms: 1_000 },
        count: 1,
    };
    assert!(live.inject_rest_fault(fault));
    let mut requests = live.watch_requests();
    let sent = std::time::Instant::now();
    let answer = {
        let caller = caller.clone();
        tokio::spawn(async move { ari.answer(&caller).await })
    };
    // The request is held, not executed yet: the caller hangs up meanwhile.
    assert!(live.with_world(|world| world.phone_hangup(SITE, &caller)));
    let error = tokio::time::timeout(WAIT_LIMIT, answer).await.unwrap().unwrap().unwrap_err();
    assert!(sent.elapsed() >= Duration::from_millis(1_000), "held before executing");
    // Executed after the hangup (an `AnswerLate` would have answered the caller first).
    assert!(matches!(error, AriError::NotFound { .. }), "{error:?}");
    let record = requests.recv().await.unwrap();
    assert_eq!((record.method.as_str(), record.status), ("POST", 404));
}

#[tokio::test]
async fn a_dropped_events_socket_reconnects_and_events_flow_again() {
    let (live, _server, _ari, mut events) = start(2_000).await;
    let before = place_caller(&live, "dan");
    wait_for(&mut events, "StasisStart", |e| stasis_start_of(e, &before)).await;
    assert_eq!(live.drop_event_connections(SITE), 1);
    assert!(matches!(next_item(&mut events).await, EventStreamItem::Disconnected { .. }));
    assert_eq!(next_item(&mut events).await, EventStreamItem::Connected { connection_serial: 2 });
    // The channel that entered Stasis before the drop is still there to reconcile against.
    let after = place_caller(&live, "erin");
    wait_for(&mut events, "StasisStart after reconnect", |e| stasis_start_of(e, &after)).await;
    let channels = live.with_world(|world| world.list_channels(SITE)).unwrap();
    assert!(channels.iter().any(|channel| channel.id == before));
}

#[tokio::test]
async fn duplicated_events_reach_the_client_twice() {
    let (live, _server, _ari, mut events) = start(2_000).await;
    live.set_duplicate_events(SITE, true);
    let caller = place_caller(&live, "dan");
    let first = wait_for(&mut events, "StasisStart", |e| stasis_start_of(e, &caller)).await;
    let second = wait_for(&mut events, "StasisStart again", |e| stasis_start_of(e, &caller)).await;
    assert_eq!(first, second);
    live.set_duplicate_events(SITE, false);
    let other = place_caller(&live, "erin");
    wait_for(&mut events, "StasisStart", |e| stasis_start_of(e, &other)).await;
    let third_caller = place_caller(&live, "fay");
    // Exactly one StasisStart for `other` arrived before the next caller's.
    let next = wait_for(&mut events, "next StasisStart", |e| e.kind.type_name() == "StasisStart").await;
    assert!(stasis_start_of(&next, &third_caller), "no duplicate once turned off: {next:?}");
}

#[tokio::test]
async fn reordered_events_arrive_swapped_in_pairs() {
    let (live, _server, ari, mut events) = start(2_000).await;
    let caller = place_caller(&live, "dan");
    wait_for(&mut events, "StasisStart", |e| stasis_start_of(e, &caller)).await;
    ari.answer(&caller).await.unwrap();
    wait_for(&mut events, "answered", |e| e.kind.type_name() == "ChannelStateChange").await;
    live.set_reorder_events(SITE, true);
    // The caller hangs up: HangupRequest then StasisEnd, delivered the other way round.
    assert!(live.with_world(|world| world.phone_hangup(SITE, &caller)));
    let first = wait_for(&mut events, "first of the pair", |_| true).await;
    let second = wait_for(&mut events, "second of the pair", |_| true).await;
    assert_eq!(first.kind.type_name(), "StasisEnd");
    assert_eq!(second.kind.type_name(), "ChannelHangupRequest");
}
