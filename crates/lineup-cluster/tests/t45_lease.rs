//! The majority's lease on each site (island mode §1.3): once the leader's lease on a cut-off
//! site has run out, the next batch it appends marks the site unreachable first, whatever
//! the leader duty (which judges silence from answers, not sends) has done by then.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use lineup_cluster::transport::memory::{Filter, Links};
use lineup_cluster::{StateEvent, StateHook};
use lineup_core::*;
use tokio::time::Instant;

const UNREACHABLE_AFTER_MS: u64 = 1_500;
/// Each way on the leader's link to the site that will be cut: its answers then arrive
/// 70 ms after the request was sent, so the leader duty (silence since the last *answer*)
/// acts at least 70 ms after the lease (since the last accepted *send*) runs out. Under
/// openraft's AppendEntries timeout of one heartbeat (100 ms here).
const ONE_WAY_DELAY_MS: u64 = 35;

/// (node, site) → apply index of the first `SiteUnreachable { site }` that node applied.
type FirstUnreachable = Arc<Mutex<BTreeMap<(u64, u64), u64>>>;

fn record_unreachable(node: u64, seen: FirstUnreachable) -> StateHook {
    StateHook(Arc::new(move |event| {
        if let StateEvent::Applied { apply_index, command, .. } = event {
            if let CommandBody::SiteUnreachable { site } = command.body {
                seen.lock().unwrap().entry((node, site.0)).or_insert(apply_index);
            }
        }
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_write_after_a_cut_sites_lease_ran_out_is_preceded_by_its_site_unreachable() {
    let seen = FirstUnreachable::default();
    let hooks = seen.clone();
    let cluster = memory_cluster("lease", &[1, 2, 3], move |mut config| {
        config.timing.heartbeat_interval_ms = 100;
        config.timing.election_timeout_min_ms = 400;
        config.timing.election_timeout_max_ms = 800;
        config.timing.site_unreachable_after_ms = UNREACHABLE_AFTER_MS;
        config.state_hook = Some(record_unreachable(config.site, hooks.clone()));
        config
    })
    .await;
    let nodes: Vec<_> = cluster.nodes.values().collect();
    let leader_site = await_leader(&nodes).await;
    let leader = cluster.nodes[&leader_site].clone();
    let cut = *cluster.nodes.keys().find(|s| **s != leader_site).unwrap();
    let slow =
        Filter::Delay { links: Links::Between(leader_site, cut), min_ms: ONE_WAY_DELAY_MS, max_ms: ONE_WAY_DELAY_MS };
    cluster.network.add_filter(slow);
    leader.propose(queue_config("sales")).await.unwrap().result.unwrap();
    await_lease_sent_after(&leader, cut, Instant::now()).await;

    let cut_at = Instant::now();
    for filter in Filter::partition(&[cut], &cluster.nodes.keys().copied().filter(|s| *s != cut).collect::<Vec<_>>()) {
        cluster.network.add_filter(filter);
    }
    let (write_index, lapsed_for) = first_write_after_the_lease(&leader, cut, cut_at).await;
    let first_unreachable = seen.lock().unwrap().get(&(leader_site, cut)).copied();
    assert!(
        first_unreachable.is_some_and(|at| at < write_index),
        "write at {write_index}, submitted {lapsed_for:?} after the lease on site {cut} ran out, \
         found site {cut} unreachable first at {first_unreachable:?}"
    );
    assert!(leader.read_stale(|r| r.is_site_unreachable(SiteId(cut))));
}

/// Waits (bounded) until `site` has accepted a request the leader sent after `after`.
async fn await_lease_sent_after<T: lineup_cluster::transport::PeerTransport>(
    leader: &Arc<lineup_cluster::ClusterNode<T>>,
    site: u64,
    after: Instant,
) {
    let deadline = Instant::now() + WAIT;
    while leader.lease_from(site).is_none_or(|lease| lease.sent_at <= after) {
        assert!(Instant::now() < deadline, "site {site} accepted nothing from the leader within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Writes from the leader one after another until one is submitted after the lease on `site`
/// has run out (and every answer in flight at the cut has come back); answers that write's
/// apply index and how long after the lease ran out it was submitted.
async fn first_write_after_the_lease<T: lineup_cluster::transport::PeerTransport>(
    leader: &Arc<lineup_cluster::ClusterNode<T>>,
    site: u64,
    cut_at: Instant,
) -> (u64, Duration) {
    let answers_in_flight_until = cut_at + Duration::from_millis(4 * ONE_WAY_DELAY_MS);
    let deadline = Instant::now() + WAIT;
    for serial in 0.. {
        assert!(Instant::now() < deadline, "no write after the lease on site {site} ran out within {WAIT:?}");
        let submitted_at = Instant::now();
        let lease_ends = leader.lease_from(site).expect("a lease before the cut").sent_at
            + Duration::from_millis(UNREACHABLE_AFTER_MS);
        let committed = leader.propose(queue_config(&format!("q{serial}"))).await.unwrap();
        committed.result.unwrap();
        if submitted_at >= lease_ends && submitted_at >= answers_in_flight_until {
            return (committed.apply_index.expect("committed here"), submitted_at - lease_ends);
        }
    }
    unreachable!()
}
