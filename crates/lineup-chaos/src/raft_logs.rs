//! After the run, with every node stopped: the sites' Raft logs agree. Every pair of sites
//! must hold the same bytes at each index both still hold (the rest was compacted into a
//! snapshot) up to the lower of the two committed indexes they stored: a committed entry is
//! never rewritten, on any member. Past that, an uncommitted tail may differ (a leader
//! stopped before it could replicate), which Raft allows.

use lineup_cluster::log_store::StoredLog;
use serde::Serialize;
use std::path::PathBuf;

/// Disagreements listed in the report at most (the first ones tell the story).
const DISAGREEMENTS_SHOWN_MAX_COUNT: usize = 10;

#[derive(Clone, Debug, Default, Serialize)]
pub struct RaftLogAgreement {
    pub agree: bool,
    /// Committed entries compared across pairs of sites.
    pub entries_compared: u64,
    pub disagreements: Vec<String>,
}

/// Where a stopped site's Raft log is: the node's data directory's `raft/raft.redb`.
pub fn raft_log_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("raft").join("raft.redb")
}

/// Reads every site's stopped log and compares them; an unreadable log disagrees.
pub fn check(sites: &[(u64, PathBuf)]) -> RaftLogAgreement {
    let mut logs = Vec::new();
    let mut unreadable = Vec::new();
    for (site, path) in sites {
        match StoredLog::read(path) {
            Ok(log) => logs.push((*site, log)),
            Err(error) => unreadable.push(format!("site {site}: {error}")),
        }
    }
    let mut agreement = compare(&logs);
    if !unreadable.is_empty() {
        agreement.agree = false;
        agreement.disagreements.splice(0..0, unreadable);
        agreement.disagreements.truncate(DISAGREEMENTS_SHOWN_MAX_COUNT);
    }
    agreement
}

/// Compares every pair of logs over the committed entries both hold.
pub fn compare(logs: &[(u64, StoredLog)]) -> RaftLogAgreement {
    let mut agreement = RaftLogAgreement { agree: true, ..RaftLogAgreement::default() };
    for (i, (site_a, a)) in logs.iter().enumerate() {
        for (site_b, b) in &logs[i + 1..] {
            let committed = a.committed.min(b.committed).unwrap_or(0);
            for (index, bytes) in a.entries.range(..=committed) {
                let Some(other) = b.entries.get(index) else { continue };
                agreement.entries_compared += 1;
                if bytes != other {
                    agreement.agree = false;
                    if agreement.disagreements.len() < DISAGREEMENTS_SHOWN_MAX_COUNT {
                        let what = format!("committed entry {index} differs between sites {site_a} and {site_b}");
                        agreement.disagreements.push(what);
                    }
                }
            }
        }
    }
    agreement
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(committed: u64, entries: &[(u64, &[u8])]) -> StoredLog {
        StoredLog {
            committed: Some(committed),
            entries: entries.iter().map(|(index, bytes)| (*index, bytes.to_vec())).collect(),
        }
    }

    #[test]
    fn committed_entries_both_hold_are_compared_and_a_differing_tail_is_allowed() {
        // Site 1 compacted up to 3; site 2's tail past its commit differs (an old leader's).
        let one = log(6, &[(4, b"d"), (5, b"e"), (6, b"f"), (7, b"g")]);
        let two = log(5, &[(2, b"b"), (3, b"c"), (4, b"d"), (5, b"e"), (6, b"X")]);
        let agreement = compare(&[(1, one), (2, two)]);
        assert!(agreement.agree, "{agreement:?}");
        assert_eq!(agreement.entries_compared, 2, "entries 4 and 5");
    }

    #[test]
    fn a_committed_entry_that_differs_is_reported() {
        let one = log(3, &[(1, b"a"), (2, b"b"), (3, b"c")]);
        let two = log(3, &[(1, b"a"), (2, b"B"), (3, b"c")]);
        let agreement = compare(&[(1, one), (2, two)]);
        assert!(!agreement.agree);
        assert_eq!(agreement.disagreements, vec!["committed entry 2 differs between sites 1 and 2".to_string()]);
    }
}
