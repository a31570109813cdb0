//! One site's node, assembled: the Raft member over QUIC, site control over ARI, the history
//! pipeline (outbox → SQL + queue_log), the optional Redis projection and the health the API
//! reports. `lineup run` starts one; `lineup demo` starts three in one process. Wiring only:
//! no routing decision is made here.

use crate::serial_floor::{SerialFloor, SerialReservingPort};
use crate::webhook;
use crate::webhook::http::{WebhookClient, WEBHOOK_CA_BUNDLE_DEFAULT_PATH};
use crate::webhook::{RetryPolicy, WebhookSender};
use crate::wiring::{feed_site, NodePort};
use crate::NodeError;
use lineup_ari::{Ari, AriConfig, AriEvents, HttpAri};
use lineup_cluster::lease::IslandTiming;
use lineup_cluster::node::LOGS_KEPT_AFTER_SNAPSHOT;
use lineup_cluster::transport::quic::QuicTransport;
use lineup_cluster::{AppliedCommand, ClusterNode, ClusterTiming, NodeConfig, StateEvent, StateHook};
use lineup_core::RoutingConfigSet;
use lineup_site::{SiteConfig, SiteController};
use lineup_site_driver::run_site;
use lineup_store::{ConfigMirror, HistoryPipeline, HistoryPipelineConfig, ProjectionConfig, RedisProjection};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Applied commands waiting for the history writer; a full channel holds up apply.
pub const APPLIED_SINK_CAPACITY_COMMANDS: usize = 65_536;
/// How often the config mirror (SQL) and Redis memberships are checked for a config change.
pub const CONFIG_MIRROR_CHECK_INTERVAL_MS: u64 = 1_000;
/// How often ARI's REST side is probed for the health report.
pub const ARI_PROBE_INTERVAL_MS: u64 = 5_000;
/// Probe period while ARI is not reachable (at start, and during an outage).
pub const ARI_PROBE_RETRY_MS: u64 = 250;
/// Bound on waiting for the node to catch up with the cluster before site control starts
/// (see `catch_up_with_cluster`).
pub const SITE_START_CATCH_UP_WAIT_MS: u64 = 10_000;
/// Linearizable reads tried within that bound (each is bounded by the write timeout).
pub const SITE_START_CATCH_UP_ATTEMPTS_MAX: u32 = 20;
/// Pause after a read that failed at once (no leader known yet).
pub const SITE_START_CATCH_UP_RETRY_MS: u64 = 250;

pub type Node = ClusterNode<QuicTransport>;

/// The node's Raft storage inside its data directory (`lineup restore` seeds it).
pub const RAFT_DIR: &str = "raft";

/// Everything needed to start one site, resolved (no files, no environment).
pub struct NodeSpec {
    pub site: u64,
    pub data_dir: PathBuf,
    /// Already bound (the demo binds port 0 first to learn the addresses).
    pub transport: QuicTransport,
    /// Founding members (site → QUIC address) when this node should bootstrap a cluster.
    pub bootstrap: Option<BTreeMap<u64, String>>,
    pub timing: ClusterTiming,
    /// The `[island]` settings when island mode is on (`None`: off).
    pub island: Option<IslandTiming>,
    /// Snapshot (and compact the log) after this many entries; as many are kept behind it.
    pub snapshot_every_entries: u64,
    pub ari: AriConfig,
    pub site_config: SiteConfig,
    pub database_url: String,
    pub queue_log: Option<PathBuf>,
    pub redis: Option<ProjectionConfig>,
}

/// What the health endpoints and `lineup status` report about this node's edges.
#[derive(Default)]
pub struct EdgeHealth {
    pub ari_reachable: AtomicBool,
    pub ari_probes_failed: AtomicU64,
}

/// A running site.
pub struct RunningNode {
    pub site: u64,
    pub node: Arc<Node>,
    pub history: Arc<HistoryPipeline>,
    pub projection: Option<Arc<RedisProjection>>,
    pub edges: Arc<EdgeHealth>,
    pub driver: tokio::task::JoinHandle<lineup_site::SiteCounters>,
    /// The site controller's counters, live.
    pub site_counters: watch::Receiver<lineup_site::SiteCounters>,
    /// The webhook sender (queues only while this node leads).
    pub webhooks: Arc<WebhookSender>,
    stop: watch::Sender<bool>,
}

impl RunningNode {
    /// Starts every part of the site. Must run inside a multi-thread tokio runtime.
    pub async fn start(spec: NodeSpec) -> Result<RunningNode, NodeError> {
        std::fs::create_dir_all(&spec.data_dir)
            .map_err(|source| NodeError::DataDir { path: spec.data_dir.clone(), source })?;
        let history = Arc::new(
            HistoryPipeline::start(HistoryPipelineConfig {
                outbox_path: spec.data_dir.join("history-outbox.redb"),
                database_url: spec.database_url.clone(),
                queue_log_path: spec.queue_log.clone(),
            })
            .map_err(|source| NodeError::Store { step: "start the history pipeline", source })?,
        );
        let (sink, applied) = std::sync::mpsc::sync_channel(APPLIED_SINK_CAPACITY_COMMANDS);
        let mut config = NodeConfig::new(spec.site, spec.data_dir.join(RAFT_DIR));
        config.timing = spec.timing.clone();
        config.island = spec.island;
        // Island mode on means serving the fork: the merge brings it back at the heal.
        config.island_fork = spec.island.is_some();
        config.snapshot_logs_since_last = spec.snapshot_every_entries;
        config.logs_kept_after_snapshot = LOGS_KEPT_AFTER_SNAPSHOT.min(spec.snapshot_every_entries);
        config.applied_sink = Some(sink);
        // A snapshot installed from the leader replaces the state without effects, so the
        // Redis projection would keep what the covered entries changed: it rebuilds. (The
        // restore at start needs nothing: the projection starts with a rebuild.)
        let projection_to_rebuild: Arc<std::sync::OnceLock<Arc<RedisProjection>>> = Arc::default();
        let hook_projection = Arc::clone(&projection_to_rebuild);
        // Webhook events are queued inside apply (never waiting), by the leader only.
        let leads = Arc::new(AtomicBool::new(false));
        let webhooks = Arc::new(WebhookSender::new(
            WebhookClient::new(std::path::Path::new(WEBHOOK_CA_BUNDLE_DEFAULT_PATH)),
            RetryPolicy::default(),
            Arc::clone(&leads),
            tokio::runtime::Handle::current(),
        ));
        let hook_webhooks = Arc::clone(&webhooks);
        config.state_hook = Some(StateHook(Arc::new(move |event| {
            webhook::wiring::hand_applied(&hook_webhooks, &event);
            if let (StateEvent::Restored { .. }, Some(projection)) = (event, hook_projection.get()) {
                projection.request_rebuild();
            }
        })));
        let node = ClusterNode::start(config, spec.transport)
            .await
            .map_err(|source| NodeError::Cluster { step: "start the cluster node", source })?;
        if let Some(members) = &spec.bootstrap {
            node.bootstrap(members)
                .await
                .map_err(|source| NodeError::Cluster { step: "bootstrap the cluster", source })?;
        }
        let projection = start_projection(spec.redis, &node)?;
        if let Some(projection) = &projection {
            let _ = projection_to_rebuild.set(Arc::clone(projection));
        }
        webhook::wiring::spawn_leader_watch(&node, leads);
        spawn_applied_writer(applied, Arc::clone(&history), projection.clone());
        spawn_config_mirror(Arc::clone(&node), Arc::clone(&history), projection.clone());
        let site = SiteParts { data_dir: spec.data_dir, ari: spec.ari, site_config: spec.site_config };
        let SiteControl { driver, site_counters, edges, stop } = start_site_control(site, &node)?;
        Ok(RunningNode { site: spec.site, node, history, projection, edges, driver, site_counters, webhooks, stop })
    }

    /// Waits until this node's Raft has stopped for good (a storage write failed) and
    /// answers why. The binary exits then: a node that cannot store the log is no member,
    /// and its service manager starting it again is the way back (its callers stay in
    /// Asterisk meanwhile and are adopted when it is back).
    pub async fn raft_stopped(&self) -> String {
        self.node.raft_stopped().await
    }

    /// Stops the site driver and the node; answers the site controller's counters when the
    /// driver stopped within the bound.
    pub async fn shutdown(self) -> Option<lineup_site::SiteCounters> {
        let _ = self.stop.send(true);
        let counters = tokio::time::timeout(Duration::from_secs(5), self.driver).await.ok().and_then(Result::ok);
        self.node.shutdown().await;
        counters
    }
}

/// What site control needs from the spec.
struct SiteParts {
    data_dir: PathBuf,
    ari: AriConfig,
    site_config: SiteConfig,
}

/// Site control, started: the driver task, its live counters, the edge health its ARI probe
/// keeps, and the sender that stops both.
struct SiteControl {
    driver: tokio::task::JoinHandle<lineup_site::SiteCounters>,
    site_counters: watch::Receiver<lineup_site::SiteCounters>,
    edges: Arc<EdgeHealth>,
    stop: watch::Sender<bool>,
}

/// The Redis projection, when the spec asks for one: it reads the node's applied state.
fn start_projection(
    redis: Option<ProjectionConfig>,
    node: &Arc<Node>,
) -> Result<Option<Arc<RedisProjection>>, NodeError> {
    let Some(redis) = redis else { return Ok(None) };
    let source_node = Arc::clone(node);
    let source: lineup_store::projection::StateSource =
        Arc::new(move || source_node.read_stale(lineup_store::ProjectionState::from_routing));
    let projection = RedisProjection::start(redis, source)
        .map_err(|source| NodeError::Store { step: "start the Redis projection", source })?;
    Ok(Some(Arc::new(projection)))
}

/// Site control over ARI: the probe for the health report, the events socket and the site
/// driver (which first catches up with the cluster), its serials kept above the stored mark.
fn start_site_control(site: SiteParts, node: &Arc<Node>) -> Result<SiteControl, NodeError> {
    let (stop, shutdown) = watch::channel(false);
    let ari = Arc::new(HttpAri::new(&site.ari).map_err(|source| NodeError::Ari { step: "ARI client", source })?);
    let edges = Arc::new(EdgeHealth::default());
    let probe = AriProbe { ari: Arc::clone(&ari), edges: Arc::clone(&edges), node: Arc::clone(node) };
    spawn_ari_probe(probe, site.ari.applications.first().cloned(), shutdown.clone());
    let events = AriEvents::connect(&site.ari).map_err(|source| NodeError::Ari { step: "ARI events", source })?;
    let feed = feed_site(node);
    let caught_up = Arc::clone(node);
    // The configured serial base (the boot time) is only a lower bound: the stored mark
    // keeps serials growing when the clock went back since the last run.
    let (serial_floor, first_serial) = SerialFloor::open(&site.data_dir, site.site_config.serial_base)
        .map_err(|e| NodeError::SerialMark(Box::new(e)))?;
    let mut site_config = site.site_config;
    site_config.serial_base = first_serial;
    let port = Arc::new(SerialReservingPort { inner: NodePort(Arc::clone(node)), floor: Mutex::new(serial_floor) });
    let (counters, site_counters) = watch::channel(lineup_site::SiteCounters::default());
    let driver = tokio::spawn(async move {
        catch_up_with_cluster(&caught_up).await;
        let controller = SiteController::new(site_config);
        run_site(controller, ari, events, feed, port, shutdown, counters).await
    });
    Ok(SiteControl { driver, site_counters, edges, stop })
}

/// Hands every applied command to the history outbox and the Redis projection, in order.
/// A thread, not a task: the applied sink is a blocking channel (backpressure on apply).
fn spawn_applied_writer(
    applied: std::sync::mpsc::Receiver<AppliedCommand>,
    history: Arc<HistoryPipeline>,
    projection: Option<Arc<RedisProjection>>,
) {
    let spawned = std::thread::Builder::new().name("lineup-history".into()).spawn(move || {
        while let Ok(command) = applied.recv() {
            if let Some(projection) = &projection {
                projection.submit(command.apply_index, &command.effects);
            }
            if let Err(error) = history.submit(command.apply_index, command.effects) {
                // The outbox is a local file: failing to write it is a disk problem, and the
                // health report shows it; routing goes on.
                tracing::error!(%error, index = command.apply_index, "history outbox write failed");
            }
        }
    });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the history writer thread");
    }
}

/// Mirrors the routing config into SQL (for reports) and rebuilds Redis memberships when
/// the config changes (config commands emit no effects).
fn spawn_config_mirror(node: Arc<Node>, history: Arc<HistoryPipeline>, projection: Option<Arc<RedisProjection>>) {
    tokio::spawn(async move {
        let mut last: Option<RoutingConfigSet> = None;
        let mut interval = tokio::time::interval(Duration::from_millis(CONFIG_MIRROR_CHECK_INTERVAL_MS));
        loop {
            interval.tick().await;
            let (set, mirror) = node.read_stale(|r| (r.config_set(), ConfigMirror::from_routing(r)));
            if last.as_ref() != Some(&set) {
                history.update_config(mirror);
                if let Some(p) = &projection {
                    p.request_rebuild();
                }
                last = Some(set);
            }
        }
    });
}

/// What the ARI probe asks, and where it reports: the health report's edges, and the cluster
/// node (an island without its Asterisk serves nobody, so it does not become one).
struct AriProbe {
    ari: Arc<HttpAri>,
    edges: Arc<EdgeHealth>,
    node: Arc<Node>,
}

fn spawn_ari_probe(
    probe: AriProbe,
    application: Option<lineup_ari::ApplicationName>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(application) = application else { return };
    let AriProbe { ari, edges, node } = probe;
    tokio::spawn(async move {
        let mut pause = Duration::ZERO;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => return,
            }
            let ok = ari.get_application(&application).await.is_ok();
            edges.ari_reachable.store(ok, Ordering::Relaxed);
            node.island().set_ari_connected(ok);
            if !ok {
                edges.ari_probes_failed.fetch_add(1, Ordering::Relaxed);
            }
            // Not reachable yet (at start the application exists only once the events
            // socket has subscribed it): look again soon, so readiness follows within a
            // fraction of a second rather than a whole interval.
            let pause_ms = if ok { ARI_PROBE_INTERVAL_MS } else { ARI_PROBE_RETRY_MS };
            pause = Duration::from_millis(pause_ms);
        }
    });
}

/// Waits (bounded) until this node has applied everything the cluster had committed when
/// it started. A restarted node replays its own log before it hears the leader; site
/// control reconciling against that older view would take a call whose bridge is already
/// up for a waiting one and carry out its offer again, breaking the call. Without a
/// quorum within the bound, site control starts on the local view.
async fn catch_up_with_cluster<T: lineup_cluster::transport::PeerTransport>(node: &ClusterNode<T>) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(SITE_START_CATCH_UP_WAIT_MS);
    for _ in 0..SITE_START_CATCH_UP_ATTEMPTS_MAX {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, node.read_linearizable(|_| ())).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "not caught up with the cluster yet");
                tokio::time::sleep(Duration::from_millis(SITE_START_CATCH_UP_RETRY_MS)).await;
            }
            Err(_) => break,
        }
    }
    tracing::warn!("site control starts before catching up with the cluster (no quorum heard)");
}
