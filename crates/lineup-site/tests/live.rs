//! End to end over real sockets: the stand-in's ARI HTTP + WebSocket server, the ARI client,
//! the async driver running the site controller, and a single-node in-process cluster.

use lineup_ari::{ApplicationName, AriConfig, AriEvents, CallerId, HttpAri};
use lineup_core::*;
use lineup_pbx_sim::{serve_box, BoxConfig, BoxIndex, Dialplan, LiveWorld, PbxWorld, PhoneCall, SimCredentials};
use lineup_site::driver::{run_site, ClusterFeed, ClusterPort};
use lineup_site::{ProposeFailure, SiteConfig, SiteController};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

const SITE: SiteId = SiteId(1);
const WAIT_LIMIT: Duration = Duration::from_secs(30);
const TICK_INTERVAL: Duration = Duration::from_millis(100);

/// A one-node "cluster": applies commands in order and feeds the site its effects.
struct LocalCluster {
    state: Mutex<(Routing, u64, u64)>,
    feed: mpsc::Sender<ClusterFeed>,
    commits: watch::Sender<u64>,
}

impl LocalCluster {
    async fn commit(&self, command: Command) -> CommandResult {
        let (result, effects, index) = {
            let mut state = self.state.lock().unwrap();
            state.1 += 1;
            let index = state.1;
            let applied = state.0.apply(index, &command);
            (applied.result, applied.effects, index)
        };
        let mine: Vec<Effect> = effects.into_iter().filter(|e| e.is_for(SITE)).collect();
        let _ = self.feed.send(ClusterFeed::Effects { log_index: index, effects: mine }).await;
        self.commits.send_replace(index);
        result
    }

    async fn admin(&self, body: CommandBody) -> CommandResult {
        let serial = {
            let mut state = self.state.lock().unwrap();
            state.2 += 1;
            state.2
        };
        let at_ms = now_ms();
        self.commit(Command { id: CommandId { origin: 999, serial }, at_ms, body }).await
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

impl ClusterPort for LocalCluster {
    async fn submit(&self, command: Command) -> Result<CommandResult, ProposeFailure> {
        Ok(self.commit(command).await)
    }
    fn read<R>(&self, read: impl FnOnce(&Routing) -> R) -> R {
        read(&self.state.lock().unwrap().0)
    }
}

/// Waits (bounded) until `done` holds, re-checking after every commit.
async fn wait_for(cluster: &LocalCluster, what: &str, done: impl Fn(&Routing) -> bool) {
    let mut commits = cluster.commits.subscribe();
    let wait = async {
        loop {
            if cluster.read(&done) {
                return;
            }
            if commits.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT_LIMIT, wait).await.unwrap_or_else(|_| panic!("no {what} within {WAIT_LIMIT:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_is_answered_by_a_pin_logged_in_operator_over_real_ari() {
    let dialplan = Dialplan::parse(include_str!("../../../deploy/asterisk/extensions.conf")).unwrap();
    let world = PbxWorld::new(
        now_ms(),
        vec![BoxConfig { name: "site-1".into(), asterisk_id: "02:00:00:00:00:01".into(), dialplan, trunks: vec![] }],
    )
    .unwrap();
    let live = LiveWorld::start(world);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let credentials = SimCredentials { username: "lineup".into(), password: "not-in-urls".into() };
    let server = serve_box(Arc::clone(&live), BoxIndex(0), listener, credentials).await.unwrap();
    let config = AriConfig {
        base_url: server.base_url(),
        username: "lineup".into(),
        password: "not-in-urls".into(),
        applications: vec![ApplicationName::new("lineup").unwrap(), ApplicationName::new("lineup-login").unwrap()],
        request_timeout_ms: 5_000,
    };
    let ari = Arc::new(HttpAri::new(&config).unwrap());
    let events = AriEvents::connect(&config).unwrap();

    let (feed_tx, feed_rx) = mpsc::channel(1_024);
    let (commits, _) = watch::channel(0);
    let cluster = Arc::new(LocalCluster { state: Mutex::new((Routing::new(), 0, 0)), feed: feed_tx, commits });
    cluster.admin(CommandBody::Tick { now_ms: now_ms() }).await.unwrap();
    cluster
        .admin(CommandBody::PutQueue(QueueConfig { id: QueueId::new("sales"), ..Default::default() }))
        .await
        .unwrap();
    cluster
        .admin(CommandBody::PutGate(GateConfig {
            id: GateId::new("main"),
            queue: QueueId::new("sales"),
            ..Default::default()
        }))
        .await
        .unwrap();
    // A real argon2 hash: the driver verifies it on the blocking pool.
    let phc = {
        use argon2::password_hash::PasswordHasher;
        argon2::Argon2::default().hash_password(b"2468").unwrap().to_string()
    };
    cluster
        .admin(CommandBody::PutOperator(OperatorConfig {
            id: OperatorId::new("1001"),
            name: "Alice".into(),
            site: SITE,
            pin_hash: phc,
            memberships: [(QueueId::new("sales"), 0)].into_iter().collect(),
            ..Default::default()
        }))
        .await
        .unwrap();

    let ticker = {
        let cluster = Arc::clone(&cluster);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK_INTERVAL);
            loop {
                interval.tick().await;
                let _ = cluster.admin(CommandBody::Tick { now_ms: now_ms() }).await;
            }
        })
    };
    let (stop, shutdown) = watch::channel(false);
    let site = tokio::spawn(run_site(
        SiteController::new(SiteConfig::new(SITE, now_ms() * 1_000)),
        Arc::clone(&ari),
        events,
        feed_rx,
        Arc::clone(&cluster),
        shutdown,
    ));

    live.with_world(|w| {
        w.place_call(
            BoxIndex(0),
            PhoneCall::operator_login(
                "desk-1001",
                CallerId { name: "Alice".into(), number: "1001".into() },
                "lineup-operators",
                "*551001",
                "2468",
                3_000,
            ),
        )
    })
    .unwrap();
    wait_for(&cluster, "operator login", |r| {
        r.operator_view(&OperatorId::new("1001")).is_some_and(|v| v.status == OperatorStatus::Available)
    })
    .await;

    let caller = live
        .with_world(|w| {
            w.place_call(
                BoxIndex(0),
                PhoneCall {
                    phone: "carol".into(),
                    caller: CallerId { name: "Carol".into(), number: "5551234".into() },
                    context: "lineup-gates".into(),
                    exten: "5000".into(),
                    patience_ms: Some(8_000),
                    keys: vec![],
                },
            )
        })
        .unwrap();
    let call = CallId::new(format!("1-{}", caller.as_str()));
    wait_for(&cluster, "connected call", |r| r.call_view(&call).is_some_and(|v| v.status == CallStatus::Connected))
        .await;
    assert!(matches!(
        live.with_world(|w| w.audio_path(BoxIndex(0), &caller)),
        Some(lineup_pbx_sim::AudioPath::Connected { .. })
    ));
    // The caller hangs up after its patience: the call completes and the operator is free.
    wait_for(&cluster, "completion", |r| r.call_view(&call).is_none()).await;
    wait_for(&cluster, "operator free", |r| {
        r.operator_view(&OperatorId::new("1001")).is_some_and(|v| v.status == OperatorStatus::Available)
    })
    .await;

    stop.send_replace(true);
    let counters = tokio::time::timeout(WAIT_LIMIT, site).await.expect("site stops").expect("site task");
    assert_eq!(counters.logins_ok, 1);
    assert_eq!(counters.bridges_connected, 1);
    assert!(counters.reconciles >= 1, "reconciled at start");
    ticker.abort();
}
