//! Callers arriving throughout, at every site: Poisson arrivals, each caller with a talk
//! time long enough to span a restart, hanging up themselves or letting the operator do it.

use crate::setup::GATE_MAIN_EXTEN;
use crate::standin::StandIn;
use lineup_util::SplitMix64;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Mean gap between two arrivals (over all sites).
pub const MEAN_ARRIVAL_GAP_MS: f64 = 3_000.0;
/// Talk time range: long enough that a call is still up across a restart.
pub const TALK_MIN_MS: u64 = 15_000;
pub const TALK_MAX_MS: u64 = 35_000;
/// Share of calls the operator ends (the rest the caller ends).
pub const OPERATOR_HANGS_UP_SHARE: f64 = 0.3;
/// A caller never connected gives up after this long.
pub const PATIENCE_MS: u64 = 120_000;
/// Most callers one run places (a bound on the loop).
pub const CALLERS_MAX_COUNT: u64 = 5_000;

pub struct Workload {
    stop: Arc<AtomicBool>,
    placed: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

/// A caller's plan for the stand-in's script.
pub fn plan(talk_ms: u64, operator_hangs_up: bool) -> serde_json::Value {
    let by = if operator_hangs_up { "operator" } else { "caller" };
    json!({ "talk_ms": talk_ms, "hang_up_by": by, "patience_ms": PATIENCE_MS })
}

impl Workload {
    pub fn start(standin: Arc<StandIn>, boxes: usize, seed: u64) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let placed = Arc::new(AtomicU64::new(0));
        let (stop_flag, count) = (Arc::clone(&stop), Arc::clone(&placed));
        let task = tokio::spawn(async move {
            let mut dice = SplitMix64::new(seed);
            for n in 0..CALLERS_MAX_COUNT {
                let gap_ms = dice.exponential(MEAN_ARRIVAL_GAP_MS) as u64;
                tokio::time::sleep(Duration::from_millis(gap_ms)).await;
                if stop_flag.load(Ordering::SeqCst) {
                    return;
                }
                let box_index = dice.range(0, boxes as u64 - 1) as usize;
                let talk_ms = dice.range(TALK_MIN_MS, TALK_MAX_MS);
                let by_operator = dice.unit() < OPERATOR_HANGS_UP_SHARE;
                let number = format!("+1555{:07}", 1_000_000 + n);
                match standin.place_caller(box_index, GATE_MAIN_EXTEN, &number, plan(talk_ms, by_operator)).await {
                    Ok(_) => {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(error) => eprintln!("lineup-chaos: placing a caller failed: {error:#}"),
                }
            }
        });
        Workload { stop, placed, task }
    }

    pub fn placed(&self) -> u64 {
        self.placed.load(Ordering::SeqCst)
    }

    /// No more arrivals.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.abort();
        let _ = self.task.await;
    }
}
