//! `lineup bench site`: pickup latency through the whole path — the Asterisk stand-in over
//! real ARI HTTP + WebSocket, the site driver, and a single-node cluster on loopback QUIC
//! with fsync on. Pickup = the operator becomes available (the command is proposed) → the
//! stand-in receives the request adding the legs to the caller's bridge.

use crate::BenchError;
use lineup_ari::{ApplicationName, AriConfig, AriEvents, CallerId, ChannelId, HttpAri};
use lineup_cluster::certs::{generate_ca, issue_site_material, SiteIdentity};
use lineup_cluster::transport::quic::{install_crypto_provider, QuicTransport};
use lineup_cluster::{ClusterNode, NodeConfig};
use lineup_core::*;
use lineup_node::wiring::{feed_site, NodePort};
use lineup_node::Node;
use lineup_pbx_server::{serve_box, BoxServer, LiveWorld, RequestRecord, SimCredentials};
use lineup_pbx_sim::{BoxConfig, BoxIndex, Dialplan, PbxWorld, PhoneCall};
use lineup_site::{SiteConfig, SiteController};
use lineup_site_driver::run_site;
use lineup_util::{now_ms, percentile};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// Bound on every wait of the benchmark.
const STEP_LIMIT: Duration = Duration::from_secs(20);
/// Period of the state re-check while waiting (ticks publish no effect to wake on).
const STATE_RECHECK_MS: u64 = 50;
const SITE: SiteId = SiteId(1);
const OPERATOR: &str = "1001";
const PIN: &str = "2468";

/// What `lineup bench site` measures over.
#[derive(Debug, Clone)]
pub struct SiteBenchOptions {
    /// Pickups to measure.
    pub samples: usize,
}

#[derive(Serialize)]
pub struct SiteBenchReport {
    samples: usize,
    pickup_ms_p50: f64,
    pickup_ms_p99: f64,
    pickup_ms_max: f64,
    /// For comparison: app_queue re-checks waiting callers once a second (mean wait for the
    /// next check 500 ms); a 500 ms Redis poll waits 250 ms on average.
    app_queue_recheck_mean_ms: f64,
    redis_poll_500ms_mean_ms: f64,
}

/// Waits (bounded) until `done` holds on the node's applied state, re-checking on every
/// effect the node publishes and on the leader's ticks.
async fn wait_state<T>(node: &ClusterNode<T>, what: &str, done: impl Fn(&Routing) -> bool) -> Result<(), BenchError>
where
    T: lineup_cluster::transport::PeerTransport + 'static,
{
    let mut effects = node.subscribe_effects();
    let wait = async {
        loop {
            if node.read_stale(&done) {
                return;
            }
            // Any effect (ticks produce none, so also wake on a short timer).
            let _ = tokio::time::timeout(Duration::from_millis(STATE_RECHECK_MS), effects.recv()).await;
        }
    };
    tokio::time::timeout(STEP_LIMIT, wait)
        .await
        .map_err(|_| BenchError::Timeout { what: what.to_string(), limit: STEP_LIMIT })
}

/// One stand-in box served over real HTTP + WebSocket, and the ARI settings to reach it.
struct StandIn {
    live: Arc<LiveWorld>,
    /// Serves until dropped.
    _server: BoxServer,
    ari: AriConfig,
}

async fn start_standin() -> Result<StandIn, BenchError> {
    let dialplan = Dialplan::parse(include_str!("../../../deploy/asterisk/extensions.conf"))?;
    let world = PbxWorld::new(
        now_ms(),
        vec![BoxConfig { name: "site-1".into(), asterisk_id: "02:00:00:00:00:01".into(), dialplan, trunks: vec![] }],
    )?;
    let live = LiveWorld::start(world);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let credentials = SimCredentials { username: "lineup".into(), password: "bench".into() };
    let server = serve_box(Arc::clone(&live), BoxIndex(0), listener, credentials).await?;
    let ari = AriConfig {
        base_url: server.base_url(),
        username: "lineup".into(),
        password: "bench".into(),
        applications: vec![ApplicationName::new("lineup")?, ApplicationName::new("lineup-login")?],
        request_timeout_ms: 5_000,
    };
    Ok(StandIn { live, _server: server, ari })
}

/// A one-node cluster on loopback QUIC, redb with fsync, in a fresh directory.
async fn start_node(data_dir: &Path) -> Result<Arc<Node>, BenchError> {
    let _ = std::fs::remove_dir_all(data_dir);
    let ca = generate_ca()?;
    let identity = SiteIdentity::from_material(&issue_site_material(&ca, SITE.0)?)?;
    let transport = QuicTransport::bind(&identity, "127.0.0.1:0".parse()?)?;
    let addr = transport.local_addr()?.to_string();
    let node = ClusterNode::start(NodeConfig::new(SITE.0, data_dir), transport).await?;
    node.bootstrap(&BTreeMap::from([(SITE.0, addr)])).await?;
    Ok(node)
}

/// Proposes an admin command and waits for the core's answer.
async fn admin(node: &Node, body: CommandBody) -> Result<(), BenchError> {
    node.propose(body).await?.result?;
    Ok(())
}

/// The `sales` queue, its gate, and the benchmark's operator (PIN login).
async fn configure(node: &Node) -> Result<(), BenchError> {
    admin(node, CommandBody::PutQueue(QueueConfig { id: QueueId::new("sales"), ..Default::default() })).await?;
    let gate = GateConfig { id: GateId::new("main"), queue: QueueId::new("sales"), ..Default::default() };
    admin(node, CommandBody::PutGate(gate)).await?;
    let phc = {
        use argon2::password_hash::PasswordHasher;
        argon2::Argon2::default().hash_password(PIN.as_bytes()).map_err(|e| BenchError::PinHash(e.to_string()))?
    };
    admin(
        node,
        CommandBody::PutOperator(OperatorConfig {
            id: OperatorId::new(OPERATOR),
            name: "Bench Operator".into(),
            site: SITE,
            pin_hash: phc.to_string(),
            memberships: [(QueueId::new("sales"), 0)].into_iter().collect(),
            ..Default::default()
        }),
    )
    .await
}

fn operator_status(r: &Routing) -> Option<OperatorStatus> {
    r.operator_view(&OperatorId::new(OPERATOR)).map(|v| v.status)
}

/// The operator dials the login code with the PIN from a desk phone.
async fn log_operator_in(live: &LiveWorld, node: &Node) -> Result<(), BenchError> {
    live.with_world(|w| {
        w.place_call(
            BoxIndex(0),
            PhoneCall::operator_login(
                "desk-1001",
                CallerId { name: "Bench".into(), number: OPERATOR.into() },
                "lineup-operators",
                &format!("*55{OPERATOR}"),
                PIN,
                2_500,
            ),
        )
    })?;
    wait_state(node, "operator login", |r| operator_status(r) == Some(OperatorStatus::Available)).await
}

/// Runs the benchmark: `samples` pickups, each from a caller waiting alone to the bridge
/// request at the stand-in.
pub async fn run(options: &SiteBenchOptions) -> Result<SiteBenchReport, BenchError> {
    install_crypto_provider();
    let standin = start_standin().await?;
    let ari = Arc::new(HttpAri::new(&standin.ari)?);
    let events = AriEvents::connect(&standin.ari)?;
    let mut requests = standin.live.watch_requests();
    let data_dir = std::env::temp_dir().join(format!("lineup-bench-site-{}", std::process::id()));
    let node = start_node(&data_dir).await?;
    configure(&node).await?;

    let (stop, shutdown) = watch::channel(false);
    let driver = tokio::spawn(run_site(
        SiteController::new(SiteConfig::new(SITE, now_ms() * 1_000)),
        Arc::clone(&ari),
        events,
        feed_site(&node),
        Arc::new(NodePort(Arc::clone(&node))),
        shutdown,
        watch::channel(lineup_site::SiteCounters::default()).0,
    ));
    log_operator_in(&standin.live, &node).await?;
    let mut pickups = Vec::with_capacity(options.samples);
    for i in 0..options.samples {
        pickups.push(measure_pickup(&standin.live, &node, &mut requests, i).await?);
    }
    stop.send_replace(true);
    let _ = tokio::time::timeout(STEP_LIMIT, driver).await;
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    pickups.sort_by(|a, b| a.total_cmp(b));
    Ok(SiteBenchReport {
        samples: pickups.len(),
        pickup_ms_p50: percentile(&pickups, 0.50),
        pickup_ms_p99: percentile(&pickups, 0.99),
        pickup_ms_max: percentile(&pickups, 1.0),
        app_queue_recheck_mean_ms: 500.0,
        redis_poll_500ms_mean_ms: 250.0,
    })
}

/// Pickup `i`: the operator goes on a break, caller `i` waits first in line, the operator
/// comes back (the clock starts) and the bridge request arrives (it stops); then the call
/// completes. Answers the pickup in ms.
async fn measure_pickup(
    live: &LiveWorld,
    node: &Node,
    requests: &mut broadcast::Receiver<RequestRecord>,
    i: usize,
) -> Result<f64, BenchError> {
    let operator = OperatorId::new(OPERATOR);
    let on_break = RequestedState::Break { reason: "bench".into() };
    admin(node, CommandBody::OperatorState { operator: operator.clone(), state: on_break }).await?;
    let caller = place_caller(live, i)?;
    let call = CallId::new(format!("{}-{}", SITE.0, caller.as_str()));
    wait_state(node, "caller waiting", |r| r.position(&call) == Some(1)).await?;
    // Forget the requests so far, then start the clock.
    *requests = requests.resubscribe();
    let started = tokio::time::Instant::now();
    admin(node, CommandBody::OperatorState { operator, state: RequestedState::Available }).await?;
    let received = tokio::time::timeout(STEP_LIMIT, bridge_request(requests)).await.ok().flatten();
    let received = received
        .ok_or_else(|| BenchError::Timeout { what: format!("bridge request for pickup {i}"), limit: STEP_LIMIT })?;
    let pickup_ms = received.saturating_duration_since(started).as_secs_f64() * 1000.0;
    wait_state(node, "connected", |r| r.call_view(&call).is_some_and(|v| v.status == CallStatus::Connected)).await?;
    live.with_world(|w| w.phone_hangup(BoxIndex(0), &caller));
    wait_state(node, "call completed", |r| {
        r.call_view(&call).is_none() && operator_status(r) == Some(OperatorStatus::Available)
    })
    .await?;
    Ok(pickup_ms)
}

fn place_caller(live: &LiveWorld, i: usize) -> Result<ChannelId, BenchError> {
    let call = PhoneCall {
        phone: format!("caller{i}"),
        caller: CallerId { name: "Caller".into(), number: "5551234".into() },
        context: "lineup-gates".into(),
        exten: "5000".into(),
        patience_ms: None,
        keys: vec![],
    };
    Ok(live.with_world(|w| w.place_call(BoxIndex(0), call))?)
}

/// When the stand-in received the request adding a channel to a call's bridge.
async fn bridge_request(requests: &mut broadcast::Receiver<RequestRecord>) -> Option<tokio::time::Instant> {
    loop {
        match requests.recv().await {
            Ok(r) if r.method == "POST" && r.path.starts_with("/bridges/call-") && r.path.ends_with("/addChannel") => {
                return Some(r.received_at);
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}
