//! The stand-in Asterisk as a process of its own, for the chaos harness (`lineup-chaos`).
//!
//! A real Asterisk outlives its Lineup node, so the boxes must not live inside the process
//! whose nodes the harness kills. `serve` puts N boxes joined by trunks behind real ARI (one
//! port per box, Basic auth) and adds a small control API for the harness: place scripted
//! callers, log operators in, hang up, drain, and read the ground truth (`truth`) that the
//! stand-in keeps at every change of the world.
//!
//! - `truth`: the sans-IO ground truth and the scripted humans' schedule (`lineup_pbx_sim::truth`,
//!   re-exported).
//! - `script`: carries out the scripted moves on time (hangups, patience, logins).
//! - `control`: the control HTTP API.
//! - `server_main`: the command line of the server process.

pub mod control;
pub mod script;
pub mod server_main;
/// The ground truth is sans-IO and lives beside the world (`lineup_pbx_sim::truth`).
pub use lineup_pbx_sim::truth;

use crate::error::ServerError;
use crate::server::{serve_box, BoxServer, LiveWorld, SimCredentials};
use lineup_pbx_sim::dialplan::Dialplan;
use lineup_pbx_sim::world::{BoxConfig, BoxIndex, PbxWorld, TrunkRoute, TRUNK_ENTRY_CONTEXT};
use lineup_pbx_sim::SimError;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use truth::Truth;

/// Most boxes one stand-in serves.
pub const BOXES_MAX_COUNT: usize = 16;

/// The ground truth shared by the world's observer, the script and the control API. Lock
/// order: the world's lock first (the observer runs under it), then this one.
#[derive(Clone, Default)]
pub struct SharedTruth(Arc<Mutex<Truth>>);

impl SharedTruth {
    pub fn lock(&self) -> MutexGuard<'_, Truth> {
        // A panic mid-update leaves a partial truth; keep serving it rather than cascading.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What `serve` was asked for.
pub struct StandInConfig {
    pub boxes: usize,
    pub dialplan: Dialplan,
    pub credentials: SimCredentials,
    /// Wall-clock ms that the world's virtual 0 stands for.
    pub epoch_ms: u64,
}

/// A running stand-in: its ARI servers and control API. Dropping it stops serving.
pub struct StandIn {
    pub live: Arc<LiveWorld>,
    pub truth: SharedTruth,
    pub ari: Vec<BoxServer>,
    pub control: SocketAddr,
    _script: script::ScriptTask,
    _control: control::ControlServer,
}

/// Boxes `site-1` … `site-N` running `dialplan`, with a PJSIP trunk from each to every other
/// named after it (`PJSIP/lineup-<call>@site-2`), arriving in `from-lineup`.
pub fn federated_boxes(count: usize, dialplan: &Dialplan) -> Vec<BoxConfig> {
    let names: Vec<String> = (1..=count).map(|site| format!("site-{site}")).collect();
    names
        .iter()
        .enumerate()
        .map(|(index, name)| BoxConfig {
            name: name.clone(),
            asterisk_id: format!("02:fc:00:00:01:{:02x}", index + 1),
            dialplan: dialplan.clone(),
            trunks: names
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(other, other_name)| TrunkRoute {
                    technology: "PJSIP".into(),
                    trunk: other_name.clone(),
                    target: BoxIndex(other),
                    context: TRUNK_ENTRY_CONTEXT.into(),
                })
                .collect(),
        })
        .collect()
}

/// Starts the world, its observer and script, one ARI listener per box on `ip` and the
/// control API. Ports are chosen by the system (read them from the result).
pub async fn serve(config: StandInConfig, ip: std::net::IpAddr) -> Result<StandIn, ServerError> {
    if config.boxes == 0 || config.boxes > BOXES_MAX_COUNT {
        return Err(SimError::InvalidSetup(format!("1 to {BOXES_MAX_COUNT} boxes")).into());
    }
    let world = PbxWorld::new(config.epoch_ms, federated_boxes(config.boxes, &config.dialplan))?;
    let live = LiveWorld::start(world);
    let truth = SharedTruth::default();
    let observed = truth.clone();
    live.set_observer(Box::new(move |world| observed.lock().observe(world)));
    let mut ari = Vec::with_capacity(config.boxes);
    for index in 0..config.boxes {
        let listener = bind(ip).await?;
        ari.push(serve_box(Arc::clone(&live), BoxIndex(index), listener, config.credentials.clone()).await?);
    }
    let script = script::ScriptTask::start(Arc::clone(&live), truth.clone());
    let control = control::ControlServer::start(bind(ip).await?, Arc::clone(&live), truth.clone())?;
    Ok(StandIn { live, truth, control: control.address, ari, _script: script, _control: control })
}

async fn bind(ip: std::net::IpAddr) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::bind((ip, 0)).await.map_err(|error| ServerError::Serve(error.to_string()))
}
