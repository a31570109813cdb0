//! The async driver: runs a [`SiteController`] against a real Asterisk (any
//! `lineup_ari::Ari` plus its events stream) and the cluster (a [`ClusterPort`]).
//!
//! It is the only IO in this crate: it reads the wall clock, awaits ARI requests in the
//! order the controller gave them (so a bridge exists before channels are added to it),
//! runs proposals concurrently (each returns its committed result or a definite failure),
//! verifies PINs with argon2 on the blocking pool, and reconciles against `GET /channels`
//! and `GET /bridges` at start and after every events reconnect or effect-stream gap.

use crate::controller::{SiteController, SiteCounters};
use crate::io::{Action, AriFailure, AriRequest, Input, ProposeFailure};
use lineup_ari::{Ari, AriError, AriEvent, AriEvents, EventKind, EventStreamItem};
use lineup_core::{Command, CommandResult, Effect, Routing};
use lineup_util::now_ms;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How often the controller is ticked (digit timeouts, proposal retries).
pub const SITE_TICK_INTERVAL_MS: u64 = 100;
/// Results of proposals and PIN checks waiting to be handled.
pub const DRIVER_RESULTS_CAPACITY: usize = 4_096;
/// Most actions executed in one turn before the driver takes another input; the rest wait
/// in order (a reconcile of a busy box asks for thousands).
pub const ACTIONS_PER_INPUT_MAX: usize = 1_024;
/// Backlog of actions beyond which the driver takes no new input until it is worked down.
pub const PENDING_ACTIONS_MAX: usize = 64 * ACTIONS_PER_INPUT_MAX;

/// The cluster as site control sees it.
pub trait ClusterPort: Send + Sync + 'static {
    /// Commits `command` (forwarded to the leader) and returns its result, or a definite
    /// failure. An unknown outcome must be resolved by the implementation (read back by the
    /// command id) before answering.
    fn submit(&self, command: Command) -> impl Future<Output = Result<CommandResult, ProposeFailure>> + Send;
    /// Reads the applied routing state (stale reads are fine for call control).
    fn read<R>(&self, read: impl FnOnce(&Routing) -> R) -> R;
    /// Called with the controller's next serial before any proposal with a lower serial is
    /// submitted, so a port can persist a high-water mark first (serials must grow across
    /// restarts even when the wall clock goes back). Nothing by default.
    fn cover_serials_below(&self, _next_serial: u64) {}
}

/// What the cluster side feeds the driver.
#[derive(Debug, Clone)]
pub enum ClusterFeed {
    /// Effects addressed to this site, with the apply index of the command that produced them.
    Effects { apply_index: u64, effects: Vec<Effect> },
    /// The effect stream had a gap (a slow reader was overtaken): reconcile.
    Gap,
}

fn failure(error: AriError) -> AriFailure {
    match error {
        AriError::NotFound { message } => AriFailure::Gone(message),
        other => AriFailure::Failed(other.to_string()),
    }
}

/// Executes one ARI request. A hangup of a channel that is already gone succeeded.
pub async fn execute_ari<A: Ari>(ari: &A, request: &AriRequest) -> Result<(), AriFailure> {
    let result = match request {
        AriRequest::Answer(c) => ari.answer(c).await,
        AriRequest::Hangup(c, reason) => match ari.hangup(c, *reason).await {
            Err(AriError::NotFound { .. }) => Ok(()),
            other => other,
        },
        AriRequest::StartMoh { channel, class } => ari.start_moh(channel, class.as_deref()).await,
        AriRequest::StopMoh(c) => ari.stop_moh(c).await,
        AriRequest::Play { channel, playback, media } => ari.play(channel, Some(playback), media).await.map(|_| ()),
        AriRequest::StopPlayback(p) => ari.stop_playback(p).await,
        AriRequest::Originate(o) => ari.originate(o).await.map(|_| ()),
        AriRequest::CreateBridge(b) => ari.create_bridge(b).await.map(|_| ()),
        AriRequest::AddChannels { bridge, channels } => ari.add_channels(bridge, channels).await,
        AriRequest::RemoveChannels { bridge, channels } => ari.remove_channels(bridge, channels).await,
        AriRequest::DestroyBridge(b) => match ari.destroy_bridge(b).await {
            Err(AriError::NotFound { .. }) => Ok(()),
            other => other,
        },
        AriRequest::Continue { channel, target, variables } => {
            ari.continue_in_dialplan(channel, target, variables).await
        }
    };
    result.map_err(failure)
}

/// Verifies a PIN against an argon2 PHC string (CPU-heavy: call it off the async runtime).
pub fn verify_pin(pin: &str, phc: &str) -> bool {
    use argon2::password_hash::{phc::PasswordHash, PasswordVerifier};
    match PasswordHash::new(phc) {
        Ok(hash) => argon2::Argon2::default().verify_password(pin.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

/// Runs the site until `shutdown` turns true or the events stream ends; returns the
/// controller's counters. `counters` carries them live (for health and metrics), updated
/// after every input that changed them.
pub async fn run_site<A, C>(
    mut controller: SiteController,
    ari: Arc<A>,
    mut events: AriEvents,
    mut feed: mpsc::Receiver<ClusterFeed>,
    cluster: Arc<C>,
    mut shutdown: watch::Receiver<bool>,
    counters: watch::Sender<SiteCounters>,
) -> SiteCounters
where
    A: Ari + 'static,
    C: ClusterPort,
{
    let (results_tx, mut results_rx) = mpsc::channel::<Input>(DRIVER_RESULTS_CAPACITY);
    let mut tick = tokio::time::interval(Duration::from_millis(SITE_TICK_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut local: VecDeque<Input> = VecDeque::new();
    // Actions not yet executed, in order: at most `ACTIONS_PER_INPUT_MAX` run per turn, other
    // inputs are taken in between, and none is ever dropped.
    let mut pending: VecDeque<Action> = VecDeque::new();
    loop {
        let input = if let Some(input) = local.pop_front() {
            Some(input)
        } else if pending.len() >= PENDING_ACTIONS_MAX {
            // Back-pressure: no new input until the backlog is worked down.
            None
        } else {
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() { break; }
                    continue;
                }
                Some(result) = results_rx.recv() => Some(result),
                item = events.next() => match item {
                    Some(EventStreamItem::Event(event)) => Some(Input::Ari(event)),
                    Some(EventStreamItem::Connected { .. }) => match reconcile_input(&*ari).await {
                        Some(input) => Some(input),
                        None => continue,
                    },
                    Some(EventStreamItem::Disconnected { .. }) => continue,
                    None => break,
                },
                Some(item) = feed.recv() => match item {
                    ClusterFeed::Effects { apply_index, effects } => Some(Input::Effects { apply_index, effects }),
                    ClusterFeed::Gap => match reconcile_input(&*ari).await {
                        Some(input) => Some(input),
                        None => continue,
                    },
                },
                _ = tick.tick() => Some(Input::Tick),
                // Nothing else is ready: work on the backlog.
                _ = std::future::ready(()), if !pending.is_empty() => None,
            }
        };
        if let Some(input) = input {
            trace_input(&input);
            let actions = cluster.read(|routing| controller.handle(now_ms(), input, routing));
            publish_counters(&counters, &controller);
            tracing::trace!(?actions, "site actions");
            // Serials this step used are covered by the persisted floor before any is sent.
            cluster.cover_serials_below(controller.next_serial());
            pending.extend(actions);
        }
        let turn = pending.len().min(ACTIONS_PER_INPUT_MAX);
        for action in pending.drain(..turn) {
            execute_action(action, &ari, &cluster, &results_tx, &mut local).await;
        }
    }
    controller.counters.clone()
}

fn publish_counters(counters: &watch::Sender<SiteCounters>, controller: &SiteController) {
    counters.send_if_modified(|published| {
        let changed = *published != controller.counters;
        if changed {
            published.clone_from(&controller.counters);
        }
        changed
    });
}

/// Executes one action: ARI requests in order on this task (their results come back as
/// inputs), proposals and PIN checks on their own tasks.
async fn execute_action<A: Ari + 'static, C: ClusterPort>(
    action: Action,
    ari: &Arc<A>,
    cluster: &Arc<C>,
    results_tx: &mpsc::Sender<Input>,
    local: &mut VecDeque<Input>,
) {
    match action {
        Action::Ari { token, request } => {
            let result = execute_ari(&**ari, &request).await;
            local.push_back(Input::AriDone { token, result });
        }
        Action::Propose { token, command } => {
            let (cluster, results) = (Arc::clone(cluster), results_tx.clone());
            tokio::spawn(async move {
                let result = cluster.submit(command).await;
                let _ = results.send(Input::Proposed { token, result }).await;
            });
        }
        Action::Reconcile => {
            if let Some(input) = reconcile_input(&**ari).await {
                local.push_back(input);
            }
        }
        Action::VerifyPin { token, pin, phc } => {
            let results = results_tx.clone();
            tokio::spawn(async move {
                let ok =
                    tokio::task::spawn_blocking(move || verify_pin(pin.digits(), phc.phc())).await.unwrap_or(false);
                let _ = results.send(Input::PinVerified { token, ok }).await;
            });
        }
    }
}

/// Logs an input at trace level; a keyed digit may be one of a PIN's, so a DTMF event is
/// logged without it.
fn trace_input(input: &Input) {
    match input {
        Input::Ari(AriEvent { kind: EventKind::ChannelDtmfReceived { channel, .. }, .. }) => {
            tracing::trace!(channel = ?channel.id, "site input: a DTMF digit (not shown)");
        }
        _ => tracing::trace!(?input, "site input"),
    }
}

async fn reconcile_input<A: Ari>(ari: &A) -> Option<Input> {
    let channels = ari.list_channels().await.ok()?;
    let bridges = ari.list_bridges().await.ok()?;
    Some(Input::Reconcile { channels, bridges })
}
