//! Disaster recovery with real `lineup run` processes: a three-site cluster holds a routing
//! config and a waiting caller; `lineup backup` saves its committed state; every node is
//! stopped and lost; `lineup restore` seeds three fresh nodes (new data directories, new
//! ports, no bootstrap) from the file; they elect a leader, answer with the backed-up state
//! and take new writes. Damaged and truncated files are refused and change nothing. The
//! Asterisk boxes (stand-ins) live on throughout, as they would when only Lineup is lost.

mod process;
#[path = "../../lineup-store/tests/common/mod.rs"]
mod store_common;

use lineup_ari::CallerId;
use lineup_pbx_server::{serve_box, BoxServer, LiveWorld, SimCredentials};
use lineup_pbx_sim::{federated_sites, BoxIndex, PhoneCall};
use lineup_util::now_ms;
use process::{free_tcp_port, free_udp_port, lineup, run_ok, run_refused, wait_for, Node};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use store_common::TempDir;

const SITES: [u64; 3] = [1, 2, 3];
const ADMIN_TOKEN: &str = "backup-admin-token-0123456789";
const VIEWER_TOKEN: &str = "backup-viewer-token-0123456789";
const ARI_PASSWORD: &str = "backup-ari-secret";

const ROUTING_TOML: &str = r#"
[[queues]]
id = "sales"
name = "Sales"
announce_every_ms = 20000

[[gates]]
id = "main"
queue = "sales"

[[operators]]
id = "3001"
name = "Carol at site 3"
site = 3
pin_hash = "PIN_HASH"
memberships = { sales = 0 }
"#;

/// A second queue, applied through the restored cluster.
const MORE_ROUTING_TOML: &str = r#"
[[queues]]
id = "support"
name = "Support"
"#;

/// One generation of the cluster: its node files and ports under `dir/name`.
struct Generation {
    name: &'static str,
    configs: Vec<PathBuf>,
    data_dirs: Vec<PathBuf>,
    api_ports: Vec<u16>,
}

impl Generation {
    fn write(dir: &Path, name: &'static str, ari_urls: &[String], bootstrap: bool) -> Generation {
        let quic: Vec<u16> = SITES.iter().map(|_| free_udp_port()).collect();
        let api_ports: Vec<u16> = SITES.iter().map(|_| free_tcp_port()).collect();
        let mut configs = Vec::new();
        let mut data_dirs = Vec::new();
        for (i, site) in SITES.iter().enumerate() {
            let data = dir.join(name).join(format!("site-{site}"));
            let peers: String = SITES
                .iter()
                .enumerate()
                .filter(|(_, other)| *other != site)
                .map(|(j, other)| format!("[[cluster.peers]]\nsite = {other}\naddress = \"127.0.0.1:{}\"\n\n", quic[j]))
                .collect();
            let toml = format!(
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
password_env = "LINEUP_BACKUP_ARI_PASSWORD"

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
                data = data.display(),
                quic = quic[i],
                certs = dir.join("certs").display(),
                ari_url = ari_urls[i],
                api_port = api_ports[i],
            );
            let config = dir.join(format!("{name}-site-{site}.toml"));
            std::fs::write(&config, toml).expect("write node config");
            configs.push(config);
            data_dirs.push(data);
        }
        Generation { name, configs, data_dirs, api_ports }
    }

    fn spawn(&self, dir: &Path) -> Vec<Node> {
        SITES
            .iter()
            .enumerate()
            .map(|(i, site)| {
                let log = dir.join(format!("{}-site-{site}.log", self.name));
                let child = lineup()
                    .args(["run", "--config"])
                    .arg(&self.configs[i])
                    .env("LINEUP_BACKUP_ARI_PASSWORD", ARI_PASSWORD)
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&log).expect("log file"))
                    .spawn()
                    .expect("spawn lineup run");
                Node { site: *site, api: format!("http://127.0.0.1:{}", self.api_ports[i]), child, log }
            })
            .collect()
    }
}

fn logs(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(&n.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            format!("--- site {} ---\n{}", n.site, tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn get(http: &reqwest::Client, node: &Node, path: &str) -> Option<Value> {
    let response = http.get(format!("{}{path}", node.api)).bearer_auth(VIEWER_TOKEN).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

async fn wait_ready(http: &reqwest::Client, nodes: &[Node]) {
    for node in nodes {
        let ready = wait_for(|| async {
            let response = http.get(format!("{}/readyz", node.api)).send().await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
        assert!(ready.is_some(), "site {} never became ready\n{}", node.site, logs(nodes));
    }
}

/// The waiting calls' ids as `node` answers them.
async fn waiting_calls(http: &reqwest::Client, node: &Node) -> Option<Vec<String>> {
    let answer = get(http, node, "/v1/calls").await?;
    let rows = answer.get("calls")?.as_array()?;
    let mut ids: Vec<String> = rows
        .iter()
        .filter(|c| c.get("status").and_then(Value::as_str) == Some("waiting"))
        .filter_map(|c| c.get("call").and_then(Value::as_str).map(str::to_string))
        .collect();
    ids.sort();
    Some(ids)
}

fn pin_hash() -> String {
    use std::io::Write;
    let mut child = lineup().args(["operator", "pin"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"2468\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn restore(from: &Path, config: &Path) -> Command {
    let mut command = lineup();
    command.args(["restore", "--from"]).arg(from).arg("--config").arg(config);
    command.env("LINEUP_BACKUP_ARI_PASSWORD", ARI_PASSWORD);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_restored_from_a_backup_starts_from_the_backed_up_state() {
    let dir = TempDir::new();
    let certs = dir.path("certs");
    run_ok(lineup().args(["certs", "init", "--dir"]).arg(&certs), "lineup certs init");
    for site in SITES {
        run_ok(lineup().args(["certs", "issue", "--site", &site.to_string(), "--ca-dir"]).arg(&certs), "certs issue");
    }
    let names: Vec<String> = SITES.iter().map(|s| format!("site-{s}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let live = LiveWorld::start(federated_sites(now_ms(), &refs).expect("stand-in world"));
    let mut servers: Vec<BoxServer> = Vec::new();
    for i in 0..SITES.len() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind ARI");
        let credentials = SimCredentials { username: "lineup".into(), password: ARI_PASSWORD.into() };
        servers.push(serve_box(Arc::clone(&live), BoxIndex(i), listener, credentials).await.expect("serve ARI"));
    }
    let ari_urls: Vec<String> = servers.iter().map(BoxServer::base_url).collect();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("http client");

    // The cluster that will be lost: a routing config and a caller waiting at site 1.
    let old = Generation::write(&dir.0, "old", &ari_urls, true);
    let mut old_nodes = old.spawn(&dir.0);
    wait_ready(&http, &old_nodes).await;
    let routing = dir.path("routing.toml");
    std::fs::write(&routing, ROUTING_TOML.replace("PIN_HASH", &pin_hash())).unwrap();
    let api_1 = old_nodes[0].api.clone();
    run_ok(lineup().args(["config", "apply", "--api", &api_1, "--token", ADMIN_TOKEN]).arg(&routing), "config apply");
    let caller = PhoneCall {
        phone: "alice".into(),
        caller: CallerId { name: "Alice".into(), number: "+15550001".into() },
        context: "lineup-gates".into(),
        exten: "5000".into(),
        // Longer than the test: the caller is still waiting when the new cluster starts.
        patience_ms: Some(600_000),
        keys: vec![],
    };
    live.with_world(|w| w.place_call(BoxIndex(0), caller)).expect("place the call");
    let waiting_before = wait_for(|| async {
        let ids = waiting_calls(&http, &old_nodes[2]).await?;
        (ids.len() == 1).then_some(ids)
    })
    .await
    .unwrap_or_else(|| panic!("the caller never waited\n{}", logs(&old_nodes)));
    let config_before = get(&http, &old_nodes[0], "/v1/config").await.expect("GET /v1/config");

    // The backup, through site 2's API.
    let file = dir.path("cluster.backup");
    let api_2 = old_nodes[1].api.clone();
    let said = run_ok(
        lineup().args(["backup", "--out"]).arg(&file).args(["--api", &api_2, "--token", ADMIN_TOKEN]),
        "lineup backup",
    );
    assert!(said.contains("taken on site 2"), "{said}");
    let refused = run_refused(
        lineup().args(["backup", "--out"]).arg(dir.path("viewer.backup")).args([
            "--api",
            &api_2,
            "--token",
            VIEWER_TOKEN,
        ]),
        "a viewer's backup",
    );
    assert!(refused.contains("403"), "{refused}");
    for node in &mut old_nodes {
        node.stop();
    }
    drop(old_nodes);

    // The new nodes: fresh data directories and ports, no bootstrap.
    let new = Generation::write(&dir.0, "new", &ari_urls, false);
    let bytes = std::fs::read(&file).expect("read the backup");
    let truncated = dir.path("truncated.backup");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let mut damaged_bytes = bytes.clone();
    let middle = damaged_bytes.len() / 2;
    damaged_bytes[middle] ^= 0x40;
    let damaged = dir.path("damaged.backup");
    std::fs::write(&damaged, &damaged_bytes).unwrap();
    for (bad, why) in [(&truncated, "truncated"), (&damaged, "checksum")] {
        let error = run_refused(&mut restore(bad, &new.configs[0]), "restore from a bad file");
        assert!(error.contains(why), "{why}: {error}");
        assert!(!new.data_dirs[0].exists(), "a refused restore wrote {}", new.data_dirs[0].display());
    }
    for config in &new.configs {
        run_ok(&mut restore(&file, config), "lineup restore");
    }
    let again = run_refused(&mut restore(&file, &new.configs[0]), "a second restore");
    assert!(again.contains("already holds a Raft log or state"), "{again}");

    let new_nodes = new.spawn(&dir.0);
    wait_ready(&http, &new_nodes).await;
    for node in &new_nodes {
        let config = get(&http, node, "/v1/config").await;
        assert_eq!(config.as_ref(), Some(&config_before), "site {}: the routing config", node.site);
        let waiting = wait_for(|| async { waiting_calls(&http, node).await }).await;
        assert_eq!(waiting.as_ref(), Some(&waiting_before), "site {}: the waiting callers", node.site);
    }

    // The restored cluster commits after its snapshot: a new queue reaches every node.
    let more = dir.path("more.toml");
    std::fs::write(&more, format!("{}{MORE_ROUTING_TOML}", ROUTING_TOML.replace("PIN_HASH", &pin_hash()))).unwrap();
    let api_3 = new_nodes[2].api.clone();
    run_ok(lineup().args(["config", "apply", "--api", &api_3, "--token", ADMIN_TOKEN]).arg(&more), "config apply");
    for node in &new_nodes {
        let seen = wait_for(|| async {
            let config = get(&http, node, "/v1/config?stale=true").await?;
            config.to_string().contains("\"support\"").then_some(())
        })
        .await;
        assert!(seen.is_some(), "site {} never applied the new queue\n{}", node.site, logs(&new_nodes));
    }
    let cluster = get(&http, &new_nodes[0], "/v1/cluster").await.expect("GET /v1/cluster");
    assert_eq!(cluster["members"].as_array().map(Vec::len), Some(SITES.len()), "{cluster}");
}
