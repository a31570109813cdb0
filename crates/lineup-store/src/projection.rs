//! The Redis live projection: per-site, optional, never routing truth (routing decides from
//! the replicated log alone; Redis only mirrors it for other programs to read).
//!
//! Keys, all under a configurable prefix `P`:
//! - `P operator:<id>:queue` — set of the queues a logged-in operator serves;
//! - `P operator:<id>:channel` — the operator's persistent channel, while it has one;
//! - `P operator:<id>` — hash: status, site, channel, since_ms, reason, call;
//! - `P queue:<id>:operators` — set of the available operators' channels (a ring-mode
//!   operator has no standing channel and appears by its id);
//! - `P queue:<id>:waiting` — sorted set of waiting calls (callback promises included, they
//!   keep their place) scored by the global order key: priority ×
//!   [`ORDER_SCORE_PRIORITY_STRIDE`] + order_seq, exact in a double;
//! - `P call:<id>` — hash of a live call (status, queue, gate, priority, order_seq,
//!   entry_site, operator, fence, since_ms), deleted when the call ends;
//! - pub/sub channel `P events` — one JSON message per projected change
//!   (`{"index":N,"operator":{…}}`, `{"index":N,"call":{…}}`, `{"index":N,"alarm":{…}}`,
//!   `{"index":N,"rebuilt":true}`).
//!
//! [`RedisProjection::submit`] never waits: it filters the projection effects and tries a
//! bounded channel ([`PROJECTION_CHANNEL_CAPACITY_ENTRIES`]). The projection task applies
//! each entry in one MULTI/EXEC. On start, when Redis fails, or when the channel was full
//! (changes were dropped), the projection is *degraded* and rebuilds: it reads the current
//! state through the node's [`StateSource`] and replaces every key under the prefix in one
//! MULTI/EXEC (stale keys deleted, so readers never see a half-built state), then skips
//! queued entries at or below the state's log index. Rebuilds retry with jittered backoff
//! until Redis answers; routing never waits for any of it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lineup_core::{CallId, CallStatus, CallView, Effect, OperatorId, OperatorStatus, OperatorView, QueueId, Routing};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, Notify};

use crate::error::StoreError;

/// Entries queued for the projection task; when full, the projection rebuilds instead.
pub const PROJECTION_CHANNEL_CAPACITY_ENTRIES: usize = 1_024;
/// How long one Redis request may take before it counts as failed.
pub const REDIS_RESPONSE_TIMEOUT_MS: u64 = 1_000;
/// How long one connection attempt may take.
pub const REDIS_CONNECT_TIMEOUT_MS: u64 = 1_000;
/// Reconnection attempts the connection manager makes per failed request.
pub const REDIS_RECONNECT_RETRIES: usize = 2;
/// Rebuild retry delays (doubling, jittered).
pub const REBUILD_RETRY_MIN_MS: u64 = 100;
pub const REBUILD_RETRY_MAX_MS: u64 = 5_000;
/// Keys asked for per SCAN round during a rebuild, and most rounds.
pub const SCAN_COUNT_KEYS: u64 = 1_000;
pub const SCAN_MAX_ROUNDS: u32 = 100_000;
/// Score stride between priority classes in `queue:<id>:waiting`: order_seq (a log index)
/// stays below it, and 255 × stride stays below 2^53, so scores are exact doubles.
pub const ORDER_SCORE_PRIORITY_STRIDE: u64 = 1_000_000_000_000;

/// Where the projection goes.
#[derive(Debug, Clone)]
pub struct ProjectionConfig {
    /// `redis://host:port/db`.
    pub url: String,
    /// Prefix of every key and of the events channel (e.g. `lineup:site-1:`).
    pub key_prefix: String,
}

/// What the projection shows, read from the routing state at one apply index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProjectionState {
    pub apply_index: u64,
    pub operators: Vec<OperatorView>,
    pub calls: Vec<CallView>,
}

impl ProjectionState {
    pub fn from_routing(routing: &Routing) -> Self {
        Self {
            apply_index: routing.last_applied_index(),
            operators: routing.operators().collect(),
            calls: routing.calls().collect(),
        }
    }
}

/// Reads the node's current state (e.g. `move || node.read_stale(ProjectionState::from_routing)`).
/// It must return a state at least as new as every entry already submitted.
pub type StateSource = Arc<dyn Fn() -> ProjectionState + Send + Sync>;

/// Health for `/readyz` and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProjectionHealth {
    /// Redis does not show the current state (down, or a rebuild is pending).
    pub degraded: bool,
    /// Last log index reflected in Redis.
    pub projected_through: u64,
    pub rebuilds: u64,
    /// Entries dropped because the channel was full (a rebuild covers them).
    pub dropped_entries: u64,
    pub last_error: Option<String>,
}

struct Shared {
    needs_rebuild: AtomicBool,
    wake: Notify,
    health: Mutex<ProjectionHealth>,
}

impl Shared {
    fn health(&self) -> std::sync::MutexGuard<'_, ProjectionHealth> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running projection.
pub struct RedisProjection {
    tx: mpsc::Sender<(u64, Vec<Effect>)>,
    shared: Arc<Shared>,
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

fn is_projection_effect(e: &Effect) -> bool {
    matches!(e, Effect::OperatorChanged(_) | Effect::CallChanged(_) | Effect::Alarm { .. })
}

impl RedisProjection {
    /// Starts the projection task. Fails only on a malformed URL; an unreachable Redis
    /// leaves the projection degraded and retrying.
    pub fn start(config: ProjectionConfig, source: StateSource) -> Result<Self, StoreError> {
        let client = redis::Client::open(config.url.as_str())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_millis(REDIS_RESPONSE_TIMEOUT_MS)))
            .set_connection_timeout(Some(Duration::from_millis(REDIS_CONNECT_TIMEOUT_MS)))
            .set_number_of_retries(REDIS_RECONNECT_RETRIES)
            .set_max_delay(Duration::from_millis(REBUILD_RETRY_MAX_MS));
        let connection = ConnectionManager::new_lazy_with_config(client, manager_config)?;
        Ok(Self::start_with_connection(connection, config.key_prefix, source, None))
    }

    /// Starts the projection task over any Redis connection: [`RedisProjection::start`]
    /// passes a reconnecting manager; the simulator passes an in-memory Redis that a fault
    /// can take down, and a `jitter_seed` so rebuild retries draw their delays from it
    /// (otherwise they come from the clock's nanoseconds).
    pub fn start_with_connection<C>(
        connection: C,
        key_prefix: String,
        source: StateSource,
        jitter_seed: Option<u64>,
    ) -> Self
    where
        C: ConnectionLike + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(PROJECTION_CHANNEL_CAPACITY_ENTRIES);
        let shared = Arc::new(Shared {
            needs_rebuild: AtomicBool::new(true),
            wake: Notify::new(),
            health: Mutex::new(ProjectionHealth { degraded: true, ..ProjectionHealth::default() }),
        });
        let stop = Arc::new(Notify::new());
        let task = Task {
            connection,
            keys: Keys { prefix: key_prefix },
            source,
            shared: shared.clone(),
            operators: BTreeMap::new(),
            calls: BTreeMap::new(),
            // xorshift must not start at zero.
            jitter_state: jitter_seed.map(|seed| seed | 1),
        };
        let task = tokio::spawn(task.run(rx, stop.clone()));
        Self { tx, shared, stop, task }
    }

    /// Hands over the effects of one applied entry. Never waits.
    pub fn submit(&self, apply_index: u64, effects: &[Effect]) {
        let projected: Vec<Effect> = effects.iter().filter(|e| is_projection_effect(e)).cloned().collect();
        if projected.is_empty() {
            return;
        }
        if self.tx.try_send((apply_index, projected)).is_err() {
            self.shared.health().dropped_entries += 1;
            self.shared.needs_rebuild.store(true, Ordering::Release);
            self.shared.wake.notify_one();
        }
    }

    pub fn health(&self) -> ProjectionHealth {
        self.shared.health().clone()
    }

    /// Rebuilds every key from the state source. Call after a configuration change: config
    /// commands emit no projection effects, yet change memberships (`operator:<id>:queue`).
    pub fn request_rebuild(&self) {
        self.shared.needs_rebuild.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }

    pub async fn stop(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

/// Key names under the prefix.
struct Keys {
    prefix: String,
}

impl Keys {
    fn operator(&self, id: &OperatorId) -> String {
        format!("{}operator:{id}", self.prefix)
    }
    fn operator_queue(&self, id: &OperatorId) -> String {
        format!("{}operator:{id}:queue", self.prefix)
    }
    fn operator_channel(&self, id: &OperatorId) -> String {
        format!("{}operator:{id}:channel", self.prefix)
    }
    fn queue_operators(&self, id: &QueueId) -> String {
        format!("{}queue:{id}:operators", self.prefix)
    }
    fn queue_waiting(&self, id: &QueueId) -> String {
        format!("{}queue:{id}:waiting", self.prefix)
    }
    fn call(&self, id: &CallId) -> String {
        format!("{}call:{id}", self.prefix)
    }
    fn events(&self) -> String {
        format!("{}events", self.prefix)
    }
    /// SCAN pattern for every key under the prefix (glob characters escaped).
    fn pattern(&self) -> String {
        let mut p = String::with_capacity(self.prefix.len() + 1);
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push('*');
        p
    }
}

/// What the projection last wrote for an operator (to undo set memberships).
struct ProjectedOperator {
    member: String,
    queues: Vec<QueueId>,
    available: bool,
}

fn status_name(s: CallStatus) -> &'static str {
    match s {
        CallStatus::Waiting => "waiting",
        CallStatus::Offered => "offered",
        CallStatus::Connected => "connected",
        CallStatus::CallbackWaiting => "callback_waiting",
        CallStatus::CallbackOffered => "callback_offered",
        CallStatus::CallbackConnected => "callback_connected",
        CallStatus::Ended => "ended",
    }
}

fn is_waiting(s: CallStatus) -> bool {
    matches!(s, CallStatus::Waiting | CallStatus::CallbackWaiting)
}

/// The `queue:<id>:waiting` score of a call.
pub fn order_score(priority: u8, order_seq: u64) -> f64 {
    (u64::from(priority) * ORDER_SCORE_PRIORITY_STRIDE + order_seq.min(ORDER_SCORE_PRIORITY_STRIDE - 1)) as f64
}

struct Task<C> {
    connection: C,
    keys: Keys,
    source: StateSource,
    shared: Arc<Shared>,
    operators: BTreeMap<OperatorId, ProjectedOperator>,
    calls: BTreeMap<CallId, QueueId>,
    /// Seeded retry jitter (the simulator); None: from the clock.
    jitter_state: Option<u64>,
}

impl<C: ConnectionLike + Send + 'static> Task<C> {
    fn retry_delay(&mut self, base_ms: u64) -> Duration {
        match self.jitter_state.as_mut() {
            Some(state) => crate::outbox::seeded_jitter(state, base_ms),
            None => crate::outbox::jittered(base_ms),
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<(u64, Vec<Effect>)>, stop: Arc<Notify>) {
        let mut retry_ms = REBUILD_RETRY_MIN_MS;
        loop {
            if self.shared.needs_rebuild.swap(false, Ordering::AcqRel) {
                match self.rebuild().await {
                    Ok(index) => {
                        retry_ms = REBUILD_RETRY_MIN_MS;
                        let mut health = self.shared.health();
                        health.degraded = false;
                        health.projected_through = index;
                        health.rebuilds += 1;
                        health.last_error = None;
                    }
                    Err(e) => {
                        self.failed(&e);
                        tokio::select! {
                            _ = tokio::time::sleep(self.retry_delay(retry_ms)) => {}
                            _ = stop.notified() => return,
                        }
                        retry_ms = (retry_ms * 2).min(REBUILD_RETRY_MAX_MS);
                        continue;
                    }
                }
            }
            tokio::select! {
                received = rx.recv() => {
                    let Some((index, effects)) = received else { return };
                    if index <= self.shared.health().projected_through {
                        continue;
                    }
                    match self.apply(index, &effects).await {
                        Ok(()) => self.shared.health().projected_through = index,
                        Err(e) => self.failed(&e),
                    }
                }
                _ = self.shared.wake.notified() => {}
                _ = stop.notified() => return,
            }
        }
    }

    fn failed(&self, e: &StoreError) {
        tracing::warn!(error = %e, "redis projection degraded; will rebuild");
        self.shared.needs_rebuild.store(true, Ordering::Release);
        let mut health = self.shared.health();
        health.degraded = true;
        health.last_error = Some(e.to_string());
    }

    fn publish(&self, pipe: &mut redis::Pipeline, message: serde_json::Value) {
        pipe.cmd("PUBLISH").arg(self.keys.events()).arg(message.to_string()).ignore();
    }

    /// Writes an operator's keys and fixes the queue sets it leaves or joins.
    fn project_operator(&mut self, pipe: &mut redis::Pipeline, v: &OperatorView) {
        let k = &self.keys;
        let member = v.channel.clone().unwrap_or_else(|| v.operator.to_string());
        if let Some(before) = self.operators.get(&v.operator) {
            if before.available {
                for q in &before.queues {
                    pipe.cmd("SREM").arg(k.queue_operators(q)).arg(&before.member).ignore();
                }
            }
        }
        let available = matches!(v.status, OperatorStatus::Available);
        if available {
            for q in &v.queues {
                pipe.cmd("SADD").arg(k.queue_operators(q)).arg(&member).ignore();
            }
        }
        pipe.cmd("DEL")
            .arg(k.operator(&v.operator))
            .arg(k.operator_queue(&v.operator))
            .arg(k.operator_channel(&v.operator))
            .ignore();
        if !matches!(v.status, OperatorStatus::Offline) {
            if !v.queues.is_empty() {
                pipe.cmd("SADD")
                    .arg(k.operator_queue(&v.operator))
                    .arg(v.queues.iter().map(|q| q.as_str()).collect::<Vec<_>>())
                    .ignore();
            }
            if let Some(channel) = &v.channel {
                pipe.cmd("SET").arg(k.operator_channel(&v.operator)).arg(channel).ignore();
            }
            let (reason, call) = match &v.status {
                OperatorStatus::Break { reason } => (reason.clone(), String::new()),
                OperatorStatus::Offered { call, .. } | OperatorStatus::Busy { call, .. } => {
                    (String::new(), call.to_string())
                }
                _ => (String::new(), String::new()),
            };
            let fields: Vec<(&str, String)> = vec![
                ("status", v.status.name().to_string()),
                ("site", v.site.map_or(String::new(), |s| s.0.to_string())),
                ("channel", v.channel.clone().unwrap_or_default()),
                ("since_ms", v.since_ms.to_string()),
                ("reason", reason),
                ("call", call),
            ];
            pipe.cmd("HSET").arg(k.operator(&v.operator)).arg(fields).ignore();
        }
        if matches!(v.status, OperatorStatus::Offline) {
            self.operators.remove(&v.operator);
        } else {
            self.operators
                .insert(v.operator.clone(), ProjectedOperator { member, queues: v.queues.clone(), available });
        }
    }

    fn project_call(&mut self, pipe: &mut redis::Pipeline, c: &CallView) {
        let k = &self.keys;
        if let Some(before) = self.calls.get(&c.call) {
            pipe.cmd("ZREM").arg(k.queue_waiting(before)).arg(c.call.as_str()).ignore();
        }
        pipe.cmd("DEL").arg(k.call(&c.call)).ignore();
        if c.status == CallStatus::Ended {
            self.calls.remove(&c.call);
            return;
        }
        if is_waiting(c.status) {
            pipe.cmd("ZADD")
                .arg(k.queue_waiting(&c.queue))
                .arg(order_score(c.priority, c.order_seq))
                .arg(c.call.as_str())
                .ignore();
        }
        let fields: Vec<(&str, String)> = vec![
            ("status", status_name(c.status).to_string()),
            ("queue", c.queue.to_string()),
            ("gate", c.gate.as_ref().map_or(String::new(), ToString::to_string)),
            ("priority", c.priority.to_string()),
            ("order_seq", c.order_seq.to_string()),
            ("entry_site", c.entry_site.0.to_string()),
            ("operator", c.operator.as_ref().map_or(String::new(), ToString::to_string)),
            ("fence", c.fence.map_or(String::new(), |f| f.to_string())),
            ("since_ms", c.since_ms.to_string()),
        ];
        pipe.cmd("HSET").arg(k.call(&c.call)).arg(fields).ignore();
        self.calls.insert(c.call.clone(), c.queue.clone());
    }

    async fn apply(&mut self, index: u64, effects: &[Effect]) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for effect in effects {
            match effect {
                Effect::OperatorChanged(v) => {
                    self.project_operator(&mut pipe, v);
                    self.publish(&mut pipe, serde_json::json!({ "index": index, "operator": v }));
                }
                Effect::CallChanged(c) => {
                    self.project_call(&mut pipe, c);
                    self.publish(&mut pipe, serde_json::json!({ "index": index, "call": c }));
                }
                Effect::Alarm { queue, kind, raised, value, threshold } => {
                    let alarm = serde_json::json!({
                        "queue": queue, "kind": kind, "raised": raised, "value": value, "threshold": threshold
                    });
                    self.publish(&mut pipe, serde_json::json!({ "index": index, "alarm": alarm }));
                }
                _ => {}
            }
        }
        pipe.query_async::<()>(&mut self.connection).await?;
        Ok(())
    }

    /// Replaces everything under the prefix with the current state; returns its log index.
    async fn rebuild(&mut self) -> Result<u64, StoreError> {
        let mut existing: BTreeSet<String> = BTreeSet::new();
        let mut cursor: u64 = 0;
        for _ in 0..SCAN_MAX_ROUNDS {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(self.keys.pattern())
                .arg("COUNT")
                .arg(SCAN_COUNT_KEYS)
                .query_async(&mut self.connection)
                .await?;
            existing.extend(keys);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let state = (self.source)();
        self.operators.clear();
        self.calls.clear();
        let mut pipe = redis::pipe();
        pipe.atomic();
        if !existing.is_empty() {
            pipe.cmd("DEL").arg(existing.into_iter().collect::<Vec<_>>()).ignore();
        }
        for v in &state.operators {
            self.project_operator(&mut pipe, v);
        }
        for c in &state.calls {
            self.project_call(&mut pipe, c);
        }
        self.publish(&mut pipe, serde_json::json!({ "index": state.apply_index, "rebuilt": true }));
        pipe.query_async::<()>(&mut self.connection).await?;
        Ok(state.apply_index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_scores_sort_by_priority_then_arrival_and_stay_exact() {
        assert!(order_score(0, 999_999) < order_score(5, 1));
        assert!(order_score(5, 1) < order_score(5, 2));
        let top = order_score(u8::MAX, ORDER_SCORE_PRIORITY_STRIDE - 1);
        assert!(top < 2f64.powi(53));
        assert_eq!(top as u64, u64::from(u8::MAX) * ORDER_SCORE_PRIORITY_STRIDE + ORDER_SCORE_PRIORITY_STRIDE - 1);
    }

    #[test]
    fn scan_pattern_escapes_glob_characters_of_the_prefix() {
        assert_eq!(Keys { prefix: "lineup:a*[b]?:".into() }.pattern(), "lineup:a\\*\\[b\\]\\?:*");
    }
}
