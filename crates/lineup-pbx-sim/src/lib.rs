//! `lineup-pbx-sim`: the Asterisk stand-in. CI has no Asterisk, so Lineup's call control is
//! tested against this model of one, which follows a recording of a real Asterisk 22.
//!
//! Role: one model, two faces — the same world drives the in-process tests and, behind real
//! HTTP and WebSocket (the `lineup-pbx-server` crate), the processes of the demo and the
//! chaos harness. This crate is the sans-IO half: no tokio, no axum, no sockets.
//! - `PbxWorld` is sans-IO: boxes (one per site), channels, Local pairs, trunks between
//!   boxes, bridges, playbacks with realistic durations, DTMF queued behind a playing prompt,
//!   hold music, hangup causes, and scripted humans (callers with patience and keys,
//!   operators keying a PIN or answering ring-mode calls). Time is passed in
//!   (`advance_to`), events come out (`drain_outputs`); the deterministic simulator drives it
//!   directly.
//!
//! Invariants:
//! - The model never reads a clock, never sleeps, never opens a socket; iteration order is
//!   deterministic (BTreeMap everywhere), so the same calls give the same events.
//! - Errors answer with Asterisk's status codes and `{"message": ...}` bodies (`rest`).
//! - Every collection is bounded by a named constant (`CHANNELS_PER_BOX_MAX_COUNT`,
//!   `CONTROL_QUEUE_MAX_COMMANDS`, `PENDING_OUTPUTS_MAX_COUNT`, `TIMERS_MAX_COUNT`, ...).
//! - A channel's record and its box's bridges agree on where it is (checked by
//!   `debug_assert!` on both sides of every join and leave).
//! - The dialplan it runs is the one users deploy (`deploy/asterisk/extensions.conf` parses
//!   with `dialplan::Dialplan`), and Stasis arguments go through `lineup_ari::stasis_args`.
//!
//! Code map:
//! - `world`: `PbxWorld`, the model and its ARI operations; `PhoneCall`, `PhoneBehaviour`,
//!   `ScriptedKeys` script the humans; `AudioPath` says who hears what; `EndedChannel` is what
//!   a destroyed channel left behind (final dialplan location, cause, variables), like a CDR.
//! - `rest`: `handle_rest`, ARI's REST surface over the model (shared by the server and the
//!   recording replay test).
//! - `dialplan`: the `extensions.conf` subset the stand-in executes (labels, `Goto`,
//!   `GotoIf`, hold music, Stasis with `STASISSTATUS`); `expression`: `${...}` substitution
//!   and the `$[...]` expressions it evaluates.
//! - `truth`: the ground truth the chaos harness's stand-in keeps from the world (operators
//!   in two calls, legs torn down by what) and its scripted humans' schedule.
//! - `sounds`: prompt lengths; `time`: Asterisk's timestamp format.

pub mod dialplan;
pub mod error;
pub mod expression;
pub mod rest;
pub mod sounds;
pub mod time;
pub mod truth;
pub mod world;

pub use dialplan::Dialplan;
pub use error::SimError;
pub use rest::{handle_rest, RestParams, RestReply};
pub use world::{
    federated_sites, AudioPath, BoxConfig, BoxIndex, EndedBy, EndedChannel, OriginateParams, PbxWorld, PhoneBehaviour,
    PhoneCall, ScriptedKeys, TrunkRoute, WorldOutput,
};
