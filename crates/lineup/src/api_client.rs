//! CLI commands that talk to a running node's API: `lineup config apply|export`,
//! `lineup cluster ...` and `lineup status`, over http or https (`api_http`). Any node will
//! do: writes go through Raft from wherever they enter.

use crate::api_http::HttpClient;
use crate::config_file::{load_routing, routing_problem, routing_to_toml, ConfigText, RoutingPolicies};
use anyhow::Context;
use hyper::Method;
use lineup_core::ingress::IngressPolicy;
use lineup_core::{AlarmPolicy, CallbackPolicy, ConfigChange, ConfigProblem, RoutingConfigSet, WebhookConfig};
use serde_json::Value;
use std::path::PathBuf;

/// Deadline of one API request from the CLI.
pub const CLI_REQUEST_TIMEOUT_MS: u64 = 15_000;

#[derive(clap::Args, Clone)]
pub struct ApiTarget {
    /// A node's API, e.g. http://127.0.0.1:8080 or https://site-1.example.net:8443
    #[arg(long, env = "LINEUP_API", default_value = "http://127.0.0.1:8080")]
    pub(crate) api: String,
    /// An API token (admin to apply; any role to read).
    #[arg(long, env = "LINEUP_TOKEN", hide_env_values = true)]
    pub(crate) token: String,
    /// For an https:// API (required there): the PEM of the CA that signed the node's API
    /// certificate, e.g. the cluster's ca.pem. The only CA trusted.
    #[arg(long, env = "LINEUP_CA_FILE")]
    pub(crate) ca_file: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum ConfigCommand {
    /// Validate a routing config file, show what changes, then replicate it through Raft.
    Apply {
        file: PathBuf,
        #[command(flatten)]
        target: ApiTarget,
        /// Show the changes only.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the routing config in force, as a file `config apply` takes back.
    Export {
        #[command(flatten)]
        target: ApiTarget,
    },
}

#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// Add a site to the Raft group (send it to the leader's API; `lineup status` names it).
    /// Start the new site's node first, without bootstrap.
    AddSite {
        #[arg(long)]
        site: u64,
        /// The new site's QUIC address as the others reach it, e.g. 10.0.4.10:7401
        #[arg(long)]
        address: String,
        #[command(flatten)]
        target: ApiTarget,
    },
    /// Remove a site from the Raft group (to the leader's API).
    RemoveSite {
        #[arg(long)]
        site: u64,
        #[command(flatten)]
        target: ApiTarget,
    },
    /// Declare a site gone: its calls end and its operators are logged out. Only for a site
    /// that is really gone; a silent site is unreachable and its calls go on without this.
    DeclareLost {
        #[arg(long)]
        site: u64,
        #[command(flatten)]
        target: ApiTarget,
    },
}

pub fn cluster(command: &ClusterCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let (target, method, path, body, what) = match command {
            ClusterCommand::AddSite { site, address, target } => {
                let body = serde_json::json!({ "site": site, "address": address });
                (target, Method::POST, "/v1/cluster/members".to_string(), Some(body), format!("site {site} added"))
            }
            ClusterCommand::RemoveSite { site, target } => {
                (target, Method::DELETE, format!("/v1/cluster/members/{site}"), None, format!("site {site} removed"))
            }
            ClusterCommand::DeclareLost { site, target } => (
                target,
                Method::POST,
                format!("/v1/cluster/members/{site}/lost"),
                None,
                format!("site {site} declared lost"),
            ),
        };
        match Api::new(target)?.send(method, &path, body).await? {
            Ok(cluster) => {
                println!("{what}");
                print!("{}", render_cluster(&cluster));
                Ok(())
            }
            Err((status, body)) => anyhow::bail!("refused ({status}): {}", describe(&body)),
        }
    })
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: ApiTarget,
    /// Print the raw JSON (cluster, queues, operators).
    #[arg(long)]
    json: bool,
}

pub(crate) struct Api {
    base: String,
    token: String,
    http: HttpClient,
}

impl Api {
    pub(crate) fn new(target: &ApiTarget) -> anyhow::Result<Self> {
        let http = HttpClient::new(&target.api, target.ca_file.as_deref(), CLI_REQUEST_TIMEOUT_MS)?;
        Ok(Self { base: target.api.trim_end_matches('/').to_string(), token: target.token.clone(), http })
    }

    /// `method path` with a JSON `body`: the answer's JSON when it succeeded, else its
    /// status and JSON (Null when not JSON).
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Result<Value, (u16, Value)>> {
        let body = body.map(|b| serde_json::to_vec(&b)).transpose()?;
        let answer =
            self.http.request(method, path, &self.token, body).await.with_context(|| format!("reach {}", self.base))?;
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        Ok(if (200..300).contains(&answer.status) { Ok(body) } else { Err((answer.status, body)) })
    }

    /// A write: the answer's JSON, or the node's refusal as a sentence (`what` names the
    /// action, e.g. "pause operator 1101").
    pub(crate) async fn write(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) -> anyhow::Result<Value> {
        match self.send(method, path, body).await? {
            Ok(v) => Ok(v),
            Err((status, body)) => anyhow::bail!("{what}: refused ({status}): {}", describe(&body)),
        }
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        match self.send(Method::GET, path, None).await? {
            Ok(v) => Ok(v),
            Err((status, body)) => anyhow::bail!("GET {path}: {status}: {}", describe(&body)),
        }
    }
}

/// Runs one CLI command's requests on a current-thread runtime.
pub(crate) fn block_on<T>(work: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(work)
}

/// `id` as a path segment: the identifier charset (letters, digits, `.`, `_`, `-`), so
/// nothing typed can reach another route.
pub(crate) fn path_id<'a>(what: &str, id: &'a str) -> anyhow::Result<&'a str> {
    lineup_core::ids::validate_id(id).map_err(|e| anyhow::anyhow!("`{id}` is not a valid {what} id: {e}"))?;
    Ok(id)
}

pub(crate) fn describe(body: &Value) -> String {
    body.get("error").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| body.to_string())
}

/// The diff list from an answer (`{"changes": [...]}` or a bare list).
fn changes_of(body: &Value) -> Vec<ConfigChange> {
    let list = body.get("changes").unwrap_or(body);
    serde_json::from_value(list.clone()).unwrap_or_default()
}

fn print_changes(changes: &[ConfigChange]) {
    if changes.is_empty() {
        println!("no changes");
    }
    for c in changes {
        let sign = match c.action {
            lineup_core::ChangeAction::Added => "+",
            lineup_core::ChangeAction::Changed => "~",
            lineup_core::ChangeAction::Removed => "-",
        };
        let fields = if c.fields.is_empty() { String::new() } else { format!(" ({})", c.fields.join(", ")) };
        println!("{sign} {} {}{fields}", c.kind.section(), c.id);
    }
}

pub fn config(command: &ConfigCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        match command {
            ConfigCommand::Export { target } => {
                let api = Api::new(target)?;
                let set: RoutingConfigSet =
                    serde_json::from_value(api.get("/v1/config").await?).context("the node's config answer")?;
                let callback: CallbackPolicy = serde_json::from_value(api.get(CALLBACK_POLICY_PATH).await?)
                    .context("the node's callback policy answer")?;
                let alarm: AlarmPolicy = serde_json::from_value(api.get(ALARM_POLICY_PATH).await?)
                    .context("the node's alarm policy answer")?;
                // Secrets come back redacted; applied again, a redacted secret keeps the current one.
                let webhooks: Vec<WebhookConfig> =
                    serde_json::from_value(api.get(WEBHOOKS_PATH).await?).context("the node's webhooks answer")?;
                let ingress: IngressPolicy =
                    serde_json::from_value(api.get(INGRESS_PATH).await?).context("the node's ingress answer")?;
                let policies = RoutingPolicies {
                    callback: Some(callback),
                    alarm: Some(alarm),
                    webhooks: Some(webhooks),
                    ingress: Some(ingress),
                };
                print!("{}", routing_to_toml(&set, &policies)?);
                Ok(())
            }
            ConfigCommand::Apply { file, target, dry_run } => {
                let text = ConfigText::read(file)?;
                // Checked here first, so a mistake is reported against the file's lines.
                let (set, policies) = load_routing(&text)?;
                let api = Api::new(target)?;
                warn_about_sites_outside_the_cluster(&api, &set).await;
                let set_json = serde_json::to_value(&set)?;
                let preview = api.send(Method::PUT, "/v1/config?dry_run=true", Some(set_json.clone())).await?;
                let changes = match preview {
                    Ok(body) => changes_of(&body),
                    Err((status, body)) => return Err(refusal(&text, status, &body)),
                };
                print_changes(&changes);
                let callback_changed = policy_change(&api, CALLBACK_POLICY_PATH, policies.callback.as_ref()).await?;
                let alarm_changed = policy_change(&api, ALARM_POLICY_PATH, policies.alarm.as_ref()).await?;
                let webhooks_changed = webhooks_change(&api, policies.webhooks.as_ref()).await?;
                let ingress_changed = policy_change(&api, INGRESS_PATH, policies.ingress.as_ref()).await?;
                let policies_changed = [callback_changed, alarm_changed, webhooks_changed, ingress_changed]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>();
                if *dry_run || (changes.is_empty() && policies_changed.is_empty()) {
                    return Ok(());
                }
                let applied = changes.len() + policies_changed.len();
                if !changes.is_empty() {
                    if let Err((status, body)) = api.send(Method::PUT, "/v1/config", Some(set_json)).await? {
                        return Err(refusal(&text, status, &body));
                    }
                }
                // The policies stand apart from the objects (nothing refers to them), so each
                // is its own command, after the set.
                for (path, policy) in policies_changed {
                    if let Err((status, body)) = api.send(Method::PUT, path, Some(policy)).await? {
                        anyhow::bail!("the {} was refused ({status}): {}", policy_name(path), describe(&body));
                    }
                }
                // Committed by a majority; exports read linearizably, so every node shows it now.
                println!("applied: {applied} change(s), committed by the cluster");
                Ok(())
            }
        }
    })
}

const CALLBACK_POLICY_PATH: &str = "/v1/config/callback-policy";
const ALARM_POLICY_PATH: &str = "/v1/config/alarm-policy";
const WEBHOOKS_PATH: &str = "/v1/config/webhooks";
const INGRESS_PATH: &str = "/v1/config/ingress";

fn policy_name(path: &str) -> &'static str {
    match path {
        ALARM_POLICY_PATH => "alarm policy",
        WEBHOOKS_PATH => "webhooks",
        INGRESS_PATH => "ingress",
        _ => "callback policy",
    }
}

/// The file's webhook list when it may differ from the cluster's (and says so). The node
/// shows secrets redacted, so a list with a secret spelled out is always sent.
async fn webhooks_change(
    api: &Api,
    list: Option<&Vec<WebhookConfig>>,
) -> anyhow::Result<Option<(&'static str, serde_json::Value)>> {
    let Some(list) = list else { return Ok(None) };
    let current: Vec<WebhookConfig> =
        serde_json::from_value(api.get(WEBHOOKS_PATH).await?).context("the node's webhooks answer")?;
    let redacted: Vec<WebhookConfig> = list.iter().map(WebhookConfig::redacted).collect();
    if redacted == current && list.iter().all(|w| w.secret == lineup_core::WEBHOOK_SECRET_REDACTED) {
        return Ok(None);
    }
    println!("~ webhooks");
    Ok(Some((WEBHOOKS_PATH, serde_json::to_value(list)?)))
}

/// The file's policy (the route's body) when it differs from the cluster's (and says so).
async fn policy_change<P: serde::Serialize + serde::de::DeserializeOwned + PartialEq>(
    api: &Api,
    path: &'static str,
    policy: Option<&P>,
) -> anyhow::Result<Option<(&'static str, serde_json::Value)>> {
    let Some(policy) = policy else { return Ok(None) };
    let name = policy_name(path);
    let current: P =
        serde_json::from_value(api.get(path).await?).with_context(|| format!("the node's {name} answer"))?;
    if current == *policy {
        return Ok(None);
    }
    println!("~ {}", name.replace(' ', "_"));
    Ok(Some((path, serde_json::to_value(policy)?)))
}

/// Operators assigned to a site that is not a member of the cluster cannot log in until it
/// joins: allowed (a site being added), but said.
async fn warn_about_sites_outside_the_cluster(api: &Api, set: &RoutingConfigSet) {
    let Ok(cluster) = api.get("/v1/cluster?peers=false").await else { return };
    let members: std::collections::BTreeSet<u64> =
        list(&cluster, "members").iter().filter_map(|m| m.get("site")?.as_u64()).collect();
    if members.is_empty() {
        return;
    }
    for line in sites_outside_the_cluster(set, &members) {
        eprintln!("warning: {line}");
    }
}

fn sites_outside_the_cluster(set: &RoutingConfigSet, members: &std::collections::BTreeSet<u64>) -> Vec<String> {
    let names = members.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    set.operators
        .iter()
        .filter(|o| !members.contains(&o.site.0))
        .map(|o| {
            format!(
                "operator {} is assigned to site {}, which is not a member of the cluster (members: {names}); \
                 they cannot log in until that site joins",
                o.id, o.site.0
            )
        })
        .collect()
}

/// A refusal from the node, located in the file when it names an object and field (the
/// API answers `{error, code, kind, id, field}` for a refused config).
fn refusal(text: &ConfigText, status: u16, body: &Value) -> anyhow::Error {
    let problem = (|| {
        Some(ConfigProblem {
            kind: serde_json::from_value(body.get("kind")?.clone()).ok()?,
            id: body.get("id")?.as_str()?.to_string(),
            field: body.get("field")?.as_str()?.to_string(),
            reason: describe(body),
        })
    })();
    match problem {
        Some(problem) => anyhow::anyhow!("{}", routing_problem(text, &problem)),
        None => anyhow::anyhow!("the node refused the config ({status}): {}", describe(body)),
    }
}

pub fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let api = Api::new(&args.target)?;
        let cluster = api.get("/v1/cluster").await?;
        let queues = api.get("/v1/queues").await?;
        let operators = api.get("/v1/operators").await?;
        if args.json {
            let all = serde_json::json!({ "cluster": cluster, "queues": queues, "operators": operators });
            println!("{}", serde_json::to_string_pretty(&all)?);
            return Ok(());
        }
        print!("{}", render_status(&cluster, &queues, &operators));
        Ok(())
    })
}

pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn list(v: &Value, key: &str) -> Vec<Value> {
    v.get(key).unwrap_or(v).as_array().cloned().unwrap_or_default()
}

/// Members, leader, lag and each site's edges.
/// `up`, `lost`, or `unreachable` with how long, from a member row.
fn site_state(member: &Value) -> String {
    let state = text(&member["site_state"]);
    match member["unreachable_since_ms"].as_u64() {
        Some(since) if state == "unreachable" => {
            format!("unreach {}s", lineup_util::now_ms().saturating_sub(since) / 1_000)
        }
        _ => state,
    }
}

fn render_cluster(cluster: &Value) -> String {
    let mut out = String::new();
    out.push_str(&format!("leader: site {}  term {}\n", text(&cluster["leader"]), text(&cluster["term"])));
    out.push_str("SITE  VOTER  STATE        REACHABLE  LAG  ARI    REDIS  DATABASE\n");
    for m in list(cluster, "members") {
        let health = &m["health"];
        let edge = |e: &Value| if e.is_null() { "-".to_string() } else { text(&e["ok"]) };
        out.push_str(&format!(
            "{:<5} {:<6} {:<12} {:<10} {:<4} {:<6} {:<6} {}\n",
            text(&m["site"]),
            text(&m["voter"]),
            site_state(&m),
            text(&m["reachable"]),
            text(&m["lag_entries"]),
            text(&health["ari_connected"]),
            edge(&health["redis"]),
            edge(&health["database"]),
        ));
    }
    out
}

/// Members, leader and lag; queues; operators — one screen.
fn render_status(cluster: &Value, queues: &Value, operators: &Value) -> String {
    let mut out = render_cluster(cluster);
    out.push_str("\nQUEUE        WAITING  LONGEST_S  ETA_S  AVAILABLE  BUSY  ANSWERED  ABANDONED\n");
    for q in list(queues, "queues") {
        let secs = |v: &Value| v.as_u64().map(|ms| (ms / 1000).to_string()).unwrap_or_else(|| "-".into());
        let stats = &q["stats"];
        out.push_str(&format!(
            "{:<12} {:<8} {:<10} {:<6} {:<10} {:<5} {:<9} {}\n",
            text(&q["queue"]),
            text(&q["waiting"]),
            secs(&q["longest_wait_ms"]),
            secs(&q["eta_ms"]),
            text(&q["available"]),
            text(&q["busy"]),
            text(&stats["answered"]),
            text(&stats["abandoned"]),
        ));
    }
    out.push_str("\nOPERATOR     SITE  STATE\n");
    for o in list(operators, "operators") {
        let state = match o.get("state").unwrap_or(&o["status"]) {
            Value::String(s) => s.clone(),
            Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
            other => text(other),
        };
        out.push_str(&format!("{:<12} {:<5} {}\n", text(&o["operator"]), text(&o["site"]), state));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operators_at_sites_outside_the_cluster_are_named() {
        let mut set = RoutingConfigSet::default();
        let mut operator =
            lineup_core::OperatorConfig { id: lineup_core::OperatorId::new("4001"), ..Default::default() };
        operator.site = lineup_core::SiteId(4);
        set.operators.push(operator.clone());
        operator.id = lineup_core::OperatorId::new("1001");
        operator.site = lineup_core::SiteId(1);
        set.operators.push(operator);
        let warnings = sites_outside_the_cluster(&set, &[1, 2, 3].into_iter().collect());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("operator 4001 is assigned to site 4") && warnings[0].contains("members: 1, 2, 3")
        );
    }

    #[test]
    fn status_shows_members_queues_and_operators() {
        let cluster = json!({"leader": 2, "term": 7, "members": [
            {"site": 1, "voter": true, "reachable": true, "lag_entries": 0,
             "health": {"ari_connected": true, "redis": null, "database": {"ok": true}}},
            {"site": 2, "voter": true, "reachable": false, "lag_entries": null, "health": null}]});
        let queues = json!([{"queue": "sales", "waiting": 3, "longest_wait_ms": 65000, "eta_ms": 30000,
            "available": 1, "busy": 2, "stats": {"answered": 40, "abandoned": 2}}]);
        let operators = json!([{"operator": "1101", "site": 1, "state": "busy"},
            {"operator": "1102", "site": null, "status": "offline"}]);
        let out = render_status(&cluster, &queues, &operators);
        assert!(out.contains("leader: site 2  term 7"), "{out}");
        assert!(out.lines().any(|l| l.starts_with("1 ") && l.contains("true") && l.contains(" 0 ")), "{out}");
        assert!(out.lines().any(|l| l.starts_with("sales") && l.contains(" 65 ") && l.contains(" 40 ")), "{out}");
        assert!(out.lines().any(|l| l.starts_with("1101") && l.ends_with("busy")), "{out}");
        assert!(out.lines().any(|l| l.starts_with("1102") && l.ends_with("offline")), "{out}");
    }

    #[test]
    fn a_refusal_naming_an_object_points_at_its_line() {
        let text = ConfigText::from_string("routing.toml", "[[queues]]\nid = \"sales\"\nname = \"Sales\"\n");
        let body = json!({"error": "queue sales is still in use", "code": "config_refused",
            "kind": "queue", "id": "sales", "field": "id"});
        let e = refusal(&text, 422, &body).to_string();
        assert!(e.starts_with("routing.toml:2:"), "{e}");
        assert!(e.contains("queues[id=sales].id") && e.contains("still in use"), "{e}");
    }

    #[test]
    fn a_diff_answer_reads_with_or_without_a_wrapper() {
        let change = json!({"action": "added", "kind": "queue", "id": "sales", "fields": []});
        assert_eq!(changes_of(&json!({"changes": [change.clone()]})).len(), 1);
        assert_eq!(changes_of(&json!([change])).len(), 1);
    }
}
