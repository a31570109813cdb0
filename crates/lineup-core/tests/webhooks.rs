//! The webhook list in the routing state (`PutWebhooks`: checked, secrets kept when put back
//! redacted, audited by name) and the site health effects webhooks are told about (one per
//! change, none for a repeated command).

mod common;

use common::*;
use lineup_core::*;

fn webhook(name: &str, secret: &str) -> WebhookConfig {
    WebhookConfig {
        id: name.into(),
        url: "https://ops.example/lineup".into(),
        secret: secret.into(),
        events: vec![WebhookEventKind::AlarmRaised, WebhookEventKind::SiteLost],
        enabled: true,
    }
}

fn site_health(effects: &[Effect]) -> Vec<(SiteId, SiteHealth)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::SiteHealthChanged { site, health } => Some((*site, *health)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_webhook_list_is_replaced_whole_and_a_redacted_secret_is_kept() {
    let mut h = Harness::new();
    let first = vec![webhook("ops", "0123456789abcdef"), webhook("noc", "fedcba9876543210")];
    h.ok(CommandBody::PutWebhooks(first.clone()));
    assert_eq!(h.routing.webhooks(), first.as_slice());
    // An exported list (secrets redacted) put back keeps the secrets; one left out is gone.
    h.ok(CommandBody::PutWebhooks(vec![first[0].redacted()]));
    assert_eq!(h.routing.webhooks(), &first[..1]);
}

#[test]
fn a_bad_list_is_refused_and_changes_nothing() {
    let mut h = Harness::new();
    let good = vec![webhook("ops", "0123456789abcdef")];
    h.ok(CommandBody::PutWebhooks(good.clone()));
    let too_many: Vec<WebhookConfig> =
        (0..=WEBHOOKS_MAX_COUNT).map(|i| webhook(&format!("w{i}"), "0123456789abcdef")).collect();
    for bad in [vec![webhook("ops", "short")], vec![webhook("new", WEBHOOK_SECRET_REDACTED)], too_many] {
        let body = CommandBody::PutWebhooks(bad);
        let checked = h.routing.check_command(&body).unwrap_err();
        let (result, effects) = h.apply(body);
        assert_eq!(result.unwrap_err(), checked, "check_command answers what apply refuses");
        assert!(effects.is_empty());
        assert_eq!(h.routing.webhooks(), good.as_slice());
    }
}

#[test]
fn an_audited_put_names_the_webhooks_and_never_their_secrets() {
    let mut h = Harness::new();
    let actor = AuditActor { token_name: "admin".into(), role: AuditRole::Admin };
    let body = Box::new(CommandBody::PutWebhooks(vec![webhook("ops", "0123456789abcdef")]));
    let (_, effects) = h.ok(CommandBody::Audited { actor, body });
    let Some(Effect::Audit(record)) = effects.last() else { panic!("no audit record: {effects:?}") };
    assert_eq!((record.action.as_str(), record.target.as_str()), ("put_webhooks", "webhook:ops"));
    assert!(!format!("{effects:?}").contains("0123456789abcdef"));
}

#[test]
fn site_health_changes_are_effects_once_each() {
    let mut h = Harness::new();
    let (_, effects) = h.ok(CommandBody::SiteUnreachable { site: SITE_B });
    assert_eq!(site_health(&effects), [(SITE_B, SiteHealth::Unreachable)]);
    let (_, effects) = h.ok(CommandBody::SiteUnreachable { site: SITE_B });
    assert_eq!(site_health(&effects), [], "already unreachable");
    let (_, effects) = h.ok(CommandBody::SiteLost { site: SITE_B });
    assert_eq!(site_health(&effects), [(SITE_B, SiteHealth::Lost)]);
    let (_, effects) = h.ok(CommandBody::SiteLost { site: SITE_B });
    assert_eq!(site_health(&effects), []);
    let (_, effects) = h.ok(CommandBody::SiteBack { site: SITE_B });
    assert_eq!(site_health(&effects), [(SITE_B, SiteHealth::Back)]);
    let (_, effects) = h.ok(CommandBody::SiteBack { site: SITE_B });
    assert_eq!(site_health(&effects), [], "already back");
    assert!(Effect::SiteHealthChanged { site: SITE_B, health: SiteHealth::Back }.is_for(SITE_A));
}
