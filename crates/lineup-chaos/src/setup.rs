//! The run directory: certificates (`lineup certs init/issue`), one node file per site
//! (default cluster timings, a snapshot every 64 entries, SQLite history in the site's data directory), the routing
//! config every site's operators are in, and the dialplan the stand-in boxes run.

use crate::ports::{free_port, Protocol};
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const ADMIN_TOKEN: &str = "chaos-admin-token-0123456789";
pub const VIEWER_TOKEN: &str = "chaos-viewer-token-0123456789";
pub const ARI_USER: &str = "lineup";
/// The environment variable carrying the ARI password to the stand-in and the nodes.
pub const ARI_PASSWORD_ENV: &str = "LINEUP_CHAOS_ARI_PASSWORD";
pub const ARI_PASSWORD: &str = "chaos-ari-secret";
/// Log entries between two snapshots of every node: about every 30 s of a run's traffic.
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 64;
/// Every operator's PIN (one argon2 hash serves them all).
pub const OPERATOR_PIN: &str = "2468";
/// Operators per site: `<site>101`, `<site>102` persistent, `<site>103` ring mode.
pub const PERSISTENT_PER_SITE_COUNT: u64 = 2;
pub const RING_PER_SITE_COUNT: u64 = 1;
/// Gates of the deployed dialplan (`deploy/asterisk/extensions.conf`).
pub const GATE_MAIN_EXTEN: &str = "5000";
/// Gate `web` (queue `support`): no traffic, only the leader-kill probe's caller.
pub const GATE_PROBE_EXTEN: &str = "5002";
/// Wrap-up after each `sales` call: the operator is not free again for this long.
pub const SALES_WRAP_UP_MS: u64 = 1_000;

/// Extension of site `site`'s aimed gate (`aimed_dialplan`) is this plus the site number.
pub const GATE_AIMED_EXTEN_BASE: u64 = 5100;

/// The persistent operator of `site` that only aimed calls reach: queue and gate
/// `aimed-<site>`, extension `GATE_AIMED_EXTEN_BASE + site` at any box. When the workload
/// leaves no call of the kind a fault aims at (a local one, a cross-site one), the harness
/// places one to this operator from the box it chooses, so the fault still runs.
pub fn aimed_operator(site: u64) -> OperatorSpec {
    OperatorSpec { id: format!("{site}108"), site, ring: false }
}

/// The queue (and gate) only `aimed_operator(site)` serves.
pub fn aimed_queue(site: u64) -> String {
    format!("aimed-{site}")
}

/// The extension a caller dials at any box to reach `aimed_operator(site)`.
pub fn aimed_gate_exten(site: u64) -> String {
    (GATE_AIMED_EXTEN_BASE + site).to_string()
}

/// The harness's own gates, added to the deployed dialplan's `[lineup-gates]` (contexts of
/// the same name merge, as in Asterisk): one per site, to its aimed operator.
pub fn aimed_dialplan(sites: u64) -> String {
    let mut text = String::from("\n[lineup-gates]\n; lineup-chaos: calls aimed at one site's operator\n");
    for site in 1..=sites {
        let (exten, queue) = (aimed_gate_exten(site), aimed_queue(site));
        text.push_str(&format!("exten => {exten},1,Stasis(lineup,queue={queue},gate={queue})\n same => n,Hangup()\n"));
    }
    text
}

/// One site's files and ports.
#[derive(Clone, Debug)]
pub struct SiteLayout {
    pub site: u64,
    pub quic_port: u16,
    pub api_port: u16,
    /// Where a SIP proxy reaches the site's box (`[ingress] sip_uri`; the ingress scenario
    /// puts a sipp answering machine there).
    pub sip_port: u16,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

impl SiteLayout {
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// The queue_log file the node file names.
    pub fn queue_log(&self) -> PathBuf {
        self.data_dir.join("queue_log")
    }

    /// Where `lineup run` keeps its history by default.
    pub fn history_db(&self) -> PathBuf {
        self.data_dir.join("history.sqlite")
    }
}

#[derive(Clone, Debug)]
pub struct Layout {
    pub dir: PathBuf,
    pub lineup_bin: PathBuf,
    pub sites: Vec<SiteLayout>,
    /// A site past the founding ones, not in the cluster at first: the membership faults add
    /// it and remove it again (`member_kill.rs`). Its box is idle; its history is not judged.
    pub spare: Option<SiteLayout>,
}

impl Layout {
    /// The founding sites, then the spare.
    pub fn all_sites(&self) -> impl Iterator<Item = &SiteLayout> {
        self.sites.iter().chain(self.spare.as_ref())
    }
}

#[derive(Clone, Debug)]
pub struct OperatorSpec {
    pub id: String,
    pub site: u64,
    pub ring: bool,
}

/// The persistent operator of `site` in `support` only, logged in just before the leader's
/// kill at a site other than the leader's: the only one the probe's caller can get, always
/// free then (the sales operators are usually all busy), so the figure measures failover
/// and not waiting for an operator to finish a call.
pub fn probe_operator(site: u64) -> OperatorSpec {
    OperatorSpec { id: format!("{site}109"), site, ring: false }
}

/// The operators taking traffic (all in `sales`), logged in at the start.
pub fn operators(sites: u64) -> Vec<OperatorSpec> {
    let mut list = Vec::new();
    for site in 1..=sites {
        for k in 1..=(PERSISTENT_PER_SITE_COUNT + RING_PER_SITE_COUNT) {
            list.push(OperatorSpec { id: format!("{site}10{k}"), site, ring: k > PERSISTENT_PER_SITE_COUNT });
        }
    }
    list
}

/// Runs `lineup <args>`; its stdout, or an error with its stderr.
pub fn run_lineup(bin: &Path, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let mut command = Command::new(bin);
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("start {} {}", bin.display(), args.join(" ")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("lineup {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Certificates and ports for `sites` sites under `dir`, and for a spare one after them when
/// `spare`.
pub fn prepare(dir: &Path, lineup_bin: &Path, sites: u64, spare: bool) -> anyhow::Result<Layout> {
    let certs = dir.join("certs");
    let certs_arg = certs.display().to_string();
    run_lineup(lineup_bin, &["certs", "init", "--dir", &certs_arg], None)?;
    let mut layouts = Vec::new();
    for site in 1..=sites + u64::from(spare) {
        run_lineup(lineup_bin, &["certs", "issue", "--site", &site.to_string(), "--ca-dir", &certs_arg], None)?;
        layouts.push(SiteLayout {
            site,
            quic_port: free_port(Protocol::Udp)?,
            api_port: free_port(Protocol::Tcp)?,
            sip_port: free_port(Protocol::Udp)?,
            config: dir.join(format!("site-{site}.toml")),
            data_dir: dir.join(format!("site-{site}")),
            log: dir.join(format!("site-{site}.log")),
        });
    }
    let spare = if spare { layouts.pop() } else { None };
    Ok(Layout { dir: dir.to_path_buf(), lineup_bin: lineup_bin.to_path_buf(), sites: layouts, spare })
}

/// The nodes' log filter unless `--log-level` says otherwise.
pub const NODE_LOG_LEVEL: &str = "info,openraft=warn";

/// Where site `from` dials site `to`, when not at `to`'s own QUIC port (a relay between them).
pub type PeerAddresses = BTreeMap<(u64, u64), SocketAddr>;

/// Writes every site's node file, the site's ARI at `ari_ports[site - 1]`.
/// A site's history database and Redis projection, when not the defaults (SQLite, none).
pub struct SiteServices {
    pub site: u64,
    pub history_url: String,
    pub redis_url: String,
    pub redis_prefix: String,
}

impl SiteServices {
    fn toml(&self) -> String {
        format!(
            "database_url = \"{}\"\n\n[redis]\nurl = \"{}\"\nkey_prefix = \"{}\"\n",
            self.history_url, self.redis_url, self.redis_prefix
        )
    }
}

pub fn write_node_configs(
    layout: &Layout,
    ari_ports: &[u16],
    log_level: &str,
    peer_addresses: &PeerAddresses,
    services: Option<&SiteServices>,
    island_mode: bool,
) -> anyhow::Result<()> {
    for site in layout.all_sites() {
        let port = ari_ports.get(site.site as usize - 1).context("an ARI port per site")?;
        let services = services.filter(|s| s.site == site.site).map(SiteServices::toml).unwrap_or_default();
        let mut text = node_toml(layout, site, *port, log_level, peer_addresses, &services);
        if island_mode {
            text.push_str("\n[island]\nmode = \"auto\"\n");
        }
        std::fs::write(&site.config, text)?;
    }
    Ok(())
}

/// The node file; `services` (the site's database and Redis, or nothing) ends its
/// `[history]` section.
fn node_toml(
    layout: &Layout,
    me: &SiteLayout,
    ari_port: u16,
    log_level: &str,
    peer_addresses: &PeerAddresses,
    services: &str,
) -> String {
    let certs = layout.dir.join("certs").display().to_string();
    // The founding sites form the cluster; the spare waits to be added.
    let bootstrap = layout.sites.iter().any(|site| site.site == me.site);
    let mut peers = String::new();
    let mut trunks = String::new();
    for other in layout.sites.iter().filter(|other| other.site != me.site) {
        // No `api_url`: with it, each node's GET /v1/cluster asks its peers' /v1/cluster, which
        // ask theirs in turn, until a 1 s timeout per peer; the leader's answer then takes ~2 s,
        // too coarse to time "heard again", and the chain loads the nodes under test.
        let address = peer_addresses
            .get(&(me.site, other.site))
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], other.quic_port)));
        peers.push_str(&format!(
            "[[cluster.peers]]\nsite = {}\naddress = \"{address}\"\nsip_uri = \"sip:127.0.0.1:{}\"\n\n",
            other.site, other.sip_port
        ));
        trunks.push_str(&format!("\"{0}\" = \"PJSIP/lineup-{{call}}@site-{0}\"\n", other.site));
    }
    format!(
        r#"site = {site}
data_dir = "{data}"

[cluster]
listen = "127.0.0.1:{quic}"
ca_cert = "{certs}/ca.pem"
cert = "{certs}/site-{site}.pem"
key = "{certs}/site-{site}.key"
bootstrap = {bootstrap}
# Default timings: the figures are for them. Snapshots far more often than the default
# (every 10,000 entries, hours of traffic), so restarts, kills and catch-ups meet them.
snapshot_every_entries = {SNAPSHOT_EVERY_ENTRIES}

{peers}
[ari]
url = "http://127.0.0.1:{ari_port}/ari"
username = "{ARI_USER}"
password_env = "{ARI_PASSWORD_ENV}"

[calls]
callback_endpoint = "PJSIP/{{number}}"

[calls.trunk_endpoints]
{trunks}
[history]
queue_log = "{data}/queue_log"
{services}
[api]
listen = "127.0.0.1:{api}"

{tokens}
[ingress]
sip_uri = "sip:127.0.0.1:{sip}"

[log]
format = "json"
level = "{log_level}"
"#,
        tokens = api_tokens_toml(),
        site = me.site,
        data = me.data_dir.display(),
        quic = me.quic_port,
        api = me.api_port,
        sip = me.sip_port,
    )
}

/// The harness's API tokens: an admin (config, operator states) and a viewer.
fn api_tokens_toml() -> String {
    format!(
        "[[api.tokens]]\nname = \"admin\"\nrole = \"admin\"\ntoken = \"{ADMIN_TOKEN}\"\n\n\
         [[api.tokens]]\nname = \"wallboard\"\nrole = \"viewer\"\ntoken = \"{VIEWER_TOKEN}\"\n"
    )
}

/// The routing config: queues `sales` (gates `main`, `vip`) and `support` (gate `web`) as
/// the deployed dialplan names them; `operators` in `sales`, every site's probe operator in
/// `support`, every site's aimed operator in its own queue `aimed-<site>`. Missed rings never put an operator on break (the workload stays steady;
/// missed rings are not what is measured).
pub fn routing_toml(pin_hash: &str, operators: &[OperatorSpec], sites: u64) -> String {
    let mut text = format!(
        r#"[[queues]]
id = "sales"
name = "Sales"
wrap_up_ms = {SALES_WRAP_UP_MS}
ring_timeout_ms = 15000
misses_before_break = 0

[[queues]]
id = "support"
name = "Support"
misses_before_break = 0

[[gates]]
id = "main"
queue = "sales"

[[gates]]
id = "vip"
queue = "sales"
priority = 1

[[gates]]
id = "web"
queue = "support"
"#,
    );
    for operator in operators {
        text.push_str(&operator_toml(pin_hash, operator, "sales"));
    }
    for site in 1..=sites {
        text.push_str(&operator_toml(pin_hash, &probe_operator(site), "support"));
        let queue = aimed_queue(site);
        text.push_str(&format!(
            "\n[[queues]]\nid = \"{queue}\"\nname = \"Aimed {site}\"\nmisses_before_break = 0\n\n\
             [[gates]]\nid = \"{queue}\"\nqueue = \"{queue}\"\n"
        ));
        text.push_str(&operator_toml(pin_hash, &aimed_operator(site), &queue));
    }
    text
}

fn operator_toml(pin_hash: &str, operator: &OperatorSpec, queue: &str) -> String {
    let mode = if operator.ring {
        format!("mode = \"ring\"\nendpoint = \"PJSIP/phone-{}\"\n", operator.id)
    } else {
        "mode = \"persistent\"\n".to_string()
    };
    format!(
        "\n[[operators]]\nid = \"{id}\"\nname = \"Operator {id}\"\nsite = {site}\npin_hash = \"{pin_hash}\"\n{mode}memberships = {{ {queue} = 0 }}\n",
        id = operator.id,
        site = operator.site,
    )
}

/// Hashes the PIN and applies the routing config through `api`.
pub fn apply_routing(layout: &Layout, api: &str, operators: &[OperatorSpec]) -> anyhow::Result<()> {
    let pin_hash = run_lineup(&layout.lineup_bin, &["operator", "pin"], Some(&format!("{OPERATOR_PIN}\n")))?;
    let path = layout.dir.join("routing.toml");
    std::fs::write(&path, routing_toml(pin_hash.trim(), operators, layout.sites.len() as u64))?;
    let file = path.display().to_string();
    run_lineup(&layout.lineup_bin, &["config", "apply", &file, "--api", api, "--token", ADMIN_TOKEN], None)?;
    Ok(())
}
