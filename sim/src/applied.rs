//! One applied log entry as a replication reports it to the simulator and its checkers:
//! the commands and their results, the digest I5 compares across nodes, and the apply
//! index that numbers each command.

use lineup_core::{Applied, Command};
use std::rc::Rc;

use crate::rng::TraceHash;

/// One applied entry, as the simulator needs it: results for proposers, effects for the
/// site, and the digest the I5 checker compares across nodes.
#[derive(Debug)]
pub struct AppliedEntry {
    pub log_index: u64,
    pub term: u64,
    pub commands: Rc<Vec<Command>>,
    pub applied: Vec<Applied>,
    pub digest: u64,
    /// Re-applied from the durable snapshot after a restart (the site does not get these
    /// effects again: its fresh controller reconciles instead).
    pub replay: bool,
    /// I3 findings, checked right after each command on the first node to apply it.
    pub order_issues: Vec<String>,
}

/// What I5 compares across nodes: index, term, commands, results and offers.
pub(crate) fn entry_digest(term: u64, index: u64, commands: &[Command], applied: &[Applied]) -> u64 {
    let mut h = TraceHash::default();
    h.u64(index);
    h.u64(term);
    for (c, a) in commands.iter().zip(applied) {
        h.u64(c.id.origin);
        h.u64(c.id.serial);
        h.u64(c.at_ms);
        h.str(c.body.kind());
        h.u64(a.result.is_ok() as u64);
        h.u64(a.effects.len() as u64);
        for e in &a.effects {
            if let lineup_core::Effect::Offer(o) | lineup_core::Effect::DialCallback(o) = e {
                h.str(o.call.as_str());
                h.str(o.operator.as_str());
                h.u64(o.fence);
            }
        }
    }
    h.0
}
