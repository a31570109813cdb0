//! Backups of the replicated routing state, and seeding a new node's storage from one.
//!
//! A backup file is self-describing: [`BACKUP_MAGIC`], the format version (u16, little
//! endian), the body's length (u64, little endian), the body's SHA-256, then the body: the
//! codec's versioned encoding of a [`Backup`] (the log entry it was taken at, its term, the
//! time, the members and the routing state's snapshot bytes). A file that is truncated,
//! damaged, too large or of another format is refused before anything is written.
//!
//! Restoring a whole cluster: every new node is seeded from the same file with the same
//! members ([`seed_node_storage`]), so each holds the same openraft snapshot (same last log
//! id, same membership) over a log purged up to it: what any node looks like after it
//! compacted its log. The nodes then start without bootstrap and elect a leader, whose first
//! entry follows the snapshot. The snapshot's log id keeps the backup's index (the core's
//! apply indexes only ever grow) under term 0, so every term the new cluster elects is above
//! it: openraft needs log ids to grow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use lineup_core::{codec, Routing};
use openraft::{BasicNode, CommittedLeaderId, LogId, Membership, SnapshotMeta, StoredMembership};
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::log_store::{open_database, LOG_TABLE, META_INCARNATION, META_LAST_PURGED, META_TABLE, META_VOTE};
use crate::origin::site_of_origin;
use crate::raft_types::LineupRaft;
use crate::state_machine::{encode_stored_snapshot, SNAPSHOT_KEY, SNAPSHOT_TABLE};
use crate::ClusterError;

/// The first bytes of every backup file.
pub const BACKUP_MAGIC: [u8; 8] = *b"LINEUPBK";
/// The layout of the header and body this build writes and reads.
pub const BACKUP_FORMAT_VERSION: u16 = 1;
/// Largest backup file written or read (the whole routing state of a large federation fits
/// well below it).
pub const BACKUP_MAX_BYTES: usize = 64 * 1024 * 1024;
/// The node's redb file inside its Raft directory.
pub const RAFT_DATABASE_FILE: &str = "raft.redb";

const CHECKSUM_BYTES: usize = 32;
/// Magic, version, body length, checksum.
const HEADER_BYTES: usize = BACKUP_MAGIC.len() + 2 + 8 + CHECKSUM_BYTES;

/// What a backup holds: the committed routing state as of one log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// When it was taken (Unix ms, the answering node's wall clock).
    pub taken_at_ms: u64,
    /// The site whose node answered.
    pub taken_on_site: u64,
    /// The last log entry the state includes, and the term it was written in.
    pub log_index: u64,
    pub log_term: u64,
    /// The cluster's members at that entry (site → QUIC address).
    pub members: BTreeMap<u64, String>,
    /// The routing state ([`Routing::snapshot_bytes`]).
    pub state: Vec<u8>,
}

fn refused(what: impl Into<String>) -> ClusterError {
    ClusterError::Backup { what: what.into() }
}

fn sha256(bytes: &[u8]) -> [u8; CHECKSUM_BYTES] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; CHECKSUM_BYTES];
    out.copy_from_slice(digest.as_ref());
    out
}

impl Backup {
    /// The file's bytes; refused over [`BACKUP_MAX_BYTES`].
    pub fn encode(&self) -> Result<Vec<u8>, ClusterError> {
        let body = codec::encode_versioned(self)?;
        let total = HEADER_BYTES + body.len();
        if total > BACKUP_MAX_BYTES {
            return Err(refused(format!(
                "a backup of {total} bytes exceeds the limit of {BACKUP_MAX_BYTES} bytes (BACKUP_MAX_BYTES)"
            )));
        }
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&BACKUP_MAGIC);
        out.extend_from_slice(&BACKUP_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&sha256(&body));
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Reads a backup file's bytes: magic, version, length and checksum must match, and the
    /// routing state must restore.
    pub fn decode(bytes: &[u8]) -> Result<Backup, ClusterError> {
        if bytes.len() > BACKUP_MAX_BYTES {
            return Err(refused(format!(
                "the file of {} bytes exceeds the limit of {BACKUP_MAX_BYTES} bytes for a backup",
                bytes.len()
            )));
        }
        if bytes.len() < HEADER_BYTES || bytes[..BACKUP_MAGIC.len()] != BACKUP_MAGIC {
            return Err(refused("not a Lineup backup file (no backup header)"));
        }
        let (version, rest) = bytes[BACKUP_MAGIC.len()..].split_at(2);
        let version = u16::from_le_bytes([version[0], version[1]]);
        if version != BACKUP_FORMAT_VERSION {
            return Err(refused(format!(
                "backup format version {version}; this build reads version {BACKUP_FORMAT_VERSION}"
            )));
        }
        let (length, rest) = rest.split_at(8);
        let mut length_bytes = [0u8; 8];
        length_bytes.copy_from_slice(length);
        let length = u64::from_le_bytes(length_bytes);
        let (checksum, body) = rest.split_at(CHECKSUM_BYTES);
        if length != body.len() as u64 {
            return Err(refused(format!(
                "the file is truncated or extended: its header says {length} bytes of content, it holds {}",
                body.len()
            )));
        }
        if sha256(body) != checksum {
            return Err(refused("the file is damaged: its content does not match its checksum"));
        }
        let backup: Backup = codec::decode_versioned(body, BACKUP_MAX_BYTES)?;
        backup.routing()?;
        Ok(backup)
    }

    /// The routing state it holds.
    pub fn routing(&self) -> Result<Routing, ClusterError> {
        Routing::restore(&self.state).map_err(|e| refused(format!("the routing state does not restore: {e}")))
    }

    /// The log id the restored nodes' snapshot ends at (see the module notes).
    pub fn restored_log_id(&self) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(0, 0), self.log_index)
    }
}

/// What [`seed_node_storage`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeded {
    /// The snapshot's last log index (the backup's).
    pub log_index: u64,
    /// The voters written as the new cluster's membership.
    pub voters: BTreeSet<u64>,
    /// This node's first run will be number `incarnation_floor + 1`: above every run of this
    /// site the backup's dedup window remembers.
    pub incarnation_floor: u32,
}

/// Seeds the Raft storage in `raft_dir` of site `site` from `backup`, for a new cluster of
/// `members` (site → QUIC address; the same on every node restored, `site` among them).
/// Refused when `raft_dir` already holds a Raft log, a vote or a snapshot.
pub fn seed_node_storage(
    raft_dir: &Path,
    site: u64,
    members: &BTreeMap<u64, String>,
    backup: &Backup,
) -> Result<Seeded, ClusterError> {
    if !members.contains_key(&site) {
        return Err(refused(format!("site {site} is not among the new cluster's members")));
    }
    let routing = backup.routing()?;
    std::fs::create_dir_all(raft_dir)?;
    let path = raft_dir.join(RAFT_DATABASE_FILE);
    let db = open_database(&path)?;
    if holds_raft_state(&db)? {
        return Err(refused(format!(
            "{} already holds a Raft log or state: restore only into a fresh data directory",
            path.display()
        )));
    }
    let storage = |e: redb::Error| ClusterError::storage(format!("seeding {}", path.display()), e);
    let log_id = backup.restored_log_id();
    let voters: BTreeSet<u64> = members.keys().copied().collect();
    let nodes: BTreeMap<u64, BasicNode> =
        members.iter().map(|(site, addr)| (*site, BasicNode::new(addr.clone()))).collect();
    let membership = StoredMembership::new(Some(log_id), Membership::new(vec![voters.clone()], nodes));
    let meta = SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: membership,
        snapshot_id: format!("restored-{}", backup.log_index),
    };
    let snapshot = encode_stored_snapshot::<LineupRaft>(meta, backup.state.clone())?;
    let last_purged = codec::encode_versioned(&log_id)?;
    let incarnation_floor = incarnation_floor(&routing, site);
    let incarnation = codec::encode_versioned(&incarnation_floor)?;
    // One transaction: a seeded node has all of it or none of it.
    let tx = db.begin_write().map_err(|e| storage(e.into()))?;
    {
        let mut snapshots = tx.open_table(SNAPSHOT_TABLE).map_err(|e| storage(e.into()))?;
        snapshots.insert(SNAPSHOT_KEY, snapshot.as_slice()).map_err(|e| storage(e.into()))?;
        let mut meta = tx.open_table(META_TABLE).map_err(|e| storage(e.into()))?;
        meta.insert(META_LAST_PURGED, last_purged.as_slice()).map_err(|e| storage(e.into()))?;
        meta.insert(META_INCARNATION, incarnation.as_slice()).map_err(|e| storage(e.into()))?;
    }
    tx.commit().map_err(|e| storage(e.into()))?;
    Ok(Seeded { log_index: backup.log_index, voters, incarnation_floor })
}

/// Whether the database holds anything of a Raft member: a log entry, a vote, a purge
/// point or a snapshot.
fn holds_raft_state(db: &redb::Database) -> Result<bool, ClusterError> {
    let storage = |e: redb::Error| ClusterError::storage("reading the existing Raft storage", e);
    let tx = db.begin_read().map_err(|e| storage(e.into()))?;
    let log = tx.open_table(LOG_TABLE).map_err(|e| storage(e.into()))?;
    let has_log = log.first().map_err(|e| storage(e.into()))?.is_some();
    let meta = tx.open_table(META_TABLE).map_err(|e| storage(e.into()))?;
    let mut has_meta = false;
    for key in [META_VOTE, META_LAST_PURGED] {
        has_meta |= meta.get(key).map_err(|e| storage(e.into()))?.is_some();
    }
    let snapshots = tx.open_table(SNAPSHOT_TABLE).map_err(|e| storage(e.into()))?;
    let has_snapshot = snapshots.get(SNAPSHOT_KEY).map_err(|e| storage(e.into()))?.is_some();
    Ok(has_log || has_meta || has_snapshot)
}

/// The highest run of `site` whose commands the state's dedup window remembers (0: none).
fn incarnation_floor(routing: &Routing, site: u64) -> u32 {
    routing
        .remembered_origins()
        .filter(|origin| origin >> 32 != 0 && site_of_origin(*origin) == site)
        .map(|origin| (origin & u64::from(u32::MAX)) as u32)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Backup {
        Backup {
            taken_at_ms: 1_700_000_000_000,
            taken_on_site: 2,
            log_index: 42,
            log_term: 3,
            members: BTreeMap::from([(1, "127.0.0.1:7401".to_string()), (2, "127.0.0.1:7402".to_string())]),
            state: Routing::new().snapshot_bytes(),
        }
    }

    #[test]
    fn a_backup_round_trips_and_any_damage_is_refused() {
        let backup = sample();
        let bytes = backup.encode().unwrap();
        assert_eq!(Backup::decode(&bytes).unwrap(), backup);
        for cut in [0, 5, HEADER_BYTES, bytes.len() - 1] {
            let error = Backup::decode(&bytes[..cut]).unwrap_err().to_string();
            assert!(error.starts_with("backup: "), "{cut}: {error}");
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(Backup::decode(&flipped).unwrap_err().to_string().contains("checksum"));
        let mut other_version = bytes.clone();
        other_version[BACKUP_MAGIC.len()] = 9;
        assert!(Backup::decode(&other_version).unwrap_err().to_string().contains("version 9"));
        let huge = vec![0u8; BACKUP_MAX_BYTES + 1];
        assert!(Backup::decode(&huge).unwrap_err().to_string().contains("exceeds the limit"));
    }

    #[test]
    fn a_seeded_directory_is_refused_a_second_time() {
        let dir = std::env::temp_dir().join(format!("lineup-backup-seed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let backup = sample();
        let seeded = seed_node_storage(&dir, 1, &backup.members, &backup).unwrap();
        assert_eq!(seeded.log_index, 42);
        assert_eq!(seeded.voters, BTreeSet::from([1, 2]));
        let error = seed_node_storage(&dir, 1, &backup.members, &backup).unwrap_err().to_string();
        assert!(error.contains("already holds a Raft log or state"), "{error}");
        assert!(seed_node_storage(&dir.join("other"), 3, &backup.members, &backup).is_err(), "not a member");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
