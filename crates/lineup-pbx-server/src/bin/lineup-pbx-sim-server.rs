//! `lineup-pbx-sim-server`: the Asterisk stand-in as a process of its own (a real Asterisk
//! outlives its Lineup node). Serves `--boxes` boxes joined by trunks over real ARI, one
//! port per box, running `--dialplan`, plus the control API of `lineup_pbx_sim::standin`.
//! The ARI password comes from the environment variable named by `--ari-password-env`.

use clap::Parser;
use lineup_pbx_server::standin::server_main::{run, ServerArgs};

#[derive(Parser)]
#[command(about = "The Asterisk stand-in, served over real ARI in its own process")]
struct Cli {
    #[command(flatten)]
    args: ServerArgs,
}

fn main() -> anyhow::Result<()> {
    run(Cli::parse().args)
}
