//! Operator logins by phone in virtual time: the stand-in's model, the real site
//! controllers and the routing core. The PIN lockout is replicated state, and the login
//! call is what queue_log's AGENTLOGIN names.

mod common;
use common::*;
use lineup_core::*;
use lineup_pbx_sim::{BoxIndex, ScriptedKeys};

fn sales(rig: &mut Rig) {
    rig.queue(QueueConfig { id: QueueId::new("sales"), ..Default::default() });
}

fn wrong(at_ms: u64) -> ScriptedKeys {
    ScriptedKeys { at_ms, digits: "0000#".into() }
}

#[test]
fn repeated_wrong_pins_lock_the_operator_out_even_with_the_right_pin() {
    let mut rig = Rig::new();
    sales(&mut rig);
    rig.operator("1001", "4321", OperatorMode::Persistent, &["sales"]);
    // First call: three wrong PINs, then the line is hung up.
    let first = rig.dial(
        "desk-1001",
        "1001",
        "*551001",
        "lineup-operators",
        None,
        vec![wrong(3_000), wrong(9_000), wrong(15_000)],
    );
    assert!(rig.run_until(40_000, |r| r.audio(&first).is_none()));
    // Second call: two more wrong PINs make five, then the right one is refused too.
    let keys = vec![wrong(3_000), wrong(9_000), ScriptedKeys { at_ms: 15_000, digits: "4321#".into() }];
    let second = rig.dial("desk-1001", "1001", "*551001", "lineup-operators", None, keys);
    assert!(rig.run_until(40_000, |r| r.audio(&second).is_none()));
    assert_eq!(rig.operator_status("1001"), OperatorStatus::Offline, "locked out");
    assert_eq!(rig.site().counters.logins_ok, 0);
    assert_eq!(rig.site().counters.logins_failed, 6);
}

#[test]
fn wrong_pins_at_one_site_lock_the_operator_out_at_another() {
    let mut rig = Rig::federation(2);
    sales(&mut rig);
    rig.operator("1001", "4321", OperatorMode::Persistent, &["sales"]);
    let keys = vec![wrong(3_000), wrong(9_000), wrong(15_000)];
    let first = rig.dial("desk-1001", "1001", "*551001", "lineup-operators", None, keys);
    assert!(rig.run_until(40_000, |r| r.audio(&first).is_none()));
    let keys = vec![wrong(3_000), wrong(9_000)];
    let second = rig.dial("desk-1001", "1001", "*551001", "lineup-operators", None, keys);
    let locked = |r: &Rig| r.audio(&second).is_none() && r.routing.pin_locked_out(&OperatorId::new("1001"));
    assert!(rig.run_until(40_000, locked), "five wrong PINs");
    // The right PIN at the other site, after that site restarted, is refused too.
    rig.restart(1);
    let right = rig.login_call_at(BoxIndex(1), "desk-1001b", "1001", "4321");
    assert!(rig.run_until(40_000, |r| r.audio_at(BoxIndex(1), &right).is_none()), "the login call is closed");
    assert_eq!(rig.operator_status("1001"), OperatorStatus::Offline, "locked out at every site");
    assert_eq!(rig.site_at(1).counters.logins_ok, 0);
}

#[test]
fn a_pin_login_names_its_call_in_agentlogin_and_agentlogoff() {
    let mut rig = Rig::new();
    sales(&mut rig);
    rig.operator("1001", "4321", OperatorMode::Persistent, &["sales"]);
    let login = rig.login_call("desk-1001", "1001", "4321");
    assert!(rig.run_until(20_000, |r| r.operator_status("1001") == OperatorStatus::Available));
    let names = rig.world.channel_names(BOX);
    let name = names.into_iter().find(|(id, _)| *id == login).map(|(_, name)| name).expect("the login call is up");
    assert!(name.starts_with("PJSIP/desk-1001-"), "{name}");
    rig.admin(CommandBody::OperatorLogout { operator: OperatorId::new("1001") }).unwrap();
    let lines: Vec<QueueLogEntry> = rig
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::QueueLog(l) if matches!(l.verb, QueueLogVerb::AgentLogin | QueueLogVerb::AgentLogoff) => {
                Some(l.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert_eq!(line.call.as_ref().map(|c| c.as_str()), Some(login.as_str()), "the login call's unique id");
        assert_eq!(line.data.first(), Some(&name), "the login call's channel name");
    }
}

/// A right PIN while the site's node hears no quorum: the login cannot commit through the
/// retries. The operator was told "login incorrect", as for a wrong PIN; now they hear to try
/// later, and no wrong attempt is counted toward the lockout.
#[test]
fn a_right_pin_that_cannot_commit_says_try_later_not_incorrect() {
    let mut rig = Rig::new();
    sales(&mut rig);
    rig.operator("1001", "4321", OperatorMode::Persistent, &["sales"]);
    rig.no_quorum[0] = true;
    let ch = rig.login_call("desk-1001", "1001", "4321");
    let retries_ms = u64::from(lineup_site::PROPOSE_RETRIES_MAX + 1) * lineup_site::PROPOSE_RETRY_DELAY_MS;
    assert!(rig.run_until(retries_ms + 40_000, |r| r.audio(&ch).is_none()), "the login call is closed");
    let heard = |sound: &str| {
        rig.ari_log.iter().any(|a| {
            matches!(a, lineup_site::AriRequest::Play { channel, media, .. }
                if *channel == ch && media.iter().any(|m| m.to_string() == format!("sound:{sound}")))
        })
    };
    assert!(heard("please-try-call-later"), "told to try later");
    assert!(!heard("agent-incorrect"), "not told the login is incorrect");
    assert_eq!(rig.site().counters.logins_not_committed, 1);
    assert_eq!(rig.site().counters.logins_failed, 0);
    assert!(!rig.routing.pin_locked_out(&OperatorId::new("1001")));
    assert_eq!(rig.operator_status("1001"), OperatorStatus::Offline);
}
