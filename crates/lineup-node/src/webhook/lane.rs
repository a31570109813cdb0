//! One webhook's bounded queue of deliveries and its counters. Pushing never waits: when the
//! queue is full the oldest delivery is dropped and counted, so a receiver that is down or
//! slow costs memory bounded by the capacity and never holds up apply.

use super::event::WebhookEvent;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;

/// Events waiting per webhook; when full, the oldest is dropped (counted as dropped).
pub const WEBHOOK_QUEUE_CAPACITY_EVENTS: usize = 1_024;

/// One event for one webhook, with the URL and secret in force when it was applied.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: Arc<WebhookEvent>,
    pub url: String,
    pub secret: String,
}

/// What a webhook's sender has done since the node started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneCounts {
    /// Events the receiver took (a 2xx).
    pub sent: u64,
    /// Events given up on: refused for good (a 4xx other than 408/429) or out of attempts.
    pub failed: u64,
    /// Events dropped unsent because the queue was full.
    pub dropped: u64,
}

/// A webhook's queue, counters and the signal its sender task waits on.
pub struct Lane {
    queue: Mutex<VecDeque<Delivery>>,
    ready: Notify,
    /// Set when the webhook left the config: its task sends what is queued, then ends.
    retired: AtomicBool,
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

impl Lane {
    pub fn new() -> Lane {
        Lane {
            queue: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            retired: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues `delivery`, dropping the oldest when full. Never waits.
    pub fn push(&self, delivery: Delivery) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.len() >= WEBHOOK_QUEUE_CAPACITY_EVENTS {
            queue.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queue.push_back(delivery);
        debug_assert!(queue.len() <= WEBHOOK_QUEUE_CAPACITY_EVENTS);
        drop(queue);
        self.ready.notify_one();
    }

    /// The next delivery; None once the lane is retired and empty.
    pub async fn next(&self) -> Option<Delivery> {
        loop {
            let ready = self.ready.notified();
            if let Some(delivery) = self.queue.lock().unwrap_or_else(PoisonError::into_inner).pop_front() {
                return Some(delivery);
            }
            if self.retired.load(Ordering::Relaxed) {
                return None;
            }
            ready.await;
        }
    }

    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        self.ready.notify_one();
    }

    pub fn queued(&self) -> usize {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn count_sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counts(&self) -> LaneCounts {
        LaneCounts {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

impl Default for Lane {
    fn default() -> Self {
        Lane::new()
    }
}
