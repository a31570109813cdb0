//! What another site sends over the cluster link: frames on the QUIC stream, Raft messages
//! and forwarded requests inside them; and what the node reads back from its own disk: log
//! entries and routing snapshots.
//!
//! The Raft calls themselves (`append_entries`, `vote`, `install_snapshot` on a running
//! openraft node) need a running Raft group and are not driven here; what a request would
//! make this node apply is: the commands of an entry (as the state machine applies them),
//! a snapshot's bytes (as `restore` reads them) and a forwarded write.

use crate::rigs::{check, configured_routing, ADMIN_ORIGIN};
use crate::runtime::block_on;
use lineup_cluster::batch::{apply_index, CommandBatch, ENTRY_COMMANDS_MAX};
use lineup_cluster::frame::{read_frame, PEER_DECODE_LIMIT_BYTES, PEER_FRAME_MAX_BYTES};
use lineup_cluster::raft_types::LineupRaft;
use lineup_cluster::rpc::{admit_request, PeerRequest, PeerResponse};
use lineup_core::{codec, Command, CommandBody, CommandId, Routing};
use openraft::EntryPayload;

/// Frames read from one input, at most.
pub const FRAMES_PER_INPUT_MAX: usize = 16;
/// The authenticated sender of every request (this node is site 1).
const PEER_SITE: u64 = 2;
/// Highest log index whose commands are applied: apply indexes (`log index × 256 +
/// position`) must fit a u64, and a Raft log counts its entries from 1.
const LOG_INDEX_APPLIED_MAX: u64 = u64::MAX / (4 * ENTRY_COMMANDS_MAX);

type Entry = openraft::Entry<LineupRaft>;

/// A byte stream from a peer: length-prefixed frames (checked before reading), each decoded
/// as a request from site 2 (and, as the requesting side would, as an answer); an admitted
/// request's commands, snapshot or forwarded write are applied.
pub fn peer_frame(data: &[u8]) {
    let mut wire = data;
    let (mut routing, mut log_index) = configured_routing();
    for _ in 0..FRAMES_PER_INPUT_MAX {
        let Ok(body) = block_on(read_frame(&mut wire, PEER_FRAME_MAX_BYTES)) else { return };
        let _ = codec::decode_versioned_bounded::<PeerResponse, PEER_DECODE_LIMIT_BYTES>(&body);
        match admit_request(PEER_SITE, &body) {
            Ok(PeerRequest::AppendEntries(rpc)) => {
                for entry in &rpc.entries {
                    apply_entry(&mut routing, &mut log_index, entry);
                }
            }
            Ok(PeerRequest::InstallSnapshot(rpc)) if rpc.offset == 0 && rpc.done => restore_and_run(&rpc.data),
            Ok(PeerRequest::ClientWrite(command)) => {
                let batch = CommandBatch { commands: vec![command] };
                let next = log_index + 1;
                apply_batch(&mut routing, &mut log_index, next, &batch);
            }
            Ok(_) | Err(_) => {}
        }
    }
}

/// A stored log entry (the log store's encoding) → decode → its commands applied as the
/// state machine applies them, the core's invariants checked after each.
pub fn raft_log_entry(data: &[u8]) {
    let Ok(entry) = codec::decode_versioned::<Entry>(data, codec::DECODE_LIMIT_BYTES) else { return };
    let bytes = codec::encode_versioned(&entry).expect("a decoded entry encodes");
    let again: Entry = codec::decode_versioned(&bytes, codec::DECODE_LIMIT_BYTES).expect("an encoded entry decodes");
    assert_eq!(codec::encode_versioned(&again).expect("encodes"), bytes, "entry encoding is stable");
    let (mut routing, mut log_index) = configured_routing();
    apply_entry(&mut routing, &mut log_index, &entry);
}

/// A routing snapshot (a Raft snapshot's data) → `Routing::restore` → invariants → its own
/// snapshot restores to the same bytes → time passes.
pub fn routing_snapshot(data: &[u8]) {
    restore_and_run(data);
}

/// Applies an entry the way a follower's state machine would, after its predecessors: a
/// correct leader's entries come in increasing log index with at most 256 commands each.
fn apply_entry(routing: &mut Routing, log_index: &mut u64, entry: &Entry) {
    let index = entry.log_id.index;
    if index <= *log_index || index > LOG_INDEX_APPLIED_MAX {
        return;
    }
    if let EntryPayload::Normal(batch) = &entry.payload {
        apply_batch(routing, log_index, index, batch);
    }
}

fn apply_batch(routing: &mut Routing, log_index: &mut u64, index: u64, batch: &CommandBatch) {
    if batch.commands.len() as u64 > ENTRY_COMMANDS_MAX || index > LOG_INDEX_APPLIED_MAX {
        return;
    }
    for (position, command) in batch.commands.iter().enumerate() {
        routing.apply(apply_index(index, position), command);
        check(routing, command.body.kind());
    }
    *log_index = index;
}

fn restore_and_run(data: &[u8]) {
    let Ok(routing) = Routing::restore(data) else { return };
    check(&routing, "restore");
    let bytes = routing.snapshot_bytes();
    let mut again = Routing::restore(&bytes).expect("a snapshot of a restored state restores");
    assert!(again.snapshot_bytes() == bytes, "snapshot → restore → snapshot changed the bytes");
    let start = again.last_applied_index();
    for (step, later_ms) in [(1u64, 1_000u64), (2, 60_000), (3, 3_600_000)] {
        let Some(index) = start.checked_add(step * ENTRY_COMMANDS_MAX) else { return };
        let body = CommandBody::Tick { now_ms: again.now_ms().saturating_add(later_ms) };
        let command = Command { id: CommandId { origin: ADMIN_ORIGIN, serial: u64::MAX - step }, at_ms: 0, body };
        again.apply(index, &command);
        check(&again, "tick after restore");
    }
}
