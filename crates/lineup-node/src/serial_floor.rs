//! The site controller's command serials, kept growing across restarts.
//!
//! The site's commands all have one origin (the site id), and the core deduplicates per
//! origin by serial: a restarted site that reused a serial would get an old command's result,
//! or `DuplicateTooOld`. Serials start after the boot time in µs *and* after a high-water
//! mark kept in the data directory, so a restart with the wall clock behind the previous boot
//! still continues upwards. The mark is reserved a block ahead (written and fsynced before any
//! serial below it leaves the node), so a crash skips at most one block.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::NodeError;
use lineup_core::{Command, CommandResult, Routing};
use lineup_site::ProposeFailure;
use lineup_site_driver::ClusterPort;

/// Serials reserved per write of the high-water mark.
pub const SERIAL_RESERVE_BLOCK: u64 = 1_000_000;
/// The file in the data directory holding the mark (decimal text).
pub const SERIAL_FLOOR_FILE: &str = "site-serial-floor";

/// The persisted high-water mark: no serial at or above `floor` has been handed out.
#[derive(Debug)]
pub struct SerialFloor {
    path: PathBuf,
    floor: u64,
}

impl SerialFloor {
    /// Opens the mark in `dir` and reserves the first block; answers the first serial to use,
    /// `max(stored mark, boot_us)`. A missing file is a new node; an unreadable one is an error.
    pub fn open(dir: &Path, boot_us: u64) -> Result<(SerialFloor, u64), NodeError> {
        let path = dir.join(SERIAL_FLOOR_FILE);
        let stored = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|_| NodeError::SerialNotANumber { path: path.clone() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(error) => return Err(NodeError::SerialFile { action: "read", path, error }),
        };
        let first = stored.max(boot_us);
        let mut floor = SerialFloor { path, floor: stored };
        floor.cover(first)?;
        Ok((floor, first))
    }

    /// Makes sure every serial below `next_serial` is below the stored mark, writing a new
    /// mark a block ahead when it is not. Call before the serials leave the node.
    pub fn cover(&mut self, next_serial: u64) -> Result<(), NodeError> {
        if next_serial < self.floor {
            return Ok(());
        }
        let floor = next_serial.saturating_add(SERIAL_RESERVE_BLOCK);
        write_synced(&self.path, floor)?;
        self.floor = floor;
        Ok(())
    }
}

/// Writes `value` to `path` atomically and durably: a temporary file, fsync, rename, fsync
/// of the directory.
fn write_synced(path: &Path, value: u64) -> Result<(), NodeError> {
    let temporary = path.with_extension("tmp");
    let mut file = File::create(&temporary).map_err(|error| NodeError::SerialFile {
        action: "create",
        path: temporary.clone(),
        error,
    })?;
    file.write_all(format!("{value}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path).map_err(|error| NodeError::SerialFile {
        action: "replace",
        path: path.to_path_buf(),
        error,
    })?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A [`ClusterPort`] that keeps the serial mark ahead of the controller's serials.
pub struct SerialReservingPort<P> {
    pub inner: P,
    pub floor: Mutex<SerialFloor>,
}

impl<P: ClusterPort> ClusterPort for SerialReservingPort<P> {
    async fn submit(&self, command: Command) -> Result<CommandResult, ProposeFailure> {
        self.inner.submit(command).await
    }

    fn read<R>(&self, read: impl FnOnce(&Routing) -> R) -> R {
        self.inner.read(read)
    }

    fn cover_serials_below(&self, next_serial: u64) {
        let mut floor = self.floor.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(error) = floor.cover(next_serial) {
            // Proposals go on: only a crash *and* a clock set back would then risk a reused
            // serial, while refusing to propose would stop the site's call control now.
            tracing::error!(error = %error, "cannot store the command serial mark");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_US: u64 = 3_600 * 1_000_000;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lineup-serial-floor-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_restart_with_the_clock_hours_behind_continues_upwards() {
        let dir = temp_dir("behind");
        let boot = 1_800_000_000 * 1_000_000;
        let (mut floor, first) = SerialFloor::open(&dir, boot).unwrap();
        assert_eq!(first, boot);
        // The first run hands out a few blocks' worth of serials, then crashes.
        let last_used = first + 3 * SERIAL_RESERVE_BLOCK + 17;
        floor.cover(last_used + 1).unwrap();
        drop(floor);
        let (_, restarted) = SerialFloor::open(&dir, boot - 3 * HOUR_US).unwrap();
        assert!(restarted > last_used, "restart began at {restarted}, at or below {last_used}");
        assert!(restarted <= last_used + 1 + SERIAL_RESERVE_BLOCK, "a crash skips at most a block");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_restart_with_the_clock_ahead_starts_from_the_clock() {
        let dir = temp_dir("ahead");
        let (_, first) = SerialFloor::open(&dir, 5_000).unwrap();
        let (_, restarted) = SerialFloor::open(&dir, 5_000 + 10 * SERIAL_RESERVE_BLOCK).unwrap();
        assert!(first < restarted);
        assert_eq!(restarted, 5_000 + 10 * SERIAL_RESERVE_BLOCK);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn serials_within_the_block_write_nothing() {
        let dir = temp_dir("block");
        let (mut floor, first) = SerialFloor::open(&dir, 1).unwrap();
        let path = dir.join(SERIAL_FLOOR_FILE);
        std::fs::remove_file(&path).unwrap();
        floor.cover(first + SERIAL_RESERVE_BLOCK - 1).unwrap();
        assert!(!path.exists(), "a serial inside the reserved block must not write");
        floor.cover(first + SERIAL_RESERVE_BLOCK).unwrap();
        assert!(path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Through the routing core: the first run fills the origin's dedup window, the restart
    /// (clock three hours behind) proposes a command that is applied, where the boot time
    /// alone would have been refused as too old.
    #[test]
    fn the_core_applies_a_restarted_sites_commands() {
        use lineup_core::routing::DEDUP_WINDOW_PER_ORIGIN_COMMANDS;
        use lineup_core::{CommandBody, CommandId, CoreError};
        let dir = temp_dir("core");
        let boot = 1_800_000_000 * 1_000_000;
        let (mut floor, first) = SerialFloor::open(&dir, boot).unwrap();
        let mut routing = Routing::new();
        let tick = |serial: u64| Command {
            id: CommandId { origin: 1, serial },
            at_ms: 1_000,
            body: CommandBody::Tick { now_ms: 1_000 },
        };
        let window = DEDUP_WINDOW_PER_ORIGIN_COMMANDS as u64 + 1;
        for serial in first..first + window {
            floor.cover(serial + 1).unwrap();
            assert!(routing.apply(serial, &tick(serial)).result.is_ok());
        }
        drop(floor);
        let behind = boot - 3 * HOUR_US;
        let refused = routing.apply(window + 1, &tick(behind)).result;
        assert!(matches!(refused, Err(CoreError::DuplicateTooOld { .. })), "{refused:?}");
        let (_, restarted) = SerialFloor::open(&dir, behind).unwrap();
        assert!(routing.result_of(&CommandId { origin: 1, serial: restarted }).is_none(), "not deduplicated");
        assert!(routing.apply(window + 2, &tick(restarted)).result.is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_mark_is_a_clear_error() {
        let dir = temp_dir("damaged");
        std::fs::write(dir.join(SERIAL_FLOOR_FILE), "not a number").unwrap();
        let error = SerialFloor::open(&dir, 1).unwrap_err().to_string();
        assert!(error.contains("does not hold a serial number"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
