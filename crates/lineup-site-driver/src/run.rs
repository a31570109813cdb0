//! [`run_site`]: the loop that takes one input at a time (ARI events, cluster effects,
//! results of earlier actions, ticks), hands it to the controller, and executes the actions
//! it returns, a bounded number per turn.

use crate::cluster::{ClusterFeed, ClusterPort};
use crate::execute::{execute_ari, read_missed_records, verify_pin};
use lineup_ari::{Ari, AriEvent, AriEvents, EventKind, EventStreamItem};
use lineup_site::{Action, Input, SiteController, SiteCounters};
use lineup_util::now_ms;
use std::collections::VecDeque;
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

/// Runs the site until `shutdown` turns true or the events stream ends; returns the
/// controller's counters. `counters` carries them live (for health and metrics), updated
/// after every input that changed them.
pub async fn run_site<A, C>(
    controller: SiteController,
    ari: Arc<A>,
    events: AriEvents,
    feed: mpsc::Receiver<ClusterFeed>,
    cluster: Arc<C>,
    shutdown: watch::Receiver<bool>,
    counters: watch::Sender<SiteCounters>,
) -> SiteCounters
where
    A: Ari + 'static,
    C: ClusterPort,
{
    let (results_tx, results_rx) = mpsc::channel::<Input>(DRIVER_RESULTS_CAPACITY);
    let mut tick = tokio::time::interval(Duration::from_millis(SITE_TICK_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sources = Sources { shutdown, results: results_rx, events, feed, tick };
    let mut site = SiteRun {
        controller,
        ari,
        cluster,
        counters,
        results: results_tx,
        local: VecDeque::new(),
        pending: VecDeque::new(),
    };
    loop {
        match site.next_input(&mut sources).await {
            Next::Input(input) => site.handle_input(input),
            Next::Backlog => {}
            Next::Again => continue,
            Next::Stop => break,
        }
        site.work_backlog().await;
    }
    site.controller.counters.clone()
}

/// Where inputs come from, besides the driver's own queue of ARI results.
struct Sources {
    shutdown: watch::Receiver<bool>,
    /// Results of proposals and PIN checks (run on their own tasks).
    results: mpsc::Receiver<Input>,
    events: AriEvents,
    feed: mpsc::Receiver<ClusterFeed>,
    tick: tokio::time::Interval,
}

/// What the loop does next.
enum Next {
    /// Hand this to the controller, then work on the backlog.
    Input(Input),
    /// No new input this turn: work on the backlog.
    Backlog,
    /// Nothing to do (a disconnect, an unreadable reconcile, a shutdown signal that is not
    /// one): wait for the next input.
    Again,
    /// Shutdown, or the events stream ended.
    Stop,
}

/// The controller and what executing its actions needs.
struct SiteRun<A, C> {
    controller: SiteController,
    ari: Arc<A>,
    cluster: Arc<C>,
    counters: watch::Sender<SiteCounters>,
    results: mpsc::Sender<Input>,
    /// Results of ARI requests run on this task, taken before any other input.
    local: VecDeque<Input>,
    /// Actions not yet executed, in order: at most `ACTIONS_PER_INPUT_MAX` run per turn,
    /// other inputs are taken in between, and none is ever dropped.
    pending: VecDeque<Action>,
}

impl<A: Ari + 'static, C: ClusterPort> SiteRun<A, C> {
    /// The next input: the driver's own ARI results first; none while the backlog is full
    /// (back-pressure); otherwise whichever source is ready, in a fixed order.
    async fn next_input(&mut self, sources: &mut Sources) -> Next {
        if let Some(input) = self.local.pop_front() {
            return Next::Input(input);
        }
        if self.pending.len() >= PENDING_ACTIONS_MAX {
            return Next::Backlog;
        }
        let backlog = !self.pending.is_empty();
        tokio::select! {
            biased;
            changed = sources.shutdown.changed() => {
                if changed.is_err() || *sources.shutdown.borrow() { Next::Stop } else { Next::Again }
            }
            Some(result) = sources.results.recv() => Next::Input(result),
            item = sources.events.next() => on_event_item(&*self.ari, item).await,
            Some(item) = sources.feed.recv() => on_cluster_feed(&*self.ari, item).await,
            _ = sources.tick.tick() => Next::Input(Input::Tick),
            // Nothing else is ready: work on the backlog.
            _ = std::future::ready(()), if backlog => Next::Backlog,
        }
    }

    /// Hands one input to the controller and queues the actions it returns.
    fn handle_input(&mut self, input: Input) {
        trace_input(&input);
        let controller = &mut self.controller;
        let actions = self.cluster.read(|routing| controller.handle(now_ms(), input, routing));
        publish_counters(&self.counters, &self.controller);
        tracing::trace!(?actions, "site actions");
        // Serials this step used are covered by the persisted floor before any is sent.
        self.cluster.cover_serials_below(self.controller.next_serial());
        self.pending.extend(actions);
    }

    /// Executes at most `ACTIONS_PER_INPUT_MAX` queued actions, in order.
    async fn work_backlog(&mut self) {
        let turn = self.pending.len().min(ACTIONS_PER_INPUT_MAX);
        for _ in 0..turn {
            let Some(action) = self.pending.pop_front() else { break };
            self.execute_action(action).await;
        }
    }

    /// Executes one action: ARI requests in order on this task (their results come back as
    /// inputs), proposals and PIN checks on their own tasks.
    async fn execute_action(&mut self, action: Action) {
        match action {
            Action::Ari { token, request } => {
                let result = execute_ari(&*self.ari, &request).await;
                self.local.push_back(Input::AriDone { token, result });
            }
            Action::Propose { token, command } => {
                let (cluster, results) = (Arc::clone(&self.cluster), self.results.clone());
                tokio::spawn(async move {
                    let result = cluster.submit(command).await;
                    let _ = results.send(Input::Proposed { token, result }).await;
                });
            }
            Action::Reconcile => {
                if let Some(input) = reconcile_input(&*self.ari).await {
                    self.local.push_back(input);
                }
            }
            Action::ReadMissedRecords { max } => match read_missed_records(&*self.ari, max).await {
                Ok(keys) => self.local.push_back(Input::MissedRecords { keys }),
                Err(error) => tracing::warn!(%error, "missed-caller records not read; the next reconcile tries again"),
            },
            Action::VerifyPin { token, pin, phc } => {
                let results = self.results.clone();
                tokio::spawn(async move {
                    let ok =
                        tokio::task::spawn_blocking(move || verify_pin(pin.digits(), phc.phc())).await.unwrap_or(false);
                    let _ = results.send(Input::PinVerified { token, ok }).await;
                });
            }
        }
    }
}

/// An item of the events stream as the loop's next step: a reconnect reads the box again.
async fn on_event_item<A: Ari>(ari: &A, item: Option<EventStreamItem>) -> Next {
    match item {
        Some(EventStreamItem::Event(event)) => Next::Input(Input::Ari(event)),
        Some(EventStreamItem::Connected { .. }) => reconcile(ari).await,
        Some(EventStreamItem::Disconnected { .. }) => Next::Again,
        None => Next::Stop,
    }
}

/// What the cluster fed, as the loop's next step: a gap reads the box again.
async fn on_cluster_feed<A: Ari>(ari: &A, item: ClusterFeed) -> Next {
    match item {
        ClusterFeed::Effects { apply_index, effects } => Next::Input(Input::Effects { apply_index, effects }),
        ClusterFeed::Gap => reconcile(ari).await,
    }
}

/// A reconcile input from a fresh read of the box; none if the read failed (the next
/// reconnect or gap tries again).
async fn reconcile<A: Ari>(ari: &A) -> Next {
    match reconcile_input(ari).await {
        Some(input) => Next::Input(input),
        None => Next::Again,
    }
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
