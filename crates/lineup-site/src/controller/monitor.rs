//! Monitoring a connected call (`Effect::Monitor`): listen, whisper or barge from a
//! supervisor's phone, through an ARI snoop channel on the operator's leg.
//!
//! The site holding the operator's leg snoops on it, puts the snoop channel in a mixing
//! bridge of its own and originates the monitoring leg into that bridge: straight to the
//! supervisor's endpoint when the supervisor is at this site, or over the trunk to the
//! supervisor's site (`lineup-mon-<session>`, the cross-site connect's path) when not. That
//! site takes the trunk call, rings the supervisor, and bridges and answers the trunk call
//! once the supervisor answered. The call's own legs and bridge are never touched: whatever
//! happens to the monitoring (the supervisor does not answer, hangs up, a request fails), the
//! call goes on as it was, and routing never hears of it.
//!
//! Teardown: the snoop channel ends with the operator's channel (Asterisk hangs it up); the
//! end of the call at this site (its execution gone or no longer connected: a persistent
//! operator's leg outlives the call) ends the session too; any monitoring leg ending ends the
//! session, whose other legs are hung up and bridge destroyed here, and the other site's half
//! follows when its trunk leg ends.

use super::config::{MONITOR_RING_TIMEOUT_S, MONITOR_SESSIONS_MAX, MONITOR_TRUNK_WAIT_MS, TRUNK_SETUP_GRACE_MS};
use super::legs::{ExecKind, OfferStage};
use super::output::Pending;
use super::SiteController;
use crate::io::{Action, AriRequest};
use lineup_ari::stasis_args::CALLER_APPLICATION;
use lineup_ari::{
    ApplicationName, BridgeId, BridgeType, ChannelId, CreateBridgeRequest, Endpoint, HangupReason, OriginateRequest,
    OriginateTarget, SnoopDirection, SnoopRequest,
};
use lineup_core::{CallId, MonitorMode, MonitorOrder};

/// Every channel and bridge a monitoring session creates has an id starting with this; one
/// this site does not track (left by a run before a restart) is hung up when it shows up.
pub const MONITOR_ID_PREFIX: &str = "mon-";

/// The `xfer=` name of a session's trunk call: what the trunk endpoint template's `{call}`
/// becomes, and what the supervisor's site finds in its `StasisStart`.
pub fn monitor_trunk_name(session: u64) -> String {
    format!("{MONITOR_ID_PREFIX}{session}")
}

/// The session a trunk call's `xfer=` name belongs to, if it is a monitoring trunk call.
fn session_of_trunk_name(name: &str) -> Option<u64> {
    name.strip_prefix(MONITOR_ID_PREFIX)?.parse().ok()
}

/// The snoop's directions on the operator's channel, where `in` is what the operator's phone
/// sends (the operator's voice) and `out` what it plays (the caller's voice). Every mode
/// spies both ways. Whisper is `out` only: the supervisor is mixed into what the operator's
/// phone plays, so the operator hears the coaching and the caller does not (`in` would mix it
/// into the operator's voice, which the caller hears). Barge whispers both ways.
pub fn snoop_directions(mode: MonitorMode) -> (SnoopDirection, SnoopDirection) {
    match mode {
        MonitorMode::Listen => (SnoopDirection::Both, SnoopDirection::None),
        MonitorMode::Whisper => (SnoopDirection::Both, SnoopDirection::Out),
        MonitorMode::Barge => (SnoopDirection::Both, SnoopDirection::Both),
    }
}

/// This site's half of one monitoring session.
#[derive(Debug, Clone)]
pub(super) struct MonitorSession {
    pub(super) order: MonitorOrder,
    pub(super) half: MonitorHalf,
    pub(super) bridge: BridgeId,
}

#[derive(Debug, Clone)]
pub(super) enum MonitorHalf {
    /// This site holds the operator's leg: the snoop on it, and the monitoring leg it placed
    /// (the supervisor's phone here, or the trunk call to the supervisor's site).
    Snooping { snoop: ChannelId, far_leg: ChannelId },
    /// This site holds only the supervisor's phone: the trunk call from the operator's site
    /// (awaited until `deadline_ms`), then the leg to the supervisor.
    Answering { trunk: Option<ChannelId>, supervisor: Option<ChannelId>, deadline_ms: u64, bridged: bool },
}

impl MonitorSession {
    fn channels(&self) -> Vec<ChannelId> {
        match &self.half {
            MonitorHalf::Snooping { snoop, far_leg } => vec![snoop.clone(), far_leg.clone()],
            MonitorHalf::Answering { trunk, supervisor, .. } => trunk.iter().chain(supervisor).cloned().collect(),
        }
    }
}

fn application() -> ApplicationName {
    ApplicationName::new(CALLER_APPLICATION).expect("static application name is valid")
}

impl SiteController {
    fn monitor_id(&self, kind: &str, session: u64) -> String {
        format!("{MONITOR_ID_PREFIX}{kind}-{}-{session}", self.cfg.site.0)
    }

    /// The number of monitoring sessions this site carries (for tests and metrics).
    pub fn monitor_sessions(&self) -> usize {
        self.monitors.len()
    }

    pub(super) fn on_monitor(&mut self, order: MonitorOrder) {
        if self.monitors.contains_key(&order.session) {
            return; // a redelivered effect
        }
        let duplicate =
            self.monitors.values().any(|s| s.order.call == order.call && s.order.endpoint == order.endpoint);
        if duplicate || self.monitors.len() >= MONITOR_SESSIONS_MAX {
            self.counters.monitors_refused += 1;
            return;
        }
        if order.operator_site == self.cfg.site {
            self.start_snooping(order);
        } else {
            self.await_monitor_trunk(order);
        }
    }

    /// The operator's leg of the order's call, if this site connected it under the order's
    /// fence and it is still connected.
    fn monitored_operator_leg(&self, call: &CallId, fence: u64) -> Option<ChannelId> {
        let exec = self.offers.get(&(call.clone(), fence))?;
        let here = matches!(exec.kind, ExecKind::Local | ExecKind::TrunkIn | ExecKind::Callback { .. });
        (here && exec.stage == OfferStage::Connected).then(|| exec.operator_channel.clone())
    }

    fn start_snooping(&mut self, order: MonitorOrder) {
        let Some(operator_leg) = self.monitored_operator_leg(&order.call, order.fence) else {
            self.counters.monitors_refused += 1;
            return;
        };
        let local = order.supervisor_site == self.cfg.site;
        let endpoint = if local {
            Some(order.endpoint.clone())
        } else {
            self.cfg
                .trunk_endpoints
                .get(&order.supervisor_site)
                .map(|template| template.replace("{call}", &monitor_trunk_name(order.session)))
        };
        let ids = (
            ChannelId::new(self.monitor_id("snoop", order.session)),
            ChannelId::new(self.monitor_id("leg", order.session)),
            BridgeId::new(self.monitor_id("bridge", order.session)),
        );
        let (Some(Ok(endpoint)), (Ok(snoop), Ok(far_leg), Ok(bridge))) = (endpoint.map(Endpoint::new), ids) else {
            self.counters.monitors_refused += 1;
            return;
        };
        let (spy, whisper) = snoop_directions(order.mode);
        let session = order.session;
        let timeout_s =
            if local { MONITOR_RING_TIMEOUT_S } else { MONITOR_RING_TIMEOUT_S + TRUNK_SETUP_GRACE_MS / 1000 };
        self.track_monitor(MonitorSession {
            order,
            half: MonitorHalf::Snooping { snoop: snoop.clone(), far_leg: far_leg.clone() },
            bridge: bridge.clone(),
        });
        let snoop_request = SnoopRequest {
            channel: operator_leg,
            app: application(),
            app_args: vec![],
            spy,
            whisper,
            snoop_id: Some(snoop.clone()),
        };
        self.ari_for_monitor(AriRequest::Snoop(snoop_request), session);
        self.create_monitor_bridge(bridge.clone(), session);
        self.ari_for_monitor(AriRequest::AddChannels { bridge, channels: vec![snoop] }, session);
        self.originate_monitor_leg(endpoint, far_leg, timeout_s as i32, session);
    }

    /// The supervisor's site: wait for the operator's site's trunk call (it may have come).
    fn await_monitor_trunk(&mut self, order: MonitorOrder) {
        if order.supervisor_site != self.cfg.site {
            return;
        }
        let Ok(bridge) = BridgeId::new(self.monitor_id("bridge", order.session)) else { return };
        let session = order.session;
        let early = self.early_trunks.remove(&CallId::new(monitor_trunk_name(session)));
        let deadline_ms = self.now_ms + MONITOR_TRUNK_WAIT_MS;
        self.track_monitor(MonitorSession {
            order,
            half: MonitorHalf::Answering { trunk: None, supervisor: None, deadline_ms, bridged: false },
            bridge,
        });
        if let Some((trunk, _)) = early {
            self.monitor_trunk_arrived(session, trunk);
        }
    }

    /// A trunk call named `xfer=<name>` arrived: whether it is a monitoring session's (taken,
    /// or held like an early trunk call until the session's effect is applied here).
    pub(super) fn take_monitor_trunk(&mut self, name: &str, trunk: &ChannelId) -> bool {
        let Some(session) = session_of_trunk_name(name) else { return false };
        if self.monitors.contains_key(&session) {
            self.monitor_trunk_arrived(session, trunk.clone());
            return true;
        }
        false
    }

    fn monitor_trunk_arrived(&mut self, session: u64, trunk: ChannelId) {
        let Ok(supervisor) = ChannelId::new(self.monitor_id("leg", session)) else { return };
        let Some(s) = self.monitors.get_mut(&session) else { return };
        let MonitorHalf::Answering { trunk: slot @ None, supervisor: leg, .. } = &mut s.half else {
            // A second trunk call for one session: not ours to keep.
            self.ari(AriRequest::Hangup(trunk, HangupReason::Normal));
            return;
        };
        *slot = Some(trunk.clone());
        *leg = Some(supervisor.clone());
        let endpoint = Endpoint::new(s.order.endpoint.clone());
        self.monitor_channels.insert(trunk, session);
        self.monitor_channels.insert(supervisor.clone(), session);
        match endpoint {
            Ok(endpoint) => self.originate_monitor_leg(endpoint, supervisor, MONITOR_RING_TIMEOUT_S as i32, session),
            Err(_) => self.end_monitor(session, None),
        }
    }

    /// A monitoring leg this site originated answered and entered the application.
    pub(super) fn monitor_leg_answered(&mut self, session: u64, leg: &ChannelId) {
        let Some(s) = self.monitors.get_mut(&session) else { return };
        let bridge = s.bridge.clone();
        match &mut s.half {
            MonitorHalf::Snooping { far_leg, .. } if far_leg == leg => {
                self.ari_for_monitor(AriRequest::AddChannels { bridge, channels: vec![leg.clone()] }, session);
            }
            MonitorHalf::Answering { trunk: Some(trunk), supervisor: Some(supervisor), bridged, .. }
                if supervisor == leg && !*bridged =>
            {
                *bridged = true;
                let (trunk, supervisor) = (trunk.clone(), supervisor.clone());
                self.create_monitor_bridge(bridge.clone(), session);
                let channels = vec![trunk.clone(), supervisor];
                self.ari_for_monitor(AriRequest::AddChannels { bridge, channels }, session);
                self.ari_for_monitor(AriRequest::Answer(trunk), session);
            }
            _ => {}
        }
    }

    /// A channel of a session ended (or left the application): the session ends.
    pub(super) fn monitor_leg_gone(&mut self, session: u64, leg: &ChannelId) {
        self.end_monitor(session, Some(leg));
    }

    /// Ends a session: its other legs hung up, its bridge destroyed. The call is not touched.
    pub(super) fn end_monitor(&mut self, session: u64, gone: Option<&ChannelId>) {
        let Some(s) = self.monitors.remove(&session) else { return };
        self.counters.monitors_ended += 1;
        for channel in s.channels() {
            self.monitor_channels.remove(&channel);
            if Some(&channel) != gone {
                self.ari(AriRequest::Hangup(channel, HangupReason::Normal));
            }
        }
        // The supervisor's half creates its bridge only once the supervisor answered.
        if !matches!(s.half, MonitorHalf::Answering { bridged: false, .. }) {
            self.ari(AriRequest::DestroyBridge(s.bridge));
        }
    }

    /// Sessions whose call ended here (its execution gone or no longer connected), and
    /// supervisor halves whose trunk call did not come in time, end.
    pub(super) fn end_stale_monitors(&mut self) {
        if self.monitors.is_empty() {
            return;
        }
        let now = self.now_ms;
        let stale: Vec<u64> = self
            .monitors
            .values()
            .filter(|s| match &s.half {
                MonitorHalf::Snooping { .. } => self.monitored_operator_leg(&s.order.call, s.order.fence).is_none(),
                MonitorHalf::Answering { trunk, deadline_ms, .. } => trunk.is_none() && *deadline_ms <= now,
            })
            .map(|s| s.order.session)
            .collect();
        for session in stale {
            self.end_monitor(session, None);
        }
    }

    /// After a reconnect or restart: a session one of whose channels Asterisk no longer has
    /// ends (its end was lost with the events socket), and a monitoring bridge no session
    /// owns (left by a run before a restart) is destroyed. Monitoring channels nothing tracks
    /// are hung up as they enter (`on_stasis_start`).
    pub(super) fn reconcile_monitors(&mut self, channels: &[lineup_ari::Channel], bridges: &[lineup_ari::Bridge]) {
        let live: std::collections::BTreeSet<&ChannelId> = channels.iter().map(|c| &c.id).collect();
        let lost: Vec<u64> = self
            .monitors
            .values()
            .filter(|s| s.channels().iter().any(|c| !live.contains(c)))
            .map(|s| s.order.session)
            .collect();
        for session in lost {
            self.end_monitor(session, None);
        }
        let owned: std::collections::BTreeSet<&BridgeId> = self.monitors.values().map(|s| &s.bridge).collect();
        let leftover: Vec<BridgeId> = bridges
            .iter()
            .filter(|b| b.id.as_str().starts_with(MONITOR_ID_PREFIX) && !owned.contains(&b.id))
            .map(|b| b.id.clone())
            .collect();
        for bridge in leftover {
            self.ari(AriRequest::DestroyBridge(bridge));
        }
    }

    /// An ARI request of a session failed: the session ends, the call goes on.
    pub(super) fn monitor_request_failed(&mut self, session: u64) {
        self.end_monitor(session, None);
    }

    fn track_monitor(&mut self, session: MonitorSession) {
        if let MonitorHalf::Snooping { snoop, far_leg } = &session.half {
            self.monitor_channels.insert(snoop.clone(), session.order.session);
            self.monitor_channels.insert(far_leg.clone(), session.order.session);
        }
        self.counters.monitors_started += 1;
        self.monitors.insert(session.order.session, session);
        debug_assert!(self.monitors.len() <= MONITOR_SESSIONS_MAX);
    }

    fn create_monitor_bridge(&mut self, bridge: BridgeId, session: u64) {
        let request = CreateBridgeRequest { bridge_id: bridge, bridge_type: BridgeType::MixingDtmfEvents, name: None };
        self.ari_for_monitor(AriRequest::CreateBridge(request), session);
    }

    fn originate_monitor_leg(&mut self, endpoint: Endpoint, leg: ChannelId, timeout_s: i32, session: u64) {
        let request = OriginateRequest {
            endpoint,
            target: OriginateTarget::Application { app: application(), app_args: vec![] },
            channel_id: Some(leg),
            other_channel_id: None,
            caller_id: None,
            timeout_s: Some(timeout_s),
            originator: None,
            variables: Default::default(),
        };
        self.ari_for_monitor(AriRequest::Originate(request), session);
    }

    fn ari_for_monitor(&mut self, request: AriRequest, session: u64) {
        let token = self.token();
        self.pending.insert(token, Pending::AriMonitor { session });
        self.out.push(Action::Ari { token, request });
    }
}
