//! A supervisor hangs up a caller (`HangUpCall`): the caller's site hangs up the channel, and
//! its end is reported as any hangup is: abandoned while waiting, completed by the caller
//! once connected (the operator's leg of a persistent login stays), also across sites.

mod common;
use common::*;
use lineup_ari::ChannelId;
use lineup_core::*;
use lineup_pbx_sim::BoxIndex;

fn sales(rig: &mut Rig) {
    rig.queue(QueueConfig { id: QueueId::new("sales"), ..Default::default() });
    rig.gate("main", "sales", None);
}

/// A connected call: the caller at box 0, its operator 1001 logged in persistently at
/// `operator_box`. Returns the caller's and the operator's channels.
fn connected_call(rig: &mut Rig, operator_box: usize) -> (ChannelId, ChannelId, CallId) {
    sales(rig);
    let site = SiteId(operator_box as u64 + 1);
    rig.operator_at(site, "1001", "4321", OperatorMode::Persistent, &["sales"]);
    let operator = rig.login_call_at(BoxIndex(operator_box), "desk-1001", "1001", "4321");
    assert!(rig.run_until(20_000, |r| r.operator_status("1001") == OperatorStatus::Available), "login");
    let caller = rig.caller("carol", "5000", Some(600_000));
    let call = rig.call_id(&caller);
    let connected = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Connected));
    assert!(rig.run_until(30_000, connected), "connected");
    (caller, operator, call)
}

fn hang_up(rig: &mut Rig, call: &CallId) {
    rig.admin(CommandBody::HangUpCall { call: call.clone() }).expect("the hangup is accepted");
}

#[test]
fn a_waiting_caller_hung_up_by_a_supervisor_is_abandoned() {
    let mut rig = Rig::new();
    sales(&mut rig);
    let caller = rig.caller("carol", "5000", Some(600_000));
    let call = rig.call_id(&caller);
    let waiting = |r: &Rig| matches!(r.routing.call_view(&call).map(|v| v.status), Some(CallStatus::Waiting));
    assert!(rig.run_until(10_000, waiting), "waiting");
    hang_up(&mut rig, &call);
    assert!(rig.run_until(5_000, |r| r.outcome(&call).is_some()), "the call did not end");
    assert_eq!(rig.outcome(&call), Some(Outcome::Abandoned));
    assert!(rig.world.get_channel(BOX, caller.as_str()).is_err(), "the caller's channel is still up");
}

#[test]
fn a_connected_caller_hung_up_by_a_supervisor_completes_and_the_operator_stays_logged_in() {
    let mut rig = Rig::new();
    let (caller, operator, call) = connected_call(&mut rig, 0);
    hang_up(&mut rig, &call);
    assert!(rig.run_until(5_000, |r| r.outcome(&call).is_some()), "the call did not end");
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Caller }));
    assert!(rig.world.get_channel(BOX, caller.as_str()).is_err(), "the caller's channel is still up");
    assert!(rig.world.get_channel(BOX, operator.as_str()).is_ok(), "the persistent operator's leg went");
    assert!(rig.run_until(60_000, |r| r.operator_status("1001") == OperatorStatus::Available));
}

#[test]
fn a_cross_site_caller_is_hung_up_at_the_callers_site() {
    let mut rig = Rig::federation(2);
    let (caller, operator, call) = connected_call(&mut rig, 1);
    hang_up(&mut rig, &call);
    assert!(rig.run_until(5_000, |r| r.outcome(&call).is_some()), "the call did not end");
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Caller }));
    assert!(rig.world.get_channel(BOX, caller.as_str()).is_err(), "the caller's channel is still up");
    assert!(rig.world.get_channel(BoxIndex(1), operator.as_str()).is_ok(), "the operator's leg went");
}
