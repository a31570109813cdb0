//! Call flows end to end in virtual time: the Asterisk stand-in's model, the real site
//! controller and the routing core.

mod common;
use common::*;
use lineup_core::*;
use lineup_pbx_sim::{AudioPath, PhoneBehaviour, ScriptedKeys};

fn sales(rig: &mut Rig) {
    rig.queue(QueueConfig { id: QueueId::new("sales"), announce_every_ms: Some(30_000), ..Default::default() });
    rig.gate("main", "sales", None);
    rig.gate("vip", "sales", Some("queue-reporthold"));
}

#[test]
fn caller_waits_on_hold_music_and_hears_position_announcements() {
    let mut rig = Rig::new();
    sales(&mut rig);
    let ch = rig.caller("alice", "5000", None);
    let call = rig.call_id(&ch);
    assert!(rig.run_until(10_000, |r| r.routing.position(&call) == Some(1)), "caller enqueued");
    // The entry announcement plays ("you are next"), then hold music resumes.
    let announced = |r: &Rig| {
        r.ari_log.iter().any(|a| {
            matches!(a, lineup_site::AriRequest::Play { media, .. }
            if media.first().map(|m| m.to_string()).as_deref() == Some("sound:queue-youarenext"))
        })
    };
    assert!(rig.run_until(10_000, announced));
    assert!(rig.run_until(10_000, |r| matches!(r.audio(&ch), Some(AudioPath::Prompt { .. }))));
    assert!(rig.run_until(20_000, |r| matches!(r.audio(&ch), Some(AudioPath::MusicOnHold { .. }))));
    // Thirty seconds later the next announcement.
    let plays = |r: &Rig| r.ari_log.iter().filter(|a| matches!(a, lineup_site::AriRequest::Play { .. })).count();
    assert!(rig.run_until(40_000, |r| plays(r) >= 2));
    let view = rig.routing.call_view(&call).unwrap();
    assert_eq!(view.gate, Some(GateId::new("main")));
}

#[test]
fn unknown_queue_goes_back_to_the_dialplan_with_invalid() {
    let mut rig = Rig::new();
    // No queue configured at all: the core refuses the Enqueue.
    let ch = rig.caller("bob", "5002", None);
    let invalid = |r: &Rig| {
        r.ari_log.iter().any(|a| {
            matches!(a, lineup_site::AriRequest::Continue { channel, variables, .. }
            if channel == &ch && variables.contains(&("LINEUP_RESULT".to_string(), "INVALID".to_string())))
        })
    };
    assert!(rig.run_until(10_000, invalid));
    assert!(rig.run_until(5_000, |r| r.audio(&ch).is_none()), "the dialplan hangs up after Stasis");
    assert_eq!(rig.routing.call_count(), 0);
}

#[test]
fn persistent_operator_logs_in_by_pin_and_takes_a_caller_in_a_mixing_bridge() {
    let mut rig = Rig::new();
    sales(&mut rig);
    rig.operator("1001", "4321", OperatorMode::Persistent, &["sales"]);
    let op_ch = rig.login_call("desk-1001", "1001", "4321");
    assert!(rig.run_until(20_000, |r| r.operator_status("1001") == OperatorStatus::Available), "login committed");
    let caller = rig.caller("carol", "5000", Some(60_000));
    let call = rig.call_id(&caller);
    assert!(
        rig.run_until(20_000, |r| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected))),
        "connected"
    );
    match rig.audio(&caller) {
        Some(AudioPath::Connected { parties }) => {
            assert!(parties.iter().any(|(_, name)| name.contains("desk-1001")), "{parties:?}")
        }
        other => panic!("caller hears {other:?}"),
    }
    assert!(rig.ari_log.iter().any(
        |r| matches!(r, lineup_site::AriRequest::CreateBridge(b) if b.bridge_type.as_str() == "mixing,dtmf_events")
    ));
    // The caller's patience ends the call: Completed by the caller, operator back to holding.
    assert!(rig.run_until(70_000, |r| r.outcome(&call).is_some()));
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Caller }));
    assert!(rig.run_until(5_000, |r| r.operator_status("1001") == OperatorStatus::Available));
    assert!(rig.world.audio_path(BOX, &op_ch).is_some(), "the operator's leg stays up");
}

#[test]
fn ring_mode_operator_is_rung_and_a_missed_ring_returns_the_caller_to_the_head() {
    let mut rig = Rig::new();
    rig.queue(QueueConfig {
        id: QueueId::new("sales"),
        ring_timeout_ms: 8_000,
        misses_before_break: 1,
        ..Default::default()
    });
    rig.gate("main", "sales", None);
    rig.operator("2002", "1111", OperatorMode::Ring, &["sales"]);
    rig.phone("phone-2002", PhoneBehaviour { answer_after_ms: None, ..Default::default() });
    rig.login_call("desk-2002", "2002", "1111");
    assert!(rig.run_until(20_000, |r| r.operator_status("2002") == OperatorStatus::Available));
    let caller = rig.caller("dave", "5000", None);
    let call = rig.call_id(&caller);
    assert!(
        rig.run_until(10_000, |r| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Offered)))
    );
    // Nobody answers: RingNoAnswer, the operator goes on break (1 miss), caller waits again.
    assert!(rig.run_until(30_000, |r| matches!(r.operator_status("2002"), OperatorStatus::Break { .. })));
    assert_eq!(rig.routing.position(&call), Some(1));
    assert!(rig.effects.iter().any(|e| matches!(e, Effect::QueueLog(l) if l.verb == QueueLogVerb::RingNoAnswer)));
    assert!(rig.run_until(10_000, |r| matches!(r.audio(&caller), Some(AudioPath::MusicOnHold { .. }))));
}

#[test]
fn ring_mode_operator_answers_and_the_call_connects() {
    let mut rig = Rig::new();
    sales(&mut rig);
    rig.operator("3003", "2222", OperatorMode::Ring, &["sales"]);
    rig.phone(
        "phone-3003",
        PhoneBehaviour { answer_after_ms: Some(2_000), hang_up_after_answer_ms: Some(30_000), ..Default::default() },
    );
    rig.login_call("desk-3003", "3003", "2222");
    assert!(rig.run_until(20_000, |r| r.operator_status("3003") == OperatorStatus::Available));
    let caller = rig.caller("erin", "5000", None);
    let call = rig.call_id(&caller);
    assert!(
        rig.run_until(20_000, |r| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected)))
    );
    // The operator hangs up after 30 s: Completed by the operator, caller back to the dialplan.
    assert!(rig.run_until(40_000, |r| r.outcome(&call).is_some()));
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Operator }));
    assert!(rig.run_until(5_000, |r| r.world.get_variable(BOX, caller.as_str(), "LINEUP_RESULT").ok().as_deref()
        == Some("COMPLETED")
        || r.audio(&caller).is_none()));
}

#[test]
fn exit_key_returns_the_caller_to_the_dialplan() {
    let mut rig = Rig::new();
    sales(&mut rig);
    let ch = rig.dial(
        "frank",
        "5550001",
        "5000",
        "lineup-gates",
        None,
        vec![ScriptedKeys { at_ms: 6_000, digits: "0".into() }],
    );
    let call = rig.call_id(&ch);
    assert!(rig.run_until(20_000, |r| r.outcome(&call).is_some()));
    assert_eq!(rig.outcome(&call), Some(Outcome::ExitWithKey { key: '0' }));
}

#[test]
fn caller_hanging_up_while_waiting_is_abandoned() {
    let mut rig = Rig::new();
    sales(&mut rig);
    let ch = rig.caller("gina", "5000", Some(4_000));
    let call = rig.call_id(&ch);
    assert!(rig.run_until(20_000, |r| r.outcome(&call).is_some()));
    assert_eq!(rig.outcome(&call), Some(Outcome::Abandoned));
    assert!(rig.run_until(5_000, |r| r.site().tracked_callers() == 0));
}

#[test]
fn timeout_sends_the_caller_back_with_lineup_result_timeout() {
    let mut rig = Rig::new();
    rig.queue(QueueConfig { id: QueueId::new("sales"), max_wait_ms: Some(10_000), ..Default::default() });
    rig.gate("main", "sales", None);
    let ch = rig.caller("hank", "5000", None);
    let call = rig.call_id(&ch);
    assert!(rig.run_until(30_000, |r| r.outcome(&call).is_some()));
    assert_eq!(rig.outcome(&call), Some(Outcome::TimedOut));
    assert!(rig.run_until(5_000, |r| r.world.get_variable(BOX, ch.as_str(), "LINEUP_RESULT").ok().as_deref()
        == Some("TIMEOUT")
        || r.audio(&ch).is_none()));
}

#[test]
fn wrong_pin_three_times_hangs_up_and_logs_nobody_in() {
    let mut rig = Rig::new();
    sales(&mut rig);
    rig.operator("1001", "4321", OperatorMode::Persistent, &["sales"]);
    let keys = vec![
        ScriptedKeys { at_ms: 3_000, digits: "1111#".into() },
        ScriptedKeys { at_ms: 9_000, digits: "2222#".into() },
        ScriptedKeys { at_ms: 15_000, digits: "3333#".into() },
    ];
    let ch = rig.dial("desk-1001", "1001", "*551001", "lineup-operators", None, keys);
    assert!(rig.run_until(40_000, |r| r.audio(&ch).is_none()), "hung up after three failures");
    assert_eq!(rig.operator_status("1001"), OperatorStatus::Offline);
    assert_eq!(rig.site().counters.logins_failed, 3);
}

#[test]
fn gate_whisper_plays_to_the_operator_before_connecting() {
    let mut rig = Rig::new();
    sales(&mut rig);
    rig.operator("1001", "4321", OperatorMode::Persistent, &["sales"]);
    rig.login_call("desk-1001", "1001", "4321");
    assert!(rig.run_until(20_000, |r| r.operator_status("1001") == OperatorStatus::Available));
    let caller = rig.caller("ivy", "5001", None);
    let call = rig.call_id(&caller);
    assert!(
        rig.run_until(30_000, |r| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected)))
    );
    let whisper = rig.ari_log.iter().position(|r| matches!(r, lineup_site::AriRequest::Play { media, .. } if media.iter().any(|m| m.to_string() == "sound:queue-reporthold")));
    let bridged = rig.ari_log.iter().position(
        |r| matches!(r, lineup_site::AriRequest::AddChannels { bridge, .. } if bridge.as_str().starts_with("call-")),
    );
    assert!(whisper.is_some() && bridged.is_some() && whisper < bridged, "whisper before bridge");
}

#[test]
fn caller_at_site_one_is_answered_by_a_persistent_operator_at_site_two_over_the_trunk() {
    let mut rig = Rig::federation(2);
    sales(&mut rig);
    rig.operator_at(SiteId(2), "2001", "9999", OperatorMode::Persistent, &["sales"]);
    let op_leg = rig.login_call_at(lineup_pbx_sim::BoxIndex(1), "desk-2001", "2001", "9999");
    assert!(rig.run_until(20_000, |r| r.operator_status("2001") == OperatorStatus::Available));
    let caller = rig.caller("kim", "5000", Some(45_000));
    let call = rig.call_id(&caller);
    let connected = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(30_000, connected), "connected across sites");
    match rig.audio(&caller) {
        Some(AudioPath::Connected { parties }) => {
            assert!(parties.iter().any(|(b, name)| b.0 == 1 && name.contains("desk-2001")), "{parties:?}")
        }
        other => panic!("caller hears {other:?}"),
    }
    assert!(rig.run_until(60_000, |r| r.outcome(&call).is_some()));
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Caller }));
    assert!(rig.run_until(10_000, |r| r.operator_status("2001") == OperatorStatus::Available));
    assert!(rig.audio_at(lineup_pbx_sim::BoxIndex(1), &op_leg).is_some(), "operator leg still up");
}

/// The caller's site can apply an Offer before the operator's site does, and its trunk
/// call can then arrive at the operator's site before the Offer: the operator's site holds
/// the call until the Offer comes instead of refusing it (which cost the caller a whole
/// offer timeout).
#[test]
fn a_trunk_call_that_arrives_before_its_offer_is_held_and_connected() {
    let mut rig = Rig::federation(2);
    sales(&mut rig);
    rig.operator_at(SiteId(2), "2001", "9999", OperatorMode::Persistent, &["sales"]);
    rig.login_call_at(lineup_pbx_sim::BoxIndex(1), "desk-2001", "2001", "9999");
    assert!(rig.run_until(20_000, |r| r.operator_status("2001") == OperatorStatus::Available));
    rig.lagging[1] = true;
    let caller = rig.caller("kim", "5000", Some(45_000));
    let call = rig.call_id(&caller);
    // The trunk call reaches site 2, which has not applied the Offer yet.
    let trunked = |r: &Rig| {
        let channels = r.world.list_channels(lineup_pbx_sim::BoxIndex(1)).expect("channels");
        channels.iter().any(|c| c.dialplan.app_data.contains("xfer="))
    };
    assert!(rig.run_until(2_000, trunked), "trunk call placed");
    rig.run_for(1_000);
    rig.catch_up();
    let connected = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(3_000, connected), "connected on the held trunk call, well within an offer timeout");
    match rig.audio(&caller) {
        Some(AudioPath::Connected { parties }) => {
            assert!(parties.iter().any(|(b, name)| b.0 == 1 && name.contains("desk-2001")), "{parties:?}")
        }
        other => panic!("caller hears {other:?}"),
    }
}

/// Seen on real boxes: the operator's site restarted during a cross-site call, took the
/// live trunk leg for a new arrival, refused it after the early-trunk wait, and the call was
/// cut and booked as completed by the operator. A restart adopts the trunk leg instead.
#[test]
fn a_restart_of_the_operators_site_during_a_cross_site_call_keeps_the_call() {
    let mut rig = Rig::federation(2);
    sales(&mut rig);
    rig.operator_at(SiteId(2), "2001", "9999", OperatorMode::Persistent, &["sales"]);
    let op_leg = rig.login_call_at(lineup_pbx_sim::BoxIndex(1), "desk-2001", "2001", "9999");
    assert!(rig.run_until(20_000, |r| r.operator_status("2001") == OperatorStatus::Available));
    let caller = rig.caller("kim", "5000", Some(45_000));
    let call = rig.call_id(&caller);
    let connected = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(30_000, connected), "connected across sites");

    rig.deaf[1] = true;
    rig.run_for(2_000);
    rig.restart(1);
    // Longer than a refused trunk call would take (EARLY_TRUNK_WAIT_MS).
    rig.run_for(lineup_site::EARLY_TRUNK_WAIT_MS + 5_000);
    assert!(connected(&rig), "still connected after the restart: {:?}", rig.outcome(&call));
    assert!(matches!(rig.audio(&caller), Some(AudioPath::Connected { .. })), "caller still talks");
    assert!(rig.site_at(1).counters.channels_adopted >= 2, "{:?}", rig.site_at(1).counters);

    // The caller hangs up when done: one true outcome, the operator back in holding.
    assert!(rig.run_until(60_000, |r| r.outcome(&call).is_some()));
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Caller }));
    assert!(rig.run_until(10_000, |r| r.operator_status("2001") == OperatorStatus::Available));
    assert!(rig.audio_at(lineup_pbx_sim::BoxIndex(1), &op_leg).is_some(), "operator leg still up");
}

/// A caller waits at site 1; site 1's node goes down (deaf, lagging, and `unheard`: its own
/// proposals lost too) while operator 2001 logs in at site 2 and is offered the caller. The
/// caller's channel, its call and that offer's fence.
fn offered_while_the_callers_node_is_down(rig: &mut Rig, unheard: bool) -> (lineup_ari::ChannelId, CallId, u64) {
    sales(rig);
    rig.operator_at(SiteId(2), "2001", "9999", OperatorMode::Persistent, &["sales"]);
    let caller = rig.caller("kim", "5000", Some(120_000));
    let call = rig.call_id(&caller);
    assert!(rig.run_until(10_000, |r| r.routing.position(&call) == Some(1)), "caller waits");
    rig.deaf[0] = true;
    rig.lagging[0] = true;
    rig.unheard[0] = unheard;
    rig.login_call_at(lineup_pbx_sim::BoxIndex(1), "desk-2001", "2001", "9999");
    let offered = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Offered));
    assert!(rig.run_until(20_000, offered), "offered while the caller's node is down");
    let fence = rig.routing.call_view(&call).and_then(|v| v.fence).expect("fence");
    (caller, call, fence)
}

/// Seen in the real-process harness: a cross-site Offer committed while the caller's node
/// was restarting. At ready its reconcile found the offer with nothing built and took it down
/// (`Interrupted`); then the node's driver fed it the same Offer effect, which it executed:
/// trunk dialled, both sides bridged, torn down 8 ms later by its own `OfferFailed`. A fence
/// a reconcile took down is never executed afterwards.
#[test]
fn an_offer_taken_down_by_a_restarts_reconcile_is_not_executed_when_its_effect_arrives() {
    let mut rig = Rig::federation(2);
    let (caller, call, stale_fence) = offered_while_the_callers_node_is_down(&mut rig, false);

    // Back: the reconcile runs first, then the driver feeds the effects it missed.
    rig.restart(0);
    rig.catch_up();
    let connected = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(30_000, connected), "offered again under a new fence and connected");
    let stale_trunk = format!("trunk-1-{stale_fence}-");
    let dialled_stale = rig.ari_log.iter().any(|request| match request {
        lineup_site::AriRequest::Originate(o) => {
            o.channel_id.as_ref().is_some_and(|c| c.as_str().starts_with(&stale_trunk))
        }
        _ => false,
    });
    assert!(!dialled_stale, "the taken-down offer (fence {stale_fence}) was dialled");
    assert!(rig.site_at(0).counters.offers_fenced_out >= 1, "{:?}", rig.site_at(0).counters);
    assert!(matches!(rig.audio(&caller), Some(AudioPath::Connected { .. })), "caller talks");
}

/// Seen in lineup-chaos (`random`, seed 3, a failing fsync stopped the caller's node): a
/// cross-site offer committed while the caller's node was down; back, its reconcile took it
/// down and the same entry offered the caller again to the same operator. The caller's site
/// dialled the trunk for the new offer; the operator's site, not yet past that entry, handed
/// the trunk call to the old offer it still awaited (a trunk call names the call, not the
/// offer) and bridged it. The old offer's cancel then hung the trunk call up under the
/// connected call: booked completed by the operator after 0 s of talk, the caller sent to the
/// dialplan and hung up. The trunk call is handed to the new offer instead.
#[test]
fn a_trunk_call_taken_by_a_cancelled_offer_goes_on_with_the_next_offer_of_its_call() {
    let mut rig = Rig::federation(2);
    let (caller, call, stale_fence) = offered_while_the_callers_node_is_down(&mut rig, true);

    // Back: its reconcile takes that offer down and the caller is offered again, while the
    // operator's node lags behind the entry that did it.
    rig.unheard[0] = false;
    rig.restart(0);
    rig.catch_up();
    rig.lagging[1] = true;
    let connected = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(10_000, connected), "connected under the new offer");
    let fence = rig.routing.call_view(&call).and_then(|v| v.fence).expect("fence");
    assert!(fence > stale_fence, "offered again under a new fence");

    // The operator's site catches up: the old offer's cancel must not end the new call.
    rig.catch_up();
    rig.run_for(5_000);
    assert_eq!(rig.outcome(&call), None, "the call goes on");
    assert!(connected(&rig), "still connected: {:?}", rig.routing.call_view(&call));
    match rig.audio(&caller) {
        Some(AudioPath::Connected { parties }) => {
            assert!(parties.iter().any(|(b, name)| b.0 == 1 && name.contains("desk-2001")), "{parties:?}")
        }
        other => panic!("caller hears {other:?}"),
    }
}

/// Seen with real processes (lineup-chaos restarts, trace logs): a persistent operator logged
/// in by PIN while a caller waited. The entry that logged them in also offered them the
/// caller, and its effects reached the site before the answer to its own login proposal:
/// the offer bridged both, then the login's answer put the operator's leg in its holding
/// bridge, out of the call. The caller heard silence until a restart booked the call
/// completed. A login whose leg is already in a call leaves it there.
#[test]
fn an_operator_logging_in_while_a_caller_waits_stays_in_the_call_the_login_offered() {
    let mut rig = Rig::new();
    sales(&mut rig);
    let caller = rig.caller("kim", "5000", Some(120_000));
    let call = rig.call_id(&caller);
    assert!(rig.run_until(10_000, |r| r.routing.position(&call) == Some(1)), "caller waits");
    rig.operator("1001", "4321", OperatorMode::Persistent, &["sales"]);
    let leg = rig.login_call("desk-1001", "1001", "4321");
    let connected = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(20_000, connected), "the login's own entry offered the caller");
    rig.run_for(5_000);
    assert!(connected(&rig), "{:?}", rig.outcome(&call));
    for (who, channel) in [("caller", &caller), ("operator", &leg)] {
        match rig.audio(channel) {
            Some(AudioPath::Connected { parties }) => assert_eq!(parties.len(), 1, "{who}: {parties:?}"),
            other => panic!("the {who} hears {other:?}, not the other party"),
        }
    }
}

/// Seen in lineup-chaos's nemesis: one entry (the site back after a partition) offered two
/// callers to two operators, so both offers carried the same fence. When one persistent
/// operator hung up, the site looked the offer up by fence alone, ended the other call
/// (booked as completed by its operator, its caller sent on in the dialplan) and left the
/// right one connected to nobody. Offers are keyed by call and fence.
#[test]
fn an_operator_hanging_up_ends_their_own_call_when_two_offers_share_a_fence() {
    let mut rig = Rig::new();
    sales(&mut rig);
    rig.admin(CommandBody::SiteUnreachable { site: SITE }).expect("unreachable");
    let callers = [rig.caller("ann", "5000", None), rig.caller("bob", "5000", None)];
    let calls = callers.clone().map(|c| rig.call_id(&c));
    let mut legs = Vec::new();
    for (id, pin) in [("1001", "4321"), ("1002", "8765")] {
        rig.operator(id, pin, OperatorMode::Persistent, &["sales"]);
        legs.push(rig.login_call(&format!("desk-{id}"), id, pin));
        assert!(rig.run_until(20_000, |r| r.operator_status(id) == OperatorStatus::Available));
    }
    assert!(calls.iter().all(|c| rig.routing.position(c).is_some()), "both wait while the site is unreachable");

    rig.admin(CommandBody::SiteBack { site: SITE }).expect("back");
    let connected =
        |r: &Rig, call: &CallId| matches!(r.routing.call_view(call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(10_000, |r| calls.iter().all(|c| connected(r, c))), "both connected");
    let fences: Vec<Option<u64>> = calls.iter().map(|c| rig.routing.call_view(c).and_then(|v| v.fence)).collect();
    assert_eq!(fences[0], fences[1], "one entry offered both");

    // The operator of the call a lookup by fence alone would not find first hangs up: only
    // that call ends, completed by the operator; the other goes on.
    let (mine, other) = if calls[0] > calls[1] { (0, 1) } else { (1, 0) };
    let operator = rig.routing.call_view(&calls[mine]).and_then(|v| v.operator).expect("operator");
    let leg = if operator.as_str() == "1001" { &legs[0] } else { &legs[1] };
    rig.world.hangup_channel(BOX, leg.as_str(), 16).expect("operator hangs up");
    assert!(rig.run_until(10_000, |r| r.outcome(&calls[mine]).is_some()), "the operator's call ended");
    assert_eq!(rig.outcome(&calls[mine]), Some(Outcome::Completed { by: HungUpBy::Operator }));
    assert_eq!(rig.outcome(&calls[other]), None, "the other call goes on");
    assert!(connected(&rig, &calls[other]));
    assert!(matches!(rig.audio(&callers[other]), Some(AudioPath::Connected { .. })), "its caller still talks");
}

/// The caller's site is silent (its events are lost) when the operator at the other site
/// hangs up: the operator's own site frees the operator after a short grace, and the call's
/// outcome is booked when the caller's site is heard again, with the true `by`.
#[test]
fn the_operators_site_frees_its_operator_while_the_callers_site_is_silent() {
    let mut rig = Rig::federation(2);
    sales(&mut rig);
    rig.operator_at(SiteId(2), "2002", "8888", OperatorMode::Ring, &["sales"]);
    let hangs_up =
        PhoneBehaviour { answer_after_ms: Some(1_000), hang_up_after_answer_ms: Some(8_000), ..Default::default() };
    rig.phone_at(lineup_pbx_sim::BoxIndex(1), "phone-2002", hangs_up);
    rig.login_call_at(lineup_pbx_sim::BoxIndex(1), "desk-2002", "2002", "8888");
    assert!(rig.run_until(20_000, |r| r.operator_status("2002") == OperatorStatus::Available));
    let caller = rig.caller("lee", "5000", None);
    let call = rig.call_id(&caller);
    let connected = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(30_000, connected));

    rig.deaf[0] = true;
    let freed = |r: &Rig| !matches!(r.operator_status("2002"), OperatorStatus::Busy { .. });
    assert!(rig.run_until(20_000, freed), "the operator's site freed its operator");
    assert_eq!(rig.outcome(&call), None, "the outcome waits for the caller's site");

    rig.reconnect(0);
    assert!(rig.run_until(10_000, |r| r.outcome(&call).is_some()));
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Operator }));
}

/// A trunk call that the far box refuses (its node is down, so `Stasis` fails there and
/// the dialplan hangs up with congestion) is reported at once by the caller's site: the
/// caller keeps its place and the operator is not charged a missed ring.
#[test]
fn a_refused_trunk_call_is_reported_at_once_and_not_charged_to_the_operator() {
    let mut rig = Rig::federation(2);
    sales(&mut rig);
    rig.operator_at(SiteId(2), "2002", "8888", OperatorMode::Ring, &["sales"]);
    rig.phone_at(lineup_pbx_sim::BoxIndex(1), "phone-2002", PhoneBehaviour::default());
    rig.login_call_at(lineup_pbx_sim::BoxIndex(1), "desk-2002", "2002", "8888");
    assert!(rig.run_until(20_000, |r| r.operator_status("2002") == OperatorStatus::Available));
    // Site 2's node goes away: its application is gone from its box.
    rig.deaf[1] = true;
    rig.world.unregister_application(lineup_pbx_sim::BoxIndex(1), "lineup");
    let caller = rig.caller("lee", "5000", None);
    let call = rig.call_id(&caller);
    let offered = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Offered));
    assert!(rig.run_until(5_000, offered));
    let offered_at = rig.now_ms();
    let back = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Waiting));
    assert!(rig.run_until(5_000, back), "the refusal is reported");
    // Well before the ring timeout plus grace (20 s) would have taken the offer back.
    assert!(rig.now_ms() - offered_at < 2_000, "reported after {} ms", rig.now_ms() - offered_at);
    let missed = rig.effects.iter().any(|e| matches!(e, Effect::QueueLog(l) if l.verb == QueueLogVerb::RingNoAnswer));
    assert!(!missed, "the operator was charged a missed ring");
    let audio = rig.audio(&caller);
    assert!(audio.is_some() && !matches!(audio, Some(AudioPath::Connected { .. })), "caller hears {audio:?}");
}

#[test]
fn caller_at_site_one_is_answered_by_a_ring_mode_operator_at_site_two() {
    let mut rig = Rig::federation(2);
    sales(&mut rig);
    rig.operator_at(SiteId(2), "2002", "8888", OperatorMode::Ring, &["sales"]);
    let answers =
        PhoneBehaviour { answer_after_ms: Some(3_000), hang_up_after_answer_ms: Some(20_000), ..Default::default() };
    rig.phone_at(lineup_pbx_sim::BoxIndex(1), "phone-2002", answers);
    rig.login_call_at(lineup_pbx_sim::BoxIndex(1), "desk-2002", "2002", "8888");
    assert!(rig.run_until(20_000, |r| r.operator_status("2002") == OperatorStatus::Available));
    let caller = rig.caller("lee", "5000", None);
    let call = rig.call_id(&caller);
    let connected = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(30_000, connected));
    assert!(rig.run_until(40_000, |r| r.outcome(&call).is_some()));
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Operator }));
}

#[test]
fn caller_takes_a_callback_keeps_its_place_and_is_called_back_when_an_operator_frees() {
    // The operator is busy with a first caller for 40 s.
    let mut rig = Rig::callbacks_offered_behind_a_busy_operator(60_000, 40_000);
    // The second caller hears "press 1 to be called back" and presses 1.
    let answers =
        PhoneBehaviour { answer_after_ms: Some(2_000), hang_up_after_answer_ms: Some(15_000), ..Default::default() };
    rig.phone("+15557770000", answers);
    // "1" accepts the offer, then "1" confirms the caller id as the number to call.
    let keys =
        vec![ScriptedKeys { at_ms: 12_000, digits: "1".into() }, ScriptedKeys { at_ms: 20_000, digits: "1".into() }];
    let ch = rig.dial("patient", "+15557770000", "5000", "lineup-gates", None, keys);
    let call = rig.call_id(&ch);
    let promised = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::CallbackWaiting));
    assert!(rig.run_until(30_000, promised), "promise committed");
    assert!(rig.run_until(20_000, |r| r.audio(&ch).is_none()), "caller hung up after the confirmation");
    let confirmed = |a: &lineup_site::AriRequest| {
        matches!(a, lineup_site::AriRequest::Play { media, .. }
            if media.iter().any(|m| m.to_string() == "sound:lineup-callback-confirmed"))
    };
    assert!(rig.ari_log.iter().any(confirmed));
    // When the operator frees, the site calls the number and connects it.
    let served = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::CallbackConnected));
    assert!(rig.run_until(60_000, served), "callback connected");
    assert!(rig.run_until(30_000, |r| r.outcome(&call).is_some()));
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Caller }));
}

/// A restarted site reconciles against its node's replayed view, which may not know a
/// caller yet: it re-announces the caller, who meanwhile took a callback and hangs up after
/// the confirmation. The refused Enqueue (the call is a callback promise now) must leave the
/// site tracking nothing: the StasisEnd came while the Enqueue was in flight.
#[test]
fn a_restart_that_re_announces_a_caller_who_took_a_callback_and_left_tracks_nothing() {
    use lineup_site::{Action, Input, SiteConfig, SiteController};
    let mut rig = Rig::callbacks_offered_behind_a_busy_operator(60_000, 60_000);
    // What a node that has not caught up would show: the queue, but not the next caller.
    let stale = rig.routing.clone();
    let keys =
        vec![ScriptedKeys { at_ms: 12_000, digits: "1".into() }, ScriptedKeys { at_ms: 20_000, digits: "1".into() }];
    let ch = rig.dial("patient", "+15557770000", "5000", "lineup-gates", None, keys);
    let call = rig.call_id(&ch);
    let promised = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::CallbackWaiting));
    assert!(rig.run_until(30_000, promised), "promise committed");
    assert!(rig.audio(&ch).is_some(), "still on the line for the confirmation");

    // The site restarts and reconciles against the stale view: it re-announces the caller.
    let mut fresh = SiteController::new(SiteConfig::new(SITE, 50_000_000));
    let now = rig.now_ms();
    let channels = rig.world.list_channels(BOX).expect("channels");
    let bridges = rig.world.list_bridges(BOX).expect("bridges");
    let actions = fresh.handle(now, Input::Reconcile { channels, bridges }, &stale);
    let enqueue = actions.iter().find_map(|a| match a {
        Action::Propose { token, command } if matches!(&command.body, CommandBody::Enqueue(e) if e.call == call) => {
            Some((*token, command.clone()))
        }
        _ => None,
    });
    let (token, command) = enqueue.expect("the stale view makes the site announce the caller again");
    // The connected first caller is adopted too.
    let tracked_before = fresh.tracked_callers();
    // The caller hangs up while that Enqueue is in flight.
    rig.world.hangup_channel(BOX, ch.as_str(), 16).expect("hangup");
    for output in rig.world.drain_outputs() {
        if output.box_index == BOX {
            fresh.handle(now, Input::Ari(output.event), &stale);
        }
    }
    // The leader refuses the duplicate: the call is a callback promise now.
    let result = rig.commit(&command);
    assert!(matches!(result, Err(CoreError::DuplicateCall(_))), "{result:?}");
    fresh.handle(now, Input::Proposed { token, result: Ok(result) }, &rig.routing);
    assert_eq!(fresh.tracked_callers(), tracked_before - 1, "the leg that left is forgotten");
    assert!(matches!(rig.routing.call_view(&call).map(|v| v.status), Some(CallStatus::CallbackWaiting)));
}

#[test]
fn an_unanswered_callback_is_retried_then_fails_explicitly() {
    let mut rig = Rig::new();
    rig.queue(QueueConfig {
        id: QueueId::new("sales"),
        callback_max_attempts: 2,
        callback_retry_delay_ms: 10_000,
        ..Default::default()
    });
    rig.gate("main", "sales", None);
    rig.operator("1001", "4321", OperatorMode::Persistent, &["sales"]);
    // A web-widget style promise (no caller channel): enqueued directly as a callback.
    rig.admin(CommandBody::Enqueue(Enqueue {
        call: CallId::new("web-1"),
        queue: QueueId::new("sales"),
        gate: None,
        priority: None,
        caller_number: "+15558880000".into(),
        caller_name: "Web visitor".into(),
        site: SITE,
        channel: None,
        skills: Default::default(),
        callback_number: Some("+15558880000".into()),
    }))
    .expect("promise");
    rig.phone("+15558880000", PhoneBehaviour { answer_after_ms: None, ..Default::default() });
    rig.login_call("desk-1001", "1001", "4321");
    let call = CallId::new("web-1");
    assert!(rig.run_until(200_000, |r| r.outcome(&call).is_some()), "promise ended");
    assert_eq!(rig.outcome(&call), Some(Outcome::CallbackFailed));
    let attempts = rig.effects.iter().filter(|e| matches!(e, Effect::DialCallback(_))).count();
    assert_eq!(attempts, 2);
    assert!(rig.run_until(10_000, |r| r.operator_status("1001") == OperatorStatus::Available));
}

#[test]
fn events_socket_drop_mid_wait_is_reconciled_and_the_caller_that_left_is_abandoned() {
    let mut rig = Rig::new();
    sales(&mut rig);
    let ch = rig.caller("mia", "5000", Some(20_000));
    let call = rig.call_id(&ch);
    assert!(rig.run_until(10_000, |r| r.routing.position(&call) == Some(1)));
    rig.deaf[0] = true;
    assert!(rig.run_until(30_000, |r| r.audio(&ch).is_none()), "caller hung up while the socket was down");
    assert!(rig.outcome(&call).is_none(), "nobody could know yet");
    rig.reconnect(0);
    assert!(rig.run_until(5_000, |r| r.outcome(&call).is_some()));
    assert_eq!(rig.outcome(&call), Some(Outcome::Abandoned));
}

#[test]
fn a_restarted_site_adopts_its_operator_and_callers_and_serves_them() {
    let mut rig = Rig::new();
    sales(&mut rig);
    rig.operator("1001", "4321", OperatorMode::Persistent, &["sales"]);
    rig.operator("1002", "5555", OperatorMode::Persistent, &["support"]);
    rig.login_call("desk-1001", "1001", "4321");
    assert!(rig.run_until(20_000, |r| r.operator_status("1001") == OperatorStatus::Available));
    // The operator goes on break so the caller waits.
    rig.admin(CommandBody::OperatorState {
        operator: OperatorId::new("1001"),
        state: RequestedState::Break { reason: "coffee".into() },
    })
    .expect("break");
    let waiting = rig.caller("nina", "5000", Some(120_000));
    let call = rig.call_id(&waiting);
    assert!(rig.run_until(10_000, |r| r.routing.position(&call) == Some(1)));
    // The site process dies; meanwhile another caller enters (Asterisk still runs Stasis).
    rig.deaf[0] = true;
    let unseen = rig.caller("omar", "5000", Some(120_000));
    rig.run_for(2_000);
    rig.restart(0);
    let unseen_call = rig.call_id(&unseen);
    assert!(rig.run_until(10_000, |r| r.routing.position(&unseen_call) == Some(2)), "late entry adopted");
    assert!(rig.site().counters.channels_adopted >= 3, "{:?}", rig.site().counters);
    // Back from break: the adopted operator takes the first caller through the adopted legs.
    rig.admin(CommandBody::OperatorState { operator: OperatorId::new("1001"), state: RequestedState::Available })
        .expect("available");
    let connected = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(20_000, connected));
    match rig.audio(&waiting) {
        Some(AudioPath::Connected { parties }) => assert!(parties.iter().any(|(_, n)| n.contains("desk-1001"))),
        other => panic!("caller hears {other:?}"),
    }
}

/// Found by the simulator: the core took an offer back at its deadline while the site had
/// already bridged it (its Connected held up, here by a site cut off from the leader). The
/// site kept the bridge ("a cancel never ends a connected call") while the core offered the
/// caller and the operator to others: a double booking. The site now takes it down.
#[test]
fn a_bridged_offer_the_core_took_back_is_taken_down() {
    let mut rig = Rig::new();
    sales(&mut rig);
    rig.operator("1001", "4321", OperatorMode::Persistent, &["sales"]);
    rig.login_call("desk-1001", "1001", "4321");
    assert!(rig.run_until(20_000, |r| r.operator_status("1001") == OperatorStatus::Available));
    rig.unheard[0] = true;
    let caller = rig.caller("nina", "5000", Some(300_000));
    // The Enqueue is proposed by the cut-off site: commit it for the test, as the leader would
    // have before the cut.
    assert!(rig.run_until(5_000, |r| !r.unheard_proposals.is_empty()));
    let enqueue = rig.unheard_proposals.remove(0);
    rig.commit(&enqueue).expect("enqueued");
    let call = rig.call_id(&caller);
    let talking = |r: &Rig| matches!(r.audio(&caller), Some(AudioPath::Connected { .. }));
    assert!(rig.run_until(5_000, talking), "bridged, its Connected held up");
    assert_eq!(rig.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Offered));

    // The deadline passes: the core takes the offer back; the site must follow.
    let taken_back = |r: &Rig| r.routing.call_view(&call).is_some_and(|v| v.status == CallStatus::Waiting);
    assert!(rig.run_until(routing::OFFER_CONNECT_TIMEOUT_MS + 2_000, taken_back));
    rig.run_for(1_000);
    assert!(!talking(&rig), "still bridged after the core took the offer back: {:?}", rig.audio(&caller));
    // Back in line: hold music or an announcement of its place.
    let back = matches!(rig.audio(&caller), Some(AudioPath::MusicOnHold { .. } | AudioPath::Prompt { .. }));
    assert!(back, "{:?}", rig.audio(&caller));
}

fn one_operator_one_caller(rig: &mut Rig) -> (lineup_ari::ChannelId, lineup_ari::ChannelId, CallId) {
    sales(rig);
    rig.operator("1001", "4321", OperatorMode::Persistent, &["sales"]);
    let op = rig.login_call("desk-1001", "1001", "4321");
    assert!(rig.run_until(20_000, |r| r.operator_status("1001") == OperatorStatus::Available));
    let caller = rig.caller("pat", "5000", Some(90_000));
    let call = rig.call_id(&caller);
    (op, caller, call)
}

#[test]
fn duplicated_events_change_nothing() {
    let mut rig = Rig::new();
    rig.duplicate_events = true;
    let (_, _, call) = one_operator_one_caller(&mut rig);
    let connected = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(20_000, connected));
    assert!(rig.run_until(100_000, |r| r.outcome(&call).is_some()));
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Caller }));
    let enqueues =
        rig.effects.iter().filter(|e| matches!(e, Effect::QueueLog(l) if l.verb == QueueLogVerb::EnterQueue)).count();
    assert_eq!(enqueues, 1, "one caller, one entry");
    assert_eq!(rig.site().counters.bridges_connected, 1);
}

#[test]
fn a_rest_500_on_the_bridge_fails_the_offer_and_the_caller_keeps_its_place() {
    let mut rig = Rig::new();
    rig.fail_add_channels = 1;
    let (_, caller, call) = one_operator_one_caller(&mut rig);
    // The first bridge attempt fails (500): OfferFailed, the caller is back at the head and
    // on hold music; the operator rests, then gets the caller again and it connects.
    assert!(rig.run_until(20_000, |r| r.effects.iter().any(|e| matches!(e, Effect::CancelOffer { .. }))));
    assert!(rig.run_until(5_000, |r| r.routing.position(&call) == Some(1)));
    let connected = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(30_000, connected), "second offer connects");
    match rig.audio(&caller) {
        Some(AudioPath::Connected { .. }) => {}
        other => panic!("caller hears {other:?}"),
    }
    let bridges_built = rig
        .ari_log
        .iter()
        .filter(|a| matches!(a, lineup_site::AriRequest::CreateBridge(b) if b.bridge_id.as_str().starts_with("call-")))
        .count();
    assert_eq!(bridges_built, 2, "one bridge per offer, never two for one offer");
}

#[test]
fn operator_leg_vanishing_during_the_offer_logs_the_operator_out_and_keeps_the_caller() {
    let mut rig = Rig::new();
    sales(&mut rig);
    rig.operator("1001", "4321", OperatorMode::Persistent, &["sales"]);
    let op = rig.login_call("desk-1001", "1001", "4321");
    assert!(rig.run_until(20_000, |r| r.operator_status("1001") == OperatorStatus::Available));
    // The operator's phone drops at the very moment a caller arrives.
    let caller = rig.caller("quinn", "5000", Some(120_000));
    let call = rig.call_id(&caller);
    assert!(rig.world.phone_hangup(BOX, &op));
    assert!(rig.run_until(20_000, |r| r.operator_status("1001") == OperatorStatus::Offline));
    assert!(rig.run_until(5_000, |r| r.routing.position(&call) == Some(1)), "caller keeps its place");
    assert!(rig.run_until(5_000, |r| matches!(r.audio(&caller), Some(AudioPath::MusicOnHold { .. }))));
    assert!(rig.outcome(&call).is_none());
}

#[test]
fn dtmf_after_hangup_and_events_for_unknown_channels_are_ignored() {
    let mut rig = Rig::new();
    sales(&mut rig);
    let keys = vec![ScriptedKeys { at_ms: 500, digits: "0".into() }];
    // Hangs up at 300 ms; the key press at 500 ms comes after the hangup.
    let ch = rig.dial("ruth", "5550002", "5000", "lineup-gates", Some(300), keys);
    let call = rig.call_id(&ch);
    assert!(rig.run_until(10_000, |r| r.outcome(&call).is_some()));
    assert_eq!(rig.outcome(&call), Some(Outcome::Abandoned));
    rig.run_for(5_000);
    assert_eq!(rig.routing.call_count(), 0);
}

#[test]
fn a_caller_keys_another_callback_number_and_a_bad_one_is_refused() {
    let mut rig = Rig::callbacks_offered_behind_a_busy_operator(1_000, 120_000);
    // A withheld caller id: "1" goes straight to keying; a too-short number is refused, then
    // "1", "2" (another number) and a good one with "#".
    let keys = vec![
        ScriptedKeys { at_ms: 10_000, digits: "1".into() },
        ScriptedKeys { at_ms: 16_000, digits: "12#".into() },
        ScriptedKeys { at_ms: 24_000, digits: "1".into() },
        ScriptedKeys { at_ms: 32_000, digits: "5557654321#".into() },
    ];
    let ch = rig.dial("anon", "anonymous", "5000", "lineup-gates", None, keys);
    let call = rig.call_id(&ch);
    let promised = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::CallbackWaiting));
    assert!(rig.run_until(60_000, promised), "promise committed");
    let number = rig.effects.iter().find_map(|e| match e {
        Effect::QueueLog(l) if l.verb == QueueLogVerb::CallbackRequest => l.data.first().cloned(),
        _ => None,
    });
    assert_eq!(number.as_deref(), Some("5557654321"));
    let refused = |a: &lineup_site::AriRequest| matches!(a, lineup_site::AriRequest::Play { media, .. } if media.iter().any(|m| m.to_string() == "sound:lineup-callback-invalid"));
    assert!(rig.ari_log.iter().any(refused), "the short number was refused aloud");
}

#[test]
fn a_socket_drop_during_a_connected_call_is_reconciled_into_a_completion() {
    let mut rig = Rig::new();
    let (_, caller, call) = one_operator_one_caller(&mut rig);
    let connected = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(20_000, connected));
    rig.deaf[0] = true;
    assert!(rig.world.phone_hangup(BOX, &caller));
    rig.run_for(2_000);
    assert!(rig.outcome(&call).is_none(), "nobody could know yet");
    rig.reconnect(0);
    assert!(rig.run_until(5_000, |r| r.outcome(&call).is_some()));
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Caller }));
    assert!(rig.run_until(5_000, |r| r.operator_status("1001") == OperatorStatus::Available), "operator back");
}

/// Seen in the real-process fault harness: a caller hung up right as its restarted site
/// reconciled, after the site read the channels and before it read the bridges. The site saw
/// the caller live but out of its call bridge, took that for the operator's hangup and booked
/// the call completed by the operator. Only the caller's own hangup takes it out of a bridge
/// the operator is still in.
#[test]
fn a_caller_hanging_up_between_a_restarts_channel_and_bridge_reads_is_completed_by_the_caller() {
    let mut rig = Rig::new();
    let (_, caller, call) = one_operator_one_caller(&mut rig);
    let connected = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(20_000, connected));
    rig.deaf[0] = true;
    rig.run_for(1_000);
    rig.restart_with(0, |world| assert!(world.phone_hangup(BOX, &caller)));
    assert!(rig.run_until(5_000, |r| r.outcome(&call).is_some()));
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Caller }));
    assert!(rig.run_until(5_000, |r| r.operator_status("1001") == OperatorStatus::Available), "operator back");
    assert!(rig.world.list_bridges(BOX).unwrap().iter().all(|b| !b.id.as_str().starts_with("call-")), "bridge gone");
}

#[test]
fn a_caller_offered_during_its_entry_announcement_is_connected_at_once() {
    let mut rig = Rig::new();
    sales(&mut rig);
    rig.operator("1001", "4321", OperatorMode::Persistent, &["sales"]);
    rig.login_call("desk-1001", "1001", "4321");
    assert!(rig.run_until(20_000, |r| r.operator_status("1001") == OperatorStatus::Available), "login committed");
    // The operator is free, so the offer comes with the Enqueue, while the entry
    // announcement (several seconds of prompts) has just started.
    let caller = rig.caller("carol", "5000", Some(60_000));
    let connected = |r: &Rig| matches!(r.audio(&caller), Some(AudioPath::Connected { .. }));
    assert!(rig.run_until(1_500, connected), "the caller hears the operator within 1.5 s, not after the prompts");
    assert!(
        rig.ari_log.iter().any(|a| matches!(a, lineup_site::AriRequest::StopPlayback(_))),
        "the prompt was stopped"
    );
    // The stopped prompt's end restarts no hold music on a connected caller.
    rig.run_for(10_000);
    assert!(connected(&rig), "still talking: {:?}", rig.audio(&caller));
}

#[test]
fn a_persistent_operator_logging_in_again_on_a_new_leg_hangs_up_the_old_one_and_stays_in() {
    let mut rig = Rig::new();
    sales(&mut rig);
    rig.operator("1001", "4321", OperatorMode::Persistent, &["sales"]);
    let old = rig.login_call("desk-1001", "1001", "4321");
    assert!(rig.run_until(20_000, |r| r.operator_status("1001") == OperatorStatus::Available));
    // The softphone reconnects and logs in again on a new leg.
    let new = rig.login_call("desk-1001-b", "1001", "4321");
    let on_new = |r: &Rig| {
        r.routing.operator_view(&OperatorId::new("1001")).and_then(|v| v.channel).as_deref() == Some(new.as_str())
    };
    assert!(rig.run_until(20_000, on_new), "logged in on the new leg");
    // The old leg is let go: hung up, and its end does not log the operator out.
    assert!(rig.run_until(5_000, |r| r.audio(&old).is_none()), "old leg hung up");
    rig.run_for(5_000);
    assert_eq!(rig.operator_status("1001"), OperatorStatus::Available);
    assert!(rig.audio(&new).is_some(), "the new leg stays on the line");
    // And it takes the next caller.
    let caller = rig.caller("wendy", "5000", Some(60_000));
    assert!(rig.run_until(20_000, |r| match r.audio(&caller) {
        Some(AudioPath::Connected { parties }) => parties.iter().any(|(_, name)| name.contains("desk-1001-b")),
        _ => false,
    }));
}

/// Seen in the real-process fault harness: a ring-mode operator answered while the site's
/// ARI was cut, so the site never heard the answered leg enter Stasis. After the reconnect
/// the offer stayed up until the caller gave up 30 s later. The reconcile must see the leg
/// answered in Stasis and connect the call.
#[test]
fn a_ring_mode_operator_answering_while_the_events_socket_is_down_is_connected_at_reconnect() {
    let mut rig = Rig::new();
    sales(&mut rig);
    rig.operator("3003", "2222", OperatorMode::Ring, &["sales"]);
    rig.phone(
        "phone-3003",
        PhoneBehaviour { answer_after_ms: Some(2_000), hang_up_after_answer_ms: Some(60_000), ..Default::default() },
    );
    rig.login_call("desk-3003", "3003", "2222");
    assert!(rig.run_until(20_000, |r| r.operator_status("3003") == OperatorStatus::Available));
    let caller = rig.caller("erin", "5000", Some(60_000));
    let call = rig.call_id(&caller);
    assert!(
        rig.run_until(10_000, |r| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Offered)))
    );
    rig.deaf[0] = true;
    rig.run_for(4_000);
    assert!(
        matches!(rig.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Offered)),
        "nobody could know of the answer yet"
    );
    rig.reconnect(0);
    let connected = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(3_000, connected), "the answered operator is connected at once");
}

/// The caller's site falls silent (its node down or cut off) right after its caller was
/// offered to an operator at another site, before it placed the trunk call. Offer deadlines
/// wait while a site is unreachable, so the operator stayed reserved for the whole outage.
/// The operator's site frees its operator once the caller's site has been unreachable for
/// `STRANDED_OFFER_RELEASE_MS` (not a miss; the caller keeps its place, frozen with its
/// site); the trunk call that site places when it catches up finds no offer and is
/// refused, and the caller is connected by a fresh offer after `SiteBack`.
#[test]
fn an_operator_offered_a_silent_sites_caller_is_freed_while_that_site_is_unreachable() {
    let mut rig = Rig::federation(2);
    sales(&mut rig);
    rig.operator_at(SiteId(2), "2001", "9999", OperatorMode::Persistent, &["sales"]);
    rig.login_call_at(lineup_pbx_sim::BoxIndex(1), "desk-2001", "2001", "9999");
    assert!(rig.run_until(20_000, |r| r.operator_status("2001") == OperatorStatus::Available));
    // Site 1 hears nothing from the cluster from now on: it never places the trunk call.
    rig.lagging[0] = true;
    let caller = rig.caller("kim", "5000", None);
    let call = rig.call_id(&caller);
    let offered = |r: &Rig| matches!(r.operator_status("2001"), OperatorStatus::Offered { .. });
    assert!(rig.run_until(10_000, offered));
    rig.admin(CommandBody::SiteUnreachable { site: SiteId(1) }).expect("site 1 unreachable");

    let freed = |r: &Rig| r.operator_status("2001") == OperatorStatus::Available;
    assert!(rig.run_until(lineup_site::STRANDED_OFFER_RELEASE_MS + 2_000, freed), "the stranded operator is freed");
    assert!(
        matches!(rig.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Waiting)),
        "caller keeps its place"
    );

    rig.catch_up();
    rig.admin(CommandBody::SiteBack { site: SiteId(1) }).expect("site 1 back");
    let connected = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(30_000, connected), "a fresh offer connects the caller");
}

/// Seen in a 1-hour random run of the real-process fault harness: a persistent operator
/// hung up their leg while their site heard nothing from the cluster (a one-way cut), then
/// logged in again on a new leg. At the heal the site got the new login's result before the
/// older logout's effect, and that stale "offline" hung up the new leg: the operator was
/// logged out for nothing. An operator the committed state has logged in here on a leg keeps
/// that leg.
#[test]
fn a_stale_offline_after_a_new_login_keeps_the_new_leg() {
    let mut rig = Rig::new();
    sales(&mut rig);
    rig.operator("1001", "4321", OperatorMode::Persistent, &["sales"]);
    let old = rig.login_call("desk-1001", "1001", "4321");
    assert!(rig.run_until(20_000, |r| r.operator_status("1001") == OperatorStatus::Available));
    // From here the site gets its proposals' results but none of the committed effects.
    rig.lagging[0] = true;
    assert!(rig.world.phone_hangup(BOX, &old));
    assert!(rig.run_until(5_000, |r| r.operator_status("1001") == OperatorStatus::Offline));
    let new = rig.login_call("desk-1001-b", "1001", "4321");
    let on_new = |r: &Rig| {
        r.routing.operator_view(&OperatorId::new("1001")).and_then(|v| v.channel).as_deref() == Some(new.as_str())
    };
    assert!(rig.run_until(20_000, on_new), "logged in on the new leg");
    rig.catch_up();
    rig.run_for(5_000);
    assert!(rig.audio(&new).is_some(), "the new leg stays on the line");
    assert_eq!(rig.operator_status("1001"), OperatorStatus::Available);
}

/// Seen in a 1-hour random run of the real-process fault harness: the operator hung up a
/// local call while the site's node could not commit (a deaf leader); the site reported
/// `Completed` by the operator and sent the caller on in the dialplan. A reconcile before
/// that report committed found the connected call's caller gone and reported it as the
/// caller's hangup, and that report won: every history said the caller hung up. A call whose
/// end this site has already reported is not reported again by a reconcile.
#[test]
fn a_reconcile_does_not_report_again_a_call_whose_end_is_being_reported() {
    let mut rig = Rig::new();
    let (op, caller, call) = one_operator_one_caller(&mut rig);
    let connected = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(20_000, connected));
    rig.unheard[0] = true;
    assert!(rig.world.phone_hangup(BOX, &op));
    assert!(rig.run_until(10_000, |r| r.audio(&caller).is_none()), "the caller went on in the dialplan and left");
    rig.reconnect(0);
    rig.run_for(2_000);
    let by_caller =
        rig.unheard_proposals.iter().any(|c| matches!(&c.body, CommandBody::Completed { by: HungUpBy::Caller, .. }));
    assert!(!by_caller, "the reconcile reported the caller's hangup: {:?}", rig.unheard_proposals);
    rig.unheard[0] = false;
    for command in std::mem::take(&mut rig.unheard_proposals) {
        let _ = rig.commit(&command);
    }
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Operator }));
}
