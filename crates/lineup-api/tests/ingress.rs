//! Ingress steering over REST: the DID map (`/v1/config/ingress`, admin to change) and
//! `GET /v1/ingress` (sites with a SIP target, best first; the static order when the replica
//! may be stale; 404 for an unknown DID), and its counter in `/metrics`.

mod common;

use common::*;
use lineup_api::ingress::IngressDirectory;
use lineup_api::ApiBackend;
use lineup_core::{CommandBody, OperatorId, SiteId};
use serde_json::{json, Value};

fn directory(current: bool) -> IngressDirectory {
    IngressDirectory {
        members: vec![SiteId(1), SiteId(2), SiteId(3)],
        targets: [(1, "sip:10.0.1.10:5060"), (2, "sip:10.0.2.10:5060")]
            .into_iter()
            .map(|(site, uri)| (SiteId(site), uri.to_string()))
            .collect(),
        fallback: vec![SiteId(2), SiteId(1)],
        current,
    }
}

fn sites(answer: &Value) -> Vec<(u64, String)> {
    let list = answer["sites"].as_array().unwrap_or_else(|| panic!("no sites: {answer}"));
    list.iter().map(|s| (s["site"].as_u64().unwrap(), s["reason"].as_str().unwrap().to_string())).collect()
}

async fn rig_with_map() -> Rig {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    rig.backend.set_ingress_directory(directory(true));
    let map = json!({ "dids": [{ "did": "+4930123", "gate": "phone", "prefer_sites": [2] }] });
    let (status, _) = rig.call("put", "/v1/config/ingress", Some(SUPERVISOR), Some(&map.to_string())).await;
    assert_eq!(status, 403, "only an admin changes the map");
    let (status, answer) = rig.call("put", "/v1/config/ingress", Some(ADMIN), Some(&map.to_string())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(rig.get("/v1/config/ingress", VIEWER).await, map);
    rig
}

#[tokio::test]
async fn a_did_is_steered_to_the_site_with_a_free_operator_and_a_site_without_a_target_is_left_out() {
    let rig = rig_with_map().await;
    // Nobody logged in: both targeted sites unstaffed; the DID prefers site 2. Site 3 has no SIP target.
    let answer = rig.get("/v1/ingress?did=%2B4930123", VIEWER).await;
    assert_eq!(sites(&answer), [(2, "unstaffed".to_string()), (1, "unstaffed".to_string())], "{answer}");
    assert_eq!((answer["queue"].clone(), answer["gate"].clone()), (json!("sales"), json!("phone")));
    assert_eq!((answer["fallback"].clone(), answer["ttl_ms"].clone()), (json!(false), json!(1000)));
    assert_eq!(answer["sites"][0]["target"], json!("sip:10.0.2.10:5060"));
    // alice logs in at site 1 and is free: site 1 first.
    rig.login("alice");
    let answer = rig.get("/v1/ingress?did=%2B4930123", VIEWER).await;
    assert_eq!(sites(&answer)[0], (1, "free_operator".to_string()), "{answer}");
    assert_eq!(answer["sites"][0]["free_operators"], json!(1));
    // By queue instead of DID.
    let answer = rig.get("/v1/ingress?queue=sales", VIEWER).await;
    assert_eq!(sites(&answer)[0], (1, "free_operator".to_string()), "{answer}");
    let text = rig.http.get(rig.url("/metrics")).bearer_auth(VIEWER).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"lineup_ingress_decisions_total{site="1",reason="free_operator"} 2"#), "{text}");
    rig.stop().await;
}

#[tokio::test]
async fn a_stale_replica_answers_the_static_order_and_bad_questions_are_refused() {
    let rig = rig_with_map().await;
    rig.login("alice");
    rig.backend.set_ingress_directory(directory(false));
    let answer = rig.get("/v1/ingress?did=%2B4930123", VIEWER).await;
    assert_eq!(answer["fallback"], json!(true));
    assert_eq!(sites(&answer), [(2, "fallback".to_string()), (1, "fallback".to_string())], "{answer}");
    rig.backend.set_ingress_directory(directory(true));

    for (path, status) in [
        ("/v1/ingress?did=%2B4999", 404),
        ("/v1/ingress?queue=nope", 404),
        ("/v1/ingress", 422),
        ("/v1/ingress?did=1&queue=sales", 422),
        ("/v1/ingress?did=1&colour=red", 400),
    ] {
        let (got, body) = rig.call("get", path, Some(VIEWER), None).await;
        assert_eq!(got, status, "{path}: {body}");
    }
    let (status, _) = rig.call("get", "/v1/ingress?did=1", None, None).await;
    assert_eq!(status, 401);
    // A map naming a gate that does not exist is refused and changes nothing.
    let bad = json!({ "dids": [{ "did": "+4930999", "gate": "nope" }] });
    let (status, answer) = rig.call("put", "/v1/config/ingress", Some(ADMIN), Some(&bad.to_string())).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(rig.backend.read(|r| r.ingress_policy().dids.len()), 1);
    // Logged out: site 1 is no longer free.
    let _ = rig.backend.apply(CommandBody::OperatorLogout { operator: OperatorId::new("alice") });
    let answer = rig.get("/v1/ingress?did=%2B4930123", VIEWER).await;
    assert_eq!(sites(&answer)[0].1, "unstaffed", "{answer}");
    rig.stop().await;
}
