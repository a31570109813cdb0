//! The store fed the way the node will feed it: a real (single-site, in-memory network)
//! lineup-cluster node's per-effect stream, reassembled into whole entries with its applied
//! index, into the history pipeline (SQLite + queue_log file) and the Redis projection.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use lineup_cluster::transport::memory::MemoryNetwork;
use lineup_cluster::{ClusterNode, ClusterTiming, NodeConfig};
use lineup_core::{ApplyIndex, CallId, CommandBody, Effect, HungUpBy, OperatorId, QueueConfig, QueueId};
use lineup_store::assembler::ASSEMBLER_OPEN_RECHECK_MS;
use lineup_store::{
    EntryAssembler, HistoryPipeline, HistoryPipelineConfig, HistoryStore, ProjectionConfig, ProjectionState,
    RedisProjection,
};
use tokio::sync::{broadcast, watch};

/// Rounds of the feeding loop at most (one per effect or per re-check).
const FEEDER_MAX_ROUNDS: u32 = 200_000;
/// Attempts at the first proposal while the single node elects itself.
const PROPOSE_ATTEMPTS_MAX: u32 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_nodes_effect_stream_reaches_history_queue_log_and_redis() {
    let dir = TempDir::new();
    let mut config = NodeConfig::new(1, dir.path("node"));
    config.timing = ClusterTiming {
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        tick_interval_ms: 200,
        site_unreachable_after_ms: 3_000,
        site_lost_after_ms: 60_000,
        client_write_timeout_ms: 2_000,
    };
    let network = MemoryNetwork::new(7);
    let node = ClusterNode::start(config, network.transport(1)).await.unwrap();
    node.bootstrap(&BTreeMap::from([(1, "memory:1".to_string())])).await.unwrap();

    let pipeline = Arc::new(
        HistoryPipeline::start(HistoryPipelineConfig {
            outbox_path: dir.path("outbox.redb"),
            database_url: dir.sqlite_url(),
            queue_log_path: Some(dir.path("queue_log")),
        })
        .unwrap(),
    );
    let prefix = format!("{}:", unique_name("lineup_test"));
    let reader = node.clone();
    let projection = Arc::new(
        RedisProjection::start(
            ProjectionConfig { url: REDIS_URL.into(), key_prefix: prefix.clone() },
            Arc::new(move || reader.read_stale(ProjectionState::from_routing)),
        )
        .unwrap(),
    );

    // The node's feeding loop (lineup_store::assembler docs), with the cluster's apply
    // indexes: everything up to the last apply index of the applied Raft entry is complete.
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let mut effects = node.subscribe_effects();
    let (feed_node, feed_pipeline, feed_projection) = (node.clone(), pipeline.clone(), projection.clone());
    let feeder = tokio::spawn(async move {
        let mut assembler = EntryAssembler::new();
        for _ in 0..FEEDER_MAX_ROUNDS {
            tokio::select! {
                received = tokio::time::timeout(Duration::from_millis(ASSEMBLER_OPEN_RECHECK_MS), effects.recv()) => {
                    match received {
                        Ok(Ok(e)) => assembler.push(e.apply_index, e.effect),
                        Ok(Err(broadcast::error::RecvError::Lagged(n))) => panic!("lagged by {n}"),
                        Ok(Err(broadcast::error::RecvError::Closed)) => return,
                        Err(_) => {}
                    }
                }
                _ = stop_rx.changed() => return,
            }
            let applied_through = ApplyIndex::last_of(feed_node.applied_index()).get();
            while let Ok(e) = effects.try_recv() {
                assembler.push(e.apply_index, e.effect);
            }
            for (index, entry) in assembler.take_complete(applied_through) {
                feed_projection.submit(index, &entry);
                feed_pipeline.submit(index, entry).expect("submit");
            }
        }
    });

    // A call through the real cluster: configure, log in, enqueue, connect, complete.
    let mut first = None;
    for _ in 0..PROPOSE_ATTEMPTS_MAX {
        let put = CommandBody::PutQueue(QueueConfig { id: QueueId::new("sales"), ..Default::default() });
        if let Ok(committed) = node.propose(put).await {
            first = Some(committed);
            break;
        }
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
    }
    first.expect("the node leads itself").result.unwrap();
    node.propose(CommandBody::PutOperator(lineup_core::OperatorConfig {
        id: OperatorId::new("alice"),
        site: lineup_core::SiteId(1),
        memberships: [(QueueId::new("sales"), 0)].into_iter().collect(),
        ..Default::default()
    }))
    .await
    .unwrap()
    .result
    .unwrap();
    let login = CommandBody::OperatorLogin {
        operator: OperatorId::new("alice"),
        site: lineup_core::SiteId(1),
        channel: Some("op-alice".into()),
    };
    node.propose(login).await.unwrap().result.unwrap();
    let enqueue = CommandBody::Enqueue(lineup_core::Enqueue {
        call: CallId::new("a-1.1"),
        queue: QueueId::new("sales"),
        gate: None,
        priority: None,
        caller_number: "5551234".into(),
        caller_name: "Caller".into(),
        site: lineup_core::SiteId(1),
        channel: Some("ch-a-1.1".into()),
        skills: BTreeMap::new(),
        callback_number: None,
    });
    let committed = node.propose(enqueue).await.unwrap();
    let offer = committed
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::Offer(o) => Some(o.clone()),
            _ => None,
        })
        .expect("offered to alice");
    let connected =
        CommandBody::Connected { call: offer.call.clone(), operator: offer.operator.clone(), fence: offer.fence };
    node.propose(connected).await.unwrap().result.unwrap();
    let completed = CommandBody::Completed { call: offer.call.clone(), fence: offer.fence, by: HungUpBy::Operator };
    node.propose(completed).await.unwrap().result.unwrap();

    // History: the call row and its queue_log lines, in the table and in the file.
    let store = HistoryStore::open(&dir.sqlite_url()).await.unwrap();
    let calls = poll("the call in history", || async {
        let calls = store.calls().await.ok()?;
        (!calls.is_empty()).then_some(calls)
    })
    .await;
    assert_eq!((calls[0].call_id.as_str(), calls[0].outcome.as_str()), ("a-1.1", "completed"));
    assert_eq!(calls[0].operator.as_deref(), Some("alice"));
    let events: Vec<String> = poll("queue_log table complete", || async {
        let rows = store.queue_log().await.ok()?;
        let events: Vec<String> = rows.into_iter().filter(|r| r.callid == "a-1.1").map(|r| r.event).collect();
        events.contains(&"COMPLETEAGENT".to_string()).then_some(events)
    })
    .await;
    assert_eq!(events, ["ENTERQUEUE", "CONNECT", "COMPLETEAGENT"]);
    let file_events: Vec<String> = poll("queue_log file complete", || async {
        let text = std::fs::read_to_string(dir.path("queue_log")).ok()?;
        let events: Vec<String> =
            text.lines().filter(|l| l.contains("|a-1.1|")).map(|l| l.split('|').nth(4).unwrap().to_string()).collect();
        (events.len() == 3).then_some(events)
    })
    .await;
    assert_eq!(file_events, events);

    // Redis: alice is back in the available set, the call is gone.
    let mut redis = redis::Client::open(REDIS_URL).unwrap().get_multiplexed_async_connection().await.unwrap();
    poll("redis shows alice available and no live call", || {
        let mut redis = redis.clone();
        let prefix = prefix.clone();
        async move {
            let available: Vec<String> = redis::cmd("SMEMBERS")
                .arg(format!("{prefix}queue:sales:operators"))
                .query_async(&mut redis)
                .await
                .ok()?;
            let call: i64 =
                redis::cmd("EXISTS").arg(format!("{prefix}call:a-1.1")).query_async(&mut redis).await.ok()?;
            (available == ["op-alice"] && call == 0).then_some(())
        }
    })
    .await;
    let channel: String =
        redis::cmd("GET").arg(format!("{prefix}operator:alice:channel")).query_async(&mut redis).await.unwrap();
    assert_eq!(channel, "op-alice");
    assert!(!projection.health().degraded);

    let _ = stop_tx.send(true);
    feeder.await.unwrap();
    node.shutdown().await;
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut redis).await.unwrap();
    if !keys.is_empty() {
        redis::cmd("DEL").arg(keys).query_async::<()>(&mut redis).await.unwrap();
    }
    store.close().await;
}
