//! The Redis projection against the real Redis (own key prefix per test): keys follow the
//! routing state from a rebuild and from effects alike, live events are published, and a
//! Redis outage (a cut loopback relay) degrades the projection without touching submit,
//! then it catches up.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::*;
use futures_util::StreamExt;
use lineup_core::{CallId, CommandBody, Effect, OperatorId, OperatorStatus, RequestedState, Routing};
use lineup_store::projection::{order_score, PROJECTION_CHANNEL_CAPACITY_ENTRIES};
use lineup_store::{ProjectionConfig, ProjectionState, RedisProjection, StateSource};

/// What the node's `read_stale` would return, updated by the test after each apply.
struct Node {
    state: Arc<Mutex<ProjectionState>>,
}

impl Node {
    fn new(routing: &Routing) -> Self {
        Self { state: Arc::new(Mutex::new(ProjectionState::from_routing(routing))) }
    }
    fn source(&self) -> StateSource {
        let state = self.state.clone();
        Arc::new(move || state.lock().unwrap().clone())
    }
    /// Applies like the node does: state first, then the effects go out.
    fn apply(&self, h: &mut Harness, projection: &RedisProjection, body: CommandBody) {
        let before = h.entries.len();
        h.ok(body);
        *self.state.lock().unwrap() = ProjectionState::from_routing(&h.routing);
        for (index, effects) in &h.entries[before..] {
            let started = Instant::now();
            projection.submit(*index, effects);
            assert!(started.elapsed().as_millis() < 50, "submit waited");
        }
    }
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS_URL).unwrap().get_multiplexed_async_connection().await.expect("connect to Redis")
}

/// Every key under the prefix, with a canonical text of its value.
async fn dump(prefix: &str) -> BTreeMap<String, String> {
    let mut con = redis().await;
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut con).await.unwrap();
    let mut out = BTreeMap::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut con).await.unwrap();
        let value = match kind.as_str() {
            "string" => redis::cmd("GET").arg(&key).query_async::<String>(&mut con).await.unwrap(),
            "set" => {
                let members: BTreeSet<String> = redis::cmd("SMEMBERS").arg(&key).query_async(&mut con).await.unwrap();
                members.into_iter().collect::<Vec<_>>().join(",")
            }
            "zset" => {
                let members: Vec<(String, f64)> = redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(&mut con)
                    .await
                    .unwrap();
                members.iter().map(|(m, s)| format!("{m}={s}")).collect::<Vec<_>>().join(",")
            }
            "hash" => {
                let fields: BTreeMap<String, String> =
                    redis::cmd("HGETALL").arg(&key).query_async(&mut con).await.unwrap();
                fields.iter().map(|(f, v)| format!("{f}={v}")).collect::<Vec<_>>().join(",")
            }
            other => panic!("unexpected key type {other} for {key}"),
        };
        out.insert(key.strip_prefix(prefix).unwrap().to_string(), value);
    }
    out
}

async fn clear(prefix: &str) {
    let mut con = redis().await;
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut con).await.unwrap();
    if !keys.is_empty() {
        redis::cmd("DEL").arg(keys).query_async::<()>(&mut con).await.unwrap();
    }
}

/// Checks the seed's keys against the routing state itself (not against the projection's
/// own logic).
fn assert_keys_match_routing(keys: &BTreeMap<String, String>, routing: &Routing) {
    let mut expected_keys = BTreeSet::new();
    for op in routing.operators() {
        let id = op.operator.as_str();
        if op.status == OperatorStatus::Offline {
            assert!(!keys.contains_key(&format!("operator:{id}:queue")), "{id} offline");
            continue;
        }
        let queues: Vec<&str> = op.queues.iter().map(|q| q.as_str()).collect();
        assert_eq!(keys[&format!("operator:{id}:queue")], queues.join(","), "{id}");
        assert_eq!(keys.get(&format!("operator:{id}:channel")), op.channel.as_ref(), "{id}");
        assert!(keys[&format!("operator:{id}")].contains(&format!("status={}", op.status.name())));
        expected_keys.extend([format!("operator:{id}:queue"), format!("operator:{id}")]);
        if op.channel.is_some() {
            expected_keys.insert(format!("operator:{id}:channel"));
        }
    }
    for queue in routing.queue_configs() {
        let q = queue.id.as_str();
        let available: BTreeSet<String> = routing
            .operators()
            .filter(|o| o.status == OperatorStatus::Available && o.queues.contains(&queue.id))
            .map(|o| o.channel.unwrap_or_else(|| o.operator.to_string()))
            .collect();
        let key = format!("queue:{q}:operators");
        assert_eq!(keys.get(&key).cloned().unwrap_or_default(), available.into_iter().collect::<Vec<_>>().join(","));
        if keys.contains_key(&key) {
            expected_keys.insert(key);
        }
        let waiting: Vec<String> = routing
            .waiting_calls()
            .into_iter()
            .filter(|w| w.queue == queue.id)
            .map(|w| format!("{}={}", w.call, order_score(w.priority, w.order_seq)))
            .collect();
        let key = format!("queue:{q}:waiting");
        assert_eq!(keys.get(&key).cloned().unwrap_or_default(), waiting.join(","), "{q} waiting in order");
        if !waiting.is_empty() {
            expected_keys.insert(key);
        }
    }
    for call in routing.calls() {
        let key = format!("call:{}", call.call);
        assert!(keys[&key].contains(&format!("queue={}", call.queue)), "{key}");
        expected_keys.insert(key);
    }
    let actual: BTreeSet<String> = keys.keys().cloned().collect();
    assert_eq!(actual, expected_keys, "no stale keys");
}

/// Three queues, operators at three sites, erin available in an empty queue, one caller
/// waiting with nobody logged in to take it.
fn setup(h: &mut Harness) {
    h.ok(CommandBody::PutQueue(lineup_core::QueueConfig {
        id: lineup_core::QueueId::new("sales"),
        ..Default::default()
    }));
    h.ok(CommandBody::PutQueue(lineup_core::QueueConfig {
        id: lineup_core::QueueId::new("support"),
        ..Default::default()
    }));
    h.operator("alice", SITE_A, &[("sales", 0), ("support", 0)]);
    h.ok(CommandBody::PutQueue(lineup_core::QueueConfig {
        id: lineup_core::QueueId::new("vip"),
        ..Default::default()
    }));
    h.operator("carol", SITE_C, &[("sales", 0)]);
    h.operator("erin", SITE_B, &[("vip", 0)]);
    h.login("erin", SITE_B);
    h.enqueue("a-1.1", "sales", None, SITE_A);
}

async fn poll_projected(projection: &RedisProjection, index: u64) {
    poll("projection caught up", || async {
        let health = projection.health();
        (!health.degraded && health.projected_through >= index).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_follow_the_state_from_a_rebuild_and_from_effects_alike() {
    let prefix = format!("{}:", unique_name("lineup_test"));
    let mut h = Harness::new();
    setup(&mut h);
    let node = Node::new(&h.routing);
    let config = ProjectionConfig { url: REDIS_URL.into(), key_prefix: prefix.clone() };
    let projection = RedisProjection::start(config.clone(), node.source()).unwrap();
    poll_projected(&projection, h.index).await;
    assert_keys_match_routing(&dump(&prefix).await, &h.routing);
    assert_eq!(projection.health().rebuilds, 1);

    // Live changes through effects: callers wait, alice and carol log in and are offered
    // the first callers, erin goes on break, a waiting caller abandons.
    let mut client = redis::Client::open(REDIS_URL).unwrap().get_async_pubsub().await.unwrap();
    client.subscribe(format!("{prefix}events")).await.unwrap();
    let mut messages = client.into_on_message();
    for (call, queue) in [("b-2.1", "support"), ("b-2.2", "sales"), ("c-3.1", "sales")] {
        let before = h.entries.len();
        h.enqueue(call, queue, None, SITE_B);
        *node.state.lock().unwrap() = ProjectionState::from_routing(&h.routing);
        for (index, effects) in &h.entries[before..] {
            projection.submit(*index, effects);
        }
    }
    for (operator, site) in [("alice", SITE_A), ("carol", SITE_C)] {
        let channel = Some(format!("op-{operator}"));
        let login = CommandBody::OperatorLogin { operator: OperatorId::new(operator), site, channel };
        node.apply(&mut h, &projection, login);
    }
    let brk = RequestedState::Break { reason: "lunch".into() };
    node.apply(&mut h, &projection, CommandBody::OperatorState { operator: OperatorId::new("erin"), state: brk });
    node.apply(&mut h, &projection, CommandBody::Abandoned { call: CallId::new("c-3.1") });
    poll_projected(&projection, h.index).await;
    let incremental = dump(&prefix).await;
    assert_keys_match_routing(&incremental, &h.routing);
    assert_eq!(projection.health().rebuilds, 1, "no rebuild needed");
    assert!(incremental["operator:erin"].contains("reason=lunch"));
    assert!(incremental["operator:alice"].contains("status=offered"));
    assert!(incremental["call:b-2.1"].contains("status=waiting"));
    assert!(!incremental.contains_key("call:c-3.1"), "ended calls leave");

    // Live events arrive on the channel as JSON.
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), messages.next()).await.unwrap().unwrap();
    let event: serde_json::Value = serde_json::from_str(&first.get_payload::<String>().unwrap()).unwrap();
    assert_eq!(event["call"]["call"], "b-2.1");
    assert!(event["index"].as_u64().unwrap() > 0);

    // A fresh projection rebuilt from the same state writes exactly the same keys.
    projection.stop().await;
    let rebuilt = RedisProjection::start(config, node.source()).unwrap();
    poll("rebuilt", || async { (rebuilt.health().rebuilds == 1).then_some(()) }).await;
    assert_eq!(dump(&prefix).await, incremental, "effects and rebuild agree");

    // A membership change is config (no effect): the node asks for a rebuild.
    h.operator("alice", SITE_A, &[("support", 0)]);
    *node.state.lock().unwrap() = ProjectionState::from_routing(&h.routing);
    rebuilt.request_rebuild();
    poll("rebuilt after a config change", || async { (rebuilt.health().rebuilds == 2).then_some(()) }).await;
    let keys = dump(&prefix).await;
    assert_eq!(keys["operator:alice:queue"], "support");
    assert_keys_match_routing(&keys, &h.routing);
    rebuilt.stop().await;
    clear(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_degrades_without_blocking_then_catches_up() {
    let prefix = format!("{}:", unique_name("lineup_test"));
    let mut relay = Relay::start("127.0.0.1:6379").await;
    let mut h = Harness::new();
    setup(&mut h);
    let node = Node::new(&h.routing);
    let config = ProjectionConfig { url: format!("redis://127.0.0.1:{}/", relay.port), key_prefix: prefix.clone() };
    let projection = RedisProjection::start(config, node.source()).unwrap();
    poll_projected(&projection, h.index).await;

    // Redis goes away; routing goes on and hands over its effects without waiting.
    relay.cut().await;
    node.apply(
        &mut h,
        &projection,
        CommandBody::OperatorLogin {
            operator: OperatorId::new("carol"),
            site: SITE_C,
            channel: Some("op-carol".into()),
        },
    );
    poll("degraded", || async { projection.health().degraded.then_some(()) }).await;
    for i in 0..(PROJECTION_CHANNEL_CAPACITY_ENTRIES as u64 + 50) {
        let before = h.entries.len();
        h.enqueue(&format!("b-{i}"), "support", None, SITE_B);
        *node.state.lock().unwrap() = ProjectionState::from_routing(&h.routing);
        for (index, effects) in &h.entries[before..] {
            let started = Instant::now();
            projection.submit(*index, effects);
            assert!(started.elapsed().as_millis() < 50, "submit waited on Redis");
        }
    }
    let health = projection.health();
    assert!(health.degraded && health.last_error.is_some(), "{health:?}");
    assert!(health.dropped_entries > 0, "the bounded channel overflowed: {health:?}");

    // Redis is back: a rebuild from the current state catches up.
    relay.restore().await;
    poll_projected(&projection, h.index).await;
    assert_keys_match_routing(&dump(&prefix).await, &h.routing);
    assert!(projection.health().rebuilds >= 2);
    projection.stop().await;
    clear(&prefix).await;
}

#[tokio::test]
async fn no_redis_at_all_leaves_routing_alone() {
    let mut h = Harness::new();
    setup(&mut h);
    let node = Node::new(&h.routing);
    let config = ProjectionConfig {
        url: format!("redis://127.0.0.1:{}/", closed_port().await),
        key_prefix: format!("{}:", unique_name("lineup_test")),
    };
    let projection = RedisProjection::start(config, node.source()).unwrap();
    node.apply(&mut h, &projection, CommandBody::OperatorLogout { operator: OperatorId::new("erin") });
    poll("degraded", || async { projection.health().last_error.is_some().then_some(()) }).await;
    assert!(projection.health().degraded);
    assert!(h.entries.iter().any(|(_, e)| e.iter().any(|e| matches!(e, Effect::OperatorChanged(_)))));
    projection.stop().await;
    let bad = ProjectionConfig { url: "not a url".into(), key_prefix: "x:".into() };
    assert!(RedisProjection::start(bad, node.source()).is_err());
}
