//! The last hour of each queue's waiting count and abandon rate, sampled by the live hub from
//! its periodic queue summaries, so a dashboard opened (or reloaded) now plots the hour behind
//! it and not only what it has seen since. Kept in memory by each node's API: a restarted node
//! starts a new hour.

use std::collections::{BTreeMap, VecDeque};

use lineup_core::QueueId;
use serde::Serialize;

use crate::views::QueueRow;

/// One sample per queue at most this often.
pub const TREND_SAMPLE_INTERVAL_MS: u64 = 10_000;
/// How far back the samples go.
pub const TREND_WINDOW_MS: u64 = 3_600_000;
/// Samples kept per queue: the window's worth, and one at its edge.
pub const TREND_POINTS_PER_QUEUE_MAX: usize = (TREND_WINDOW_MS / TREND_SAMPLE_INTERVAL_MS) as usize + 1;

/// One sample: routing-clock ms, callers waiting (callback promises included, as the board's
/// depth counts them), abandon rate per mille (None before the queue's first finished call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TrendPoint(pub u64, pub u32, pub Option<u64>);

/// Every queue's samples, oldest first. Queues leave with their configuration.
#[derive(Debug, Default)]
pub(crate) struct QueueTrends {
    queues: BTreeMap<QueueId, VecDeque<TrendPoint>>,
}

impl QueueTrends {
    /// Samples the queues' summaries read at `now_ms` (each queue at most once per
    /// `TREND_SAMPLE_INTERVAL_MS`), and forgets what fell out of the window.
    pub(crate) fn record(&mut self, now_ms: u64, rows: &[QueueRow]) {
        self.queues.retain(|queue, _| rows.iter().any(|row| row.summary.queue == *queue));
        for row in rows {
            let points = self.queues.entry(row.summary.queue.clone()).or_default();
            match points.back() {
                // The routing clock went back (an operator set it right): the old samples
                // would plot in the future.
                Some(last) if now_ms < last.0 => points.clear(),
                Some(last) if now_ms < last.0 + TREND_SAMPLE_INTERVAL_MS => continue,
                _ => {}
            }
            let waiting = row.summary.waiting.saturating_add(row.summary.callbacks_waiting);
            points.push_back(TrendPoint(now_ms, waiting, row.abandon_rate_permille));
            while points.front().is_some_and(|p| p.0 + TREND_WINDOW_MS < now_ms)
                || points.len() > TREND_POINTS_PER_QUEUE_MAX
            {
                points.pop_front();
            }
            debug_assert!(points.len() <= TREND_POINTS_PER_QUEUE_MAX);
        }
    }

    /// Each queue's samples, oldest first, for a snapshot.
    pub(crate) fn each(&self) -> impl Iterator<Item = (&QueueId, Vec<TrendPoint>)> {
        self.queues.iter().map(|(queue, points)| (queue, points.iter().copied().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineup_core::stats::Stats;
    use lineup_core::QueueSummary;

    fn row(queue: &str, waiting: u32, abandon: Option<u64>) -> QueueRow {
        QueueRow {
            summary: QueueSummary {
                queue: QueueId::new(queue),
                waiting,
                callbacks_waiting: 1,
                longest_wait_ms: None,
                eta_ms: None,
                logged_in: 0,
                staffed: 0,
                available: 0,
                busy: 0,
                stats: Stats::default(),
                alarm_longest_wait: false,
                alarm_depth: false,
            },
            name: queue.into(),
            weight: 0,
            service_level_permille: None,
            abandon_rate_permille: abandon,
            gates: Vec::new(),
        }
    }

    fn points(trends: &QueueTrends, queue: &str) -> Vec<TrendPoint> {
        trends.each().find(|(q, _)| q.as_str() == queue).map(|(_, p)| p).unwrap_or_default()
    }

    #[test]
    fn samples_once_per_interval_and_counts_promises_as_waiting() {
        let mut trends = QueueTrends::default();
        trends.record(1_000, &[row("sales", 3, Some(50))]);
        trends.record(1_000 + TREND_SAMPLE_INTERVAL_MS - 1, &[row("sales", 9, None)]);
        trends.record(1_000 + TREND_SAMPLE_INTERVAL_MS, &[row("sales", 5, None)]);
        assert_eq!(
            points(&trends, "sales"),
            vec![TrendPoint(1_000, 4, Some(50)), TrendPoint(1_000 + TREND_SAMPLE_INTERVAL_MS, 6, None)]
        );
    }

    #[test]
    fn keeps_one_window_and_forgets_deleted_queues() {
        let mut trends = QueueTrends::default();
        let samples = 2 * TREND_POINTS_PER_QUEUE_MAX as u64;
        for i in 0..samples {
            trends.record(i * TREND_SAMPLE_INTERVAL_MS, &[row("sales", i as u32, None), row("support", 0, None)]);
        }
        let sales = points(&trends, "sales");
        let now = (samples - 1) * TREND_SAMPLE_INTERVAL_MS;
        assert_eq!(sales.len(), TREND_POINTS_PER_QUEUE_MAX);
        assert_eq!(sales.first().map(|p| p.0), Some(now - TREND_WINDOW_MS));
        assert_eq!(sales.last().map(|p| p.0), Some(now));
        trends.record(now + TREND_SAMPLE_INTERVAL_MS, &[row("sales", 0, None)]);
        assert!(points(&trends, "support").is_empty());
    }

    #[test]
    fn a_clock_set_back_starts_the_queue_over() {
        let mut trends = QueueTrends::default();
        trends.record(100_000, &[row("sales", 1, None)]);
        trends.record(50_000, &[row("sales", 2, None)]);
        assert_eq!(points(&trends, "sales"), vec![TrendPoint(50_000, 3, None)]);
    }
}
