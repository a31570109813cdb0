//! `lineup bench api`: `clients` WebSocket clients on `/v1/live` over real loopback, with
//! `waiting_calls` callers waiting, measuring how long an applied effect takes to reach every
//! client (`delta_latency_ms_p50/p99`) and the heap each connection costs.
//!
//! Server and clients share one process (and its allocator), so `memory_per_client_bytes`
//! counts both ends of each connection: an upper bound on the server's cost.
//! Each connection is two file descriptors here; the run refuses to start when the soft
//! `ulimit -n` is too low (raise it with `ulimit -n 4096` in the shell that runs it).

use crate::config::{ApiConfig, ApiToken, Role};
use crate::error::ApiError;
use crate::local::LocalBackend;
use futures_util::StreamExt;
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

fn setup(options: &ApiBenchOptions) -> Result<LocalBackend, ApiError> {
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
    let refused = |what: &str, e: lineup_core::CoreError| ApiError::Bench(format!("{what}: {e}"));
    backend.apply(CommandBody::ApplyConfig(Box::new(set))).map_err(|e| refused("config", e))?;
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
        backend.apply(CommandBody::Enqueue(enqueue)).map_err(|e| refused("enqueue", e))?;
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

async fn client(
    url: String,
    sent: Sent,
    ready: tokio::sync::mpsc::Sender<usize>,
    mut last_index: tokio::sync::watch::Receiver<Option<u64>>,
) -> Result<ClientResult, String> {
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024).write_buffer_size(0);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut snapshots = 0u64;
    let mut snapshot_bytes = 0usize;
    let mut samples_ms = Vec::new();
    // The last measured delta can arrive before its index is published on `last_index`
    // (the publisher may be descheduled between the apply and the send): remember the
    // highest delta seen and finish on whichever comes second.
    let mut highest_seen: Option<u64> = None;
    let mut watching = true;
    let reached = |highest: Option<u64>, last: Option<u64>| matches!((highest, last), (Some(h), Some(l)) if h >= l);
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
            if reached(highest_seen, *last_index.borrow_and_update()) {
                return Ok(ClientResult { samples_ms, resyncs: snapshots.saturating_sub(1) });
            }
            continue;
        };
        let message = match message {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(format!("read: {e}")),
            None => return Err("closed early".into()),
        };
        let Message::Text(text) = message else { continue };
        let received = Instant::now();
        // Snapshot parts are large and all start with their type: not parsed.
        if text.starts_with("{\"type\":\"snapshot") {
            if snapshots == 0 {
                snapshot_bytes += text.len();
            }
            if text.starts_with("{\"type\":\"snapshot_end\"") {
                snapshots += 1;
                if snapshots == 1 {
                    let _ = ready.send(snapshot_bytes).await;
                }
                // A resync's snapshot may already cover the last measured delta.
                let covered = serde_json::from_str::<FrameHead>(&text).ok().and_then(|h| h.index);
                highest_seen = highest_seen.max(covered);
                if reached(highest_seen, *last_index.borrow_and_update()) {
                    return Ok(ClientResult { samples_ms, resyncs: snapshots - 1 });
                }
            }
            continue;
        }
        let Ok(head) = serde_json::from_str::<FrameHead>(&text) else { continue };
        let (Some(index), "call") = (head.index, head.kind) else { continue };
        if let Some(at) = sent.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&index) {
            samples_ms.push(received.duration_since(*at).as_secs_f64() * 1000.0);
        }
        highest_seen = highest_seen.max(Some(index));
        if reached(highest_seen, *last_index.borrow_and_update()) {
            return Ok(ClientResult { samples_ms, resyncs: snapshots.saturating_sub(1) });
        }
    }
}

/// Runs the benchmark. Needs a multi-thread tokio runtime.
/// The benchmark's clients all come from loopback with one token: the per-address and
/// per-token limits are raised to let every one of them connect at once.
fn bench_limits(clients: usize) -> crate::ApiLimits {
    let clients_u32 = u32::try_from(clients).unwrap_or(u32::MAX).max(1);
    crate::ApiLimits {
        request_burst_per_address: clients_u32.saturating_mul(2),
        request_burst_per_token: clients_u32.saturating_mul(2),
        connections_max: clients.saturating_mul(2).max(1),
        websockets_max: clients.max(1),
        websockets_per_token_max: clients.max(1),
        ..crate::ApiLimits::default()
    }
}

pub async fn run(options: ApiBenchOptions) -> Result<ApiBenchReport, ApiError> {
    let fd_limit = fd_soft_limit();
    let needed = options.clients as u64 * 2 + BENCH_SPARE_FDS;
    if fd_limit.is_some_and(|limit| limit < needed) {
        return Err(ApiError::Bench(format!(
            "{} clients need about {needed} file descriptors but the soft limit is {}; run `ulimit -n {needed}` first",
            options.clients,
            fd_limit.unwrap_or(0)
        )));
    }
    let backend = Arc::new(setup(&options)?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = ApiConfig {
        tokens: vec![ApiToken::plain("bench", BENCH_TOKEN, Role::Viewer)],
        // Room for a burst per client; the measured deltas are spaced out.
        limits: bench_limits(options.clients),
        ..ApiConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::serve(listener, Arc::clone(&backend), config, async move {
        let _ = stopped.await;
    }));

    let heap_before = options.allocated_bytes.map(|f| f());
    let url = format!("ws://{addr}/v1/live?token={BENCH_TOKEN}");
    let sent: Sent = Arc::new(RwLock::new(HashMap::new()));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<usize>(options.clients.max(1));
    let (last_tx, last_rx) = tokio::sync::watch::channel::<Option<u64>>(None);
    let started = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(BENCH_CONNECT_CONCURRENCY));
    let mut clients = Vec::with_capacity(options.clients);
    for _ in 0..options.clients {
        let permit = Arc::clone(&permits).acquire_owned().await.map_err(|e| ApiError::Bench(e.to_string()))?;
        // The permit is held until this client has its snapshot.
        let (gate_tx, gate_rx) = tokio::sync::mpsc::channel::<usize>(1);
        clients.push(tokio::spawn(client(url.clone(), Arc::clone(&sent), gate_tx, last_rx.clone())));
        let ready = ready_tx.clone();
        tokio::spawn(async move {
            let mut gate_rx = gate_rx;
            if let Some(bytes) = gate_rx.recv().await {
                let _ = ready.send(bytes).await;
            }
            drop(permit);
        });
    }
    drop(ready_tx);
    let mut snapshot_bytes = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(BENCH_CONNECT_TIMEOUT_MS);
    for connected in 0..options.clients {
        match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            Ok(Some(bytes)) => snapshot_bytes = bytes,
            _ => {
                return Err(ApiError::Bench(format!(
                    "only {connected} of {} clients had their snapshot after {BENCH_CONNECT_TIMEOUT_MS} ms",
                    options.clients
                )))
            }
        }
    }
    let connect_all_ms = started.elapsed().as_millis() as u64;
    let heap_after = options.allocated_bytes.map(|f| f());

    let mut last_index = None;
    for i in 0..options.deltas {
        tokio::time::sleep(Duration::from_millis(options.delta_interval_ms)).await;
        let index = backend.next_apply_index();
        sent.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(index, Instant::now());
        let priority = if i % 2 == 0 { PRIORITY_NORMAL + 1 } else { PRIORITY_NORMAL };
        backend
            .apply(CommandBody::ChangePriority {
                call: CallId::new(format!("c{}", i % options.waiting_calls.max(1))),
                priority,
            })
            .map_err(|e| ApiError::Bench(format!("priority change: {e}")))?;
        last_index = Some(index);
    }
    let _ = last_tx.send(last_index);

    let mut samples = Vec::with_capacity(options.clients * options.deltas);
    let mut resyncs = 0;
    let mut failed_clients = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(BENCH_DELTAS_TIMEOUT_MS);
    for handle in clients {
        match tokio::time::timeout_at(deadline, handle).await {
            Ok(Ok(Ok(result))) => {
                samples.extend(result.samples_ms.iter().copied());
                resyncs += result.resyncs;
            }
            _ => failed_clients += 1,
        }
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;

    samples.sort_by(|a, b| a.total_cmp(b));
    let expected = options.clients * options.deltas;
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
            + options.operators.div_ceil(crate::live::SNAPSHOT_ROWS_PER_MESSAGE)
            + options.waiting_calls.div_ceil(crate::live::SNAPSHOT_ROWS_PER_MESSAGE),
        memory_per_client_bytes: match (heap_before, heap_after) {
            (Some(before), Some(after)) if options.clients > 0 => {
                Some((after.saturating_sub(before) / options.clients) as u64)
            }
            _ => None,
        },
        resyncs,
        deltas_missed: expected.saturating_sub(samples.len()),
        failed_clients,
        fd_soft_limit: fd_limit,
    })
}
