//! The Asterisk queue_log flat file (`epoch|callid|queue|agent|EVENT|data...`), written
//! from committed `QueueLog` effects with [`QueueLogEntry::to_line`], so existing queue_log
//! reporting tools read it unchanged (the queue alone in the queue field; a gate in
//! ENTERQUEUE's first data field, where app_queue writes `Queue()`'s URL).
//!
//! Exactly once across restarts: after appending an entry's lines and syncing the file, the
//! writer records `(last log index, file length)` in a sidecar (`<file>.lineup-index`,
//! replaced atomically by rename). On open, a file longer than the recorded length holds
//! lines of an entry whose sidecar update never happened: they are cut off and written
//! again. A file shorter than recorded was rotated away (logrotate): writing continues at
//! its end. The same repair runs before every append, so a batch that failed part way while
//! the node runs (a full disk) is not written twice when the drainer retries it. The file is
//! Lineup's own: nothing else may append to it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use lineup_core::{Effect, QueueLogEntry};

use crate::error::StoreError;
use crate::outbox::{AppliedEntry, OutboxSink};

/// Suffix of the sidecar that remembers the last log index written.
pub const SIDECAR_SUFFIX: &str = ".lineup-index";

/// An append-only Asterisk-format queue_log file.
#[derive(Debug)]
pub struct QueueLogFile {
    path: PathBuf,
    sidecar: PathBuf,
    file: File,
    last_index: u64,
    len_bytes: u64,
}

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::QueueLogFile { path: path.display().to_string(), source }
}

fn read_sidecar(path: &Path) -> Result<Option<(u64, u64)>, StoreError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut fields = text.split_whitespace().map(str::parse::<u64>);
            match (fields.next(), fields.next()) {
                (Some(Ok(index)), Some(Ok(len))) => Ok(Some((index, len))),
                // A damaged sidecar: start over from the file's end rather than fail forever.
                _ => Ok(None),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, e)),
    }
}

impl QueueLogFile {
    /// Opens (or creates) the file and its sidecar, repairing a half-recorded append.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut sidecar = path.clone().into_os_string();
        sidecar.push(SIDECAR_SUFFIX);
        let sidecar = PathBuf::from(sidecar);
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io_error(&path, e))?;
        let actual = file.metadata().map_err(|e| io_error(&path, e))?.len();
        let (last_index, len_bytes) = match read_sidecar(&sidecar)? {
            Some((index, recorded)) if actual > recorded => {
                file.set_len(recorded).map_err(|e| io_error(&path, e))?;
                file.sync_all().map_err(|e| io_error(&path, e))?;
                (index, recorded)
            }
            Some((index, _)) => (index, actual),
            None => (0, actual),
        };
        Ok(Self { path, sidecar, file, last_index, len_bytes })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last log index whose lines are in the file.
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// Appends the queue_log lines of entries above [`QueueLogFile::last_index`].
    pub fn append(&mut self, entries: &[AppliedEntry]) -> Result<(), StoreError> {
        let mut text = String::new();
        let mut last = self.last_index;
        for (index, effects) in entries.iter().filter(|(index, _)| *index > self.last_index) {
            for line in effects.iter().filter_map(|e| match e {
                Effect::QueueLog(entry) => Some(QueueLogEntry::to_line(entry)),
                _ => None,
            }) {
                text.push_str(&line);
                text.push('\n');
            }
            last = last.max(*index);
        }
        if last == self.last_index {
            return Ok(());
        }
        self.cut_unrecorded()?;
        if !text.is_empty() {
            self.file.write_all(text.as_bytes()).map_err(|e| io_error(&self.path, e))?;
            self.file.sync_data().map_err(|e| io_error(&self.path, e))?;
        }
        let len_bytes = self.file.metadata().map_err(|e| io_error(&self.path, e))?.len();
        self.record(last, len_bytes)?;
        self.last_index = last;
        self.len_bytes = len_bytes;
        Ok(())
    }

    /// An earlier append that failed part way (a full disk: lines written, the sidecar not)
    /// left lines past the recorded length; they are cut off before the batch is written
    /// again, as on open. A file found shorter was truncated by rotation: writing continues at
    /// its end.
    fn cut_unrecorded(&mut self) -> Result<(), StoreError> {
        let actual = self.file.metadata().map_err(|e| io_error(&self.path, e))?.len();
        if actual > self.len_bytes {
            self.file.set_len(self.len_bytes).map_err(|e| io_error(&self.path, e))?;
        } else {
            self.len_bytes = actual;
        }
        Ok(())
    }

    fn record(&self, index: u64, len_bytes: u64) -> Result<(), StoreError> {
        let mut tmp = self.sidecar.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
        writeln!(f, "{index} {len_bytes}").map_err(|e| io_error(&tmp, e))?;
        f.sync_all().map_err(|e| io_error(&tmp, e))?;
        std::fs::rename(&tmp, &self.sidecar).map_err(|e| io_error(&self.sidecar, e))
    }
}

/// The queue_log file as an outbox sink (file IO runs on the blocking pool).
#[derive(Debug, Clone)]
pub struct QueueLogSink {
    file: Arc<Mutex<QueueLogFile>>,
}

impl QueueLogSink {
    pub fn new(file: QueueLogFile) -> Self {
        Self { file: Arc::new(Mutex::new(file)) }
    }

    pub fn last_index(&self) -> u64 {
        self.file.lock().unwrap_or_else(PoisonError::into_inner).last_index()
    }
}

impl OutboxSink for QueueLogSink {
    async fn deliver(&mut self, entries: &[AppliedEntry]) -> Result<(), StoreError> {
        let file = self.file.clone();
        let entries = entries.to_vec();
        tokio::task::spawn_blocking(move || file.lock().unwrap_or_else(PoisonError::into_inner).append(&entries))
            .await
            .map_err(|e| StoreError::Outbox(format!("queue_log task failed: {e}")))?
    }
}
