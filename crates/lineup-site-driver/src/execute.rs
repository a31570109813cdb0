//! Executing the controller's requests: one ARI request, one PIN check.

use lineup_ari::{ApplicationName, Ari, AriError, ChannelId, CreateChannelRequest, Endpoint, HangupReason};
use lineup_site::{AriFailure, AriRequest};
use lineup_util::now_ms;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

fn failure(error: AriError) -> AriFailure {
    match error {
        AriError::NotFound { message } => AriFailure::Gone(message),
        other => AriFailure::Failed(other.to_string()),
    }
}

/// Executes one ARI request. A hangup of a channel that is already gone succeeded.
pub async fn execute_ari<A: Ari>(ari: &A, request: &AriRequest) -> Result<(), AriFailure> {
    let result = match request {
        AriRequest::Answer(c) => ari.answer(c).await,
        AriRequest::Hangup(c, reason) => match ari.hangup(c, *reason).await {
            Err(AriError::NotFound { .. }) => Ok(()),
            other => other,
        },
        AriRequest::StartMoh { channel, class } => ari.start_moh(channel, class.as_deref()).await,
        AriRequest::StopMoh(c) => ari.stop_moh(c).await,
        AriRequest::Play { channel, playback, media } => ari.play(channel, Some(playback), media).await.map(|_| ()),
        AriRequest::StopPlayback(p) => ari.stop_playback(p).await,
        AriRequest::Originate(o) => ari.originate(o).await.map(|_| ()),
        AriRequest::Snoop(s) => ari.snoop(s).await.map(|_| ()),
        AriRequest::CreateBridge(b) => ari.create_bridge(b).await.map(|_| ()),
        AriRequest::AddChannels { bridge, channels } => ari.add_channels(bridge, channels).await,
        AriRequest::RemoveChannels { bridge, channels } => ari.remove_channels(bridge, channels).await,
        AriRequest::DestroyBridge(b) => match ari.destroy_bridge(b).await {
            Err(AriError::NotFound { .. }) => Ok(()),
            other => other,
        },
        AriRequest::Continue { channel, target, variables } => {
            ari.continue_in_dialplan(channel, target, variables).await
        }
        AriRequest::MarkQueued(c) => match ari.set_variable(c, lineup_site::QUEUED_VARIABLE, "1").await {
            // Gone already: its hangup handler has run, and the caller's end is reported.
            Err(AriError::NotFound { .. }) => Ok(()),
            other => other,
        },
        AriRequest::DeleteMissedRecord { key, warning } => {
            if let Some(warning) = warning {
                tracing::warn!(%key, %warning, "missed-caller record dropped without booking it");
            }
            // A write of DB_DELETE, which Asterisk allows from ARI (its read is refused there);
            // Asterisk answers 204 whether or not the entry existed.
            ari.set_asterisk_variable(&lineup_site::missed_delete_variable(key), "").await
        }
    };
    result.map_err(failure)
}

/// Reads made so far by this process: with the clock, makes each reader channel's id unique.
static MISSED_READS: AtomicU64 = AtomicU64::new(0);

/// Reads at most `max` missed-caller record keys from the box's AstDB. Asterisk evaluates a
/// dialplan function over ARI only on a channel (`GET /channels/{id}/variable`), and from
/// ARI allows `DB_KEYS` but not `DB()`: every field of a record is in its key. So this creates
/// a reader channel (`Local/s@lineup-missed-reader` into the `lineup` application with the
/// argument `missed-reader`: the controller ignores its `StasisStart`), reads
/// `DB_KEYS(lineup-missed)` on it, and hangs it up whatever the read gave.
pub async fn read_missed_records<A: Ari>(ari: &A, max: usize) -> Result<Vec<String>, AriError> {
    let reader = lineup_site::missed_reader_channel_id(now_ms(), MISSED_READS.fetch_add(1, Ordering::Relaxed));
    let request = CreateChannelRequest {
        endpoint: Endpoint::new(lineup_site::MISSED_READER_ENDPOINT)?,
        app: ApplicationName::new(lineup_ari::stasis_args::CALLER_APPLICATION)?,
        app_args: vec![lineup_ari::stasis_args::MISSED_READER_ARGUMENT.to_string()],
        channel_id: Some(reader.clone()),
        other_channel_id: None,
        originator: None,
        variables: BTreeMap::new(),
    };
    if let Err(error) = ari.create_channel(&request).await {
        // A timeout's outcome is unknown: the channel may exist. The hangup covers that, and
        // a reconcile hangs up any reader still left.
        hang_up_reader(ari, &reader).await;
        return Err(error);
    }
    let keys = ari.get_variable(&reader, &lineup_site::missed_keys_variable()).await;
    hang_up_reader(ari, &reader).await;
    Ok(lineup_site::split_db_keys(&keys?).into_iter().take(max).collect())
}

async fn hang_up_reader<A: Ari>(ari: &A, reader: &ChannelId) {
    match ari.hangup(reader, HangupReason::Normal).await {
        Ok(()) | Err(AriError::NotFound { .. }) => {}
        Err(error) => tracing::warn!(%reader, %error, "missed-caller reader not hung up; the next reconcile does"),
    }
}

/// Verifies a PIN against an argon2 PHC string (CPU-heavy: call it off the async runtime).
pub fn verify_pin(pin: &str, phc: &str) -> bool {
    use argon2::password_hash::{phc::PasswordHash, PasswordVerifier};
    match PasswordHash::new(phc) {
        Ok(hash) => argon2::Argon2::default().verify_password(pin.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}
