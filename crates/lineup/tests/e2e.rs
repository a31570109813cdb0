//! End to end over real processes: three `lineup run` nodes on loopback (Raft over QUIC with
//! certificates made by `lineup certs`), three Asterisk stand-ins served over real ARI by
//! this test process, the machine's PostgreSQL (a private database per site) and Redis (a
//! private key prefix), each reached through a relay this test can cut to make an outage.
//!
//! A call entering at site 1 is answered by an operator logged in at site 3; PostgreSQL
//! rows, the queue_log file and table, Redis keys, REST answers and WebSocket deltas are
//! checked against each other; PostgreSQL and Redis go down and come back mid-test without
//! losing a history row or disturbing routing; bad config and bad bodies change nothing.

mod process;
#[path = "../../lineup-store/tests/common/mod.rs"]
mod store_common;

use futures_util::StreamExt;
use lineup_ari::{CallerId, ChannelId};
use lineup_pbx_server::{serve_box, BoxServer, LiveWorld, SimCredentials};
use lineup_pbx_sim::{federated_sites, AudioPath, BoxIndex, PhoneCall};
use lineup_util::now_ms;
use process::{free_tcp_port, free_udp_port, lineup, run_ok, wait_for, Node, POLL_INTERVAL, WAIT_LIMIT};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use store_common::{unique_name, PgDatabase, Relay, TempDir, REDIS_URL};

/// The founding sites (bootstrap together).
const SITES: [u64; 3] = [1, 2, 3];
/// A site added at run time with `lineup cluster add-site`.
const JOINING_SITE: u64 = 4;
const ALL_SITES: [u64; 4] = [1, 2, 3, JOINING_SITE];
const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789";
const VIEWER_TOKEN: &str = "e2e-viewer-token-0123456789";

/// Starts `lineup run` for a site whose config is written in `dir`.
fn spawn_node(dir: &TempDir, site: u64, api_port: u16) -> Node {
    let log = dir.path(&format!("site-{site}.log"));
    let log_file = std::fs::File::create(&log).expect("log file");
    let child = lineup()
        .arg("run")
        .arg("--config")
        .arg(dir.path(&format!("site-{site}.toml")))
        .env("LINEUP_E2E_ARI_PASSWORD", "e2e-ari-secret")
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("spawn lineup run");
    Node { site, api: format!("http://127.0.0.1:{api_port}"), child, log }
}

struct Federation {
    dir: TempDir,
    live: Arc<LiveWorld>,
    _servers: Vec<BoxServer>,
    nodes: Vec<Node>,
    /// Ports of every site (the joining one starts later).
    quic: Vec<u16>,
    api: Vec<u16>,
    databases: Vec<PgDatabase>,
    pg_relay: Relay,
    redis_relay: Relay,
    redis_prefix: String,
    http: reqwest::Client,
}

#[allow(clippy::too_many_arguments)] // one node file's every port and URL, named at the call
fn node_toml(
    site: u64,
    dir: &Path,
    quic: &[u16],
    api: &[u16],
    ari_url: &str,
    database_url: &str,
    redis: &str,
    prefix: &str,
) -> String {
    let i = site as usize - 1;
    let mut peers = String::new();
    // Founders know each other; the joining site knows the founders.
    for other in SITES.iter().filter(|s| **s != site) {
        let j = *other as usize - 1;
        // No api_url: peers' health travels over the cluster link, never with an API token.
        peers.push_str(&format!("[[cluster.peers]]\nsite = {other}\naddress = \"127.0.0.1:{}\"\n\n", quic[j]));
    }
    let trunks: String = SITES
        .iter()
        .filter(|s| **s != site)
        .map(|s| format!("\"{s}\" = \"PJSIP/lineup-{{call}}@site-{s}\"\n"))
        .collect();
    format!(
        r#"site = {site}
data_dir = "{data}"

[cluster]
listen = "127.0.0.1:{quic}"
ca_cert = "{certs}/ca.pem"
cert = "{certs}/site-{site}.pem"
key = "{certs}/site-{site}.key"
bootstrap = {bootstrap}
# Loopback: LAN timing.
heartbeat_interval_ms = 200
election_timeout_min_ms = 1000
election_timeout_max_ms = 2000

{peers}
[ari]
url = "{ari_url}"
username = "lineup"
password_env = "LINEUP_E2E_ARI_PASSWORD"

[calls]
callback_endpoint = "PJSIP/{{number}}"

[calls.trunk_endpoints]
{trunks}
[history]
database_url = "{database_url}"
queue_log = "{data}/queue_log"

[redis]
url = "{redis}"
key_prefix = "{prefix}site-{site}:"

[api]
listen = "127.0.0.1:{api_port}"

[[api.tokens]]
name = "admin"
role = "admin"
token = "{ADMIN_TOKEN}"

[[api.tokens]]
name = "wallboard"
role = "viewer"
token = "{VIEWER_TOKEN}"

[log]
format = "json"
level = "info,openraft=warn"
"#,
        data = dir.join(format!("site-{site}")).display(),
        bootstrap = SITES.contains(&site),
        quic = quic[i],
        certs = dir.join("certs").display(),
        api_port = api[i],
    )
}

const ROUTING_TOML: &str = r#"
[[queues]]
id = "sales"
name = "Sales"
announce_every_ms = 20000
wrap_up_ms = 1000

[[gates]]
id = "main"
queue = "sales"

[[gates]]
id = "vip"
queue = "sales"
priority = 1

[[operators]]
id = "3001"
name = "Carol at site 3"
site = 3
pin_hash = "PIN_HASH"
memberships = { sales = 0 }
"#;

impl Federation {
    async fn start() -> Federation {
        let dir = TempDir::new();
        let certs = dir.path("certs");
        run_ok(lineup().args(["certs", "init", "--dir"]).arg(&certs), "lineup certs init");
        for site in ALL_SITES {
            run_ok(
                lineup().args(["certs", "issue", "--site", &site.to_string(), "--ca-dir"]).arg(&certs),
                "lineup certs issue",
            );
        }
        let site_names: Vec<String> = ALL_SITES.iter().map(|s| format!("site-{s}")).collect();
        let refs: Vec<&str> = site_names.iter().map(String::as_str).collect();
        let live = LiveWorld::start(federated_sites(now_ms(), &refs).expect("stand-in world"));
        let mut servers = Vec::new();
        for (i, _) in ALL_SITES.iter().enumerate() {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind ARI");
            let credentials = SimCredentials { username: "lineup".into(), password: "e2e-ari-secret".into() };
            servers.push(serve_box(Arc::clone(&live), BoxIndex(i), listener, credentials).await.expect("serve ARI"));
        }
        let pg_relay = Relay::start("127.0.0.1:5432").await;
        let redis_relay = Relay::start("127.0.0.1:6379").await;
        let redis_prefix = format!("{}:", unique_name("lineup_e2e"));
        let mut databases = Vec::new();
        for _ in ALL_SITES {
            databases.push(PgDatabase::create().await);
        }
        let quic: Vec<u16> = ALL_SITES.iter().map(|_| free_udp_port()).collect();
        let api: Vec<u16> = ALL_SITES.iter().map(|_| free_tcp_port()).collect();
        let redis_url = format!("redis://127.0.0.1:{}/", redis_relay.port);
        let mut nodes = Vec::new();
        for (i, site) in ALL_SITES.iter().enumerate() {
            let toml = node_toml(
                *site,
                &dir.0,
                &quic,
                &api,
                &servers[i].base_url(),
                &databases[i].url_via(pg_relay.port),
                &redis_url,
                &redis_prefix,
            );
            let config = dir.path(&format!("site-{site}.toml"));
            std::fs::write(&config, toml).expect("write node config");
            if SITES.contains(site) {
                nodes.push(spawn_node(&dir, *site, api[i]));
            }
        }
        Federation {
            dir,
            live,
            _servers: servers,
            nodes,
            quic,
            api,
            databases,
            pg_relay,
            redis_relay,
            redis_prefix,
            http: reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("http client"),
        }
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let text = std::fs::read_to_string(&n.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                format!("--- site {} ---\n{}", n.site, tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn get(&self, site: u64, path: &str, token: &str) -> Option<Value> {
        let url = format!("{}{path}", self.nodes[site as usize - 1].api);
        let response = self.http.get(url).bearer_auth(token).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// The Raft log's committed entries as `site` knows them (from its /metrics, where
    /// indexes are apply indexes: log index × `ApplyIndex::STRIDE`).
    async fn committed_entries(&self, site: u64) -> u64 {
        let url = format!("{}/metrics", self.nodes[site as usize - 1].api);
        let text = self.http.get(url).bearer_auth(VIEWER_TOKEN).send().await.expect("GET /metrics");
        let text = text.text().await.expect("metrics text");
        let index: u64 = text
            .lines()
            .find_map(|line| line.strip_prefix("lineup_raft_committed_index "))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no lineup_raft_committed_index in /metrics:\n{text}"));
        lineup_core::ApplyIndex::from_raw(index).raft_log_index()
    }

    async fn ready(&self, site: u64) -> bool {
        let url = format!("{}/readyz", self.nodes[site as usize - 1].api);
        matches!(self.http.get(url).send().await, Ok(r) if r.status().is_success())
    }

    async fn operator_status(&self, site: u64, operator: &str) -> Option<String> {
        let answer = self.get(site, "/v1/operators", VIEWER_TOKEN).await?;
        let rows = answer.get("operators")?.as_array()?;
        let row = rows.iter().find(|o| o.get("operator").and_then(Value::as_str) == Some(operator))?;
        row.get("state").and_then(Value::as_str).map(str::to_string)
    }

    async fn pg_count(&self, site: u64, sql: &str) -> i64 {
        use sqlx::Connection;
        let url = self.databases[site as usize - 1].url();
        let Ok(mut conn) = sqlx::PgConnection::connect(&url).await else { return -1 };
        let count: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(&mut conn).await.unwrap_or(-1);
        let _ = conn.close().await;
        count
    }

    async fn stop(mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
        for db in self.databases.drain(..) {
            db.drop_database().await;
        }
        if let Ok(client) = redis::Client::open(REDIS_URL) {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{}*", self.redis_prefix))
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
                }
            }
        }
    }
}

/// Refused writes are answered from the node's own state and never reach the Raft log,
/// at the leader and at followers alike (whose writes would be forwarded): while each
/// founding node refuses its share, the log grows only by the leader's Ticks (one per
/// `TICK_INTERVAL_MS`) and a few of the sites' own proposals, far fewer entries than the
/// writes sent.
async fn refused_writes_never_reach_the_log(fed: &Federation) {
    const REFUSED_WRITES_PER_SITE: usize = 30;
    /// Entries the sites may propose themselves meanwhile (operator wake-ups, health).
    const OTHER_ENTRIES_SLACK: u64 = 10;
    let sent = (REFUSED_WRITES_PER_SITE * SITES.len()) as u64;
    let before = fed.committed_entries(1).await;
    let started = std::time::Instant::now();
    for site in SITES {
        for i in 0..REFUSED_WRITES_PER_SITE {
            let (path, body) = match i % 2 {
                0 => (format!("/v1/calls/{site}-0.{i}/callback"), json!({ "number": "5551234" })),
                _ => (format!("/v1/calls/{site}-0.{i}/priority"), json!({ "priority": 1 })),
            };
            let url = format!("{}{path}", fed.nodes[site as usize - 1].api);
            let answer = fed.http.post(url).bearer_auth(ADMIN_TOKEN).json(&body).send().await.expect("POST");
            assert_eq!(answer.status().as_u16(), 404, "{path} at site {site}: an unknown call");
        }
    }
    let ticks = started.elapsed().as_millis() as u64 / lineup_cluster::node::TICK_INTERVAL_MS + 2;
    let grown = fed.committed_entries(1).await.saturating_sub(before);
    assert!(ticks + OTHER_ENTRIES_SLACK < sent, "the refusals took too long ({ticks} ticks) to tell anything");
    assert!(
        grown <= ticks + OTHER_ENTRIES_SLACK,
        "{sent} refused writes, and the log grew by {grown} entries in {ticks} ticks: refusals were proposed"
    );
}

fn call_id(site: u64, channel: &ChannelId) -> String {
    format!("{site}-{}", channel.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_route_one_queue_and_history_survives_database_and_redis_outages() {
    let mut fed = Federation::start().await;
    for site in SITES {
        let ready = async {
            for _ in 0..(WAIT_LIMIT.as_millis() / POLL_INTERVAL.as_millis()) {
                if fed.ready(site).await {
                    return true;
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            false
        };
        assert!(ready.await, "site {site} never became ready\n{}", fed.logs());
    }

    // Routing config from a file, through the CLI: validated, diffed, replicated.
    let pin_hash = {
        use std::io::Write;
        let mut child =
            lineup().args(["operator", "pin"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"2468\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let routing = fed.dir.path("routing.toml");
    std::fs::write(&routing, ROUTING_TOML.replace("PIN_HASH", &pin_hash)).unwrap();
    let api_2 = fed.nodes[1].api.clone();
    let applied = run_ok(
        lineup().args(["config", "apply", "--api", &api_2, "--token", ADMIN_TOKEN]).arg(&routing),
        "lineup config apply",
    );
    assert!(applied.contains("queues sales") || applied.contains("sales"), "{applied}");

    // A bad file names its line and changes nothing; a viewer token cannot write.
    let bad = fed.dir.path("bad.toml");
    std::fs::write(
        &bad,
        ROUTING_TOML
            .replace("PIN_HASH", &pin_hash)
            .replace("queue = \"sales\"\n\n[[gates]]\nid = \"vip\"", "queue = \"nowhere\"\n\n[[gates]]\nid = \"vip\""),
    )
    .unwrap();
    let out = lineup().args(["config", "apply", "--api", &api_2, "--token", ADMIN_TOKEN]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:") && stderr.contains("gates[id=main].queue"), "{stderr}");
    let viewer_put = fed
        .http
        .put(format!("{api_2}/v1/config"))
        .bearer_auth(VIEWER_TOKEN)
        .json(&json!({"queues": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(viewer_put.status().as_u16(), 403);
    let garbage = fed
        .http
        .put(format!("{api_2}/v1/config"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{\"queues\": [{\"id\": 5}]}")
        .send()
        .await
        .unwrap();
    assert!(garbage.status().is_client_error(), "{}", garbage.status());
    let exported = run_ok(lineup().args(["config", "export", "--api", &api_2, "--token", ADMIN_TOKEN]), "export");
    assert!(exported.contains("id = \"main\"") && exported.contains("id = \"vip\""), "{exported}");

    // The operator logs in by PIN at site 3.
    let login = PhoneCall::operator_login(
        "desk-3001",
        CallerId { name: "Carol".into(), number: "3001".into() },
        "lineup-operators",
        "*553001",
        "2468",
        2_000,
    );
    fed.live.with_world(|w| w.place_call(BoxIndex(2), login)).unwrap();
    wait_for(|| async {
        for site in SITES {
            if fed.operator_status(site, "3001").await.as_deref() != Some("available") {
                return None;
            }
        }
        Some(())
    })
    .await
    .unwrap_or_else(|| panic!("gave up waiting for: operator 3001 available on every node\n{}", fed.logs()));

    // A supervisor's screen on site 2 follows along over the WebSocket.
    let ws_url = format!("{}/v1/live?token={VIEWER_TOKEN}", api_2.replace("http://", "ws://"));
    let (mut live_ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("open /v1/live");
    let first = tokio::time::timeout(WAIT_LIMIT, live_ws.next()).await.expect("snapshot").expect("frame").expect("ws");
    let snapshot: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(snapshot.get("type").and_then(Value::as_str), Some("snapshot"), "{snapshot}");

    // A caller at site 1 is answered by the operator at site 3, over the trunk.
    let caller_1 = PhoneCall {
        phone: "alice".into(),
        caller: CallerId { name: "Alice".into(), number: "+15550001".into() },
        context: "lineup-gates".into(),
        exten: "5000".into(),
        // Long patience: the test hangs up itself once the call is up (no timing race).
        patience_ms: Some(120_000),
        keys: vec![],
    };
    let channel_1 = fed.live.with_world(|w| w.place_call(BoxIndex(0), caller_1)).unwrap();
    let call_1 = call_id(1, &channel_1);
    wait_for(|| async {
        matches!(fed.live.with_world(|w| w.audio_path(BoxIndex(0), &channel_1)), Some(AudioPath::Connected { .. }))
            .then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("gave up waiting for: caller 1 connected to the operator at site 3\n{}", fed.logs()));

    // PostgreSQL and Redis go down while the call is up and another one comes and goes.
    fed.pg_relay.cut().await;
    fed.redis_relay.cut().await;
    assert!(fed.live.with_world(|w| w.phone_hangup(BoxIndex(0), &channel_1)), "caller 1 hangs up");
    wait_for(|| async { (fed.operator_status(1, "3001").await.as_deref() == Some("available")).then_some(()) })
        .await
        .unwrap_or_else(|| {
            panic!("gave up waiting for: operator free after call 1 (routing unaffected by the outage)\n{}", fed.logs())
        });
    let caller_2 = PhoneCall {
        phone: "bob".into(),
        caller: CallerId { name: "Bob".into(), number: "+15550002".into() },
        context: "lineup-gates".into(),
        exten: "5001".into(),
        patience_ms: Some(120_000),
        keys: vec![],
    };
    let channel_2 = fed.live.with_world(|w| w.place_call(BoxIndex(1), caller_2)).unwrap();
    let call_2 = call_id(2, &channel_2);
    wait_for(|| async {
        matches!(fed.live.with_world(|w| w.audio_path(BoxIndex(1), &channel_2)), Some(AudioPath::Connected { .. }))
            .then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("gave up waiting for: caller 2 connected during the outage\n{}", fed.logs()));
    // Health tells: still ready to route, degraded by Redis and the history database.
    wait_for(|| async {
        let readyz: Value =
            fed.http.get(format!("{}/readyz", fed.nodes[0].api)).send().await.ok()?.json().await.ok()?;
        let edges = readyz["degraded_edges"].to_string();
        (readyz["ready"] == true && readyz["degraded"] == true && edges.contains("redis") && edges.contains("database"))
            .then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("gave up waiting for: readyz to say degraded\n{}", fed.logs()));
    assert!(fed.live.with_world(|w| w.phone_hangup(BoxIndex(1), &channel_2)), "caller 2 hangs up");
    wait_for(|| async {
        let calls = fed.get(1, "/v1/calls", VIEWER_TOKEN).await?;
        let text = calls.to_string();
        (!text.contains(&call_1) && !text.contains(&call_2)).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("gave up waiting for: both calls ended\n{}", fed.logs()));
    fed.pg_relay.restore().await;
    fed.redis_relay.restore().await;

    // Every site's history holds both calls, once each, answered at site 3.
    for site in SITES {
        wait_for(|| async {
            let n = fed
                .pg_count(site, &format!("SELECT count(*) FROM calls WHERE call_id IN ('{call_1}', '{call_2}') AND outcome = 'completed'"))
                .await;
            (n == 2).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("gave up waiting for: history rows after the outage\n{}", fed.logs()));
        let connects = fed
            .pg_count(
                site,
                &format!(
                    "SELECT count(*) FROM queue_log WHERE event = 'CONNECT' AND callid IN ('{call_1}', '{call_2}')"
                ),
            )
            .await;
        assert_eq!(connects, 2, "site {site}: queue_log table");
        let file =
            std::fs::read_to_string(fed.dir.0.join(format!("site-{site}")).join("queue_log")).unwrap_or_default();
        let file_connects =
            file.lines().filter(|l| l.contains("|CONNECT|") && (l.contains(&call_1) || l.contains(&call_2))).count();
        assert_eq!(file_connects, 2, "site {site}: queue_log file\n{file}");
        assert!(
            file.lines().any(|l| l.contains(&format!("|{call_1}|sales|NONE|ENTERQUEUE|main|"))),
            "gate in ENTERQUEUE\n{file}"
        );
    }

    // Redis caught up: the operator is listed as available for sales again.
    let redis = redis::Client::open(REDIS_URL).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let member_key = format!("{}site-1:operator:3001:queue", fed.redis_prefix);
    let available_key = format!("{}site-1:queue:sales:operators", fed.redis_prefix);
    wait_for(|| {
        let (member_key, available_key) = (member_key.clone(), available_key.clone());
        let mut conn = conn.clone();
        async move {
            let member: bool =
                redis::cmd("SISMEMBER").arg(&member_key).arg("sales").query_async(&mut conn).await.ok()?;
            let available: Vec<String> =
                redis::cmd("SMEMBERS").arg(&available_key).query_async(&mut conn).await.ok()?;
            (member && available.len() == 1).then_some(())
        }
    })
    .await
    .unwrap_or_else(|| panic!("gave up waiting for: redis projection caught up\n{}", fed.logs()));
    let _: () = redis::cmd("PING").query_async(&mut conn).await.unwrap();

    // `lineup status` from any node shows the members, the leader and the operator.
    let status =
        run_ok(lineup().args(["status", "--api", &fed.nodes[2].api, "--token", VIEWER_TOKEN]), "lineup status");
    assert!(status.contains("leader: site ") && status.contains("sales") && status.contains("3001"), "{status}");
    assert!(status.lines().filter(|l| l.starts_with(['1', '2', '3']) && l.contains("true")).count() >= 3, "{status}");

    // REST agrees on every node; the WebSocket saw both calls end.
    for site in SITES {
        let queues = fed.get(site, "/v1/queues", VIEWER_TOKEN).await.expect("queues");
        assert!(queues.to_string().contains("\"answered\":2"), "site {site}: {queues}");
    }
    let mut ended = 0;
    for _ in 0..10_000 {
        let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_millis(500), live_ws.next()).await else { break };
        let text = frame.to_text().unwrap_or_default().to_string();
        if text.contains("ended") && (text.contains(&call_1) || text.contains(&call_2)) {
            ended += 1;
        }
    }
    assert!(ended >= 2, "the WebSocket delivered both call endings");

    // Any node shows every member's own health (ARI, history), asked over the cluster link.
    wait_for(|| async {
        let cluster = fed.get(2, "/v1/cluster", VIEWER_TOKEN).await?;
        let members = cluster["members"].as_array()?;
        let reported = members.iter().filter(|m| m["health"]["ari_connected"] == true).count();
        let with_database = members.iter().filter(|m| m["health"]["database"].is_object()).count();
        (reported == SITES.len() && with_database == SITES.len()).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("gave up waiting for: every member's health at site 2\n{}", fed.logs()));

    refused_writes_never_reach_the_log(&fed).await;

    // The config applied through the CLI with the admin token is in every site's audit
    // trail (history database), under the token's name.
    for site in SITES {
        wait_for(|| async {
            let audit = fed.get(site, "/v1/audit?actor=admin", ADMIN_TOKEN).await?;
            let rows = audit.as_array()?;
            rows.iter()
                .any(|r| r["actor"] == "admin" && r["action"].as_str().is_some_and(|a| a.contains("config")))
                .then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("site {site}'s audit trail never listed the admin's config apply\n{}", fed.logs()));
    }

    // The interval report from site 1's history counts the two answered calls, over REST
    // and through `lineup report` (a table with one row per queue).
    let from = now_ms().saturating_sub(3_600_000);
    let to = now_ms() + 60_000;
    let path = format!("/v1/reports/queues?from={from}&to={to}&interval=day");
    wait_for(|| async {
        let rows = fed.get(1, &path, ADMIN_TOKEN).await?;
        let answered: u64 = rows.as_array()?.iter().filter_map(|r| r["answered"].as_u64()).sum();
        (answered >= 2).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("site 1's queue report never counted the two answered calls\n{}", fed.logs()));
    let (from, to) = (from.to_string(), to.to_string());
    let api_1 = fed.nodes[0].api.clone();
    let report = ["report", "queues", "--api", &api_1, "--token", ADMIN_TOKEN, "--from", &from, "--to", &to];
    let table = run_ok(lineup().args(report).args(["--interval", "day"]), "lineup report queues");
    assert!(table.starts_with("QUEUE") && table.lines().count() >= 2, "{table}");

    // A fourth site joins at run time: its node starts without bootstrap, then the leader
    // adds it (learner, then voter) and it receives the whole state.
    let leader = fed.get(1, "/v1/cluster", VIEWER_TOKEN).await.and_then(|c| c["leader"].as_u64()).expect("a leader");
    let joining = spawn_node(&fed.dir, JOINING_SITE, fed.api[JOINING_SITE as usize - 1]);
    fed.nodes.push(joining);
    let leader_api = fed.nodes[leader as usize - 1].api.clone();
    let address = format!("127.0.0.1:{}", fed.quic[JOINING_SITE as usize - 1]);
    let added = run_ok(
        lineup().args([
            "cluster",
            "add-site",
            "--site",
            "4",
            "--address",
            &address,
            "--api",
            &leader_api,
            "--token",
            ADMIN_TOKEN,
        ]),
        "lineup cluster add-site",
    );
    assert!(added.contains("site 4 added"), "{added}");
    wait_for(|| async {
        let cluster = fed.get(1, "/v1/cluster", VIEWER_TOKEN).await?;
        let members = cluster["members"].as_array()?;
        let voters = members.iter().filter(|m| m["voter"] == true).count();
        let queues = fed.get(JOINING_SITE, "/v1/queues", VIEWER_TOKEN).await?;
        (voters == 4 && queues.to_string().contains("\"answered\":2")).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("gave up waiting for: site 4 to join as a voter with the state\n{}", fed.logs()));

    fed.stop().await;
}
