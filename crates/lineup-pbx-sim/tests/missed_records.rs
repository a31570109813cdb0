//! The deploy dialplan's missed-caller record (`[lineup-missed]`, a hangup handler every gate
//! pushes), run by the stand-in from `deploy/asterisk/extensions.conf` itself: one AstDB
//! record for a caller whose last Stasis try failed or whom Lineup never marked queued
//! (`LINEUP_QUEUED`; every field in its key), none for a caller Lineup queued; and the records
//! read and deleted over ARI only the ways a real Asterisk allows: `DB_KEYS` on a reader
//! channel, a `DB_DELETE` write. `DB()` over ARI and functions on `GET /asterisk/variable`
//! give nothing, as there.

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

fn rest(world: &mut PbxWorld, method: &str, path: &str, pairs: &[(&str, &str)]) -> (u16, String) {
    let reply = handle_rest(world, BOX, method, path, &RestParams::from_pairs(pairs.iter().copied()));
    let value = reply.body.as_ref().and_then(|b| b["value"].as_str()).unwrap_or_default().to_string();
    (reply.status, value)
}

fn global(world: &mut PbxWorld, name: &str) -> (u16, String) {
    rest(world, "GET", "/asterisk/variable", &[("variable", name)])
}

/// The one record in the box's missed-caller family, split into its key's fields.
fn only_record(world: &PbxWorld) -> Vec<String> {
    let records = world.astdb_family(BOX, "lineup-missed");
    assert_eq!(records.len(), 1, "{records:?}");
    let (key, value) = &records[0];
    assert_eq!(value, "1");
    key.splitn(7, ':').map(str::to_string).collect()
}

/// What the site driver does: a reader channel into `lineup`, `DB_KEYS` read on it.
fn create_reader(world: &mut PbxWorld, id: &str) {
    let pairs = [
        ("endpoint", "Local/s@lineup-missed-reader"),
        ("app", "lineup"),
        ("appArgs", "missed-reader"),
        ("channelId", id),
    ];
    assert_eq!(rest(world, "POST", "/channels/create", &pairs).0, 200);
}

#[test]
fn a_caller_who_hangs_up_during_the_retries_leaves_an_abandoned_record() {
    let mut world = world();
    let channel = call(&mut world, "5000", Some(5_000));
    world.advance_to(10_000);
    let ended = world.ended_channel(BOX, &channel).expect("the caller hung up");
    assert_eq!(ended.ended_by, EndedBy::Human);
    let key = format!("lineup-missed/sales:main:1795325224:1795325229:abandoned:5551234:{channel}");
    assert_eq!(world.astdb_get(BOX, &key).as_deref(), Some("1"));
}

#[test]
fn a_caller_who_reaches_the_fallback_leaves_a_fallback_record() {
    let mut world = world();
    let channel = call(&mut world, "5002", None);
    world.advance_to(60_000);
    let ended = world.ended_channel(BOX, &channel).expect("the fallback ended the call");
    assert_eq!(ended.ended_by, EndedBy::Dialplan);
    assert_eq!(ended.variables.get("LINEUP_FALLBACK").map(String::as_str), Some("1"));
    let fields = only_record(&world);
    let expected = ["support", "web", "fallback", "5551234", channel.as_str()];
    assert_eq!([&*fields[0], &*fields[1], &*fields[4], &*fields[5], &*fields[6]], expected);
    let waited = fields[3].parse::<u64>().unwrap() - fields[2].parse::<u64>().unwrap();
    assert!((29..=31).contains(&waited), "15 tries of 2 s, then the fallback: {waited} s");
}

#[test]
fn a_caller_number_with_odd_characters_cannot_break_the_key() {
    let mut world = world();
    let number = format!("+1 (555) 12,3/4:5*#)}}{}", "9".repeat(40));
    let call = PhoneCall {
        phone: "alice".into(),
        caller: CallerId { name: "Alice".into(), number },
        context: "lineup-gates".into(),
        exten: "5000".into(),
        patience_ms: Some(3_000),
        keys: vec![],
    };
    let channel = world.place_call(BOX, call).unwrap();
    world.advance_to(10_000);
    let fields = only_record(&world);
    // Only 0-9 + * # are kept, at most 32 of them: no / , or : reaches the key.
    let expected_number = format!("+155512345*#{}", "9".repeat(20));
    assert_eq!(fields[5], expected_number);
    assert_eq!(fields[6], channel.as_str());
    assert_eq!((&*fields[0], &*fields[1], &*fields[4]), ("sales", "main", "abandoned"));
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
    let fields = only_record(&world);
    assert_eq!((&*fields[0], &*fields[1], &*fields[4]), ("sales", "main", "abandoned"));
    assert_eq!(fields[6], channel.as_str());
}

#[test]
fn a_record_is_read_through_a_reader_channel_and_deleted_by_a_write() {
    let mut world = world();
    let first = call(&mut world, "5000", Some(3_000));
    let second = call(&mut world, "5001", Some(4_000));
    world.advance_to(10_000);
    let keys: Vec<String> = world.astdb_family(BOX, "lineup-missed").into_iter().map(|(key, _)| key).collect();
    assert_eq!(keys.len(), 2);
    assert!(keys[0].ends_with(first.as_str()) && keys[1].ends_with(second.as_str()), "{keys:?}");
    // The node is back: it reads the keys on a channel of its own.
    world.register_application(BOX, "lineup");
    create_reader(&mut world, "lineup-missed-reader-1");
    let path = "/channels/lineup-missed-reader-1/variable";
    let read = rest(&mut world, "GET", path, &[("variable", "DB_KEYS(lineup-missed)")]);
    assert_eq!(read, (200, keys.join(",")));
    // A DB_DELETE write deletes the record (204); the next read lacks it.
    let delete = format!("DB_DELETE(lineup-missed/{})", keys[1]);
    assert_eq!(rest(&mut world, "POST", "/asterisk/variable", &[("variable", &delete), ("value", "")]).0, 204);
    assert_eq!(rest(&mut world, "GET", path, &[("variable", "DB_KEYS(lineup-missed)")]), (200, keys[0].clone()));
    // Hanging the reader up takes both halves of its Local channel.
    assert_eq!(rest(&mut world, "DELETE", "/channels/lineup-missed-reader-1", &[]).0, 204);
    world.advance_to(11_000);
    let channels = world.list_channels(BOX).unwrap();
    assert!(channels.iter().all(|c| !c.id.as_str().starts_with("lineup-missed-reader-")), "{channels:?}");
}

#[test]
fn ari_evaluates_no_function_on_asterisk_variable_and_refuses_db_on_a_channel() {
    let mut world = world();
    call(&mut world, "5000", Some(3_000));
    world.advance_to(10_000);
    let key = world.astdb_family(BOX, "lineup-missed")[0].0.clone();
    // GET /asterisk/variable looks every name up as a global: nothing is evaluated.
    for name in ["DB_KEYS(lineup-missed)", &format!("DB(lineup-missed/{key})"), "NO_SUCH_GLOBAL"] {
        assert_eq!(global(&mut world, name), (200, String::new()), "{name}");
    }
    let delete_read = format!("DB_DELETE(lineup-missed/{key})");
    assert_eq!(global(&mut world, &delete_read), (200, String::new()));
    assert_eq!(world.astdb_family(BOX, "lineup-missed").len(), 1, "a GET deletes nothing");
    // On a channel, DB() and DB_DELETE() reads are refused (dangerous from ARI).
    world.register_application(BOX, "lineup");
    create_reader(&mut world, "lineup-missed-reader-2");
    let path = "/channels/lineup-missed-reader-2/variable";
    for name in [format!("DB(lineup-missed/{key})"), delete_read.clone(), "NO_SUCH_FUNCTION(x)".to_string()] {
        assert_eq!(rest(&mut world, "GET", path, &[("variable", &name)]).0, 500, "{name}");
    }
    assert_eq!(world.astdb_family(BOX, "lineup-missed").len(), 1, "a refused read deletes nothing");
    // A DB() write over ARI is refused silently (204, nothing written).
    let write = "DB(lineup-missed/x:y)";
    assert_eq!(rest(&mut world, "POST", "/asterisk/variable", &[("variable", write), ("value", "1")]).0, 204);
    assert_eq!(world.astdb_get(BOX, "lineup-missed/x:y"), None);
    // A plain name sets a global, which GET reads back.
    assert_eq!(rest(&mut world, "POST", "/asterisk/variable", &[("variable", "COLOUR"), ("value", "red")]).0, 204);
    assert_eq!(global(&mut world, "COLOUR"), (200, "red".to_string()));
}
