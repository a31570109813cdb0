//! `lineup bench site`: pickup latency through the whole path — the Asterisk stand-in over
//! real ARI HTTP + WebSocket, the site driver, and a single-node cluster on loopback QUIC
//! with fsync on. Pickup = the operator becomes available (the command is proposed) → the
//! stand-in receives the request adding the legs to the caller's bridge.

use crate::wiring::{feed_site, NodePort};
use anyhow::Context;
use lineup_ari::{ApplicationName, AriConfig, AriEvents, CallerId, HttpAri};
use lineup_cluster::certs::{generate_ca, issue_site_material, SiteIdentity};
use lineup_cluster::transport::quic::{install_crypto_provider, QuicTransport};
use lineup_cluster::{ClusterNode, NodeConfig};
use lineup_core::*;
use lineup_pbx_server::{serve_box, LiveWorld, SimCredentials};
use lineup_pbx_sim::{BoxConfig, BoxIndex, Dialplan, PbxWorld, PhoneCall};
use lineup_site::{SiteConfig, SiteController};
use lineup_site_driver::run_site;
use lineup_util::{now_ms, percentile};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Bound on every wait of the benchmark.
const STEP_LIMIT: Duration = Duration::from_secs(20);
const SITE: SiteId = SiteId(1);
const OPERATOR: &str = "1001";
const PIN: &str = "2468";

#[derive(clap::Args)]
pub struct SiteBenchArgs {
    /// Pickups to measure.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Print JSON only.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct SiteBenchReport {
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
async fn wait_state<T>(node: &ClusterNode<T>, what: &str, done: impl Fn(&Routing) -> bool) -> anyhow::Result<()>
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
            let _ = tokio::time::timeout(Duration::from_millis(50), effects.recv()).await;
        }
    };
    tokio::time::timeout(STEP_LIMIT, wait).await.with_context(|| format!("no {what} within {STEP_LIMIT:?}"))
}

pub fn site(args: &SiteBenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(run(args))?;
    if !args.json {
        println!("lineup bench site: {} pickups through stand-in, ARI, driver and a one-node cluster", args.samples);
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

async fn run(args: &SiteBenchArgs) -> anyhow::Result<SiteBenchReport> {
    install_crypto_provider();
    // The stand-in, served over real HTTP + WebSocket.
    let dialplan = Dialplan::parse(include_str!("../../../deploy/asterisk/extensions.conf"))?;
    let world = PbxWorld::new(
        now_ms(),
        vec![BoxConfig { name: "site-1".into(), asterisk_id: "02:00:00:00:00:01".into(), dialplan, trunks: vec![] }],
    )?;
    let live = LiveWorld::start(world);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let credentials = SimCredentials { username: "lineup".into(), password: "bench".into() };
    let server = serve_box(Arc::clone(&live), BoxIndex(0), listener, credentials).await?;
    let ari_config = AriConfig {
        base_url: server.base_url(),
        username: "lineup".into(),
        password: "bench".into(),
        applications: vec![ApplicationName::new("lineup")?, ApplicationName::new("lineup-login")?],
        request_timeout_ms: 5_000,
    };
    let ari = Arc::new(HttpAri::new(&ari_config)?);
    let events = AriEvents::connect(&ari_config)?;
    let mut requests = live.watch_requests();

    // A one-node cluster on loopback QUIC, redb with fsync.
    let data_dir = std::env::temp_dir().join(format!("lineup-bench-site-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let ca = generate_ca()?;
    let identity = SiteIdentity::from_material(&issue_site_material(&ca, SITE.0)?)?;
    let transport = QuicTransport::bind(&identity, "127.0.0.1:0".parse()?)?;
    let addr = transport.local_addr()?.to_string();
    let node = ClusterNode::start(NodeConfig::new(SITE.0, &data_dir), transport).await?;
    node.bootstrap(&BTreeMap::from([(SITE.0, addr)])).await?;

    let admin = |body| {
        let node = Arc::clone(&node);
        async move {
            node.propose(body).await.map_err(anyhow::Error::from).and_then(|c| c.result.map_err(anyhow::Error::from))
        }
    };
    admin(CommandBody::PutQueue(QueueConfig { id: QueueId::new("sales"), ..Default::default() })).await?;
    admin(CommandBody::PutGate(GateConfig {
        id: GateId::new("main"),
        queue: QueueId::new("sales"),
        ..Default::default()
    }))
    .await?;
    let phc = {
        use argon2::password_hash::PasswordHasher;
        argon2::Argon2::default().hash_password(PIN.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?.to_string()
    };
    admin(CommandBody::PutOperator(OperatorConfig {
        id: OperatorId::new(OPERATOR),
        name: "Bench Operator".into(),
        site: SITE,
        pin_hash: phc,
        memberships: [(QueueId::new("sales"), 0)].into_iter().collect(),
        ..Default::default()
    }))
    .await?;

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
    let operator = OperatorId::new(OPERATOR);
    let status = |r: &Routing| r.operator_view(&operator).map(|v| v.status);
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
    wait_state(&node, "operator login", |r| status(r) == Some(OperatorStatus::Available)).await?;

    let mut pickups = Vec::with_capacity(args.samples);
    for i in 0..args.samples {
        admin(CommandBody::OperatorState {
            operator: operator.clone(),
            state: RequestedState::Break { reason: "bench".into() },
        })
        .await?;
        let caller = live.with_world(|w| {
            w.place_call(
                BoxIndex(0),
                PhoneCall {
                    phone: format!("caller{i}"),
                    caller: CallerId { name: "Caller".into(), number: "5551234".into() },
                    context: "lineup-gates".into(),
                    exten: "5000".into(),
                    patience_ms: None,
                    keys: vec![],
                },
            )
        })?;
        let call = CallId::new(format!("{}-{}", SITE.0, caller.as_str()));
        wait_state(&node, "caller waiting", |r| r.position(&call) == Some(1)).await?;
        // Forget the requests so far, then start the clock.
        requests = requests.resubscribe();
        let started = tokio::time::Instant::now();
        admin(CommandBody::OperatorState { operator: operator.clone(), state: RequestedState::Available }).await?;
        let bridged = async {
            loop {
                match requests.recv().await {
                    Ok(r)
                        if r.method == "POST"
                            && r.path.starts_with("/bridges/call-")
                            && r.path.ends_with("/addChannel") =>
                    {
                        return Some(r.received_at);
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        };
        let received = tokio::time::timeout(STEP_LIMIT, bridged).await.ok().flatten();
        let received = received.with_context(|| format!("no bridge request for pickup {i}"))?;
        pickups.push(received.saturating_duration_since(started).as_secs_f64() * 1000.0);
        wait_state(&node, "connected", |r| r.call_view(&call).is_some_and(|v| v.status == CallStatus::Connected))
            .await?;
        live.with_world(|w| w.phone_hangup(BoxIndex(0), &caller));
        wait_state(&node, "call completed", |r| {
            r.call_view(&call).is_none() && status(r) == Some(OperatorStatus::Available)
        })
        .await?;
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
