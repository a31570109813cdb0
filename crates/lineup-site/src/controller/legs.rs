//! What the controller tracks per channel: caller legs, persistent operator legs, login
//! sessions and offer executions, and the ids it derives for the legs and bridges it creates.

use super::SiteController;
use lineup_ari::{BridgeId, ChannelId, Media, PlaybackId};
use lineup_core::{CallId, Offer, OperatorId, OperatorMode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CallerState {
    /// Enqueue proposed, result not back yet.
    Entering,
    Waiting,
    /// Being connected or connected, under this fence.
    Offered {
        fence: u64,
    },
    Connected {
        fence: u64,
    },
    /// Handed back to the dialplan or hung up; waiting for StasisEnd.
    Leaving,
}

#[derive(Debug, Clone)]
pub(super) struct CallerLeg {
    pub(super) call: CallId,
    pub(super) number: String,
    pub(super) state: CallerState,
    pub(super) playback: Option<PlaybackId>,
    pub(super) callback_offered: bool,
    /// Hung up while Entering: propose Abandoned once the Enqueue result is known.
    pub(super) hung_up: bool,
    /// Hang up after this playback finishes (callback confirmation).
    pub(super) hangup_after: Option<PlaybackId>,
    /// A prompt waiting for the current one to finish (prompts never overlap).
    pub(super) queued_prompt: Option<Vec<Media>>,
    /// Where the caller is in accepting a callback (confirming or keying the number).
    pub(super) callback_entry: Option<CallbackEntry>,
}

impl CallerLeg {
    pub(super) fn new(call: CallId, number: String, state: CallerState) -> Self {
        Self {
            call,
            number,
            state,
            playback: None,
            callback_offered: false,
            hung_up: false,
            hangup_after: None,
            queued_prompt: None,
            callback_entry: None,
        }
    }

    /// Still waiting in line (an offer may come before the Enqueue's own result: Entering
    /// counts) and not hung up: an offer can be executed for it.
    pub(super) fn can_be_offered(&self) -> bool {
        matches!(self.state, CallerState::Entering | CallerState::Waiting) && !self.hung_up
    }

    /// The caller's part of an offer begins: only from waiting in line.
    pub(super) fn mark_offered(&mut self, fence: u64) {
        debug_assert!(self.can_be_offered(), "offered while {:?}", self.state);
        self.state = CallerState::Offered { fence };
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CallbackEntry {
    /// "We will call you back on <number>: 1 to confirm, 2 for another number."
    Confirming { number: String },
    /// Keying a number, ended by `#` or silence.
    Keying { digits: String, deadline_ms: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OfferStage {
    /// Ring mode: the operator's phone is ringing.
    Ringing,
    /// The gate whisper plays to the operator.
    Whisper,
    /// Both legs are being added to the call bridge.
    Bridging,
    Connected,
}

/// Which half of a connect this site performs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ExecKind {
    /// Caller and operator are both here.
    Local,
    /// The caller is here; the "operator leg" is a trunk call to the operator's site.
    TrunkOut,
    /// The operator is here; the "caller leg" is the trunk call from the caller's site.
    TrunkIn,
    /// A callback promise: the "caller leg" is the call this site places to the number.
    Callback { number: String },
}

#[derive(Debug, Clone)]
pub(super) struct OfferExec {
    pub(super) kind: ExecKind,
    pub(super) call: CallId,
    pub(super) operator: OperatorId,
    pub(super) fence: u64,
    pub(super) caller_channel: ChannelId,
    pub(super) operator_channel: ChannelId,
    pub(super) mode: OperatorMode,
    pub(super) bridge: BridgeId,
    pub(super) stage: OfferStage,
    pub(super) caller_in: bool,
    pub(super) operator_in: bool,
    pub(super) whisper: Option<String>,
    pub(super) whisper_playback: Option<PlaybackId>,
}

impl OfferExec {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        kind: ExecKind,
        offer: &Offer,
        caller_channel: ChannelId,
        operator_channel: ChannelId,
        mode: OperatorMode,
        bridge: BridgeId,
        stage: OfferStage,
        whisper: Option<String>,
    ) -> Self {
        Self {
            kind,
            call: offer.call.clone(),
            operator: offer.operator.clone(),
            fence: offer.fence,
            caller_channel,
            operator_channel,
            mode,
            bridge,
            stage,
            caller_in: false,
            operator_in: false,
            whisper,
            whisper_playback: None,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct OperatorLeg {
    pub(super) holding: BridgeId,
    /// The fence of the offer currently using this leg (with the operator, it names one offer:
    /// an entry that offers several callers gives them all its fence).
    pub(super) busy_with: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LoginStage {
    AskId,
    AskPin,
    Verifying,
    Committing,
    /// Login refused or logout done: hang up after the prompt.
    Closing,
    /// Ring mode logged in: hang up after agent-loginok.
    RingDone,
    /// Persistent: in the holding bridge.
    Holding,
}

#[derive(Clone)]
pub(super) struct LoginSession {
    /// Known from the dialplan (`operator=ID`) or keyed in.
    pub(super) operator: Option<OperatorId>,
    pub(super) operator_from_dialplan: bool,
    pub(super) stage: LoginStage,
    pub(super) digits: String,
    /// When the current digit entry ends by silence.
    pub(super) deadline_ms: Option<u64>,
    pub(super) attempts: u8,
    pub(super) playback: Option<PlaybackId>,
    /// The login call's channel name (`PJSIP/100-0000002a`), for queue_log's AGENTLOGIN.
    pub(super) channel_name: String,
}

/// The digits keyed so far may be a PIN's: `Debug` shows only how many there are.
impl std::fmt::Debug for LoginSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginSession")
            .field("operator", &self.operator)
            .field("operator_from_dialplan", &self.operator_from_dialplan)
            .field("stage", &self.stage)
            .field("digits_keyed", &self.digits.len())
            .field("deadline_ms", &self.deadline_ms)
            .field("attempts", &self.attempts)
            .field("playback", &self.playback)
            .finish()
    }
}

pub(super) fn channel(id: &str) -> Option<ChannelId> {
    ChannelId::new(id).ok()
}

/// The application and arguments a channel in Stasis entered with, from its dialplan place
/// (`Stasis(lineup,queue=sales)` shows as app data `lineup,queue=sales`).
pub(super) fn stasis_app_and_args(ch: &lineup_ari::Channel) -> (String, Vec<String>) {
    let mut parts = ch.dialplan.app_data.split(',').map(str::to_string);
    let application = parts.next().unwrap_or_default();
    (application, parts.collect())
}

impl SiteController {
    /// The id of a bridge or leg this site creates for one offer. One command can make
    /// several offers, all carrying its apply index as their fence, so the fence alone does
    /// not name an offer: `(call, fence)` does. The call id enters as a hash to keep the id
    /// short and inside ARI's charset.
    pub(super) fn offer_leg_id(&self, kind: &str, call: &CallId, fence: u64) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in call.as_str().bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("{kind}-{}-{fence}-{h:016x}", self.cfg.site.0)
    }
}
