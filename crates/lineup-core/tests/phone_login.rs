//! Logins by phone. queue_log's agent login lines are written as Asterisk's app_agent_pool
//! writes them, so tools that read Asterisk's queue_log read Lineup's: `epoch|<login
//! uniqueid>|NONE|<agent>|AGENTLOGIN|<channel name>` and `…|AGENTLOGOFF|<channel name>|
//! <seconds logged in>`. The PIN lockout is replicated state.

mod common;
use common::*;
use lineup_core::routing::{PIN_LOCKOUT_FAILURES_MAX, PIN_LOCKOUT_WINDOW_MS};
use lineup_core::*;

fn pin_login(h: &mut Harness, id: &str, uniqueid: &str, name: &str) -> CommandResult {
    h.apply(CommandBody::OperatorLoginFrom {
        operator: OperatorId::new(id),
        site: SITE_A,
        channel: Some(uniqueid.into()),
        login: LoginChannel { uniqueid: uniqueid.into(), name: name.into() },
    })
    .0
}

fn lines_with(h: &Harness, verb: &str) -> Vec<String> {
    h.log_lines().into_iter().filter(|l| l.contains(verb)).collect()
}

#[test]
fn a_pin_login_logs_the_login_calls_uniqueid_and_channel_name() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("alice", SITE_A, &[("sales", 1)], &[]);
    pin_login(&mut h, "alice", "1795325224.7", "PJSIP/100-0000002a").unwrap();
    let login = lines_with(&h, "AGENTLOGIN");
    assert_eq!(login.len(), 1);
    assert!(login[0].ends_with("|1795325224.7|NONE|alice|AGENTLOGIN|PJSIP/100-0000002a"), "{}", login[0]);

    h.advance(90_000);
    h.ok(CommandBody::OperatorLogout { operator: OperatorId::new("alice") });
    let logoff = lines_with(&h, "AGENTLOGOFF");
    assert_eq!(logoff.len(), 1);
    assert!(logoff[0].ends_with("|1795325224.7|NONE|alice|AGENTLOGOFF|PJSIP/100-0000002a|90"), "{}", logoff[0]);
}

#[test]
fn a_login_from_no_phone_call_logs_the_device_and_a_later_one_forgets_the_old_call() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.ring_operator("bob", SITE_A, &[("sales", 1)]);
    h.login("bob", SITE_A);
    assert!(lines_with(&h, "AGENTLOGIN")[0].ends_with("|NONE|NONE|bob|AGENTLOGIN|PJSIP/bob"));
    h.ok(CommandBody::OperatorLogout { operator: OperatorId::new("bob") });
    assert!(lines_with(&h, "AGENTLOGOFF")[0].contains("|NONE|NONE|bob|AGENTLOGOFF|PJSIP/bob|"));
}

#[test]
fn a_login_channel_name_that_would_break_a_queue_log_line_is_refused_and_changes_nothing() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("alice", SITE_A, &[("sales", 1)], &[]);
    for (uniqueid, name) in [("1.1", "PJSIP/1|AGENTLOGOFF"), ("1.1", "PJSIP/1\nx"), ("1.1", ""), ("a b", "PJSIP/1")] {
        let err = pin_login(&mut h, "alice", uniqueid, name).unwrap_err();
        assert!(matches!(err, CoreError::InvalidField { .. }), "{err}");
    }
    let alice = h.routing.operator_view(&OperatorId::new("alice")).unwrap();
    assert_eq!(alice.status, OperatorStatus::Offline);
    assert!(lines_with(&h, "AGENTLOGIN").is_empty());
}

#[test]
fn a_site_lost_logs_its_operators_off_with_their_login_calls() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("alice", SITE_A, &[("sales", 1)], &[]);
    pin_login(&mut h, "alice", "1795325224.9", "IAX2/site-1-00000003").unwrap();
    h.ok(CommandBody::SiteLost { site: SITE_A });
    let logoff = lines_with(&h, "AGENTLOGOFF");
    assert_eq!(logoff.len(), 1);
    assert!(logoff[0].contains("|1795325224.9|NONE|alice|AGENTLOGOFF|IAX2/site-1-00000003|"), "{}", logoff[0]);
}

fn reject_pin(h: &mut Harness, id: &str) -> CommandResult {
    h.apply(CommandBody::PinRejected { operator: OperatorId::new(id) }).0
}

#[test]
fn wrong_pins_from_any_site_lock_the_operator_out_until_the_window_passes() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("alice", SITE_A, &[("sales", 1)], &[]);
    let alice = OperatorId::new("alice");
    for n in 0..PIN_LOCKOUT_FAILURES_MAX {
        assert!(!h.routing.pin_locked_out(&alice), "locked after {n} wrong PINs");
        reject_pin(&mut h, "alice").unwrap();
        h.advance(1_000);
    }
    assert!(h.routing.pin_locked_out(&alice));
    // A restarted node restores the lockout with the state.
    let restored = Routing::restore(&h.routing.snapshot_bytes()).unwrap();
    assert!(restored.pin_locked_out(&alice));
    // The first wrong PIN leaves the window, and with it the lockout.
    h.advance(PIN_LOCKOUT_WINDOW_MS - (PIN_LOCKOUT_FAILURES_MAX as u64 - 1) * 1_000);
    assert!(!h.routing.pin_locked_out(&alice));
}

#[test]
fn a_login_clears_wrong_pins_and_an_unknown_operator_keeps_nothing() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("alice", SITE_A, &[("sales", 1)], &[]);
    for _ in 0..PIN_LOCKOUT_FAILURES_MAX - 1 {
        reject_pin(&mut h, "alice").unwrap();
    }
    pin_login(&mut h, "alice", "1.1", "PJSIP/100-00000001").unwrap();
    reject_pin(&mut h, "alice").unwrap();
    assert!(!h.routing.pin_locked_out(&OperatorId::new("alice")), "one wrong PIN since the login");
    let err = reject_pin(&mut h, "mallory").unwrap_err();
    assert!(matches!(err, CoreError::UnknownOperator(_)), "{err}");
    assert!(!h.routing.pin_locked_out(&OperatorId::new("mallory")));
}
