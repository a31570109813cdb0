//! What the harness reads from the nodes' APIs: readiness, the leader, the leader's view of
//! each member (for "heard again"), operator states.

use crate::setup::{ADMIN_TOKEN, VIEWER_TOKEN};
use lineup_core::ApplyIndex;
use serde_json::Value;
use std::time::Duration;

/// Bound on one API request.
pub const API_REQUEST_TIMEOUT_MS: u64 = 2_000;

#[derive(Clone)]
pub struct NodeApi {
    http: reqwest::Client,
}

impl NodeApi {
    pub fn new() -> anyhow::Result<NodeApi> {
        let http = reqwest::Client::builder().timeout(Duration::from_millis(API_REQUEST_TIMEOUT_MS)).build()?;
        Ok(NodeApi { http })
    }

    pub async fn ready(&self, api: &str) -> bool {
        matches!(self.http.get(format!("{api}/readyz")).send().await, Ok(r) if r.status().is_success())
    }

    async fn get(&self, api: &str, path: &str) -> Option<Value> {
        let response = self.http.get(format!("{api}{path}")).bearer_auth(VIEWER_TOKEN).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// POST `path` with the admin token and no body; the answer's status.
    pub async fn post_admin(&self, api: &str, path: &str) -> Option<u16> {
        let response = self.http.post(format!("{api}{path}")).bearer_auth(ADMIN_TOKEN).send().await.ok()?;
        Some(response.status().as_u16())
    }

    /// `POST /v1/cluster/members` (admin) adding `site` at `address`: the answer's status, or
    /// None when none came within `timeout_ms` (the node died, or the change took longer).
    pub async fn add_member(&self, api: &str, site: u64, address: &str, timeout_ms: u64) -> Option<u16> {
        let body = serde_json::json!({ "site": site, "address": address });
        let request = self.http.post(format!("{api}/v1/cluster/members")).bearer_auth(ADMIN_TOKEN).json(&body);
        let response = request.timeout(Duration::from_millis(timeout_ms)).send().await.ok()?;
        Some(response.status().as_u16())
    }

    /// `DELETE /v1/cluster/members/{site}` (admin), as `add_member`.
    pub async fn remove_member(&self, api: &str, site: u64, timeout_ms: u64) -> Option<u16> {
        let request = self.http.delete(format!("{api}/v1/cluster/members/{site}")).bearer_auth(ADMIN_TOKEN);
        let response = request.timeout(Duration::from_millis(timeout_ms)).send().await.ok()?;
        Some(response.status().as_u16())
    }

    /// The voters `api`'s node's membership lists (during a joint change, both halves').
    pub async fn voters(&self, api: &str) -> Option<Vec<u64>> {
        let cluster = self.cluster(api).await?;
        let members = cluster.get("members")?.as_array()?;
        let voter = |m: &&Value| m.get("voter").and_then(Value::as_bool) == Some(true);
        Some(members.iter().filter(voter).filter_map(|m| m.get("site")?.as_u64()).collect())
    }

    pub async fn cluster(&self, api: &str) -> Option<Value> {
        self.get(api, "/v1/cluster").await
    }

    /// The leader as `api`'s node knows it.
    pub async fn leader(&self, api: &str) -> Option<u64> {
        self.cluster(api).await?.get("leader")?.as_u64()
    }

    /// The leader's view: its committed Raft log index, and how many entries `member` has
    /// matched (None until the leader has heard from it in this term).
    pub async fn leader_view(&self, leader_api: &str, leader: u64, member: u64) -> Option<LeaderView> {
        let cluster = self.cluster(leader_api).await?;
        if cluster.get("leader")?.as_u64()? != leader {
            return None;
        }
        let members = cluster.get("members")?.as_array()?;
        let row = |site: u64| members.iter().find(|m| m.get("site").and_then(Value::as_u64) == Some(site));
        let committed_index = row(leader)?.pointer("/health/raft/committed_index")?.as_u64()?;
        let committed = ApplyIndex::from_raw(committed_index).raft_log_index();
        let lag = row(member).and_then(|m| m.get("lag_entries")).and_then(Value::as_u64);
        Some(LeaderView { committed_log: committed, member_matched: lag.map(|lag| committed.saturating_sub(lag)) })
    }

    /// The node's island state from `/readyz` (whose body comes with 503 too): None when the
    /// node did not answer, Some(None) when it is no island and merges none.
    pub async fn island_phase(&self, api: &str) -> Option<Option<IslandView>> {
        let response = self.http.get(format!("{api}/readyz")).send().await.ok()?;
        let body: Value = response.json().await.ok()?;
        let island = body.get("island")?;
        if island.is_null() {
            return Some(None);
        }
        let serving_fork = island.get("serving_fork")?.as_bool()?;
        Some(Some(IslandView { serving_fork, epoch: island.get("epoch").and_then(Value::as_u64) }))
    }

    /// `(operator, state, site)` of every operator, as `api`'s node knows them.
    pub async fn operators(&self, api: &str) -> Option<Vec<(String, String)>> {
        let answer = self.get(api, "/v1/operators").await?;
        let rows = answer.get("operators")?.as_array()?;
        Some(
            rows.iter()
                .filter_map(|row| {
                    let id = row.get("operator")?.as_str()?.to_string();
                    let state = row.get("state")?.as_str()?.to_string();
                    Some((id, state))
                })
                .collect(),
        )
    }
}

/// See `NodeApi::island_phase`.
#[derive(Clone, Copy, Debug)]
pub struct IslandView {
    pub serving_fork: bool,
    pub epoch: Option<u64>,
}

/// See `NodeApi::leader_view`. `member_matched` is a lower bound: the leader's log may run
/// ahead of its committed index by the entries in flight.
#[derive(Clone, Copy, Debug)]
pub struct LeaderView {
    pub committed_log: u64,
    pub member_matched: Option<u64>,
}
