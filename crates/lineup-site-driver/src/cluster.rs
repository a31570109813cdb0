//! The cluster as site control sees it: where proposals go and where effects come from.

use lineup_core::{Command, CommandResult, Effect, Routing};
use lineup_site::ProposeFailure;
use std::future::Future;

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
