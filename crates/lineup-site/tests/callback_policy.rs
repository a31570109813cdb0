//! The callback destination policy heard on the phone: a caller who keys an emergency
//! number hears that it cannot be used, keeps its place, and may key another.

mod common;
use common::*;
use lineup_core::*;
use lineup_pbx_sim::ScriptedKeys;

#[test]
fn a_caller_who_keys_an_emergency_number_hears_it_refused_and_keeps_its_place() {
    let mut rig = Rig::callbacks_offered_behind_a_busy_operator(1_000, 180_000);
    // A withheld caller id: "1" goes straight to keying; 911 is denied; then "1" and a
    // number the policy allows.
    let keys = vec![
        ScriptedKeys { at_ms: 10_000, digits: "1".into() },
        ScriptedKeys { at_ms: 16_000, digits: "911#".into() },
        ScriptedKeys { at_ms: 30_000, digits: "1".into() },
        ScriptedKeys { at_ms: 38_000, digits: "5557654321#".into() },
    ];
    let ch = rig.dial("anon", "anonymous", "5000", "lineup-gates", None, keys);
    let call = rig.call_id(&ch);
    let denied =
        |r: &Rig| r.effects.iter().any(|e| matches!(e, Effect::QueueLog(l) if l.verb == QueueLogVerb::CallbackDenied));
    assert!(rig.run_until(25_000, denied), "the denial is on record");
    let refused_aloud = |r: &Rig| {
        r.ari_log.iter().any(|a| {
            matches!(a, lineup_site::AriRequest::Play { channel, media, .. }
            if *channel == ch && media.iter().any(|m| m.to_string() == "sound:lineup-callback-invalid"))
        })
    };
    assert!(rig.run_until(5_000, refused_aloud), "the caller hears the number refused");
    assert_eq!(rig.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Waiting), "still waiting");
    assert_eq!(rig.routing.position(&call), Some(1), "in its place");
    let promised = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::CallbackWaiting));
    assert!(rig.run_until(40_000, promised), "the allowed number is taken");
}
