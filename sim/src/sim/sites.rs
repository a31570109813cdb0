//! Site control under the simulator: each site's real `SiteController`, the inputs it gets
//! (ARI events, effects, proposal results, ticks), the actions it takes (proposals through
//! its node, PIN checks, ARI requests executed against the stand-in) and its reconciles.

use lineup_ari::AriError;
use lineup_core::{Command, CommandId, Effect, SiteId};
use lineup_pbx_sim::BoxIndex;
use lineup_site::{Action, AriFailure, AriRequest, Input, ProposeFailure, SiteConfig, SiteController};
use lineup_testkit::execute_ari;
use std::collections::{BTreeMap, VecDeque};

use super::events::Ev;
use super::replication::Replication;
use super::workload::fake_phc;
use super::Sim;
use crate::config::{PlantedBug, SimConfig};

/// Site controllers get `Input::Tick` this often (proposal retries, digit timeouts).
pub const SITE_TICK_MS: u64 = 500;
/// A proposal not applied locally by then is read back, then reported not committed (the
/// controller retries with the same command id).
pub const PROPOSE_TIMEOUT_MS: u64 = 2_000;
/// Client (API) proposals are retried this many times.
pub const CLIENT_ATTEMPTS_MAX: u32 = 30;
/// An ARI request's reply, and an ARI event's trip to the controller.
pub const ARI_LATENCY_MS: u64 = 1;
pub const SITE_PENDING_PROPOSALS_MAX: usize = 5_000;
/// Effect batches a site remembers for the redelivery fault.
pub const REDELIVERY_WINDOW_BATCHES: usize = 32;

/// Who waits for a proposal's outcome: the site's controller, or an API client.
pub(crate) enum Waiter {
    Site { gen: u64, token: u64 },
    Client { command: Command, attempts: u32 },
}

/// One site's control process.
pub(crate) struct SiteRt {
    pub(crate) ctl: SiteController,
    /// Its process generation (a crash ends the events of the one before).
    pub(crate) gen: u64,
    pub(crate) up: bool,
    /// Its ARI events socket is down.
    pub(crate) deaf: bool,
    pub(crate) paused_until_ms: u64,
    pub(crate) pending: BTreeMap<CommandId, Waiter>,
    /// Effects recently fed to it, by apply index, for redelivery.
    pub(crate) recent_effects: VecDeque<(u64, Vec<Effect>)>,
}

impl SiteRt {
    pub(crate) fn new(ctl: SiteController, gen: u64) -> SiteRt {
        SiteRt {
            ctl,
            gen,
            up: true,
            deaf: false,
            paused_until_ms: 0,
            pending: BTreeMap::new(),
            recent_effects: VecDeque::new(),
        }
    }
}

pub(crate) fn new_controller(cfg: &SimConfig, site: usize, gen: u64) -> SiteController {
    // A restarted site never reuses a serial still in the cluster's dedup window.
    let mut sc = SiteConfig::new(SiteId(site as u64 + 1), 1 + gen * 1_000_000_000);
    sc.callback_endpoint = Some("PJSIP/{number}".into());
    for j in (0..cfg.sites).filter(|j| *j != site) {
        sc.trunk_endpoints.insert(SiteId(j as u64 + 1), format!("PJSIP/lineup-{{call}}@site-{}", j + 1));
    }
    let mut controller = SiteController::new(sc);
    if cfg.bug == PlantedBug::SkipFenceCheck {
        controller.plant_skipped_fence_check();
    }
    controller
}

impl<R: Replication> Sim<R> {
    /// One input reaches a site's controller (later if the process is paused); its actions
    /// are carried out.
    pub(super) fn site_input(&mut self, site: usize, gen: u64, input: Input) {
        if gen != self.sites[site].gen || !self.sites[site].up {
            return;
        }
        if self.now_ms < self.sites[site].paused_until_ms {
            let at = self.sites[site].paused_until_ms;
            self.push(at, Ev::Site { site, gen, input });
            return;
        }
        let now = self.abs_ms();
        let ctl = &mut self.sites[site].ctl;
        let actions = self.repl.read(site, |routing| ctl.handle(now, input, routing));
        for action in actions {
            self.execute(site, action);
        }
    }

    pub(super) fn site_tick(&mut self, site: usize) {
        let gen = self.sites[site].gen;
        self.push(self.now_ms, Ev::Site { site, gen, input: Input::Tick });
        self.push(self.now_ms + SITE_TICK_MS, Ev::SiteTick { site });
    }

    fn execute(&mut self, site: usize, action: Action) {
        if self.cfg.trace {
            let text = format!("  site {site} -> {action:?}");
            self.note(|| text.chars().take(4000).collect());
        }
        let gen = self.sites[site].gen;
        match action {
            Action::Propose { token, command } => {
                if self.sites[site].pending.len() >= SITE_PENDING_PROPOSALS_MAX {
                    self.checker.violation(self.now_ms, format!("I8 site {} has too many proposals", site + 1));
                    return;
                }
                let id = command.id;
                if self.sites[site].pending.insert(id, Waiter::Site { gen, token }).is_some() {
                    self.coverage.proposals_retried += 1;
                }
                self.push(self.now_ms + PROPOSE_TIMEOUT_MS, Ev::ProposeTimeout { site, gen, id });
                self.propose_on(site, command);
            }
            Action::Reconcile => self.reconcile(site),
            Action::ReadMissedRecords { max } => {
                // The deployed dialplan writes these on the boxes; a read that fails answers
                // nothing, as in the driver.
                let read = lineup_testkit::read_missed_records(&mut self.world, BoxIndex(site), max);
                if let Some(keys) = read.ok().filter(|keys| !keys.is_empty()) {
                    let input = Input::MissedRecords { keys };
                    self.push(self.now_ms + ARI_LATENCY_MS, Ev::Site { site, gen, input });
                }
            }
            Action::VerifyPin { token, pin, phc } => {
                let input = Input::PinVerified { token, ok: phc.phc() == fake_phc(pin.digits()) };
                self.push(self.now_ms + ARI_LATENCY_MS, Ev::Site { site, gen, input });
            }
            Action::Ari { token, request } => self.ari_request(site, gen, token, request),
        }
    }

    /// An ARI request against the stand-in; its reply comes back after the ARI latency.
    fn ari_request(&mut self, site: usize, gen: u64, token: u64, request: AriRequest) {
        let result = execute_ari(&mut self.world, BoxIndex(site), &request).map_err(|e| match e {
            AriError::NotFound { message } => AriFailure::Gone(message),
            other => AriFailure::Failed(other.to_string()),
        });
        if let (AriRequest::Continue { variables, .. }, Ok(())) = (&request, &result) {
            if variables.iter().any(|(k, v)| k == "LINEUP_RESULT" && (v == "FAILED" || v == "INVALID")) {
                self.checker.calls.entry_failures += 1;
            }
        }
        self.push(self.now_ms + ARI_LATENCY_MS, Ev::Site { site, gen, input: Input::AriDone { token, result } });
    }

    pub(super) fn propose_timeout(&mut self, site: usize, gen: u64, id: CommandId) {
        if gen != self.sites[site].gen {
            return;
        }
        let Some(waiter) = self.sites[site].pending.remove(&id) else { return };
        // An unknown outcome is read back, never assumed.
        let known = self.read(site, |routing| routing.result_of(&id));
        match waiter {
            Waiter::Site { gen, token } => {
                let result = known.ok_or_else(|| ProposeFailure::NotCommitted("timed out".into()));
                self.push(self.now_ms, Ev::Site { site, gen, input: Input::Proposed { token, result } });
            }
            Waiter::Client { command, attempts } => {
                if known.is_some() || attempts >= CLIENT_ATTEMPTS_MAX {
                    return;
                }
                self.sites[site]
                    .pending
                    .insert(id, Waiter::Client { command: command.clone(), attempts: attempts + 1 });
                self.push(self.now_ms + PROPOSE_TIMEOUT_MS, Ev::ProposeTimeout { site, gen, id });
                if self.sites[site].up {
                    self.propose_on(site, command);
                }
            }
        }
    }

    pub(super) fn reconcile(&mut self, site: usize) {
        let (Ok(channels), Ok(bridges)) =
            (self.world.list_channels(BoxIndex(site)), self.world.list_bridges(BoxIndex(site)))
        else {
            return;
        };
        let gen = self.sites[site].gen;
        self.push(self.now_ms, Ev::Site { site, gen, input: Input::Reconcile { channels, bridges } });
    }

    /// The stand-in's events go to their site's controller (unless it is down or deaf);
    /// the checkers see them all.
    pub(super) fn route_world_outputs(&mut self) {
        for output in self.world.drain_outputs() {
            let site = output.box_index.0;
            self.checker.world_event(site, &output.event.kind);
            if !self.sites[site].up || self.sites[site].deaf {
                continue;
            }
            let gen = self.sites[site].gen;
            self.push(self.now_ms + ARI_LATENCY_MS, Ev::Site { site, gen, input: Input::Ari(output.event) });
        }
    }
}
