//! Validation against Erlang C: M/M/c traffic through the whole federation (three sites,
//! replication, the real core and site controllers, the stand-in boxes) compared with the
//! formulas the planner uses.
//!
//! Waiting times in a loaded M/M/c queue are strongly correlated from caller to caller, so
//! a plain average converges slowly: 20,000 callers at 85 % load still scatter by ±20 %
//! around Erlang C from seed to seed (a property of the queue, not of Lineup). Each run
//! therefore also feeds the *same* callers — arrival and talk times — through an ideal
//! M/M/c queue ([`erlang::fifo_waits_ms`]). The federation's waits minus the ideal queue's
//! waits on the same sample path are what Lineup adds (network, commits, bridging); that
//! difference has little variance. The control-variate estimate
//! `Erlang C + (simulated − ideal)` is an unbiased estimate of the federation's long-run
//! ASA and service level with far less noise, and is what gets compared with Erlang C. The
//! raw simulated figures are reported beside it; over long runs (`lineup-sim validate`
//! with many calls) they converge on the same values.

use serde::Serialize;

use crate::config::{SimConfig, Workload, MMC_OPS_PER_CALL};
use crate::erlang;
use crate::sim::SERVICE_LEVEL_ANSWER_MS;
use crate::sweep::run_seeds;

#[derive(Debug, Clone, Serialize)]
pub struct MmcSpec {
    pub sites: usize,
    pub operators_per_site: usize,
    /// Utilisation ρ = λ / (c μ), below 1.
    pub load: f64,
    pub aht_s: f64,
    /// Callers per seed (after which arrivals stop and the run drains).
    pub calls_per_seed: u64,
    pub seeds: u64,
    pub first_seed: u64,
    pub threads: usize,
    /// Callers who entered before this are left out (the queue starts empty).
    pub warm_up_ms: u64,
    /// Keep each seed's trace (last lines) and write it here, for diagnosis.
    pub trace_dir: Option<std::path::PathBuf>,
}

/// ASA in seconds and service level (share answered within 20 s).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Figures {
    pub asa_s: f64,
    pub service_level: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MmcValidation {
    pub spec: MmcSpec,
    pub operators: u32,
    pub offered_load_erlangs: f64,
    pub arrivals_per_hour: f64,
    /// Answered callers counted (after the warm-up, over all seeds).
    pub calls: u64,
    pub erlang_c: Figures,
    /// Straight averages of the federation's waits.
    pub simulated: Figures,
    /// The same callers through the ideal M/M/c queue.
    pub ideal_same_callers: Figures,
    /// Erlang C + (simulated − ideal): the federation's long-run figures, low-variance.
    pub estimate: Figures,
    pub asa_relative_error: f64,
    pub service_level_relative_error: f64,
    pub raw_asa_relative_error: f64,
    pub raw_service_level_relative_error: f64,
    pub violations: u64,
    /// The first violation of the first failing seed (a validation run checks invariants too).
    pub first_violation: Option<String>,
    pub events: u64,
    pub wall_ms: u64,
}

pub fn config_for(spec: &MmcSpec, seed: u64) -> SimConfig {
    let operators = spec.sites * spec.operators_per_site;
    let arrivals_per_hour = spec.load * operators as f64 * 3_600.0 / spec.aht_s;
    let workload = Workload::mmc(arrivals_per_hour, spec.aht_s * 1_000.0, spec.operators_per_site, spec.sites);
    SimConfig::mmc(seed, spec.sites, workload, spec.calls_per_seed * MMC_OPS_PER_CALL, spec.warm_up_ms)
}

pub fn validate_mmc(spec: &MmcSpec) -> MmcValidation {
    let started = std::time::Instant::now();
    let runs = run_seeds(spec.first_seed..spec.first_seed + spec.seeds, spec.threads, |seed| {
        let mut cfg = config_for(spec, seed);
        cfg.trace = spec.trace_dir.is_some();
        cfg
    });
    if let Some(dir) = &spec.trace_dir {
        let _ = std::fs::create_dir_all(dir);
        for (r, trace) in &runs {
            let _ = std::fs::write(dir.join(format!("lineup-sim-mmc-seed-{}.trace", r.seed)), trace.join("\n"));
        }
    }
    let reports: Vec<&crate::RunReport> = runs.iter().map(|(r, _)| r).collect();
    let operators = (spec.sites * spec.operators_per_site) as u32;
    let a = spec.load * operators as f64;
    let t_s = SERVICE_LEVEL_ANSWER_MS as f64 / 1_000.0;
    let erlang_c = Figures {
        asa_s: erlang::asa_s(operators, a, spec.aht_s),
        service_level: erlang::service_level(operators, a, spec.aht_s, t_s),
    };
    let (mut calls, mut sim_wait_ms, mut sim_within, mut ideal_wait_ms, mut ideal_within) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut violations, mut events, mut first_violation) = (0u64, 0u64, None);
    for r in reports {
        violations += r.violations.len() as u64;
        if first_violation.is_none() {
            first_violation = r.violations.first().map(|v| format!("seed {}: {v}", r.seed));
        }
        events += r.events;
        let Some(ideal) = &r.mmc_reference else { continue };
        calls += r.calls.answered_waits;
        sim_wait_ms += r.calls.wait_sum_ms;
        sim_within += r.calls.within_20s;
        ideal_wait_ms += ideal.wait_sum_ms;
        ideal_within += ideal.within_20s;
    }
    let per_call = |total: u64| if calls == 0 { f64::NAN } else { total as f64 / calls as f64 };
    let simulated = Figures { asa_s: per_call(sim_wait_ms) / 1_000.0, service_level: per_call(sim_within) };
    let ideal = Figures { asa_s: per_call(ideal_wait_ms) / 1_000.0, service_level: per_call(ideal_within) };
    let estimate = Figures {
        asa_s: erlang_c.asa_s + simulated.asa_s - ideal.asa_s,
        service_level: erlang_c.service_level + simulated.service_level - ideal.service_level,
    };
    let relative = |got: f64, want: f64| got / want - 1.0;
    MmcValidation {
        spec: spec.clone(),
        operators,
        offered_load_erlangs: a,
        arrivals_per_hour: a * 3_600.0 / spec.aht_s,
        calls,
        erlang_c,
        simulated,
        ideal_same_callers: ideal,
        estimate,
        asa_relative_error: relative(estimate.asa_s, erlang_c.asa_s),
        service_level_relative_error: relative(estimate.service_level, erlang_c.service_level),
        raw_asa_relative_error: relative(simulated.asa_s, erlang_c.asa_s),
        raw_service_level_relative_error: relative(simulated.service_level, erlang_c.service_level),
        violations,
        first_violation,
        events,
        wall_ms: started.elapsed().as_millis() as u64,
    }
}
