//! The driver reads missed-caller records the way a real Asterisk allows: `DB_KEYS` on a
//! reader channel it creates and always hangs up, and deletes each record with a
//! `DB_DELETE` write (the stand-in refuses `DB()` over ARI and evaluates no function on
//! `GET /asterisk/variable`, as Asterisk does).

use lineup_ari::{Ari, AriError};
use lineup_pbx_server::in_memory::InMemoryAri;
use lineup_pbx_server::LiveWorld;
use lineup_pbx_sim::BoxIndex;
use lineup_site::AriRequest;
use lineup_site_driver::{execute_ari, read_missed_records};

const SITE: BoxIndex = BoxIndex(0);
const FIRST: &str = "sales:main:1795325224:1795325230:abandoned:+555*#:1795325224.1";
const SECOND: &str = "support::1795325224:1795325254:fallback::1795325224.2";

fn box_with_records() -> std::sync::Arc<LiveWorld> {
    // One box running the deployed dialplan.
    let world = lineup_pbx_sim::world::federated_sites(1_795_325_224_000, &["site-a"]).unwrap();
    let live = LiveWorld::start(world);
    live.with_world(|world| {
        world.register_application(SITE, "lineup");
        world.astdb_put(SITE, &format!("lineup-missed/{FIRST}"), "1");
        world.astdb_put(SITE, &format!("lineup-missed/{SECOND}"), "1");
    });
    live
}

fn readers_left(live: &LiveWorld) -> usize {
    let channels = live.with_world(|world| world.list_channels(SITE)).unwrap();
    channels.iter().filter(|c| lineup_site::is_missed_reader(&c.id)).count()
}

#[tokio::test]
async fn records_are_read_on_a_reader_channel_and_deleted_by_a_write() {
    let live = box_with_records();
    let ari = InMemoryAri::new(live.clone(), SITE);
    // What the old read asked for gives nothing on a real Asterisk (and on the stand-in).
    assert_eq!(ari.asterisk_variable("DB_KEYS(lineup-missed)").await.unwrap(), "");

    let keys = read_missed_records(&ari, 10).await.unwrap();
    assert_eq!(keys, [FIRST, SECOND]);
    assert_eq!(readers_left(&live), 0, "the reader is hung up after the read");
    assert_eq!(read_missed_records(&ari, 1).await.unwrap(), [FIRST], "at most max keys");

    let delete = AriRequest::DeleteMissedRecord { key: FIRST.to_string(), warning: None };
    execute_ari(&ari, &delete).await.unwrap();
    assert_eq!(read_missed_records(&ari, 10).await.unwrap(), [SECOND]);
    // Deleting a record already gone succeeds, as Asterisk answers 204.
    execute_ari(&ari, &delete).await.unwrap();
    assert_eq!(readers_left(&live), 0);
}

#[tokio::test]
async fn a_read_while_the_application_is_not_registered_fails_and_leaves_no_reader() {
    let live = box_with_records();
    live.with_world(|world| world.unregister_application(SITE, "lineup"));
    let ari = InMemoryAri::new(live.clone(), SITE);
    assert!(matches!(read_missed_records(&ari, 10).await, Err(AriError::BadRequest { .. })));
    assert_eq!(readers_left(&live), 0);
    assert_eq!(live.with_world(|world| world.astdb_family(SITE, "lineup-missed")).len(), 2);
}
