//! The Asterisk snippets in `deploy/asterisk/` against the code: every `Stasis(...)` argument
//! list parses with the same parser site control uses, every kind of entry is there, every
//! caller and operator entry (there and in the demo's dialplan) waits out a node restart,
//! and the trunk and phone examples keep media on Asterisk.

use lineup_ari::stasis_args::{parse_stasis_entry, split_stasis_app_data, StasisEntry};
use lineup_ari::{CallerId, EventKind};
use lineup_pbx_sim::dialplan::{pattern_matches, substitute_exten, Dialplan};
use lineup_pbx_sim::world::DIALPLAN_ANSWER_SETTLE_MS;
use lineup_pbx_sim::{AudioPath, BoxConfig, BoxIndex, EndedBy, PbxWorld, PhoneCall};

const EXTENSIONS_CONF: &str = include_str!("../../../deploy/asterisk/extensions.conf");
const PJSIP_TRUNK_CONF: &str = include_str!("../../../deploy/asterisk/pjsip-trunk.conf");
const IAX_TRUNK_CONF: &str = include_str!("../../../deploy/asterisk/iax-trunk.conf");
const ARI_CONF: &str = include_str!("../../../deploy/asterisk/ari.conf");
const HTTP_CONF: &str = include_str!("../../../deploy/asterisk/http.conf");
const DEMO_EXTENSIONS_CONF: &str = include_str!("../../../deploy/demo/extensions.conf");
/// The contexts people and phones dial into (the trunk entry must fail at once instead).
const ENTRY_CONTEXTS: [&str; 2] = ["lineup-gates", "lineup-operators"];
/// A node restart takes 2-7 s; an entry must wait at least this long for it.
const NODE_RESTART_MAX_MS: u64 = 7_000;
/// And give up within this (about 30 s of retries, then the local fallback).
const ENTRY_WAIT_MAX_MS: u64 = 31_000;
/// Hold music between two tries.
const RETRY_PAUSE_MS: u64 = 2_000;

/// An extension that `pattern` matches, to expand `${EXTEN:n}` with.
fn example_exten(pattern: &str) -> String {
    let Some(body) = pattern.strip_prefix('_') else { return pattern.to_string() };
    let mut example = String::new();
    let mut characters = body.chars();
    while let Some(character) = characters.next() {
        match character {
            'X' | 'x' | 'Z' | 'z' | 'N' | 'n' => example.push('7'),
            '.' | '!' => example.push_str("c42"),
            '[' => {
                let class: String = characters.by_ref().take_while(|&c| c != ']').collect();
                example.push(class.chars().next().unwrap_or('0'));
            }
            literal => example.push(literal),
        }
    }
    assert!(pattern_matches(pattern, &example), "{example} should match {pattern}");
    example
}

/// `(section, key, value)` of an ini-style file, comments removed.
fn ini_entries(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for line in text.lines() {
        let line = line.split(';').next().unwrap_or("").trim();
        if let Some(name) = line.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((key, value)) = line.split_once('=') {
            entries.push((section.clone(), key.trim().to_string(), value.trim().to_string()));
        }
    }
    entries
}

#[test]
fn every_stasis_entry_in_the_dialplan_parses() {
    let dialplan = Dialplan::parse(EXTENSIONS_CONF).expect("deploy/asterisk/extensions.conf parses");
    let mut entries = Vec::new();
    for (context, pattern, priority, step) in dialplan.steps() {
        if step.application != "Stasis" {
            continue;
        }
        let data = substitute_exten(&step.data, &example_exten(pattern));
        let (application, args) = split_stasis_app_data(&data);
        let entry = parse_stasis_entry(&application, &args)
            .unwrap_or_else(|error| panic!("{context},{pattern},{priority}: Stasis({data}): {error}"));
        entries.push(entry);
    }
    let callers = entries.iter().filter(|entry| matches!(entry, StasisEntry::Caller { gate: Some(_), .. })).count();
    let with_priority =
        entries.iter().filter(|entry| matches!(entry, StasisEntry::Caller { priority: Some(_), .. })).count();
    let logins_with_id =
        entries.iter().filter(|entry| matches!(entry, StasisEntry::OperatorLogin { operator: Some(_) })).count();
    let logins_by_prompt =
        entries.iter().filter(|entry| matches!(entry, StasisEntry::OperatorLogin { operator: None })).count();
    let trunk_legs = entries.iter().filter(|entry| matches!(entry, StasisEntry::TrunkLeg { .. })).count();
    assert!(callers >= 2, "caller entries per gate");
    assert!(with_priority >= 1, "a gate with a priority");
    assert!(logins_with_id >= 1 && logins_by_prompt >= 1, "both login forms");
    assert_eq!(trunk_legs, 1, "one cross-site trunk entry");
}

/// One box running `text`, no Lineup node connected, and a phone that has just dialled
/// `exten` in `context`.
fn entry_world(text: &str, exten: &str, context: &str) -> (PbxWorld, lineup_ari::ChannelId) {
    let config = BoxConfig {
        name: "site-a".into(),
        asterisk_id: "02:fc:00:00:00:0a".into(),
        dialplan: Dialplan::parse(text).unwrap(),
        trunks: vec![],
    };
    let mut world = PbxWorld::new(1_795_325_224_000, vec![config]).unwrap();
    let call = PhoneCall {
        phone: "alice".into(),
        caller: CallerId { name: "Alice".into(), number: "5551234".into() },
        context: context.into(),
        exten: exten.into(),
        patience_ms: None,
        keys: vec![],
    };
    let channel = world.place_call(BoxIndex(0), call).unwrap();
    (world, channel)
}

/// Every extension of the entry contexts of `text`, as an extension a phone would dial.
fn entry_extensions(text: &str) -> Vec<(String, String)> {
    let dialplan = Dialplan::parse(text).unwrap();
    let mut entries: Vec<(String, String)> = dialplan
        .steps()
        .filter(|(context, _, priority, _)| ENTRY_CONTEXTS.contains(context) && *priority == 1)
        .map(|(context, pattern, _, _)| (context.to_string(), example_exten(pattern)))
        .collect();
    entries.dedup();
    entries
}

#[test]
fn every_entry_waits_out_a_node_restart_then_falls_back() {
    for (file, text) in [("deploy/asterisk", EXTENSIONS_CONF), ("deploy/demo", DEMO_EXTENSIONS_CONF)] {
        let entries = entry_extensions(text);
        assert!(entries.len() >= 3, "{file}: {entries:?}");
        for (context, exten) in entries {
            let what = format!("{file} {context},{exten}");
            // The node comes back within a restart: the caller enters Stasis, after music.
            let (mut world, channel) = entry_world(text, &exten, &context);
            world.advance_to(world.now_ms() + DIALPLAN_ANSWER_SETTLE_MS);
            let held = world.audio_path(BoxIndex(0), &channel);
            assert_eq!(held, Some(AudioPath::MusicOnHold { class: "default".into() }), "{what}");
            world.advance_to(world.now_ms() + NODE_RESTART_MAX_MS);
            world.register_application(BoxIndex(0), "lineup");
            world.register_application(BoxIndex(0), "lineup-login");
            world.advance_to(world.now_ms() + RETRY_PAUSE_MS);
            let entered = world.drain_outputs().iter().any(|o| matches!(o.event.kind, EventKind::StasisStart { .. }));
            assert!(entered, "{what}: never entered Stasis once the node was back");
            // The node stays down: the call ends in the dialplan's fallback, within the bound.
            let (mut world, channel) = entry_world(text, &exten, &context);
            world.advance_to(world.now_ms() + ENTRY_WAIT_MAX_MS);
            let ended = world.ended_channel(BoxIndex(0), &channel).unwrap_or_else(|| panic!("{what}: still waiting"));
            assert_eq!(ended.ended_by, EndedBy::Dialplan, "{what}");
            assert_eq!(ended.variables.get("STASISSTATUS").map(String::as_str), Some("FAILED"), "{what}");
        }
    }
}

#[test]
fn the_trunk_entry_matches_the_trunk_dial_string_and_recovers_the_call() {
    let dialplan = Dialplan::parse(EXTENSIONS_CONF).unwrap();
    // Lineup dials PJSIP/lineup-<call>@site-b or IAX2/site-b/lineup-<call>.
    let extension = dialplan.find("from-lineup", "lineup-c-0042").expect("trunk entry matches");
    let data = substitute_exten(&extension.steps[0].data, "lineup-c-0042");
    let (application, args) = split_stasis_app_data(&data);
    assert_eq!(parse_stasis_entry(&application, &args).unwrap(), StasisEntry::TrunkLeg { call: "c-0042".into() });
}

#[test]
fn every_pjsip_endpoint_keeps_media_on_asterisk() {
    let entries = ini_entries(PJSIP_TRUNK_CONF);
    let endpoints: Vec<&String> = entries
        .iter()
        .filter(|(_, key, value)| key == "type" && value == "endpoint")
        .map(|(section, _, _)| section)
        .collect();
    assert!(endpoints.len() >= 2, "a trunk and an operator phone");
    for endpoint in endpoints {
        // A section name is reused for endpoint, aor and auth: look for the endpoint's key
        // between its `type = endpoint` line and the next `type =` line.
        let start = entries.iter().position(|(s, k, v)| s == endpoint && k == "type" && v == "endpoint").unwrap();
        let block: Vec<_> = entries[start + 1..].iter().take_while(|(_, key, _)| key != "type").collect();
        assert!(
            block.iter().any(|(_, key, value)| key == "direct_media" && value == "no"),
            "endpoint {endpoint} must set direct_media = no"
        );
    }
    let trunk_context = entries.iter().find(|(s, k, _)| s == "site-2" && k == "context").map(|(_, _, v)| v.as_str());
    assert_eq!(trunk_context, Some("from-lineup"));
}

#[test]
fn the_iax_trunk_keeps_media_on_asterisk() {
    let entries = ini_entries(IAX_TRUNK_CONF);
    assert!(entries.iter().any(|(_, key, value)| key == "transfer" && value == "no"));
    assert!(entries.iter().any(|(_, key, value)| key == "context" && value == "from-lineup"));
}

/// With a secret per pair of sites the dialling box must name itself, or the far box cannot
/// pick the secret and hangs up at once (seen on Asterisk 22): every IAX2 trunk stanza has a
/// `username`, and it is this box's own name, not the far site's.
#[test]
fn every_iax_trunk_names_the_dialling_site() {
    let entries = ini_entries(IAX_TRUNK_CONF);
    let stanzas: std::collections::BTreeSet<&str> = entries.iter().map(|(s, _, _)| s.as_str()).collect();
    assert!(stanzas.len() >= 2, "a trunk to each other site");
    for stanza in stanzas {
        let username = entries.iter().find(|(s, k, _)| s == stanza && k == "username").map(|(_, _, v)| v.as_str());
        let username = username.unwrap_or_else(|| panic!("[{stanza}] has no username"));
        assert_ne!(username, stanza, "[{stanza}]: username is this box's name, not the far site's");
        assert!(username.starts_with("site-"), "[{stanza}]: trunks are named site-N on every box");
    }
}

#[test]
fn ari_and_http_are_enabled_on_loopback() {
    let http = ini_entries(HTTP_CONF);
    assert!(http.contains(&("general".into(), "enabled".into(), "yes".into())));
    assert!(http.contains(&("general".into(), "bindaddr".into(), "127.0.0.1".into())));
    let ari = ini_entries(ARI_CONF);
    assert!(ari.contains(&("general".into(), "enabled".into(), "yes".into())));
    assert!(ari.contains(&("lineup".into(), "type".into(), "user".into())));
    assert!(ari.contains(&("lineup".into(), "read_only".into(), "no".into())));
}
