//! The stand-in server process and its control API.

use crate::procs::Proc;
use crate::setup::{ARI_PASSWORD, ARI_PASSWORD_ENV, ARI_USER};
use crate::wait::poll;
use anyhow::Context;
use lineup_pbx_sim::truth::{LiveState, TruthReport};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Bound on the stand-in writing its ports after start.
pub const STANDIN_START_WAIT_MS: u64 = 20_000;
const STANDIN_POLL_MS: u64 = 50;
/// Bound on one control request.
pub const CONTROL_REQUEST_TIMEOUT_MS: u64 = 5_000;

#[derive(Deserialize)]
struct Ports {
    control: u16,
    ari: Vec<u16>,
}

pub struct StandIn {
    _proc: Proc,
    pub ari_ports: Vec<u16>,
    base: String,
    http: reqwest::Client,
}

impl StandIn {
    /// Starts the stand-in (this binary's `stand-in` mode) with `boxes` boxes running
    /// `dialplan`, and waits for its ports.
    pub async fn start(dir: &Path, boxes: u64, dialplan: &Path) -> anyhow::Result<StandIn> {
        let ports_file = dir.join("standin-ports.json");
        let me = std::env::current_exe().context("the harness's own path")?;
        let mut command = Command::new(me);
        command
            .arg("stand-in")
            .arg("--boxes")
            .arg(boxes.to_string())
            .arg("--dialplan")
            .arg(dialplan)
            .arg("--ari-user")
            .arg(ARI_USER)
            .arg("--ari-password-env")
            .arg(ARI_PASSWORD_ENV)
            .arg("--ports-file")
            .arg(&ports_file)
            .env(ARI_PASSWORD_ENV, ARI_PASSWORD);
        let mut proc = Proc::spawn("lineup-pbx-sim-server", command, &dir.join("standin.log"))?;
        let ports = poll(STANDIN_START_WAIT_MS, STANDIN_POLL_MS, || {
            let text = std::fs::read_to_string(&ports_file).ok();
            async move { text.and_then(|t| serde_json::from_str::<Ports>(&t).ok()) }
        })
        .await;
        let Some(ports) = ports else {
            let running = proc.running();
            anyhow::bail!(
                "the stand-in wrote no ports (running: {running}); see {}",
                dir.join("standin.log").display()
            );
        };
        let http = reqwest::Client::builder().timeout(Duration::from_millis(CONTROL_REQUEST_TIMEOUT_MS)).build()?;
        Ok(StandIn { _proc: proc, ari_ports: ports.ari, base: format!("http://127.0.0.1:{}", ports.control), http })
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self.http.post(format!("{}{path}", self.base)).json(&body).send().await?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "stand-in {path}: {status} {answer}");
        Ok(answer)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.http.get(format!("{}{path}", self.base)).send().await?.error_for_status()?.json().await?)
    }

    /// Places a scripted caller; its Lineup call id.
    pub async fn place_caller(
        &self,
        box_index: usize,
        exten: &str,
        number: &str,
        plan: Value,
    ) -> anyhow::Result<String> {
        let mut body = json!({ "box_index": box_index, "exten": exten, "number": number });
        if let (Some(body), Some(plan)) = (body.as_object_mut(), plan.as_object()) {
            body.extend(plan.clone());
        }
        let answer = self.post("/callers", body).await?;
        answer.get("call_id").and_then(Value::as_str).map(str::to_string).context("call_id in the answer")
    }

    pub async fn add_operator(
        &self,
        id: &str,
        box_index: usize,
        ring: bool,
        pin: &str,
        answer_after_ms: u64,
    ) -> anyhow::Result<()> {
        let mode = if ring { "ring" } else { "persistent" };
        let body =
            json!({ "id": id, "box_index": box_index, "mode": mode, "pin": pin, "answer_after_ms": answer_after_ms });
        self.post("/operators", body).await.map(|_| ())
    }

    pub async fn drain(&self) -> anyhow::Result<u64> {
        Ok(self.post("/drain", json!({})).await?.get("hung_up").and_then(Value::as_u64).unwrap_or(0))
    }

    pub async fn truth(&self) -> anyhow::Result<TruthReport> {
        Ok(serde_json::from_value(self.get("/truth").await?)?)
    }

    pub async fn state(&self) -> anyhow::Result<LiveState> {
        Ok(serde_json::from_value(self.get("/state").await?)?)
    }
}
