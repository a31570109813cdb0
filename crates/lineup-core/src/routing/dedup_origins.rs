//! Which command origins the dedup window remembers: a node seeded from a backup starts
//! its own proposals above every origin the backup remembers for its site, so the core
//! never takes a new command for an old one.

use super::Routing;

impl Routing {
    /// The origins with results in the dedup window, ascending.
    pub fn remembered_origins(&self) -> impl Iterator<Item = u64> + '_ {
        self.state.dedup.keys().copied()
    }
}
