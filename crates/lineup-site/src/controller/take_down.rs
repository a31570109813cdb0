//! After a restart: an offer at the caller's site that the lost process was half-way
//! through. Its ringing legs belong to that process and cannot be resumed, so everything
//! it started is undone and the caller gets its place back, without charging the operator.

use super::legs::channel;
use super::SiteController;
use crate::io::AriRequest;
use lineup_ari::{BridgeId, ChannelId, HangupReason};
use lineup_core::{CallId, CommandBody, OfferFailure, OperatorId, OperatorMode, Routing};
use std::collections::BTreeMap;

impl SiteController {
    /// Hangs up the ring or trunk leg the lost process placed, destroys the half-built call
    /// bridge (a persistent operator here goes back to holding), puts the caller back on hold
    /// music and reports `Interrupted`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn take_down_half_built_offer(
        &mut self,
        call: &CallId,
        operator: &OperatorId,
        fence: u64,
        caller: &ChannelId,
        live: &BTreeMap<ChannelId, lineup_ari::Channel>,
        bridged: &BTreeMap<BridgeId, Vec<ChannelId>>,
        routing: &Routing,
    ) {
        for kind in ["ring", "trunk"] {
            if let Some(leg) = channel(&self.offer_leg_id(kind, call, fence)).filter(|leg| live.contains_key(leg)) {
                self.ari(AriRequest::Hangup(leg, HangupReason::Normal));
            }
        }
        let bridge = BridgeId::new(self.offer_leg_id("call", call, fence)).ok();
        let members = bridge.as_ref().and_then(|b| bridged.get(b)).cloned().unwrap_or_default();
        if let Some(bridge) = bridge.filter(|b| bridged.contains_key(b)) {
            self.ari(AriRequest::DestroyBridge(bridge));
        }
        let operator_here = routing.operator_view(operator).and_then(|v| v.site) == Some(self.cfg.site);
        let persistent = routing.operator_config(operator).is_some_and(|c| c.mode == OperatorMode::Persistent);
        if operator_here && persistent {
            let leg = routing.operator_view(operator).and_then(|v| v.channel).and_then(|c| channel(&c));
            // In the half-built call bridge, which the operator adoption left it in (a leg in
            // no bridge at all was put back in holding there already).
            if let Some(leg) = leg.filter(|leg| members.contains(leg)) {
                self.return_to_holding_unless_taken(operator, &leg, fence, None);
            }
        }
        self.start_moh(caller);
        self.report(CommandBody::OfferFailed {
            call: call.clone(),
            operator: operator.clone(),
            fence,
            reason: OfferFailure::Interrupted,
        });
    }
}
