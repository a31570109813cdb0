//! History under the simulator (real nodes only): per site, the production outbox
//! (lineup-store, inline mode) fed from that site's apply stream, drained by its real
//! drainer task into a simulated history database that a fault can take down (a
//! PostgreSQL outage). The checker then requires that history converges: once the
//! database is back and the run has drained, every site's database holds exactly the
//! history rows of what that site applied, each once, and its outbox is empty.
//!
//! The database keeps rows by (apply index, effect position), the key the production
//! `HistoryStore` uses, so a delivery repeated after a crash writes nothing twice; a
//! repeated key with a different effect is a violation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use lineup_core::Effect;
use lineup_store::history::is_history_effect;
use lineup_store::{AppliedEntry, Drainer, Outbox, OutboxSink, StoreError};

/// The outbox's one sink here.
pub const SINK_NAME: &str = "database";
/// Rows listed in a violation at most.
const ROWS_SHOWN_MAX: usize = 3;

#[derive(Default)]
struct Database {
    up: bool,
    /// Planted bug: acknowledge while down, keeping nothing.
    lossy: bool,
    rows: BTreeMap<(u64, usize), Effect>,
    conflicts: Vec<String>,
    deliveries: u64,
}

/// A site's simulated history database.
#[derive(Clone)]
pub struct SimDatabase(Arc<Mutex<Database>>);

impl SimDatabase {
    fn new() -> Self {
        SimDatabase(Arc::new(Mutex::new(Database { up: true, ..Database::default() })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Database> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_up(&self, up: bool) {
        self.lock().up = up;
    }
}

impl OutboxSink for SimDatabase {
    async fn deliver(&mut self, entries: &[AppliedEntry]) -> Result<(), StoreError> {
        let mut db = self.lock();
        if !db.up && db.lossy {
            return Ok(());
        }
        if !db.up {
            // What the production store reports when PostgreSQL does not answer.
            return Err(StoreError::Database(sqlx::Error::PoolTimedOut));
        }
        db.deliveries += 1;
        for (index, effects) in entries {
            for (position, effect) in effects.iter().enumerate().filter(|(_, e)| is_history_effect(e)) {
                match db.rows.get(&(*index, position)) {
                    Some(kept) if kept != effect => {
                        let text = format!("row ({index}, {position}) rewritten: {kept:?} then {effect:?}");
                        db.conflicts.push(text);
                    }
                    Some(_) => {}
                    None => {
                        db.rows.insert((*index, position), effect.clone());
                    }
                }
            }
        }
        Ok(())
    }
}

/// One site's history side: its outbox (kept across restarts), drainer and database, and
/// the rows its apply stream says it must end up with.
pub struct SiteHistory {
    outbox_db: Arc<redb::Database>,
    outbox: Option<Outbox>,
    drainer: Option<Drainer>,
    pub database: SimDatabase,
    expected: BTreeMap<(u64, usize), Effect>,
    jitter_seed: u64,
    pub submit_errors: Vec<String>,
}

impl SiteHistory {
    /// `lossy`: the planted bug `PlantedBug::LossyDatabase`.
    pub fn new(jitter_seed: u64, lossy: bool) -> Result<SiteHistory, String> {
        let outbox_db = Outbox::memory_database().map_err(|e| e.to_string())?;
        let database = SimDatabase::new();
        database.lock().lossy = lossy;
        let mut history = SiteHistory {
            outbox_db,
            outbox: None,
            drainer: None,
            database,
            expected: BTreeMap::new(),
            jitter_seed,
            submit_errors: Vec::new(),
        };
        history.open()?;
        Ok(history)
    }

    /// Opens the outbox (again, after a crash) and starts its drainer; call inside the
    /// runtime (the drainer is a task).
    pub fn open(&mut self) -> Result<(), String> {
        self.jitter_seed = self.jitter_seed.wrapping_add(1);
        let outbox = Outbox::open_inline(self.outbox_db.clone(), &[SINK_NAME], self.jitter_seed)
            .map_err(|e| format!("outbox: {e}"))?;
        let drainer = outbox.spawn_drainer(SINK_NAME, self.database.clone()).map_err(|e| format!("drainer: {e}"))?;
        self.outbox = Some(outbox);
        self.drainer = Some(drainer);
        Ok(())
    }

    /// The process stops: the drainer task ends, the outbox closes (its file stays).
    pub fn crash(&mut self) {
        self.drainer = None;
        self.outbox = None;
    }

    /// One applied command's effects for this site, as the node's applied sink hands
    /// them over (replays after a restart included: the outbox ignores them).
    pub fn submit(&mut self, apply_index: u64, effects: Vec<Effect>) {
        for (position, effect) in effects.iter().enumerate().filter(|(_, e)| is_history_effect(e)) {
            self.expected.entry((apply_index, position)).or_insert_with(|| effect.clone());
        }
        if let Some(outbox) = &self.outbox {
            if let Err(e) = outbox.submit(apply_index, effects) {
                self.submit_errors.push(format!("submit at {apply_index}: {e}"));
            }
        }
    }

    /// What is wrong with this site's history now (empty: it has converged).
    pub fn divergence(&self) -> Vec<String> {
        let db = self.database.lock();
        let mut problems: Vec<String> = db.conflicts.iter().take(ROWS_SHOWN_MAX).cloned().collect();
        problems.extend(self.submit_errors.iter().take(ROWS_SHOWN_MAX).cloned());
        let missing: Vec<&(u64, usize)> = self.expected.keys().filter(|k| !db.rows.contains_key(k)).collect();
        if !missing.is_empty() {
            let first: Vec<_> = missing.iter().take(ROWS_SHOWN_MAX).collect();
            problems.push(format!("{} rows never written, first {first:?}", missing.len()));
        }
        let extra = db.rows.keys().filter(|k| !self.expected.contains_key(k)).count();
        if extra > 0 {
            problems.push(format!("{extra} rows that were never applied here"));
        }
        if let Some(outbox) = &self.outbox {
            match outbox.lag() {
                Ok(lag) if lag.entries > 0 => problems.push(format!("{} entries still in the outbox", lag.entries)),
                Ok(_) => {}
                Err(e) => problems.push(format!("outbox unreadable: {e}")),
            }
        }
        problems
    }

    pub fn rows(&self) -> usize {
        self.database.lock().rows.len()
    }
}
