//! The events a webhook is sent, built from one applied command's effects. The same on every
//! node (they are made from the replicated effects and apply index only), so a receiver can
//! drop the copy a new leader sends again by its id.

use lineup_core::{AlarmKind, Effect, SiteHealth, WebhookEventKind};
use serde_json::json;

/// One event, encoded once: every attempt sends the same body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// `<apply index>-<position of the effect in the command's effects>`: stable across
    /// nodes and retries (the `Lineup-Event-Id` header and the body's `id`).
    pub id: String,
    pub kind: WebhookEventKind,
    /// The JSON body.
    pub body: Vec<u8>,
}

/// The webhook events among one applied command's effects, in effect order. `at_ms` is the
/// core's time after the command (the same on every node).
pub fn events_of(apply_index: u64, at_ms: u64, effects: &[Effect]) -> Vec<WebhookEvent> {
    effects
        .iter()
        .enumerate()
        .filter_map(|(position, effect)| {
            let (kind, detail) = describe(effect)?;
            let id = format!("{apply_index}-{position}");
            let mut body = json!({ "id": id, "kind": kind.as_str(), "at_ms": at_ms });
            if let (Some(body), serde_json::Value::Object(detail)) = (body.as_object_mut(), detail) {
                body.extend(detail);
            }
            let body = serde_json::to_vec(&body).unwrap_or_default();
            debug_assert!(!body.is_empty(), "a JSON object always encodes");
            Some(WebhookEvent { id, kind, body })
        })
        .collect()
}

/// The event kind of an effect and its fields, for the effects webhooks are told about.
fn describe(effect: &Effect) -> Option<(WebhookEventKind, serde_json::Value)> {
    match effect {
        Effect::Alarm { queue, kind, raised, value, threshold } => {
            let event = if *raised { WebhookEventKind::AlarmRaised } else { WebhookEventKind::AlarmCleared };
            let alarm = match kind {
                AlarmKind::Depth => "depth",
                AlarmKind::LongestWait => "longest_wait",
            };
            Some((event, json!({ "queue": queue, "alarm": alarm, "value": value, "threshold": threshold })))
        }
        Effect::SiteHealthChanged { site, health } => {
            let event = match health {
                SiteHealth::Back => WebhookEventKind::SiteBack,
                SiteHealth::Unreachable => WebhookEventKind::SiteUnreachable,
                SiteHealth::Lost => WebhookEventKind::SiteLost,
            };
            Some((event, json!({ "site": site.0 })))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineup_core::{QueueId, SiteId};

    #[test]
    fn alarm_and_site_effects_become_events_with_positional_ids() {
        let effects = [
            Effect::SiteHealthChanged { site: SiteId(2), health: SiteHealth::Unreachable },
            Effect::Alarm {
                queue: QueueId::new("sales"),
                kind: AlarmKind::Depth,
                raised: true,
                value: 5,
                threshold: 4,
            },
        ];
        let events = events_of(512, 1_000, &effects);
        assert_eq!(events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["512-0", "512-1"]);
        let alarm: serde_json::Value = serde_json::from_slice(&events[1].body).unwrap();
        assert_eq!(
            alarm,
            json!({"id": "512-1", "kind": "alarm_raised", "at_ms": 1000, "queue": "sales", "alarm": "depth",
                   "value": 5, "threshold": 4})
        );
        let site: serde_json::Value = serde_json::from_slice(&events[0].body).unwrap();
        assert_eq!(site, json!({"id": "512-0", "kind": "site_unreachable", "at_ms": 1000, "site": 2}));
    }
}
