//! The run's report: what one seed did (operations, events, trace hash), the violations
//! found, the rare paths it reached and its calls' figures.

use serde::Serialize;

use crate::config::PlantedBug;

/// Coverage of rare paths (a sweep where these stay zero proves little).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Coverage {
    pub leader_changes: u64,
    pub fenced_offers: u64,
    pub ari_reconnects: u64,
    pub callbacks_served_after_restart: u64,
    pub one_way_partitions: u64,
    pub partitions: u64,
    pub swizzle_clogs: u64,
    pub crashes: u64,
    /// Log entries appended but not yet synced when their node crashed, lost with it.
    pub log_entries_lost_at_crashes: u64,
    pub leader_pauses: u64,
    pub snapshots_installed: u64,
    pub effect_redeliveries: u64,
    pub proposals_retried: u64,
    pub forwards_dropped: u64,
    pub database_outages: u64,
    /// History rows the sites' databases hold at the end (real nodes), all checked.
    pub history_rows: u64,
    pub redis_outages: u64,
    /// Keys the sites' Redis instances hold at the end (real nodes), all checked.
    pub redis_keys: u64,
    /// Nodes down past the unreachable threshold (`long-outage`), and of those past the
    /// run's lost threshold.
    pub long_outages: u64,
    pub outages_past_site_lost: u64,
    /// Nodes restarted with their links cut or lossy for a while (`slow-reconnect`).
    pub slow_reconnects: u64,
    /// Calls connected when a long outage or slow reconnect took a node down: with both
    /// legs at its site, and with one leg there and one at another site.
    pub calls_connected_at_an_outage: u64,
    pub calls_connected_across_an_outage: u64,
    /// I1 double bookings of the one known open kind, counted rather than reported (see
    /// `check::effects_against_phones`): an offer cancelled by the core after the sites
    /// bridged it.
    pub double_bookings_after_cancel: u64,
    /// The leader's health commands committed (first application).
    pub sites_unreachable: u64,
    pub sites_back: u64,
    pub sites_lost: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CallStats {
    pub calls: u64,
    pub completed: u64,
    pub abandoned: u64,
    pub callbacks_promised: u64,
    pub callbacks_failed: u64,
    pub other_outcomes: u64,
    /// Callers sent back to the dialplan before any Enqueue committed (explicit failure).
    pub entry_failures: u64,
    /// Answered calls entered after the warm-up: waits for ASA and service level.
    pub answered_waits: u64,
    pub wait_sum_ms: u64,
    pub within_20s: u64,
}

/// The same callers (arrival times and talk times) through an ideal M/M/c queue with the
/// run's operators: what the federation's waits are compared with, call for call. Only for
/// M/M/c workloads (`Workload::is_mmc`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MmcReference {
    pub operators: usize,
    /// The same calls as `CallStats::answered_waits` (entered after the warm-up).
    pub calls: u64,
    pub wait_sum_ms: u64,
    pub within_20s: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub seed: u64,
    pub ops: u64,
    pub events: u64,
    pub virtual_ms: u64,
    pub trace_hash: String,
    pub violations: Vec<String>,
    pub coverage: Coverage,
    pub calls: CallStats,
    pub mmc_reference: Option<MmcReference>,
    pub bug: PlantedBug,
}
