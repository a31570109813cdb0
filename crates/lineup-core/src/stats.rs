//! Counters per queue and per gate. Cumulative since the queue or gate was created; rates
//! over windows are computed by history and the dashboard from the effect stream.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Handle-time samples kept for the rolling ETA average.
pub const HANDLE_WINDOW_SAMPLES: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    /// Callers that joined (ENTERQUEUE).
    pub offered: u64,
    pub answered: u64,
    pub answered_within_service_level: u64,
    pub abandoned: u64,
    pub timed_out: u64,
    pub full: u64,
    pub closed: u64,
    pub empty: u64,
    pub exited_with_key: u64,
    pub overflowed: u64,
    pub callbacks_requested: u64,
    pub callbacks_failed: u64,
    pub total_wait_ms: u64,
    pub total_handle_ms: u64,
    pub handled: u64,
}

impl Stats {
    pub fn average_wait_ms(&self) -> Option<u64> {
        (self.answered > 0).then(|| self.total_wait_ms / self.answered)
    }
    pub fn average_handle_ms(&self) -> Option<u64> {
        (self.handled > 0).then(|| self.total_handle_ms / self.handled)
    }
    /// Answered within the threshold over all callers who stopped waiting without leaving
    /// through a key, a callback or an overflow (answered + abandoned + timed out), as
    /// app_queue's `servicelevel` counts it. Per mille, None before the first such call.
    pub fn service_level_permille(&self) -> Option<u64> {
        let base = self.answered + self.abandoned + self.timed_out;
        (base > 0).then(|| self.answered_within_service_level * 1000 / base)
    }
    /// Abandoned over answered + abandoned + timed out, per mille.
    pub fn abandon_rate_permille(&self) -> Option<u64> {
        let base = self.answered + self.abandoned + self.timed_out;
        (base > 0).then(|| self.abandoned * 1000 / base)
    }
}

/// Rolling window of the last [`HANDLE_WINDOW_SAMPLES`] handle times (talk + wrap-up).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandleWindow {
    samples: VecDeque<u64>,
    sum_ms: u64,
}

impl HandleWindow {
    pub fn push(&mut self, handle_ms: u64) {
        if self.samples.len() == HANDLE_WINDOW_SAMPLES {
            if let Some(old) = self.samples.pop_front() {
                self.sum_ms -= old;
            }
        }
        self.samples.push_back(handle_ms);
        self.sum_ms += handle_ms;
    }
    /// Average rounded up (never down: a caller told too little waits longer than promised).
    pub fn average_ms(&self) -> Option<u64> {
        let n = self.samples.len() as u64;
        (n > 0).then(|| self.sum_ms.div_ceil(n))
    }
    pub fn len(&self) -> usize {
        self.samples.len()
    }
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_rolls_and_rounds_up() {
        let mut w = HandleWindow::default();
        assert_eq!(w.average_ms(), None);
        w.push(1);
        w.push(2);
        assert_eq!(w.average_ms(), Some(2)); // 1.5 rounds up
        for _ in 0..HANDLE_WINDOW_SAMPLES {
            w.push(10);
        }
        assert_eq!(w.len(), HANDLE_WINDOW_SAMPLES);
        assert_eq!(w.average_ms(), Some(10));
    }
}
