//! The leader's webhook sender: the applied command's events go to each subscribed webhook's
//! lane ([`Lane`]) without waiting, and one task per webhook delivers them with retries. Only
//! the node that leads when it applies a command queues its events; the event id (from the
//! apply index) lets a receiver drop the copy a new leader may send again after a change.

use super::event::events_of;
use super::http::WebhookClient;
use super::lane::{Delivery, Lane, LaneCounts};
use super::retry::{verdict, RetryPolicy, Verdict};
use super::sign::{signature, EVENT_ID_HEADER, SIGNATURE_HEADER};
use lineup_core::{Effect, WebhookConfig, WEBHOOKS_MAX_COUNT};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Queues and delivers webhook events for the node while it leads.
pub struct WebhookSender {
    lanes: Mutex<BTreeMap<String, Arc<Lane>>>,
    client: Arc<WebhookClient>,
    retry: RetryPolicy,
    /// Does this node lead? Kept by the node from Raft's metrics.
    leads: Arc<AtomicBool>,
    runtime: tokio::runtime::Handle,
}

impl WebhookSender {
    /// A sender whose tasks run on `runtime`; it queues only while `leads` is set.
    pub fn new(
        client: WebhookClient,
        retry: RetryPolicy,
        leads: Arc<AtomicBool>,
        runtime: tokio::runtime::Handle,
    ) -> WebhookSender {
        WebhookSender { lanes: Mutex::default(), client: Arc::new(client), retry, leads, runtime }
    }

    /// One applied command: its webhook events go to the webhooks of `webhooks` (the config
    /// right after it) that want them. Never waits; called from inside apply.
    pub fn on_applied(&self, apply_index: u64, at_ms: u64, effects: &[Effect], webhooks: &[WebhookConfig]) {
        if webhooks.is_empty() || !self.leads.load(Ordering::Relaxed) {
            return;
        }
        let events = events_of(apply_index, at_ms, effects);
        if events.is_empty() {
            return;
        }
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        self.retire_removed(&mut lanes, webhooks);
        for event in events.into_iter().map(Arc::new) {
            for webhook in webhooks.iter().filter(|w| w.wants(event.kind)) {
                let lane = self.lane(&mut lanes, &webhook.id);
                lane.push(Delivery {
                    event: Arc::clone(&event),
                    url: webhook.url.clone(),
                    secret: webhook.secret.clone(),
                });
            }
        }
        // Where acted on: one lane per configured webhook at most (a removed one retires).
        debug_assert!(lanes.len() <= WEBHOOKS_MAX_COUNT);
    }

    /// Each webhook's counters, by name (those in the config when events last went out).
    pub fn counts(&self) -> Vec<(String, LaneCounts)> {
        let lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        lanes.iter().map(|(name, lane)| (name.clone(), lane.counts())).collect()
    }

    /// Deliveries waiting for `name`'s receiver.
    pub fn queued(&self, name: &str) -> usize {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner).get(name).map_or(0, |lane| lane.queued())
    }

    /// Lanes of webhooks no longer configured stop after sending what they hold.
    fn retire_removed(&self, lanes: &mut BTreeMap<String, Arc<Lane>>, webhooks: &[WebhookConfig]) {
        lanes.retain(|name, lane| {
            let keep = webhooks.iter().any(|w| &w.id == name);
            if !keep {
                lane.retire();
            }
            keep
        });
    }

    fn lane(&self, lanes: &mut BTreeMap<String, Arc<Lane>>, name: &str) -> Arc<Lane> {
        if let Some(lane) = lanes.get(name) {
            return Arc::clone(lane);
        }
        let lane = Arc::new(Lane::new());
        lanes.insert(name.to_string(), Arc::clone(&lane));
        let (client, retry, task_lane, name) =
            (Arc::clone(&self.client), self.retry, Arc::clone(&lane), name.to_string());
        self.runtime.spawn(async move { run_lane(&name, &task_lane, &client, retry).await });
        lane
    }
}

/// A webhook's task: its deliveries one after another, in order.
async fn run_lane(name: &str, lane: &Lane, client: &WebhookClient, retry: RetryPolicy) {
    while let Some(delivery) = lane.next().await {
        if deliver(name, &delivery, client, retry).await {
            lane.count_sent();
        } else {
            lane.count_failed();
        }
    }
}

/// Tries one delivery until delivered, refused or out of attempts; true when delivered.
async fn deliver(name: &str, delivery: &Delivery, client: &WebhookClient, retry: RetryPolicy) -> bool {
    let body = hyper::body::Bytes::from(delivery.event.body.clone());
    for attempt in 1..=retry.attempts_max {
        let headers = [
            (SIGNATURE_HEADER, signature(delivery.secret.as_bytes(), unix_seconds(), &body)),
            (EVENT_ID_HEADER, delivery.event.id.clone()),
        ];
        let outcome = client.post(&delivery.url, &headers, body.clone(), retry.request_timeout()).await;
        let failure = match outcome.as_ref().map(|status| verdict(*status)) {
            Ok(Verdict::Delivered) => return true,
            Ok(Verdict::Refused) => {
                tracing::warn!(webhook = name, event = %delivery.event.id, status = outcome.ok(), "webhook refused the event");
                return false;
            }
            Ok(Verdict::Retry) => format!("answered {}", outcome.unwrap_or_default()),
            Err(error) => error.to_string(),
        };
        tracing::debug!(webhook = name, event = %delivery.event.id, attempt, %failure, "webhook attempt failed");
        if attempt < retry.attempts_max {
            tokio::time::sleep(retry.delay_after(attempt)).await;
        }
    }
    tracing::warn!(webhook = name, event = %delivery.event.id, attempts = retry.attempts_max, "webhook event given up");
    false
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
