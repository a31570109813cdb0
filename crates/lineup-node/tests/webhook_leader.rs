//! Webhooks through a real three-node cluster (in-process network): the sender wired as the
//! node wires it (state hook and leader watch) on every node, and exactly one POST per event,
//! from the leader, with the event id that every node computed alike.

mod common;

use common::*;
use lineup_cluster::transport::memory::{MemoryNetwork, MemoryTransport};
use lineup_cluster::{ClusterNode, ClusterTiming, NodeConfig, StateHook};
use lineup_core::*;
use lineup_node::webhook::http::WebhookClient;
use lineup_node::webhook::sign::verify;
use lineup_node::webhook::{wiring, WebhookSender};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "a-shared-secret-for-the-cluster";
const SITES: [u64; 3] = [1, 2, 3];

fn timing() -> ClusterTiming {
    ClusterTiming {
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        tick_interval_ms: 200,
        // Longer than the test: no member is judged unreachable while it runs.
        site_unreachable_after_ms: 30_000,
        site_lost_after_ms: 60_000,
        client_write_timeout_ms: 2_000,
    }
}

struct Member {
    node: Arc<ClusterNode<MemoryTransport>>,
    sender: Arc<WebhookSender>,
}

async fn start_member(network: &MemoryNetwork, dir: &std::path::Path, site: u64) -> Member {
    let client = WebhookClient::new(std::path::Path::new("/nonexistent/lineup-test-ca.pem"));
    let leads = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Handle::current();
    let sender = Arc::new(WebhookSender::new(client, quick_retries(2_000), Arc::clone(&leads), runtime));
    let mut config = NodeConfig::new(site, dir.join(format!("site-{site}")));
    config.timing = timing();
    let hook_sender = Arc::clone(&sender);
    config.state_hook = Some(StateHook(Arc::new(move |event| wiring::hand_applied(&hook_sender, &event))));
    let node = ClusterNode::start(config, network.transport(site)).await.unwrap();
    wiring::spawn_leader_watch(&node, leads);
    Member { node, sender }
}

/// The leader all members agree on (bounded).
async fn leader(members: &BTreeMap<u64, Member>) -> u64 {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    loop {
        let seen: Vec<Option<u64>> =
            members.values().map(|m| m.node.raft().metrics().borrow().current_leader).collect();
        if let Some(Some(leader)) = seen.first().copied() {
            if seen.iter().all(|s| *s == Some(leader)) {
                return leader;
            }
        }
        assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) until every member has applied `what`.
async fn applied_everywhere(members: &BTreeMap<u64, Member>, what: impl Fn(&Routing) -> bool) {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    while !members.values().all(|m| m.node.read_stale(&what)) {
        assert!(Instant::now() < deadline, "not applied on every member");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_sends_and_the_event_id_is_the_clusters() {
    let mut receiver = receiver(vec![], Answer::Status(200), None).await;
    let dir = std::env::temp_dir().join(format!("lineup-webhook-leader-{}", std::process::id()));
    let network = MemoryNetwork::new(7);
    let mut members = BTreeMap::new();
    for site in SITES {
        members.insert(site, start_member(&network, &dir, site).await);
    }
    let addresses: BTreeMap<u64, String> = SITES.iter().map(|s| (*s, format!("memory:{s}"))).collect();
    for member in members.values() {
        member.node.bootstrap(&addresses).await.unwrap();
    }
    let leader = leader(&members).await;
    let follower = &members[SITES.iter().find(|s| **s != leader).unwrap()].node;

    let hook = WebhookConfig {
        id: "ops".into(),
        url: format!("http://{}/lineup", receiver.addr),
        secret: SECRET.into(),
        events: vec![WebhookEventKind::SiteLost],
        enabled: true,
    };
    follower.propose(CommandBody::PutWebhooks(vec![hook])).await.unwrap().result.unwrap();
    let lost = follower.propose(CommandBody::SiteLost { site: SiteId(9) }).await.unwrap();
    lost.result.unwrap();

    let request = next_request(&mut receiver).await;
    assert!(verify(SECRET.as_bytes(), &request.headers["lineup-signature"], &request.body).is_some());
    let event: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!((event["kind"].as_str(), event["site"].as_u64()), (Some("site_lost"), Some(9)));
    let apply_index = lost.apply_index.expect("applied, not read back");
    assert_eq!(event["id"].as_str(), Some(format!("{apply_index}-0").as_str()), "the committed command's index");

    applied_everywhere(&members, |r| r.is_site_lost(SiteId(9))).await;
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    while members[&leader].sender.counts().first().is_none_or(|(_, c)| c.sent == 0) {
        assert!(Instant::now() < deadline, "the leader never counted it sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (site, member) in &members {
        let counted: Vec<u64> = member.sender.counts().iter().map(|(_, c)| c.sent).collect();
        let expected: Vec<u64> = if *site == leader { vec![1] } else { vec![] };
        assert_eq!(counted, expected, "site {site} (leader {leader})");
    }
    assert!(receiver.requests.try_recv().is_err(), "one POST for the cluster");
    for member in members.values() {
        member.node.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(PathBuf::from(&dir));
}
