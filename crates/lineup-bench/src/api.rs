//! `lineup bench api`: `clients` WebSocket clients on `/v1/live` over real loopback, with
//! `waiting_calls` callers waiting, measuring how long an applied effect takes to reach every
//! client (`delta_latency_ms_p50/p99`) and the heap each connection costs.
//!
//! Server and clients share one process (and its allocator), so `memory_per_client_bytes`
//! counts both ends of each connection: an upper bound on the server's cost.
//! Each connection is two file descriptors here; the run refuses to start when the soft
//! `ulimit -n` is too low (raise it with `ulimit -n 4096` in the shell that runs it).

use crate::BenchError;
use futures_util::StreamExt;
use lineup_api::local::LocalBackend;
use lineup_api::{ApiConfig, ApiLimits, ApiToken, Role, SNAPSHOT_ROWS_PER_MESSAGE};
use lineup_core::{
    CallId, CommandBody, Enqueue, OperatorConfig, QueueConfig, QueueId, RoutingConfigSet, SiteId, PRIORITY_NORMAL,
};
use lineup_util::percentile;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Clients connecting at once (stays under the listen backlog).
pub const BENCH_CONNECT_CONCURRENCY: usize = 64;
/// Deadline for every client to connect and receive its snapshot.
pub const BENCH_CONNECT_TIMEOUT_MS: u64 = 120_000;
/// Deadline for every client to receive the last measured delta.
pub const BENCH_DELTAS_TIMEOUT_MS: u64 = 60_000;
/// File descriptors kept free for everything else in the process.
pub const BENCH_SPARE_FDS: u64 = 128;
/// Queues the waiting calls are spread over.
pub const BENCH_QUEUES: usize = 10;
const BENCH_TOKEN: &str = "lineup-bench-viewer-token";
const BENCH_CLOCK_START_MS: u64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
pub struct ApiBenchOptions {
    pub clients: usize,
    pub waiting_calls: usize,
    /// Configured operators (not logged in, so every caller keeps waiting).
    pub operators: usize,
    /// Deltas measured (each a priority change of one waiting call).
    pub deltas: usize,
    /// Gap between measured deltas.
    pub delta_interval_ms: u64,
    /// Live heap bytes of the process (the binary's counting allocator), for memory per client.
    pub allocated_bytes: Option<fn() -> usize>,
}

impl Default for ApiBenchOptions {
    fn default() -> Self {
        Self {
            clients: 1_000,
            waiting_calls: 10_000,
            operators: 200,
            deltas: 200,
            delta_interval_ms: 20,
            allocated_bytes: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiBenchReport {
    pub clients: usize,
    pub waiting_calls: usize,
    pub operators: usize,
    pub deltas: usize,
    /// Latency samples (deltas × clients that received them).
    pub samples: usize,
    pub delta_latency_ms_p50: f64,
    pub delta_latency_ms_p99: f64,
    pub delta_latency_ms_max: f64,
    /// Time for every client to connect and receive its whole snapshot.
    pub connect_all_ms: u64,
    /// One snapshot's size on the wire (all parts).
    pub snapshot_bytes: usize,
    pub snapshot_messages: usize,
    /// Heap growth per connected, idle client, both ends (None without an allocator hook).
    pub memory_per_client_bytes: Option<u64>,
    /// Clients that were sent a fresh snapshot because they fell behind.
    pub resyncs: u64,
    /// (delta, client) pairs never received as a delta (0 unless clients resynced or failed).
    pub deltas_missed: usize,
    /// Clients that failed or did not finish in time.
    pub failed_clients: usize,
    pub fd_soft_limit: Option<u64>,
}

/// Soft limit on open files, from `/proc/self/limits` (Linux; None elsewhere).
pub fn fd_soft_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn setup(options: &ApiBenchOptions) -> Result<LocalBackend, BenchError> {
    let backend = LocalBackend::new(SiteId(1), BENCH_CLOCK_START_MS);
    let queues: Vec<QueueConfig> = (0..BENCH_QUEUES)
        .map(|i| QueueConfig {
            id: QueueId::new(format!("q{i}")),
            name: format!("Queue {i}"),
            max_waiting: u32::try_from(options.waiting_calls).unwrap_or(u32::MAX).max(1),
            ..QueueConfig::default()
        })
        .collect();
    let operators = (0..options.operators)
        .map(|i| OperatorConfig {
            id: lineup_core::OperatorId::new(format!("op{i}")),
            name: format!("Operator {i}"),
            site: SiteId(1 + (i as u64 % 3)),
            memberships: BTreeMap::from([(QueueId::new(format!("q{}", i % BENCH_QUEUES)), 0)]),
            ..OperatorConfig::default()
        })
        .collect();
    let set = RoutingConfigSet { schedules: vec![], queues, gates: vec![], operators };
    let refused = |step: &'static str| move |source| BenchError::Refused { step, source };
    backend.apply(CommandBody::ApplyConfig(Box::new(set))).map_err(refused("config"))?;
    for i in 0..options.waiting_calls {
        let enqueue = Enqueue {
            call: CallId::new(format!("c{i}")),
            queue: QueueId::new(format!("q{}", i % BENCH_QUEUES)),
            gate: None,
            priority: None,
            caller_number: format!("555{i:07}"),
            caller_name: String::new(),
            site: SiteId(1 + (i as u64 % 3)),
            channel: Some(format!("chan-{i}")),
            skills: BTreeMap::new(),
            callback_number: None,
        };
        backend.apply(CommandBody::Enqueue(enqueue)).map_err(refused("enqueue"))?;
    }
    Ok(backend)
}

#[derive(Deserialize)]
struct FrameHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    index: Option<u64>,
}

struct ClientResult {
    samples_ms: Vec<f64>,
    resyncs: u64,
}

/// Sent apply index → when it was applied.
type Sent = Arc<RwLock<HashMap<u64, Instant>>>;

/// The index of the last measured delta, published once every delta is applied.
type LastIndex = tokio::sync::watch::Receiver<Option<u64>>;

/// What one client has seen so far.
#[derive(Default)]
struct ClientProgress {
    snapshots: u64,
    /// The first snapshot's size on the wire (all parts).
    snapshot_bytes: usize,
    samples_ms: Vec<f64>,
    /// The highest apply index seen, as a delta or covered by a snapshot. The last measured
    /// delta can arrive before its index is published on `LastIndex` (the publisher may be
    /// descheduled between the apply and the send): the client finishes on whichever comes
    /// second.
    highest_seen: Option<u64>,
}

impl ClientProgress {
    fn reached(&self, last_index: &mut LastIndex) -> bool {
        matches!((self.highest_seen, *last_index.borrow_and_update()), (Some(h), Some(l)) if h >= l)
    }

    fn finish(self) -> ClientResult {
        ClientResult { samples_ms: self.samples_ms, resyncs: self.snapshots.saturating_sub(1) }
    }

    /// Takes one text frame; answers whether the client has everything it waits for.
    async fn on_text(
        &mut self,
        text: &str,
        sent: &Sent,
        ready: &tokio::sync::mpsc::Sender<usize>,
        last_index: &mut LastIndex,
    ) -> bool {
        let received = Instant::now();
        // Snapshot parts are large and all start with their type: not parsed.
        if text.starts_with("{\"type\":\"snapshot") {
            if self.snapshots == 0 {
                self.snapshot_bytes += text.len();
            }
            if !text.starts_with("{\"type\":\"snapshot_end\"") {
                return false;
            }
            self.snapshots += 1;
            if self.snapshots == 1 {
                let _ = ready.send(self.snapshot_bytes).await;
            }
            // A resync's snapshot may already cover the last measured delta.
            let covered = serde_json::from_str::<FrameHead>(text).ok().and_then(|h| h.index);
            self.highest_seen = self.highest_seen.max(covered);
            return self.reached(last_index);
        }
        let Ok(head) = serde_json::from_str::<FrameHead>(text) else { return false };
        let (Some(index), "call") = (head.index, head.kind) else { return false };
        if let Some(at) = sent.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&index) {
            self.samples_ms.push(received.duration_since(*at).as_secs_f64() * 1000.0);
        }
        self.highest_seen = self.highest_seen.max(Some(index));
        self.reached(last_index)
    }
}

/// One `/v1/live` client: reports its snapshot's size on `ready`, then records each
/// measured delta's latency until it has seen the last one.
async fn client(
    url: String,
    sent: Sent,
    ready: tokio::sync::mpsc::Sender<usize>,
    mut last_index: LastIndex,
) -> Result<ClientResult, String> {
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024).write_buffer_size(0);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut progress = ClientProgress::default();
    let mut watching = true;
    loop {
        let next = if watching {
            tokio::select! {
                message = socket.next() => Some(message),
                changed = last_index.changed() => {
                    watching = changed.is_ok();
                    None
                }
            }
        } else {
            Some(socket.next().await)
        };
        let Some(message) = next else {
            if progress.reached(&mut last_index) {
                return Ok(progress.finish());
            }
            continue;
        };
        let message = match message {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(format!("read: {e}")),
            None => return Err("closed early".into()),
        };
        let Message::Text(text) = message else { continue };
        if progress.on_text(&text, &sent, &ready, &mut last_index).await {
            return Ok(progress.finish());
        }
    }
}

/// The benchmark's clients all come from loopback with one token: the per-address and
/// per-token limits are raised to let every one of them connect at once.
fn bench_limits(clients: usize) -> ApiLimits {
    let clients_u32 = u32::try_from(clients).unwrap_or(u32::MAX).max(1);
    ApiLimits {
        request_burst_per_address: clients_u32.saturating_mul(2),
        request_burst_per_token: clients_u32.saturating_mul(2),
        connections_max: clients.saturating_mul(2).max(1),
        websockets_max: clients.max(1),
        websockets_per_token_max: clients.max(1),
        ..ApiLimits::default()
    }
}

/// Refuses to start when the soft limit on open files is too low for `clients`; answers
/// the limit (None where it cannot be read).
fn check_fd_limit(clients: usize) -> Result<Option<u64>, BenchError> {
    let fd_limit = fd_soft_limit();
    let needed = clients as u64 * 2 + BENCH_SPARE_FDS;
    match fd_limit {
        Some(limit) if limit < needed => Err(BenchError::FdLimit { clients, needed, limit }),
        _ => Ok(fd_limit),
    }
}

/// The API served over `backend` on a loopback port, until `stop` is sent or dropped.
struct Server {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), lineup_api::ApiError>>,
}

async fn start_server(backend: &Arc<LocalBackend>, clients: usize) -> Result<Server, BenchError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = ApiConfig {
        tokens: vec![ApiToken::plain("bench", BENCH_TOKEN, Role::Viewer)],
        // Room for a burst per client; the measured deltas are spaced out.
        limits: bench_limits(clients),
        ..ApiConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(lineup_api::serve(listener, Arc::clone(backend), config, async move {
        let _ = stopped.await;
    }));
    Ok(Server { addr, stop, task })
}

/// Connects every client, at most `BENCH_CONNECT_CONCURRENCY` at once (each holds its
/// permit until it has its snapshot). Answers the client tasks and a snapshot's size.
async fn connect_clients(
    clients: usize,
    url: &str,
    sent: &Sent,
    last_index: &LastIndex,
) -> Result<(Vec<tokio::task::JoinHandle<Result<ClientResult, String>>>, usize), BenchError> {
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<usize>(clients.max(1));
    let permits = Arc::new(tokio::sync::Semaphore::new(BENCH_CONNECT_CONCURRENCY));
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        // The semaphore is never closed, so acquiring only waits.
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { break };
        let (gate_tx, mut gate_rx) = tokio::sync::mpsc::channel::<usize>(1);
        tasks.push(tokio::spawn(client(url.to_string(), Arc::clone(sent), gate_tx, last_index.clone())));
        let ready = ready_tx.clone();
        tokio::spawn(async move {
            if let Some(bytes) = gate_rx.recv().await {
                let _ = ready.send(bytes).await;
            }
            drop(permit);
        });
    }
    drop(ready_tx);
    let mut snapshot_bytes = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(BENCH_CONNECT_TIMEOUT_MS);
    for connected in 0..clients {
        match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            Ok(Some(bytes)) => snapshot_bytes = bytes,
            _ => return Err(BenchError::Connect { connected, clients, timeout_ms: BENCH_CONNECT_TIMEOUT_MS }),
        }
    }
    Ok((tasks, snapshot_bytes))
}

/// Applies the measured deltas (priority changes), spaced out, noting when each was applied.
/// Answers the last one's apply index.
async fn send_deltas(
    backend: &LocalBackend,
    sent: &Sent,
    options: &ApiBenchOptions,
) -> Result<Option<u64>, BenchError> {
    let mut last_index = None;
    for i in 0..options.deltas {
        tokio::time::sleep(Duration::from_millis(options.delta_interval_ms)).await;
        let index = backend.next_apply_index();
        sent.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(index, Instant::now());
        let priority = if i % 2 == 0 { PRIORITY_NORMAL + 1 } else { PRIORITY_NORMAL };
        let call = CallId::new(format!("c{}", i % options.waiting_calls.max(1)));
        backend
            .apply(CommandBody::ChangePriority { call, priority })
            .map_err(|source| BenchError::Refused { step: "priority change", source })?;
        last_index = Some(index);
    }
    Ok(last_index)
}

/// Every client's samples (sorted), resyncs and failures.
struct Gathered {
    samples: Vec<f64>,
    resyncs: u64,
    failed_clients: usize,
}

async fn gather(tasks: Vec<tokio::task::JoinHandle<Result<ClientResult, String>>>, expected: usize) -> Gathered {
    let mut gathered = Gathered { samples: Vec::with_capacity(expected), resyncs: 0, failed_clients: 0 };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(BENCH_DELTAS_TIMEOUT_MS);
    for handle in tasks {
        match tokio::time::timeout_at(deadline, handle).await {
            Ok(Ok(Ok(result))) => {
                gathered.samples.extend(result.samples_ms.iter().copied());
                gathered.resyncs += result.resyncs;
            }
            _ => gathered.failed_clients += 1,
        }
    }
    gathered.samples.sort_by(|a, b| a.total_cmp(b));
    gathered
}

/// Runs the benchmark. Needs a multi-thread tokio runtime.
pub async fn run(options: ApiBenchOptions) -> Result<ApiBenchReport, BenchError> {
    let fd_limit = check_fd_limit(options.clients)?;
    let backend = Arc::new(setup(&options)?);
    let server = start_server(&backend, options.clients).await?;
    let heap_before = options.allocated_bytes.map(|f| f());
    let url = format!("ws://{}/v1/live?token={BENCH_TOKEN}", server.addr);
    let sent: Sent = Arc::new(RwLock::new(HashMap::new()));
    let (last_tx, last_rx) = tokio::sync::watch::channel::<Option<u64>>(None);
    let started = Instant::now();
    let (clients, snapshot_bytes) = connect_clients(options.clients, &url, &sent, &last_rx).await?;
    let connect_all_ms = started.elapsed().as_millis() as u64;
    let heap_after = options.allocated_bytes.map(|f| f());
    let last_index = send_deltas(&backend, &sent, &options).await?;
    let _ = last_tx.send(last_index);
    let expected = options.clients * options.deltas;
    let gathered = gather(clients, expected).await;
    let _ = server.stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server.task).await;
    let memory_per_client_bytes = match (heap_before, heap_after) {
        (Some(before), Some(after)) if options.clients > 0 => {
            Some((after.saturating_sub(before) / options.clients) as u64)
        }
        _ => None,
    };
    let samples = gathered.samples;
    Ok(ApiBenchReport {
        clients: options.clients,
        waiting_calls: options.waiting_calls,
        operators: options.operators,
        deltas: options.deltas,
        samples: samples.len(),
        delta_latency_ms_p50: percentile(&samples, 0.50),
        delta_latency_ms_p99: percentile(&samples, 0.99),
        delta_latency_ms_max: samples.last().copied().unwrap_or(0.0),
        connect_all_ms,
        snapshot_bytes,
        snapshot_messages: 2
            + options.operators.div_ceil(SNAPSHOT_ROWS_PER_MESSAGE)
            + options.waiting_calls.div_ceil(SNAPSHOT_ROWS_PER_MESSAGE),
        memory_per_client_bytes,
        resyncs: gathered.resyncs,
        deltas_missed: expected.saturating_sub(samples.len()),
        failed_clients: gathered.failed_clients,
        fd_soft_limit: fd_limit,
    })
}
