//! `lineup-sim`: run seeds of the deterministic federation simulator, or plan staffing.

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use lineup_sim::config::Replication;
use lineup_sim::erlang;
use lineup_sim::sweep::{sweep, SweepSpec, SweepSummary};
use lineup_sim::validate::{validate_mmc, Figures, MmcSpec, MmcValidation};
use lineup_sim::PlantedBug;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "lineup-sim", about = "Deterministic whole-federation simulator and capacity planner")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run seeds with faults and invariant checks; exit code 1 on any violation.
    Run(RunArgs),
    /// M/M/c traffic through the whole federation (no faults) against Erlang C: ASA and
    /// service level, raw and control-variate estimates; exit code 1 beyond --tolerance.
    Validate(ValidateArgs),
    /// Operators needed for a service-level target (Erlang C), with an SVG plot and the
    /// pooled-versus-per-site comparison.
    Plan(PlanArgs),
}

#[derive(Args)]
struct RunArgs {
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Committed client operations per seed before the heal.
    #[arg(long, default_value_t = 20_000)]
    ops: u64,
    /// No fault injection (clean network, no crashes).
    #[arg(long)]
    no_faults: bool,
    /// Plant a bug to test the checkers: skip-fence-check, no-dedup-table, ack-before-commit,
    /// lossy-database, lossy-redis (openraft replication only).
    #[arg(long, default_value = "none")]
    plant: String,
    /// What replicates the core: `model` (the simulator's Raft model, fast) or
    /// `openraft` (lineup-cluster's real nodes over the in-memory transport).
    #[arg(long, default_value = "model")]
    replication: String,
    /// No caller accepts a callback (narrows a failure down).
    #[arg(long)]
    no_callbacks: bool,
    /// Bit mask of fault kinds (bit k: kind k of FAULT_KIND_NAMES); default all.
    #[arg(long, default_value_t = lineup_sim::config::FAULT_KINDS_ALL)]
    fault_kinds: u32,
    /// Worker threads (each seed stays single-threaded and deterministic).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The leader declares a silent member unreachable after this long.
    #[arg(long, default_value_t = lineup_cluster::node::SITE_UNREACHABLE_AFTER_MS)]
    site_unreachable_after_ms: u64,
    /// The leader declares a silent member lost (ending its calls) after this long; 0:
    /// never. 10000 is what Lineup did before unreachable sites existed.
    #[arg(long, default_value_t = lineup_cluster::node::SITE_LOST_AFTER_MS)]
    site_lost_after_ms: u64,
    /// Where traces of failing seeds are written.
    #[arg(long, default_value = "target/lineup-sim-traces")]
    trace_dir: PathBuf,
    /// Print the JSON summary (otherwise a short text summary).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ValidateArgs {
    #[arg(long, default_value_t = 3)]
    sites: usize,
    #[arg(long, default_value_t = 4)]
    operators_per_site: usize,
    /// Utilisation (arrivals × AHT / operators), below 1.
    #[arg(long, default_value_t = 0.85)]
    load: f64,
    #[arg(long, default_value_t = 120.0)]
    aht_s: f64,
    #[arg(long, default_value_t = 5_000)]
    calls_per_seed: u64,
    #[arg(long, default_value_t = 4)]
    seeds: u64,
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Callers who entered in the first this many seconds are not counted.
    #[arg(long, default_value_t = 1_800)]
    warm_up_s: u64,
    /// Write each seed's trace (its last lines) here.
    #[arg(long)]
    trace_dir: Option<PathBuf>,
    /// Largest relative error of the estimate against Erlang C (0.05: 5 %).
    #[arg(long, default_value_t = 0.05)]
    tolerance: f64,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PlanArgs {
    #[arg(long)]
    arrivals_per_hour: f64,
    #[arg(long)]
    aht_s: f64,
    /// `80/20`: 80% answered within 20 seconds.
    #[arg(long, default_value = "80/20")]
    target_sl: String,
    /// Sites: a count (`3`, equal shares) or per-site shares (`50,30,20`).
    #[arg(long, default_value = "1")]
    sites: String,
    #[arg(long, default_value = "lineup-plan.svg")]
    svg: PathBuf,
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Run(args) => run(args),
        Cmd::Validate(args) => validate(args),
        Cmd::Plan(args) => plan(args),
    }
}

/// `run`: a seeded sweep; exit code 1 on any violation.
fn run(args: RunArgs) -> anyhow::Result<()> {
    let json = args.json;
    let summary = sweep(&sweep_spec(args)?);
    print_sweep(&summary, json)?;
    if summary.violations > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// The sweep the options ask for, refusing a planted bug the chosen replication cannot host.
fn sweep_spec(args: RunArgs) -> anyhow::Result<SweepSpec> {
    let plant = args.plant;
    let Some(bug) = PlantedBug::parse(&plant) else { bail!("unknown --plant {plant}") };
    let Some(replication) = Replication::parse(&args.replication) else {
        bail!("unknown --replication {} (model or openraft)", args.replication)
    };
    if replication == Replication::Openraft && matches!(bug, PlantedBug::NoDedupTable | PlantedBug::AckBeforeCommit) {
        bail!("--plant {} lives in the Raft model; use --replication model", bug.name());
    }
    if replication == Replication::Model && matches!(bug, PlantedBug::LossyDatabase | PlantedBug::LossyRedis) {
        bail!("--plant {} needs the history and projection side; use --replication openraft", bug.name());
    }
    Ok(SweepSpec {
        seeds: args.seeds,
        first_seed: args.first_seed,
        ops: args.ops,
        faults: !args.no_faults,
        bug,
        replication,
        callbacks: !args.no_callbacks,
        fault_kinds: args.fault_kinds,
        threads: args.threads,
        site_unreachable_after_ms: args.site_unreachable_after_ms,
        site_lost_after_ms: args.site_lost_after_ms,
        trace_dir: Some(args.trace_dir),
    })
}

/// The sweep's summary on stdout (JSON or one line), and each failing seed on stderr.
fn print_sweep(summary: &SweepSummary, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(summary)?);
    } else {
        println!(
            "{} seeds from {}: {} ops, {} events in {} ms ({:.0} events/s), {} violations",
            summary.seeds,
            summary.first_seed,
            summary.ops,
            summary.events,
            summary.wall_ms,
            summary.events_per_s,
            summary.violations
        );
    }
    for f in &summary.failures {
        eprintln!("seed {} failed: {}", f.seed, f.violations.first().map(String::as_str).unwrap_or(""));
        eprintln!("  reproduce: {}", f.reproduce);
        if let Some(t) = &f.trace_file {
            eprintln!("  trace: {t}");
        }
    }
    Ok(())
}

/// `validate`: M/M/c through the federation against Erlang C; exit code 1 beyond the tolerance.
fn validate(args: ValidateArgs) -> anyhow::Result<()> {
    let ValidateArgs {
        sites,
        operators_per_site,
        load,
        aht_s,
        calls_per_seed,
        seeds,
        first_seed,
        threads,
        warm_up_s,
        trace_dir,
        tolerance,
        json,
    } = args;
    if !(load > 0.0 && load < 1.0 && aht_s > 0.0 && sites > 0 && operators_per_site > 0) {
        bail!("need 0 < --load < 1, a positive AHT, sites and operators");
    }
    let spec = MmcSpec {
        sites,
        operators_per_site,
        load,
        aht_s,
        calls_per_seed,
        seeds,
        first_seed,
        threads,
        warm_up_ms: warm_up_s * 1_000,
        trace_dir,
    };
    let v = validate_mmc(&spec);
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_validation(&v, &spec);
    }
    let within = v.asa_relative_error.abs() <= tolerance && v.service_level_relative_error.abs() <= tolerance;
    if v.violations > 0 || v.calls == 0 || !within {
        std::process::exit(1);
    }
    Ok(())
}

/// The validation's figures as a short table.
fn print_validation(v: &MmcValidation, spec: &MmcSpec) {
    println!(
        "M/M/{}: {:.0} calls/h, AHT {:.0} s, load {:.2}; {} calls counted over {} seeds ({} events, {} ms)",
        v.operators, v.arrivals_per_hour, spec.aht_s, spec.load, v.calls, spec.seeds, v.events, v.wall_ms
    );
    let row = |name: &str, f: &Figures| {
        println!("  {name:<28} ASA {:7.2} s   SL(20 s) {:6.2} %", f.asa_s, f.service_level * 100.0)
    };
    row("Erlang C", &v.erlang_c);
    row("federation (raw)", &v.simulated);
    row("ideal queue, same callers", &v.ideal_same_callers);
    row("federation (estimate)", &v.estimate);
    println!(
        "  estimate vs Erlang C: ASA {:+.2} %, SL {:+.2} % (raw {:+.2} %, {:+.2} %); {} violations",
        v.asa_relative_error * 100.0,
        v.service_level_relative_error * 100.0,
        v.raw_asa_relative_error * 100.0,
        v.raw_service_level_relative_error * 100.0,
        v.violations
    );
    if let Some(first) = &v.first_violation {
        println!("  {first}");
    }
}

/// `plan`: operators for a service-level target, pooled and per site, with an SVG plot.
fn plan(args: PlanArgs) -> anyhow::Result<()> {
    let PlanArgs { arrivals_per_hour, aht_s, target_sl, sites, svg, json } = args;
    let (pct, secs) = target_sl.split_once('/').context("--target-sl looks like 80/20")?;
    let target = pct.trim().parse::<f64>().context("service level percent")? / 100.0;
    let t_s: f64 = secs.trim().parse().context("answer time in seconds")?;
    let shares = site_shares(&sites)?;
    if !(arrivals_per_hour > 0.0 && aht_s > 0.0 && target > 0.0 && target < 1.0 && t_s >= 0.0) {
        bail!("need positive arrivals and AHT, and a target between 0 and 100%");
    }
    let plan = erlang::plan(arrivals_per_hour, aht_s, target, t_s, &shares);
    std::fs::write(&svg, erlang::plot_svg(&plan)).with_context(|| format!("writing {}", svg.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    println!(
        "{:.0} calls/h, AHT {:.0} s ({:.2} Erlangs), target {:.0}% in {:.0} s",
        arrivals_per_hour,
        aht_s,
        plan.offered_load_erlangs,
        target * 100.0,
        t_s
    );
    print_plan(&plan, shares.len());
    println!("plot: {}", svg.display());
    Ok(())
}

/// `--sites`: a count (equal shares) or comma-separated shares.
fn site_shares(sites: &str) -> anyhow::Result<Vec<f64>> {
    Ok(if sites.contains(',') {
        sites.split(',').map(|s| s.trim().parse::<f64>()).collect::<Result<_, _>>().context("--sites shares")?
    } else {
        vec![1.0; sites.trim().parse::<usize>().context("--sites count")?.max(1)]
    })
}

/// The pooled and per-site operator counts of a plan.
fn print_plan(plan: &erlang::Plan, site_count: usize) {
    println!(
        "one queue across {} site(s): {} operators (SL {:.1}%, ASA {:.1} s)",
        site_count,
        plan.pooled.operators,
        plan.pooled.service_level * 100.0,
        plan.pooled.asa_s
    );
    for (i, s) in plan.per_site.iter().enumerate() {
        println!(
            "  separate queue at site {}: {:.0} calls/h -> {} operators (SL {:.1}%)",
            i + 1,
            s.arrivals_per_hour,
            s.operators,
            s.service_level * 100.0
        );
    }
    println!(
        "per-site queues need {} operators; pooling saves {}",
        plan.per_site_total_operators, plan.operators_saved_by_pooling
    );
}
