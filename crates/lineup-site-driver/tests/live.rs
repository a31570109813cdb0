//! End to end over real sockets: the stand-in's ARI HTTP + WebSocket servers (one per site,
//! joined by trunks), the ARI client, the async driver running each site's controller, and
//! a single-node in-process cluster shared by the sites. Every wait is bounded.

use lineup_ari::{ApplicationName, AriConfig, AriEvents, CallerId, ChannelId, HttpAri};
use lineup_core::*;
use lineup_pbx_server::{serve_box, BoxServer, LiveWorld, RequestRecord, RestFault, RestFaultKind, SimCredentials};
use lineup_pbx_sim::{federated_sites, AudioPath, BoxIndex, EndedChannel, PhoneBehaviour, PhoneCall, ScriptedKeys};
use lineup_site::{ProposeFailure, SiteConfig, SiteController, SiteCounters};
use lineup_site_driver::{run_site, ClusterFeed, ClusterPort};
use lineup_util::now_ms;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

const WAIT_LIMIT: Duration = Duration::from_secs(30);
const TICK_INTERVAL: Duration = Duration::from_millis(100);
const FEED_CAPACITY: usize = 1_024;
/// The ARI client's request timeout, unless a test shortens it.
const REQUEST_TIMEOUT_MS: u64 = 5_000;
/// When a scripted operator keys the PIN (during the agent-pass prompt, which takes keys).
const PIN_AT_MS: u64 = 1_000;

/// A one-node "cluster": applies commands in order and feeds every site its effects.
struct LocalCluster {
    state: Mutex<(Routing, u64, u64)>,
    /// Every call's final record, as history would get it.
    ended: Mutex<Vec<CallRecord>>,
    /// Calls that were ever connected (a short call may be over before a wait looks).
    connected: Mutex<std::collections::BTreeSet<CallId>>,
    /// Every queue_log line committed, as history would get it.
    queue_log: Mutex<Vec<QueueLogEntry>>,
    /// Every command applied (refused ones too), in order.
    applied: Mutex<Vec<CommandBody>>,
    /// Each site's effect feed (replaced when a test restarts a site).
    feeds: Mutex<Vec<(SiteId, mpsc::Sender<ClusterFeed>)>>,
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
        self.applied.lock().unwrap().push(command.body.clone());
        self.ended.lock().unwrap().extend(effects.iter().filter_map(|e| match e {
            Effect::CallEnded(r) => Some(r.clone()),
            _ => None,
        }));
        self.connected.lock().unwrap().extend(effects.iter().filter_map(|e| match e {
            Effect::CallChanged(v) if v.status == CallStatus::Connected => Some(v.call.clone()),
            _ => None,
        }));
        self.queue_log.lock().unwrap().extend(effects.iter().filter_map(|e| match e {
            Effect::QueueLog(l) => Some(l.clone()),
            _ => None,
        }));
        let feeds = self.feeds.lock().unwrap().clone();
        for (site, feed) in &feeds {
            let mine: Vec<Effect> = effects.iter().filter(|e| e.is_for(*site)).cloned().collect();
            let _ = feed.send(ClusterFeed::Effects { apply_index: index, effects: mine }).await;
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

/// A PHC string with the smallest argon2id cost: verification reads the cost from the
/// string, so logins in these tests do not spend seconds in an unoptimised argon2.
fn argon2_phc(pin: &str) -> String {
    use argon2::password_hash::PasswordHasher;
    let params = argon2::Params::new(argon2::Params::MIN_M_COST, 1, 1, None).unwrap();
    let argon2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    argon2.hash_password(pin.as_bytes()).unwrap().to_string()
}

/// N sites over real ARI, sharing one in-process cluster.
struct LiveRig {
    live: Arc<LiveWorld>,
    cluster: Arc<LocalCluster>,
    _servers: Vec<BoxServer>,
    /// Each site's ARI client configuration (a restarted site connects with it again).
    ari_configs: Vec<AriConfig>,
    /// Each site's running driver and the switch that stops it.
    sites: Vec<(JoinHandle<SiteCounters>, watch::Sender<bool>)>,
    ticker: JoinHandle<()>,
    /// Every REST request the stand-in answered (a recorder task fills it).
    requests: Arc<Mutex<Vec<RequestRecord>>>,
    recorder: JoinHandle<()>,
}

/// Starts site `site`'s driver (a fresh controller) against its box; returns the task and
/// the switch that stops it.
fn spawn_site(
    site: SiteId,
    sites: usize,
    config: &AriConfig,
    feed: mpsc::Receiver<ClusterFeed>,
    cluster: &Arc<LocalCluster>,
) -> (JoinHandle<SiteCounters>, watch::Sender<bool>) {
    // Serials start from the clock, so a restarted site never reuses a command id.
    let mut site_config = SiteConfig::new(site, now_ms() * 1_000);
    // Callbacks dial the promised number as a phone of the same box.
    site_config.callback_endpoint = Some("PJSIP/{number}".into());
    for other in (1..=sites as u64).filter(|o| *o != site.0) {
        site_config.trunk_endpoints.insert(SiteId(other), format!("PJSIP/lineup-{{call}}@site-{other}"));
    }
    let (stop, shutdown) = watch::channel(false);
    let (counters, _) = watch::channel(SiteCounters::default());
    let handle = tokio::spawn(run_site(
        SiteController::new(site_config),
        Arc::new(HttpAri::new(config).unwrap()),
        AriEvents::connect(config).unwrap(),
        feed,
        Arc::clone(cluster),
        shutdown,
        counters,
    ));
    (handle, stop)
}

impl LiveRig {
    async fn start(sites: usize) -> LiveRig {
        LiveRig::start_with_timeout(sites, REQUEST_TIMEOUT_MS).await
    }

    /// `sites` sites whose ARI clients give up on a request after `request_timeout_ms`.
    async fn start_with_timeout(sites: usize, request_timeout_ms: u64) -> LiveRig {
        let names: Vec<String> = (1..=sites).map(|s| format!("site-{s}")).collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let live = LiveWorld::start(federated_sites(now_ms(), &name_refs).unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorder = {
            let (mut watch, requests) = (live.watch_requests(), Arc::clone(&requests));
            tokio::spawn(async move {
                loop {
                    match watch.recv().await {
                        Ok(record) => requests.lock().unwrap().push(record),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            })
        };
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
            queue_log: Mutex::new(Vec::new()),
            applied: Mutex::new(Vec::new()),
            feeds: Mutex::new(feeds),
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
        let mut servers = Vec::new();
        let mut ari_configs = Vec::new();
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
                request_timeout_ms,
            };
            handles.push(spawn_site(SiteId(i as u64 + 1), sites, &config, feed, &cluster));
            ari_configs.push(config);
            servers.push(server);
        }
        let rig = LiveRig { live, cluster, _servers: servers, ari_configs, sites: handles, ticker, requests, recorder };
        // Stasis() fails for an application nobody is connected for: wait for every driver.
        for site in 1..=sites as u64 {
            rig.wait_until("driver connected to ARI", || rig.applications(site) == 2).await;
        }
        rig
    }

    /// How many of Lineup's Stasis applications are registered at `site`'s box.
    fn applications(&self, site: u64) -> usize {
        self.live.with_world(|w| {
            w.list_applications(BoxIndex(site as usize - 1))
                .map(|apps| apps.iter().filter(|a| a.name.starts_with("lineup")).count())
                .unwrap_or(0)
        })
    }

    /// Stops `site`'s driver (its events socket closes, its controller's memory is gone) and
    /// starts a new one, which must rebuild everything from GET /channels and /bridges and the
    /// committed state. Returns the old driver's counters once the new one has reconciled.
    async fn restart(&mut self, site: u64) -> SiteCounters {
        let counters = self.stop_site(site).await;
        self.start_site(site).await;
        counters
    }

    /// Stops `site`'s driver and waits until the stand-in saw its events socket close.
    async fn stop_site(&mut self, site: u64) -> SiteCounters {
        let (old, stop) = &mut self.sites[site as usize - 1];
        stop.send_replace(true);
        let counters = tokio::time::timeout(WAIT_LIMIT, old).await.expect("site stops").expect("site task");
        self.wait_until("the old events socket closed", || self.applications(site) == 0).await;
        counters
    }

    /// Starts a new driver (a fresh controller) for a stopped `site`; returns once it has
    /// connected and listed channels and bridges.
    async fn start_site(&mut self, site: u64) {
        let index = site as usize - 1;
        let bridge_lists = || {
            let requests = self.requests.lock().unwrap();
            requests.iter().filter(|r| r.box_index.0 == index && r.method == "GET" && r.path == "/bridges").count()
        };
        let reconciles_before = bridge_lists();
        let (tx, rx) = mpsc::channel(FEED_CAPACITY);
        {
            let mut feeds = self.cluster.feeds.lock().unwrap();
            let feed = feeds.iter_mut().find(|(s, _)| s.0 == site).expect("site feed");
            feed.1 = tx;
        }
        self.sites[index] = spawn_site(SiteId(site), self.sites.len(), &self.ari_configs[index], rx, &self.cluster);
        self.wait_until("the new driver connected", || self.applications(site) == 2).await;
        self.wait_until("the new driver reconciled", || bridge_lists() > reconciles_before).await;
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

    /// Waits (bounded) until `done` holds, re-checking after every commit (ticks commit every
    /// `TICK_INTERVAL`); for conditions on the stand-in or the rig rather than on routing.
    async fn wait_until(&self, what: &str, done: impl Fn() -> bool) {
        let mut commits = self.cluster.commits.subscribe();
        let wait = async {
            while !done() {
                if commits.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(WAIT_LIMIT, wait).await.unwrap_or_else(|_| panic!("no {what} within {WAIT_LIMIT:?}"));
    }

    async fn queue(&self, config: QueueConfig) {
        self.cluster.admin(CommandBody::PutQueue(config)).await.unwrap();
    }

    async fn gate(&self, id: &str, queue: &str) {
        let gate = GateConfig { id: GateId::new(id), queue: QueueId::new(queue), ..Default::default() };
        self.cluster.admin(CommandBody::PutGate(gate)).await.unwrap();
    }

    /// A caller with a given caller id number dialling `exten` of `lineup-gates`.
    fn dial(
        &self,
        site: u64,
        phone: &str,
        number: &str,
        exten: &str,
        patience_ms: Option<u64>,
        keys: Vec<ScriptedKeys>,
    ) -> (ChannelId, CallId) {
        let call = PhoneCall {
            phone: phone.into(),
            caller: CallerId { name: phone.into(), number: number.into() },
            context: "lineup-gates".into(),
            exten: exten.into(),
            patience_ms,
            keys,
        };
        let channel = self.live.with_world(|w| w.place_call(BoxIndex(site as usize - 1), call)).unwrap();
        let call = CallId::new(format!("{site}-{}", channel.as_str()));
        (channel, call)
    }

    /// What a destroyed channel of `site` left behind (its final dialplan place, variables).
    fn ended(&self, site: u64, channel: &ChannelId) -> Option<EndedChannel> {
        self.live.with_world(|w| w.ended_channel(BoxIndex(site as usize - 1), channel))
    }

    /// REST requests answered so far whose method is `method` and path contains `path`.
    fn requests_to(&self, method: &str, path: &str) -> Vec<RequestRecord> {
        let requests = self.requests.lock().unwrap();
        requests.iter().filter(|r| r.method == method && r.path.contains(path)).cloned().collect()
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
            PIN_AT_MS,
        );
        self.live.with_world(|w| w.place_call(BoxIndex(site as usize - 1), call)).unwrap();
        let operator = OperatorId::new(id);
        self.wait("operator login", |r| {
            r.operator_view(&operator).is_some_and(|v| v.status == OperatorStatus::Available)
        })
        .await;
    }

    fn caller(&self, site: u64, phone: &str, patience_ms: Option<u64>, keys: Vec<ScriptedKeys>) -> (ChannelId, CallId) {
        self.dial(site, phone, "5551234", "5000", patience_ms, keys)
    }

    fn outcome(&self, call: &CallId) -> Option<Outcome> {
        self.cluster.ended.lock().unwrap().iter().find(|r| &r.call == call).map(|r| r.outcome.clone())
    }

    async fn stop(self) -> Vec<SiteCounters> {
        for (_, stop) in &self.sites {
            stop.send_replace(true);
        }
        let mut counters = Vec::new();
        for (site, _) in self.sites {
            counters.push(tokio::time::timeout(WAIT_LIMIT, site).await.expect("site stops").expect("site task"));
        }
        self.ticker.abort();
        self.recorder.abort();
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

/// A persistent operator logged in at site 1, ready for `sales` (whose missed offers rest the
/// operator only briefly, so a failed offer is retried within the test).
async fn sales_with_operator(rig: &LiveRig) {
    rig.queue(QueueConfig { id: QueueId::new("sales"), miss_backoff_ms: 500, ..Default::default() }).await;
    rig.gate("main", "sales").await;
    rig.operator("1001", 1, OperatorMode::Persistent, "2468").await;
    rig.login("1001", 1, "2468").await;
}

/// The call bridges (`call-<site>-<fence>`) that channels were added to, in request order.
fn call_bridges_joined(rig: &LiveRig) -> Vec<(String, u16)> {
    rig.requests_to("POST", "/bridges/call-")
        .into_iter()
        .filter(|r| r.path.ends_with("/addChannel"))
        .map(|r| (r.path.trim_start_matches("/bridges/").trim_end_matches("/addChannel").to_string(), r.status))
        .collect()
}

fn hears_operator(rig: &LiveRig, channel: &ChannelId, operator_phone: &str) -> bool {
    match rig.live.with_world(|w| w.audio_path(BoxIndex(0), channel)) {
        Some(AudioPath::Connected { parties }) => parties.iter().any(|(_, name)| name.contains(operator_phone)),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_takes_a_callback_and_the_site_calls_the_number_back_when_the_operator_frees_over_real_ari() {
    let rig = LiveRig::start(1).await;
    rig.queue(QueueConfig {
        id: QueueId::new("sales"),
        callback_offer_above_eta_ms: Some(1_000),
        default_handle_ms: 300_000,
        ..Default::default()
    })
    .await;
    rig.gate("main", "sales").await;
    rig.operator("1001", 1, OperatorMode::Persistent, "2468").await;
    rig.login("1001", 1, "2468").await;
    // The operator is busy with a first caller, so the queue has an ETA and offers callbacks.
    let (_, first) = rig.caller(1, "busy", Some(6_000), vec![]);
    rig.wait("first caller connected", |r| r.call_view(&first).is_some_and(|v| v.status == CallStatus::Connected))
        .await;
    // The number to call back is a phone on this box: it answers, talks 3 s, hangs up.
    let callee =
        PhoneBehaviour { answer_after_ms: Some(500), hang_up_after_answer_ms: Some(3_000), ..Default::default() };
    rig.live.with_world(|w| w.register_phone(BoxIndex(0), "555", callee)).unwrap();
    // "1" during "press 1 to be called back"; "1" again to confirm the caller id 555.
    let keys =
        vec![ScriptedKeys { at_ms: 1_000, digits: "1".into() }, ScriptedKeys { at_ms: 2_500, digits: "1".into() }];
    let (caller, call) = rig.dial(1, "patient", "555", "5000", None, keys);
    rig.wait("promise committed", |r| r.call_view(&call).is_some_and(|v| v.status == CallStatus::CallbackWaiting))
        .await;
    // The first call ends, the operator frees: the site dials 555 and bridges it with the operator.
    rig.wait("callback connected", |r| r.call_view(&call).is_some_and(|v| v.status == CallStatus::CallbackConnected))
        .await;
    let callee_leg = rig
        .live
        .with_world(|w| w.channel_names(BoxIndex(0)))
        .into_iter()
        .find(|(_, name)| name.starts_with("PJSIP/555-"))
        .map(|(id, _)| id)
        .expect("the site dialled the promised number");
    assert!(hears_operator(&rig, &callee_leg, "desk-1001"), "the callee talks with the operator");
    // The caller heard the offer, then the confirmation (after the commit), and was hung up.
    rig.wait_until("caller hung up after the confirmation", || rig.ended(1, &caller).is_some()).await;
    let plays = rig.requests_to("POST", &format!("/channels/{caller}/play"));
    let media: Vec<&str> =
        plays.iter().flat_map(|r| r.query.iter().filter(|(k, _)| k == "media").map(|(_, v)| v.as_str())).collect();
    let offered = media.iter().position(|m| *m == "sound:lineup-callback-offer");
    let confirmed = media.iter().position(|m| *m == "sound:lineup-callback-confirmed");
    assert!(offered.is_some() && confirmed.is_some() && offered < confirmed, "{media:?}");
    assert_eq!(rig.requests_to("DELETE", &format!("/channels/{caller}")).len(), 1, "the site hung the caller up");
    // The callee hangs up: the promise is completed, the operator is free again.
    rig.wait("callback completed", |_| rig.outcome(&call).is_some()).await;
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Caller }));
    rig.wait("operator free", |r| {
        r.operator_view(&OperatorId::new("1001")).is_some_and(|v| v.status == OperatorStatus::Available)
    })
    .await;
    let bridges = call_bridges_joined(&rig);
    assert_eq!(bridges.len(), 2, "one call bridge for the first caller, one for the callback: {bridges:?}");
    assert_ne!(bridges[0].0, bridges[1].0);
    let counters = rig.stop().await;
    assert_eq!(counters[0].bridges_connected, 2, "{:?}", counters[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_full_and_closed_send_callers_back_to_the_dialplan_with_lineup_result_over_real_ari() {
    let rig = LiveRig::start(1).await;
    rig.queue(QueueConfig {
        id: QueueId::new("sales"),
        max_wait_ms: Some(1_500),
        max_waiting: 1,
        ..Default::default()
    })
    .await;
    rig.gate("main", "sales").await;
    // `support` (extension 5002, gate `web`) keeps hours that are never open.
    let never =
        ScheduleConfig { id: ScheduleId::new("never"), time_zone: "UTC".into(), weekly: vec![], holidays: vec![] };
    rig.cluster.admin(CommandBody::PutSchedule(never)).await.unwrap();
    rig.queue(QueueConfig {
        id: QueueId::new("support"),
        schedule: Some(ScheduleId::new("never")),
        ..Default::default()
    })
    .await;
    rig.gate("web", "support").await;
    let (waits, timed_out) = rig.caller(1, "hank", None, vec![]);
    rig.wait("first caller waiting", |r| r.position(&timed_out) == Some(1)).await;
    let (refused, full) = rig.caller(1, "ivan", None, vec![]);
    let (after_hours, closed) = rig.dial(1, "judy", "5551234", "5002", None, vec![]);
    // The deployed dialplan sends TIMEOUT to its overflow context and hangs the others up.
    let cases = [
        (waits, timed_out, Outcome::TimedOut, "TIMEOUT", ("lineup-overflow", "s")),
        (refused, full, Outcome::Full, "FULL", ("lineup-gates", "5000")),
        (after_hours, closed, Outcome::Closed, "CLOSED", ("lineup-gates", "5002")),
    ];
    for (channel, call, outcome, result, (context, exten)) in cases {
        rig.wait("call ended", |_| rig.outcome(&call).is_some()).await;
        assert_eq!(rig.outcome(&call), Some(outcome));
        // Back in the dialplan with LINEUP_RESULT set (not retried: Stasis succeeded).
        rig.wait_until("the dialplan ran on and hung up", || rig.ended(1, &channel).is_some()).await;
        let ended = rig.ended(1, &channel).unwrap();
        assert_eq!(ended.variables.get("LINEUP_RESULT").map(String::as_str), Some(result), "{ended:?}");
        assert_eq!(ended.variables.get("LINEUP_TRIES").map(String::as_str), Some("0"), "{ended:?}");
        let place = &ended.channel.dialplan;
        assert_eq!((place.context.as_str(), place.exten.as_str()), (context, exten), "{ended:?}");
        assert!(place.priority > 1 && place.app_name == "Hangup", "continued past Stasis: {place:?}");
        // The recorder task may still be filing the request the world already acted on.
        let continues = || rig.requests_to("POST", &format!("/channels/{channel}/continue")).len();
        rig.wait_until("the continue request recorded", || continues() >= 1).await;
        assert_eq!(continues(), 1);
    }
    let counters = rig.stop().await;
    assert_eq!(counters[0].callers_entered, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_500_on_the_bridge_fails_the_offer_and_the_caller_keeps_its_place_and_is_served_over_real_ari() {
    let rig = LiveRig::start(1).await;
    sales_with_operator(&rig).await;
    let fault = RestFault {
        box_index: BoxIndex(0),
        method: Some("POST".into()),
        path_contains: "/bridges/call-".into(),
        kind: RestFaultKind::RefuseWithServerError,
        count: 1,
    };
    assert!(rig.live.inject_rest_fault(fault));
    let (caller, call) = rig.caller(1, "pat", Some(7_000), vec![]);
    let cluster = Arc::clone(&rig.cluster);
    rig.wait("connected on the second offer", |_| cluster.connected.lock().unwrap().contains(&call)).await;
    assert!(hears_operator(&rig, &caller, "desk-1001"));
    let bridges = call_bridges_joined(&rig);
    assert_eq!(bridges.len(), 2, "{bridges:?}");
    assert_eq!((bridges[0].1, bridges[1].1), (500, 204), "{bridges:?}");
    assert_ne!(bridges[0].0, bridges[1].0, "a new bridge for the new offer");
    rig.wait("completion", |r| r.call_view(&call).is_none()).await;
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Caller }));
    rig.wait("operator free", |r| {
        r.operator_view(&OperatorId::new("1001")).is_some_and(|v| v.status == OperatorStatus::Available)
    })
    .await;
    let no_call_bridges = || {
        rig.live
            .with_world(|w| w.list_bridges(BoxIndex(0)))
            .unwrap()
            .iter()
            .all(|b| !b.id.as_str().starts_with("call-"))
    };
    rig.wait_until("both call bridges taken down", no_call_bridges).await;
    let counters = rig.stop().await;
    assert_eq!(counters[0].bridges_connected, 1, "{:?}", counters[0]);
    assert!(counters[0].ari_failures >= 1, "{:?}", counters[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_timeout_on_the_bridge_is_undone_and_the_caller_is_served_once_over_real_ari() {
    // The client gives up after 2 s; the stand-in adds the channels but answers after 4 s.
    // (With 1 s, an ordinary request on a loaded 2-core machine sometimes took longer and a
    // third offer followed.)
    let rig = LiveRig::start_with_timeout(1, 2_000).await;
    sales_with_operator(&rig).await;
    let fault = RestFault {
        box_index: BoxIndex(0),
        method: Some("POST".into()),
        path_contains: "/bridges/call-".into(),
        kind: RestFaultKind::AnswerLate { delay_ms: 4_000 },
        count: 1,
    };
    assert!(rig.live.inject_rest_fault(fault));
    let (caller, call) = rig.caller(1, "quinn", Some(12_000), vec![]);
    let cluster = Arc::clone(&rig.cluster);
    rig.wait("connected", |_| cluster.connected.lock().unwrap().contains(&call)).await;
    assert!(hears_operator(&rig, &caller, "desk-1001"));
    // The recorder task may still be filing the requests the world already acted on.
    rig.wait_until("the second bridge's join recorded", || call_bridges_joined(&rig).len() >= 2).await;
    let bridges = call_bridges_joined(&rig);
    assert_eq!(bridges.len(), 2, "the unknown outcome was undone, then a new offer: {bridges:?}");
    let first = &bridges[0].0;
    let deletes = || rig.requests_to("DELETE", &format!("/bridges/{first}")).len();
    rig.wait_until("the first bridge's removal recorded", || deletes() >= 1).await;
    assert_eq!(deletes(), 1, "the first bridge was taken down");
    rig.wait("completion", |r| r.call_view(&call).is_none()).await;
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Caller }));
    let counters = rig.stop().await;
    assert_eq!(counters[0].bridges_connected, 1, "{:?}", counters[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_reordered_events_change_nothing_over_real_ari() {
    let rig = LiveRig::start(1).await;
    rig.live.set_duplicate_events(BoxIndex(0), true);
    rig.live.set_reorder_events(BoxIndex(0), true);
    sales_with_operator(&rig).await;
    let (caller, call) = rig.caller(1, "rita", Some(5_000), vec![]);
    let cluster = Arc::clone(&rig.cluster);
    rig.wait("connected", |_| cluster.connected.lock().unwrap().contains(&call)).await;
    assert!(hears_operator(&rig, &caller, "desk-1001"));
    rig.wait("completion", |r| r.call_view(&call).is_none()).await;
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Caller }));
    rig.wait("operator free", |r| {
        r.operator_view(&OperatorId::new("1001")).is_some_and(|v| v.status == OperatorStatus::Available)
    })
    .await;
    assert_eq!(call_bridges_joined(&rig).len(), 1, "one bridge for the one caller");
    let ended = rig.cluster.ended.lock().unwrap().iter().filter(|r| r.call == call).count();
    assert_eq!(ended, 1, "one end for the one caller");
    let counters = rig.stop().await;
    assert_eq!((counters[0].callers_entered, counters[0].bridges_connected), (1, 1), "{:?}", counters[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_queue_sends_the_caller_back_with_invalid_over_real_ari() {
    let rig = LiveRig::start(1).await;
    rig.sales().await;
    // Extension 5002 enters `support` through gate `web`: neither exists here.
    let (channel, call) = rig.dial(1, "kim", "5551234", "5002", None, vec![]);
    rig.wait_until("the dialplan ran on and hung up", || rig.ended(1, &channel).is_some()).await;
    let ended = rig.ended(1, &channel).unwrap();
    assert_eq!(ended.variables.get("LINEUP_RESULT").map(String::as_str), Some("INVALID"), "{ended:?}");
    // The recorder task may still be filing the request the world already acted on.
    let continues = || rig.requests_to("POST", &format!("/channels/{channel}/continue")).len();
    rig.wait_until("the continue request recorded", || continues() >= 1).await;
    assert_eq!(continues(), 1);
    assert!(rig.cluster.read(|r| r.call_view(&call).is_none()), "nothing was queued");
    let counters = rig.stop().await;
    assert_eq!(counters[0].callers_invalid, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_caller_hears_announcements_and_hold_music_resumes_after_each_over_real_ari() {
    let rig = LiveRig::start(1).await;
    rig.sales().await; // announcements every 5 s
    let (channel, call) = rig.caller(1, "lena", None, vec![]);
    rig.wait("caller waiting", |r| r.position(&call) == Some(1)).await;
    let plays = || rig.requests_to("POST", &format!("/channels/{channel}/play"));
    let moh_starts = || rig.requests_to("POST", &format!("/channels/{channel}/moh"));
    // The entry announcement, then a periodic one; hold music restarted after each prompt.
    rig.wait_until("two announcements", || plays().len() >= 2).await;
    rig.wait_until("hold music back after the second", || moh_starts().len() >= 3).await;
    let first = &plays()[0];
    let media = first.query.iter().find(|(k, _)| k == "media").map(|(_, v)| v.clone()).unwrap_or_default();
    assert!(media.starts_with("sound:queue-youarenext"), "position 1 is 'you are next': {media}");
    assert!(matches!(
        rig.live.with_world(|w| w.audio_path(BoxIndex(0), &channel)),
        Some(AudioPath::MusicOnHold { .. } | AudioPath::Prompt { .. })
    ));
    assert!(rig.live.with_world(|w| w.phone_hangup(BoxIndex(0), &channel)));
    rig.wait("abandoned", |_| rig.outcome(&call).is_some()).await;
    assert_eq!(rig.outcome(&call), Some(Outcome::Abandoned));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_hanging_up_while_the_operator_is_rung_withdraws_the_offer_over_real_ari() {
    let rig = LiveRig::start(1).await;
    rig.sales().await;
    rig.operator("1003", 1, OperatorMode::Ring, "2468").await;
    // The operator's phone rings and is never picked up.
    let never_answers = PhoneBehaviour { answer_after_ms: None, ..Default::default() };
    rig.live.with_world(|w| w.register_phone(BoxIndex(0), "phone-1003", never_answers)).unwrap();
    rig.login("1003", 1, "2468").await;
    let (caller, call) = rig.caller(1, "mona", None, vec![]);
    rig.wait("offered", |r| r.call_view(&call).is_some_and(|v| v.status == CallStatus::Offered)).await;
    rig.wait_until("the operator's phone is rung", || {
        rig.requests_to("POST", "/channels").iter().any(|r| r.query.iter().any(|(_, v)| v.contains("phone-1003")))
    })
    .await;
    assert!(rig.live.with_world(|w| w.phone_hangup(BoxIndex(0), &caller)));
    rig.wait("abandoned", |_| rig.outcome(&call).is_some()).await;
    assert_eq!(rig.outcome(&call), Some(Outcome::Abandoned));
    // The offer is withdrawn: the ringing leg is hung up and the operator is free again.
    let operator = OperatorId::new("1003");
    rig.wait("operator released", |r| {
        r.operator_view(&operator).is_some_and(|v| matches!(v.status, OperatorStatus::Available))
    })
    .await;
    rig.wait_until("the ringing leg hung up", || {
        rig.live.with_world(|w| w.channel_names(BoxIndex(0)).iter().all(|(_, name)| !name.contains("phone-1003")))
    })
    .await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_whisper_plays_to_the_operator_before_the_caller_is_bridged_over_real_ari() {
    let rig = LiveRig::start(1).await;
    rig.sales().await;
    let vip = GateConfig {
        id: GateId::new("vip"),
        queue: QueueId::new("sales"),
        whisper: Some("queue-reporthold".into()),
        ..Default::default()
    };
    rig.cluster.admin(CommandBody::PutGate(vip)).await.unwrap();
    rig.operator("1004", 1, OperatorMode::Persistent, "1357").await;
    rig.login("1004", 1, "1357").await;
    // Extension 5001 is the `vip` gate.
    let (caller, call) = rig.dial(1, "nina", "5559876", "5001", Some(30_000), vec![]);
    let cluster = Arc::clone(&rig.cluster);
    rig.wait("connected", |_| cluster.connected.lock().unwrap().contains(&call)).await;
    // The stand-in's request log is filled by a recorder task, which may trail the commit.
    let caller_added = |r: &RequestRecord| r.query.iter().any(|(_, v)| v.contains(caller.as_str()));
    rig.wait_until("the caller's addChannel recorded", || {
        rig.requests_to("POST", "/addChannel").iter().any(caller_added)
    })
    .await;
    let whisper = rig
        .requests_to("POST", "/play")
        .into_iter()
        .find(|r| r.query.iter().any(|(k, v)| k == "media" && v == "sound:queue-reporthold"))
        .expect("the whisper was played");
    assert!(!whisper.path.contains(caller.as_str()), "the whisper goes to the operator, not the caller");
    let bridged =
        rig.requests_to("POST", "/addChannel").into_iter().find(caller_added).expect("the caller was bridged");
    assert!(whisper.received_at < bridged.received_at, "whisper first, then the bridge");
    assert!(rig.live.with_world(|w| w.phone_hangup(BoxIndex(0), &caller)));
    rig.wait("completed", |_| rig.outcome(&call).is_some()).await;
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Caller }));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_wrong_pins_hang_up_and_log_nobody_in_over_real_ari() {
    let rig = LiveRig::start(1).await;
    rig.sales().await;
    rig.operator("1005", 1, OperatorMode::Persistent, "4321").await;
    let wrong = |at_ms: u64| ScriptedKeys { at_ms, digits: "0000#".into() };
    let login = PhoneCall {
        phone: "desk-1005".into(),
        caller: CallerId { name: "1005".into(), number: "1005".into() },
        context: "lineup-operators".into(),
        exten: "*551005".into(),
        patience_ms: None,
        keys: vec![wrong(PIN_AT_MS), wrong(PIN_AT_MS + 4_000), wrong(PIN_AT_MS + 8_000)],
    };
    let channel = rig.live.with_world(|w| w.place_call(BoxIndex(0), login)).unwrap();
    rig.wait_until("the login line hung up", || rig.ended(1, &channel).is_some()).await;
    let operator = OperatorId::new("1005");
    assert!(rig.cluster.read(|r| r.operator_view(&operator).is_some_and(|v| v.status == OperatorStatus::Offline)));
    let counters = rig.stop().await;
    assert_eq!((counters[0].logins_ok, counters[0].logins_failed), (0, 3), "{counters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_hanging_up_while_waiting_is_abandoned_and_a_key_after_the_hangup_is_ignored_over_real_ari() {
    let rig = LiveRig::start(1).await;
    rig.sales().await;
    let (channel, call) = rig.caller(1, "gina", None, vec![]);
    rig.wait("caller waiting", |r| r.position(&call) == Some(1)).await;
    // The exit key 0 and the hangup in one batch of events, delivered swapped: the DTMF
    // arrives after ChannelHangupRequest (as a late DTMF end can from a real Asterisk). The
    // caller is on hold music then, so no prompt's events sit between the two.
    rig.live.set_reorder_events(BoxIndex(0), true);
    rig.wait_until("a key and a hangup while on hold music", || {
        rig.live.with_world(|w| {
            if !matches!(w.audio_path(BoxIndex(0), &channel), Some(AudioPath::MusicOnHold { .. })) {
                return false;
            }
            w.phone_press(BoxIndex(0), &channel, "0").unwrap();
            let now = w.now_ms();
            w.advance_to(now); // the key is pressed now, before the hangup
            w.phone_hangup(BoxIndex(0), &channel)
        })
    })
    .await;
    rig.wait("call ended", |_| rig.outcome(&call).is_some()).await;
    rig.live.set_reorder_events(BoxIndex(0), false);
    assert_eq!(rig.outcome(&call), Some(Outcome::Abandoned));
    let exits =
        rig.cluster.applied.lock().unwrap().iter().filter(|c| matches!(c, CommandBody::ExitWithKey { .. })).count();
    assert_eq!(exits, 0, "the key after the hangup was not taken for an exit");
    assert!(rig.requests_to("POST", &format!("/channels/{channel}/continue")).is_empty());
    let ended = rig.ended(1, &channel).expect("the channel is gone");
    assert!(!ended.variables.contains_key("LINEUP_RESULT"), "{ended:?}");
    assert!(rig.cluster.read(|r| r.call_view(&call).is_none() && r.position(&call).is_none()));
    let counters = rig.stop().await;
    assert_eq!(counters[0].callers_entered, 1, "{:?}", counters[0]);
}

/// A login call for `id` at site 1 that keys `keys`.
fn login_call(rig: &LiveRig, phone: &str, id: &str, keys: Vec<ScriptedKeys>) -> ChannelId {
    let login = PhoneCall {
        phone: phone.into(),
        caller: CallerId { name: id.into(), number: id.into() },
        context: "lineup-operators".into(),
        exten: format!("*55{id}"),
        patience_ms: None,
        keys,
    };
    rig.live.with_world(|w| w.place_call(BoxIndex(0), login)).unwrap()
}

/// The media of the plays requested on `channel`, in order.
fn media_played(rig: &LiveRig, channel: &ChannelId) -> Vec<String> {
    rig.requests_to("POST", &format!("/channels/{channel}/play"))
        .iter()
        .flat_map(|r| r.query.iter().filter(|(k, _)| k == "media").map(|(_, v)| v.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_pins_lock_the_operator_out_even_with_the_right_pin_over_real_ari() {
    let rig = LiveRig::start(1).await;
    rig.sales().await;
    rig.operator("1006", 1, OperatorMode::Persistent, "4321").await;
    // Tries 1.5 s apart: "0000#" takes a second to key, the check a few milliseconds.
    let keyed = |digits: &str, n: u64| ScriptedKeys { at_ms: PIN_AT_MS + n * 1_500, digits: digits.into() };
    // First call: three wrong PINs, then the line is hung up.
    let first = login_call(&rig, "desk-1006", "1006", vec![keyed("0000#", 0), keyed("0000#", 1), keyed("0000#", 2)]);
    // The third failure plays agent-incorrect alone before hanging up.
    let incorrect = "sound:agent-incorrect".to_string();
    rig.wait_until("the first call's third failure", || media_played(&rig, &first).last() == Some(&incorrect)).await;
    // Second call: two more wrong PINs make five, then the right one is refused too.
    let second = login_call(&rig, "desk-1006", "1006", vec![keyed("1111#", 0), keyed("2222#", 1), keyed("4321#", 2)]);
    rig.wait_until("both login lines hung up", || rig.ended(1, &first).is_some() && rig.ended(1, &second).is_some())
        .await;
    assert_eq!(media_played(&rig, &second).last(), Some(&incorrect), "{:?}", media_played(&rig, &second));
    // Each try's first key stopped the prompt playing (no answer waits behind a stale prompt).
    assert!(rig.requests_to("DELETE", "/playbacks/").len() >= 6, "{:?}", rig.requests_to("DELETE", "/playbacks/"));
    let operator = OperatorId::new("1006");
    assert!(rig.cluster.read(|r| r.operator_view(&operator).is_some_and(|v| v.status == OperatorStatus::Offline)));
    let counters = rig.stop().await;
    assert_eq!((counters[0].logins_ok, counters[0].logins_failed), (0, 6), "locked out: {counters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_at_the_pin_prompt_logs_the_operator_out_and_its_holding_leg_is_hung_up_over_real_ari() {
    let rig = LiveRig::start(1).await;
    rig.sales().await;
    rig.operator("1007", 1, OperatorMode::Persistent, "2468").await;
    rig.login("1007", 1, "2468").await;
    let operator = OperatorId::new("1007");
    let holding_leg = rig.cluster.read(|r| r.operator_view(&operator).and_then(|v| v.channel)).expect("leg");
    let holding_leg = ChannelId::new(holding_leg).unwrap();
    // The operator calls the login line again and keys `#` alone at the PIN prompt.
    let line = login_call(&rig, "desk-1007-b", "1007", vec![ScriptedKeys { at_ms: PIN_AT_MS, digits: "#".into() }]);
    rig.wait("operator logged out", |r| {
        r.operator_view(&operator).is_some_and(|v| v.status == OperatorStatus::Offline)
    })
    .await;
    rig.wait_until("the logout line hung up", || rig.ended(1, &line).is_some()).await;
    assert_eq!(media_played(&rig, &line).last().map(String::as_str), Some("sound:agent-loggedoff"));
    // Logged out, the operator's leg is not kept in Stasis (app_agent_pool's logoff hangs
    // the agent up too).
    rig.wait_until("the holding leg hung up", || rig.ended(1, &holding_leg).is_some()).await;
    let counters = rig.stop().await;
    assert_eq!(counters[0].logins_ok, 1, "{counters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_mode_operator_who_does_not_answer_is_ring_no_answer_and_the_caller_keeps_the_head_over_real_ari() {
    let rig = LiveRig::start(1).await;
    rig.queue(QueueConfig {
        id: QueueId::new("sales"),
        ring_timeout_ms: 2_000,
        misses_before_break: 1,
        ..Default::default()
    })
    .await;
    rig.gate("main", "sales").await;
    rig.operator("2002", 1, OperatorMode::Ring, "1111").await;
    let never_answers = PhoneBehaviour { answer_after_ms: None, ..Default::default() };
    rig.live.with_world(|w| w.register_phone(BoxIndex(0), "phone-2002", never_answers)).unwrap();
    rig.login("2002", 1, "1111").await;
    let (caller, call) = rig.caller(1, "dave", None, vec![]);
    rig.wait("offered", |r| r.call_view(&call).is_some_and(|v| v.status == CallStatus::Offered)).await;
    // Nobody answers: RingNoAnswer, the operator goes on break (1 miss), the caller waits again.
    let operator = OperatorId::new("2002");
    rig.wait("operator on break", |r| {
        r.operator_view(&operator).is_some_and(|v| matches!(v.status, OperatorStatus::Break { .. }))
    })
    .await;
    assert_eq!(rig.cluster.read(|r| r.position(&call)), Some(1));
    assert!(rig.cluster.queue_log.lock().unwrap().iter().any(|l| l.verb == QueueLogVerb::RingNoAnswer));
    rig.wait_until("the caller back on hold music", || {
        matches!(rig.live.with_world(|w| w.audio_path(BoxIndex(0), &caller)), Some(AudioPath::MusicOnHold { .. }))
    })
    .await;
    let rung = rig.requests_to("POST", "/channels");
    let rung: Vec<_> = rung.iter().filter(|r| r.query.iter().any(|(_, v)| v.contains("phone-2002"))).collect();
    assert_eq!(rung.len(), 1, "rung once: {rung:?}");
    let timeout = rung[0].query.iter().find(|(k, _)| k == "timeout").map(|(_, v)| v.as_str());
    assert_eq!(timeout, Some("2"), "the queue's ring timeout: {rung:?}");
    assert!(call_bridges_joined(&rig).is_empty(), "no bridge for an unanswered ring");
    assert!(rig.outcome(&call).is_none());
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_leg_vanishing_while_the_bridge_is_requested_logs_the_operator_out_and_keeps_the_caller_over_real_ari(
) {
    let rig = LiveRig::start(1).await;
    rig.sales().await;
    rig.operator("1001", 1, OperatorMode::Persistent, "2468").await;
    rig.login("1001", 1, "2468").await;
    let operator = OperatorId::new("1001");
    let op_leg = rig.cluster.read(|r| r.operator_view(&operator).and_then(|v| v.channel)).expect("leg");
    let op_leg = ChannelId::new(op_leg).unwrap();
    // A slow Asterisk: the request adding both legs to the call bridge is executed 3 s after
    // it arrives. Meanwhile the operator's phone drops.
    let fault = RestFault {
        box_index: BoxIndex(0),
        method: Some("POST".into()),
        path_contains: "/bridges/call-".into(),
        kind: RestFaultKind::ExecuteLate { delay_ms: 3_000 },
        count: 1,
    };
    assert!(rig.live.inject_rest_fault(fault));
    let (caller, call) = rig.caller(1, "quinn", None, vec![]);
    rig.wait_until("the call bridge created", || {
        rig.requests_to("POST", "/bridges")
            .iter()
            .any(|r| r.path == "/bridges" && r.query.iter().any(|(k, v)| k == "bridgeId" && v.starts_with("call-")))
    })
    .await;
    assert!(rig.live.with_world(|w| w.phone_hangup(BoxIndex(0), &op_leg)));
    rig.wait("operator logged out", |r| {
        r.operator_view(&operator).is_some_and(|v| v.status == OperatorStatus::Offline)
    })
    .await;
    // The bridge request failed on the missing channel; the caller keeps its place.
    let bridges = call_bridges_joined(&rig);
    assert_eq!(bridges.len(), 1, "{bridges:?}");
    assert!(bridges[0].1 >= 400, "{bridges:?}");
    rig.wait("caller back at the head", |r| {
        r.position(&call) == Some(1) && r.call_view(&call).is_some_and(|v| v.status == CallStatus::Waiting)
    })
    .await;
    rig.wait_until("caller back on hold music", || {
        matches!(rig.live.with_world(|w| w.audio_path(BoxIndex(0), &caller)), Some(AudioPath::MusicOnHold { .. }))
    })
    .await;
    rig.wait_until("the half-built bridge taken down", || {
        rig.live
            .with_world(|w| w.list_bridges(BoxIndex(0)))
            .unwrap()
            .iter()
            .all(|b| !b.id.as_str().starts_with("call-"))
    })
    .await;
    assert!(rig.outcome(&call).is_none());
    assert!(!rig.cluster.connected.lock().unwrap().contains(&call));
    let counters = rig.stop().await;
    assert_eq!(counters[0].bridges_connected, 0, "{:?}", counters[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_site_adopts_a_connected_call_and_a_waiting_caller_and_serves_them_over_real_ari() {
    let mut rig = LiveRig::start(1).await;
    rig.sales().await;
    rig.operator("1001", 1, OperatorMode::Persistent, "2468").await;
    rig.login("1001", 1, "2468").await;
    let operator = OperatorId::new("1001");
    let (talking, first) = rig.caller(1, "sam", None, vec![]);
    let cluster = Arc::clone(&rig.cluster);
    rig.wait("first caller connected", |_| cluster.connected.lock().unwrap().contains(&first)).await;
    let (waiting, second) = rig.caller(1, "tess", None, vec![]);
    rig.wait("second caller waiting", |r| r.position(&second) == Some(1)).await;
    // The site process stops and a new one starts: nothing it knew survives but Asterisk's
    // channels and bridges and the committed state.
    let before = rig.restart(1).await;
    assert_eq!(before.bridges_connected, 1, "{before:?}");
    assert!(hears_operator(&rig, &talking, "desk-1001"), "the call went on through the restart");
    // The connected caller hangs up: completed, the operator back in its holding bridge and
    // given the waiting caller through the adopted legs.
    assert!(rig.live.with_world(|w| w.phone_hangup(BoxIndex(0), &talking)));
    rig.wait("first call completed", |_| rig.outcome(&first).is_some()).await;
    assert_eq!(rig.outcome(&first), Some(Outcome::Completed { by: HungUpBy::Caller }));
    rig.wait("second caller connected", |_| cluster.connected.lock().unwrap().contains(&second)).await;
    rig.wait_until("the waiting caller talks with the operator", || hears_operator(&rig, &waiting, "desk-1001")).await;
    let call_bridges = || {
        rig.live
            .with_world(|w| w.list_bridges(BoxIndex(0)))
            .unwrap()
            .into_iter()
            .filter(|b| b.id.as_str().starts_with("call-"))
            .collect::<Vec<_>>()
    };
    rig.wait_until("only the second call's bridge is up", || call_bridges().len() == 1).await;
    // The second caller hangs up too: the operator goes back to holding, no bridge is left.
    assert!(rig.live.with_world(|w| w.phone_hangup(BoxIndex(0), &waiting)));
    rig.wait("second call completed", |_| rig.outcome(&second).is_some()).await;
    assert_eq!(rig.outcome(&second), Some(Outcome::Completed { by: HungUpBy::Caller }));
    rig.wait("operator free", |r| r.operator_view(&operator).is_some_and(|v| v.status == OperatorStatus::Available))
        .await;
    rig.wait_until("no call bridge left", || call_bridges().is_empty()).await;
    let holding = rig.live.with_world(|w| w.list_bridges(BoxIndex(0))).unwrap();
    let holding = holding.iter().find(|b| b.id.as_str() == "hold-1001").expect("holding bridge");
    assert_eq!(holding.channels.len(), 1, "the operator's leg is back in holding: {holding:?}");
    let counters = rig.stop().await;
    assert!(counters[0].channels_adopted >= 3, "operator, connected and waiting caller: {:?}", counters[0]);
    assert_eq!(counters[0].bridges_connected, 1, "one new bridge, for the second caller: {:?}", counters[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_hanging_up_while_the_site_is_down_completes_the_call_at_restart_over_real_ari() {
    let mut rig = LiveRig::start(1).await;
    rig.sales().await;
    rig.operator("1001", 1, OperatorMode::Persistent, "2468").await;
    rig.login("1001", 1, "2468").await;
    let operator = OperatorId::new("1001");
    let op_leg = rig.cluster.read(|r| r.operator_view(&operator).and_then(|v| v.channel)).expect("leg");
    let op_leg = ChannelId::new(op_leg).unwrap();
    let (caller, call) = rig.caller(1, "vera", None, vec![]);
    let cluster = Arc::clone(&rig.cluster);
    rig.wait("connected", |_| cluster.connected.lock().unwrap().contains(&call)).await;
    rig.stop_site(1).await;
    // While nobody listens the operator hangs up; Asterisk keeps the bridge with the caller.
    assert!(rig.live.with_world(|w| w.phone_hangup(BoxIndex(0), &op_leg)));
    rig.start_site(1).await;
    rig.wait("completed", |_| rig.outcome(&call).is_some()).await;
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Operator }));
    // The caller goes on in the dialplan, as after any operator hangup; the operator's leg is
    // gone, so it is logged out; the bridge is taken down.
    rig.wait_until("the dialplan ran on and hung up", || rig.ended(1, &caller).is_some()).await;
    let ended = rig.ended(1, &caller).unwrap();
    assert_eq!(ended.variables.get("LINEUP_RESULT").map(String::as_str), Some("COMPLETED"), "{ended:?}");
    rig.wait("operator logged out", |r| {
        r.operator_view(&operator).is_some_and(|v| v.status == OperatorStatus::Offline)
    })
    .await;
    rig.wait_until("no call bridge left", || {
        rig.live
            .with_world(|w| w.list_bridges(BoxIndex(0)))
            .unwrap()
            .iter()
            .all(|b| !b.id.as_str().starts_with("call-"))
    })
    .await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_goes_back_to_the_dialplan_and_a_timeout_overflows_into_another_queue_over_real_ari() {
    let rig = LiveRig::start(1).await;
    // `sales` (5000) overflows into `support` after 1.5 s, keeping the caller's age;
    // `support` (5002, gate `web`) refuses callers while nobody is logged in.
    rig.queue(QueueConfig { id: QueueId::new("support"), ..Default::default() }).await;
    rig.queue(QueueConfig {
        id: QueueId::new("sales"),
        max_wait_ms: Some(1_500),
        timeout_target: Target::Queue { queue: QueueId::new("support"), keep_order: true },
        ..Default::default()
    })
    .await;
    rig.gate("main", "sales").await;
    let (overflowing, moved) = rig.caller(1, "olga", None, vec![]);
    rig.wait("overflowed into support", |r| {
        r.call_view(&moved).is_some_and(|v| v.queue == QueueId::new("support") && v.status == CallStatus::Waiting)
    })
    .await;
    // Still on hold in Stasis: an overflow is not an exit.
    assert!(rig.requests_to("POST", &format!("/channels/{overflowing}/continue")).is_empty());
    // Now `support` refuses newcomers while empty.
    rig.queue(QueueConfig {
        id: QueueId::new("support"),
        join_when_empty: EmptyRule::NoneLoggedIn,
        ..Default::default()
    })
    .await;
    rig.gate("web", "support").await;
    let (refused, empty) = rig.dial(1, "pia", "5551234", "5002", None, vec![]);
    rig.wait("refused as empty", |_| rig.outcome(&empty).is_some()).await;
    assert_eq!(rig.outcome(&empty), Some(Outcome::Empty));
    rig.wait_until("the dialplan ran on and hung up", || rig.ended(1, &refused).is_some()).await;
    let ended = rig.ended(1, &refused).unwrap();
    assert_eq!(ended.variables.get("LINEUP_RESULT").map(String::as_str), Some("EMPTY"), "{ended:?}");
    assert!(rig.live.with_world(|w| w.phone_hangup(BoxIndex(0), &overflowing)));
    rig.wait("abandoned in the overflow queue", |_| rig.outcome(&moved).is_some()).await;
    assert_eq!(rig.outcome(&moved), Some(Outcome::Abandoned));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_logout_hangs_up_the_persistent_operators_line_over_real_ari() {
    let rig = LiveRig::start(1).await;
    rig.sales().await;
    rig.operator("1008", 1, OperatorMode::Persistent, "2468").await;
    rig.login("1008", 1, "2468").await;
    let leg = rig
        .live
        .with_world(|w| w.channel_names(BoxIndex(0)))
        .into_iter()
        .find(|(_, name)| name.contains("desk-1008"))
        .map(|(id, _)| id)
        .expect("the operator's line is up in its holding bridge");
    // Logged out by a supervisor (the API's POST /v1/operators/{id}/logout is this command).
    rig.cluster.admin(CommandBody::OperatorLogout { operator: OperatorId::new("1008") }).await.unwrap();
    rig.wait_until("the operator's line hung up", || rig.ended(1, &leg).is_some()).await;
    rig.wait_until("the holding bridge destroyed too", || rig.requests_to("DELETE", "/bridges/hold-1008").len() == 1)
        .await;
    // A caller now waits: nobody is offered.
    let (_caller, call) = rig.caller(1, "quinn", Some(2_000), vec![]);
    rig.wait("abandoned unanswered", |_| rig.outcome(&call).is_some()).await;
    assert_eq!(rig.outcome(&call), Some(Outcome::Abandoned));
    rig.stop().await;
}

/// Every trace-level log line of this process, from now on, into a shared buffer.
fn capture_trace_logs() -> Arc<Mutex<Vec<u8>>> {
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&logs);
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || Capture(Arc::clone(&sink)))
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only test here that sets a subscriber");
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_keyed_at_login_never_reaches_the_logs_over_real_ari() {
    // Long enough that no timestamp or id in the logs contains it by chance.
    const PIN: &str = "86420975";
    let logs = capture_trace_logs();
    let rig = LiveRig::start(1).await;
    rig.sales().await;
    rig.operator("1001", 1, OperatorMode::Persistent, PIN).await;
    // Waits until the login is committed (the site may stop before it counts it).
    rig.login("1001", 1, PIN).await;
    let counters = rig.stop().await;
    assert_eq!(counters[0].logins_failed, 0);
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(logs.contains("Pin(****)"), "the PIN check was traced (the capture works)");
    assert!(!logs.contains(PIN), "the PIN reached the logs");
    assert!(!logs.contains("$argon2id$"), "the PIN's hash reached the logs");
    assert!(!logs.contains("ChannelDtmfReceived {"), "a keyed digit reached the logs");
}
