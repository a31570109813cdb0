//! The simulator's events and their order in the queue: virtual ms, then insertion order.

use lineup_core::CommandId;
use lineup_site::Input;
use std::cmp::Ordering;

use crate::raft::Msg;

/// One scheduled happening. The first six are the Raft model's own messages and timers
/// (openraft's nodes keep theirs inside their runtime).
#[derive(Debug, Clone)]
pub(crate) enum Ev {
    Net { from: usize, to: usize, msg: Msg },
    Election { node: usize, gen: u64 },
    Heartbeat { node: usize, term: u64, gen: u64 },
    TickDuty { node: usize, term: u64, gen: u64 },
    Sync { node: usize, gen: u64 },
    Flush { node: usize, gen: u64 },
    Site { site: usize, gen: u64, input: Input },
    ProposeTimeout { site: usize, gen: u64, id: CommandId },
    SiteTick { site: usize },
    Arrival { site: usize },
    Abandon { caller: u64 },
    Hangup { caller: u64 },
    Press { caller: u64, digits: &'static str },
    Login { op: usize },
    BreakStart { op: usize },
    BreakEnd { op: usize },
    RingMiss { op: usize, missing: bool },
    Care,
    Fault,
    Heal(Heal),
    Clog((usize, usize)),
    Check,
    EndOfHeal,
    LongFault,
}

/// A fault's own end.
#[derive(Debug, Clone)]
pub(crate) enum Heal {
    Links(Vec<(usize, usize)>),
    Restart(usize),
    Unpause(usize),
    Hear(usize),
    Loss,
    Database(usize),
    Redis(usize),
    /// A slow reconnect's restart: the node starts with its links cut (or lossy) for
    /// `cut_for_ms`.
    SlowRestart {
        node: usize,
        cut_for_ms: u64,
        lossy: bool,
    },
    /// The end of a slow reconnect's lossy spell.
    SiteLoss(usize),
}

impl Ev {
    /// The event's kind in the trace hash (fixed: changing one changes every seed's hash).
    pub(crate) fn tag(&self) -> u64 {
        match self {
            Ev::Net { .. } => 1,
            Ev::Election { .. } => 2,
            Ev::Heartbeat { .. } => 3,
            Ev::TickDuty { .. } => 4,
            Ev::Sync { .. } => 5,
            Ev::Flush { .. } => 6,
            Ev::Site { .. } => 7,
            Ev::ProposeTimeout { .. } => 8,
            Ev::SiteTick { .. } => 9,
            Ev::Arrival { .. } => 10,
            Ev::Abandon { .. } => 11,
            Ev::Hangup { .. } => 12,
            Ev::Press { .. } => 13,
            Ev::Login { .. } => 14,
            Ev::BreakStart { .. } => 15,
            Ev::BreakEnd { .. } => 16,
            Ev::RingMiss { .. } => 17,
            Ev::Care => 18,
            Ev::Fault => 19,
            Ev::Heal(_) => 20,
            Ev::Check => 21,
            Ev::EndOfHeal => 22,
            Ev::Clog(_) => 23,
            Ev::LongFault => 24,
        }
    }
}

pub(crate) struct Scheduled {
    pub(crate) at_ms: u64,
    pub(crate) seq: u64,
    /// Boxed: events are large (ARI events, log entries) and the heap moves its items on
    /// every push and pop.
    pub(crate) ev: Box<Ev>,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    // Reversed: BinaryHeap is a max-heap and the earliest (time, seq) must come first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.seq).cmp(&(self.at_ms, self.seq))
    }
}
