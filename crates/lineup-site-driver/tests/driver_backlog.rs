//! The site driver executes every action it is given, however many one input produces: a
//! reconcile that finds more than `ACTIONS_PER_INPUT_MAX` callers in Stasis handles them
//! all (the overflow waits its turn; it was once dropped, leaving callers in Stasis).

use lineup_ari::{ApplicationName, CallerId};
use lineup_core::{Command, CommandResult, Routing};
use lineup_pbx_server::in_memory::InMemoryAri;
use lineup_pbx_server::LiveWorld;
use lineup_pbx_sim::{federated_sites, BoxIndex, PhoneCall};
use lineup_site::{ProposeFailure, SiteConfig, SiteController, SiteCounters};
use lineup_site_driver::{run_site, ClusterPort, ACTIONS_PER_INPUT_MAX};
use lineup_util::now_ms;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// More callers than one turn of actions, each needing at least one.
const CALLERS: usize = ACTIONS_PER_INPUT_MAX + 100;
const WAIT_MAX_MS: u64 = 60_000;
const POLL_MS: u64 = 50;

/// A one-node cluster: commands apply in order on one routing state.
#[derive(Default)]
struct OneNode {
    state: Mutex<(Routing, u64)>,
}

impl ClusterPort for OneNode {
    async fn submit(&self, command: Command) -> Result<CommandResult, ProposeFailure> {
        let mut state = self.state.lock().unwrap();
        state.1 += 1;
        let index = state.1 * 256;
        Ok(state.0.apply(index, &command).result)
    }
    fn read<R>(&self, read: impl FnOnce(&Routing) -> R) -> R {
        read(&self.state.lock().unwrap().0)
    }
}

fn in_stasis(live: &LiveWorld) -> usize {
    let channels = live.with_world(|w| w.list_channels(BoxIndex(0))).unwrap();
    channels.iter().filter(|c| c.dialplan.app_name == "Stasis").count()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MAX_MS);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_finding_more_callers_than_one_turn_handles_every_one() {
    let live = LiveWorld::start(federated_sites(now_ms(), &["site-1"]).unwrap());
    let ari = InMemoryAri::new(Arc::clone(&live), BoxIndex(0));
    let application = [ApplicationName::new("lineup").unwrap()];
    // The application is registered but nobody reads its events (a site that is starting):
    // the callers wait in Stasis, unknown to any controller.
    let unread = ari.events(&application).unwrap();
    for n in 0..CALLERS {
        let caller = CallerId { name: format!("Caller {n}"), number: format!("555{n:04}") };
        let call = PhoneCall {
            phone: format!("caller-{n}"),
            caller,
            context: "lineup-gates".into(),
            exten: "5000".into(),
            patience_ms: None,
            keys: vec![],
        };
        live.with_world(|w| w.place_call(BoxIndex(0), call)).unwrap();
    }
    wait_for("every caller in Stasis", || in_stasis(&live) == CALLERS).await;
    drop(unread);
    // The site starts: its first reconcile finds them all. No queue is configured, so each
    // is refused and sent back to the dialplan, which takes them out of Stasis.
    let (_feed_tx, feed) = mpsc::channel(16);
    let (stop, shutdown) = watch::channel(false);
    let (counters, _) = watch::channel(SiteCounters::default());
    let site = tokio::spawn(run_site(
        SiteController::new(SiteConfig::new(lineup_core::SiteId(1), now_ms() * 1_000)),
        Arc::new(ari.clone()),
        ari.events(&application).unwrap(),
        feed,
        Arc::new(OneNode::default()),
        shutdown,
        counters,
    ));
    wait_for("no caller left in Stasis", || in_stasis(&live) == 0).await;
    stop.send(true).unwrap();
    let counters = site.await.unwrap();
    assert!(counters.channels_adopted as usize >= CALLERS, "{counters:?}");
}
