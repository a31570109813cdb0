//! What a run simulates: federation size, workload, faults, planted bugs.

use lineup_cluster::leader_duty::HealthThresholds;
use lineup_cluster::node::{SITE_LOST_AFTER_MS, SITE_UNREACHABLE_AFTER_MS};
use serde::Serialize;

/// Milliseconds since the Unix epoch at virtual time zero (a fixed date: no wall clock).
pub const EPOCH_MS: u64 = 1_795_400_000_000;

/// Names of the fault kinds, by bit.
pub const FAULT_KIND_NAMES: [&str; 13] = [
    "partition",
    "one-way",
    "swizzle-clog",
    "crash",
    "leader-pause",
    "ari-drop",
    "loss-burst",
    "effect-redelivery",
    "leader-crash",
    // Real nodes only (the history pipeline and the projection run in their runtime).
    "database-outage",
    "redis-outage",
    // Drawn on their own stream (`Sim::long_fault`), so adding them left the draws of the
    // kinds above unchanged: a run without them replays the traces from before they existed.
    "long-outage",
    "slow-reconnect",
];
/// The first kind of the long faults' own stream.
pub const LONG_FAULT_KIND_FIRST: usize = 11;
pub const FAULT_KINDS_ALL: u32 = (1 << FAULT_KIND_NAMES.len()) - 1;
/// Virtual-time guard: a run that has not reached its ops by then stops (a violation).
pub const RUN_VIRTUAL_MAX_MS: u64 = 48 * 3_600_000;
/// Committed client operations per answered M/M/c call: Enqueue, Connected, Completed.
pub const MMC_OPS_PER_CALL: u64 = 3;

/// A deliberately broken behaviour, switched on only by the planted-bug tests, to prove the
/// checkers notice (mutation testing of the simulator itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PlantedBug {
    #[default]
    None,
    /// Sites execute stale Offers/CancelOffers (lineup-site's fence check off).
    SkipFenceCheck,
    /// The leader gives every re-delivered proposal a fresh command id, as if the core had
    /// no duplicate table: retries and network duplicates are applied again.
    NoDedupTable,
    /// The leader applies entries (and its site acts on them) when it appends them, before
    /// a majority holds them.
    AckBeforeCommit,
    /// The history database acknowledges deliveries during an outage without keeping them
    /// (real nodes only: the history pipeline runs with them).
    LossyDatabase,
    /// Redis acknowledges writes during an outage without keeping them (real nodes only).
    LossyRedis,
}

impl PlantedBug {
    pub fn parse(s: &str) -> Option<PlantedBug> {
        match s {
            "none" => Some(PlantedBug::None),
            "skip-fence-check" => Some(PlantedBug::SkipFenceCheck),
            "no-dedup-table" => Some(PlantedBug::NoDedupTable),
            "ack-before-commit" => Some(PlantedBug::AckBeforeCommit),
            "lossy-database" => Some(PlantedBug::LossyDatabase),
            "lossy-redis" => Some(PlantedBug::LossyRedis),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::None => "none",
            PlantedBug::SkipFenceCheck => "skip-fence-check",
            PlantedBug::NoDedupTable => "no-dedup-table",
            PlantedBug::AckBeforeCommit => "ack-before-commit",
            PlantedBug::LossyDatabase => "lossy-database",
            PlantedBug::LossyRedis => "lossy-redis",
        }
    }
}

/// What replicates the routing core between the simulated sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Replication {
    /// The simulator's own deterministic Raft model (`raft.rs`): fast enough for the big
    /// sweeps, and the home of the replication-level planted bugs.
    #[default]
    Model,
    /// lineup-cluster's `ClusterNode` (openraft 0.9) over the in-memory transport in a
    /// paused-clock runtime (`real.rs`): the production replication, slower.
    Openraft,
}

impl Replication {
    pub fn parse(s: &str) -> Option<Replication> {
        match s {
            "model" => Some(Replication::Model),
            "openraft" => Some(Replication::Openraft),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Replication::Model => "model",
            Replication::Openraft => "openraft",
        }
    }
}

/// One entry into a queue at every site: a dialplan extension of `deploy/asterisk`.
#[derive(Debug, Clone, Serialize)]
pub struct GateMix {
    pub exten: &'static str,
    /// Share of the site's arrivals that use this gate.
    pub share: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    /// Calls per hour entering at each site (all gates together).
    pub arrivals_per_hour_per_site: f64,
    pub gates: Vec<GateMix>,
    /// Mean talk time (exponential), capped at `handle_cap_factor` times the mean.
    pub aht_ms: f64,
    pub handle_cap_factor: f64,
    /// Mean patience (exponential) before a waiting caller hangs up; None: never abandons.
    pub patience_mean_ms: Option<f64>,
    pub patience_max_ms: u64,
    /// Share of callers who accept a callback when it is offered.
    pub callback_takers: f64,
    /// Share of callback numbers that never answer (the promise must then fail explicitly).
    pub callback_no_answer: f64,
    pub operators_per_site: usize,
    /// Share of operators in ring mode (the rest stay on the line: persistent mode).
    pub ring_mode_share: f64,
    /// Mean time between an operator's breaks, and mean break length; None: no breaks.
    pub break_every_ms: Option<f64>,
    pub break_mean_ms: f64,
    /// Mean time between spells of a ring-mode phone not answering; None: always answers.
    pub ring_miss_every_ms: Option<f64>,
    pub wrap_up_ms: u64,
    /// Offer callbacks when the ETA is above this.
    pub callback_offer_above_eta_ms: Option<u64>,
    pub announce_every_ms: Option<u64>,
}

impl Workload {
    /// The mixed workload of the fault sweep: three gates on two queues, ring and
    /// persistent operators, abandons, callbacks, breaks and missed rings.
    pub fn chaos() -> Workload {
        Workload {
            arrivals_per_hour_per_site: 900.0,
            gates: vec![
                GateMix { exten: "5000", share: 0.6 },
                GateMix { exten: "5001", share: 0.1 },
                GateMix { exten: "5002", share: 0.3 },
            ],
            aht_ms: 40_000.0,
            handle_cap_factor: 6.0,
            patience_mean_ms: Some(90_000.0),
            patience_max_ms: 300_000,
            callback_takers: 0.3,
            callback_no_answer: 0.2,
            operators_per_site: 4,
            ring_mode_share: 0.25,
            break_every_ms: Some(900_000.0),
            break_mean_ms: 60_000.0,
            ring_miss_every_ms: Some(600_000.0),
            wrap_up_ms: 2_000,
            callback_offer_above_eta_ms: Some(30_000),
            announce_every_ms: Some(45_000),
        }
    }

    /// One FIFO queue with exponential talk and nothing else: the shape Erlang C describes.
    pub fn is_mmc(&self) -> bool {
        self.gates.len() == 1
            && self.patience_mean_ms.is_none()
            && self.callback_takers == 0.0
            && self.ring_mode_share == 0.0
            && self.break_every_ms.is_none()
            && self.wrap_up_ms == 0
            && self.callback_offer_above_eta_ms.is_none()
            && self.announce_every_ms.is_none()
    }

    /// M/M/c: one queue, one gate, FIFO, exponential talk, no abandons, no callbacks, no
    /// breaks, no wrap-up, everyone persistent. `operators` are spread over the sites.
    pub fn mmc(arrivals_per_hour: f64, aht_ms: f64, operators_per_site: usize, sites: usize) -> Workload {
        Workload {
            arrivals_per_hour_per_site: arrivals_per_hour / sites as f64,
            gates: vec![GateMix { exten: "5000", share: 1.0 }],
            aht_ms,
            // A cap would shorten the mean; 40x the mean is never reached in practice.
            handle_cap_factor: 40.0,
            patience_mean_ms: None,
            patience_max_ms: u64::MAX,
            callback_takers: 0.0,
            callback_no_answer: 0.0,
            operators_per_site,
            ring_mode_share: 0.0,
            break_every_ms: None,
            break_mean_ms: 0.0,
            ring_miss_every_ms: None,
            wrap_up_ms: 0,
            callback_offer_above_eta_ms: None,
            announce_every_ms: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SimConfig {
    pub seed: u64,
    pub sites: usize,
    /// Committed client operations (every command but the leader's Tick) to reach before
    /// the faults stop and the run heals and drains.
    pub ops: u64,
    pub faults: bool,
    /// Which fault kinds may be drawn (bit k = kind k of `Sim::fault`; see FAULT_KIND_NAMES).
    pub fault_kinds: u32,
    pub bug: PlantedBug,
    pub replication: Replication,
    pub workload: Workload,
    /// Keep a human-readable trace (for the file written on failure).
    pub trace: bool,
    /// Stop at the first violation (the sweep) or keep counting (diagnosis).
    pub stop_at_first_violation: bool,
    /// Calls that entered before this virtual time are left out of the wait statistics
    /// (M/M/c warm-up).
    pub stats_after_ms: u64,
    /// Virtual-time guard: a run that has not reached its ops by then stops with an I7
    /// violation (`RUN_VIRTUAL_MAX_MS`, or longer for long M/M/c runs).
    pub virtual_max_ms: u64,
    /// The leader's health thresholds (lineup-cluster's `ClusterTiming` for real nodes, the
    /// model's leader duty otherwise): silence makes a member unreachable after the first,
    /// lost after the second (0: never).
    pub site_unreachable_after_ms: u64,
    pub site_lost_after_ms: u64,
}

impl SimConfig {
    /// M/M/c through the whole federation: no faults, one queue, FIFO, no abandons;
    /// `ops` committed client operations, waits counted after `stats_after_ms`.
    pub fn mmc(seed: u64, sites: usize, workload: Workload, ops: u64, stats_after_ms: u64) -> SimConfig {
        // Arrivals alone take calls / λ; allow twice that (Poisson scatter, the drain).
        let arrivals_per_hour = workload.arrivals_per_hour_per_site * sites as f64;
        let calls = ops.div_ceil(MMC_OPS_PER_CALL) as f64;
        let arrivals_ms = if arrivals_per_hour > 0.0 { calls / arrivals_per_hour * 3_600_000.0 } else { 0.0 };
        let virtual_max_ms = RUN_VIRTUAL_MAX_MS.max((2.0 * arrivals_ms) as u64); // `as` saturates
        SimConfig {
            seed,
            sites,
            ops,
            faults: false,
            fault_kinds: 0,
            bug: PlantedBug::None,
            replication: Replication::Model,
            workload,
            trace: false,
            stop_at_first_violation: true,
            stats_after_ms,
            virtual_max_ms,
            site_unreachable_after_ms: SITE_UNREACHABLE_AFTER_MS,
            site_lost_after_ms: SITE_LOST_AFTER_MS,
        }
    }

    pub fn health_thresholds(&self) -> HealthThresholds {
        HealthThresholds {
            unreachable_after_ms: self.site_unreachable_after_ms,
            lost_after_ms: self.site_lost_after_ms,
        }
    }

    pub fn chaos(seed: u64, ops: u64) -> SimConfig {
        SimConfig {
            seed,
            sites: 3,
            ops,
            faults: true,
            fault_kinds: FAULT_KINDS_ALL,
            bug: PlantedBug::None,
            replication: Replication::Model,
            workload: Workload::chaos(),
            trace: false,
            stop_at_first_violation: true,
            stats_after_ms: 0,
            virtual_max_ms: RUN_VIRTUAL_MAX_MS,
            site_unreachable_after_ms: SITE_UNREACHABLE_AFTER_MS,
            site_lost_after_ms: SITE_LOST_AFTER_MS,
        }
    }
}
