//! `--scenario ingress`: real SIP parts in front of the real nodes. Kamailio runs
//! `deploy/kamailio/kamailio.cfg` and asks site 1's node (site 2's as backup) where each
//! new INVITE goes; sipp plays the ITSP, sending INVITEs for two DIDs; one sipp answering
//! machine per site stands in for that site's Asterisk at the node file's `[ingress] sip_uri`.
//! Operator availability is changed through the API and the answering machines' message
//! logs say where the INVITEs landed.
//!
//! Phases (each a batch of INVITEs for one DID, every one of which must get a final answer):
//! 1. sales operators free only at site 2: the `sales` DID lands at site 2 only;
//! 2. the `aimed-3` DID (its only operator is at site 3): site 3 only;
//! 3. sales operators free only at site 1: site 1 only;
//! 4. site 1's answering machine stopped: Kamailio waits `SITE_ANSWER_TIMEOUT_MS` and fails
//!    over to the next site, and every INVITE still gets its 200;
//! 5. site 3's node killed and marked unreachable: the `aimed-3` DID no longer reaches site 3.
//!
//! Figures: the decision latency (`GET /v1/ingress` from the harness, p50/p99) and the
//! proxy's added setup time (INVITE → 200 through Kamailio minus straight to a site).

use crate::api::NodeApi;
use crate::nodes::Nodes;
use crate::procs::Proc;
use crate::setup::{ADMIN_TOKEN, VIEWER_TOKEN};
use crate::standin::StandIn;
use crate::wait::poll;
use anyhow::Context;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The DID of queue `sales` (gate `main`) and the one of site 3's aimed queue.
const SALES_DID: &str = "+15550001";
const AIMED_DID: &str = "+15550003";
/// INVITEs per phase.
const INVITES_PER_PHASE: u64 = 10;
/// INVITEs per second from the ITSP.
const INVITE_RATE_PER_S: u64 = 20;
/// A site that has not answered an INVITE at all within this is passed over.
const SITE_ANSWER_TIMEOUT_MS: u64 = 1_000;
/// Bound on one phase's sipp run.
const PHASE_WAIT_MS: u64 = 30_000;
/// Bound on a state change reaching the node Kamailio asks.
const STATE_WAIT_MS: u64 = 10_000;
/// Bound on the leader marking a killed site unreachable (3 s of silence, then a commit).
const UNREACHABLE_WAIT_MS: u64 = 20_000;
/// Bound on a process starting to listen.
const LISTEN_WAIT_MS: u64 = 10_000;
const POLL_MS: u64 = 50;
/// Decision latency samples.
const DECISION_SAMPLES: usize = 200;

/// What the scenario measured and checked.
#[derive(Debug, Default, serde::Serialize)]
pub struct IngressReport {
    pub phases: Vec<PhaseResult>,
    pub decision_latency_us_p50: u64,
    pub decision_latency_us_p99: u64,
    pub direct_setup_ms_avg: f64,
    pub proxied_setup_ms_avg: f64,
    pub proxy_added_setup_ms: f64,
    pub passed: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct PhaseResult {
    pub name: String,
    pub did: String,
    pub sent: u64,
    pub answered: bool,
    /// INVITEs each site's answering machine received in the phase.
    pub landed: Vec<(u64, u64)>,
    pub expected_site: Option<u64>,
    pub forbidden_site: Option<u64>,
    pub ok: bool,
}

struct Sipp {
    bin: PathBuf,
    scenarios: PathBuf,
}

/// One answering machine per site: its process and message log.
struct Answerer {
    site: u64,
    port: u16,
    proc: Option<Proc>,
    messages: PathBuf,
}

impl Answerer {
    fn invites_for(&self, did: &str) -> u64 {
        let text = std::fs::read_to_string(&self.messages).unwrap_or_default();
        text.lines().filter(|l| l.starts_with(&format!("INVITE sip:{did}@"))).count() as u64
    }
}

pub async fn drive(nodes: &mut Nodes, api: &NodeApi, standin: &StandIn, dir: &Path) -> anyhow::Result<IngressReport> {
    let sipp = Sipp { bin: which("sipp")?, scenarios: repository_file("crates/lineup-chaos/sipp")? };
    let kamailio_bin = which("kamailio")?;
    crate::run::start_nodes(nodes, api).await?;
    crate::run::configure(nodes, api, standin, &crate::setup::operators(nodes.sites().len() as u64)).await?;
    let site1 = nodes.site(1)?.api_url();
    put_ingress_map(&site1).await?;
    let mut answerers = Vec::new();
    for site in nodes.sites() {
        answerers.push(start_answerer(&sipp, dir, site, nodes.site(site)?.sip_port)?);
    }
    let kamailio_port = crate::ports::free_port(crate::ports::Protocol::Udp)?;
    let mut kamailio = start_kamailio(&kamailio_bin, nodes, dir, kamailio_port)?;
    let result = run_phases(nodes, api, &sipp, dir, &mut answerers, kamailio_port, &site1).await;
    // SIGTERM, not a drop's SIGKILL: Kamailio's main process takes its children with it
    // only when it is terminated.
    kamailio.terminate().await;
    for answerer in &mut answerers {
        if let Some(proc) = answerer.proc.as_mut() {
            proc.terminate().await;
        }
    }
    result
}

async fn run_phases(
    nodes: &mut Nodes,
    api: &NodeApi,
    sipp: &Sipp,
    dir: &Path,
    answerers: &mut [Answerer],
    kamailio_port: u16,
    site1: &str,
) -> anyhow::Result<IngressReport> {
    wait_for_udp_listener(kamailio_port).await?;
    let mut report = IngressReport::default();
    let sales_ops = sales_operators(api, site1).await?;
    let phase = |name: &str, did: &str, expected: Option<u64>, forbidden: Option<u64>| {
        (name.to_string(), did.to_string(), expected, forbidden)
    };
    set_free_sales_site(site1, &sales_ops, 2).await?;
    wait_first_site(site1, SALES_DID, 2).await?;
    let plan = [phase("sales_at_site_2", SALES_DID, Some(2), None), phase("aimed_at_site_3", AIMED_DID, Some(3), None)];
    for (name, did, expected, forbidden) in plan {
        report.phases.push(run_phase(sipp, dir, answerers, kamailio_port, &name, &did, expected, forbidden).await?);
    }
    set_free_sales_site(site1, &sales_ops, 1).await?;
    wait_first_site(site1, SALES_DID, 1).await?;
    let phase3 = run_phase(sipp, dir, answerers, kamailio_port, "sales_at_site_1", SALES_DID, Some(1), None).await?;
    report.phases.push(phase3);
    // Site 1 stops answering SIP: every INVITE times out there and goes to the next site.
    if let Some(mut proc) = answerers[0].proc.take() {
        proc.kill();
    }
    // Site 1 is first for the DID (its sales operators are the free ones), so every 200 came
    // from a site Kamailio failed over to.
    let failover = run_phase(sipp, dir, answerers, kamailio_port, "site_1_silent", SALES_DID, None, Some(1)).await?;
    report.phases.push(failover);
    answerers[0] = start_answerer(sipp, dir, 1, answerers[0].port)?;
    nodes.kill(3)?;
    wait_unreachable(api, site1, 3).await?;
    let cut = run_phase(sipp, dir, answerers, kamailio_port, "site_3_unreachable", AIMED_DID, None, Some(3)).await?;
    report.phases.push(cut);
    measure_figures(sipp, dir, answerers, kamailio_port, site1, &mut report).await?;
    report.passed = report.phases.iter().all(|p| p.ok);
    Ok(report)
}

fn which(program: &str) -> anyhow::Result<PathBuf> {
    let output = Command::new("sh").arg("-c").arg(format!("command -v {program}")).output()?;
    let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
    anyhow::ensure!(!path.is_empty(), "{program} is not installed (scripts/test installs Debian's)");
    Ok(PathBuf::from(path))
}

/// A file of the repository (this crate is two levels down).
fn repository_file(relative: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative);
    anyhow::ensure!(path.exists(), "{} is missing", path.display());
    Ok(path)
}

async fn put_ingress_map(api: &str) -> anyhow::Result<()> {
    let map = json!({ "dids": [
        { "did": SALES_DID, "gate": "main" },
        { "did": AIMED_DID, "gate": crate::setup::aimed_queue(3) },
    ] });
    let http = reqwest::Client::new();
    let response = http.put(format!("{api}/v1/config/ingress")).bearer_auth(ADMIN_TOKEN).json(&map).send().await?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "PUT /v1/config/ingress: {status} {}", response.text().await?);
    Ok(())
}

async fn sales_operators(api: &NodeApi, url: &str) -> anyhow::Result<Vec<(String, u64)>> {
    let operators = crate::setup::operators(3);
    let known = api.operators(url).await.context("the operators answer")?;
    Ok(operators.into_iter().filter(|o| known.iter().any(|(id, _)| *id == o.id)).map(|o| (o.id, o.site)).collect())
}

/// Every sales operator on break except those at `site`, who are available.
async fn set_free_sales_site(api: &str, operators: &[(String, u64)], site: u64) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for (id, at) in operators {
        let body = match *at == site {
            true => json!({ "state": "available" }),
            false => json!({ "state": "break", "reason": "ingress-test" }),
        };
        let url = format!("{api}/v1/operators/{id}/state");
        let response = http.post(url).bearer_auth(ADMIN_TOKEN).json(&body).send().await?;
        anyhow::ensure!(response.status().is_success(), "state of {id}: {}", response.status());
    }
    Ok(())
}

async fn ingress_answer(api: &str, did: &str) -> Option<Value> {
    let http = reqwest::Client::new();
    let url = format!("{api}/v1/ingress?did={}", did.replace('+', "%2B"));
    http.get(url).bearer_auth(VIEWER_TOKEN).send().await.ok()?.json().await.ok()
}

/// Waits (bounded) until the node answers `site` first for `did`.
async fn wait_first_site(api: &str, did: &str, site: u64) -> anyhow::Result<()> {
    let first = poll(STATE_WAIT_MS, POLL_MS, || async {
        let answer = ingress_answer(api, did).await?;
        (answer["sites"][0]["site"].as_u64() == Some(site)).then_some(())
    })
    .await;
    first.with_context(|| format!("site {site} never came first for {did}"))
}

async fn wait_unreachable(api: &NodeApi, url: &str, site: u64) -> anyhow::Result<()> {
    let marked = poll(UNREACHABLE_WAIT_MS, POLL_MS * 4, || async {
        let cluster = api.cluster(url).await?;
        let members = cluster["members"].as_array()?;
        let state = members.iter().find(|m| m["site"].as_u64() == Some(site))?["site_state"].as_str()?.to_string();
        (state == "unreachable").then_some(())
    })
    .await;
    marked.with_context(|| format!("site {site} was never marked unreachable"))
}

fn start_answerer(sipp: &Sipp, dir: &Path, site: u64, port: u16) -> anyhow::Result<Answerer> {
    let messages = dir.join(format!("sip-site-{site}.messages"));
    let mut command = Command::new(&sipp.bin);
    command
        .arg("-sf")
        .arg(sipp.scenarios.join("site_answers.xml"))
        // In the foreground (no -bg, which forks away from `Proc`), so stopping it stops it.
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-nostdin", "-trace_msg", "-message_file"])
        .arg(&messages)
        .arg("-message_overwrite")
        .arg("false");
    let proc = Proc::spawn(&format!("sipp-site-{site}"), command, &dir.join(format!("sipp-site-{site}.log")))?;
    Ok(Answerer { site, port, proc: Some(proc), messages })
}

fn start_kamailio(bin: &Path, nodes: &Nodes, dir: &Path, port: u16) -> anyhow::Result<Proc> {
    let config = repository_file("deploy/kamailio/kamailio.cfg")?;
    let fallback: Vec<String> = nodes.layout.sites.iter().map(|s| format!("sip:127.0.0.1:{}", s.sip_port)).collect();
    let run_dir = dir.join("kamailio");
    std::fs::create_dir_all(&run_dir)?;
    let mut command = Command::new(bin);
    command
        .args(["-DD", "-E", "-f"])
        .arg(&config)
        .arg("-Y")
        .arg(&run_dir)
        .args(["-A", &format!("LISTEN=udp:127.0.0.1:{port}")])
        .args(["-A", &format!("LINEUP_API=\"{}\"", nodes.site(1)?.api_url())])
        .args(["-A", &format!("LINEUP_API_BACKUP=\"{}\"", nodes.site(2)?.api_url())])
        .args(["-A", &format!("LINEUP_FALLBACK=\"{}\"", fallback.join("|"))])
        .args(["-A", &format!("SITE_ANSWER_TIMEOUT_MS={SITE_ANSWER_TIMEOUT_MS}")])
        .env("LINEUP_TOKEN", VIEWER_TOKEN);
    Proc::spawn("kamailio", command, &dir.join("kamailio.log"))
}

/// Waits (bounded) until something answers SIP OPTIONS on `port`.
async fn wait_for_udp_listener(port: u16) -> anyhow::Result<()> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let local = socket.local_addr()?;
    let options = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-lineup-probe\r\n\
         From: <sip:probe@{local}>;tag=probe\r\nTo: <sip:127.0.0.1:{port}>\r\nCall-ID: lineup-probe\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let answered = poll(LISTEN_WAIT_MS, POLL_MS * 4, || async {
        socket.send_to(options.as_bytes(), ("127.0.0.1", port)).await.ok()?;
        let mut buf = [0u8; 2048];
        let got = tokio::time::timeout(Duration::from_millis(POLL_MS * 2), socket.recv(&mut buf)).await.ok()?.ok()?;
        String::from_utf8_lossy(&buf[..got]).starts_with("SIP/2.0 200").then_some(())
    })
    .await;
    answered.context("Kamailio never answered OPTIONS (see kamailio.log)")
}

/// The ITSP: `INVITES_PER_PHASE` INVITEs for `did` to `target_port`; whether every call got
/// its 200 (sipp exits 0 only then), and its rtt file.
async fn send_invites(
    sipp: &Sipp,
    dir: &Path,
    name: &str,
    did: &str,
    target_port: u16,
) -> anyhow::Result<(bool, PathBuf)> {
    let trace_dir = dir.join(format!("itsp-{name}"));
    std::fs::create_dir_all(&trace_dir)?;
    let mut command = Command::new(&sipp.bin);
    command
        .current_dir(&trace_dir)
        .arg(format!("127.0.0.1:{target_port}"))
        .arg("-sf")
        .arg(sipp.scenarios.join("itsp_calls.xml"))
        .args(["-s", did, "-i", "127.0.0.1", "-p", "0", "-m", &INVITES_PER_PHASE.to_string()])
        .args(["-r", &INVITE_RATE_PER_S.to_string(), "-l", "10", "-nostdin", "-trace_rtt", "-rtt_freq", "1"])
        .args(["-timeout", "20s", "-timeout_error", "-trace_err"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = command.spawn().with_context(|| format!("start sipp ({name})"))?;
    let mut exited = None;
    let finished = poll(PHASE_WAIT_MS, POLL_MS, || {
        if exited.is_none() {
            exited = child.try_wait().ok().flatten();
        }
        let done = exited.map(|status| status.success());
        async move { done }
    })
    .await;
    if finished.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!("sipp ({name}) did not finish within {PHASE_WAIT_MS} ms");
    }
    let status_ok = finished.unwrap_or(false);
    let rtt = std::fs::read_dir(&trace_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("_rtt.csv"))
        .unwrap_or_default();
    Ok((status_ok, rtt))
}

#[allow(clippy::too_many_arguments)]
async fn run_phase(
    sipp: &Sipp,
    dir: &Path,
    answerers: &[Answerer],
    kamailio_port: u16,
    name: &str,
    did: &str,
    expected_site: Option<u64>,
    forbidden_site: Option<u64>,
) -> anyhow::Result<PhaseResult> {
    let before: Vec<u64> = answerers.iter().map(|a| a.invites_for(did)).collect();
    let (answered, _) = send_invites(sipp, dir, name, did, kamailio_port).await?;
    let landed: Vec<(u64, u64)> =
        answerers.iter().zip(before).map(|(a, before)| (a.site, a.invites_for(did) - before)).collect();
    let total: u64 = landed.iter().map(|(_, n)| n).sum();
    let at = |site: u64| landed.iter().find(|(s, _)| *s == site).map(|(_, n)| *n).unwrap_or(0);
    let ok = answered
        && total >= INVITES_PER_PHASE
        && expected_site.is_none_or(|site| at(site) == INVITES_PER_PHASE && total == INVITES_PER_PHASE)
        && forbidden_site.is_none_or(|site| at(site) == 0);
    eprintln!("lineup-chaos ingress: {name}: {did} landed {landed:?}, all answered: {answered}, ok: {ok}");
    Ok(PhaseResult {
        name: name.to_string(),
        did: did.to_string(),
        sent: INVITES_PER_PHASE,
        answered,
        landed,
        expected_site,
        forbidden_site,
        ok,
    })
}

/// Decision latency from the harness, and INVITE → 200 straight to site 2 against through
/// Kamailio (which steers to site 2: its sales operators are made the only free ones).
async fn measure_figures(
    sipp: &Sipp,
    dir: &Path,
    answerers: &[Answerer],
    kamailio_port: u16,
    api: &str,
    report: &mut IngressReport,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let url = format!("{api}/v1/ingress?did={}", SALES_DID.replace('+', "%2B"));
    let mut samples = Vec::with_capacity(DECISION_SAMPLES);
    for _ in 0..DECISION_SAMPLES {
        let start = Instant::now();
        let response = http.get(&url).bearer_auth(VIEWER_TOKEN).send().await?;
        let _ = response.bytes().await?;
        samples.push(start.elapsed().as_micros() as u64);
    }
    samples.sort_unstable();
    report.decision_latency_us_p50 = samples[samples.len() / 2];
    report.decision_latency_us_p99 = samples[samples.len() * 99 / 100];
    let site2 = answerers.iter().find(|a| a.site == 2).context("site 2's answering machine")?;
    let (_, direct) = send_invites(sipp, dir, "direct", SALES_DID, site2.port).await?;
    let (_, proxied) = send_invites(sipp, dir, "proxied", SALES_DID, kamailio_port).await?;
    report.direct_setup_ms_avg = average_rtt_ms(&direct);
    report.proxied_setup_ms_avg = average_rtt_ms(&proxied);
    report.proxy_added_setup_ms = report.proxied_setup_ms_avg - report.direct_setup_ms_avg;
    Ok(())
}

/// sipp's `-trace_rtt` file: `date_ms;response_time_ms;rtd_no` lines after a header.
fn average_rtt_ms(path: &Path) -> f64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let values: Vec<f64> =
        text.lines().skip(1).filter_map(|l| l.split(';').nth(1)?.trim().parse::<f64>().ok()).collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.iter().sum::<f64>() / values.len() as f64
}
