//! Config files an operator writes: the routing config (`lineup config apply`) and the node
//! file (`lineup run --config`). The binary's own reading code, `crates/lineup/src/
//! config_file.rs` and `node_config.rs`, is compiled into this crate unchanged (see lib.rs):
//! the binary crate has no library to call it through.

use crate::config_file::{load_routing, routing_to_toml, ConfigText};
use crate::node_config::NodeSettings;
use crate::rigs::{check, ADMIN_ORIGIN, EPOCH_MS};
use lineup_core::{Command, CommandBody, CommandId, Routing};

fn text(path: &str, data: &[u8]) -> ConfigText {
    ConfigText { path: path.into(), text: String::from_utf8_lossy(data).into_owned() }
}

/// A routing TOML → `load_routing` (parse, normalize, validate, errors located) → applied
/// as one `ApplyConfig` to an empty state (a valid set applies), its policies and webhooks
/// each as their command → exported and read back (the same set).
pub fn routing_config(data: &[u8]) {
    let text = text("routing.toml", data);
    let Ok((set, policies)) = load_routing(&text) else { return };
    let mut routing = Routing::new();
    let command = |serial, body| Command { id: CommandId { origin: ADMIN_ORIGIN, serial }, at_ms: EPOCH_MS, body };
    routing.apply(256, &command(1, CommandBody::Tick { now_ms: EPOCH_MS }));
    let applied = routing.apply(512, &command(2, CommandBody::ApplyConfig(Box::new(set.clone()))));
    if let Err(refusal) = &applied.result {
        panic!("a set load_routing accepted was refused by apply: {refusal}");
    }
    check(&routing, "apply_config");
    if let Some(policy) = &policies.callback {
        let applied = routing.apply(768, &command(3, CommandBody::PutCallbackPolicy(policy.clone())));
        if let Err(refusal) = &applied.result {
            panic!("a callback policy load_routing accepted was refused by apply: {refusal}");
        }
    }
    if let Some(policy) = &policies.alarm {
        let applied = routing.apply(1024, &command(4, CommandBody::PutAlarmPolicy(policy.clone())));
        if let Err(refusal) = &applied.result {
            panic!("an alarm policy load_routing accepted was refused by apply: {refusal}");
        }
    }
    // A redacted secret passes the file's check and is the node's to resolve: on an empty
    // state (no webhook to keep it from) apply refuses it; anything else applies.
    if let Some(list) = policies.webhooks.as_ref() {
        let applied = routing.apply(1280, &command(5, CommandBody::PutWebhooks(list.clone())));
        let redacted = list.iter().any(|w| w.secret == lineup_core::WEBHOOK_SECRET_REDACTED);
        match (&applied.result, redacted) {
            (Ok(_), false) => assert_eq!(routing.webhooks(), list.as_slice(), "the list applied as loaded"),
            (Err(_), true) => assert!(routing.webhooks().is_empty(), "a refusal changed the list"),
            (result, _) => panic!("webhooks load_routing accepted (redacted: {redacted}) applied as {result:?}"),
        }
    }
    let exported = routing_to_toml(&set, &policies).expect("a valid set exports");
    let again = load_routing(&ConfigText { path: "exported.toml".into(), text: exported })
        .unwrap_or_else(|error| panic!("an exported set does not load: {error}"));
    assert_eq!(again, (set, policies), "export → load changed the set");
}

/// A node TOML → `NodeSettings::load` (secrets from the environment, addresses, roles).
pub fn node_config(data: &[u8]) {
    let _ = NodeSettings::load(&text("site.toml", data));
}
