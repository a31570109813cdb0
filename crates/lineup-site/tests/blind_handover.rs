//! A persistent operator's site is blind (its events socket cut) while the cross-site call it
//! carries ends at the caller's site, and the core offers the operator the next caller, a
//! local one: the site's REST requests go through (the link healed) before its events socket
//! is back. Seen in the real-process harness: the operator's later hangup was never booked,
//! and the caller sat in a bridge with nobody until it gave up.

mod common;
use common::*;
use lineup_core::*;
use lineup_pbx_sim::{AudioPath, BoxIndex};

fn sales(rig: &mut Rig) {
    rig.queue(QueueConfig { id: QueueId::new("sales"), ..Default::default() });
    rig.gate("main", "sales", None);
}

fn status(rig: &Rig, call: &CallId) -> Option<CallStatus> {
    rig.routing.call_view(call).map(|v| v.status)
}

#[test]
fn an_operator_handed_a_local_caller_while_their_site_was_blind_ends_that_call_by_hanging_up() {
    let mut rig = Rig::federation(2);
    sales(&mut rig);
    rig.operator_at(SiteId(2), "2002", "8888", OperatorMode::Persistent, &["sales"]);
    let operator_leg = rig.login_call_at(BoxIndex(1), "desk-2002", "2002", "8888");
    assert!(rig.run_until(20_000, |r| r.operator_status("2002") == OperatorStatus::Available));

    let remote = rig.caller("lee", "5000", None);
    let remote_call = rig.call_id(&remote);
    assert!(rig.run_until(30_000, |r| status(r, &remote_call) == Some(CallStatus::Connected)));
    let local = rig.dial_at(BoxIndex(1), "kim", "+15551230001", "5000", "lineup-gates", None, vec![]);
    let local_call = rig.site_at(1).call_id_for(&local);
    assert!(rig.run_until(10_000, |r| status(r, &local_call) == Some(CallStatus::Waiting)));

    rig.deaf[1] = true;
    assert!(rig.world.phone_hangup(BoxIndex(0), &remote));
    assert!(rig.run_until(20_000, |r| r.outcome(&remote_call).is_some()), "the caller's site booked its end");
    rig.run_for(3_000);
    rig.reconnect(1);
    let talking = |r: &Rig| {
        status(r, &local_call) == Some(CallStatus::Connected)
            && matches!(r.audio_at(BoxIndex(1), &local), Some(AudioPath::Connected { .. }))
    };
    assert!(rig.run_until(30_000, talking), "the local caller talks to the operator");

    rig.world.hangup_channel(BoxIndex(1), operator_leg.as_str(), 16).expect("operator hangs up");
    assert!(rig.run_until(10_000, |r| r.outcome(&local_call).is_some()), "the operator's hangup ends the call");
    assert_eq!(rig.outcome(&local_call), Some(Outcome::Completed { by: HungUpBy::Operator }));
}
