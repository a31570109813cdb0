//! Golden bytes of the stored and replicated log entry format. A change here means old
//! logs and old peers can no longer be read: bump `codec::FORMAT_VERSION` and plan a
//! migration instead of editing the expected bytes.

use std::collections::BTreeSet;

use lineup_cluster::batch::CommandBatch;
use lineup_cluster::node::LineupRaft;
use lineup_core::{codec, Command, CommandBody, CommandId, SiteId};
use openraft::{BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn log_id(term: u64, node: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, node), index)
}

fn round_trip(entry: &Entry<LineupRaft>) -> Vec<u8> {
    let bytes = codec::encode_versioned(entry).unwrap();
    let back: Entry<LineupRaft> = codec::decode_versioned(&bytes, bytes.len()).unwrap();
    assert_eq!(format!("{back:?}"), format!("{entry:?}"));
    bytes
}

#[test]
fn command_entry_bytes_are_pinned() {
    let entry = Entry::<LineupRaft> {
        log_id: log_id(3, 1, 42),
        payload: EntryPayload::Normal(CommandBatch {
            commands: vec![Command {
                id: CommandId { origin: (2 << 32) | 1, serial: 7 },
                at_ms: 1_700_000_000_000,
                body: CommandBody::SiteLost { site: SiteId(3) },
            }],
        }),
    };
    assert_eq!(hex(&round_trip(&entry)), GOLDEN_COMMAND_ENTRY);
}

#[test]
fn membership_entry_bytes_are_pinned() {
    let voters = BTreeSet::from([1u64, 2, 3]);
    let nodes: std::collections::BTreeMap<u64, BasicNode> =
        voters.iter().map(|s| (*s, BasicNode::new(format!("10.0.0.{s}:7400")))).collect();
    let entry = Entry::<LineupRaft> {
        log_id: log_id(1, 1, 1),
        payload: EntryPayload::Membership(Membership::new(vec![voters], nodes)),
    };
    assert_eq!(hex(&round_trip(&entry)), GOLDEN_MEMBERSHIP_ENTRY);
}

/// version 1, log id (term 3, node 1, index 42), Normal, batch of 1 command: command id
/// (varint origin, serial), at_ms, `CommandBody` variant 25 (SiteLost), site 3.
const GOLDEN_COMMAND_ENTRY: &str = "0103012a0101fd010000000200000007fd0068e5cf8b0100001903";
const GOLDEN_MEMBERSHIP_ENTRY: &str =
    "0101010102010301020303010d31302e302e302e313a37343030020d31302e302e302e323a37343030030d31302e302e302e333a37343030";
