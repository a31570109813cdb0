//! `lineup demo`: three sites in one process — three Raft nodes over real QUIC on loopback,
//! three Asterisk stand-ins joined by trunks and served over real ARI HTTP + WebSocket, a site
//! driver per site — with simulated callers (Poisson arrivals per gate, a VIP class, abandons,
//! callback takers) and operators (PIN login, both modes, wrap-up, breaks).

use crate::api_backend::start_api;
use crate::node::{NodeSpec, RunningNode};
use anyhow::Context;
use lineup_api::{ApiConfig, ApiToken, Role};
use lineup_ari::{ApplicationName, AriConfig, CallerId};
use lineup_cluster::certs::{generate_ca, issue_site_material, SiteIdentity};
use lineup_cluster::transport::quic::{install_crypto_provider, QuicTransport};
use lineup_cluster::{ClusterNode, ClusterTiming};
use lineup_core::*;
use lineup_pbx_sim::{
    serve_box, BoxConfig, BoxIndex, Dialplan, LiveWorld, PbxWorld, PhoneBehaviour, PhoneCall, ScriptedKeys,
    SimCredentials, TrunkRoute,
};
use lineup_site::SiteConfig;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SITES: [u64; 3] = [1, 2, 3];
/// How long the end of the demo waits for every call to reach its outcome.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// How often the status line is printed.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);
const DEMO_DIALPLAN: &str = include_str!("../../../deploy/demo/extensions.conf");

/// API tokens for one demo run: printed at start, good only while it runs.
struct DemoTokens {
    admin: String,
    viewer: String,
    widget: String,
}

impl DemoTokens {
    fn new(seed: u64) -> Self {
        // Loopback only and gone with the process; unpredictable enough across runs.
        let mut dice = Dice(seed ^ now_ms() ^ u64::from(std::process::id()) << 32);
        let mut token = |role: &str| format!("demo-{role}-{:016x}{:016x}", dice.next(), dice.next());
        Self { admin: token("admin"), viewer: token("viewer"), widget: token("widget") }
    }

    fn api_config(&self) -> ApiConfig {
        let token = |name: &str, token: &str, role| ApiToken { name: name.into(), token: token.into(), role };
        ApiConfig {
            tokens: vec![
                token("demo-admin", &self.admin, Role::Admin),
                token("demo-viewer", &self.viewer, Role::Viewer),
                token("demo-widget", &self.widget, Role::Widget),
            ],
            ..ApiConfig::default()
        }
    }
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Port of site 1's API and dashboard (another free port is used when it is taken).
    #[arg(long, default_value_t = 8080)]
    api_port: u16,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// Write a JSON summary here at the end.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Caller arrivals per minute, over all sites and gates.
    #[arg(long, default_value_t = 24.0)]
    calls_per_minute: f64,
    /// Seed of the simulated callers and operators.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Serialize)]
struct SiteSummary {
    site: u64,
    /// Calls answered by an operator at this site.
    answered: u64,
    /// Calls that entered at this site.
    entered: u64,
}

#[derive(Serialize)]
struct DemoSummary {
    duration_s: u64,
    sites: Vec<SiteSummary>,
    calls: u64,
    outcomes: BTreeMap<String, u64>,
    invariant_violations: u64,
    violations: Vec<String>,
    calls_without_one_outcome: u64,
    leader: Option<u64>,
    /// Each operator's state at the end.
    operators: BTreeMap<String, String>,
    /// Every site's history outbox reached its SQLite file and queue_log.
    history_drained: bool,
    queue_log_lines_site_1: u64,
    /// Site 1's dashboard, and how many queues its API listed at the end (read back over HTTP).
    dashboard_url: String,
    api_queues: u64,
}

/// A small deterministic generator for the simulated humans (splitmix64).
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
    /// Exponential with the given mean (Poisson inter-arrival times).
    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

struct DemoOperator {
    id: &'static str,
    site: u64,
    mode: OperatorMode,
    queues: &'static [(&'static str, u8)],
    skills: &'static [(&'static str, u8)],
}

const OPERATORS: &[DemoOperator] = &[
    DemoOperator {
        id: "1101",
        site: 1,
        mode: OperatorMode::Persistent,
        queues: &[("sales", 0), ("support", 1)],
        skills: &[("english", 80)],
    },
    DemoOperator { id: "1102", site: 1, mode: OperatorMode::Ring, queues: &[("sales", 0)], skills: &[] },
    DemoOperator { id: "1201", site: 2, mode: OperatorMode::Persistent, queues: &[("sales", 0)], skills: &[] },
    DemoOperator {
        id: "1202",
        site: 2,
        mode: OperatorMode::Ring,
        queues: &[("support", 0)],
        skills: &[("english", 60)],
    },
    DemoOperator {
        id: "1301",
        site: 3,
        mode: OperatorMode::Persistent,
        queues: &[("support", 0), ("sales", 1)],
        skills: &[("english", 90)],
    },
    DemoOperator { id: "1302", site: 3, mode: OperatorMode::Persistent, queues: &[("sales", 0)], skills: &[] },
];

fn pin_of(operator: &str) -> String {
    operator.chars().rev().collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn routing_config() -> RoutingConfigSet {
    let mut set = RoutingConfigSet::default();
    set.queues = vec![
        QueueConfig {
            id: QueueId::new("sales"),
            name: "Sales".into(),
            announce_every_ms: Some(30_000),
            callback_offer_above_eta_ms: Some(45_000),
            wrap_up_ms: 5_000,
            max_wait_ms: Some(240_000),
            default_handle_ms: 45_000,
            alarm_longest_wait_ms: Some(90_000),
            alarm_depth: Some(8),
            ring_timeout_ms: 12_000,
            ..Default::default()
        },
        QueueConfig {
            id: QueueId::new("support"),
            name: "Support".into(),
            required_skills: [(Skill::new("english"), 50)].into_iter().collect(),
            announce_every_ms: Some(30_000),
            wrap_up_ms: 8_000,
            max_wait_ms: Some(300_000),
            default_handle_ms: 60_000,
            timeout_target: Target::Queue { queue: QueueId::new("sales"), keep_order: true },
            ..Default::default()
        },
    ];
    set.gates = vec![
        GateConfig { id: GateId::new("web"), queue: QueueId::new("sales"), ..Default::default() },
        GateConfig {
            id: GateId::new("phone"),
            queue: QueueId::new("sales"),
            whisper: Some("queue-reporthold".into()),
            ..Default::default()
        },
        GateConfig { id: GateId::new("support-phone"), queue: QueueId::new("support"), ..Default::default() },
    ];
    for op in OPERATORS {
        let phc = {
            use argon2::password_hash::PasswordHasher;
            argon2::Argon2::default().hash_password(pin_of(op.id).as_bytes()).map(|h| h.to_string()).unwrap_or_default()
        };
        set.operators.push(OperatorConfig {
            id: OperatorId::new(op.id),
            name: format!("Operator {}", op.id),
            site: SiteId(op.site),
            pin_hash: phc,
            mode: op.mode,
            endpoint: (op.mode == OperatorMode::Ring).then(|| format!("PJSIP/phone-{}", op.id)),
            skills: op.skills.iter().map(|(s, l)| (Skill::new(*s), *l)).collect(),
            memberships: op.queues.iter().map(|(q, p)| (QueueId::new(*q), *p)).collect(),
        });
    }
    set
}

/// Every effect any node published, by log index (each effect once).
#[derive(Default)]
struct Observed {
    by_index: BTreeMap<u64, Vec<Effect>>,
}

impl Observed {
    fn record(&mut self, index: u64, effect: Effect) {
        let list = self.by_index.entry(index).or_default();
        if !list.contains(&effect) {
            list.push(effect);
        }
    }
}

pub fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    install_crypto_provider();
    let data_dir = std::env::temp_dir().join(format!("lineup-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);

    // Three Raft nodes over QUIC on loopback, mutual TLS against a fresh cluster CA.
    let ca = generate_ca()?;
    let mut transports = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for site in SITES {
        let identity = SiteIdentity::from_material(&issue_site_material(&ca, site)?)?;
        let transport = QuicTransport::bind(&identity, "127.0.0.1:0".parse()?)?;
        addrs.insert(site, transport.local_addr()?.to_string());
        transports.insert(site, transport);
    }
    // Loopback, so LAN-like timing; real sites keep the WAN defaults.
    let timing = ClusterTiming {
        heartbeat_interval_ms: 100,
        election_timeout_min_ms: 500,
        election_timeout_max_ms: 1_000,
        ..ClusterTiming::default()
    };
    // Three Asterisk stand-ins joined by PJSIP trunks, each served over ARI.
    let dialplan = Dialplan::parse(DEMO_DIALPLAN)?;
    let names: Vec<String> = SITES.iter().map(|s| format!("site-{s}")).collect();
    let boxes = names
        .iter()
        .enumerate()
        .map(|(i, name)| BoxConfig {
            name: name.clone(),
            asterisk_id: format!("02:fc:00:00:00:{:02x}", i + 1),
            dialplan: dialplan.clone(),
            trunks: names
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(j, other)| TrunkRoute {
                    technology: "PJSIP".into(),
                    trunk: other.clone(),
                    target: BoxIndex(j),
                    context: "from-lineup".into(),
                })
                .collect(),
        })
        .collect();
    let live = LiveWorld::start(PbxWorld::new(now_ms(), boxes)?);
    let mut servers = Vec::new();
    // Each site: its Raft node, site control over its stand-in's ARI, SQLite history and an
    // Asterisk queue_log file — the same assembly `lineup run` uses.
    let mut running = BTreeMap::new();
    for (i, (site, transport)) in transports.into_iter().enumerate() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let credentials = SimCredentials { username: "lineup".into(), password: format!("demo-{site}") };
        let server = serve_box(Arc::clone(&live), BoxIndex(i), listener, credentials).await?;
        let ari = AriConfig {
            base_url: server.base_url(),
            username: "lineup".into(),
            password: format!("demo-{site}"),
            applications: vec![ApplicationName::new("lineup")?, ApplicationName::new("lineup-login")?],
            request_timeout_ms: 5_000,
        };
        servers.push(server);
        let mut site_config = SiteConfig::new(SiteId(site), now_ms() * 1_000);
        for other in SITES.iter().filter(|o| **o != site) {
            site_config.trunk_endpoints.insert(SiteId(*other), format!("PJSIP/lineup-{{call}}@site-{other}"));
        }
        site_config.callback_endpoint = Some("PJSIP/{number}".into());
        let dir = data_dir.join(format!("site-{site}"));
        let spec = NodeSpec {
            site,
            data_dir: dir.clone(),
            transport,
            bootstrap: Some(addrs.clone()),
            timing: timing.clone(),
            ari,
            site_config,
            database_url: format!("sqlite://{}", dir.join("history.sqlite").display()),
            queue_log: Some(dir.join("queue_log")),
            redis: None,
        };
        running.insert(site, RunningNode::start(spec).await?);
    }
    // Every site serves the API and the dashboard; site 1 on --api-port when it is free.
    let tokens = DemoTokens::new(args.seed);
    let (stop_api, api_shutdown) = tokio::sync::watch::channel(false);
    let mut api_urls = BTreeMap::new();
    for (site, node) in &running {
        let wanted = if *site == 1 { args.api_port } else { 0 };
        let mut address = std::net::SocketAddr::from(([127, 0, 0, 1], wanted));
        if wanted != 0 && std::net::TcpListener::bind(address).is_err() {
            address.set_port(0);
        }
        let bound = start_api(node, address, tokens.api_config(), BTreeMap::new(), api_shutdown.clone()).await?;
        api_urls.insert(*site, format!("http://{bound}"));
    }
    let nodes: BTreeMap<u64, Arc<lineup_cluster::ClusterNode<QuicTransport>>> =
        running.iter().map(|(site, r)| (*site, Arc::clone(&r.node))).collect();
    let observed = Arc::new(Mutex::new(Observed::default()));
    for node in nodes.values() {
        let mut effects = node.subscribe_effects();
        let observed = Arc::clone(&observed);
        tokio::spawn(async move {
            loop {
                match effects.recv().await {
                    Ok(e) => observed.lock().unwrap_or_else(|p| p.into_inner()).record(e.apply_index, e.effect),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
    let first = Arc::clone(&nodes[&1]);
    // Wait for a leader, then write the routing config through Raft.
    let config_written = async {
        for _attempt in 0..100 {
            match first.propose(CommandBody::ApplyConfig(Box::new(routing_config()))).await {
                Ok(committed) => {
                    return committed.result.map(|_| ()).map_err(|e| anyhow::anyhow!("config refused: {e}"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Err(anyhow::anyhow!("no leader elected to take the routing config"))
    };
    tokio::time::timeout(Duration::from_secs(20), config_written).await.context("writing the routing config")??;

    println!(
        "lineup demo: 3 sites (Raft over QUIC on {}), 3 Asterisk stand-ins:",
        addrs.values().cloned().collect::<Vec<_>>().join(", ")
    );
    for (site, server) in SITES.iter().zip(&servers) {
        println!("  site-{site}: ARI at {}", server.base_url());
    }
    for (site, url) in &api_urls {
        println!("  site-{site}: API at {url}/v1/");
    }
    println!("  dashboard: {}/  (sign in with the admin token {})", api_urls[&1], tokens.admin);
    println!("  viewer token (wallboard, no actions): {}", tokens.viewer);
    println!("  widget token (caller widget: {}/widget?call=<id>&token=…): {}", api_urls[&1], tokens.widget);

    // Stasis() fails for an application nobody is connected for: wait until every site's
    // driver has its events socket up before anyone dials.
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
    tokio::time::timeout(Duration::from_secs(20), registered).await.context("site drivers did not connect to ARI")?;

    // Operators: ring-mode phones answer after a few seconds; everyone logs in by PIN.
    let mut dice = Dice(args.seed);
    for (k, op) in OPERATORS.iter().enumerate() {
        let box_index = BoxIndex(op.site as usize - 1);
        if op.mode == OperatorMode::Ring {
            let behaviour = PhoneBehaviour {
                answer_after_ms: Some(dice.range(1_500, 4_000)),
                hang_up_after_answer_ms: Some(dice.range(8_000, 20_000)),
                ..Default::default()
            };
            live.with_world(|w| w.register_phone(box_index, &format!("phone-{}", op.id), behaviour))?;
        }
        let login = PhoneCall::operator_login(
            &format!("desk-{}", op.id),
            CallerId { name: format!("Operator {}", op.id), number: op.id.into() },
            "lineup-operators",
            &format!("*55{}", op.id),
            &pin_of(op.id),
            2_500 + 200 * k as u64,
        );
        live.with_world(|w| w.place_call(box_index, login))?;
    }

    let started = tokio::time::Instant::now();
    let deadline = args.duration.map(|s| started + Duration::from_secs(s));
    let mean_gap_s = 60.0 / args.calls_per_minute.max(0.1);
    let mut next_call = started + Duration::from_secs_f64(dice.exponential(mean_gap_s));
    let mut next_status = started + STATUS_INTERVAL;
    let mut next_break = started + Duration::from_secs(45);
    let mut placed = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let wake = [Some(next_call), Some(next_status), Some(next_break), deadline]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_status);
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = tokio::time::sleep_until(wake) => {}
        }
        let now = tokio::time::Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if now >= next_call {
            placed += 1;
            place_caller(&live, &mut dice, placed)?;
            next_call = now + Duration::from_secs_f64(dice.exponential(mean_gap_s));
        }
        if now >= next_break {
            // A supervisor sends someone on a short break; they come back on their own.
            let op = &OPERATORS[dice.range(0, OPERATORS.len() as u64 - 1) as usize];
            let node = Arc::clone(&nodes[&op.site]);
            let id = OperatorId::new(op.id);
            tokio::spawn(async move {
                let _ = node
                    .propose(CommandBody::OperatorState {
                        operator: id.clone(),
                        state: RequestedState::Break { reason: "coffee".into() },
                    })
                    .await;
                tokio::time::sleep(Duration::from_secs(20)).await;
                let _ =
                    node.propose(CommandBody::OperatorState { operator: id, state: RequestedState::Available }).await;
            });
            next_break = now + Duration::from_secs(dice.range(40, 80));
        }
        if now >= next_status {
            println!("{}", status_line(&first, &observed, started.elapsed()));
            next_status = now + STATUS_INTERVAL;
        }
    }

    // Drain: no new callers; everyone still waiting hangs up, promises are withdrawn.
    println!("lineup demo: stopping arrivals and draining");
    let drain = async {
        for _round in 0..60 {
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
    };
    let drained = tokio::time::timeout(DRAIN_LIMIT, drain).await.unwrap_or(false);
    // Let every node apply the same log, then compare them.
    let target = first.applied_index();
    for node in nodes.values() {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while node.applied_index() < target {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
    // History drains from each site's outbox into its SQLite file and queue_log.
    let history_drained = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let pending: u64 = running.values().filter_map(|r| r.history.health().ok()).map(|h| h.lag.entries).sum();
            if pending == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok();
    let queue_log_lines =
        std::fs::read_to_string(data_dir.join("site-1").join("queue_log")).map(|t| t.lines().count()).unwrap_or(0);
    let mut summary = summarize(&nodes, &observed, started.elapsed(), drained, placed);
    summary.history_drained = history_drained;
    summary.queue_log_lines_site_1 = queue_log_lines as u64;
    summary.dashboard_url = format!("{}/", api_urls[&1]);
    summary.api_queues = api_queue_count(&api_urls[&1], &tokens.viewer).await;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if let Some(path) = &args.summary_json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    // The history outboxes are drained (checked above); the process exits with them.
    let _ = stop_api.send(true);
    drop(nodes);
    drop(first);
    for (_, site) in running {
        site.shutdown().await;
    }
    drop(servers);
    let _ = std::fs::remove_dir_all(&data_dir);
    anyhow::ensure!(summary.invariant_violations == 0, "invariant violations: {:?}", summary.violations);
    Ok(())
}

/// Reads the queues back through site 1's API, as the dashboard does.
async fn api_queue_count(base: &str, token: &str) -> u64 {
    let Ok(client) = reqwest::Client::builder().timeout(Duration::from_secs(5)).build() else { return 0 };
    let Ok(response) = client.get(format!("{base}/v1/queues")).bearer_auth(token).send().await else { return 0 };
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    body.get("queues").and_then(|q| q.as_array()).map(|q| q.len() as u64).unwrap_or(0)
}

fn place_caller(live: &LiveWorld, dice: &mut Dice, n: u64) -> anyhow::Result<()> {
    let site = dice.range(0, SITES.len() as u64 - 1) as usize;
    let roll = dice.unit();
    let exten = if roll < 0.35 {
        "6000" // sales via the web gate
    } else if roll < 0.70 {
        "6001" // sales by phone
    } else if roll < 0.80 {
        "6002" // sales by phone, VIP class
    } else {
        "6003" // support by phone (needs English)
    };
    let number = format!("+1555{:07}", 1_000_000 + n);
    let takes_callback = dice.unit() < 0.2;
    let mut keys = Vec::new();
    if takes_callback {
        keys.push(ScriptedKeys { at_ms: dice.range(8_000, 20_000), digits: "1".into() });
        let behaviour = PhoneBehaviour {
            answer_after_ms: Some(dice.range(2_000, 6_000)),
            hang_up_after_answer_ms: Some(dice.range(15_000, 40_000)),
            ..Default::default()
        };
        live.with_world(|w| w.register_phone(BoxIndex(site), &number, behaviour))?;
    }
    let call = PhoneCall {
        phone: format!("caller-{n}"),
        caller: CallerId { name: format!("Caller {n}"), number },
        context: "lineup-gates".into(),
        exten: exten.into(),
        // Patience covers waiting and talking: answered callers talk until it runs out.
        patience_ms: Some(dice.range(15_000, 50_000)),
        keys,
    };
    live.with_world(|w| w.place_call(BoxIndex(site), call))?;
    Ok(())
}

fn status_line<T>(node: &ClusterNode<T>, observed: &Mutex<Observed>, elapsed: Duration) -> String
where
    T: lineup_cluster::transport::PeerTransport + 'static,
{
    let (waiting, connected, operators) = node.read_stale(|r| {
        let calls: Vec<CallView> = r.calls().collect();
        let waiting =
            calls.iter().filter(|c| matches!(c.status, CallStatus::Waiting | CallStatus::CallbackWaiting)).count();
        let connected =
            calls.iter().filter(|c| matches!(c.status, CallStatus::Connected | CallStatus::CallbackConnected)).count();
        let available = r.operators().filter(|o| o.status == OperatorStatus::Available).count();
        (waiting, connected, available)
    });
    let observed = observed.lock().unwrap_or_else(|p| p.into_inner());
    let mut answered: BTreeMap<u64, u64> = BTreeMap::new();
    let mut ended = 0;
    for e in observed.by_index.values().flatten() {
        if let Effect::CallEnded(r) = e {
            ended += 1;
            if let (Outcome::Completed { .. } | Outcome::Transferred { .. }, Some(site)) = (&r.outcome, r.operator_site)
            {
                *answered.entry(site.0).or_default() += 1;
            }
        }
    }
    format!(
        "[{:>4}s] waiting {waiting:>2} | talking {connected:>2} | operators available {operators} | ended {ended:>3} | answered by site {}",
        elapsed.as_secs(),
        SITES.iter().map(|s| format!("{s}:{}", answered.get(s).copied().unwrap_or(0))).collect::<Vec<_>>().join(" ")
    )
}

fn summarize<T>(
    nodes: &BTreeMap<u64, Arc<ClusterNode<T>>>,
    observed: &Mutex<Observed>,
    elapsed: Duration,
    drained: bool,
    placed: u64,
) -> DemoSummary
where
    T: lineup_cluster::transport::PeerTransport + 'static,
{
    let mut violations = Vec::new();
    // Every node's state checks out against itself, and all are identical.
    let snapshots: Vec<(u64, u64, Vec<u8>)> = nodes
        .iter()
        .map(|(site, node)| {
            if let Err(e) = node.read_stale(|r| r.check_invariants()) {
                violations.push(format!("site {site}: {e}"));
            }
            (*site, node.applied_index(), node.read_stale(|r| r.snapshot_bytes()))
        })
        .collect();
    for pair in snapshots.windows(2) {
        if pair[0].1 == pair[1].1 && pair[0].2 != pair[1].2 {
            violations.push(format!("sites {} and {} differ at log index {}", pair[0].0, pair[1].0, pair[0].1));
        }
    }
    if !drained {
        violations.push("calls still in the system after the drain".into());
    }
    // Replay the effects in log order: no operator or caller in two offers, one outcome each.
    let observed = observed.lock().unwrap_or_else(|p| p.into_inner());
    let mut by_operator: BTreeMap<OperatorId, CallId> = BTreeMap::new();
    let mut by_call: BTreeMap<CallId, OperatorId> = BTreeMap::new();
    let mut seen: BTreeSet<CallId> = BTreeSet::new();
    let mut ended: BTreeMap<CallId, u64> = BTreeMap::new();
    let mut entered: BTreeMap<u64, u64> = BTreeMap::new();
    let mut answered: BTreeMap<u64, u64> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for effects in observed.by_index.values() {
        for e in effects {
            match e {
                Effect::Offer(o) | Effect::DialCallback(o) => {
                    if let Some(other) = by_operator.insert(o.operator.clone(), o.call.clone()) {
                        if other != o.call {
                            violations
                                .push(format!("operator {} offered {} while holding {other}", o.operator, o.call));
                        }
                    }
                    if let Some(other) = by_call.insert(o.call.clone(), o.operator.clone()) {
                        if other != o.operator {
                            violations.push(format!("call {} offered to {} while held by {other}", o.call, o.operator));
                        }
                    }
                }
                Effect::CancelOffer { call, operator, .. } => {
                    if by_operator.get(operator) == Some(call) {
                        by_operator.remove(operator);
                        by_call.remove(call);
                    }
                }
                Effect::CallChanged(v) => {
                    if seen.insert(v.call.clone()) {
                        *entered.entry(v.entry_site.0).or_default() += 1;
                    }
                }
                Effect::CallEnded(r) => {
                    *ended.entry(r.call.clone()).or_default() += 1;
                    let name = format!("{:?}", r.outcome).split([' ', '{']).next().unwrap_or("").to_lowercase();
                    *outcomes.entry(name).or_default() += 1;
                    if let (Outcome::Completed { .. } | Outcome::Transferred { .. }, Some(site)) =
                        (&r.outcome, r.operator_site)
                    {
                        *answered.entry(site.0).or_default() += 1;
                    }
                    if let Some(op) = by_call.remove(&r.call) {
                        by_operator.remove(&op);
                    }
                }
                _ => {}
            }
        }
    }
    let calls_without_one_outcome = seen.iter().filter(|c| ended.get(*c).copied() != Some(1)).count() as u64;
    let _ = placed;
    DemoSummary {
        duration_s: elapsed.as_secs(),
        sites: SITES
            .iter()
            .map(|s| SiteSummary {
                site: *s,
                answered: answered.get(s).copied().unwrap_or(0),
                entered: entered.get(s).copied().unwrap_or(0),
            })
            .collect(),
        calls: seen.len() as u64,
        outcomes,
        invariant_violations: violations.len() as u64,
        violations,
        calls_without_one_outcome,
        leader: nodes.values().next().and_then(|n| n.raft().metrics().borrow().current_leader),
        operators: nodes
            .values()
            .next()
            .map(|n| {
                n.read_stale(|r| r.operators().map(|o| (o.operator.to_string(), o.status.name().to_string())).collect())
            })
            .unwrap_or_default(),
        history_drained: false,
        queue_log_lines_site_1: 0,
        dashboard_url: String::new(),
        api_queues: 0,
    }
}
