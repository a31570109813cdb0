//! Executes a site controller's ARI requests against the stand-in's world, without HTTP.

use lineup_ari::{AriError, ChannelId, HangupReason, Media};
use lineup_pbx_sim::{BoxIndex, OriginateParams, PbxWorld};
use lineup_site::AriRequest;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Executes one ARI request against the stand-in (the REST face, without HTTP).
pub fn execute_ari(w: &mut PbxWorld, at: BoxIndex, request: &AriRequest) -> Result<(), AriError> {
    let ids = |channels: &[ChannelId]| channels.iter().map(|c| c.as_str().to_string()).collect::<Vec<_>>();
    match request {
        AriRequest::Answer(c) => w.answer(at, c.as_str()),
        AriRequest::Hangup(c, reason) => {
            let cause = if *reason == HangupReason::Normal { 16 } else { 17 };
            match w.hangup_channel(at, c.as_str(), cause) {
                Err(AriError::NotFound { .. }) => Ok(()),
                other => other,
            }
        }
        AriRequest::StartMoh { channel, class } => w.start_moh(at, channel.as_str(), class.as_deref()),
        AriRequest::StopMoh(c) => w.stop_moh(at, c.as_str()),
        AriRequest::Play { channel, playback, media } => {
            let uris: Vec<String> = media.iter().map(Media::to_string).collect();
            w.play(at, channel.as_str(), Some(playback), &uris).map(|_| ())
        }
        AriRequest::StopPlayback(p) => w.stop_playback(at, p.as_str()),
        AriRequest::Originate(o) => w.originate(at, &originate_params(o)).map(|_| ()),
        AriRequest::Snoop(s) => w.snoop(at, s.channel.as_str(), &snoop_params(s)).map(|_| ()),
        AriRequest::CreateBridge(b) => {
            w.create_bridge(at, Some(b.bridge_type.as_str()), Some(b.bridge_id.as_str()), b.name.as_deref()).map(|_| ())
        }
        AriRequest::AddChannels { bridge, channels } => w.add_channels(at, bridge.as_str(), &ids(channels)),
        AriRequest::RemoveChannels { bridge, channels } => w.remove_channels(at, bridge.as_str(), &ids(channels)),
        AriRequest::DestroyBridge(b) => w.destroy_bridge(at, b.as_str()),
        AriRequest::Continue { channel, variables, target } => {
            for (name, value) in variables {
                w.set_variable(at, channel.as_str(), name, value)?;
            }
            w.continue_in_dialplan(
                at,
                channel.as_str(),
                target.context.clone(),
                target.extension.clone(),
                target.priority,
            )
        }
        AriRequest::MarkQueued(c) => match w.set_variable(at, c.as_str(), lineup_site::QUEUED_VARIABLE, "1") {
            Err(AriError::NotFound { .. }) => Ok(()),
            other => other,
        },
        AriRequest::DeleteMissedRecord { key, .. } => {
            w.set_asterisk_variable(at, &lineup_site::missed_delete_variable(key), "")
        }
    }
}

/// Reads made so far: makes each reader channel's id unique within the process.
static MISSED_READS: AtomicU64 = AtomicU64::new(0);

/// `Action::ReadMissedRecords` against the stand-in, as the driver does it: a reader channel
/// created into the `lineup` application (its `StasisStart` reaches the site like any
/// other), `DB_KEYS(lineup-missed)` read on it, the reader hung up whatever the read gave;
/// at most `max` keys.
pub fn read_missed_records(w: &mut PbxWorld, at: BoxIndex, max: usize) -> Result<Vec<String>, AriError> {
    let reader = lineup_site::missed_reader_channel_id(w.now_ms(), MISSED_READS.fetch_add(1, Ordering::Relaxed));
    let request = missed_reader_request(&reader);
    w.create_channel(at, &request)?;
    let keys = w.get_variable(at, reader.as_str(), &lineup_site::missed_keys_variable());
    match w.hangup_channel(at, reader.as_str(), 16) {
        Ok(()) | Err(AriError::NotFound { .. }) => {}
        Err(error) => return Err(error),
    }
    Ok(lineup_site::split_db_keys(&keys?).into_iter().take(max).collect())
}

/// `POST /channels/create` of the reader channel `reader`, as the driver sends it.
pub fn missed_reader_request(reader: &ChannelId) -> OriginateParams {
    OriginateParams {
        endpoint: lineup_site::MISSED_READER_ENDPOINT.to_string(),
        app: Some(lineup_ari::stasis_args::CALLER_APPLICATION.to_string()),
        app_args: vec![lineup_ari::stasis_args::MISSED_READER_ARGUMENT.to_string()],
        context: None,
        extension: None,
        priority: None,
        channel_id: Some(reader.clone()),
        other_channel_id: None,
        caller_id: None,
        timeout_s: None,
        variables: BTreeMap::new(),
    }
}

/// The stand-in's originate parameters for an ARI originate.
fn originate_params(o: &lineup_ari::OriginateRequest) -> OriginateParams {
    let (app, app_args) = match &o.target {
        lineup_ari::OriginateTarget::Application { app, app_args } => {
            (Some(app.as_str().to_string()), app_args.clone())
        }
        lineup_ari::OriginateTarget::Dialplan { .. } => (None, vec![]),
    };
    OriginateParams {
        endpoint: o.endpoint.as_str().to_string(),
        app,
        app_args,
        context: None,
        extension: None,
        priority: None,
        channel_id: o.channel_id.clone(),
        other_channel_id: None,
        caller_id: o.caller_id.clone(),
        timeout_s: o.timeout_s.map(i64::from),
        variables: o.variables.clone(),
    }
}

fn snoop_params(s: &lineup_ari::SnoopRequest) -> lineup_pbx_sim::world::SnoopParams {
    lineup_pbx_sim::world::SnoopParams {
        app: s.app.as_str().to_string(),
        app_args: s.app_args.clone(),
        spy: s.spy,
        whisper: s.whisper,
        snoop_id: s.snoop_id.clone(),
    }
}
