//! The node config file (`lineup run --config site.toml`): who this site is, where it
//! listens, its peers and certificates, its Asterisk, its history database, optional Redis,
//! API tokens and logging. Secrets (ARI password, API tokens) come from the file or from an
//! environment variable the file names; they are never logged (hand-written Debug).

use crate::config_file::{ConfigFileError, ConfigText};
use lineup_api::secret::parse_sha256_hex;
use lineup_api::{ApiLimits, ApiToken, Role};
use lineup_cluster::lease::{
    check_island_bound, IslandTiming, CLOCK_RATE_DRIFT_MAX_PPM, ISLAND_AFTER_MS, PAUSE_MARGIN_MS,
};
use lineup_cluster::node::SITE_UNREACHABLE_AFTER_MS;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// This site's id (1, 2, …); its certificate must name it.
    pub site: u64,
    /// Raft log, snapshots, history outbox, SQLite history.
    pub data_dir: PathBuf,
    pub cluster: ClusterSection,
    pub ari: AriSection,
    #[serde(default)]
    pub calls: CallsSection,
    #[serde(default)]
    pub history: HistorySection,
    #[serde(default)]
    pub redis: Option<RedisSection>,
    pub api: ApiSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub ingress: IngressSection,
    #[serde(default)]
    pub island: IslandSection,
}

/// Ingress steering (`GET /v1/ingress`): where a SIP proxy reaches this site's Asterisk, and
/// the order to answer when this node cannot tell whether its state is current.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressSection {
    /// This site's SIP URI as the proxy relays to it, e.g. `sip:10.0.1.10:5060`. The peers'
    /// are in `[[cluster.peers]]`; a site without one is left out of ingress answers.
    #[serde(default)]
    pub sip_uri: Option<String>,
    /// Sites in the order to answer while this node has not heard its leader (and the order
    /// to give the proxy as its own fallback). Empty: by site number.
    #[serde(default)]
    pub fallback_sites: Vec<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// UDP address for QUIC, e.g. `0.0.0.0:7401`.
    pub listen: SocketAddr,
    /// The address other sites reach this one at (defaults to `listen`).
    #[serde(default)]
    pub advertise: Option<String>,
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The other sites: id → QUIC address (and API URL, named when a membership change is
    /// sent to a node that does not lead).
    #[serde(default)]
    pub peers: Vec<PeerSection>,
    /// Form a new cluster of this site and its peers at first start (run with the same peer
    /// list on every founding site; ignored once the node is part of a cluster).
    #[serde(default)]
    pub bootstrap: bool,
    #[serde(default)]
    pub heartbeat_interval_ms: Option<u64>,
    #[serde(default)]
    pub election_timeout_min_ms: Option<u64>,
    #[serde(default)]
    pub election_timeout_max_ms: Option<u64>,
    /// Silence after which a member is unreachable (nothing offered across it; its calls go
    /// on). Keep it at least three election timeouts.
    #[serde(default)]
    pub site_unreachable_after_ms: Option<u64>,
    /// Silence after which a member is declared lost (its calls end, its operators are logged
    /// out); 0 = never (only `lineup cluster declare-lost`).
    #[serde(default)]
    pub site_lost_after_ms: Option<u64>,
    /// Snapshot the routing state (and compact the Raft log) after this many log entries;
    /// as many (at most 1,000) stay behind it for a lagging peer. Default 10,000.
    #[serde(default)]
    pub snapshot_every_entries: Option<u64>,
}

/// Fewer entries between snapshots would snapshot on nearly every Tick.
pub const SNAPSHOT_EVERY_ENTRIES_MIN: u64 = 16;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSection {
    pub site: u64,
    pub address: String,
    /// Only to tell an admin where to send membership changes; never called by this node.
    #[serde(default)]
    pub api_url: Option<String>,
    /// The peer's SIP URI for ingress answers (as `[ingress] sip_uri` in its own file).
    #[serde(default)]
    pub sip_uri: Option<String>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AriSection {
    /// e.g. `http://127.0.0.1:8088/ari`
    pub url: String,
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default = "default_applications")]
    pub applications: Vec<String>,
    #[serde(default = "default_ari_timeout_ms")]
    pub request_timeout_ms: u64,
}

impl fmt::Debug for AriSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AriSection")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("password_env", &self.password_env)
            .field("applications", &self.applications)
            .finish()
    }
}

fn default_applications() -> Vec<String> {
    vec!["lineup".into(), "lineup-login".into()]
}

fn default_ari_timeout_ms() -> u64 {
    5_000
}

/// Dial strings this site uses to reach other sites and callback numbers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsSection {
    /// Remote site id → dial string template with `{call}`, e.g. `PJSIP/lineup-{call}@site-2`.
    #[serde(default)]
    pub trunk_endpoints: BTreeMap<String, String>,
    /// Template with `{number}`, e.g. `PJSIP/{number}@carrier`.
    #[serde(default)]
    pub callback_endpoint: Option<String>,
    #[serde(default)]
    pub moh_class: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySection {
    /// `postgres://…` or `sqlite://…`; default: SQLite in the data directory.
    #[serde(default)]
    pub database_url: Option<String>,
    #[serde(default)]
    pub database_url_env: Option<String>,
    /// Asterisk-format queue_log file (e.g. `/var/log/asterisk/queue_log`).
    #[serde(default)]
    pub queue_log: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    pub url: String,
    /// Prefix of every key (default `lineup:site-<id>:`).
    #[serde(default)]
    pub key_prefix: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// TCP address for REST, WebSocket and the dashboard, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Origins (besides the API's own) allowed to open WebSockets.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub tokens: Vec<TokenSection>,
    /// Serve HTTPS only (and `wss` for the WebSockets) with this certificate and key.
    #[serde(default)]
    pub tls: Option<ApiTlsSection>,
    /// `[api.limits]`: request rates, the failed-authentication throttle, connection and
    /// WebSocket caps, HTTP timeouts; each omitted field keeps its default.
    #[serde(default)]
    pub limits: ApiLimits,
}

/// `[api] tls = { cert = "…", key = "…" }`: PEM files, from `lineup certs api` or the
/// operator's own CA.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTlsSection {
    /// The certificate chain, the API's own certificate first; it must name the host names
    /// or addresses clients use.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSection {
    pub name: String,
    /// admin, supervisor, viewer or frontend.
    pub role: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_env: Option<String>,
    /// The token's SHA-256 as 64 hex digits (`lineup token new` prints both), so the file
    /// need not hold the token itself.
    #[serde(default)]
    pub token_sha256: Option<String>,
}

impl fmt::Debug for TokenSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSection")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("token_env", &self.token_env)
            .finish_non_exhaustive()
    }
}

/// `[island]`: whether this site keeps serving its own callers while cut off from the
/// majority (island mode), and the times that keep it from deciding while the majority still
/// may. `island_after_ms` must exceed `cluster.site_unreachable_after_ms` by the margins
/// (checked at load).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IslandSection {
    /// `auto` or `off` (the default: a cut-off site waits, as before island mode).
    #[serde(default)]
    pub mode: IslandModeSetting,
    /// Without quorum this long, the site becomes an island. Default 6000.
    #[serde(default = "default_island_after_ms")]
    pub island_after_ms: u64,
    /// The largest rate error of a node's monotonic clock assumed, in parts per million.
    /// Default 1000.
    #[serde(default = "default_clock_rate_drift_max_ppm")]
    pub clock_rate_drift_max_ppm: u64,
    /// The longest stall of the leader between its lease check and its append assumed.
    /// Default 1500.
    #[serde(default = "default_pause_margin_ms")]
    pub pause_margin_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IslandModeSetting {
    Auto,
    #[default]
    Off,
}

impl Default for IslandSection {
    fn default() -> Self {
        Self {
            mode: IslandModeSetting::Off,
            island_after_ms: default_island_after_ms(),
            clock_rate_drift_max_ppm: default_clock_rate_drift_max_ppm(),
            pause_margin_ms: default_pause_margin_ms(),
        }
    }
}

impl IslandSection {
    /// The node's island settings: `None` when island mode is off.
    pub fn timing(&self) -> Option<IslandTiming> {
        (self.mode == IslandModeSetting::Auto).then_some(IslandTiming {
            island_after_ms: self.island_after_ms,
            clock_rate_drift_max_ppm: self.clock_rate_drift_max_ppm,
            pause_margin_ms: self.pause_margin_ms,
        })
    }
}

fn default_island_after_ms() -> u64 {
    ISLAND_AFTER_MS
}

fn default_clock_rate_drift_max_ppm() -> u64 {
    CLOCK_RATE_DRIFT_MAX_PPM
}

fn default_pause_margin_ms() -> u64 {
    PAUSE_MARGIN_MS
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `pretty` or `json`.
    #[serde(default = "default_log_format")]
    pub format: String,
    /// A tracing filter, e.g. `info` or `lineup_site=debug,info`.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self { format: default_log_format(), level: default_log_level() }
    }
}

fn default_log_format() -> String {
    "pretty".into()
}

fn default_log_level() -> String {
    "info".into()
}

/// A secret from the file or the environment; `field` names it in errors.
fn secret(
    text: &ConfigText,
    field: &str,
    inline: &Option<String>,
    env: &Option<String>,
) -> Result<Option<String>, ConfigFileError> {
    match (inline, env) {
        (Some(_), Some(_)) => Err(text.field_error(field, "give the value or the _env variable, not both")),
        (Some(v), None) => Ok(Some(v.clone())),
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(v)),
            _ => Err(text.field_error(field, &format!("environment variable {var} is not set"))),
        },
        (None, None) => Ok(None),
    }
}

/// The node config with secrets resolved and every field checked.
#[derive(Clone)]
pub struct NodeSettings {
    pub file: NodeFile,
    pub ari_password: String,
    pub database_url: String,
    /// API tokens (their `Debug` hides the secret).
    pub tokens: Vec<ApiToken>,
}

impl fmt::Debug for NodeSettings {
    // Hand-written: the resolved secrets must never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tokens: Vec<(&str, &str)> = self.tokens.iter().map(|t| (t.name.as_str(), t.role.name())).collect();
        let database = self.database_url.split('@').next_back().unwrap_or_default();
        f.debug_struct("NodeSettings")
            .field("file", &self.file)
            .field("database", &database)
            .field("tokens", &tokens)
            .finish_non_exhaustive()
    }
}

impl NodeSettings {
    pub fn load(text: &ConfigText) -> Result<Self, ConfigFileError> {
        let file: NodeFile = text.parse()?;
        if file.site == 0 {
            return Err(text.field_error("site", "site ids start at 1"));
        }
        if file.cluster.peers.iter().any(|p| p.site == file.site) {
            return Err(text.field_error("cluster.peers", "lists this site itself"));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(p) = file.cluster.peers.iter().find(|p| !seen.insert(p.site)) {
            return Err(text.field_error("cluster.peers", &format!("site {} listed twice", p.site)));
        }
        for (i, peer) in file.cluster.peers.iter().enumerate() {
            if let Err(problem) = check_host_port(&peer.address) {
                return Err(text.field_error(&format!("cluster.peers[{i}].address"), &problem));
            }
        }
        let own_sip = file.ingress.sip_uri.iter().map(|uri| ("ingress.sip_uri".to_string(), uri));
        let peer_sips = file.cluster.peers.iter().enumerate();
        let peer_sips =
            peer_sips.filter_map(|(i, p)| p.sip_uri.as_ref().map(|uri| (format!("cluster.peers[{i}].sip_uri"), uri)));
        for (field, uri) in own_sip.chain(peer_sips) {
            if let Err(problem) = check_sip_uri(uri) {
                return Err(text.field_error(&field, &problem));
            }
        }
        let known_site = |s: &u64| *s == file.site || file.cluster.peers.iter().any(|p| p.site == *s);
        if let Some(site) = file.ingress.fallback_sites.iter().find(|s| !known_site(s)) {
            return Err(
                text.field_error("ingress.fallback_sites", &format!("site {site} is neither this site nor a peer"))
            );
        }
        if let Some(Err(problem)) = file.cluster.advertise.as_deref().map(check_host_port) {
            return Err(text.field_error("cluster.advertise", &problem));
        }
        if file.cluster.bootstrap && ![0, 2, 4].contains(&file.cluster.peers.len()) {
            return Err(text.field_error("cluster.bootstrap", "a founding cluster has 1, 3 or 5 sites"));
        }
        if !file.ari.url.starts_with("http://") && !file.ari.url.starts_with("https://") {
            return Err(text.field_error("ari.url", "must be an http:// URL such as http://127.0.0.1:8088/ari"));
        }
        if file.ari.url.contains('@') {
            return Err(text.field_error("ari.url", "must not carry credentials (use username and password)"));
        }
        let ari_password = secret(text, "ari.password", &file.ari.password, &file.ari.password_env)?
            .ok_or_else(|| text.field_error("ari.password", "missing (give password or password_env)"))?;
        let database_url =
            secret(text, "history.database_url", &file.history.database_url, &file.history.database_url_env)?
                .unwrap_or_else(|| format!("sqlite://{}", file.data_dir.join("history.sqlite").display()));
        if !database_url.starts_with("postgres://")
            && !database_url.starts_with("postgresql://")
            && !database_url.starts_with("sqlite:")
        {
            return Err(text.field_error("history.database_url", "must start with postgres:// or sqlite:"));
        }
        for key in file.calls.trunk_endpoints.keys() {
            if key.parse::<u64>().is_err() {
                return Err(text.field_error(&format!("calls.trunk_endpoints.{key}"), "keys are site ids"));
            }
        }
        if !["pretty", "json"].contains(&file.log.format.as_str()) {
            return Err(text.field_error("log.format", "pretty or json"));
        }
        if let Some(name) = file.api.limits.first_zero() {
            return Err(text.field_error(&format!("api.limits.{name}"), "must be at least 1"));
        }
        if file.cluster.snapshot_every_entries.is_some_and(|n| n < SNAPSHOT_EVERY_ENTRIES_MIN) {
            let why = format!("must be at least {SNAPSHOT_EVERY_ENTRIES_MIN}");
            return Err(text.field_error("cluster.snapshot_every_entries", &why));
        }
        if let Some(island) = file.island.timing() {
            let unreachable_after_ms = file.cluster.site_unreachable_after_ms.unwrap_or(SITE_UNREACHABLE_AFTER_MS);
            if let Err(e) = check_island_bound(unreachable_after_ms, &island) {
                return Err(text.field_error("island.island_after_ms", &e.to_string()));
            }
        }
        let tokens = file
            .api
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| api_token(text, &format!("api.tokens[{i}]"), t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { file, ari_password, database_url, tokens })
    }
}

/// Shortest API token accepted (guessable tokens are refused at load).
pub const API_TOKEN_MIN_BYTES: usize = 16;

/// One `[[api.tokens]]` entry: its role, and the token given inline, from the environment
/// or as its SHA-256 (exactly one of the three).
fn api_token(text: &ConfigText, field: &str, t: &TokenSection) -> Result<ApiToken, ConfigFileError> {
    let role = Role::from_name(&t.role).map_err(|problem| text.field_error(&format!("{field}.role"), &problem))?;
    let plain = secret(text, &format!("{field}.token"), &t.token, &t.token_env)?;
    match (plain, &t.token_sha256) {
        (Some(_), Some(_)) => {
            Err(text.field_error(&format!("{field}.token_sha256"), "give the token or its hash, not both"))
        }
        (None, Some(hex)) => match parse_sha256_hex(hex) {
            Some(digest) => Ok(ApiToken::hashed(&t.name, digest, role)),
            None => Err(text.field_error(
                &format!("{field}.token_sha256"),
                "must be 64 hex digits (the SHA-256 that `lineup token new` prints)",
            )),
        },
        (Some(token), None) if token.len() < API_TOKEN_MIN_BYTES => {
            Err(text.field_error(&format!("{field}.token"), &format!("shorter than {API_TOKEN_MIN_BYTES} characters")))
        }
        (Some(token), None) => Ok(ApiToken::plain(&t.name, token, role)),
        (None, None) => Err(text.field_error(
            &format!("{field}.token"),
            "missing (give token, token_env or token_sha256; `lineup token new` makes one)",
        )),
    }
}

/// A peer's QUIC address must be `host:port` (a name or an IP, and the UDP port): without
/// the port the node would only fail later, when the first dial cannot be made.
/// Longest SIP URI accepted for a site's ingress target.
pub const SIP_URI_MAX_BYTES: usize = 256;

/// `sip:` or `sips:`, then a host (and optional port and parameters), no spaces or quotes:
/// the proxy puts it into a Route or request URI as it is.
fn check_sip_uri(uri: &str) -> Result<(), String> {
    let rest = uri.strip_prefix("sip:").or_else(|| uri.strip_prefix("sips:"));
    let well_formed = rest.is_some_and(|r| !r.is_empty())
        && uri.len() <= SIP_URI_MAX_BYTES
        && uri.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'<' && b != b'>');
    match well_formed {
        true => Ok(()),
        false => Err(format!("expected a SIP URI such as sip:10.0.1.10:5060 (at most {SIP_URI_MAX_BYTES} characters)")),
    }
}

fn check_host_port(address: &str) -> Result<(), String> {
    let expected = "expected host:port, e.g. 10.0.2.10:7401 or site-2.example.net:7401";
    let Some((host, port)) = address.rsplit_once(':') else { return Err(format!("no port; {expected}")) };
    if host.is_empty() || (host.ends_with(':') && !host.starts_with('[')) {
        return Err(expected.to_string());
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{port}` is not a port; {expected}")),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const EXAMPLE: &str = include_str!("../../../deploy/examples/site-1.toml");

    fn load(text: &str) -> Result<NodeSettings, ConfigFileError> {
        std::env::set_var("LINEUP_TEST_ARI_PASSWORD", "secret-ari");
        std::env::set_var("LINEUP_ADMIN_TOKEN", "admin-token-0123456789");
        std::env::set_var("LINEUP_VIEWER_TOKEN", "viewer-token-0123456789");
        NodeSettings::load(&ConfigText::from_string("site.toml", text))
    }

    #[test]
    fn the_example_config_loads() {
        let text =
            EXAMPLE.replace("password_env = \"LINEUP_ARI_PASSWORD\"", "password_env = \"LINEUP_TEST_ARI_PASSWORD\"");
        let settings = load(&text).unwrap();
        assert_eq!(settings.file.site, 1);
        assert_eq!(settings.ari_password, "secret-ari");
        assert_eq!(settings.file.cluster.peers.len(), 2);
        assert_eq!(settings.tokens.len(), 3);
        let tls = settings.file.api.tls.as_ref().expect("the example serves HTTPS");
        assert_eq!(tls.cert, PathBuf::from("/etc/lineup/certs/api-site-1.pem"));
        let debug = format!("{settings:?}");
        assert!(!debug.contains("secret-ari") && !debug.contains("admin-token"), "secrets never reach a log line");
    }

    #[test]
    fn a_peer_address_without_a_port_is_refused_at_load() {
        let example =
            EXAMPLE.replace("password_env = \"LINEUP_ARI_PASSWORD\"", "password_env = \"LINEUP_TEST_ARI_PASSWORD\"");
        for bad in ["10.0.2.10", "site-2.example.net", "10.0.2.10:", "10.0.2.10:99999", ":7401", "fe80::1"] {
            let text = example.replace("address = \"10.0.2.10:7401\"", &format!("address = \"{bad}\""));
            let e = load(&text).unwrap_err();
            assert_eq!(e.field, "cluster.peers[0].address", "{bad}: {e}");
            assert!(e.message.contains("host:port"), "{bad}: {e}");
        }
        for good in ["site-2.example.net:7401", "[fe80::1]:7401"] {
            let text = example.replace("address = \"10.0.2.10:7401\"", &format!("address = \"{good}\""));
            assert!(load(&text).is_ok(), "{good}");
        }
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let text = EXAMPLE
            .replace("password_env = \"LINEUP_ARI_PASSWORD\"", "password_env = \"LINEUP_TEST_ARI_PASSWORD\"")
            .replace("listen = \"0.0.0.0:7401\"", "listen = \"nowhere\"");
        let e = load(&text).unwrap_err();
        assert_eq!(e.field, "cluster.listen", "{e}");
        let line = text.lines().position(|l| l.contains("\"nowhere\"")).unwrap() + 1;
        assert_eq!(e.line, Some(line), "{e}");

        let text =
            EXAMPLE.replace("password_env = \"LINEUP_ARI_PASSWORD\"", "password_env = \"LINEUP_TEST_UNSET_VAR\"");
        let e = load(&text).unwrap_err();
        assert_eq!(e.field, "ari.password", "{e}");
        assert!(e.line.is_some() && e.message.contains("LINEUP_TEST_UNSET_VAR"), "{e}");
    }

    #[test]
    fn ingress_targets_are_checked_at_load() {
        let example =
            EXAMPLE.replace("password_env = \"LINEUP_ARI_PASSWORD\"", "password_env = \"LINEUP_TEST_ARI_PASSWORD\"");
        let settings = load(&example).unwrap();
        assert_eq!(settings.file.ingress.sip_uri.as_deref(), Some("sip:10.0.1.10:5060"));
        assert_eq!(settings.file.ingress.fallback_sites, [1, 2, 3]);
        assert_eq!(settings.file.cluster.peers[0].sip_uri.as_deref(), Some("sip:10.0.2.10:5060"));
        for (bad, field) in [
            ("sip_uri = \"http://10.0.1.10\"", "ingress.sip_uri"),
            ("sip_uri = \"sip:\"", "ingress.sip_uri"),
            ("sip_uri = \"sip:a b\"", "ingress.sip_uri"),
            ("fallback_sites = [1, 9]", "ingress.fallback_sites"),
        ] {
            let key = bad.split(' ').next().unwrap();
            let line = example.lines().find(|l| l.starts_with(key) && !l.contains("10.0.2") && !l.contains("10.0.3"));
            let text = example.replacen(line.unwrap(), bad, 1);
            let e = load(&text).unwrap_err();
            assert_eq!(e.field, field, "{bad}: {e}");
        }
        let text = example.replace("sip_uri = \"sip:10.0.2.10:5060\"", "sip_uri = \"tel:+4930\"");
        assert_eq!(load(&text).unwrap_err().field, "cluster.peers[0].sip_uri");
    }

    fn with_token(entry: &str) -> String {
        let example =
            EXAMPLE.replace("password_env = \"LINEUP_ARI_PASSWORD\"", "password_env = \"LINEUP_TEST_ARI_PASSWORD\"");
        format!("{example}\n[[api.tokens]]\nname = \"extra\"\n{entry}\n")
    }

    #[test]
    fn a_token_given_by_its_hash_loads_and_matches_only_its_token() {
        let token = "a-token-known-only-by-hash";
        let entry = format!("role = \"viewer\"\ntoken_sha256 = \"{}\"", lineup_api::secret::sha256_hex(token));
        let settings = load(&with_token(&entry)).unwrap();
        let config = lineup_api::ApiConfig { tokens: settings.tokens, ..Default::default() };
        assert_eq!(config.role_of(token), Some(Role::Viewer));
        assert_eq!(config.role_of("a-token-known-only-by-hasH"), None);
        let e = load(&with_token("role = \"viewer\"\ntoken_sha256 = \"abc\"")).unwrap_err();
        assert!(e.field.ends_with(".token_sha256") && e.message.contains("64 hex digits"), "{e}");
    }

    #[test]
    fn api_limits_come_from_the_file_and_a_zero_is_refused() {
        let example =
            EXAMPLE.replace("password_env = \"LINEUP_ARI_PASSWORD\"", "password_env = \"LINEUP_TEST_ARI_PASSWORD\"");
        assert_eq!(load(&example).unwrap().file.api.limits, ApiLimits::default(), "the example shows the defaults");
        let example = example.split("[api.limits]").next().unwrap().to_string() + "\n[log]\nformat = \"json\"\n";
        let text = format!("{example}\n[api.limits]\nconnections_max = 300\nheader_read_timeout_ms = 2000\n");
        let limits = load(&text).unwrap().file.api.limits;
        assert_eq!((limits.connections_max, limits.header_read_timeout_ms), (300, 2_000));
        assert_eq!(limits.websockets_max, ApiLimits::default().websockets_max, "omitted fields keep their default");
        let e = load(&format!("{example}\n[api.limits]\nwebsockets_max = 0\n")).unwrap_err();
        assert_eq!(e.field, "api.limits.websockets_max", "{e}");
        let e = load(&format!("{example}\n[api.limits]\nconections_max = 5\n")).unwrap_err();
        assert!(e.message.contains("conections_max"), "a misspelt limit is named: {e}");
    }

    #[test]
    fn a_snapshot_interval_below_the_minimum_is_refused_naming_the_field() {
        let example =
            EXAMPLE.replace("password_env = \"LINEUP_ARI_PASSWORD\"", "password_env = \"LINEUP_TEST_ARI_PASSWORD\"");
        assert_eq!(load(&example).unwrap().file.cluster.snapshot_every_entries, None, "the default unless set");
        let set = |n: u64| example.replacen("[cluster]\n", &format!("[cluster]\nsnapshot_every_entries = {n}\n"), 1);
        assert_eq!(load(&set(64)).unwrap().file.cluster.snapshot_every_entries, Some(64));
        let e = load(&set(SNAPSHOT_EVERY_ENTRIES_MIN - 1)).unwrap_err();
        assert_eq!(e.field, "cluster.snapshot_every_entries", "{e}");
    }

    #[test]
    fn the_shared_widget_role_is_refused_naming_the_new_way() {
        let e = load(&with_token("role = \"widget\"\ntoken = \"widget-token-0123456789\"")).unwrap_err();
        assert!(e.field.ends_with(".role"), "{e}");
        assert!(e.message.contains("/v1/calls/{id}/widget-token") && e.message.contains("frontend"), "{e}");
    }

    #[test]
    fn island_mode_is_off_unless_set_and_auto_gives_the_node_its_timing() {
        let example =
            EXAMPLE.replace("password_env = \"LINEUP_ARI_PASSWORD\"", "password_env = \"LINEUP_TEST_ARI_PASSWORD\"");
        assert_eq!(load(&example).unwrap().file.island.timing(), None, "the example leaves it off");
        let text = format!("{example}\n[island]\nmode = \"auto\"\n");
        assert_eq!(load(&text).unwrap().file.island.timing(), Some(IslandTiming::default()));
        let text = format!("{example}\n[island]\nmode = \"auto\"\nisland_after_ms = 9000\npause_margin_ms = 2000\n");
        let timing = load(&text).unwrap().file.island.timing().unwrap();
        assert_eq!(
            (timing.island_after_ms, timing.pause_margin_ms, timing.clock_rate_drift_max_ppm),
            (9_000, 2_000, 1_000)
        );
        let e = load(&format!("{example}\n[island]\nmode = \"on\"\n")).unwrap_err();
        assert!(e.to_string().contains("auto"), "{e}");
    }

    #[test]
    fn an_island_wait_that_breaks_the_inequality_is_refused_naming_both_fields() {
        let example =
            EXAMPLE.replace("password_env = \"LINEUP_ARI_PASSWORD\"", "password_env = \"LINEUP_TEST_ARI_PASSWORD\"");
        let text = format!("{example}\n[island]\nmode = \"auto\"\nisland_after_ms = 4000\n");
        let e = load(&text).unwrap_err();
        assert_eq!(e.field, "island.island_after_ms", "{e}");
        assert!(e.message.contains("island_after_ms") && e.message.contains("site_unreachable_after_ms"), "{e}");
        // The majority's side counts: a longer unreachable time needs a longer island wait.
        let slow = example.replace("site_unreachable_after_ms = 3000", "site_unreachable_after_ms = 5000");
        assert_ne!(slow, example);
        let e = load(&format!("{slow}\n[island]\nmode = \"auto\"\n")).unwrap_err();
        assert!(e.message.contains("site_unreachable_after_ms = 5000"), "{e}");
        assert!(load(&format!("{slow}\n[island]\nmode = \"off\"\n")).is_ok(), "off: nothing to bound");
    }
}
