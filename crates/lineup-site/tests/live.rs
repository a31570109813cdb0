//! End to end over real sockets: the stand-in's ARI HTTP + WebSocket servers (one per site,
//! joined by trunks), the ARI client, the async driver running each site's controller, and
//! a single-node in-process cluster shared by the sites. Every wait is bounded.

use lineup_ari::{ApplicationName, AriConfig, AriEvents, CallerId, ChannelId, HttpAri};
use lineup_core::*;
use lineup_pbx_sim::{
    federated_sites, serve_box, AudioPath, BoxIndex, BoxServer, LiveWorld, PhoneBehaviour, PhoneCall, ScriptedKeys,
    SimCredentials,
};
use lineup_site::driver::{run_site, ClusterFeed, ClusterPort};
use lineup_site::{ProposeFailure, SiteConfig, SiteController, SiteCounters};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

const WAIT_LIMIT: Duration = Duration::from_secs(30);
const TICK_INTERVAL: Duration = Duration::from_millis(100);
const FEED_CAPACITY: usize = 1_024;

/// A one-node "cluster": applies commands in order and feeds every site its effects.
struct LocalCluster {
    state: Mutex<(Routing, u64, u64)>,
    /// Every call's final record, as history would get it.
    ended: Mutex<Vec<CallRecord>>,
    /// Calls that were ever connected (a short call may be over before a wait looks).
    connected: Mutex<std::collections::BTreeSet<CallId>>,
    feeds: Vec<(SiteId, mpsc::Sender<ClusterFeed>)>,
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
        self.ended.lock().unwrap().extend(effects.iter().filter_map(|e| match e {
            Effect::CallEnded(r) => Some(r.clone()),
            _ => None,
        }));
        self.connected.lock().unwrap().extend(effects.iter().filter_map(|e| match e {
            Effect::CallChanged(v) if v.status == CallStatus::Connected => Some(v.call.clone()),
            _ => None,
        }));
        for (site, feed) in &self.feeds {
            let mine: Vec<Effect> = effects.iter().filter(|e| e.is_for(*site)).cloned().collect();
            let _ = feed.send(ClusterFeed::Effects { log_index: index, effects: mine }).await;
        }
        self.commits.send_replace(index);
        result
    }

    async fn admin(&self, body: CommandBody) -> CommandResult {
        let serial = {
            let mut state = self.state.lock().unwrap();
            state.2 += 1;
            state.2
        };
        self.commit(Command { id: CommandId { origin: 999, serial }, at_ms: now_ms(), body }).await
    }
}

impl ClusterPort for LocalCluster {
    async fn submit(&self, command: Command) -> Result<CommandResult, ProposeFailure> {
        Ok(self.commit(command).await)
    }
    fn read<R>(&self, read: impl FnOnce(&Routing) -> R) -> R {
        read(&self.state.lock().unwrap().0)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn argon2_phc(pin: &str) -> String {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default().hash_password(pin.as_bytes()).unwrap().to_string()
}

/// N sites over real ARI, sharing one in-process cluster.
struct LiveRig {
    live: Arc<LiveWorld>,
    cluster: Arc<LocalCluster>,
    _servers: Vec<BoxServer>,
    sites: Vec<JoinHandle<SiteCounters>>,
    stop: watch::Sender<bool>,
    ticker: JoinHandle<()>,
}

impl LiveRig {
    async fn start(sites: usize) -> LiveRig {
        let names: Vec<String> = (1..=sites).map(|s| format!("site-{s}")).collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let live = LiveWorld::start(federated_sites(now_ms(), &name_refs).unwrap());
        let (commits, _) = watch::channel(0);
        let mut feeds = Vec::new();
        let mut receivers = Vec::new();
        for s in 1..=sites {
            let (tx, rx) = mpsc::channel(FEED_CAPACITY);
            feeds.push((SiteId(s as u64), tx));
            receivers.push(rx);
        }
        let cluster = Arc::new(LocalCluster {
            state: Mutex::new((Routing::new(), 0, 0)),
            ended: Mutex::new(Vec::new()),
            connected: Mutex::new(Default::default()),
            feeds,
            commits,
        });
        cluster.admin(CommandBody::Tick { now_ms: now_ms() }).await.unwrap();
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
        let mut servers = Vec::new();
        let mut handles = Vec::new();
        for (i, feed) in receivers.into_iter().enumerate() {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let credentials = SimCredentials { username: "lineup".into(), password: "not-in-urls".into() };
            let server = serve_box(Arc::clone(&live), BoxIndex(i), listener, credentials).await.unwrap();
            let config = AriConfig {
                base_url: server.base_url(),
                username: "lineup".into(),
                password: "not-in-urls".into(),
                applications: vec![
                    ApplicationName::new("lineup").unwrap(),
                    ApplicationName::new("lineup-login").unwrap(),
                ],
                request_timeout_ms: 5_000,
            };
            let site = SiteId(i as u64 + 1);
            let mut site_config = SiteConfig::new(site, now_ms() * 1_000);
            for other in (1..=sites as u64).filter(|o| *o != site.0) {
                site_config.trunk_endpoints.insert(SiteId(other), format!("PJSIP/lineup-{{call}}@site-{other}"));
            }
            handles.push(tokio::spawn(run_site(
                SiteController::new(site_config),
                Arc::new(HttpAri::new(&config).unwrap()),
                AriEvents::connect(&config).unwrap(),
                feed,
                Arc::clone(&cluster),
                shutdown.clone(),
            )));
            servers.push(server);
        }
        let rig = LiveRig { live, cluster, _servers: servers, sites: handles, stop, ticker };
        // Stasis() fails for an application nobody is connected for: wait for every driver.
        let ready = |rig: &LiveRig| {
            (0..sites).all(|i| {
                rig.live.with_world(|w| {
                    w.list_applications(BoxIndex(i))
                        .map(|apps| apps.iter().filter(|a| a.name.starts_with("lineup")).count() == 2)
                        .unwrap_or(false)
                })
            })
        };
        let wait = async {
            // Ticks commit every TICK_INTERVAL, so this re-checks at that pace.
            let mut commits = rig.cluster.commits.subscribe();
            while !ready(&rig) {
                let _ = commits.changed().await;
            }
        };
        tokio::time::timeout(WAIT_LIMIT, wait).await.expect("drivers connected to ARI");
        rig
    }

    /// Waits (bounded) until `done` holds, re-checking after every commit (ticks commit).
    async fn wait(&self, what: &str, done: impl Fn(&Routing) -> bool) {
        let mut commits = self.cluster.commits.subscribe();
        let wait = async {
            loop {
                if self.cluster.read(&done) {
                    return;
                }
                if commits.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(WAIT_LIMIT, wait).await.unwrap_or_else(|_| panic!("no {what} within {WAIT_LIMIT:?}"));
    }

    async fn sales(&self) {
        self.cluster
            .admin(CommandBody::PutQueue(QueueConfig {
                id: QueueId::new("sales"),
                announce_every_ms: Some(5_000),
                ..Default::default()
            }))
            .await
            .unwrap();
        let gate = GateConfig { id: GateId::new("main"), queue: QueueId::new("sales"), ..Default::default() };
        self.cluster.admin(CommandBody::PutGate(gate)).await.unwrap();
    }

    async fn operator(&self, id: &str, site: u64, mode: OperatorMode, pin: &str) {
        self.cluster
            .admin(CommandBody::PutOperator(OperatorConfig {
                id: OperatorId::new(id),
                name: format!("Operator {id}"),
                site: SiteId(site),
                pin_hash: argon2_phc(pin),
                mode,
                endpoint: (mode == OperatorMode::Ring).then(|| format!("PJSIP/phone-{id}")),
                memberships: [(QueueId::new("sales"), 0)].into_iter().collect(),
                ..Default::default()
            }))
            .await
            .unwrap();
    }

    async fn login(&self, id: &str, site: u64, pin: &str) {
        let call = PhoneCall::operator_login(
            &format!("desk-{id}"),
            CallerId { name: id.into(), number: id.into() },
            "lineup-operators",
            &format!("*55{id}"),
            pin,
            3_000,
        );
        self.live.with_world(|w| w.place_call(BoxIndex(site as usize - 1), call)).unwrap();
        let operator = OperatorId::new(id);
        self.wait("operator login", |r| {
            r.operator_view(&operator).is_some_and(|v| v.status == OperatorStatus::Available)
        })
        .await;
    }

    fn caller(&self, site: u64, phone: &str, patience_ms: Option<u64>, keys: Vec<ScriptedKeys>) -> (ChannelId, CallId) {
        let call = PhoneCall {
            phone: phone.into(),
            caller: CallerId { name: phone.into(), number: "5551234".into() },
            context: "lineup-gates".into(),
            exten: "5000".into(),
            patience_ms,
            keys,
        };
        let channel = self.live.with_world(|w| w.place_call(BoxIndex(site as usize - 1), call)).unwrap();
        let call = CallId::new(format!("{site}-{}", channel.as_str()));
        (channel, call)
    }

    fn outcome(&self, call: &CallId) -> Option<Outcome> {
        self.cluster.ended.lock().unwrap().iter().find(|r| &r.call == call).map(|r| r.outcome.clone())
    }

    async fn stop(self) -> Vec<SiteCounters> {
        self.stop.send_replace(true);
        let mut counters = Vec::new();
        for site in self.sites {
            counters.push(tokio::time::timeout(WAIT_LIMIT, site).await.expect("site stops").expect("site task"));
        }
        self.ticker.abort();
        counters
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_is_answered_by_a_pin_logged_in_operator_over_real_ari() {
    let rig = LiveRig::start(1).await;
    rig.sales().await;
    rig.operator("1001", 1, OperatorMode::Persistent, "2468").await;
    rig.login("1001", 1, "2468").await;
    let (caller, call) = rig.caller(1, "carol", Some(8_000), vec![]);
    rig.wait("connected call", |r| r.call_view(&call).is_some_and(|v| v.status == CallStatus::Connected)).await;
    assert!(matches!(rig.live.with_world(|w| w.audio_path(BoxIndex(0), &caller)), Some(AudioPath::Connected { .. })));
    // The caller hangs up after its patience: the call completes and the operator is free.
    rig.wait("completion", |r| r.call_view(&call).is_none()).await;
    rig.wait("operator free", |r| {
        r.operator_view(&OperatorId::new("1001")).is_some_and(|v| v.status == OperatorStatus::Available)
    })
    .await;
    let counters = rig.stop().await;
    assert_eq!(counters[0].logins_ok, 1);
    assert_eq!(counters[0].bridges_connected, 1);
    assert!(counters[0].reconciles >= 1, "reconciled at start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_at_site_one_is_answered_by_a_ring_mode_operator_at_site_two_over_real_ari() {
    let rig = LiveRig::start(2).await;
    rig.sales().await;
    rig.operator("2002", 2, OperatorMode::Ring, "1357").await;
    let answers =
        PhoneBehaviour { answer_after_ms: Some(1_000), hang_up_after_answer_ms: Some(6_000), ..Default::default() };
    rig.live.with_world(|w| w.register_phone(BoxIndex(1), "phone-2002", answers)).unwrap();
    rig.login("2002", 2, "1357").await;
    let (caller, call) = rig.caller(1, "dave", None, vec![]);
    let cluster = Arc::clone(&rig.cluster);
    rig.wait("connected across sites", |_| cluster.connected.lock().unwrap().contains(&call)).await;
    // The caller talks with the operator at site 2 (while the call lasts).
    if let Some(AudioPath::Connected { parties }) = rig.live.with_world(|w| w.audio_path(BoxIndex(0), &caller)) {
        assert!(parties.iter().any(|(b, _)| b.0 == 1), "{parties:?}");
    }
    // The operator hangs up: completed by the operator, reported by the caller's site.
    rig.wait("completion", |r| r.call_view(&call).is_none()).await;
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Operator }));
    let counters = rig.stop().await;
    assert!(counters[0].offers_executed >= 1 && counters[1].offers_executed >= 1, "{counters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_socket_drop_is_reconciled_and_the_exit_key_works_over_real_ari() {
    let rig = LiveRig::start(1).await;
    rig.sales().await;
    // One caller leaves while the events socket is down; another presses 0 to leave.
    let (_, gone) = rig.caller(1, "erin", Some(2_500), vec![]);
    let keys = vec![ScriptedKeys { at_ms: 4_000, digits: "0".into() }];
    let (_, exits) = rig.caller(1, "frank", None, keys);
    rig.wait("both waiting", |r| r.position(&gone).is_some() && r.position(&exits).is_some()).await;
    assert!(rig.live.drop_event_connections(BoxIndex(0)) > 0);
    rig.wait("abandon found by the reconcile", |r| r.call_view(&gone).is_none()).await;
    rig.wait("exit with key", |r| r.call_view(&exits).is_none()).await;
    assert_eq!(rig.outcome(&gone), Some(Outcome::Abandoned));
    assert_eq!(rig.outcome(&exits), Some(Outcome::ExitWithKey { key: '0' }));
    let counters = rig.stop().await;
    assert!(counters[0].reconciles >= 2, "start plus the reconnect: {:?}", counters[0]);
}
