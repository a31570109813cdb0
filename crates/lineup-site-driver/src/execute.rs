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
    };
    result.map_err(failure)
}

/// Verifies a PIN against an argon2 PHC string (CPU-heavy: call it off the async runtime).
pub fn verify_pin(pin: &str, phc: &str) -> bool {
    use argon2::password_hash::{phc::PasswordHash, PasswordVerifier};
    match PasswordHash::new(phc) {
        Ok(hash) => argon2::Argon2::default().verify_password(pin.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}
