//! lineup-site: a site's call control, as a sans-IO state machine.
//!
//! ARI events and committed cluster effects go in ([`Input`]); ARI requests, proposals and
//! PIN checks come out ([`Action`]). A driver executes actions (over `lineup_ari::Ari` and
//! the cluster) and feeds results back; the simulator drives the same controller in virtual
//! time. The controller has no IO, no clock and no async; the thin async runner for
//! production (wall clock, ARI over HTTP, the cluster) is the `lineup-site-driver` crate.
//! From `lineup-ari` this crate uses only the ARI model and event types.
//!
//! Flows: caller entry (`Stasis(lineup,queue=Q[,gate=G][,priority=P])`: answer, hold music,
//! Enqueue; bad entries back to the dialplan with `LINEUP_RESULT=INVALID`), announcements
//! (stock queue-* sounds, hold music resumed after each), exit keys, abandon, dialplan exits
//! (TIMEOUT/FULL/CLOSED/EMPTY), callback acceptance (committed before the confirmation
//! plays), same-site offers in persistent and ring mode (whisper first, `mixing,dtmf_events`
//! bridge, fenced), completion on either side, operator PIN login (digits ended by `#` or
//! silence, a key stops the prompt, argon2 check delegated, three tries, lockout, `#` alone
//! logs out and hangs up the operator's persistent leg), monitoring of connected calls by a
//! supervisor (listen, whisper, barge through an ARI snoop channel on the operator's leg).
//!
//! Invariants: an Offer or CancelOffer older than the newest fence executed for its call or
//! operator is refused (site-side fencing); a caller channel in Stasis is always tracked
//! until it leaves (no caller is left in Stasis); every proposal keeps its command id across
//! retries (the core deduplicates).

mod controller;
mod io;
mod pin;
pub mod prompts;

pub use controller::{
    is_missed_reader, missed_delete_variable, missed_keys_variable, missed_origin, missed_reader_channel_id,
    split_db_keys, SiteConfig, SiteController, SiteCounters, DIGIT_TIMEOUT_MS, EARLY_TRUNK_WAIT_MS, FALLBACK_WATCH_MS,
    LOGIN_ATTEMPTS_MAX, MISSED_CALLER_NUMBER_MAX_CHARS, MISSED_FAMILY, MISSED_KEY_FIELDS_COUNT,
    MISSED_READER_CHANNEL_ID_PREFIX, MISSED_READER_ENDPOINT, MISSED_RECORDS_PER_RECONCILE_MAX,
    MISSED_RECORDS_POLL_INTERVAL_MS, MONITOR_ID_PREFIX, MONITOR_RING_TIMEOUT_S, MONITOR_SESSIONS_MAX,
    MONITOR_TRUNK_WAIT_MS, PROPOSE_RETRIES_MAX, PROPOSE_RETRY_DELAY_MS, QUEUED_VARIABLE, STRANDED_OFFER_RELEASE_MS,
    UNAVAILABLE_RESULT,
};
pub use controller::{monitor_trunk_name, snoop_directions};
pub use io::{Action, AriFailure, AriRequest, Input, ProposeFailure};
pub use pin::{Pin, PinHash};
