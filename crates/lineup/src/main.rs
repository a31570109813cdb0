//! The `lineup` binary: command line and glue only. The node is assembled by lineup-node, the
//! benchmarks are lineup-bench, the demo is lineup-demo.

mod api_client;
mod api_http;
mod cli_backup;
mod cli_bench;
mod cli_call;
mod cli_cluster;
mod cli_demo;
mod cli_operator;
mod cli_queue;
mod cli_report;
mod config_file;
mod node_config;
mod operator;
mod run;
mod service;
mod token;
mod utc_time;

use clap::{Parser, Subcommand};

/// Counts live heap bytes for the benchmarks' memory figures (`lineup bench core|api`).
#[global_allocator]
static ALLOCATOR: lineup_bench::CountingAllocator = lineup_bench::CountingAllocator;

#[derive(Parser)]
#[command(name = "lineup", version, about = "Multi-site call-queue router for Asterisk")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run this site's node: cluster member, site control over ARI, history, API.
    Run(run::RunArgs),
    /// Routing config: apply a file through any node, or export the one in force.
    Config {
        #[command(subcommand)]
        what: api_client::ConfigCommand,
    },
    /// Raft membership: add or remove a site at run time (through the leader's API).
    Cluster {
        #[command(subcommand)]
        what: api_client::ClusterCommand,
    },
    /// Save the cluster's committed routing state to a file, through any node's API.
    Backup(cli_backup::BackupArgs),
    /// Seed a new node's data directory from a backup file, so a new cluster starts from it.
    Restore(cli_backup::RestoreArgs),
    /// Members, leader, lag, queues and operators, from any node's API.
    Status(api_client::StatusArgs),
    /// Queues as app_queue's `queue show` lists them, across all sites.
    Queue {
        #[command(subcommand)]
        what: cli_queue::QueueCommand,
    },
    /// Waiting callers: move to another queue, change priority.
    Call {
        #[command(subcommand)]
        what: cli_call::CallCommand,
    },
    /// Interval reports from the history database (per queue or per operator), through any
    /// node's API: a table, or CSV.
    Report {
        #[command(subcommand)]
        what: cli_report::ReportCommand,
    },
    /// Operators: hash a PIN; pause, unpause, log out; add to or remove from a queue.
    Operator {
        #[command(subcommand)]
        what: operator::OperatorCommand,
    },
    /// API tokens: make a new one (and the hash a node config may hold instead).
    Token {
        #[command(subcommand)]
        what: token::TokenCommand,
    },
    /// Three sites in one process: Raft over QUIC on loopback, three Asterisk stand-ins
    /// joined by trunks, simulated callers and operators.
    Demo(cli_demo::DemoArgs),
    /// Cluster certificates (a CA, then one certificate per site).
    Certs {
        #[command(subcommand)]
        what: cli_cluster::CertsCommand,
    },
    /// Measure a part of Lineup and print the figures.
    Bench {
        #[command(subcommand)]
        what: cli_bench::BenchTarget,
    },
}

/// A failed command prints its error and the chain of causes as sentences (never Rust's
/// Debug form, never a backtrace: those are for bugs, and a user's mistake is not one) and
/// exits with status 1.
fn main() -> std::process::ExitCode {
    match run_command(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", user_message(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `error` and its causes, outermost first, joined by ": ".
fn user_message(error: &anyhow::Error) -> String {
    format!("{error:#}")
}

fn run_command(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Operator { what } => operator::operator(&what),
        Command::Queue { what } => cli_queue::queue(&what),
        Command::Call { what } => cli_call::call(&what),
        Command::Token { what } => token::token(&what),
        Command::Config { what } => api_client::config(&what),
        Command::Status(args) => api_client::status(&args),
        Command::Report { what } => cli_report::report(&what),
        Command::Cluster { what } => api_client::cluster(&what),
        Command::Backup(args) => cli_backup::backup(&args),
        Command::Restore(args) => cli_backup::restore(&args),
        Command::Demo(args) => cli_demo::demo(&args),
        Command::Certs { what } => cli_cluster::certs(&what),
        Command::Bench { what } => cli_bench::bench(&what),
    }
}
