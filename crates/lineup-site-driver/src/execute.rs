//! Executing the controller's requests: one ARI request, one PIN check.

use lineup_ari::{Ari, AriError};
use lineup_site::{AriFailure, AriRequest};

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
            ari.asterisk_variable(&lineup_site::missed_delete_variable(key)).await.map(|_| ())
        }
    };
    result.map_err(failure)
}

/// Reads at most `max` missed-caller records (key, value) from the box's AstDB, through ARI's
/// `GET /asterisk/variable` (Asterisk evaluates a name ending with `)` as a function). A key
/// outside the id charset is passed on as it is; the controller drops it with a warning.
pub async fn read_missed_records<A: Ari>(ari: &A, max: usize) -> Result<Vec<(String, String)>, AriError> {
    let keys = ari.asterisk_variable(&lineup_site::missed_keys_variable()).await?;
    let mut records = Vec::new();
    for key in keys.split(',').filter(|key| !key.is_empty()).take(max) {
        // A key no request may carry cannot be read (or deleted) over ARI: hand it on with
        // no value, and the controller drops it with a warning.
        let value = match lineup_ari::ids::validate_asterisk_variable_name(&lineup_site::missed_value_variable(key)) {
            Ok(()) => ari.asterisk_variable(&lineup_site::missed_value_variable(key)).await?,
            Err(_) => String::new(),
        };
        records.push((key.to_string(), value));
    }
    Ok(records)
}

/// Verifies a PIN against an argon2 PHC string (CPU-heavy: call it off the async runtime).
pub fn verify_pin(pin: &str, phc: &str) -> bool {
    use argon2::password_hash::{phc::PasswordHash, PasswordVerifier};
    match PasswordHash::new(phc) {
        Ok(hash) => argon2::Argon2::default().verify_password(pin.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}
