//! What goes into and comes out of the site controller. The controller never performs IO:
//! a driver (async, over `lineup_ari::Ari` and the cluster) or the simulator executes the
//! actions and feeds results and events back as inputs.

use crate::pin::{Pin, PinHash};
use lineup_ari::{
    AriEvent, BridgeId, ChannelId, ContinueTarget, CreateBridgeRequest, HangupReason, Media, OriginateRequest,
    PlaybackId, SnoopRequest,
};
use lineup_core::{Command, CommandResult};

/// A request to this site's Asterisk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AriRequest {
    Answer(ChannelId),
    Hangup(ChannelId, HangupReason),
    StartMoh {
        channel: ChannelId,
        class: Option<String>,
    },
    StopMoh(ChannelId),
    /// `playback` is chosen by the controller so PlaybackFinished can be matched.
    Play {
        channel: ChannelId,
        playback: PlaybackId,
        media: Vec<Media>,
    },
    StopPlayback(PlaybackId),
    Originate(OriginateRequest),
    /// A snoop channel on a channel of a connected call (monitoring).
    Snoop(SnoopRequest),
    CreateBridge(CreateBridgeRequest),
    AddChannels {
        bridge: BridgeId,
        channels: Vec<ChannelId>,
    },
    RemoveChannels {
        bridge: BridgeId,
        channels: Vec<ChannelId>,
    },
    DestroyBridge(BridgeId),
    /// Back to the dialplan with channel variables (`LINEUP_RESULT`, ...).
    Continue {
        channel: ChannelId,
        target: ContinueTarget,
        variables: Vec<(String, String)>,
    },
    /// Sets `LINEUP_QUEUED=1` (`QUEUED_VARIABLE`) on a caller's channel once the cluster has
    /// the caller in line: the deploy dialplan's missed-caller handler writes a record for a
    /// caller who was in Stasis without it (its entry never committed) when they hang up.
    MarkQueued(ChannelId),
    /// Deletes the missed-caller record `key`: `POST /asterisk/variable` writing
    /// `DB_DELETE(lineup-missed/KEY)` with an empty value (a write Asterisk allows from ARI;
    /// it answers 204 whether or not the entry existed). `warning` says why a record was
    /// dropped unbooked; the driver logs it.
    DeleteMissedRecord {
        key: String,
        warning: Option<String>,
    },
}

impl AriRequest {
    /// The channel the request is about, if any (for logs and reconcile).
    pub fn channel(&self) -> Option<&ChannelId> {
        match self {
            AriRequest::Answer(c)
            | AriRequest::Hangup(c, _)
            | AriRequest::StartMoh { channel: c, .. }
            | AriRequest::StopMoh(c)
            | AriRequest::Play { channel: c, .. }
            | AriRequest::Continue { channel: c, .. }
            | AriRequest::MarkQueued(c) => Some(c),
            _ => None,
        }
    }
}

/// Why a proposal has no committed result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposeFailure {
    /// Definitely not committed (no leader reachable, refused before the log): safe to retry.
    NotCommitted(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Propose a command to the cluster; answer with `Input::Proposed { token, .. }`.
    Propose { token: u64, command: Command },
    /// Send a request to Asterisk; answer with `Input::AriDone { token, .. }`.
    Ari { token: u64, request: AriRequest },
    /// Verify a PIN against an argon2 PHC string off the async runtime; answer with
    /// `Input::PinVerified { token, .. }`. Neither is shown by `Debug`.
    VerifyPin { token: u64, pin: Pin, phc: PinHash },
    /// List what Asterisk holds (channels, bridges) and answer with `Input::Reconcile`. The
    /// controller asks when the cluster speaks of one of its callers it does not track (a
    /// leg whose last events were lost): only Asterisk can say whether that caller is still
    /// there.
    Reconcile,
    /// Read at most `max` missed-caller record keys from the AstDB and answer with
    /// `Input::MissedRecords`; asked after every reconcile. ARI evaluates functions only on
    /// a channel, so the driver creates a reader channel (`MISSED_READER_ENDPOINT` into the
    /// `lineup` application with the argument `missed-reader`, its id from
    /// `missed_reader_channel_id`), reads `DB_KEYS(lineup-missed)` on it (split with
    /// `split_db_keys`) and always hangs it up. A failed read answers nothing (the next
    /// reconcile asks again).
    ReadMissedRecords { max: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// An event from this site's Asterisk (already deduplicated by the events stream).
    Ari(AriEvent),
    /// Effects committed by the cluster and addressed to this site, with the apply index
    /// ([`lineup_core::ApplyIndex`]) of the command that produced them.
    Effects {
        apply_index: u64,
        effects: Vec<lineup_core::Effect>,
    },
    /// The committed result of a proposal (or a definite failure to commit).
    Proposed {
        token: u64,
        result: Result<CommandResult, ProposeFailure>,
    },
    /// The outcome of an ARI request (`Err` carries the error text; 404 on a hangup is Ok).
    AriDone {
        token: u64,
        result: Result<(), AriFailure>,
    },
    PinVerified {
        token: u64,
        ok: bool,
    },
    /// Time passes (digit timeouts, retries).
    Tick,
    /// What Asterisk holds right now (`GET /channels`, `GET /bridges`), after the events
    /// socket reconnected or the site restarted: events may have been missed.
    Reconcile {
        channels: Vec<lineup_ari::Channel>,
        bridges: Vec<lineup_ari::Bridge>,
    },
    /// The missed-caller record keys read for `Action::ReadMissedRecords` (every field of a
    /// record is in its key; the value is always `1`).
    MissedRecords {
        keys: Vec<String>,
    },
}

/// An ARI request that failed, reduced to what call control decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AriFailure {
    /// 404: the channel, bridge or endpoint is gone.
    Gone(String),
    /// Any other error, including a timeout (outcome unknown: never repeated). A request of an
    /// offer failing either way tears the offer down (`OfferFailed`): the undo is safe
    /// whether or not the request took effect, and the caller waits for a new offer.
    Failed(String),
}
