//! `lineup-chaos`: the real-process fault harness. Starts the stand-in Asterisk in a process
//! of its own and N real `lineup run` nodes on loopback, drives callers and operators through
//! the stand-in, restarts, kills, pauses or partitions the nodes during live calls, and checks
//! the phones' ground truth and every site's history. Exit code 1 when a check fails.
//!
//! Code map: `setup` (certificates, node files, routing config), `ports` (listener ports
//! below the ephemeral range), `procs` and `nodes` (child
//! processes), `standin` (the stand-in process and its control API), `api` (the nodes'
//! APIs), `workload` (callers), `faults` (the restarts schedule and its measurements),
//! `nemesis` (pauses and partitions), `island` (a site cut until it serves as an island,
//! then healed and merged) and `island_figures` (its figures), `links` (a UDP relay per pair of nodes), `history`
//! (SQLite), `checks` (figures and thresholds), `report`, `run` (the whole run in order).

mod api;
mod ari_links;
mod checks;
mod clocks;
mod disks;
mod faults;
mod fsyncs;
mod history;
mod ingress;
mod island;
mod island_figures;
mod leaders;
mod links;
mod member_kill;
mod nemesis;
mod nodes;
mod order;
mod ports;
mod procs;
mod raft_logs;
mod report;
mod run;
mod services;
mod setup;
mod snapshot_kill;
mod standin;
mod tcp_relay;
mod wait;
mod workload;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Real-process fault harness for Lineup", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Mode {
    /// Serve the stand-in Asterisk (the harness starts itself in this mode).
    StandIn(lineup_pbx_server::standin::server_main::ServerArgs),
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// SIGTERM and kill -9 of the caller's node, the operator's node and the leader, each
    /// during connected calls, then a rolling restart of every node.
    Restarts,
    /// Pauses (SIGSTOP), partitions (symmetric, one-way, flapping), wall-clock skews (hours
    /// ahead, behind, and jumps), ARI socket cuts and full disks of the caller's node, the
    /// operator's node and the leader, database and Redis outages, kill -9 of the leader and
    /// a caller's node while each writes a snapshot, and kill -9 during membership changes
    /// (a spare site added, then removed), during connected calls, round after round.
    Nemesis,
    /// Every fault kind (the nemesis's and the restarts' SIGTERM and kill -9) drawn from the
    /// seed, one after another, at targets drawn from the seed.
    Random,
    /// Real SIP parts in front of the nodes: Kamailio with deploy/kamailio asks them where each
    /// INVITE goes; sipp as the ITSP and as each site's Asterisk. Availability changes, a
    /// silent site and an unreachable one (`--duration` is not used: the phases are fixed).
    Ingress,
    /// One site (not the leader's) cut from the others for a third of the run under load:
    /// it becomes an island, serves its own callers with its own operators, and merges back
    /// at the heal (island mode on at every node).
    Island,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Restarts => "restarts",
            Scenario::Nemesis => "nemesis",
            Scenario::Random => "random",
            Scenario::Ingress => "ingress",
            Scenario::Island => "island",
        }
    }
}

#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// The fault schedule.
    #[arg(long, value_enum, default_value_t = Scenario::Restarts)]
    scenario: Scenario,
    /// Seconds of traffic with faults (the faults are spread over it; setup and drain add to it).
    #[arg(long, default_value_t = 120)]
    duration: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The `lineup` binary (default: beside this one).
    #[arg(long)]
    lineup_bin: Option<PathBuf>,
    /// Seed of the workload (arrivals, talk times, who hangs up) and of `random`'s faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep the run directory (configs, logs, histories) even when every check passes.
    #[arg(long)]
    keep_dir: bool,
    /// Number of sites.
    #[arg(long, default_value_t = 3)]
    sites: u64,
    /// The nodes' log filter (e.g. add `lineup_site=trace` to see every site input, the
    /// channels and bridges each reconcile read among them).
    #[arg(long, default_value = setup::NODE_LOG_LEVEL)]
    log_level: String,
}

fn main() {
    let cli = Cli::parse();
    let outcome = match cli.mode {
        Some(Mode::StandIn(args)) => lineup_pbx_server::standin::server_main::run(args).map(|()| true),
        None => run::run(cli.run),
    };
    match outcome {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(error) => {
            eprintln!("lineup-chaos: {error:#}");
            std::process::exit(2);
        }
    }
}
