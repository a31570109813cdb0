//! One run, in order: set up, start, configure, log operators in, traffic with faults,
//! drain, read histories, judge, stop.

use crate::api::NodeApi;
use crate::ari_links::AriLinks;
use crate::checks::{checks, figures};
use crate::clocks::Clocks;
use crate::disks::DataDisks;
use crate::faults::Chaos;
use crate::fsyncs::FsyncFaults;
use crate::history::{read_calls, read_queue_log, CallRows, HistorySource};
use crate::leaders::LeaderWatch;
use crate::links::Links;
use crate::nemesis::Seams;
use crate::nodes::Nodes;
use crate::raft_logs::raft_log_path;
use crate::report::{first, Report};
use crate::services::{Services, SERVICES_SITE};
use crate::setup::{
    apply_routing, operators, prepare, write_node_configs, Layout, OperatorSpec, SiteServices, OPERATOR_PIN,
};
use crate::standin::StandIn;
use crate::wait::poll;
use crate::workload::Workload;
use crate::{RunArgs, Scenario};
use anyhow::Context;
use lineup_pbx_sim::truth::TruthReport;
use lineup_util::now_ms;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bound on the nodes becoming ready at first start.
pub const FIRST_READY_WAIT_MS: u64 = 60_000;
/// Bound on the routing config being accepted (a leader must exist).
pub const CONFIG_APPLY_WAIT_MS: u64 = 30_000;
/// Bound on every operator being logged in.
pub const LOGIN_WAIT_MS: u64 = 45_000;
/// Bound on every caller having hung up after the drain.
pub const DRAIN_WAIT_MS: u64 = 45_000;
/// Bound on every site's history holding every call.
pub const HISTORY_WAIT_MS: u64 = 45_000;
/// How long a ring-mode operator's phone rings before they answer.
pub const RING_ANSWER_AFTER_MS: u64 = 2_000;
const POLL_MS: u64 = 200;

fn run_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("lineup-chaos-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn lineup_bin(args: &RunArgs) -> anyhow::Result<PathBuf> {
    let bin = match &args.lineup_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?.with_file_name("lineup"),
    };
    anyhow::ensure!(bin.is_file(), "no lineup binary at {} (build it, or pass --lineup-bin)", bin.display());
    Ok(bin)
}

pub fn reproduce_command(args: &RunArgs, lineup: &Path) -> String {
    format!(
        "lineup-chaos --scenario {} --duration {} --seed {} --sites {} --lineup-bin {} --keep-dir",
        args.scenario.name(),
        args.duration,
        args.seed,
        args.sites,
        lineup.display()
    )
}

/// True when every check passed.
pub fn run(args: RunArgs) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let dir = run_dir()?;
    let lineup = lineup_bin(&args)?;
    let passed = runtime.block_on(run_in(&args, &dir, &lineup))?;
    if passed && !args.keep_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(passed)
}

async fn run_in(args: &RunArgs, dir: &Path, lineup: &Path) -> anyhow::Result<bool> {
    // The membership faults (nemesis, random) add a spare site (with an idle box of its own) and
    // remove it again.
    let spare = matches!(args.scenario, Scenario::Nemesis | Scenario::Random);
    let layout = prepare(dir, lineup, args.sites, spare)?;
    let dialplan = dir.join("extensions.conf");
    let harness_gates = crate::setup::aimed_dialplan(args.sites);
    std::fs::write(&dialplan, format!("{}{harness_gates}", lineup_pbx_sim::world::DEPLOYED_EXTENSIONS_CONF))?;
    let standin = Arc::new(StandIn::start(dir, args.sites + u64::from(spare), &dialplan).await?);
    // Partitions need a relay between every pair of nodes, ARI cuts one between each node and
    // its box, skews libfaketime, full disks a filesystem per node, database and Redis outages
    // a relay in front of each; restarts dial directly, keep true clocks and SQLite. An island
    // is a partition: the same seams.
    let seams = match args.scenario {
        Scenario::Nemesis | Scenario::Random | Scenario::Island => Some(start_seams(&layout, &standin).await?),
        Scenario::Restarts | Scenario::Ingress => None,
    };
    let peer_addresses = seams.as_ref().map(|seams| seams.links.addresses()).unwrap_or_default();
    let mut ari_ports: Vec<u16> = match &seams {
        Some(seams) => layout.sites.iter().filter_map(|s| seams.ari.port(s.site)).collect(),
        None => standin.ari_ports.iter().copied().take(layout.sites.len()).collect(),
    };
    // The spare reaches its box directly: no fault cuts it.
    ari_ports.extend(layout.spare.as_ref().and_then(|spare| standin.ari_ports.get(spare.site as usize - 1)));
    let services = seams.as_ref().and_then(|seams| seams.services.as_ref().ok()).map(site_services);
    let island_mode = args.scenario == Scenario::Island;
    write_node_configs(&layout, &ari_ports, &args.log_level, &peer_addresses, services.as_ref(), island_mode)?;
    let mut nodes = Nodes::new(layout);
    if args.scenario == Scenario::Ingress {
        let api = NodeApi::new()?;
        let result = crate::ingress::drive(&mut nodes, &api, &standin, dir).await;
        nodes.stop_all().await;
        let report = result?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(&report)?)?;
        match args.json {
            true => println!("{}", serde_json::to_string_pretty(&report)?),
            false => println!("lineup-chaos --scenario ingress: {}", if report.passed { "passed" } else { "FAILED" }),
        }
        if !report.passed {
            eprintln!("lineup-chaos: FAILED; run directory {}", dir.display());
        }
        return Ok(report.passed);
    }
    if matches!(args.scenario, Scenario::Nemesis | Scenario::Random) {
        nodes.clocks = Clocks::prepare(dir, &nodes.sites())?;
        nodes.fsyncs = FsyncFaults::prepare(dir, &nodes.sites()).map_err(|error| format!("{error:#}"));
    }
    let api = NodeApi::new()?;
    let result = drive(args, &mut nodes, &api, &standin, seams.as_ref(), dir, lineup).await;
    nodes.stop_all().await;
    if let Some(Ok(services)) = seams.as_ref().map(|seams| &seams.services) {
        services.remove().await;
    }
    result
}

fn site_services(services: &Services) -> SiteServices {
    SiteServices {
        site: SERVICES_SITE,
        history_url: services.history_url(),
        redis_url: services.redis_url(),
        redis_prefix: services.redis_prefix.clone(),
    }
}

/// The peer links' UDP relays, the ARI links' TCP relays, the data filesystems, and the
/// services site's database and Redis behind relays. A filesystem or database that cannot be
/// made is not an error here: the faults that need it are skipped, saying why.
async fn start_seams(layout: &Layout, standin: &StandIn) -> anyhow::Result<Seams> {
    let quic: Vec<(u64, u16)> = layout.sites.iter().map(|s| (s.site, s.quic_port)).collect();
    let boxes: Vec<(u64, u16)> = layout.sites.iter().map(|s| s.site).zip(standin.ari_ports.iter().copied()).collect();
    let data_dirs: Vec<(u64, &Path)> = layout.sites.iter().map(|s| (s.site, s.data_dir.as_path())).collect();
    let run_name = format!("{}_{}", std::process::id(), now_ms());
    Ok(Seams {
        links: Links::start(&quic).await?,
        ari: AriLinks::start(&boxes).await?,
        disks: DataDisks::mount(&data_dirs).map_err(|error| format!("{error:#}")),
        services: Services::start(&run_name).await.map_err(|error| format!("{error:#}")),
    })
}

pub(crate) async fn start_nodes(nodes: &mut Nodes, api: &NodeApi) -> anyhow::Result<()> {
    for site in nodes.sites() {
        nodes.start(site)?;
    }
    for site in nodes.sites() {
        let url = nodes.site(site)?.api_url();
        let ready = poll(FIRST_READY_WAIT_MS, POLL_MS, || async { api.ready(&url).await.then_some(()) }).await;
        let log = nodes.site(site)?.log.clone();
        ready.with_context(|| format!("site {site} never became ready:\n{}", crate::procs::log_tail(&log, 30)))?;
    }
    Ok(())
}

pub(crate) async fn configure(
    nodes: &Nodes,
    api: &NodeApi,
    standin: &StandIn,
    operators: &[OperatorSpec],
) -> anyhow::Result<()> {
    let url = nodes.site(1)?.api_url();
    let layout = nodes.layout.clone();
    let mut last_error = String::new();
    let applied = poll(CONFIG_APPLY_WAIT_MS, POLL_MS, || {
        let result = apply_routing(&layout, &url, operators);
        if let Err(error) = &result {
            last_error = format!("{error:#}");
        }
        async move { result.ok() }
    })
    .await;
    applied.with_context(|| format!("the routing config was never applied: {last_error}"))?;
    let aimed: Vec<OperatorSpec> = nodes.sites().into_iter().map(crate::setup::aimed_operator).collect();
    for operator in operators.iter().chain(&aimed) {
        let box_index = operator.site as usize - 1;
        standin.add_operator(&operator.id, box_index, operator.ring, OPERATOR_PIN, RING_ANSWER_AFTER_MS).await?;
    }
    let all = operators.len() + aimed.len();
    let available = poll(LOGIN_WAIT_MS, POLL_MS, || async {
        let states = api.operators(&url).await?;
        (states.iter().filter(|(_, state)| state == "available").count() == all).then_some(())
    })
    .await;
    available.context("not every operator became available after logging in")
}

async fn drive(
    args: &RunArgs,
    nodes: &mut Nodes,
    api: &NodeApi,
    standin: &Arc<StandIn>,
    seams: Option<&Seams>,
    dir: &Path,
    lineup: &Path,
) -> anyhow::Result<bool> {
    let operators = operators(args.sites);
    start_nodes(nodes, api).await?;
    configure(nodes, api, standin, &operators).await?;
    eprintln!(
        "lineup-chaos: {} sites ready, {} operators in; traffic and faults for {} s",
        args.sites,
        operators.len(),
        args.duration
    );
    let workload = Workload::start(Arc::clone(standin), args.sites as usize, args.seed);
    let apis = nodes.layout.all_sites().map(|site| (site.site, site.api_url())).collect();
    let leader_watch = LeaderWatch::start(api.clone(), apis, Arc::clone(standin)).await;
    let mut chaos =
        Chaos { nodes, api: api.clone(), standin: Arc::clone(standin), figures: Default::default(), log: Vec::new() };
    let duration_ms = args.duration * 1_000;
    match (args.scenario, seams) {
        (Scenario::Nemesis, Some(seams)) => chaos.run_nemesis(seams, duration_ms).await,
        (Scenario::Random, Some(seams)) => chaos.run_random(seams, duration_ms, args.seed).await,
        (Scenario::Island, Some(seams)) => chaos.run_island(seams, duration_ms).await,
        _ => chaos.run_restarts(duration_ms).await,
    }
    chaos.figures.leaderless = leader_watch.stop().await;
    let faults = chaos.figures.clone();
    eprintln!("lineup-chaos: {} callers placed; draining", workload.placed());
    workload.stop().await;
    let truth = drain(standin).await?;
    std::fs::write(dir.join("truth.json"), serde_json::to_string_pretty(&truth)?)?;
    let database = seams.and_then(|seams| seams.services.as_ref().ok()).map(Services::history_url_direct);
    let histories = read_histories(chaos.nodes, &truth, database.as_deref()).await;
    let queue_logs_agree = queue_logs_agree(chaos.nodes).await;
    // redb holds a node's file exclusively: the logs are read once every node has stopped.
    chaos.nodes.stop_all().await;
    let logs: Vec<(u64, PathBuf)> =
        chaos.nodes.layout.sites.iter().map(|site| (site.site, raft_log_path(&site.data_dir))).collect();
    let raft_logs = crate::raft_logs::check(&logs);
    let (figures, wrong, overtakings) = figures(&truth, &histories, queue_logs_agree, &raft_logs, &faults, args.sites);
    let checks = checks(&figures, args.scenario);
    let passed = checks.iter().all(|check| check.ok);
    let mut report = Report {
        scenario: args.scenario.name().to_string(),
        seed: args.seed,
        duration_s: args.duration,
        figures,
        passed,
        checks,
        restarts_detail: Vec::new(),
        outages_detail: Vec::new(),
        snapshot_kills_detail: Vec::new(),
        memberships_detail: Vec::new(),
        leaderless_detail: Vec::new(),
        skipped: Vec::new(),
        aimed_calls: Vec::new(),
        double_bookings: first(truth.double_bookings.iter().map(|i| format!("@{} ms {}", i.at_ms, i.what))),
        drops: first(truth.drops.iter().map(|i| format!("@{} ms {}", i.at_ms, i.what))),
        operator_leg_drops: first(truth.operator_leg_drops.iter().map(|i| format!("@{} ms {}", i.at_ms, i.what))),
        wrong_outcomes: first(wrong),
        order_violations_detail: first(overtakings),
        raft_log_disagreements: raft_logs.disagreements,
        run_dir: dir.display().to_string(),
        reproduce: reproduce_command(args, lineup),
    };
    report.faults(&faults);
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(&report)?)?;
    report.print(args.json)?;
    Ok(passed)
}

/// Everyone still on the line hangs up; waits (bounded) until every caller has ended.
async fn drain(standin: &StandIn) -> anyhow::Result<TruthReport> {
    let ended = poll(DRAIN_WAIT_MS, POLL_MS * 5, || async {
        standin.drain().await.ok()?;
        let truth = standin.truth().await.ok()?;
        truth.callers.iter().all(|c| c.ended_at_ms.is_some()).then_some(truth)
    })
    .await;
    match ended {
        Some(truth) => Ok(truth),
        None => standin.truth().await,
    }
}

/// Every site's calls, once they hold a row for every call that reached Lineup (bounded):
/// the SQLite file in its data directory, or for the services site `database` when given.
async fn read_histories(nodes: &Nodes, truth: &TruthReport, database: Option<&str>) -> Vec<(u64, CallRows)> {
    let wanted: Vec<&str> =
        truth.callers.iter().filter(|c| c.entered_at_ms.is_some()).map(|c| c.call_id.as_str()).collect();
    let mut histories = Vec::new();
    for site in &nodes.layout.sites {
        let source = match database.filter(|_| site.site == SERVICES_SITE) {
            Some(url) => HistorySource::Postgres(url.to_string()),
            None => HistorySource::Sqlite(site.history_db()),
        };
        let complete = poll(HISTORY_WAIT_MS, POLL_MS, || async {
            let rows = read_calls(&source).await.ok()?;
            wanted.iter().all(|id| rows.contains_key(*id)).then_some(rows)
        })
        .await;
        let rows = match complete {
            Some(rows) => rows,
            None => read_calls(&source).await.unwrap_or_default(),
        };
        histories.push((site.site, rows));
    }
    histories
}

/// Whether every site's queue_log holds the same lines, waiting (bounded) for the sites'
/// queue_log pipelines to catch up.
async fn queue_logs_agree(nodes: &Nodes) -> bool {
    let paths: Vec<PathBuf> = nodes.layout.sites.iter().map(|site| site.queue_log()).collect();
    let agree = poll(HISTORY_WAIT_MS, POLL_MS, || async {
        let logs: Vec<Vec<String>> = paths.iter().map(|path| read_queue_log(path)).collect();
        logs.windows(2).all(|pair| pair[0] == pair[1]).then_some(())
    });
    agree.await.is_some()
}
