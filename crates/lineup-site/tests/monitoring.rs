//! Monitoring connected calls (listen, whisper, barge) through ARI snoop channels, in
//! virtual time against the stand-in: who hears whom, the snoop requests, and the teardown
//! when the supervisor or the call ends, for local and cross-site calls. The monitored call
//! is never disturbed.

mod common;
use common::*;
use lineup_ari::{ChannelId, SnoopDirection};
use lineup_core::*;
use lineup_pbx_sim::{AudioPath, BoxIndex, PhoneBehaviour};
use lineup_site::AriRequest;

const SUPERVISOR: &str = "PJSIP/2001";

fn answers_after(ms: u64) -> PhoneBehaviour {
    PhoneBehaviour { answer_after_ms: Some(ms), ..PhoneBehaviour::default() }
}

/// A connected call: the caller at box 0 (patience `patience_ms`), its operator 1001 logged
/// in persistently at `operator_box`. Returns the caller's and the operator's channels.
fn connected_call(rig: &mut Rig, operator_box: usize, patience_ms: u64) -> (ChannelId, ChannelId, CallId) {
    rig.queue(QueueConfig { id: QueueId::new("sales"), ..Default::default() });
    rig.gate("main", "sales", None);
    let site = SiteId(operator_box as u64 + 1);
    rig.operator_at(site, "1001", "4321", OperatorMode::Persistent, &["sales"]);
    let operator = rig.login_call_at(BoxIndex(operator_box), "desk-1001", "1001", "4321");
    assert!(rig.run_until(20_000, |r| r.operator_status("1001") == OperatorStatus::Available), "login");
    let caller = rig.caller("carol", "5000", Some(patience_ms));
    let call = rig.call_id(&caller);
    assert!(rig.run_until(30_000, |r| is_connected(r, &call)), "connected");
    (caller, operator, call)
}

fn is_connected(rig: &Rig, call: &CallId) -> bool {
    matches!(rig.routing.call_view(call).map(|v| v.status), Some(CallStatus::Connected))
}

fn monitor(rig: &mut Rig, call: &CallId, mode: MonitorMode, supervisor_site: SiteId) -> CommandResult {
    rig.admin(CommandBody::MonitorCall { call: call.clone(), mode, endpoint: SUPERVISOR.into(), supervisor_site })
}

/// The phones (by the resource in their channel name) the human on `channel` hears.
fn hears(rig: &Rig, at: BoxIndex, channel: &ChannelId) -> Vec<String> {
    match rig.audio_at(at, channel) {
        Some(AudioPath::Connected { parties }) => {
            let mut names: Vec<String> = parties
                .iter()
                .map(|(_, name)| name.trim_start_matches("PJSIP/").split('-').next().unwrap_or("").to_string())
                .collect();
            names.sort();
            names
        }
        _ => vec![],
    }
}

/// The supervisor's live channel at `at`, once originated.
fn supervisor_leg(rig: &Rig, at: BoxIndex) -> Option<ChannelId> {
    rig.world.channel_names(at).into_iter().find(|(_, name)| name.starts_with("PJSIP/2001-")).map(|(id, _)| id)
}

fn snoops(rig: &Rig) -> Vec<(ChannelId, SnoopDirection, SnoopDirection)> {
    rig.ari_log
        .iter()
        .filter_map(|r| match r {
            AriRequest::Snoop(s) => Some((s.channel.clone(), s.spy, s.whisper)),
            _ => None,
        })
        .collect()
}

fn no_monitoring_left(rig: &Rig) -> bool {
    let boxes = rig.sites.len();
    (0..boxes).all(|b| {
        rig.site_at(b).monitor_sessions() == 0
            && rig.world.channel_names(BoxIndex(b)).iter().all(|(id, name)| {
                !id.as_str().starts_with(lineup_site::MONITOR_ID_PREFIX)
                    && !name.starts_with("Snoop/")
                    && !name.starts_with("PJSIP/2001-")
            })
            && rig.world.list_bridges(BoxIndex(b)).unwrap().iter().all(|b| !b.id.as_str().starts_with("mon-"))
    })
}

/// A local call monitored in `mode` by a supervisor at the same site, once the supervisor
/// hears the call.
fn monitored_locally(mode: MonitorMode) -> (Rig, ChannelId, ChannelId, ChannelId, CallId) {
    let mut rig = Rig::new();
    rig.phone("2001", answers_after(500));
    let (caller, operator, call) = connected_call(&mut rig, 0, 120_000);
    monitor(&mut rig, &call, mode, SITE).expect("monitoring accepted");
    let heard = |r: &Rig| supervisor_leg(r, BOX).is_some_and(|s| hears(r, BOX, &s).len() == 2);
    assert!(rig.run_until(5_000, heard), "the supervisor hears the call");
    let supervisor = supervisor_leg(&rig, BOX).unwrap();
    (rig, caller, operator, supervisor, call)
}

#[test]
fn listen_lets_the_supervisor_hear_both_parties_unheard() {
    let (rig, caller, operator, supervisor, _) = monitored_locally(MonitorMode::Listen);
    assert_eq!(snoops(&rig), vec![(operator.clone(), SnoopDirection::Both, SnoopDirection::None)]);
    assert_eq!(hears(&rig, BOX, &supervisor), ["carol", "desk"]);
    assert_eq!(hears(&rig, BOX, &caller), ["desk"]);
    assert_eq!(hears(&rig, BOX, &operator), ["carol"]);
}

#[test]
fn whisper_is_heard_by_the_operator_only() {
    let (rig, caller, operator, supervisor, _) = monitored_locally(MonitorMode::Whisper);
    assert_eq!(snoops(&rig), vec![(operator.clone(), SnoopDirection::Both, SnoopDirection::Out)]);
    assert_eq!(hears(&rig, BOX, &supervisor), ["carol", "desk"]);
    assert_eq!(hears(&rig, BOX, &operator), ["2001", "carol"]);
    assert_eq!(hears(&rig, BOX, &caller), ["desk"]);
}

#[test]
fn barge_is_heard_by_both_parties() {
    let (rig, caller, operator, supervisor, _) = monitored_locally(MonitorMode::Barge);
    assert_eq!(snoops(&rig), vec![(operator.clone(), SnoopDirection::Both, SnoopDirection::Both)]);
    assert_eq!(hears(&rig, BOX, &supervisor), ["carol", "desk"]);
    assert_eq!(hears(&rig, BOX, &operator), ["2001", "carol"]);
    assert_eq!(hears(&rig, BOX, &caller), ["2001", "desk"]);
}

#[test]
fn the_supervisor_hanging_up_ends_the_monitoring_and_nothing_else() {
    let (mut rig, caller, operator, supervisor, call) = monitored_locally(MonitorMode::Barge);
    assert!(rig.world.phone_hangup(BOX, &supervisor));
    assert!(rig.run_until(5_000, no_monitoring_left), "snoop and bridge gone");
    assert!(is_connected(&rig, &call), "the call goes on");
    assert_eq!(hears(&rig, BOX, &caller), ["desk"]);
    assert_eq!(hears(&rig, BOX, &operator), ["carol"]);
    assert_eq!(rig.outcome(&call), None);
    assert_eq!(rig.site().counters.monitors_ended, 1);
}

#[test]
fn the_call_ending_ends_the_monitoring_and_the_operator_leg_stays() {
    let (mut rig, _, operator, _, call) = monitored_locally(MonitorMode::Listen);
    // The caller's patience (120 s) ends the call.
    assert!(rig.run_until(130_000, |r| r.outcome(&call).is_some()));
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Caller }));
    assert!(rig.run_until(5_000, no_monitoring_left), "supervisor hung up, snoop and bridge gone");
    assert!(rig.world.get_channel(BOX, operator.as_str()).is_ok(), "the persistent operator's leg stays");
    assert!(rig.run_until(5_000, |r| r.operator_status("1001") == OperatorStatus::Available));
}

#[test]
fn a_supervisor_who_does_not_answer_leaves_the_call_alone() {
    let mut rig = Rig::new();
    rig.phone("2001", PhoneBehaviour { answer_after_ms: None, ..PhoneBehaviour::default() });
    let (caller, _, call) = connected_call(&mut rig, 0, 120_000);
    monitor(&mut rig, &call, MonitorMode::Listen, SITE).expect("accepted");
    assert!(rig.run_until(2_000, |r| r.site().monitor_sessions() == 1));
    let ring_s = lineup_site::MONITOR_RING_TIMEOUT_S;
    assert!(rig.run_until((ring_s + 5) * 1_000, no_monitoring_left), "given up after the ring timeout");
    assert!(is_connected(&rig, &call));
    assert_eq!(hears(&rig, BOX, &caller), ["desk"]);
}

#[test]
fn the_same_endpoint_monitors_a_call_once() {
    let (mut rig, _, _, _, call) = monitored_locally(MonitorMode::Listen);
    monitor(&mut rig, &call, MonitorMode::Barge, SITE).expect("the core keeps no monitoring state");
    rig.run_for(1_000);
    assert_eq!(rig.site().monitor_sessions(), 1);
    assert_eq!(rig.site().counters.monitors_refused, 1);
    assert_eq!(snoops(&rig).len(), 1);
}

#[test]
fn monitoring_is_refused_for_a_call_not_connected_or_a_bad_endpoint() {
    let mut rig = Rig::new();
    rig.queue(QueueConfig { id: QueueId::new("sales"), ..Default::default() });
    rig.gate("main", "sales", None);
    let caller = rig.caller("carol", "5000", Some(60_000));
    let call = rig.call_id(&caller);
    assert!(rig.run_until(5_000, |r| r.routing.call_view(&call).is_some()));
    assert!(matches!(monitor(&mut rig, &call, MonitorMode::Listen, SITE), Err(CoreError::InvalidState { .. })));
    let unknown = CallId::new("nobody");
    assert!(matches!(monitor(&mut rig, &unknown, MonitorMode::Listen, SITE), Err(CoreError::UnknownCall(_))));
    let bad = CommandBody::MonitorCall {
        call,
        mode: MonitorMode::Listen,
        endpoint: "PJSIP/2001&PJSIP/2002".into(),
        supervisor_site: SITE,
    };
    assert!(matches!(rig.admin(bad), Err(CoreError::InvalidField { .. })));
    assert!(rig.ari_log.iter().all(|r| !matches!(r, AriRequest::Snoop(_))));
}

/// A cross-site call (caller at site 1, operator at site 2) monitored by a supervisor at
/// site 1: the snoop is at site 2, whose monitoring leg reaches the supervisor over the
/// trunk. The call's end tears down both halves.
#[test]
fn a_cross_site_call_is_monitored_from_the_callers_site_over_the_trunk() {
    let mut rig = Rig::federation(2);
    rig.phone_at(BOX, "2001", answers_after(500));
    let (caller, operator, call) = connected_call(&mut rig, 1, 120_000);
    monitor(&mut rig, &call, MonitorMode::Whisper, SITE).expect("accepted");
    let heard = |r: &Rig| supervisor_leg(r, BOX).is_some_and(|s| hears(r, BOX, &s).len() == 2);
    assert!(rig.run_until(10_000, heard), "the supervisor at site 1 hears the call");
    let supervisor = supervisor_leg(&rig, BOX).unwrap();
    assert_eq!(snoops(&rig), vec![(operator.clone(), SnoopDirection::Both, SnoopDirection::Out)]);
    assert_eq!(hears(&rig, BOX, &supervisor), ["carol", "desk"]);
    assert_eq!(hears(&rig, BoxIndex(1), &operator), ["2001", "carol"]);
    assert_eq!(hears(&rig, BOX, &caller), ["desk"]);
    assert_eq!((rig.site_at(0).monitor_sessions(), rig.site_at(1).monitor_sessions()), (1, 1));

    assert!(rig.run_until(130_000, |r| r.outcome(&call).is_some()));
    assert_eq!(rig.outcome(&call), Some(Outcome::Completed { by: HungUpBy::Caller }));
    assert!(rig.run_until(5_000, no_monitoring_left), "both halves torn down");
}

/// A local call at site 1 monitored by a supervisor at site 2; the supervisor hangs up and
/// both halves end, the call going on.
#[test]
fn a_supervisor_at_another_site_hangs_up_and_the_call_goes_on() {
    let mut rig = Rig::federation(2);
    rig.phone_at(BoxIndex(1), "2001", answers_after(500));
    let (caller, operator, call) = connected_call(&mut rig, 0, 120_000);
    monitor(&mut rig, &call, MonitorMode::Barge, SiteId(2)).expect("accepted");
    let heard = |r: &Rig| supervisor_leg(r, BoxIndex(1)).is_some_and(|s| hears(r, BoxIndex(1), &s).len() == 2);
    assert!(rig.run_until(10_000, heard), "the supervisor at site 2 hears the call");
    let supervisor = supervisor_leg(&rig, BoxIndex(1)).unwrap();
    assert_eq!(hears(&rig, BOX, &caller), ["2001", "desk"]);

    assert!(rig.world.phone_hangup(BoxIndex(1), &supervisor));
    assert!(rig.run_until(5_000, no_monitoring_left), "both halves torn down");
    assert!(is_connected(&rig, &call));
    assert_eq!(hears(&rig, BOX, &caller), ["desk"]);
    assert_eq!(hears(&rig, BOX, &operator), ["carol"]);
}

/// A restart of the operator's site during monitoring: the call is adopted and goes on; the
/// monitoring is not resumed, and what it left in Asterisk (snoop, supervisor's leg, bridge)
/// is cleared.
#[test]
fn a_restart_clears_the_monitoring_and_keeps_the_call() {
    let (mut rig, caller, operator, _, call) = monitored_locally(MonitorMode::Listen);
    rig.restart(0);
    assert!(rig.run_until(5_000, no_monitoring_left), "monitoring cleared after the restart");
    assert!(is_connected(&rig, &call));
    assert_eq!(hears(&rig, BOX, &caller), ["desk"]);
    assert_eq!(hears(&rig, BOX, &operator), ["carol"]);
}
