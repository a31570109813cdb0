//! The simulated people: callers arriving at random gates (some take a callback), operators
//! logging in by PIN with phones that answer, and a supervisor sending someone on a break.

use super::cast::{pin_of, OPERATORS};
use crate::DemoError;
use lineup_ari::CallerId;
use lineup_cluster::ClusterNode;
use lineup_core::*;
use lineup_pbx_server::LiveWorld;
use lineup_pbx_sim::{BoxIndex, PhoneBehaviour, PhoneCall, ScriptedKeys};
use lineup_util::SplitMix64;
use std::sync::Arc;
use std::time::Duration;

/// How long a supervisor's break lasts before the operator comes back on their own.
const BREAK_DURATION: Duration = Duration::from_secs(20);

/// Every operator dials the login code with their PIN; ring-mode phones answer after a few
/// seconds and hang up after a while.
pub(super) fn log_operators_in(live: &LiveWorld, dice: &mut SplitMix64) -> Result<(), DemoError> {
    for (k, op) in OPERATORS.iter().enumerate() {
        let box_index = BoxIndex(op.site as usize - 1);
        if op.mode == OperatorMode::Ring {
            let behaviour = PhoneBehaviour {
                answer_after_ms: Some(dice.range(1_500, 4_000)),
                hang_up_after_answer_ms: Some(dice.range(8_000, 20_000)),
                ..Default::default()
            };
            live.with_world(|w| w.register_phone(box_index, &format!("phone-{}", op.id), behaviour))?;
        }
        let login = PhoneCall::operator_login(
            &format!("desk-{}", op.id),
            CallerId { name: format!("Operator {}", op.id), number: op.id.into() },
            "lineup-operators",
            &format!("*55{}", op.id),
            &pin_of(op.id),
            2_500 + 200 * k as u64,
        );
        live.with_world(|w| w.place_call(box_index, login))?;
    }
    Ok(())
}

/// The extension a caller dials (deploy/demo/extensions.conf) for a roll in [0, 1).
fn extension_for(roll: f64) -> &'static str {
    if roll < 0.35 {
        "6000" // sales via the web gate
    } else if roll < 0.70 {
        "6001" // sales by phone
    } else if roll < 0.80 {
        "6002" // sales by phone, VIP class
    } else {
        "6003" // support by phone (needs English)
    }
}

/// One caller arrives at a random site; one in five presses 1 for a callback and answers it.
pub(super) fn place_caller(live: &LiveWorld, dice: &mut SplitMix64, n: u64) -> Result<(), DemoError> {
    let site = dice.range(0, super::SITES.len() as u64 - 1) as usize;
    let exten = extension_for(dice.unit());
    let number = format!("+1555{:07}", 1_000_000 + n);
    let takes_callback = dice.unit() < 0.2;
    let mut keys = Vec::new();
    if takes_callback {
        keys.push(ScriptedKeys { at_ms: dice.range(8_000, 20_000), digits: "1".into() });
        let behaviour = PhoneBehaviour {
            answer_after_ms: Some(dice.range(2_000, 6_000)),
            hang_up_after_answer_ms: Some(dice.range(15_000, 40_000)),
            ..Default::default()
        };
        live.with_world(|w| w.register_phone(BoxIndex(site), &number, behaviour))?;
    }
    let call = PhoneCall {
        phone: format!("caller-{n}"),
        caller: CallerId { name: format!("Caller {n}"), number },
        context: "lineup-gates".into(),
        exten: exten.into(),
        // Patience covers waiting and talking: answered callers talk until it runs out.
        patience_ms: Some(dice.range(15_000, 50_000)),
        keys,
    };
    live.with_world(|w| w.place_call(BoxIndex(site), call))?;
    Ok(())
}

/// A supervisor sends a random operator on a short break; they come back on their own.
pub(super) fn send_someone_on_break<T>(
    nodes: &std::collections::BTreeMap<u64, Arc<ClusterNode<T>>>,
    dice: &mut SplitMix64,
) where
    T: lineup_cluster::transport::PeerTransport + 'static,
{
    let op = &OPERATORS[dice.range(0, OPERATORS.len() as u64 - 1) as usize];
    let node = Arc::clone(&nodes[&op.site]);
    let id = OperatorId::new(op.id);
    tokio::spawn(async move {
        let on_break = RequestedState::Break { reason: "coffee".into() };
        let _ = node.propose(CommandBody::OperatorState { operator: id.clone(), state: on_break }).await;
        tokio::time::sleep(BREAK_DURATION).await;
        let _ = node.propose(CommandBody::OperatorState { operator: id, state: RequestedState::Available }).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineup_ari::stasis_args::{parse_stasis_entry, split_stasis_app_data, StasisEntry};
    use lineup_pbx_sim::Dialplan;

    /// Every extension a demo caller dials enters a gate that belongs to the queue it names:
    /// a caller sent to another queue's gate is refused (INVALID) and never served.
    #[test]
    fn every_demo_extension_enters_a_gate_of_its_queue() {
        let dialplan = Dialplan::parse(super::super::DEMO_DIALPLAN).unwrap();
        let config = super::super::cast::routing_config();
        for roll in [0.0, 0.5, 0.75, 0.9] {
            let exten = extension_for(roll);
            let entry = dialplan.find("lineup-gates", exten).expect(exten);
            let stasis = entry.steps.iter().find(|s| s.application == "Stasis").expect("a Stasis step");
            let (application, args) = split_stasis_app_data(&stasis.data);
            let Ok(StasisEntry::Caller { queue, gate, .. }) = parse_stasis_entry(&application, &args) else {
                panic!("{exten}: not a caller entry")
            };
            let gate = gate.expect("every demo extension names its gate");
            let owner = config.gates.iter().find(|g| g.id.as_str() == gate).map(|g| g.queue.as_str());
            assert_eq!(owner, Some(queue.as_str()), "{exten}: gate {gate} is not a gate of queue {queue}");
        }
    }
}
