//! Webhooks: HTTP(S) endpoints told about queue alarms and site state changes. Part of the
//! routing config (`[[webhooks]]`); `PutWebhooks` replaces the whole list. The core only keeps
//! and checks the list; the leader's node sends the events (lineup-node's `webhook_*`).

use crate::ids::validate_id;
use crate::CoreError;
use serde::{Deserialize, Serialize};

/// Most webhooks in the routing config.
pub const WEBHOOKS_MAX_COUNT: usize = 16;
/// Longest webhook URL.
pub const WEBHOOK_URL_MAX_BYTES: usize = 2_048;
/// Shortest signing secret (HMAC-SHA256 wants at least 128 bits of key).
pub const WEBHOOK_SECRET_MIN_BYTES: usize = 16;
/// Longest signing secret.
pub const WEBHOOK_SECRET_MAX_BYTES: usize = 256;
/// What every read shows instead of a secret. Put back unchanged, it keeps the secret the
/// webhook of that id already has (so an exported config applies again).
pub const WEBHOOK_SECRET_REDACTED: &str = "(redacted)";

/// What a webhook may be told about. Appended last when a kind is added: the list is part
/// of a log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WebhookEventKind {
    AlarmRaised,
    AlarmCleared,
    SiteUnreachable,
    SiteBack,
    SiteLost,
}

impl WebhookEventKind {
    pub const ALL: [WebhookEventKind; 5] = [
        WebhookEventKind::AlarmRaised,
        WebhookEventKind::AlarmCleared,
        WebhookEventKind::SiteUnreachable,
        WebhookEventKind::SiteBack,
        WebhookEventKind::SiteLost,
    ];

    /// The event's `kind` field on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEventKind::AlarmRaised => "alarm_raised",
            WebhookEventKind::AlarmCleared => "alarm_cleared",
            WebhookEventKind::SiteUnreachable => "site_unreachable",
            WebhookEventKind::SiteBack => "site_back",
            WebhookEventKind::SiteLost => "site_lost",
        }
    }
}

/// One endpoint. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the webhook in metrics and logs (the identifier charset).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::id_field_schema))]
    pub id: String,
    /// `http://` or `https://`.
    pub url: String,
    /// Key of the `Lineup-Signature` HMAC; shown as [`WEBHOOK_SECRET_REDACTED`] by every read.
    pub secret: String,
    /// The kinds sent to it (at least one).
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub events: Vec<WebhookEventKind>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("secret", &WEBHOOK_SECRET_REDACTED)
            .field("events", &self.events)
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl WebhookConfig {
    /// The same webhook with its secret replaced by [`WEBHOOK_SECRET_REDACTED`].
    pub fn redacted(&self) -> WebhookConfig {
        WebhookConfig { secret: WEBHOOK_SECRET_REDACTED.to_string(), ..self.clone() }
    }

    /// Is it enabled and subscribed to `kind`?
    pub fn wants(&self, kind: WebhookEventKind) -> bool {
        self.enabled && self.events.contains(&kind)
    }
}

/// Checks a whole list and resolves redacted secrets against `current` (the list in force):
/// the list as it will be stored, or the refusal naming the field.
pub fn resolve_webhooks(new: &[WebhookConfig], current: &[WebhookConfig]) -> Result<Vec<WebhookConfig>, CoreError> {
    if new.len() > WEBHOOKS_MAX_COUNT {
        return Err(invalid("webhooks", format!("{} webhooks, more than {WEBHOOKS_MAX_COUNT}", new.len())));
    }
    let mut resolved = Vec::with_capacity(new.len());
    for (i, webhook) in new.iter().enumerate() {
        if new[..i].iter().any(|w| w.id == webhook.id) {
            return Err(invalid(&format!("webhooks[id={}].id", webhook.id), "named twice".into()));
        }
        let mut webhook = webhook.clone();
        if webhook.secret == WEBHOOK_SECRET_REDACTED {
            let kept = current.iter().find(|w| w.id == webhook.id).map(|w| w.secret.clone());
            webhook.secret = kept.ok_or_else(|| {
                invalid(
                    &format!("webhooks[id={}].secret", webhook.id),
                    "redacted, and no such webhook to keep it from".into(),
                )
            })?;
        }
        validate_webhook(&webhook)?;
        resolved.push(webhook);
    }
    Ok(resolved)
}

/// Checks a list as a routing file gives it, before any node is asked: a redacted secret
/// passes here (the node keeps the webhook's current secret, or refuses it).
pub fn validate_webhooks(list: &[WebhookConfig]) -> Result<(), CoreError> {
    let stand_in = "x".repeat(WEBHOOK_SECRET_MIN_BYTES);
    let current: Vec<WebhookConfig> =
        list.iter().map(|w| WebhookConfig { secret: stand_in.clone(), ..w.clone() }).collect();
    resolve_webhooks(list, &current).map(|_| ())
}

fn validate_webhook(w: &WebhookConfig) -> Result<(), CoreError> {
    validate_id(&w.id).map_err(|e| invalid("webhooks[].id", e.to_string()))?;
    let field = |name: &str| format!("webhooks[id={}].{name}", w.id);
    let scheme_ok = w.url.starts_with("http://") || w.url.starts_with("https://");
    if !scheme_ok || w.url.len() > WEBHOOK_URL_MAX_BYTES || w.url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            &field("url"),
            format!("an http:// or https:// URL of at most {WEBHOOK_URL_MAX_BYTES} bytes, without spaces"),
        ));
    }
    let secret_len = w.secret.len();
    if !(WEBHOOK_SECRET_MIN_BYTES..=WEBHOOK_SECRET_MAX_BYTES).contains(&secret_len) {
        return Err(invalid(
            &field("secret"),
            format!("{secret_len} bytes; between {WEBHOOK_SECRET_MIN_BYTES} and {WEBHOOK_SECRET_MAX_BYTES}"),
        ));
    }
    if w.events.is_empty() {
        return Err(invalid(&field("events"), "names no event kind".into()));
    }
    if w.events.iter().enumerate().any(|(i, kind)| w.events[..i].contains(kind)) {
        return Err(invalid(&field("events"), "names a kind twice".into()));
    }
    Ok(())
}

fn invalid(field: &str, reason: String) -> CoreError {
    CoreError::InvalidField { field: field.to_string(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(id: &str, secret: &str) -> WebhookConfig {
        WebhookConfig {
            id: id.into(),
            url: "https://ops.example/lineup".into(),
            secret: secret.into(),
            events: vec![WebhookEventKind::AlarmRaised],
            enabled: true,
        }
    }

    #[test]
    fn a_redacted_secret_keeps_the_current_one() {
        let current = vec![hook("ops", "0123456789abcdef")];
        let resolved = resolve_webhooks(&[current[0].redacted()], &current).unwrap();
        assert_eq!(resolved, current);
        let unknown = resolve_webhooks(&[hook("new", WEBHOOK_SECRET_REDACTED)], &current).unwrap_err();
        assert!(unknown.to_string().contains("webhooks[id=new].secret"), "{unknown}");
    }

    #[test]
    fn refusals_name_the_field() {
        let none: Vec<WebhookConfig> = Vec::new();
        let cases = [
            (vec![hook("ops", "short")], "webhooks[id=ops].secret"),
            (vec![WebhookConfig { url: "ftp://x".into(), ..hook("ops", "0123456789abcdef") }], "webhooks[id=ops].url"),
            (vec![WebhookConfig { events: vec![], ..hook("ops", "0123456789abcdef") }], "webhooks[id=ops].events"),
            (vec![hook("ops", "0123456789abcdef"), hook("ops", "0123456789abcdef")], "webhooks[id=ops].id"),
            (vec![hook("a/b", "0123456789abcdef")], "webhooks[].id"),
            (vec![hook("ops", "0123456789abcdef"); WEBHOOKS_MAX_COUNT + 1], "invalid webhooks:"),
        ];
        for (list, field) in cases {
            let refusal = resolve_webhooks(&list, &none).unwrap_err().to_string();
            assert!(refusal.contains(field), "{refusal} should name {field}");
        }
    }

    #[test]
    fn a_file_may_hold_a_redacted_secret() {
        assert!(validate_webhooks(&[hook("ops", WEBHOOK_SECRET_REDACTED)]).is_ok());
        assert!(validate_webhooks(&[hook("ops", "short")]).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", hook("ops", "0123456789abcdef"));
        assert!(!shown.contains("0123456789abcdef") && shown.contains(WEBHOOK_SECRET_REDACTED), "{shown}");
    }
}
