//! Partitions on the in-memory network: a minority commits and offers nothing, the majority
//! goes on, and the minority converges on heal. Symmetric and both one-way cuts.

mod common;

use std::collections::BTreeSet;

use common::*;
use lineup_cluster::transport::memory::Filter;
use lineup_cluster::ClusterError;
use lineup_core::*;

#[derive(Clone, Copy, Debug)]
enum Cut {
    Both,
    /// The isolated site can hear the others but not reach them.
    Outbound,
    /// The isolated site can reach the others but not hear them.
    Inbound,
}

async fn isolated_leader_commits_nothing_and_converges(cut: Cut) {
    let cluster = memory_cluster(&format!("partition-{cut:?}"), &[1, 2, 3], |mut config| {
        config.timing.client_write_timeout_ms = 500;
        // No background Ticks: a Tick committed just before the cut could otherwise be
        // applied at the minority just after it, blurring "applies nothing during the cut".
        config.timing.tick_interval_ms = 3_600_000;
        config
    })
    .await;
    let nodes: Vec<_> = cluster.nodes.values().collect();
    let old_leader = await_leader(&nodes).await;
    let minority = cluster.nodes[&old_leader].clone();
    let majority: Vec<_> = cluster.nodes.iter().filter(|(s, _)| **s != old_leader).map(|(_, n)| n.clone()).collect();
    let others: Vec<u64> = majority.iter().map(|n| n.site()).collect();
    minority.propose(queue_config("sales")).await.unwrap().result.unwrap();
    minority.propose(operator_config("alice", old_leader, "sales")).await.unwrap().result.unwrap();
    minority.propose(operator_config("bob", others[0], "sales")).await.unwrap().result.unwrap();
    minority.propose(login("alice", old_leader)).await.unwrap().result.unwrap();
    let mut minority_effects = minority.subscribe_effects();

    let me = BTreeSet::from([old_leader]);
    let them: BTreeSet<u64> = others.iter().copied().collect();
    match cut {
        Cut::Both => {
            for filter in Filter::partition(&[old_leader], &others) {
                cluster.network.add_filter(filter);
            }
        }
        Cut::Outbound => {
            cluster.network.add_filter(Filter::Cut { from: me, to: them });
        }
        Cut::Inbound => {
            cluster.network.add_filter(Filter::Cut { from: them, to: me });
        }
    }
    let applied_at_cut = minority.applied_index();

    // The minority's write cannot commit: a definite "not leader / no quorum" or an
    // explicitly unknown outcome, never a success.
    let m1_id = minority.next_command_id();
    let refused = minority.submit(Command { id: m1_id, at_ms: 0, body: enqueue("m1", "sales", old_leader) }).await;
    assert!(
        matches!(
            refused,
            Err(ClusterError::OutcomeUnknown { .. } | ClusterError::NoLeader { .. } | ClusterError::Timeout { .. })
        ),
        "{cut:?}: {refused:?}"
    );

    // The majority elects a new leader and goes on: a call there is offered to bob.
    let new_leader = await_leader(&majority.iter().collect::<Vec<_>>()).await;
    assert_ne!(new_leader, old_leader, "{cut:?}");
    majority[1].propose(login("bob", others[0])).await.unwrap().result.unwrap();
    majority[1].propose(enqueue("c1", "sales", others[1])).await.unwrap().result.unwrap();
    // The first caller in line is offered: c1, or m1 if the new leader committed the
    // minority's write whose outcome was unknown (m1 entered first). Read it from the state:
    // an answer recovered by read-back carries no effects.
    let m1_committed = majority[1].read_linearizable(|r| r.result_of(&m1_id).is_some()).await.unwrap();
    let offered_call = CallId::new(if m1_committed { "m1" } else { "c1" });
    let first_in_line = majority[1].read_linearizable(|r| r.call_view(&offered_call)).await.unwrap();
    let offer_fence = first_in_line
        .as_ref()
        .and_then(|v| v.fence)
        .unwrap_or_else(|| panic!("{cut:?}: the majority offers nothing: {first_in_line:?}"));

    match cut {
        // Cut off from hearing the majority: nothing was applied at the minority during the
        // cut, so it offered nothing.
        Cut::Both | Cut::Inbound => {
            assert_eq!(minority.applied_index(), applied_at_cut, "{cut:?}");
            assert!(minority_effects.try_recv().is_err(), "{cut:?}: the minority emitted an effect");
        }
        // Still hearing the majority: the isolated site follows the new leader's log (it
        // applies what the majority committed), but its own write never got out.
        Cut::Outbound => {
            assert!(minority.applied_index() <= majority[1].applied_index());
            assert_eq!(minority.read_stale(|r| r.result_of(&m1_id)), None);
            assert_eq!(majority[1].read_stale(|r| r.result_of(&m1_id)), None);
        }
    }
    if !m1_committed {
        assert!(minority.read_stale(|r| r.call_view(&CallId::new("m1"))).is_none());
    }

    // Heal: the minority converges on the majority's log.
    cluster.network.clear_filters();
    let target = majority[1].applied_index();
    await_applied(&minority, target).await;
    // The majority's call reached the minority (Ticks keep moving it on: an offer to the
    // cut-off operator may have been withdrawn and made again since).
    let at_minority = minority.read_stale(|r| r.call_view(&offered_call)).unwrap();
    assert!(at_minority.fence.is_some_and(|fence| fence >= offer_fence), "{at_minority:?}");
    // A write refused definitely stays out; one whose outcome was reported unknown may be
    // committed by the new leader (it can hold the entry), but then everywhere alike.
    let m1_at_minority = minority.read_stale(|r| r.result_of(&m1_id));
    let m1_at_majority = majority[1].read_stale(|r| r.result_of(&m1_id));
    assert_eq!(m1_at_minority, m1_at_majority, "{cut:?}");
    if !matches!(refused, Err(ClusterError::OutcomeUnknown { .. })) {
        assert!(m1_at_minority.is_none(), "{cut:?}: a definitely refused write was applied");
    }

    for node in cluster.nodes.values() {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symmetric_partition_of_the_leader() {
    isolated_leader_commits_nothing_and_converges(Cut::Both).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_partition_leader_cannot_send() {
    isolated_leader_commits_nothing_and_converges(Cut::Outbound).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_partition_leader_cannot_hear() {
    isolated_leader_commits_nothing_and_converges(Cut::Inbound).await;
}
