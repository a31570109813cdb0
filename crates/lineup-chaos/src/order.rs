//! The global order, judged from the phones: in calm times (no fault active, none healed
//! within `CALM_AFTER_FAULT_MS`), no `sales` caller is connected while one who entered
//! clearly earlier is still waiting for an operator. Every `sales` operator may take every
//! `sales` caller (one queue, one gate priority, penalty 0, any site), so a later caller
//! connected first is an overtaking — unless the earlier one was being offered to a
//! ringing phone at that moment (`ORDER_GRACE_MS`).

use crate::faults::FaultFigures;
use crate::run::RING_ANSWER_AFTER_MS;
use crate::setup::probe_operator;
use lineup_pbx_sim::truth::CallerTruth;

/// Two callers entering at different boxes this close together may be logged in either
/// order (each node proposes its own Enqueue): not an overtaking.
pub const ORDER_SLACK_MS: u64 = 500;
/// An earlier caller connected within this long after the later one was being offered
/// already (a ring-mode phone answers after `RING_ANSWER_AFTER_MS`).
pub const ORDER_GRACE_MS: u64 = RING_ANSWER_AFTER_MS + 1_000;
/// After a fault heals, this long for the cluster to hear the site, mark it back and offer
/// across it again; connections in it are not judged.
pub const CALM_AFTER_FAULT_MS: u64 = 5_000;

/// `[from, until]` Unix ms of every fault and of every interval without a leader, widened by
/// `CALM_AFTER_FAULT_MS` after its end and by `ORDER_GRACE_MS` before its start: an earlier
/// caller being offered to a ringing phone when the fault came may have had that offer
/// spoiled by it (its site stopped mid-offer).
fn unsettled_windows(faults: &FaultFigures) -> Vec<(u64, u64)> {
    let outages = faults.outages.iter().map(|o| (o.from_ms, o.until_ms));
    let restarts = faults.restarts_detail.iter().map(|r| (r.down_from_ms, r.ready_at_ms.unwrap_or(u64::MAX)));
    let leaderless = faults.leaderless.iter().map(|l| (l.from_ms, l.until_ms));
    let widen =
        |(from, until): (u64, u64)| (from.saturating_sub(ORDER_GRACE_MS), until.saturating_add(CALM_AFTER_FAULT_MS));
    outages.chain(restarts).chain(leaderless).map(widen).collect()
}

/// A caller of the workload (`sales`): not an answer probe (`support`, whose only operators
/// are the probe operators), nor a call the harness aimed at one operator.
fn in_sales(caller: &CallerTruth, sites: u64, faults: &FaultFigures) -> bool {
    let probes: Vec<String> = (1..=sites).map(|site| probe_operator(site).id).collect();
    caller.entered_at_ms.is_some()
        && caller.connections.first().is_none_or(|c| !probes.contains(&c.operator))
        && !faults.aimed_calls.contains(&caller.call_id)
}

/// The latest the caller can have joined the global order: when it entered, or, if its site
/// was cut off then (an outage that keeps it from committing or from seeing the caller, or
/// its node down) or the federation had no leader, when that ended.
fn joined_at(caller: &CallerTruth, faults: &FaultFigures) -> Option<u64> {
    joined_within(caller, faults, true)
}

/// The earliest the caller can have joined: as `joined_at`, but a partial cut (a flapping
/// link, a deaf node) may have let its entry commit at once.
fn joined_at_earliest(caller: &CallerTruth, faults: &FaultFigures) -> Option<u64> {
    joined_within(caller, faults, false)
}

fn joined_within(caller: &CallerTruth, faults: &FaultFigures, partial_cuts_delay: bool) -> Option<u64> {
    let entered = caller.entered_at_ms?;
    let site = caller.box_index as u64 + 1;
    let outages = faults
        .outages
        .iter()
        .filter(|o| o.cut_off && o.site == site && (partial_cuts_delay || !o.partial))
        .map(|o| (o.from_ms, o.until_ms));
    let restarts = faults
        .restarts_detail
        .iter()
        .filter(|r| r.site == site)
        .map(|r| (r.down_from_ms, r.ready_at_ms.unwrap_or(u64::MAX)));
    let leaderless = faults.leaderless.iter().map(|l| (l.from_ms, l.until_ms));
    let back = outages
        .chain(restarts)
        .chain(leaderless)
        .filter(|(from, until)| *from <= entered && entered <= *until)
        .map(|(_, until)| until)
        .max();
    Some(back.unwrap_or(entered))
}

/// Whether `earlier` was still waiting, unoffered, when `later` was connected at `at_ms`:
/// `earlier` joined the order, at the latest, clearly before `later` could have at the
/// earliest.
fn overtaken(earlier: &CallerTruth, later: &CallerTruth, at_ms: u64, faults: &FaultFigures) -> bool {
    let (Some(earlier_in), Some(later_in)) = (joined_at(earlier, faults), joined_at_earliest(later, faults)) else {
        return false;
    };
    let waiting_since_long_before = earlier_in + ORDER_SLACK_MS <= later_in;
    let still_waiting = earlier.connections.first().is_none_or(|c| c.at_ms > at_ms + ORDER_GRACE_MS)
        && earlier.ended_at_ms.is_none_or(|ended| ended > at_ms + ORDER_GRACE_MS);
    waiting_since_long_before && still_waiting
}

/// Every overtaking in calm times: when, and "later overtook earlier at t".
pub fn order_violations(callers: &[CallerTruth], faults: &FaultFigures, sites: u64) -> Vec<(u64, String)> {
    let windows = unsettled_windows(faults);
    let sales: Vec<&CallerTruth> = callers.iter().filter(|c| in_sales(c, sites, faults)).collect();
    let mut violations = Vec::new();
    for later in &sales {
        let Some(at_ms) = later.connections.first().map(|c| c.at_ms) else { continue };
        if windows.iter().any(|(from, until)| *from <= at_ms && at_ms <= *until) {
            continue;
        }
        for earlier in sales.iter().filter(|earlier| overtaken(earlier, later, at_ms, faults)) {
            let what = format!("@{at_ms} ms {} connected while {} waited", later.call_id, earlier.call_id);
            violations.push((at_ms, what));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineup_pbx_sim::truth::{CallerPlan, Connection, Party};

    /// A cut-off of `site` from 2,000 ms to `until_ms`, `partial` or whole.
    fn cut_off_from_2000(what: &str, site: u64, partial: bool, until_ms: u64) -> crate::faults::OutageRecord {
        crate::faults::OutageRecord {
            what: what.into(),
            site,
            blind: false,
            cut_off: true,
            partial,
            from_ms: 2_000,
            until_ms,
            heard_after_heal_ms: Some(10),
        }
    }

    fn caller(call_id: &str, entered_at_ms: u64, connected_at_ms: Option<u64>) -> CallerTruth {
        let connections = connected_at_ms
            .map(|at_ms| vec![Connection { operator: "1001".into(), operator_box: 0, at_ms }])
            .unwrap_or_default();
        CallerTruth {
            call_id: call_id.into(),
            box_index: 0,
            channel: call_id.into(),
            plan: CallerPlan { talk_ms: 5_000, hang_up_by: Party::Caller, patience_ms: 60_000 },
            placed_at_ms: entered_at_ms,
            entered_at_ms: Some(entered_at_ms),
            connections,
            scripted_by: Some(Party::Caller),
            ended_at_ms: Some(100_000),
            ended_by: None,
            dropped: None,
        }
    }

    #[test]
    fn a_later_caller_connected_while_an_earlier_one_waits_is_an_overtaking() {
        let callers = [caller("1-a", 1_000, Some(30_000)), caller("1-b", 5_000, Some(10_000))];
        let found = order_violations(&callers, &FaultFigures::default(), 3);
        assert_eq!(found, vec![(10_000, "@10000 ms 1-b connected while 1-a waited".to_string())]);
    }

    #[test]
    fn near_simultaneous_arrivals_a_ringing_offer_and_fault_windows_are_not_judged() {
        let close = [caller("1-a", 1_000, Some(30_000)), caller("1-b", 1_200, Some(10_000))];
        assert!(order_violations(&close, &FaultFigures::default(), 3).is_empty());
        let ringing = [caller("1-a", 1_000, Some(11_500)), caller("1-b", 5_000, Some(10_000))];
        assert!(order_violations(&ringing, &FaultFigures::default(), 3).is_empty());
        let mut faults = FaultFigures::default();
        let outage = cut_off_from_2000("Isolate", 1, false, 6_000);
        faults.outages.push(outage);
        let overtaken = [caller("1-a", 1_000, Some(30_000)), caller("1-b", 5_000, Some(10_000))];
        assert!(order_violations(&overtaken, &faults, 3).is_empty(), "10,000 is within the calm-after of 6,000");
    }

    /// Seen in a restarts run: the earlier caller was being offered to a ringing phone when
    /// its site was stopped, which spoiled the offer; a later caller connected just before
    /// the stop is not an overtaking.
    #[test]
    fn a_connection_just_before_a_fault_is_not_judged() {
        let mut faults = FaultFigures::default();
        faults.restarts_detail.push(crate::faults::RestartRecord {
            what: "Term of the CallerNode (site 2)".into(),
            site: 2,
            ready_after_start_ms: Some(300),
            heard_after_ready_ms: Some(5),
            down_from_ms: 10_300,
            ready_at_ms: Some(12_600),
        });
        let callers = [caller("2-a", 1_000, Some(30_000)), caller("1-b", 5_000, Some(10_000))];
        assert!(order_violations(&callers, &faults, 3).is_empty(), "10,000 is within grace before 10,300");
        faults.restarts_detail[0].down_from_ms = 10_000 + ORDER_GRACE_MS + 1;
        assert_eq!(order_violations(&callers, &faults, 3).len(), 1, "long before the stop: an overtaking");
    }

    /// Seen in a random run: a caller entered at a site whose links flapped, and its entry
    /// committed in an up half-period; a caller entering 3 s later elsewhere was rightly
    /// served after it. A flap may let a site's entry through, so the first caller may have
    /// joined when it entered.
    #[test]
    fn a_caller_entering_during_a_flap_may_have_joined_at_once() {
        let mut faults = FaultFigures::default();
        faults.outages.push(cut_off_from_2000("Flap", 2, true, 8_000));
        let mut during_flap = caller("2-a", 3_000, Some(20_000));
        during_flap.box_index = 1;
        let elsewhere = caller("1-b", 6_000, Some(30_000));
        assert!(order_violations(&[during_flap.clone(), elsewhere.clone()], &faults, 3).is_empty());
        // A whole cut: the first caller could join only at the heal, after the second.
        faults.outages[0].partial = false;
        let mut served_first = during_flap;
        served_first.connections[0].at_ms = 20_000;
        let mut waited = elsewhere;
        waited.connections[0].at_ms = 40_000;
        assert_eq!(order_violations(&[served_first, waited], &faults, 3).len(), 1);
    }

    /// Seen in a nemesis run: the leader killed mid-membership-change left the federation
    /// without a leader for seconds after the killed node was ready again; callers entering
    /// meanwhile at different sites were queued in the order their retries reached the next
    /// leader, so the one entering first may rightly be connected after the other.
    #[test]
    fn callers_entering_while_no_leader_is_known_join_the_order_when_one_is() {
        let mut faults = FaultFigures::default();
        faults.leaderless.push(crate::leaders::Leaderless { from_ms: 2_000, until_ms: 9_000 });
        let mut first_in = caller("2-a", 3_000, Some(40_000));
        first_in.box_index = 1;
        let second_in = caller("1-b", 5_000, Some(30_000));
        assert!(order_violations(&[first_in.clone(), second_in.clone()], &faults, 3).is_empty());
        faults.leaderless.clear();
        assert_eq!(order_violations(&[first_in, second_in], &faults, 3).len(), 1, "with a leader: an overtaking");
    }

    /// Seen in a 1-hour random run: callers entering at a site cut off from the others could
    /// not be enqueued until it was back, so a caller entering elsewhere meanwhile was
    /// rightly first in the global order.
    #[test]
    fn a_caller_entering_at_a_cut_off_site_joins_the_order_when_the_site_is_back() {
        let mut faults = FaultFigures::default();
        faults.outages.push(cut_off_from_2000("Isolate", 2, false, 8_000));
        let mut at_cut_off_site = caller("2-a", 3_000, Some(40_000));
        at_cut_off_site.box_index = 1;
        let elsewhere = caller("1-b", 7_000, Some(30_000));
        assert!(order_violations(&[at_cut_off_site.clone(), elsewhere.clone()], &faults, 3).is_empty());
        // The same two callers, with the site not cut off: an overtaking.
        faults.outages[0].cut_off = false;
        assert_eq!(order_violations(&[at_cut_off_site, elsewhere], &faults, 3).len(), 1);
    }
}
