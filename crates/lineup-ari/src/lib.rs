//! `lineup-ari`: a thin typed client for the Asterisk REST Interface.
//!
//! Role: the only crate that knows ARI's JSON. Site control (`lineup-site`) talks to its
//! Asterisk through the `Ari` trait and the `AriEvents` stream; the stand-in
//! (`lineup-pbx-sim`) serves the same types over HTTP, and the simulator can put an in-memory
//! implementation behind the same trait.
//!
//! Invariants:
//! - Credentials travel only in the `Authorization` header, never in a URL (`AriConfig`
//!   refuses a base URL with userinfo; `Debug` output redacts the password).
//! - Every id that reaches a URL path is a validated newtype (`ChannelId`, `BridgeId`,
//!   `PlaybackId`, `ApplicationName`): `[A-Za-z0-9._-]`, at most `ID_LENGTH_MAX_BYTES`.
//!   Endpoints, media URIs, DTMF strings and `appArgs` are checked likewise, so no caller
//!   controlled text becomes a second dial string or media URI.
//! - Every buffer is bounded: `EVENT_BUFFER_CAPACITY_EVENTS`, `EVENT_SIZE_MAX_BYTES`,
//!   `DEDUP_WINDOW_EVENTS`, `RESPONSE_SIZE_MAX_BYTES`.
//! - Bad input from Asterisk (malformed JSON, unknown event types) is an error value or a
//!   counter, never a panic.
//! - No queue logic here.
//!
//! Code map:
//! - `ids`: validated identifiers and endpoints.
//! - `model`: `Channel`, `Bridge`, `Playback`, `Application`, media URIs, hangup reasons and
//!   causes, and the typed request parameters.
//! - `event`: `AriEvent` / `EventKind`, parsing that tolerates unknown types, and
//!   `EventDeduplicator` (Asterisk sends one copy per subscribed application).
//! - `rest`: `HttpAri`, the reqwest implementation of `Ari`, with per-request timeouts and
//!   HTTP status -> `AriError` mapping.
//! - `events`: `AriEvents`, the WebSocket reader with jittered reconnect (`ReconnectBackoff`).
//! - `stasis_args`: the dialplan contract, `parse_stasis_entry` (shared with the deploy
//!   snippets' tests and the stand-in).
//! - `basic_auth`: the `Authorization: Basic` header, both directions.

pub mod basic_auth;
pub mod config;
pub mod error;
pub mod event;
pub mod events;
pub mod ids;
pub mod model;
pub mod rest;
pub mod stasis_args;

pub use config::AriConfig;
pub use error::AriError;
pub use event::{AriEvent, EventDeduplicator, EventKind};
pub use events::{AriEvents, EventStreamItem, EventStreamStats};
pub use ids::{ApplicationName, BridgeId, ChannelId, Endpoint, PlaybackId};
pub use model::{
    Application, Bridge, BridgeKind, BridgeType, CallerId, Channel, ChannelState, ContinueTarget, CreateBridgeRequest,
    CreateChannelRequest, DialRequest, DialplanLocation, HangupReason, Media, OriginateRequest, OriginateTarget,
    Playback, PlaybackState, SnoopDirection, SnoopRequest,
};
pub use rest::HttpAri;
pub use stasis_args::{parse_stasis_entry, StasisEntry};

use std::future::Future;

/// The ARI operations Lineup uses, and its events stream. `HttpAri` implements it over HTTP
/// and the events WebSocket; the stand-in's `InMemoryAri` implements it with no sockets.
///
/// Every method is one ARI request; none retries. A `Timeout` leaves the outcome unknown:
/// read state back (`get_channel`, `list_bridges`) rather than repeating the request.
pub trait Ari: Send + Sync {
    /// Opens the events stream for `applications` (each owned by one consumer at a time, as
    /// Asterisk allows). Must be called inside a tokio runtime.
    fn subscribe_events(&self, applications: &[ApplicationName]) -> Result<AriEvents, AriError>;
    /// `POST /channels/{id}/answer`.
    fn answer(&self, channel: &ChannelId) -> impl Future<Output = Result<(), AriError>> + Send;
    /// `DELETE /channels/{id}?reason=`. A 404 means the channel was already gone.
    fn hangup(&self, channel: &ChannelId, reason: HangupReason) -> impl Future<Output = Result<(), AriError>> + Send;
    /// `POST /channels/{id}/ring`.
    fn ring(&self, channel: &ChannelId) -> impl Future<Output = Result<(), AriError>> + Send;
    /// `POST /channels/{id}/play[/{playbackId}]?media=a,b,c`. Pauses hold music for good.
    fn play(
        &self,
        channel: &ChannelId,
        playback: Option<&PlaybackId>,
        media: &[Media],
    ) -> impl Future<Output = Result<Playback, AriError>> + Send;
    /// `DELETE /playbacks/{id}`.
    fn stop_playback(&self, playback: &PlaybackId) -> impl Future<Output = Result<(), AriError>> + Send;
    /// `POST /channels/{id}/moh[?mohClass=]`.
    fn start_moh(&self, channel: &ChannelId, class: Option<&str>) -> impl Future<Output = Result<(), AriError>> + Send;
    /// `DELETE /channels/{id}/moh`.
    fn stop_moh(&self, channel: &ChannelId) -> impl Future<Output = Result<(), AriError>> + Send;
    /// `POST /channels/{id}/dtmf?dtmf=`.
    fn send_dtmf(&self, channel: &ChannelId, digits: &str) -> impl Future<Output = Result<(), AriError>> + Send;
    /// `POST /channels` (originate).
    fn originate(&self, request: &OriginateRequest) -> impl Future<Output = Result<Channel, AriError>> + Send;
    /// `POST /channels/create`.
    fn create_channel(&self, request: &CreateChannelRequest) -> impl Future<Output = Result<Channel, AriError>> + Send;
    /// `POST /channels/{id}/snoop`: a snoop channel (already up) entering the request's
    /// application; it ends when the snooped channel ends.
    fn snoop(&self, request: &SnoopRequest) -> impl Future<Output = Result<Channel, AriError>> + Send;
    /// `POST /channels/{id}/dial`.
    fn dial(&self, channel: &ChannelId, request: &DialRequest) -> impl Future<Output = Result<(), AriError>> + Send;
    /// Sets `variables` on the channel, then `POST /channels/{id}/continue`.
    fn continue_in_dialplan(
        &self,
        channel: &ChannelId,
        target: &ContinueTarget,
        variables: &[(String, String)],
    ) -> impl Future<Output = Result<(), AriError>> + Send;
    /// `GET /channels/{id}/variable?variable=`.
    fn get_variable(&self, channel: &ChannelId, name: &str) -> impl Future<Output = Result<String, AriError>> + Send;
    /// `POST /channels/{id}/variable?variable=&value=`.
    fn set_variable(
        &self,
        channel: &ChannelId,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), AriError>> + Send;
    /// `GET /channels/{id}`.
    fn get_channel(&self, channel: &ChannelId) -> impl Future<Output = Result<Channel, AriError>> + Send;
    /// `GET /channels`.
    fn list_channels(&self) -> impl Future<Output = Result<Vec<Channel>, AriError>> + Send;
    /// `POST /bridges?type=&bridgeId=&name=`. A 409 means the id exists (a retry).
    fn create_bridge(&self, request: &CreateBridgeRequest) -> impl Future<Output = Result<Bridge, AriError>> + Send;
    /// `POST /bridges/{id}/addChannel?channel=a,b`.
    fn add_channels(
        &self,
        bridge: &BridgeId,
        channels: &[ChannelId],
    ) -> impl Future<Output = Result<(), AriError>> + Send;
    /// `POST /bridges/{id}/removeChannel?channel=a,b`.
    fn remove_channels(
        &self,
        bridge: &BridgeId,
        channels: &[ChannelId],
    ) -> impl Future<Output = Result<(), AriError>> + Send;
    /// `DELETE /bridges/{id}`.
    fn destroy_bridge(&self, bridge: &BridgeId) -> impl Future<Output = Result<(), AriError>> + Send;
    /// `GET /bridges/{id}`.
    fn get_bridge(&self, bridge: &BridgeId) -> impl Future<Output = Result<Bridge, AriError>> + Send;
    /// `GET /bridges`.
    fn list_bridges(&self) -> impl Future<Output = Result<Vec<Bridge>, AriError>> + Send;
    /// `GET /asterisk/variable?variable=`: a global variable. Asterisk evaluates no function
    /// here (a name such as `DB_KEYS(x)` is looked up as a global and answers ""); functions
    /// are read on a channel with [`Ari::get_variable`].
    fn asterisk_variable(&self, name: &str) -> impl Future<Output = Result<String, AriError>> + Send;
    /// `POST /asterisk/variable?variable=&value=`: sets a global variable, or writes a
    /// dialplan function when the name ends with `)` (`DB_DELETE(family/key)` deletes the
    /// entry). Asterisk answers 204 even when the function refused the write.
    fn set_asterisk_variable(&self, name: &str, value: &str) -> impl Future<Output = Result<(), AriError>> + Send;
    /// `GET /applications/{name}`.
    fn get_application(
        &self,
        application: &ApplicationName,
    ) -> impl Future<Output = Result<Application, AriError>> + Send;
}
