//! lineup-site-driver: runs a site's call control ([`lineup_site::SiteController`], sans-IO)
//! against a real Asterisk (any `lineup_ari::Ari` plus its events stream) and the cluster
//! (a [`ClusterPort`]), on tokio.
//!
//! It is the site's only IO: it reads the wall clock, awaits ARI requests in the order the
//! controller gave them (so a bridge exists before channels are added to it), runs
//! proposals concurrently (each returns its committed result or a definite failure),
//! verifies PINs with argon2 on the blocking pool, and reconciles against `GET /channels`
//! and `GET /bridges` at start and after every events reconnect or effect-stream gap. The
//! simulator drives the same controller in virtual time without this crate.
//!
//! - `cluster`: [`ClusterPort`] and [`ClusterFeed`], the cluster as site control sees it.
//! - `execute`: one ARI request ([`execute_ari`]) and one PIN check ([`verify_pin`]).
//! - `run`: [`run_site`], the loop that feeds the controller and executes its actions.

mod cluster;
mod execute;
mod run;

pub use cluster::{ClusterFeed, ClusterPort};
pub use execute::{execute_ari, read_missed_records, verify_pin};
pub use run::{run_site, ACTIONS_PER_INPUT_MAX, DRIVER_RESULTS_CAPACITY, PENDING_ACTIONS_MAX, SITE_TICK_INTERVAL_MS};
