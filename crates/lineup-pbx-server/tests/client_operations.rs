//! Every `Ari` operation of the typed client against the stand-in's HTTP face: the client's
//! paths, parameters and bodies must be the ones the stand-in (and so Asterisk) reads.

use lineup_ari::events::EventStreamItem;
use lineup_ari::{
    ApplicationName, Ari, AriConfig, AriError, AriEvent, AriEvents, BridgeId, BridgeType, CallerId, ChannelId,
    ContinueTarget, CreateBridgeRequest, CreateChannelRequest, DialRequest, Endpoint, EventKind, HangupReason, HttpAri,
    Media, PlaybackId,
};
use lineup_pbx_server::{serve_box, LiveWorld, SimCredentials};
use lineup_pbx_sim::{BoxConfig, BoxIndex, Dialplan, PbxWorld, PhoneBehaviour, PhoneCall};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const EXTENSIONS_CONF: &str = include_str!("../../../deploy/asterisk/extensions.conf");
const WAIT_LIMIT: Duration = Duration::from_secs(10);
const ITEMS_PER_WAIT_MAX_COUNT: usize = 1_000;
const SITE: BoxIndex = BoxIndex(0);

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

fn on(event: &AriEvent, type_name: &str, channel: &ChannelId) -> bool {
    event.kind.type_name() == type_name && event.kind.channel().is_some_and(|c| &c.id == channel)
}

#[tokio::test]
async fn every_client_operation_is_understood_by_the_stand_in() {
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
        request_timeout_ms: 5_000,
    };
    let ari = HttpAri::new(&config).unwrap();
    // The trait's own events stream: the WebSocket with the same credentials as REST.
    let mut events = ari.subscribe_events(&[ApplicationName::new("lineup").unwrap()]).unwrap();
    assert!(matches!(events.next().await, Some(EventStreamItem::Connected { .. })));
    let behaviour = PhoneBehaviour { answer_after_ms: Some(50), ..PhoneBehaviour::default() };
    live.with_world(|world| world.register_phone(SITE, "op-1", behaviour)).unwrap();

    let call = PhoneCall {
        phone: "bob".into(),
        caller: CallerId { name: "Bob".into(), number: "5550000".into() },
        context: "lineup-gates".into(),
        exten: "5002".into(),
        patience_ms: None,
        keys: vec![],
    };
    let caller = live.with_world(|world| world.place_call(SITE, call)).unwrap();
    wait_for(&mut events, "StasisStart", |e| on(e, "StasisStart", &caller)).await;

    ari.ring(&caller).await.unwrap();
    wait_for(&mut events, "ringing", |e| on(e, "ChannelStateChange", &caller)).await;
    ari.answer(&caller).await.unwrap();
    ari.start_moh(&caller, Some("queue")).await.unwrap();
    ari.stop_moh(&caller).await.unwrap();
    assert_eq!(ari.get_variable(&caller, "CALLERID(num)").await.unwrap(), "5550000");
    ari.set_variable(&caller, "LINEUP_CALL", "c-7").await.unwrap();
    assert_eq!(ari.get_variable(&caller, "LINEUP_CALL").await.unwrap(), "c-7");
    assert!(matches!(ari.get_variable(&caller, "UNSET").await, Err(AriError::NotFound { .. })));

    // A play with several media and our own playback id, then stopped.
    let playback_id = PlaybackId::new("pb-c-7-1").unwrap();
    let media = [Media::Sound("queue-thereare".into()), Media::Digits("3".into()), Media::Number(12)];
    let playback = ari.play(&caller, Some(&playback_id), &media).await.unwrap();
    assert_eq!(playback.id, playback_id);
    assert_eq!(playback.next_media_uri.as_deref(), Some("digits:3"));
    wait_for(&mut events, "PlaybackStarted", |e| e.kind.type_name() == "PlaybackStarted").await;
    ari.stop_playback(&playback_id).await.unwrap();
    let finished = wait_for(&mut events, "PlaybackFinished", |e| e.kind.type_name() == "PlaybackFinished").await;
    assert!(matches!(&finished.kind, EventKind::PlaybackFinished { playback } if playback.id == playback_id));

    // create + dial an operator, then bridge, remove and destroy.
    let operator = ChannelId::new("c-7-operator").unwrap();
    let create = CreateChannelRequest {
        endpoint: Endpoint::new("PJSIP/op-1").unwrap(),
        app: ApplicationName::new("lineup").unwrap(),
        app_args: vec!["offer=c-7".into()],
        channel_id: Some(operator.clone()),
        other_channel_id: None,
        originator: Some(caller.clone()),
        variables: BTreeMap::from([("LINEUP_CALL".to_string(), "c-7".to_string())]),
    };
    let created = ari.create_channel(&create).await.unwrap();
    assert_eq!(created.id, operator);
    let start = wait_for(&mut events, "operator StasisStart", |e| on(e, "StasisStart", &operator)).await;
    assert!(matches!(&start.kind, EventKind::StasisStart { args, .. } if args == &["offer=c-7"]));
    assert_eq!(ari.get_variable(&operator, "LINEUP_CALL").await.unwrap(), "c-7");
    ari.dial(&operator, &DialRequest { caller: Some(caller.clone()), timeout_s: 10 }).await.unwrap();
    wait_for(
        &mut events,
        "answer",
        |e| matches!(&e.kind, EventKind::Dial { dialstatus, .. } if dialstatus == "ANSWER"),
    )
    .await;

    let bridge_id = BridgeId::new("c-7").unwrap();
    let request = CreateBridgeRequest {
        bridge_id: bridge_id.clone(),
        bridge_type: BridgeType::MixingDtmfEvents,
        name: Some("lineup-c-7".into()),
    };
    let bridge = ari.create_bridge(&request).await.unwrap();
    assert_eq!(bridge.name, "lineup-c-7");
    ari.add_channels(&bridge_id, &[caller.clone(), operator.clone()]).await.unwrap();
    wait_for(&mut events, "operator entered", |e| on(e, "ChannelEnteredBridge", &operator)).await;
    assert_eq!(ari.get_bridge(&bridge_id).await.unwrap().channels, vec![caller.clone(), operator.clone()]);
    let application = ari.get_application(&ApplicationName::new("lineup").unwrap()).await.unwrap();
    assert_eq!(application.bridge_ids, vec!["c-7".to_string()]);
    assert!(application.channel_ids.contains(&caller.to_string()));

    // DTMF sent to the operator's phone leg has no far end in Stasis: accepted, not reported.
    ari.send_dtmf(&operator, "12#").await.unwrap();
    ari.remove_channels(&bridge_id, std::slice::from_ref(&operator)).await.unwrap();
    wait_for(&mut events, "operator left", |e| on(e, "ChannelLeftBridge", &operator)).await;
    ari.destroy_bridge(&bridge_id).await.unwrap();
    wait_for(&mut events, "bridge destroyed", |e| e.kind.type_name() == "BridgeDestroyed").await;
    assert!(ari.list_bridges().await.unwrap().is_empty());
    ari.hangup(&operator, HangupReason::Normal).await.unwrap();
    let gone = wait_for(&mut events, "operator destroyed", |e| on(e, "ChannelDestroyed", &operator)).await;
    assert!(matches!(gone.kind, EventKind::ChannelDestroyed { cause: 16, .. }));

    // Back to the dialplan with a result: StasisEnd, then 5002's Hangup() ends the call.
    let target = ContinueTarget { context: None, extension: None, priority: None };
    ari.continue_in_dialplan(&caller, &target, &[("LINEUP_RESULT".into(), "TIMEOUT".into())]).await.unwrap();
    wait_for(&mut events, "caller StasisEnd", |e| on(e, "StasisEnd", &caller)).await;
    assert!(matches!(ari.get_channel(&caller).await, Err(AriError::NotFound { .. })));
    assert!(ari.list_channels().await.unwrap().is_empty());
    assert_eq!(events.stats().unknown_events(), 0);
    assert_eq!(events.stats().malformed_messages(), 0);
}

/// The AstDB over HTTP as the site reads missed callers, the ways a real Asterisk allows:
/// `DB_KEYS` read on a channel of the site's own (`Ari::get_variable`), a `DB_DELETE` write
/// (`Ari::set_asterisk_variable`), names with parentheses, `/` and `:` carried in the query.
/// `GET /asterisk/variable` evaluates no function and `DB()` is refused on a channel.
#[tokio::test]
async fn the_astdb_is_read_on_a_channel_and_deleted_by_a_write() {
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
        request_timeout_ms: 5_000,
    };
    let ari = HttpAri::new(&config).unwrap();
    let mut events = ari.subscribe_events(&[ApplicationName::new("lineup").unwrap()]).unwrap();
    assert!(matches!(events.next().await, Some(EventStreamItem::Connected { .. })));
    let first = "sales:main:1795325224:1795325230:abandoned:+555*#:1795325224.1";
    let second = "support::1795325224:1795325254:fallback::1795325224.2";
    live.with_world(|world| {
        world.astdb_put(SITE, &format!("lineup-missed/{first}"), "1");
        world.astdb_put(SITE, &format!("lineup-missed/{second}"), "1");
    });
    // No function on GET /asterisk/variable: every name is an (unknown) global.
    assert_eq!(ari.asterisk_variable("DB_KEYS(lineup-missed)").await.unwrap(), "");
    assert_eq!(ari.asterisk_variable(&format!("DB(lineup-missed/{first})")).await.unwrap(), "");
    assert_eq!(ari.asterisk_variable("NO_SUCH_GLOBAL").await.unwrap(), "");

    let reader = ChannelId::new("lineup-missed-reader-1").unwrap();
    let request = CreateChannelRequest {
        endpoint: Endpoint::new("Local/s@lineup-missed-reader").unwrap(),
        app: ApplicationName::new("lineup").unwrap(),
        app_args: vec!["missed-reader".into()],
        channel_id: Some(reader.clone()),
        other_channel_id: None,
        originator: None,
        variables: BTreeMap::new(),
    };
    ari.create_channel(&request).await.unwrap();
    let start = wait_for(&mut events, "reader StasisStart", |e| on(e, "StasisStart", &reader)).await;
    assert!(matches!(start.kind, EventKind::StasisStart { ref args, .. } if args == &["missed-reader"]));
    assert_eq!(ari.get_variable(&reader, "DB_KEYS(lineup-missed)").await.unwrap(), format!("{first},{second}"));
    assert!(matches!(ari.get_variable(&reader, "DB(lineup-missed)").await, Err(AriError::ServerError { .. })));
    ari.set_asterisk_variable(&format!("DB_DELETE(lineup-missed/{first})"), "").await.unwrap();
    assert_eq!(ari.get_variable(&reader, "DB_KEYS(lineup-missed)").await.unwrap(), second);
    ari.hangup(&reader, HangupReason::Normal).await.unwrap();
    wait_for(&mut events, "reader StasisEnd", |e| on(e, "StasisEnd", &reader)).await;
    // A name outside the charset never leaves the client.
    assert!(matches!(ari.asterisk_variable("DB(a b)").await, Err(AriError::InvalidInput { .. })));
    assert!(matches!(ari.set_asterisk_variable("DB(a,b=c)", "").await, Err(AriError::InvalidInput { .. })));
}
