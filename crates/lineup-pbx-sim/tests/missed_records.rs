//! The deploy dialplan's missed-caller record (`[lineup-missed]`, a hangup handler every gate
//! pushes), run by the stand-in from `deploy/asterisk/extensions.conf` itself: one AstDB
//! record for a caller whose last Stasis try failed or whom Lineup never marked queued
//! (`LINEUP_QUEUED`), none for a caller Lineup queued, and the records read and deleted over
//! ARI.

use lineup_ari::CallerId;
use lineup_pbx_sim::dialplan::Dialplan;
use lineup_pbx_sim::{handle_rest, BoxConfig, BoxIndex, EndedBy, PbxWorld, PhoneCall, RestParams};

const EXTENSIONS_CONF: &str = include_str!("../../../deploy/asterisk/extensions.conf");
/// The world's clock starts here (Unix ms), so `${EPOCH}` starts at 1,795,325,224.
const EPOCH_MS: u64 = 1_795_325_224_000;
const BOX: BoxIndex = BoxIndex(0);

fn world() -> PbxWorld {
    let config = BoxConfig {
        name: "site-a".into(),
        asterisk_id: "02:fc:00:00:00:0a".into(),
        dialplan: Dialplan::parse(EXTENSIONS_CONF).unwrap(),
        trunks: vec![],
    };
    PbxWorld::new(EPOCH_MS, vec![config]).unwrap()
}

fn call(world: &mut PbxWorld, exten: &str, patience_ms: Option<u64>) -> lineup_ari::ChannelId {
    let call = PhoneCall {
        phone: "alice".into(),
        caller: CallerId { name: "Alice".into(), number: "5551234".into() },
        context: "lineup-gates".into(),
        exten: exten.into(),
        patience_ms,
        keys: vec![],
    };
    world.place_call(BOX, call).unwrap()
}

fn variable(world: &mut PbxWorld, name: &str) -> (u16, String) {
    let reply = handle_rest(world, BOX, "GET", "/asterisk/variable", &RestParams::from_pairs([("variable", name)]));
    let value = reply.body.as_ref().and_then(|b| b["value"].as_str()).unwrap_or_default().to_string();
    (reply.status, value)
}

#[test]
fn a_caller_who_hangs_up_during_the_retries_leaves_an_abandoned_record() {
    let mut world = world();
    let channel = call(&mut world, "5000", Some(5_000));
    world.advance_to(10_000);
    let ended = world.ended_channel(BOX, &channel).expect("the caller hung up");
    assert_eq!(ended.ended_by, EndedBy::Human);
    let record = world.astdb_get(BOX, &format!("lineup-missed/{channel}"));
    assert_eq!(record.as_deref(), Some("sales,main,1795325224,1795325229,abandoned,5551234"));
}

#[test]
fn a_caller_who_reaches_the_fallback_leaves_a_fallback_record() {
    let mut world = world();
    let channel = call(&mut world, "5002", None);
    world.advance_to(60_000);
    let ended = world.ended_channel(BOX, &channel).expect("the fallback ended the call");
    assert_eq!(ended.ended_by, EndedBy::Dialplan);
    assert_eq!(ended.variables.get("LINEUP_FALLBACK").map(String::as_str), Some("1"));
    let records = world.astdb_family(BOX, "lineup-missed");
    assert_eq!(records.len(), 1, "{records:?}");
    let fields: Vec<&str> = records[0].1.split(',').collect();
    assert_eq!((fields[0], fields[1], fields[4], fields[5]), ("support", "web", "fallback", "5551234"));
    let waited = fields[3].parse::<u64>().unwrap() - fields[2].parse::<u64>().unwrap();
    assert!((29..=31).contains(&waited), "15 tries of 2 s, then the fallback: {waited} s");
}

#[test]
fn a_caller_lineup_queued_leaves_no_record() {
    // The node comes back during the retries: the caller enters Stasis, the node queues it
    // and marks the channel (LINEUP_QUEUED=1), then the caller hangs up there.
    let mut world = world();
    let channel = call(&mut world, "5001", Some(9_000));
    world.advance_to(3_000);
    world.register_application(BOX, "lineup");
    world.advance_to(5_000);
    world.set_variable(BOX, channel.as_str(), "LINEUP_QUEUED", "1").unwrap();
    world.advance_to(20_000);
    assert!(world.ended_channel(BOX, &channel).is_some());
    // And a caller whose node is up from the start.
    let channel = call(&mut world, "5000", Some(1_000));
    world.set_variable(BOX, channel.as_str(), "LINEUP_QUEUED", "1").unwrap();
    world.advance_to(30_000);
    assert!(world.ended_channel(BOX, &channel).is_some());
    assert_eq!(world.astdb_family(BOX, "lineup-missed"), Vec::new());
}

#[test]
fn a_caller_in_stasis_that_lineup_never_queued_leaves_a_record() {
    // In Stasis (STASISSTATUS=SUCCESS once it hangs up) but never marked: the node lost the
    // cluster or stopped before its entry committed.
    let mut world = world();
    world.register_application(BOX, "lineup");
    let channel = call(&mut world, "5000", Some(2_000));
    world.advance_to(5_000);
    assert_eq!(world.ended_channel(BOX, &channel).map(|e| e.ended_by.clone()), Some(EndedBy::Human));
    let records = world.astdb_family(BOX, "lineup-missed");
    assert_eq!(records.len(), 1, "{records:?}");
    let fields: Vec<&str> = records[0].1.split(',').collect();
    assert_eq!((fields[0], fields[1], fields[4]), ("sales", "main", "abandoned"));
}

#[test]
fn ari_lists_reads_and_deletes_the_records() {
    let mut world = world();
    let first = call(&mut world, "5000", Some(3_000));
    let second = call(&mut world, "5001", Some(4_000));
    world.advance_to(10_000);
    let (status, keys) = variable(&mut world, "DB_KEYS(lineup-missed)");
    assert_eq!((status, keys), (200, format!("{first},{second}")));
    let (_, value) = variable(&mut world, &format!("DB(lineup-missed/{second})"));
    assert!(value.starts_with("sales,vip,"), "{value}");
    // DB_DELETE answers the value and deletes it.
    let (status, deleted) = variable(&mut world, &format!("DB_DELETE(lineup-missed/{second})"));
    assert_eq!((status, deleted), (200, value));
    assert_eq!(variable(&mut world, "DB_KEYS(lineup-missed)").1, first.to_string());
    assert_eq!(variable(&mut world, &format!("DB(lineup-missed/{second})")), (200, String::new()));
    // A plain global the stand-in does not have.
    assert_eq!(variable(&mut world, "NO_SUCH_GLOBAL").0, 404);
}
