//! Actions out: ARI requests, playbacks, dialplan returns and reconcile requests, each
//! under a token that records what its result is for.

use super::config::ORPHAN_RECONCILE_INTERVAL_MS;
use super::SiteController;
use crate::io::{Action, AriRequest};
use lineup_ari::{ChannelId, ContinueTarget, Media, PlaybackId};
use lineup_core::{CallId, Command};

#[derive(Debug, Clone)]
pub(super) enum Pending {
    /// A proposal whose result matters, plus what to do about it.
    Proposal {
        command: Command,
        purpose: Purpose,
        attempts: u32,
        retry_at_ms: Option<u64>,
    },
    /// An ARI request whose failure matters.
    AriOffer {
        call: CallId,
        fence: u64,
    },
    /// A request about one channel: a 404 means Asterisk no longer has it.
    AriChannel {
        channel: ChannelId,
    },
    AriOther,
    /// An ARI request of a monitoring session: a failure ends the session.
    AriMonitor {
        session: u64,
    },
    Pin {
        channel: ChannelId,
    },
}

#[derive(Debug, Clone)]
pub(super) enum Purpose {
    Enqueue {
        channel: ChannelId,
    },
    Login {
        channel: ChannelId,
    },
    Logout {
        channel: ChannelId,
    },
    Callback {
        channel: ChannelId,
    },
    Connected {
        call: CallId,
        fence: u64,
    },
    /// A callback's callee answered and is bridged with the operator.
    CallbackAnswered {
        call: CallId,
        fence: u64,
    },
    /// A half-built callback was taken down after a restart (`OfferFailed`).
    CallbackTakenDown {
        call: CallId,
        fence: u64,
    },
    /// Nothing to do with the result (Abandoned, Completed, RingNoAnswer, ...).
    Report,
    /// A missed caller's AstDB record, deleted once the command has its result.
    Missed {
        key: String,
    },
}

impl SiteController {
    pub(super) fn token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    pub(super) fn ari(&mut self, request: AriRequest) {
        let token = self.token();
        let pending = match request.channel() {
            Some(channel) if !matches!(request, AriRequest::Originate(_)) => {
                Pending::AriChannel { channel: channel.clone() }
            }
            _ => Pending::AriOther,
        };
        self.pending.insert(token, pending);
        self.out.push(Action::Ari { token, request });
    }

    pub(super) fn ari_for_offer(&mut self, request: AriRequest, call: &CallId, fence: u64) {
        let token = self.token();
        self.pending.insert(token, Pending::AriOffer { call: call.clone(), fence });
        self.out.push(Action::Ari { token, request });
    }

    pub(super) fn play(&mut self, channel: &ChannelId, media: Vec<Media>) -> Option<PlaybackId> {
        let playback = PlaybackId::new(format!("pb-{}-{}", self.cfg.site.0, self.next_playback)).ok()?;
        self.next_playback += 1;
        self.playbacks.insert(playback.clone(), channel.clone());
        self.ari(AriRequest::Play { channel: channel.clone(), playback: playback.clone(), media });
        Some(playback)
    }

    pub(super) fn start_moh(&mut self, channel: &ChannelId) {
        self.ari(AriRequest::StartMoh { channel: channel.clone(), class: self.cfg.moh_class.clone() });
    }

    pub(super) fn continue_with(&mut self, channel: &ChannelId, result: &str, extra: Vec<(String, String)>) {
        let mut variables = vec![("LINEUP_RESULT".to_string(), result.to_string())];
        variables.extend(extra);
        self.ari(AriRequest::Continue {
            channel: channel.clone(),
            target: ContinueTarget { context: None, extension: None, priority: None },
            variables,
        });
    }

    /// The cluster speaks of a caller of this site that this controller does not track: its
    /// leg was forgotten or never seen (events lost; an Enqueue whose outcome was unknown
    /// committed after all), so nobody would ever report how the call ends. Ask Asterisk
    /// (a reconcile adopts the caller if still there, or reports that it left), at most
    /// once per `ORPHAN_RECONCILE_INTERVAL_MS`.
    pub(super) fn untracked_caller(&mut self) {
        if self.orphan_reconcile_at_ms.is_some_and(|at| self.now_ms < at + ORPHAN_RECONCILE_INTERVAL_MS) {
            return;
        }
        self.orphan_reconcile_at_ms = Some(self.now_ms);
        self.counters.orphan_reconciles += 1;
        self.out.push(Action::Reconcile);
    }
}
