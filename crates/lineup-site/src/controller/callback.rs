//! Callback promises served by an operator here: reach the operator, then call the number;
//! how the end of either leg is reported.

use super::config::CALLBACK_RING_TIMEOUT_MS;
use super::legs::{channel, ExecKind, OfferExec, OfferStage};
use super::SiteController;
use lineup_ari::{BridgeId, ChannelId, Endpoint};
use lineup_core::{CallId, CommandBody, CoreError, HungUpBy, Offer, OperatorMode};

impl SiteController {
    /// A callback promise reached the head and an operator here: reach the operator (ring
    /// mode rings first), then call the number and connect the two.
    pub(super) fn on_dial_callback(&mut self, offer: Offer) {
        if offer.operator_site != self.cfg.site || !self.fence_is_fresh(&offer.call, &offer.operator, offer.fence) {
            return;
        }
        let number = offer.callback_number.clone().unwrap_or_default();
        let callee = channel(&self.offer_leg_id("cb", &offer.call, offer.fence));
        let bridge = BridgeId::new(self.offer_leg_id("call", &offer.call, offer.fence)).ok();
        let operator_leg = match offer.mode {
            OperatorMode::Persistent => offer.operator_channel.as_deref().and_then(channel),
            OperatorMode::Ring => channel(&self.offer_leg_id("ring", &offer.call, offer.fence)),
        };
        let (Some(callee), Some(bridge), Some(operator_leg), true) =
            (callee, bridge, operator_leg, self.cfg.callback_endpoint.is_some())
        else {
            self.report(CommandBody::CallbackResult {
                call: offer.call,
                operator: offer.operator,
                fence: offer.fence,
                answered: false,
            });
            return;
        };
        self.counters.offers_executed += 1;
        self.insert_exec(OfferExec::new(
            ExecKind::Callback { number },
            &offer,
            callee,
            operator_leg.clone(),
            offer.mode,
            bridge,
            OfferStage::Ringing,
            offer.whisper.clone(),
        ));
        match offer.mode {
            OperatorMode::Persistent => {
                if let Some(leg) = self.operators.get_mut(&offer.operator) {
                    leg.busy_with = Some(offer.fence);
                }
                self.dial_callee(&offer.call, offer.fence);
            }
            OperatorMode::Ring => {
                self.ring_operator(
                    &offer,
                    operator_leg,
                    Some(format!("\"Callback\" <{}>", offer.callback_number.as_deref().unwrap_or_default())),
                );
            }
        }
    }

    /// Places the callback call to the promised number.
    pub(super) fn dial_callee(&mut self, call: &CallId, fence: u64) {
        let Some(exec) = self.offers.get(&(call.clone(), fence)) else { return };
        let ExecKind::Callback { number } = &exec.kind else { return };
        let endpoint = self
            .cfg
            .callback_endpoint
            .as_deref()
            .map(|template| template.replace("{number}", number))
            .and_then(|e| Endpoint::new(e).ok());
        let callee = exec.caller_channel.clone();
        // Dialled already (the operator's answer seen twice: a reconcile, then its event).
        if self.ring_legs.contains_key(&callee) {
            return;
        }
        let Some(endpoint) = endpoint else { return };
        self.ring_legs.insert(callee.clone(), (call.clone(), fence));
        self.originate_into_app(endpoint, callee, None, (CALLBACK_RING_TIMEOUT_MS / 1000) as i32, call, fence);
    }

    /// A leg of a callback ended (the callee's, or a ring-mode operator's). Connected: the
    /// call is complete. Not yet: the attempt is taken down and reported, as the operator's
    /// miss if its phone rang out before the number was dialled, else as an unanswered call.
    pub(super) fn callback_leg_gone(&mut self, ch: &ChannelId, call: CallId, fence: u64) {
        let Some(exec) = self.offers.get(&(call.clone(), fence)) else { return };
        let (operator, connected) = (exec.operator.clone(), exec.stage == OfferStage::Connected);
        let callee_gone = &exec.caller_channel == ch;
        let callee_dialled = self.ring_legs.values().filter(|v| **v == (call.clone(), fence)).count() > 0;
        if connected {
            let by = if callee_gone { HungUpBy::Caller } else { HungUpBy::Operator };
            self.report(CommandBody::Completed { call: call.clone(), fence, by });
            self.end_connected_offer(&call, fence, by);
            return;
        }
        let Some(exec) = self.offers.remove(&(call.clone(), fence)) else { return };
        let operator_rang_out = !callee_gone && exec.mode == OperatorMode::Ring;
        self.undo_offer(exec);
        if operator_rang_out && !callee_dialled {
            self.report(CommandBody::RingNoAnswer { call, operator, fence });
        } else {
            self.report(CommandBody::CallbackResult { call, operator, fence, answered: false });
        }
    }

    /// The core had moved the promise on (this site dialled on an offer that was already
    /// taken back, e.g. while it lagged): the number may now be called by another site, so
    /// this attempt is taken down at once.
    pub(super) fn on_callback_answered_result(
        &mut self,
        call: CallId,
        fence: u64,
        result: &lineup_core::CommandResult,
    ) {
        if matches!(result, Err(CoreError::StaleFence { current, .. }) if *current != Some(fence)) {
            if let Some(exec) = self.offers.remove(&(call, fence)) {
                self.undo_offer(exec);
            }
        }
    }
}
