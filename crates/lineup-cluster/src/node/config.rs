//! How a node is started: timing and size limits, storage, wall clock, and openraft's
//! configuration derived from them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::{Config, SnapshotPolicy};
use tokio::time::Instant;

use super::lease::{check_island_bound, IslandTiming};
use super::site_state::{AppliedSink, StateHook};
use crate::batch::ENTRY_GATHER_BYTES;
use crate::frame::PEER_FRAME_MAX_BYTES;
use crate::ClusterError;

/// Heartbeat period. Three times openraft's 50 ms default: sites talk across a WAN, and
/// three heartbeats still fit in the minimum election timeout, so one lost datagram does not
/// depose a leader.
pub const HEARTBEAT_INTERVAL_MS: u64 = 150;
/// Election timeout range. openraft 0.9 lets a follower that has known a leader stand for
/// election only after the leader lease (= the maximum) *plus* a random timeout in this
/// range, so failover detection takes 1.4–1.8 s with these values (the goal is a new
/// offer within 2 s of losing the leader). Raise both for links with RTT above ~150 ms.
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 500;
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 900;
/// The leader's clock rate into the routing core (`Tick`).
pub const TICK_INTERVAL_MS: u64 = 1_000;
/// A member that has not answered the leader for this long is unreachable
/// (`SiteUnreachable`): nothing is offered across it, its calls go on. Chosen with the peer
/// transport: a live member answers every heartbeat ([`HEARTBEAT_INTERVAL_MS`]), a leader
/// change takes under 2 s, and a restarted member greets its peers as it starts, so it is
/// heard again well within this (see `transport::quic`).
pub const SITE_UNREACHABLE_AFTER_MS: u64 = 3_000;
/// A member silent for this long is declared lost (`SiteLost`): its calls end and its
/// operators are logged out. Long on purpose: a silent node's Asterisk keeps carrying its
/// calls, and a node that comes back reconciles them itself; an admin declares a site that
/// is really gone sooner (`lineup cluster declare-lost`). 0 disables it.
pub const SITE_LOST_AFTER_MS: u64 = 2 * 60 * 60 * 1_000;
/// Bound on waiting for the stored membership to load before greeting the members.
pub const GREET_MEMBERSHIP_WAIT_MS: u64 = 5_000;
/// How long a client write may take before its outcome counts as unknown.
pub const CLIENT_WRITE_TIMEOUT_MS: u64 = 5_000;
/// Bound on a request a leader serves for a peer (forwarded write, read index).
pub const LEADER_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Rounds of (find leader, send, resolve) before a write gives up with an error.
pub const CLIENT_WRITE_ATTEMPTS_MAX: u32 = 5;
/// Snapshot (and then compact the log) after this many entries since the last snapshot.
pub const SNAPSHOT_LOGS_SINCE_LAST: u64 = 10_000;
/// Entries kept in the log behind the snapshot, so a briefly lagging follower catches up
/// from the log instead of a full snapshot.
pub const LOGS_KEPT_AFTER_SNAPSHOT: u64 = 1_000;
/// Entries per AppendEntries. With entries bounded by [`ENTRY_GATHER_BYTES`] plus one
/// [`COMMAND_MAX_BYTES`] command, an AppendEntries stays under [`PEER_FRAME_MAX_BYTES`].
pub const MAX_PAYLOAD_ENTRIES: u64 = 64;
/// Largest encoded command accepted for proposal.
pub const COMMAND_MAX_BYTES: usize = 32 * 1024;
/// Snapshot chunk size for InstallSnapshot (well under the frame limit).
pub const SNAPSHOT_CHUNK_BYTES: u64 = 1024 * 1024;
/// Bound on waiting for the log writer to finish when a node stops.
pub const SHUTDOWN_WAIT_MS: u64 = 5_000;
/// Applied effects buffered per subscriber before it lags.
pub const EFFECT_STREAM_CAPACITY: usize = 4_096;

const _: () =
    assert!(MAX_PAYLOAD_ENTRIES as usize * (ENTRY_GATHER_BYTES + COMMAND_MAX_BYTES) * 2 <= PEER_FRAME_MAX_BYTES);
const _: () = assert!((SNAPSHOT_CHUNK_BYTES as usize) * 2 <= PEER_FRAME_MAX_BYTES);
const _: () = assert!(HEARTBEAT_INTERVAL_MS * 3 <= ELECTION_TIMEOUT_MIN_MS);
const _: () = assert!(ELECTION_TIMEOUT_MAX_MS * 3 <= SITE_UNREACHABLE_AFTER_MS);
// A stalled link is redialled well before its site would be called unreachable.
const _: () = assert!(crate::transport::quic::PEER_STALL_REDIAL_MS * 2 <= SITE_UNREACHABLE_AFTER_MS);

/// Timing of one node; defaults suit sites on a WAN. Tests shorten them.
#[derive(Debug, Clone)]
pub struct ClusterTiming {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub tick_interval_ms: u64,
    pub site_unreachable_after_ms: u64,
    pub site_lost_after_ms: u64,
    pub client_write_timeout_ms: u64,
}

impl Default for ClusterTiming {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
            election_timeout_min_ms: ELECTION_TIMEOUT_MIN_MS,
            election_timeout_max_ms: ELECTION_TIMEOUT_MAX_MS,
            tick_interval_ms: TICK_INTERVAL_MS,
            site_unreachable_after_ms: SITE_UNREACHABLE_AFTER_MS,
            site_lost_after_ms: SITE_LOST_AFTER_MS,
            client_write_timeout_ms: CLIENT_WRITE_TIMEOUT_MS,
        }
    }
}

/// Where a node keeps its log, vote and snapshot.
#[derive(Clone)]
pub enum NodeStorage {
    /// A redb file in this directory (created if missing), written by a group-commit
    /// thread: every real node.
    Dir(PathBuf),
    /// An in-memory redb database (see [`crate::log_store::memory_database`]) that the caller keeps across
    /// restarts of the node, written on the calling task: the deterministic simulator,
    /// where no thread may race the paused clock. Nothing survives the process.
    Memory(Arc<redb::Database>),
    /// An in-memory redb database the caller keeps across restarts, written by a task of
    /// the calling runtime that commits each batch `sync_delay` after it was queued: the
    /// writer thread's group commit and fsync, on the simulator's paused clock.
    /// [`crate::ClusterNode::crash`] aborts that task first, so appends not yet written are
    /// lost, as a crash loses what the page cache had not synced.
    SimulatedDisk { db: Arc<redb::Database>, sync_delay: std::time::Duration },
}

impl std::fmt::Debug for NodeStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeStorage::Dir(dir) => f.debug_tuple("Dir").field(dir).finish(),
            NodeStorage::Memory(_) => f.write_str("Memory"),
            NodeStorage::SimulatedDisk { sync_delay, .. } => {
                f.debug_struct("SimulatedDisk").field("sync_delay", sync_delay).finish_non_exhaustive()
            }
        }
    }
}

/// The wall clock a node stamps its own commands with (`Tick`, `SiteLost`, proposals).
#[derive(Debug, Clone, Copy)]
pub enum WallClock {
    /// The system clock: every real node.
    System,
    /// `unix_ms` at tokio's `instant`, advancing with tokio's clock: under a paused tokio
    /// clock this is the simulator's virtual time, the same for every node of a run.
    Tokio { unix_ms: u64, instant: Instant },
}

impl WallClock {
    pub fn now_unix_ms(&self) -> u64 {
        match self {
            WallClock::System => now_unix_ms(),
            WallClock::Tokio { unix_ms, instant } => {
                unix_ms + Instant::now().saturating_duration_since(*instant).as_millis() as u64
            }
        }
    }
}

/// How to start a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub site: u64,
    pub storage: NodeStorage,
    pub clock: WallClock,
    pub state_hook: Option<StateHook>,
    pub timing: ClusterTiming,
    /// Snapshot after this many log entries (then compact the log).
    pub snapshot_logs_since_last: u64,
    pub logs_kept_after_snapshot: u64,
    /// Receives every applied command's effects for this site, whole and in log order, for
    /// consumers that must not miss one (the history outbox). Unlike
    /// [`crate::ClusterNode::subscribe_effects`], which drops for a lagging reader, a full sink
    /// holds up apply: keep its consumer fast and local (it writes to a local outbox).
    pub applied_sink: Option<AppliedSink>,
    /// The island settings (§1.4 of `docs/rfcs/island-mode.md`) of a node that may become an
    /// island; `None` for one that never does (island mode off), which nothing bounds.
    pub island: Option<IslandTiming>,
    /// Whether an island forks the applied state and serves the fork (the `lineup` binary
    /// switches it on with island mode). Off here: island mode alone then only detects an
    /// island and answers for it, as the tests of detection want.
    pub island_fork: bool,
}

impl NodeConfig {
    pub fn new(site: u64, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            site,
            storage: NodeStorage::Dir(data_dir.into()),
            clock: WallClock::System,
            state_hook: None,
            timing: ClusterTiming::default(),
            snapshot_logs_since_last: SNAPSHOT_LOGS_SINCE_LAST,
            logs_kept_after_snapshot: LOGS_KEPT_AFTER_SNAPSHOT,
            applied_sink: None,
            island: None,
            island_fork: false,
        }
    }

    /// Refuses settings that break a rule the node relies on: §1.4's inequality between the
    /// majority's lease and the island's wait, and island mode on storage that is no
    /// directory (an island journals its fork in `<data_dir>/island.redb` so that it
    /// survives a restart; a node in memory keeps island mode off).
    pub(super) fn validate(&self) -> Result<(), ClusterError> {
        match (&self.island, &self.storage) {
            (None, _) => Ok(()),
            (Some(island), NodeStorage::Dir(_)) => check_island_bound(self.timing.site_unreachable_after_ms, island),
            (Some(_), NodeStorage::Memory(_) | NodeStorage::SimulatedDisk { .. }) => Err(ClusterError::Config {
                what: "island mode needs a data directory for its journal; a node in memory keeps it off".into(),
                source: None,
            }),
        }
    }

    pub(super) fn raft_config(&self) -> Result<Config, ClusterError> {
        let config = Config {
            cluster_name: "lineup".into(),
            heartbeat_interval: self.timing.heartbeat_interval_ms,
            election_timeout_min: self.timing.election_timeout_min_ms,
            election_timeout_max: self.timing.election_timeout_max_ms,
            install_snapshot_timeout: self.timing.election_timeout_max_ms.max(1_000),
            max_payload_entries: MAX_PAYLOAD_ENTRIES,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
            ..Config::default()
        };
        config.validate().map_err(|e| ClusterError::config("raft timing and snapshot settings", e))
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_that_may_become_an_island_is_refused_when_its_wait_is_too_short() {
        let mut config = NodeConfig::new(1, "unused");
        assert!(config.validate().is_ok(), "island mode off: nothing to bound");
        config.island = Some(IslandTiming::default());
        assert!(config.validate().is_ok());
        config.timing.site_unreachable_after_ms = 5_000;
        let refused = config.validate().unwrap_err().to_string();
        assert!(refused.contains("island_after_ms") && refused.contains("site_unreachable_after_ms"), "{refused}");
    }

    #[test]
    fn a_node_in_memory_keeps_island_mode_off() {
        let mut config = NodeConfig::new(1, "unused");
        config.storage = NodeStorage::Memory(Arc::new(
            redb::Database::builder().create_with_backend(redb::backends::InMemoryBackend::new()).unwrap(),
        ));
        assert!(config.validate().is_ok(), "island mode off");
        config.island = Some(IslandTiming::default());
        let refused = config.validate().unwrap_err().to_string();
        assert!(refused.contains("island mode needs a data directory"), "{refused}");
    }
}
