//! What a site controller is configured with, the limits it keeps, and what it counts.

use lineup_core::SiteId;
use std::collections::BTreeMap;

/// Digits a caller may key to leave the queue, unless configured otherwise.
pub const DEFAULT_EXIT_KEYS: &str = "0";
/// Key that accepts a callback offer, and then confirms the number.
pub const CALLBACK_ACCEPT_KEY: char = '1';
/// Key that asks to enter another number than the caller id.
pub const CALLBACK_OTHER_NUMBER_KEY: char = '2';
/// Silence after which a digit entry (operator id, PIN) ends.
pub const DIGIT_TIMEOUT_MS: u64 = 5_000;
/// Longest digit entry kept (operator id or PIN).
pub const DIGITS_MAX: usize = 16;
/// PIN tries per login call before hanging up.
pub const LOGIN_ATTEMPTS_MAX: u8 = 3;
/// A proposal that definitely did not commit is retried this many times (same command id,
/// so a late duplicate is harmless), this far apart.
pub const PROPOSE_RETRIES_MAX: u32 = 20;
pub const PROPOSE_RETRY_DELAY_MS: u64 = 500;
/// Extra time an outgoing trunk call is given beyond the ring timeout, for the far site to
/// set up its half.
pub const TRUNK_SETUP_GRACE_MS: u64 = 5_000;
/// How long a callback rings the promised number before counting as a failed attempt.
pub const CALLBACK_RING_TIMEOUT_MS: u64 = 30_000;
/// Most tracked channels (callers, operators, logins); beyond it new callers go straight back
/// to the dialplan with LINEUP_RESULT=FAILED.
pub const SITE_CHANNELS_MAX: usize = 50_000;
/// Channels whose end (StasisEnd, ChannelDestroyed) this site saw since its last reconcile,
/// most recent kept. A reconnect's channel list can be older than events handled before it,
/// and must not bring those channels back; a reconnect takes seconds, so a few thousand
/// ends is far more than can fall in that window.
pub const ENDED_CHANNELS_REMEMBERED_MAX: usize = 4_096;
/// A trunk call from the caller's site can arrive before this site has applied the Offer
/// it serves (the caller's site may learn of the commit first, and a call setup can be
/// faster than replication): it is held this long for the Offer before being refused.
pub const EARLY_TRUNK_WAIT_MS: u64 = 5_000;
/// An offer of another site's caller to an operator here waits for that site's trunk call;
/// offer deadlines wait while a site is unreachable, so the operator would stay reserved for
/// the whole outage. Once the caller's site has been unreachable (in the committed state)
/// this long, the operator is freed (`OfferFailed { Interrupted }`, not a miss).
pub const STRANDED_OFFER_RELEASE_MS: u64 = 3_000;
/// Most trunk calls held for their Offer at once; beyond it they are refused at once.
pub const EARLY_TRUNK_LEGS_MAX: usize = 1_024;
/// Operator releases waiting for their grace at once (see `OPERATOR_RELEASE_GRACE_MS`).
pub const RELEASES_DUE_MAX: usize = 1_024;
/// After its side of a connected cross-site call ended, the operator's site waits this long
/// for the caller's site to report the end; if the call is still connected then (the
/// caller's site is silent), it frees its operator itself (`OperatorLegEnded`).
pub const OPERATOR_RELEASE_GRACE_MS: u64 = 2_000;
/// Q.850 causes with which the operator's site itself ends an unanswered trunk call (16
/// normal clearing: it took the offer down and reports why; 19 no answer: the ring ran
/// out). Any other cause is a refusal or a failure on the way, which the caller's site
/// reports at once.
pub const FAR_SITE_REPORTS_CAUSES: [i32; 2] = [16, 19];
/// Most monitoring sessions this site carries at once (as the operator's site or the
/// supervisor's); a monitoring order past it is not carried out.
pub const MONITOR_SESSIONS_MAX: usize = 32;
/// How long the supervisor's phone rings for a monitoring session, in seconds (ARI's unit).
pub const MONITOR_RING_TIMEOUT_S: u64 = 30;
/// How long the supervisor's site waits for the operator's site's monitoring trunk call.
pub const MONITOR_TRUNK_WAIT_MS: u64 = 10_000;
/// Least time between two reconciles the controller asks for itself (see `Action::Reconcile`).
pub const ORPHAN_RECONCILE_INTERVAL_MS: u64 = 5_000;

#[derive(Debug, Clone)]
pub struct SiteConfig {
    pub site: SiteId,
    /// `CommandId::origin` of this site's proposals.
    pub origin: u64,
    /// First serial; it must grow across restarts, so a restarted site never reuses a serial
    /// still in the cluster's dedup window. The node passes the larger of its boot time in µs
    /// and the serial mark stored in its data directory (a clock set back cannot reuse one).
    pub serial_base: u64,
    pub moh_class: Option<String>,
    pub exit_keys: String,
    /// Dial string template per remote site for cross-site connects; `{call}` is replaced by
    /// the call id, e.g. `PJSIP/lineup-{call}@site-b` or `IAX2/site-b/lineup-{call}`.
    pub trunk_endpoints: BTreeMap<SiteId, String>,
    /// Dial string template for callbacks; `{number}` is replaced by the promised number
    /// (already validated by the core: digits with an optional leading `+`), e.g.
    /// `PJSIP/{number}@carrier`. Without it this site's operators cannot serve callbacks.
    pub callback_endpoint: Option<String>,
}

impl SiteConfig {
    pub fn new(site: SiteId, serial_base: u64) -> Self {
        Self {
            site,
            origin: site.0,
            serial_base,
            moh_class: None,
            exit_keys: DEFAULT_EXIT_KEYS.to_string(),
            trunk_endpoints: BTreeMap::new(),
            callback_endpoint: None,
        }
    }
}

/// What the controller counted (for metrics and the simulator's coverage).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteCounters {
    pub callers_entered: u64,
    pub callers_invalid: u64,
    pub offers_executed: u64,
    pub offers_fenced_out: u64,
    /// Operators here freed from an offer whose caller's site fell unreachable before its
    /// trunk call came (`STRANDED_OFFER_RELEASE_MS`).
    pub offers_stranded_released: u64,
    pub bridges_connected: u64,
    pub proposals_retried: u64,
    pub ari_failures: u64,
    pub logins_ok: u64,
    pub logins_failed: u64,
    /// PIN logins that were right but never committed (no quorum through the retries).
    pub logins_not_committed: u64,
    pub events_ignored: u64,
    pub reconciles: u64,
    pub channels_adopted: u64,
    pub events_duplicated: u64,
    /// Reconciles this controller asked for because the cluster spoke of a caller it did
    /// not track.
    pub orphan_reconciles: u64,
    /// Missed-caller records (callers who found this node down) booked in history, or
    /// dropped because the cluster already knew the call.
    pub missed_records_booked: u64,
    /// Monitoring sessions started here, ended here, and monitoring orders not carried out
    /// (the call is not connected here, the same endpoint already monitors it, the site's
    /// sessions are at `MONITOR_SESSIONS_MAX`, or no trunk reaches the supervisor's site).
    pub monitors_started: u64,
    pub monitors_ended: u64,
    pub monitors_refused: u64,
    /// Missed-caller records dropped unreadable or refused (each with a warning).
    pub missed_records_bad: u64,
    /// `StasisStart`s of this site's own missed-caller reader channels, ignored.
    pub missed_readers_ignored: u64,
    /// Reader channels a reconcile found left behind (a run that died mid-read), hung up.
    pub missed_readers_hung_up: u64,
}
