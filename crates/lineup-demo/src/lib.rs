//! lineup-demo, `lineup demo`: three sites in one process — three Raft nodes over real QUIC
//! on loopback, three Asterisk stand-ins joined by trunks and served over real ARI HTTP +
//! WebSocket, a site driver per site — with simulated callers (Poisson arrivals per gate, a
//! VIP class, abandons, callback takers) and operators (PIN login, both modes, wrap-up,
//! breaks).
//!
//! `cast` is who takes part (config, operators, tokens), `humans` what the simulated people
//! do, `observe` the checker over every node's effects, `report` the status line and summary;
//! this file starts everything, runs the traffic and drains it; `error` is `DemoError`.
//! The command line (`DemoArgs`, the runtime) is the `lineup` binary's.

mod cast;
pub mod error;
mod humans;
mod observe;
mod report;

use cast::{routing_config, DemoTokens};
pub use error::DemoError;
use lineup_ari::{ApplicationName, AriConfig};
use lineup_cluster::certs::{generate_ca, issue_site_material, SiteIdentity};
use lineup_cluster::transport::quic::{install_crypto_provider, QuicTransport};
use lineup_cluster::{ClusterNode, ClusterTiming};
use lineup_core::*;
use lineup_node::{serve_api, IngressTargets, NodeBackend, NodeSpec, RunningNode};
use lineup_pbx_server::standin::federated_boxes;
use lineup_pbx_server::{serve_box, LiveWorld, SimCredentials};
use lineup_pbx_sim::{BoxIndex, Dialplan, PbxWorld};
use lineup_site::SiteConfig;
use lineup_util::{now_ms, SplitMix64};
use observe::Observed;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SITES: [u64; 3] = [1, 2, 3];
/// How long the end of the demo waits for every call to reach its outcome.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// How often the status line is refreshed on a terminal.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// How often it is printed when the output is not a terminal (a log, CI).
const STATUS_INTERVAL_LOGGED: Duration = Duration::from_secs(10);
/// Most rounds of hanging up whoever is still in the system at the end.
const DRAIN_ROUNDS_MAX: u32 = 60;
const DEMO_DIALPLAN: &str = include_str!("../../../deploy/demo/extensions.conf");

type Node = ClusterNode<QuicTransport>;

/// How the demo runs (the `lineup demo` options).
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Port of site 1's API and dashboard (another free port is used when it is taken).
    pub api_port: u16,
    /// Stop after this many seconds (None: run until Ctrl-C).
    pub duration: Option<u64>,
    /// Write a JSON summary here at the end.
    pub summary_json: Option<PathBuf>,
    /// Caller arrivals per minute, over all sites and gates.
    pub calls_per_minute: f64,
    /// Seed of the simulated callers and operators.
    pub seed: u64,
    /// Keep the data directory (each site's Raft log, SQLite history and queue_log) at the
    /// end instead of deleting it; its path is printed at the start.
    pub keep_data: bool,
}

/// Everything the demo started.
struct Federation {
    live: Arc<LiveWorld>,
    /// The stand-ins' ARI servers; they stop when dropped.
    servers: Vec<lineup_pbx_server::BoxServer>,
    running: BTreeMap<u64, RunningNode>,
    /// Each site's QUIC address.
    addrs: BTreeMap<u64, String>,
}

impl Federation {
    fn nodes(&self) -> BTreeMap<u64, Arc<Node>> {
        self.running.iter().map(|(site, r)| (*site, Arc::clone(&r.node))).collect()
    }
}

/// Runs the demo to its end (the duration, or Ctrl-C), prints the summary, and fails when
/// the checker found a broken invariant. Needs a multi-thread tokio runtime.
pub async fn run(args: &DemoOptions) -> Result<(), DemoError> {
    install_crypto_provider();
    let data_dir = std::env::temp_dir().join(format!("lineup-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let federation = start_federation(&data_dir).await?;
    let tokens = DemoTokens::new()?;
    let (stop_api, api_shutdown) = tokio::sync::watch::channel(false);
    let api_urls = start_apis(&federation.running, args.api_port, &tokens, api_shutdown).await?;
    let nodes = federation.nodes();
    let observed = observe(&nodes);
    let first = Arc::clone(&nodes[&1]);
    write_routing_config(&first).await?;
    print_banner(&federation, &api_urls, &tokens, &data_dir, args.keep_data);
    wait_for_ari_registration(&federation.live).await?;

    let mut dice = SplitMix64::new(args.seed);
    humans::log_operators_in(&federation.live, &mut dice)?;
    let started = tokio::time::Instant::now();
    let placed = run_traffic(args, &federation.live, &nodes, &observed, &mut dice).await?;

    println!("lineup demo: stopping arrivals and draining");
    let drained = tokio::time::timeout(DRAIN_LIMIT, drain(&first, &federation.live)).await.unwrap_or(false);
    wait_until_nodes_applied(&nodes, first.applied_index()).await;
    let history_drained = wait_for_history(&federation.running).await;
    let mut summary = report::summarize(&nodes, &observed, started.elapsed(), drained, placed);
    summary.history_drained = history_drained;
    let queue_log = data_dir.join("site-1").join("queue_log");
    summary.queue_log_lines_site_1 = std::fs::read_to_string(queue_log).map(|t| t.lines().count() as u64).unwrap_or(0);
    summary.dashboard_url = format!("{}/", api_urls[&1]);
    summary.api_queues = api_queue_count(&api_urls[&1], &tokens.viewer).await;
    summary.data_dir = data_dir.display().to_string();

    // The history outboxes are drained (checked above); the process exits with them.
    let _ = stop_api.send(true);
    drop((nodes, first));
    let Federation { running, servers, .. } = federation;
    for (site, node) in running {
        if let Some(counters) = node.shutdown().await {
            summary.set_refused_at_entry(site, counters.callers_invalid);
        }
    }
    drop(servers);
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if let Some(path) = &args.summary_json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .map_err(|source| DemoError::WriteSummary { path: path.clone(), source })?;
    }
    if !args.keep_data {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    if summary.invariant_violations != 0 {
        return Err(DemoError::Violations(format!("{:?}", summary.violations)));
    }
    Ok(())
}

/// Three Raft nodes over QUIC on loopback (mutual TLS against a fresh cluster CA), three
/// Asterisk stand-ins joined by PJSIP trunks and served over ARI, and each site assembled the
/// way `lineup run` assembles it.
async fn start_federation(data_dir: &std::path::Path) -> Result<Federation, DemoError> {
    let ca = generate_ca()?;
    let mut transports = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for site in SITES {
        let identity = SiteIdentity::from_material(&issue_site_material(&ca, site)?)?;
        let transport = QuicTransport::bind(&identity, "127.0.0.1:0".parse()?)?;
        addrs.insert(site, transport.local_addr()?.to_string());
        transports.insert(site, transport);
    }
    // Three boxes named site-1..3 with the demo dialplan and a PJSIP trunk to each other.
    let boxes = federated_boxes(SITES.len(), &Dialplan::parse(DEMO_DIALPLAN)?);
    let live = LiveWorld::start(PbxWorld::new(now_ms(), boxes)?);
    let mut servers = Vec::new();
    let mut running = BTreeMap::new();
    for (i, (site, transport)) in transports.into_iter().enumerate() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let credentials = SimCredentials { username: "lineup".into(), password: format!("demo-{site}") };
        let server = serve_box(Arc::clone(&live), BoxIndex(i), listener, credentials).await?;
        let spec = site_spec(site, &server.base_url(), transport, &addrs, data_dir)?;
        servers.push(server);
        running.insert(site, RunningNode::start(spec).await?);
    }
    Ok(Federation { live, servers, running, addrs })
}

/// One site's node: its stand-in's ARI, trunks to the others, SQLite history and a queue_log.
fn site_spec(
    site: u64,
    ari_url: &str,
    transport: QuicTransport,
    addrs: &BTreeMap<u64, String>,
    data_dir: &std::path::Path,
) -> Result<NodeSpec, DemoError> {
    let ari = AriConfig {
        base_url: ari_url.to_string(),
        username: "lineup".into(),
        password: format!("demo-{site}"),
        applications: vec![ApplicationName::new("lineup")?, ApplicationName::new("lineup-login")?],
        request_timeout_ms: 5_000,
    };
    let mut site_config = SiteConfig::new(SiteId(site), now_ms() * 1_000);
    for other in SITES.iter().filter(|o| **o != site) {
        site_config.trunk_endpoints.insert(SiteId(*other), format!("PJSIP/lineup-{{call}}@site-{other}"));
    }
    site_config.callback_endpoint = Some("PJSIP/{number}".into());
    let dir = data_dir.join(format!("site-{site}"));
    // Loopback, so LAN-like timing; real sites keep the WAN defaults.
    let timing = ClusterTiming {
        heartbeat_interval_ms: 100,
        election_timeout_min_ms: 500,
        election_timeout_max_ms: 1_000,
        ..ClusterTiming::default()
    };
    Ok(NodeSpec {
        site,
        data_dir: dir.clone(),
        transport,
        bootstrap: Some(addrs.clone()),
        timing,
        island: None,
        snapshot_every_entries: lineup_cluster::node::SNAPSHOT_LOGS_SINCE_LAST,
        ari,
        site_config,
        database_url: format!("sqlite://{}", dir.join("history.sqlite").display()),
        queue_log: Some(dir.join("queue_log")),
        redis: None,
    })
}

/// Every site serves the API and the dashboard; site 1 on `api_port` when it is free.
async fn start_apis(
    running: &BTreeMap<u64, RunningNode>,
    api_port: u16,
    tokens: &DemoTokens,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<BTreeMap<u64, String>, DemoError> {
    let mut api_urls = BTreeMap::new();
    for (site, node) in running {
        let wanted = if *site == 1 { api_port } else { 0 };
        let mut address = std::net::SocketAddr::from(([127, 0, 0, 1], wanted));
        if wanted != 0 && std::net::TcpListener::bind(address).is_err() {
            address.set_port(0);
        }
        let backend = NodeBackend::new(node, BTreeMap::new());
        backend.set_ingress_targets(demo_ingress_targets(running.keys()));
        let bound = serve_api(backend, address, tokens.api_config(), shutdown.clone()).await?;
        api_urls.insert(*site, format!("http://{bound}"));
    }
    Ok(api_urls)
}

/// The demo's boxes speak no SIP; ingress answers name each site by a placeholder URI in the
/// reserved `.invalid` domain, so the steering (and the dashboard's column) can be seen.
fn demo_ingress_targets<'a>(sites: impl Iterator<Item = &'a u64>) -> IngressTargets {
    let targets: BTreeMap<SiteId, String> =
        sites.map(|site| (SiteId(*site), format!("sip:site-{site}.demo.invalid:5060"))).collect();
    IngressTargets { fallback: targets.keys().copied().collect(), targets }
}

/// Records every effect each node publishes, for the checker.
fn observe(nodes: &BTreeMap<u64, Arc<Node>>) -> Arc<Mutex<Observed>> {
    let observed = Arc::new(Mutex::new(Observed::default()));
    for (site, node) in nodes {
        let (site, mut effects, observed) = (*site, node.subscribe_effects(), Arc::clone(&observed));
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let received = effects.recv().await;
                let mut observed = observed.lock().unwrap_or_else(|p| p.into_inner());
                match received {
                    Ok(e) => observed.record(site, e.apply_index, e.effect),
                    Err(RecvError::Lagged(skipped)) => observed.skipped += skipped,
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }
    observed
}

/// Waits for a leader, then writes the routing config through Raft.
async fn write_routing_config(first: &Node) -> Result<(), DemoError> {
    let config_written = async {
        for _attempt in 0..100 {
            match first.propose(CommandBody::ApplyConfig(Box::new(routing_config()))).await {
                Ok(committed) => return committed.result.map(|_| ()).map_err(DemoError::ConfigRefused),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Err(DemoError::NoLeader)
    };
    tokio::time::timeout(Duration::from_secs(20), config_written)
        .await
        .map_err(|source| DemoError::Timeout { step: "writing the routing config", source })?
}

fn print_banner(
    federation: &Federation,
    api_urls: &BTreeMap<u64, String>,
    tokens: &DemoTokens,
    data_dir: &std::path::Path,
    keep_data: bool,
) {
    println!(
        "lineup demo: 3 sites (Raft over QUIC on {}), 3 Asterisk stand-ins:",
        federation.addrs.values().cloned().collect::<Vec<_>>().join(", ")
    );
    for (site, server) in SITES.iter().zip(&federation.servers) {
        println!("  site-{site}: ARI at {}", server.base_url());
    }
    for (site, url) in api_urls {
        println!("  site-{site}: API at {url}/v1/");
    }
    println!("  dashboard: {}/  (sign in with the admin token {})", api_urls[&1], tokens.admin);
    println!("  viewer token (wallboard, no actions): {}", tokens.viewer);
    println!(
        "  frontend token (mints a caller's widget link: POST {}/v1/calls/<id>/widget-token): {}",
        api_urls[&1], tokens.frontend
    );
    let fate = if keep_data { "kept at exit" } else { "deleted at exit; --keep-data keeps it" };
    println!("  data (Raft log, SQLite history, queue_log per site): {} ({fate})", data_dir.display());
}

/// Stasis() fails for an application nobody is connected for: waits until every site's
/// driver has its events socket up before anyone dials.
async fn wait_for_ari_registration(live: &LiveWorld) -> Result<(), DemoError> {
    let registered = async {
        loop {
            let ready = (0..SITES.len()).all(|i| {
                live.with_world(|w| {
                    w.list_applications(BoxIndex(i))
                        .map(|apps| ["lineup", "lineup-login"].iter().all(|a| apps.iter().any(|x| x.name == *a)))
                        .unwrap_or(false)
                })
            });
            if ready {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), registered)
        .await
        .map_err(|source| DemoError::Timeout { step: "site drivers did not connect to ARI", source })
}

/// Places callers (Poisson arrivals) and sends operators on breaks until the duration ends or
/// Ctrl-C; refreshes the status line. Answers how many callers were placed.
async fn run_traffic(
    args: &DemoOptions,
    live: &LiveWorld,
    nodes: &BTreeMap<u64, Arc<Node>>,
    observed: &Mutex<Observed>,
    dice: &mut SplitMix64,
) -> Result<u64, DemoError> {
    let started = tokio::time::Instant::now();
    let deadline = args.duration.map(|s| started + Duration::from_secs(s));
    let on_terminal = std::io::stdout().is_terminal();
    let status_every = if on_terminal { STATUS_INTERVAL } else { STATUS_INTERVAL_LOGGED };
    let mean_gap_s = 60.0 / args.calls_per_minute.max(0.1);
    let mut next_call = started + Duration::from_secs_f64(dice.exponential(mean_gap_s));
    let mut next_status = started + status_every;
    let mut next_break = started + Duration::from_secs(45);
    let mut placed = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let wake = [Some(next_call), Some(next_status), Some(next_break), deadline].into_iter().flatten().min();
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = tokio::time::sleep_until(wake.unwrap_or(next_status)) => {}
        }
        let now = tokio::time::Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if now >= next_call {
            placed += 1;
            humans::place_caller(live, dice, placed)?;
            next_call = now + Duration::from_secs_f64(dice.exponential(mean_gap_s));
        }
        if now >= next_break {
            humans::send_someone_on_break(nodes, dice);
            next_break = now + Duration::from_secs(dice.range(40, 80));
        }
        if now >= next_status {
            print_status(&report::status_line(&nodes[&1], observed, started.elapsed()), on_terminal);
            next_status = now + status_every;
        }
    }
    if on_terminal {
        println!();
    }
    Ok(placed)
}

/// On a terminal the status line is rewritten in place; in a log each one is a line.
fn print_status(line: &str, on_terminal: bool) {
    if on_terminal {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r\x1b[2K{line}");
        let _ = out.flush();
    } else {
        println!("{line}");
    }
}

/// No new callers; everyone still waiting hangs up and callback promises are withdrawn.
/// Answers whether the system emptied.
async fn drain(first: &Node, live: &LiveWorld) -> bool {
    for _round in 0..DRAIN_ROUNDS_MAX {
        let calls: Vec<CallView> = first.read_stale(|r| r.calls().collect());
        if calls.is_empty() {
            return true;
        }
        for call in calls {
            let channel = first.read_stale(|r| r.call_channel(&call.call).map(str::to_string));
            let site_box = BoxIndex(call.entry_site.0 as usize - 1);
            match channel {
                Some(ch) => {
                    if let Ok(id) = lineup_ari::ChannelId::new(ch) {
                        live.with_world(|w| w.phone_hangup(site_box, &id));
                    }
                }
                None if call.status == CallStatus::CallbackWaiting => {
                    let _ = first.propose(CommandBody::Abandoned { call: call.call.clone() }).await;
                }
                None => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// Lets every node apply the same log before they are compared.
async fn wait_until_nodes_applied(nodes: &BTreeMap<u64, Arc<Node>>, target: u64) {
    for node in nodes.values() {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while node.applied_index() < target {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
}

/// Waits (bounded) until every site's history outbox reached its SQLite file and queue_log.
async fn wait_for_history(running: &BTreeMap<u64, RunningNode>) -> bool {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let pending: u64 = running.values().filter_map(|r| r.history.health().ok()).map(|h| h.lag.entries).sum();
            if pending == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok()
}

/// Reads the queues back through site 1's API, as the dashboard does.
async fn api_queue_count(base: &str, token: &str) -> u64 {
    let Ok(client) = reqwest::Client::builder().timeout(Duration::from_secs(5)).build() else { return 0 };
    let Ok(response) = client.get(format!("{base}/v1/queues")).bearer_auth(token).send().await else { return 0 };
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    body.get("queues").and_then(|q| q.as_array()).map(|q| q.len() as u64).unwrap_or(0)
}
