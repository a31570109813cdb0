//! `InMemoryAri`: the `Ari` trait and an events stream over the stand-in with no sockets,
//! running in virtual time under tokio's paused clock.

use lineup_ari::events::EventStreamItem;
use lineup_ari::{ApplicationName, Ari, AriEvent, AriEvents, CallerId, ChannelId, EventKind, Media};
use lineup_pbx_server::{InMemoryAri, LiveWorld};
use lineup_pbx_sim::{BoxConfig, BoxIndex, Dialplan, PbxWorld, PhoneCall};
use std::time::Duration;

const EXTENSIONS_CONF: &str = include_str!("../../../deploy/asterisk/extensions.conf");
const SITE: BoxIndex = BoxIndex(0);
/// Virtual time: the paused clock jumps straight to the world's next timer.
const WAIT_LIMIT: Duration = Duration::from_secs(600);
const ITEMS_PER_WAIT_MAX_COUNT: usize = 1_000;

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

#[tokio::test(start_paused = true)]
async fn a_patient_caller_runs_in_virtual_time() {
    let config = BoxConfig {
        name: "site-a".into(),
        asterisk_id: "02:fc:00:00:00:0a".into(),
        dialplan: Dialplan::parse(EXTENSIONS_CONF).unwrap(),
        trunks: vec![],
    };
    let live = LiveWorld::start(PbxWorld::new(1_795_325_224_000, vec![config]).unwrap());
    let ari = InMemoryAri::new(live.clone(), SITE);
    let lineup = ApplicationName::new("lineup").unwrap();
    let mut events = ari.subscribe_events(std::slice::from_ref(&lineup)).unwrap();
    assert_eq!(events.next().await, Some(EventStreamItem::Connected { connection_serial: 1 }));

    let started = tokio::time::Instant::now();
    let call = PhoneCall {
        phone: "carol".into(),
        caller: CallerId { name: "Carol".into(), number: "5557777".into() },
        context: "lineup-gates".into(),
        exten: "5000".into(),
        patience_ms: Some(90_000),
        keys: vec![],
    };
    let caller = live.with_world(|world| world.place_call(SITE, call)).unwrap();
    wait_for(&mut events, "StasisStart", |e| on(e, "StasisStart", &caller)).await;
    ari.answer(&caller).await.unwrap();
    ari.start_moh(&caller, None).await.unwrap();
    ari.play(&caller, None, &[Media::Sound("queue-youarenext".into())]).await.unwrap();
    wait_for(&mut events, "PlaybackFinished", |e| e.kind.type_name() == "PlaybackFinished").await;
    assert!(started.elapsed() >= Duration::from_millis(1_900));
    assert_eq!(ari.list_channels().await.unwrap().len(), 1);

    // The caller's patience runs out 90 virtual seconds after dialing.
    let hangup = wait_for(&mut events, "hangup", |e| on(e, "ChannelHangupRequest", &caller)).await;
    assert!(matches!(hangup.kind, EventKind::ChannelHangupRequest { cause: Some(16), .. }));
    assert!(started.elapsed() >= Duration::from_secs(90));
    wait_for(&mut events, "StasisEnd", |e| on(e, "StasisEnd", &caller)).await;
    assert!(ari.list_channels().await.unwrap().is_empty());

    // A second consumer of the same application takes it over, as with Asterisk.
    let mut newer = ari.events(std::slice::from_ref(&lineup)).unwrap();
    assert!(matches!(newer.next().await, Some(EventStreamItem::Connected { .. })));
    let replaced = wait_for(&mut events, "ApplicationReplaced", |e| e.kind.type_name() == "ApplicationReplaced").await;
    assert_eq!(replaced.application, "lineup");
}
