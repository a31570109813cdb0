//! Callback promises served by an operator here: reach the operator, then call the number.

use super::config::CALLBACK_RING_TIMEOUT_MS;
use super::legs::{channel, ExecKind, OfferExec, OfferStage};
use super::SiteController;
use lineup_ari::{BridgeId, Endpoint};
use lineup_core::{CallId, CommandBody, Offer, OperatorMode};

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
        self.offers.insert(
            (offer.call.clone(), offer.fence),
            OfferExec::new(
                ExecKind::Callback { number },
                &offer,
                callee,
                operator_leg.clone(),
                offer.mode,
                bridge,
                OfferStage::Ringing,
                offer.whisper.clone(),
            ),
        );
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
        let Some(endpoint) = endpoint else { return };
        self.ring_legs.insert(callee.clone(), (call.clone(), fence));
        self.originate_into_app(endpoint, callee, None, (CALLBACK_RING_TIMEOUT_MS / 1000) as i32, call, fence);
    }
}
