//! Ingress steering with real SIP parts, in the test command: `lineup-chaos --scenario
//! ingress` runs Debian's Kamailio with deploy/kamailio/kamailio.cfg in front of three real
//! `lineup run` nodes, sipp as the ITSP (INVITEs for two DIDs) and one sipp answering machine
//! per site. Asserted: every INVITE gets a final answer (200) in every phase; a DID lands at
//! the one site with a free qualified operator, and follows a change of availability made
//! through the API; a site that stops answering SIP is passed over; a site whose node is
//! killed (and marked unreachable) gets no new INVITE. The decision latency and the proxy's
//! added setup time are printed.

mod common;
use common::ChaosRun;

#[test]
fn kamailio_steers_each_did_where_lineup_says_and_fails_over() {
    let run = ChaosRun::run("ingress", 0);
    let phases = run.report["phases"].as_array().unwrap_or_else(|| panic!("no phases\n{}", run.shown));
    assert_eq!(phases.len(), 5, "{}", run.shown);
    for phase in phases {
        assert_eq!(phase["ok"].as_bool(), Some(true), "phase {} failed\n{}", phase["name"], run.shown);
    }
    assert_eq!(run.report["passed"].as_bool(), Some(true), "{}", run.shown);
    for figure in ["decision_latency_us_p50", "decision_latency_us_p99", "proxy_added_setup_ms"] {
        eprintln!("ingress {figure}: {}", run.report[figure]);
    }
}
