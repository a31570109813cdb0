//! `lineup run --config site.toml`: one site's node until SIGINT/SIGTERM.

use crate::config_file::ConfigText;
use crate::node_config::{ClusterSection, NodeFile, NodeSettings};
use crate::service::{self, Notifier};
use anyhow::Context;
use lineup_api::{ApiConfig, ApiTls};
use lineup_ari::{ApplicationName, AriConfig};
use lineup_cluster::certs::{load_site, SiteFiles, SiteIdentity};
use lineup_cluster::node::SNAPSHOT_LOGS_SINCE_LAST;
use lineup_cluster::transport::quic::{install_crypto_provider, QuicTransport};
use lineup_cluster::ClusterTiming;
use lineup_core::SiteId;
use lineup_node::{serve_api, IngressTargets, NodeBackend, NodeSpec, RunningNode};
use lineup_site::SiteConfig;
use lineup_store::ProjectionConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The node config file (see deploy/examples/site-1.toml).
    #[arg(long)]
    config: PathBuf,
}

/// Changes the log filter of a running node (SIGHUP reloads `log.level`).
pub type LogFilterHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// Sets up `tracing` output: `pretty` for people, `json` for log shippers. The filter can be
/// replaced later through the returned handle.
pub fn init_logging(format: &str, filter: &str) -> anyhow::Result<LogFilterHandle> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_new(filter).context("log.level is not a valid filter")?;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let output = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let installed =
        if format == "json" { registry.with(output.json()).try_init() } else { registry.with(output).try_init() };
    installed.map_err(|e| anyhow::anyhow!("logging: {e}"))?;
    Ok(handle)
}

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Turns the checked settings into a node spec (reads certificates, binds the QUIC port).
pub fn node_spec(settings: &NodeSettings) -> anyhow::Result<NodeSpec> {
    let file = &settings.file;
    let (transport, advertise) = cluster_transport(file)?;
    let bootstrap = file.cluster.bootstrap.then(|| {
        let mut members: BTreeMap<u64, String> =
            file.cluster.peers.iter().map(|p| (p.site, p.address.clone())).collect();
        members.insert(file.site, advertise);
        members
    });
    let redis = file.redis.as_ref().map(|r| ProjectionConfig {
        url: r.url.clone(),
        key_prefix: r.key_prefix.clone().unwrap_or_else(|| format!("lineup:site-{}:", file.site)),
    });
    Ok(NodeSpec {
        site: file.site,
        data_dir: file.data_dir.clone(),
        transport,
        bootstrap,
        timing: cluster_timing(&file.cluster),
        island: file.island.timing(),
        snapshot_every_entries: file.cluster.snapshot_every_entries.unwrap_or(SNAPSHOT_LOGS_SINCE_LAST),
        ari: ari_config(settings)?,
        site_config: site_config(file)?,
        database_url: settings.database_url.clone(),
        queue_log: file.history.queue_log.clone(),
        redis,
    })
}

/// The site's certificate, the QUIC port bound with it, and the address peers reach it at.
fn cluster_transport(file: &NodeFile) -> anyhow::Result<(QuicTransport, String)> {
    let material = load_site(
        &file.cluster.ca_cert,
        &SiteFiles { cert: file.cluster.cert.clone(), key: file.cluster.key.clone() },
        file.site,
    )
    .context("read the site certificate")?;
    let identity = SiteIdentity::from_material(&material).context("the site certificate")?;
    // Each peer at the address this node's file gives it, whatever the membership says.
    let peers = file.cluster.peers.iter().map(|p| (p.site, p.address.clone())).collect();
    let transport =
        QuicTransport::bind_with_peers(&identity, file.cluster.listen, peers).context("bind the QUIC port")?;
    let advertise = match &file.cluster.advertise {
        Some(a) => a.clone(),
        None => transport.local_addr()?.to_string(),
    };
    Ok((transport, advertise))
}

/// The cluster's defaults with the timings the file sets.
fn cluster_timing(cluster: &ClusterSection) -> ClusterTiming {
    let mut timing = ClusterTiming::default();
    if let Some(ms) = cluster.heartbeat_interval_ms {
        timing.heartbeat_interval_ms = ms;
    }
    if let Some(ms) = cluster.election_timeout_min_ms {
        timing.election_timeout_min_ms = ms;
    }
    if let Some(ms) = cluster.election_timeout_max_ms {
        timing.election_timeout_max_ms = ms;
    }
    if let Some(ms) = cluster.site_unreachable_after_ms {
        timing.site_unreachable_after_ms = ms;
    }
    if let Some(ms) = cluster.site_lost_after_ms {
        timing.site_lost_after_ms = ms;
    }
    timing
}

fn ari_config(settings: &NodeSettings) -> anyhow::Result<AriConfig> {
    let ari = &settings.file.ari;
    let applications =
        ari.applications.iter().map(ApplicationName::new).collect::<Result<Vec<_>, _>>().context("ari.applications")?;
    Ok(AriConfig {
        base_url: ari.url.clone(),
        username: ari.username.clone(),
        password: settings.ari_password.clone(),
        applications,
        request_timeout_ms: ari.request_timeout_ms,
    })
}

/// Site control's settings: trunks to the other sites, the callback endpoint, music on hold.
fn site_config(file: &NodeFile) -> anyhow::Result<SiteConfig> {
    // Serials must grow across restarts: boot time in µs, raised to the serial mark stored
    // in the data directory when the node starts (see `lineup_node::serial_floor`).
    let mut site_config = SiteConfig::new(SiteId(file.site), now_us());
    for (site, template) in &file.calls.trunk_endpoints {
        let site: u64 = site.parse().context("calls.trunk_endpoints keys are site ids")?;
        site_config.trunk_endpoints.insert(SiteId(site), template.clone());
    }
    site_config.callback_endpoint = file.calls.callback_endpoint.clone();
    site_config.moh_class = file.calls.moh_class.clone();
    Ok(site_config)
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let text = ConfigText::read(&args.config)?;
    let settings = NodeSettings::load(&text)?;
    let log_filter = init_logging(&settings.file.log.format, &settings.file.log.level)?;
    install_crypto_provider();
    // Read the API's certificate and key first: a bad file stops the node before it starts.
    let config = api_config(&settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let spec = node_spec(&settings)?;
        let running = RunningNode::start(spec).await?;
        let (stop_api, api_shutdown) = tokio::sync::watch::channel(false);
        let peer_apis =
            settings.file.cluster.peers.iter().filter_map(|p| p.api_url.clone().map(|u| (p.site, u))).collect();
        let scheme = config.served_scheme();
        let backend = NodeBackend::new(&running, peer_apis);
        backend.set_ingress_targets(ingress_targets(&settings.file));
        let api = serve_api(Arc::clone(&backend), settings.file.api.listen, config, api_shutdown).await?;
        tracing::info!(site = running.site, api = %format!("{scheme}://{api}"), "lineup node running");
        let notifier = Notifier::from_env();
        let supervisor = tokio::spawn(service::supervise(backend, notifier.clone()));
        let raft_stopped = tokio::select! {
            () = wait_for_stop_signal(|| reload(&args.config, &log_filter, &notifier)) => None,
            why = running.raft_stopped() => Some(why),
        };
        match &raft_stopped {
            None => tracing::info!("stopping"),
            Some(why) => tracing::error!(%why, "Raft has stopped on this node; exiting so that it is started again"),
        }
        notifier.notify("STOPPING=1");
        supervisor.abort();
        let _ = stop_api.send(true);
        running.shutdown().await;
        match raft_stopped {
            None => Ok(()),
            Some(why) => Err(anyhow::anyhow!("Raft stopped on this node: {why}")),
        }
    })
}

/// SIGHUP: reads the node file again and applies what can change while the node runs
/// (`log.level`). A file that no longer loads changes nothing; the error is logged.
fn reload(config: &Path, log_filter: &LogFilterHandle, notifier: &Notifier) {
    notifier.notify("RELOADING=1");
    match reload_log_level(config, log_filter) {
        Ok(level) => tracing::info!(%level, "reloaded the node file: log.level applied; other changes need a restart"),
        Err(error) => tracing::error!(error = %format!("{error:#}"), "reload refused; nothing changed"),
    }
    notifier.notify("READY=1");
}

fn reload_log_level(config: &Path, log_filter: &LogFilterHandle) -> anyhow::Result<String> {
    let text = ConfigText::read(config)?;
    let settings = NodeSettings::load(&text)?;
    let level = settings.file.log.level;
    let filter = tracing_subscriber::EnvFilter::try_new(&level).context("log.level is not a valid filter")?;
    log_filter.reload(filter).context("replace the log filter")?;
    Ok(level)
}

/// The `[api]` section as the API takes it (tokens and roles were checked when the file was
/// loaded).
pub fn api_config(settings: &NodeSettings) -> anyhow::Result<ApiConfig> {
    let tls = match &settings.file.api.tls {
        Some(files) => Some(ApiTls::from_pem_files(&files.cert, &files.key).context("api.tls")?),
        None => None,
    };
    Ok(ApiConfig {
        tokens: settings.tokens.clone(),
        allowed_origins: settings.file.api.allowed_origins.clone(),
        tls,
        limits: settings.file.api.limits.clone(),
        ..ApiConfig::default()
    })
}

/// Waits for SIGINT or SIGTERM; each SIGHUP in the meantime calls `on_hangup`.
async fn wait_for_stop_signal(on_hangup: impl Fn()) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hangup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup())) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = term.recv() => return,
            _ = hangup.recv() => on_hangup(),
        }
    }
}

/// Every site's SIP URI (this one's and the peers') and the static order, from the node file.
fn ingress_targets(file: &NodeFile) -> IngressTargets {
    let own = file.ingress.sip_uri.iter().map(|uri| (SiteId(file.site), uri.clone()));
    let peers = file.cluster.peers.iter().filter_map(|p| p.sip_uri.clone().map(|uri| (SiteId(p.site), uri)));
    let targets: BTreeMap<SiteId, String> = own.chain(peers).collect();
    let fallback = match file.ingress.fallback_sites.is_empty() {
        true => targets.keys().copied().collect(),
        false => file.ingress.fallback_sites.iter().map(|s| SiteId(*s)).collect(),
    };
    IngressTargets { targets, fallback }
}
