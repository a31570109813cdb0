//! Webhooks: signed JSON events about queue alarms and site health, POSTed by the leader to
//! the endpoints of the routing config (`lineup_core::webhook`), at least once, each with a
//! stable id. One job per file:
//! - `event`: the events of an applied command's effects (id, kind, JSON body).
//! - `sign`: the `Lineup-Signature` header (HMAC-SHA256 with ring) and its check.
//! - `lane`: a webhook's bounded queue (oldest dropped when full) and counters.
//! - `retry`: backoff, attempts and which answers are final.
//! - `http`: one POST over http or https, within a timeout.
//! - `sender`: `WebhookSender`, from apply (leader only) to the lanes and their tasks.
//! - `wiring`: the state hook's part and the leader watch that feed it.

pub mod event;
pub mod http;
pub mod lane;
pub mod retry;
pub mod sender;
pub mod sign;
pub mod wiring;

pub use lane::{LaneCounts, WEBHOOK_QUEUE_CAPACITY_EVENTS};
pub use retry::RetryPolicy;
pub use sender::WebhookSender;
