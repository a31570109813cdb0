//! `/v1/live` and `/v1/calls/{id}/live`: WebSockets fed by one hub.
//!
//! The hub task turns the backend's applied effects into delta frames, each serialized once
//! and numbered (`seq`), and broadcasts them as shared bytes (`Utf8Bytes` clones are a
//! reference count) to every client through one bounded ring of `live_buffer_frames`. It also
//! pushes queue summaries every `summary_interval_ms` (waits and ETAs move with time) and the
//! cluster status every [`CLUSTER_REFRESH_INTERVAL_MS`].
//!
//! A client first gets a snapshot at apply index `I` (sent in parts so no single message is
//! large), then every delta with an apply index above `I`. A client that falls more than the
//! ring behind (or whose hub fell behind the backend) gets a fresh snapshot instead of a gap.
//!
//! Protocol (server → client, JSON text messages; `now_ms` is the routing clock):
//! - `{"type":"snapshot","seq","index","now_ms","site","queues":[..],"cluster":{..}|null,
//!   "operators_total","calls_total"}` — start of a snapshot: forget everything held.
//! - `{"type":"snapshot_operators","seq","operators":[..]}`, then
//!   `{"type":"snapshot_calls","seq","calls":[..]}` (waiting calls first, in global order),
//!   each repeated as needed, then `{"type":"snapshot_trend","seq","queue","points":[[t,
//!   waiting, abandon_permille|null],..]}` per queue (the last hour, one point per
//!   `TREND_SAMPLE_INTERVAL_MS`, oldest first), then `{"type":"snapshot_end","seq","index"}`.
//! - Deltas, each with `seq` (the hub's frame number: strictly increasing on a connection,
//!   by one between consecutive deltas except where a snapshot covered the frames between)
//!   and `index` (apply index):
//!   `operator` {operator: row}, `call` {call: row}, `call_ended` {record}, `alarm` {queue,
//!   kind, raised, value, threshold}, `queues` {queues} (periodic), `cluster` {cluster},
//!   `today` {today: {from_ms, queues: [{queue, offered, answered, abandoned, service_level,
//!   asa_s, aht_s}], operators: [{operator, calls_taken, talk_s}]}} (periodic, from the history
//!   database since local midnight; the last one is also part of a snapshot).
//! - A call's status `ended` is never sent as `call`: `call_ended` removes it.
//! - Call rows, in snapshots and `call` deltas alike, carry `caller_number` and `caller_name`
//!   (this feed is for viewers and above; a caller's widget gets only its position).

use crate::auth::{CallAccess, Caller, ReadWs, WidgetReadWs};
use crate::backend::{AppliedEffect, ClusterStatus};
use crate::call_metrics::CallMetrics;
use crate::client_limits::{SlotRefused, WebSocketSlot};
use crate::error::{ApiError, WEBSOCKETS_IN_ALL, WEBSOCKETS_OF_TOKEN};
use crate::today::{
    day_start_ms, today_figures, today_request, TodayFigures, TODAY_READ_TIMEOUT_MS, TODAY_REFRESH_INTERVAL_MS,
};
use crate::trend::{QueueTrends, TrendPoint};
use crate::views::{self, CallRow, OperatorRow, PositionView, QueueRow};
use crate::widget_tokens::WidgetTokens;
use crate::{ApiBackend, AppState};
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use lineup_core::{AlarmKind, CallId, CallRecord, Effect, OperatorStatus, QueueId, Routing, SiteId};
use serde::Serialize;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;

/// How often the cluster status is read and pushed.
pub const CLUSTER_REFRESH_INTERVAL_MS: u64 = 2_000;
/// A cluster read slower than this is skipped (the last status stays).
pub const CLUSTER_READ_TIMEOUT_MS: u64 = 1_500;
/// Operators or calls per snapshot part, so no single message (and no per-connection write
/// buffer, which keeps its largest size) is large.
pub const SNAPSHOT_ROWS_PER_MESSAGE: usize = 32;
/// A snapshot is reused by clients connecting at the same apply index and clock within this.
pub const SNAPSHOT_CACHE_MAX_AGE_MS: u64 = 1_000;
/// Server pings this often; a client silent for [`LIVE_CLIENT_SILENCE_MAX_MS`] is dropped.
pub const LIVE_PING_INTERVAL_MS: u64 = 15_000;
pub const LIVE_CLIENT_SILENCE_MAX_MS: u64 = 45_000;
/// A client that takes longer than this to accept one message is dropped.
pub const LIVE_SEND_TIMEOUT_MS: u64 = 10_000;
/// Per-connection read buffer: clients only send pongs and closes.
pub const LIVE_READ_BUFFER_BYTES: usize = 4 * 1024;
/// Frames a widget connection skips per wake-up before re-reading its call's position
/// (bounds the drain loop when frames arrive as fast as they are drained).
pub const WIDGET_DRAIN_MAX_FRAMES: usize = 4_096;
/// Largest message a live client may send.
pub const LIVE_CLIENT_MESSAGE_MAX_BYTES: usize = 4 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// State change at `index`: skipped by clients whose snapshot covers it.
    Delta,
    /// Queue summaries read at `index`: skipped when older than the client's snapshot.
    Summary,
    Cluster,
    /// Today's figures from the history database.
    Today,
    /// Not sent: every client takes a fresh snapshot.
    Resync,
}

#[derive(Debug, Clone)]
pub(crate) struct LiveFrame {
    pub(crate) kind: FrameKind,
    pub(crate) seq: u64,
    pub(crate) index: u64,
    pub(crate) text: Utf8Bytes,
}

/// One snapshot, serialized in parts.
pub(crate) struct Snapshot {
    index: u64,
    /// The last hub frame the snapshot reflects.
    seq: u64,
    now_ms: u64,
    built: Instant,
    parts: Vec<Utf8Bytes>,
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct LiveCounters {
    pub live_clients: AtomicU64,
    pub call_clients: AtomicU64,
    pub frames: AtomicU64,
    pub snapshots_sent: AtomicU64,
    pub resyncs: AtomicU64,
    /// Offers seen on the effect stream (operators entering `offered`) since start.
    pub offers_seen: AtomicU64,
}

pub(crate) struct LiveHub {
    frames: broadcast::Sender<LiveFrame>,
    /// Last seq assigned; publishing holds this lock so seqs reach the ring in order.
    seq: Mutex<u64>,
    snapshot: tokio::sync::Mutex<Option<Arc<Snapshot>>>,
    cluster: Mutex<Option<ClusterStatus>>,
    pub(crate) counters: LiveCounters,
    /// Wait and handle histograms, observed from the effects this hub sees.
    pub(crate) calls: CallMetrics,
    /// The last hour of queue depths and abandon rates, sampled from the summaries.
    trends: Mutex<QueueTrends>,
    /// Today's figures as last read from the history database (None without one).
    today: Mutex<Option<TodayFigures>>,
}

#[derive(Serialize)]
struct Head<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    seq: u64,
    index: u64,
    now_ms: u64,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
struct OperatorBody {
    operator: OperatorRow,
}
#[derive(Serialize)]
struct CallBody {
    call: CallRow,
}
#[derive(Serialize)]
struct EndedBody {
    record: CallRecord,
}
#[derive(Serialize)]
struct AlarmBody {
    queue: QueueId,
    kind: AlarmKind,
    raised: bool,
    value: u64,
    threshold: u64,
}
#[derive(Serialize)]
struct QueuesBody {
    queues: Vec<QueueRow>,
}
#[derive(Serialize)]
struct ClusterBody<'a> {
    cluster: &'a ClusterStatus,
}
#[derive(Serialize)]
struct TodayBody<'a> {
    today: &'a TodayFigures,
}
#[derive(Serialize)]
struct SnapshotBody<'a> {
    site: SiteId,
    queues: &'a [QueueRow],
    cluster: Option<&'a ClusterStatus>,
    operators_total: usize,
    calls_total: usize,
}
#[derive(Serialize)]
struct PartOperators<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    seq: u64,
    operators: &'a [OperatorRow],
}
#[derive(Serialize)]
struct PartCalls<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    seq: u64,
    calls: &'a [CallRow],
}
#[derive(Serialize)]
struct PartTrend<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    seq: u64,
    queue: &'a QueueId,
    points: Vec<TrendPoint>,
}
#[derive(Serialize)]
struct PartEnd {
    #[serde(rename = "type")]
    kind: &'static str,
    seq: u64,
    index: u64,
}

pub(crate) fn to_text<T: Serialize>(value: &T) -> Utf8Bytes {
    // Our own row types always serialize (string keys, no non-finite floats).
    Utf8Bytes::from(
        serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"type\":\"error\",\"error\":\"{e}\"}}")),
    )
}

/// What one effect becomes for live clients, read against the state for names and weights.
enum DeltaBody {
    Operator(OperatorBody),
    Call(CallBody),
    Ended(EndedBody),
    Alarm(AlarmBody),
}

fn delta_of(r: &Routing, effect: Effect) -> Option<(&'static str, DeltaBody)> {
    Some(match effect {
        Effect::OperatorChanged(view) => {
            ("operator", DeltaBody::Operator(OperatorBody { operator: views::operator_row(r, view) }))
        }
        Effect::CallChanged(view) => ("call", DeltaBody::Call(CallBody { call: views::call_row_from_view(r, view) })),
        Effect::CallEnded(record) => ("call_ended", DeltaBody::Ended(EndedBody { record })),
        Effect::Alarm { queue, kind, raised, value, threshold } => {
            ("alarm", DeltaBody::Alarm(AlarmBody { queue, kind, raised, value, threshold }))
        }
        _ => return None,
    })
}

impl LiveHub {
    /// One operator's figures today as last read from the history database (None without
    /// one, before the first read, or for an operator with no row).
    pub(crate) fn today_of_operator(&self, operator: &str) -> Option<crate::today::TodayOperator> {
        let today = self.today.lock().unwrap_or_else(PoisonError::into_inner);
        today.as_ref()?.operators.iter().find(|o| o.operator == operator).cloned()
    }

    pub(crate) fn new(buffer_frames: usize) -> Self {
        let (frames, _) = broadcast::channel(buffer_frames.max(1));
        Self {
            frames,
            seq: Mutex::new(0),
            snapshot: tokio::sync::Mutex::new(None),
            cluster: Mutex::new(None),
            counters: LiveCounters::default(),
            calls: CallMetrics::default(),
            trends: Mutex::new(QueueTrends::default()),
            today: Mutex::new(None),
        }
    }

    fn last_seq(&self) -> u64 {
        *self.seq.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Numbers, serializes and broadcasts one frame.
    fn publish(&self, kind: FrameKind, index: u64, make: impl FnOnce(u64) -> Utf8Bytes) {
        let mut seq = self.seq.lock().unwrap_or_else(PoisonError::into_inner);
        let text = if kind == FrameKind::Resync {
            Utf8Bytes::from_static("")
        } else {
            *seq += 1;
            make(*seq)
        };
        self.counters.frames.fetch_add(1, Ordering::Relaxed);
        // No subscriber is not an error.
        let _ = self.frames.send(LiveFrame { kind, seq: *seq, index, text });
    }

    fn publish_effect<B: ApiBackend>(&self, backend: &B, apply_index: u64, effect: Effect) {
        if let Effect::OperatorChanged(v) = &effect {
            if matches!(v.status, OperatorStatus::Offered { .. }) {
                self.counters.offers_seen.fetch_add(1, Ordering::Relaxed);
            }
        }
        let Some((kind, body, now_ms)) = backend.read(|r| {
            if let Effect::CallEnded(record) = &effect {
                self.calls.observe_end(r, apply_index, record);
            }
            delta_of(r, effect).map(|(k, b)| (k, b, r.now_ms()))
        }) else {
            return;
        };
        self.publish(FrameKind::Delta, apply_index, |seq| match body {
            DeltaBody::Operator(b) => to_text(&Head { kind, seq, index: apply_index, now_ms, body: b }),
            DeltaBody::Call(b) => to_text(&Head { kind, seq, index: apply_index, now_ms, body: b }),
            DeltaBody::Ended(b) => to_text(&Head { kind, seq, index: apply_index, now_ms, body: b }),
            DeltaBody::Alarm(b) => to_text(&Head { kind, seq, index: apply_index, now_ms, body: b }),
        });
    }

    /// A snapshot at the current apply index; reused when nothing was applied since.
    async fn snapshot<B: ApiBackend>(&self, backend: &B) -> Arc<Snapshot> {
        let mut cached = self.snapshot.lock().await;
        let (index, now_ms) = backend.read(|r| (r.last_applied_index(), r.now_ms()));
        if let Some(s) = cached.as_ref() {
            if s.index == index
                && s.now_ms == now_ms
                && s.built.elapsed() < Duration::from_millis(SNAPSHOT_CACHE_MAX_AGE_MS)
            {
                return Arc::clone(s);
            }
        }
        // Read the seq before the state: every frame numbered up to here reflects state the
        // read below already includes.
        let seq = self.last_seq();
        let (index, now_ms, queues, operators, calls) = backend.read(|r| {
            (r.last_applied_index(), r.now_ms(), views::queue_rows(r), views::operator_rows(r), views::call_rows(r))
        });
        let cluster = self.cluster.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let mut parts = Vec::with_capacity(
            2 + operators.len() / SNAPSHOT_ROWS_PER_MESSAGE + calls.len() / SNAPSHOT_ROWS_PER_MESSAGE,
        );
        let body = SnapshotBody {
            site: backend.site(),
            queues: &queues,
            cluster: cluster.as_ref(),
            operators_total: operators.len(),
            calls_total: calls.len(),
        };
        parts.push(to_text(&Head { kind: "snapshot", seq, index, now_ms, body }));
        for chunk in operators.chunks(SNAPSHOT_ROWS_PER_MESSAGE) {
            parts.push(to_text(&PartOperators { kind: "snapshot_operators", seq, operators: chunk }));
        }
        for chunk in calls.chunks(SNAPSHOT_ROWS_PER_MESSAGE) {
            parts.push(to_text(&PartCalls { kind: "snapshot_calls", seq, calls: chunk }));
        }
        for (queue, points) in self.trends.lock().unwrap_or_else(PoisonError::into_inner).each() {
            parts.push(to_text(&PartTrend { kind: "snapshot_trend", seq, queue, points }));
        }
        if let Some(today) = self.today.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            parts.push(to_text(&Head { kind: "today", seq, index, now_ms, body: TodayBody { today } }));
        }
        parts.push(to_text(&PartEnd { kind: "snapshot_end", seq, index }));
        let snapshot = Arc::new(Snapshot { index, seq, now_ms, built: Instant::now(), parts });
        *cached = Some(Arc::clone(&snapshot));
        snapshot
    }
}

/// The names, weights and memberships that rows are built from: a change means every
/// client's rows are stale (e.g. a weight changes the global order), so all resync.
fn directory_fingerprint(r: &Routing) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for q in r.queue_configs() {
        (&q.id, &q.name, q.weight).hash(&mut h);
    }
    for g in r.gate_configs() {
        (&g.id, &g.queue).hash(&mut h);
    }
    for o in r.operator_configs() {
        (&o.id, &o.name, o.site, o.mode as u8, &o.memberships).hash(&mut h);
    }
    h.finish()
}

/// The hub task: effects → deltas, periodic summaries and cluster status. Ends on shutdown
/// or when the backend's stream closes.
pub(crate) async fn run_hub<B: ApiBackend>(
    backend: Arc<B>,
    mut effects: broadcast::Receiver<AppliedEffect>,
    hub: Arc<LiveHub>,
    widget_tokens: Arc<WidgetTokens>,
    summary_interval_ms: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut summary = tokio::time::interval(Duration::from_millis(summary_interval_ms));
    summary.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut directory = backend.read(directory_fingerprint);
    let cluster_task = tokio::spawn(run_cluster_refresh(Arc::clone(&backend), Arc::clone(&hub), shutdown.clone()));
    let today_task = tokio::spawn(run_today_refresh(Arc::clone(&backend), Arc::clone(&hub), shutdown.clone()));
    loop {
        tokio::select! {
            received = effects.recv() => match received {
                Ok(applied) => hub.publish_effect(&*backend, applied.apply_index, applied.effect),
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "live hub fell behind the effect stream; clients resync");
                    hub.publish(FrameKind::Resync, 0, |_| Utf8Bytes::from_static(""));
                }
                Err(RecvError::Closed) => break,
            },
            _ = summary.tick() => {
                // Widget tokens die with their call; sweep them with the summaries.
                backend.read(|r| widget_tokens.retain_live(|c| views::call_is_live(r, c)));
                let (index, now_ms, queues, fingerprint) = backend.read(|r| {
                    (r.last_applied_index(), r.now_ms(), views::queue_rows(r), directory_fingerprint(r))
                });
                hub.trends.lock().unwrap_or_else(PoisonError::into_inner).record(now_ms, &queues);
                if fingerprint != directory {
                    directory = fingerprint;
                    hub.publish(FrameKind::Resync, 0, |_| Utf8Bytes::from_static(""));
                } else {
                    hub.publish(FrameKind::Summary, index, |seq| {
                        to_text(&Head { kind: "queues", seq, index, now_ms, body: QueuesBody { queues } })
                    });
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    cluster_task.abort();
    today_task.abort();
}

/// Reads today's figures from the backend's history every `TODAY_REFRESH_INTERVAL_MS` and
/// pushes them; a backend without history answers an error each time, and nothing is sent.
async fn run_today_refresh<B: ApiBackend>(backend: Arc<B>, hub: Arc<LiveHub>, mut shutdown: watch::Receiver<bool>) {
    let zone = jiff::tz::TimeZone::system();
    let mut every = tokio::time::interval(Duration::from_millis(TODAY_REFRESH_INTERVAL_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        let (index, now_ms) = backend.read(|r| (r.last_applied_index(), r.now_ms()));
        let Some(from_ms) = day_start_ms(now_ms, &zone) else { continue };
        let request = today_request(from_ms, now_ms);
        let read = async {
            let queues = backend.queue_report(request.clone()).await?;
            let operators = backend.operator_report(request).await?;
            Ok::<_, ApiError>(today_figures(from_ms, &queues, &operators))
        };
        let Ok(Ok(today)) = tokio::time::timeout(Duration::from_millis(TODAY_READ_TIMEOUT_MS), read).await else {
            continue;
        };
        // Kept before it is published: a snapshot whose seq covers the frame carries it.
        *hub.today.lock().unwrap_or_else(PoisonError::into_inner) = Some(today.clone());
        hub.publish(FrameKind::Today, index, |seq| {
            to_text(&Head { kind: "today", seq, index, now_ms, body: TodayBody { today: &today } })
        });
    }
}

async fn run_cluster_refresh<B: ApiBackend>(backend: Arc<B>, hub: Arc<LiveHub>, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_millis(CLUSTER_REFRESH_INTERVAL_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        let Ok(status) = tokio::time::timeout(Duration::from_millis(CLUSTER_READ_TIMEOUT_MS), backend.cluster()).await
        else {
            continue;
        };
        let (index, now_ms) = backend.read(|r| (r.last_applied_index(), r.now_ms()));
        hub.publish(FrameKind::Cluster, index, |seq| {
            to_text(&Head { kind: "cluster", seq, index, now_ms, body: ClusterBody { cluster: &status } })
        });
        *hub.cluster.lock().unwrap_or_else(PoisonError::into_inner) = Some(status);
    }
}

/// Keeps a gauge up while a connection lives.
struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    fn up(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Gauge(counter)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a connection ends early (only logged at debug).
struct Gone;

async fn send(socket: &mut WebSocket, message: Message) -> Result<(), Gone> {
    match tokio::time::timeout(Duration::from_millis(LIVE_SEND_TIMEOUT_MS), socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(Gone),
    }
}

pub(crate) fn configure(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(LIVE_READ_BUFFER_BYTES)
        // Written as sent: a buffer would only keep the largest message's capacity around.
        .write_buffer_size(0)
        .max_message_size(LIVE_CLIENT_MESSAGE_MAX_BYTES)
        .max_frame_size(LIVE_CLIENT_MESSAGE_MAX_BYTES)
}

/// A place for one more WebSocket of the caller's token, or the refusal to answer with.
/// A WebSocket slot under the caps: a configured token's own and the total (a call's widget
/// token, `None`, counts towards the total only).
pub(crate) fn websocket_slot<B: ApiBackend>(
    state: &AppState<B>,
    holder: Option<usize>,
) -> Result<WebSocketSlot, ApiError> {
    state.websockets.take(holder).map_err(|refused| match refused {
        SlotRefused::Token { limit } => ApiError::TooManyWebSockets { scope: WEBSOCKETS_OF_TOKEN, limit },
        SlotRefused::Total { limit } => ApiError::TooManyWebSockets { scope: WEBSOCKETS_IN_ALL, limit },
    })
}

pub async fn live<B: ApiBackend>(
    State(state): State<Arc<AppState<B>>>,
    caller: Caller<ReadWs>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let slot = websocket_slot(&state, Some(caller.holder))?;
    Ok(configure(ws).on_upgrade(move |socket| async move {
        live_client(socket, state).await;
        drop(slot);
    }))
}

/// What a client's snapshot covers: frames at or below these are not sent after it.
#[derive(Clone, Copy)]
struct Covered {
    /// Deltas at or below this apply index are in the snapshot.
    index: u64,
    /// Frames numbered at or below this were reflected in the snapshot or already sent:
    /// skipping them keeps each connection's `seq` strictly increasing.
    seq: u64,
}

async fn send_snapshot<B: ApiBackend>(
    socket: &mut WebSocket,
    state: &AppState<B>,
    previous: Option<Covered>,
) -> Result<Covered, Gone> {
    let snapshot = state.hub.snapshot(&*state.backend).await;
    for part in &snapshot.parts {
        send(socket, Message::Text(part.clone())).await?;
    }
    state.hub.counters.snapshots_sent.fetch_add(1, Ordering::Relaxed);
    Ok(Covered { index: snapshot.index, seq: previous.map_or(snapshot.seq, |p| p.seq.max(snapshot.seq)) })
}

/// Handles what a client sent; false when it is gone.
fn client_alive(received: Option<Result<Message, axum::Error>>, last_heard: &mut Instant) -> bool {
    match received {
        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => false,
        // Pongs (and anything else) show the client is there; pings are answered by the
        // WebSocket layer itself.
        Some(Ok(_)) => {
            *last_heard = Instant::now();
            true
        }
    }
}

async fn live_client<B: ApiBackend>(mut socket: WebSocket, state: Arc<AppState<B>>) {
    let hub = &state.hub;
    let _gauge = Gauge::up(&hub.counters.live_clients);
    // Subscribe before the snapshot read, so every frame after it is received.
    let mut frames = hub.frames.subscribe();
    let Ok(mut covered) = send_snapshot(&mut socket, &state, None).await else { return };
    let mut shutdown = state.shutdown.clone();
    let mut ping = tokio::time::interval(Duration::from_millis(LIVE_PING_INTERVAL_MS));
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    loop {
        let result = tokio::select! {
            frame = frames.recv() => match frame {
                Ok(frame) => match frame.kind {
                    FrameKind::Resync => {
                        hub.counters.resyncs.fetch_add(1, Ordering::Relaxed);
                        send_snapshot(&mut socket, &state, Some(covered)).await.map(|c| covered = c)
                    }
                    _ if frame.seq <= covered.seq => Ok(()),
                    FrameKind::Delta if frame.index <= covered.index => Ok(()),
                    FrameKind::Summary if frame.index < covered.index => Ok(()),
                    _ => {
                        covered.seq = frame.seq;
                        send(&mut socket, Message::Text(frame.text)).await
                    }
                },
                Err(RecvError::Lagged(_)) => {
                    hub.counters.resyncs.fetch_add(1, Ordering::Relaxed);
                    send_snapshot(&mut socket, &state, Some(covered)).await.map(|c| covered = c)
                }
                Err(RecvError::Closed) => Err(Gone),
            },
            received = socket.recv() => if client_alive(received, &mut last_heard) { Ok(()) } else { Err(Gone) },
            _ = ping.tick() => {
                if last_heard.elapsed() > Duration::from_millis(LIVE_CLIENT_SILENCE_MAX_MS) {
                    Err(Gone)
                } else {
                    send(&mut socket, Message::Ping(Default::default())).await
                }
            }
            _ = shutdown.changed() => {
                let _ = send(&mut socket, Message::Close(None)).await;
                Err(Gone)
            }
        };
        if result.is_err() {
            return;
        }
    }
}

#[derive(Serialize)]
struct PositionMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    position: &'a PositionView,
}

#[derive(Serialize)]
struct EndedMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    call: &'a CallId,
}

/// `/v1/calls/{id}/live`: `{"type":"position", call, status, queue, position, eta_ms}`
/// whenever any of those change, then `{"type":"ended"}` and a close when the call is gone.
pub async fn call_live<B: ApiBackend>(
    State(state): State<Arc<AppState<B>>>,
    access: CallAccess<WidgetReadWs>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let slot = websocket_slot(&state, access.holder)?;
    Ok(configure(ws).on_upgrade(move |socket| async move {
        call_client(socket, state, access.call).await;
        drop(slot);
    }))
}

async fn call_client<B: ApiBackend>(socket: WebSocket, state: Arc<AppState<B>>, call: CallId) {
    let _gauge = Gauge::up(&state.hub.counters.call_clients);
    let ended = to_text(&EndedMessage { kind: "ended", call: &call });
    let read = |r: &Routing| views::position_view(r, &call);
    let message = |view: &PositionView| to_text(&PositionMessage { kind: "position", position: view });
    follow_view(socket, &state, read, message, ended).await;
}

/// Keeps a client up to date with one view of the routing state (a caller's position, an
/// operator's panel): read again at every hub frame (after draining what queued meanwhile),
/// sent as `message` when it changed; when `read` finds none, `ended` is sent and the
/// socket closed. Pings, the client's silence and shutdown as on `/v1/live`.
pub(crate) async fn follow_view<B: ApiBackend, V: PartialEq>(
    mut socket: WebSocket,
    state: &AppState<B>,
    read: impl Fn(&Routing) -> Option<V>,
    message: impl Fn(&V) -> Utf8Bytes,
    ended: Utf8Bytes,
) {
    let mut frames = state.hub.frames.subscribe();
    let mut shutdown = state.shutdown.clone();
    let mut ping = tokio::time::interval(Duration::from_millis(LIVE_PING_INTERVAL_MS));
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut last_sent: Option<V> = None;
    loop {
        match state.backend.read(&read) {
            None => {
                let _ = send(&mut socket, Message::Text(ended)).await;
                let _ = send(&mut socket, Message::Close(None)).await;
                return;
            }
            Some(view) if last_sent.as_ref() != Some(&view) => {
                if send(&mut socket, Message::Text(message(&view))).await.is_err() {
                    return;
                }
                last_sent = Some(view);
            }
            Some(_) => {}
        }
        let alive = tokio::select! {
            frame = frames.recv() => {
                for _ in 0..WIDGET_DRAIN_MAX_FRAMES {
                    match frames.try_recv() {
                        Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                        Err(_) => break,
                    }
                }
                !matches!(frame, Err(RecvError::Closed))
            }
            received = socket.recv() => client_alive(received, &mut last_heard),
            _ = ping.tick() => {
                last_heard.elapsed() <= Duration::from_millis(LIVE_CLIENT_SILENCE_MAX_MS)
                    && send(&mut socket, Message::Ping(Default::default())).await.is_ok()
            }
            _ = shutdown.changed() => {
                let _ = send(&mut socket, Message::Close(None)).await;
                false
            }
        };
        if !alive {
            return;
        }
    }
}
