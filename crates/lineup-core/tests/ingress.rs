//! Ingress steering in the core: the DID map (`PutIngress`: checked, replaced whole) and the
//! ranking of sites for a new call (free qualified operators, then staffing and waiting
//! load, then unstaffed, then unreachable; preference breaks ties; lost sites absent).

mod common;

use common::*;
use lineup_core::ingress::{DidRoute, IngressPolicy, IngressReason, IngressSite};
use lineup_core::routing::IngressTarget;
use lineup_core::*;

const MEMBERS: [SiteId; 3] = [SITE_A, SITE_B, SITE_C];

fn route(did: &str, gate: &str, prefer: &[SiteId]) -> DidRoute {
    DidRoute { did: did.into(), gate: GateId::new(gate), prefer_sites: prefer.to_vec() }
}

fn policy(routes: Vec<DidRoute>) -> CommandBody {
    CommandBody::PutIngress(IngressPolicy { dids: routes })
}

/// Queue `sales` (gate `web`) and `vip` (gate `gold`, which wants skill `gold` 2).
fn centre() -> Harness {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.gate("web", "sales", None, None);
    h.ok(CommandBody::PutGate(GateConfig {
        id: GateId::new("gold"),
        queue: QueueId::new("sales"),
        required_skills: [(Skill::new("gold"), 2)].into_iter().collect(),
        ..Default::default()
    }));
    h
}

fn ranked(h: &Harness, gate: &str, prefer: &[SiteId]) -> Vec<(SiteId, IngressReason)> {
    sites(h, gate, prefer).iter().map(|s| (s.site, s.reason)).collect()
}

fn sites(h: &Harness, gate: &str, prefer: &[SiteId]) -> Vec<IngressSite> {
    h.routing.ingress_sites(IngressTarget::Gate(&GateId::new(gate)), &MEMBERS, prefer).expect("gate exists")
}

#[test]
fn the_did_map_is_replaced_whole_and_a_bad_one_changes_nothing() {
    let mut h = centre();
    let good = IngressPolicy { dids: vec![route("+4930123", "web", &[SITE_B]), route("0800", "gold", &[])] };
    h.ok(CommandBody::PutIngress(good.clone()));
    assert_eq!(h.routing.ingress_policy(), &good);
    assert_eq!(h.routing.ingress_policy().route("0800").map(|r| r.gate.as_str()), Some("gold"));
    let bad = [
        policy(vec![route("+49-30", "web", &[])]),
        policy(vec![route("123", "web", &[]), route("123", "gold", &[])]),
        policy(vec![route("123", "nope", &[])]),
        policy(vec![route("123", "web", &[SITE_B, SITE_B])]),
        policy(vec![route(&"1".repeat(ingress::DID_MAX_BYTES + 1), "web", &[])]),
    ];
    for body in bad {
        let checked = h.routing.check_command(&body).unwrap_err();
        let (result, effects) = h.apply(body);
        assert_eq!(result.unwrap_err(), checked, "check_command answers what apply refuses");
        assert!(effects.is_empty());
        assert_eq!(h.routing.ingress_policy(), &good);
    }
}

#[test]
fn a_site_with_a_free_qualified_operator_comes_first() {
    let mut h = centre();
    h.operator("ann", SITE_B, &[("sales", 0)], &[]);
    h.operator("bob", SITE_C, &[("sales", 0)], &[("gold", 3)]);
    h.login("ann", SITE_B);
    h.login("bob", SITE_C);
    assert_eq!(
        ranked(&h, "web", &[]),
        [
            (SITE_B, IngressReason::FreeOperator),
            (SITE_C, IngressReason::FreeOperator),
            (SITE_A, IngressReason::Unstaffed)
        ]
    );
    // Only bob has the skill the gold gate needs: ann's site counts as unstaffed for it.
    assert_eq!(
        ranked(&h, "gold", &[]),
        [(SITE_C, IngressReason::FreeOperator), (SITE_A, IngressReason::Unstaffed), (SITE_B, IngressReason::Unstaffed)]
    );
    // The preference breaks the tie between two sites with one free operator each.
    assert_eq!(ranked(&h, "web", &[SITE_C])[0], (SITE_C, IngressReason::FreeOperator));
}

#[test]
fn a_busy_site_ranks_by_its_waiting_load_and_staffing() {
    let mut h = centre();
    for (op, site) in [("ann", SITE_A), ("bob", SITE_B), ("cat", SITE_B)] {
        h.operator(op, site, &[("sales", 0)], &[]);
        h.login(op, site);
    }
    // Three callers at A take ann, bob and cat; two more wait, both entered at A.
    for call in ["c1", "c2", "c3", "c4", "c5"] {
        h.enqueue(call, "sales", SITE_A);
    }
    let all = sites(&h, "web", &[]);
    assert!(all.iter().all(|s| s.free_operators == 0), "{all:?}");
    // B: two staffed, nobody waiting from B; A: one staffed, two waiting from A.
    assert_eq!(
        all.iter().map(|s| (s.site, s.reason)).collect::<Vec<_>>(),
        [(SITE_B, IngressReason::Staffed), (SITE_A, IngressReason::Staffed), (SITE_C, IngressReason::Unstaffed)]
    );
    assert_eq!((all[0].staffed_operators, all[0].waiting_callers, all[0].score), (2, 0, 666));
    assert_eq!((all[1].staffed_operators, all[1].waiting_callers, all[1].score), (1, 2, 250));
    assert!(all[0].expected_wait_ms < all[1].expected_wait_ms);
    assert_eq!(all[2].expected_wait_ms, None);
}

#[test]
fn unreachable_sites_come_last_and_lost_sites_are_left_out() {
    let mut h = centre();
    h.operator("ann", SITE_B, &[("sales", 0)], &[]);
    h.login("ann", SITE_B);
    h.ok(CommandBody::SiteUnreachable { site: SITE_B });
    h.ok(CommandBody::SiteLost { site: SITE_C });
    let all = sites(&h, "web", &[SITE_B]);
    assert_eq!(
        all.iter().map(|s| (s.site, s.reason)).collect::<Vec<_>>(),
        [(SITE_A, IngressReason::Unstaffed), (SITE_B, IngressReason::Unreachable)]
    );
    assert_eq!(all[1].free_operators, 0, "an operator across a silent site is not free to the cluster");
}

#[test]
fn a_queue_can_be_asked_for_without_a_gate_and_an_unknown_one_answers_none() {
    let mut h = centre();
    h.operator("ann", SITE_C, &[("sales", 0)], &[]);
    h.login("ann", SITE_C);
    let by_queue = h.routing.ingress_sites(IngressTarget::Queue(&QueueId::new("sales")), &MEMBERS, &[]).unwrap();
    assert_eq!(by_queue[0].site, SITE_C);
    assert!(h.routing.ingress_sites(IngressTarget::Queue(&QueueId::new("nope")), &MEMBERS, &[]).is_none());
    assert!(h.routing.ingress_sites(IngressTarget::Gate(&GateId::new("nope")), &MEMBERS, &[]).is_none());
}
