//! Three sites over real QUIC with mutual TLS on loopback.

mod common;

use common::*;
use lineup_core::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_at_a_and_an_operator_at_c_produce_the_same_offer_at_all_three() {
    let cluster = quic_cluster("same-offer", &[1, 2, 3], fast_timing()).await;
    let (a, b, c) = (&cluster.nodes[&1], &cluster.nodes[&2], &cluster.nodes[&3]);
    await_leader(&[a, b, c]).await;
    let mut a_effects = a.subscribe_effects();
    let mut c_effects = c.subscribe_effects();

    // Configuration and the operator's login enter at different sites; every write is
    // forwarded to the leader wherever it is.
    b.propose(queue_config("sales")).await.unwrap().result.unwrap();
    b.propose(operator_config("carol", 3, "sales")).await.unwrap().result.unwrap();
    c.propose(login("carol", 3)).await.unwrap().result.unwrap();
    let committed = a.propose(enqueue("c1", "sales", 1)).await.unwrap();
    committed.result.clone().unwrap();
    let offer = offers(&committed.effects).pop().expect("the enqueue made an offer");
    assert_eq!(
        offer.fence,
        committed.apply_index.unwrap(),
        "the fence is the apply index of the command that made the offer"
    );
    assert_eq!((offer.caller_site, offer.operator_site), (SiteId(1), SiteId(3)));

    let (a_index, a_offer) = next_offer_for(&mut a_effects, "c1").await;
    let (c_index, c_offer) = next_offer_for(&mut c_effects, "c1").await;
    assert_eq!(a_offer, offer);
    assert_eq!(c_offer, offer);
    assert_eq!((a_index, c_index), (offer.fence, offer.fence));

    // Site B holds no leg, so the offer is not on its stream, but its state agrees.
    await_applied_command(b, offer.fence).await;
    let at_b = b.read_stale(|r| r.call_view(&CallId::new("c1"))).unwrap();
    assert_eq!(at_b.status, CallStatus::Offered);
    assert_eq!(at_b.operator, Some(OperatorId::new("carol")));
    // A linearizable read sees at least what was applied before it began. (Not necessarily
    // the same view: on a slow machine the leader's timers may have moved the call on.)
    let stale = b.read_stale(|r| (r.last_applied_index(), r.call_view(&CallId::new("c1"))));
    let linearizable =
        b.read_linearizable(|r| (r.last_applied_index(), r.call_view(&CallId::new("c1")))).await.unwrap();
    assert!(linearizable.0 >= stale.0, "linearizable read at {} before the stale read's {}", linearizable.0, stale.0);
    if linearizable.0 == stale.0 {
        assert_eq!(linearizable.1, stale.1);
    }

    for node in cluster.nodes.values() {
        node.shutdown().await;
    }
}
