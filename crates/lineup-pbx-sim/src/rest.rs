//! ARI's REST surface over the model: method + path + parameters in, status + JSON out.
//!
//! The HTTP face and the recording replay test both go through `handle_rest`, so what the
//! replay checks is exactly what the server answers. Parameters arrive as ARI accepts them:
//! query string pairs, or keys of a JSON body (`variables` only in the body).

use crate::world::{BoxIndex, OriginateParams, PbxWorld, SnoopParams};
use lineup_ari::{AriError, ChannelId, HangupReason, PlaybackId, SnoopDirection};
use serde_json::Value;
use std::collections::BTreeMap;

/// Most path segments accepted after `/ari`.
const PATH_SEGMENTS_MAX_COUNT: usize = 6;

/// An HTTP answer: status and, unless 204, a JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct RestReply {
    pub status: u16,
    pub body: Option<Value>,
}

impl RestReply {
    fn json<T: serde::Serialize>(status: u16, value: &T) -> RestReply {
        match serde_json::to_value(value) {
            Ok(body) => RestReply { status, body: Some(body) },
            Err(error) => RestReply::error(&AriError::ServerError { message: error.to_string() }),
        }
    }

    fn no_content() -> RestReply {
        RestReply { status: 204, body: None }
    }

    /// Asterisk's error shape: the status and `{"message": ...}`.
    pub fn error(error: &AriError) -> RestReply {
        let status = error.http_status().unwrap_or(500);
        let message = error.ari_message().map(str::to_string).unwrap_or_else(|| error.to_string());
        RestReply { status, body: Some(serde_json::json!({ "message": message })) }
    }
}

/// The request's parameters: query pairs (repeated keys joined with `,`, as ARI treats
/// repeated `media`/`channel`) and the JSON body's keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestParams {
    values: BTreeMap<String, String>,
    variables: BTreeMap<String, String>,
}

impl RestParams {
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> RestParams {
        let mut params = RestParams::default();
        for (key, value) in pairs {
            params
                .values
                .entry(key.to_string())
                .and_modify(|existing| {
                    existing.push(',');
                    existing.push_str(value);
                })
                .or_insert_with(|| value.to_string());
        }
        params
    }

    /// Adds the keys of a JSON body object. Non-string scalars are stringified.
    pub fn merge_body(&mut self, body: &Value) -> Result<(), AriError> {
        let Some(object) = body.as_object() else {
            return Err(AriError::BadRequest { message: "Request body must be a JSON object".into() });
        };
        for (key, value) in object {
            if key == "variables" {
                let variables = value
                    .as_object()
                    .ok_or_else(|| AriError::BadRequest { message: "variables must be an object".into() })?;
                for (name, value) in variables {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        Value::Object(inner) => inner.get("value").and_then(Value::as_str).unwrap_or("").to_string(),
                        other => other.to_string(),
                    };
                    self.variables.insert(name.clone(), text);
                }
                continue;
            }
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Array(items) => items
                    .iter()
                    .map(|item| item.as_str().map(str::to_string).unwrap_or_else(|| item.to_string()))
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            self.values.insert(key.clone(), text);
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str).filter(|value| !value.is_empty())
    }

    fn required(&self, key: &str) -> Result<&str, AriError> {
        self.get(key).ok_or_else(|| AriError::BadRequest { message: format!("Missing parameter {key}") })
    }

    fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|value| value.split(',').map(str::to_string).filter(|item| !item.is_empty()).collect())
            .unwrap_or_default()
    }

    fn integer(&self, key: &str) -> Result<Option<i64>, AriError> {
        match self.get(key) {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| AriError::BadRequest { message: format!("{key} must be an integer") }),
        }
    }

    fn channel_id(&self, key: &str) -> Result<Option<ChannelId>, AriError> {
        match self.get(key) {
            None => Ok(None),
            Some(text) => {
                ChannelId::new(text).map(Some).map_err(|_| AriError::BadRequest { message: format!("Invalid {key}") })
            }
        }
    }
}

fn originate_params(params: &RestParams, channel_id: Option<ChannelId>) -> Result<OriginateParams, AriError> {
    Ok(OriginateParams {
        endpoint: params.required("endpoint")?.to_string(),
        app: params.get("app").map(str::to_string),
        app_args: params.list("appArgs"),
        context: params.get("context").map(str::to_string),
        extension: params.get("extension").map(str::to_string),
        priority: params.integer("priority")?,
        channel_id: match channel_id {
            Some(id) => Some(id),
            None => params.channel_id("channelId")?,
        },
        other_channel_id: params.channel_id("otherChannelId")?,
        caller_id: params.get("callerId").map(str::to_string),
        timeout_s: params.integer("timeout")?,
        variables: params.variables.clone(),
    })
}

fn snoop_params(params: &RestParams) -> Result<SnoopParams, AriError> {
    let direction = |key: &str| {
        SnoopDirection::parse(params.get(key).unwrap_or(""))
            .ok_or_else(|| AriError::BadRequest { message: format!("Invalid direction specified for {key}") })
    };
    Ok(SnoopParams {
        app: params.get("app").unwrap_or("").to_string(),
        app_args: params.list("appArgs"),
        spy: direction("spy")?,
        whisper: direction("whisper")?,
        snoop_id: params.channel_id("snoopId")?,
    })
}

fn hangup_cause(params: &RestParams) -> Result<i32, AriError> {
    match (params.get("reason"), params.get("reason_code")) {
        (Some(_), Some(_)) => {
            Err(AriError::BadRequest { message: "reason and reason_code are mutually exclusive".into() })
        }
        (Some(reason), None) => HangupReason::parse(reason)
            .map(HangupReason::cause_code)
            .ok_or_else(|| AriError::BadRequest { message: "Invalid reason for hangup provided".into() }),
        (None, Some(code)) => {
            code.parse().map_err(|_| AriError::BadRequest { message: "Invalid reason for hangup provided".into() })
        }
        (None, None) => Ok(16),
    }
}

/// Answers one ARI request against box `box_index` at the world's current time.
/// `path` is relative to `/ari` (for example `/channels/1795325224.1/answer`).
pub fn handle_rest(
    world: &mut PbxWorld,
    box_index: BoxIndex,
    method: &str,
    path: &str,
    params: &RestParams,
) -> RestReply {
    match route(world, box_index, method, path, params) {
        Ok(reply) => reply,
        Err(error) => RestReply::error(&error),
    }
}

/// Dispatches on the resource the path names (`channels`, `bridges`, `playbacks`,
/// `applications`, `asterisk/variable`); anything else is not found.
fn route(
    world: &mut PbxWorld,
    b: BoxIndex,
    method: &str,
    path: &str,
    params: &RestParams,
) -> Result<RestReply, AriError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|segment| !segment.is_empty()).collect();
    if segments.len() > PATH_SEGMENTS_MAX_COUNT {
        return Err(resource_not_found());
    }
    match segments.split_first() {
        Some((&"channels", rest)) => channels_route(world, b, method, rest, params),
        Some((&"bridges", rest)) => bridges_route(world, b, method, rest, params),
        Some((&"playbacks", rest)) => playbacks_route(world, b, method, rest),
        Some((&"applications", rest)) => applications_route(world, b, method, rest),
        Some((&"asterisk", ["variable"])) if method == "GET" => {
            let value = world.asterisk_variable(b, params.required("variable")?)?;
            Ok(RestReply::json(200, &serde_json::json!({ "value": value })))
        }
        Some((&"asterisk", ["variable"])) if method == "POST" => world
            .set_asterisk_variable(b, params.required("variable")?, params.get("value").unwrap_or(""))
            .map(|_| RestReply::no_content()),
        _ => Err(resource_not_found()),
    }
}

fn resource_not_found() -> AriError {
    AriError::NotFound { message: "Resource not found".into() }
}

/// An id outside the strict charset cannot name anything: answer as Asterisk would.
fn known_id(what: &str, id: &str) -> Result<(), AriError> {
    lineup_ari::ids::validate_id("id", id).map_err(|_| AriError::NotFound { message: format!("{what} not found") })
}

/// A bridge id a request may create a bridge under.
fn new_bridge_id(id: &str) -> Result<(), AriError> {
    lineup_ari::ids::validate_id("bridge id", id)
        .map_err(|_| AriError::BadRequest { message: "Invalid bridgeId".into() })
}

/// `/channels…`: list, originate, create, get, hang up; `/channels/{id}/…` actions.
fn channels_route(
    world: &mut PbxWorld,
    b: BoxIndex,
    method: &str,
    rest: &[&str],
    params: &RestParams,
) -> Result<RestReply, AriError> {
    match (method, rest) {
        ("GET", []) => Ok(RestReply::json(200, &world.list_channels(b)?)),
        ("POST", []) => Ok(RestReply::json(200, &world.originate(b, &originate_params(params, None)?)?)),
        ("POST", ["create"]) => Ok(RestReply::json(200, &world.create_channel(b, &originate_params(params, None)?)?)),
        ("POST", [id]) => {
            let id = ChannelId::new(*id).map_err(|_| AriError::BadRequest { message: "Invalid channelId".into() })?;
            Ok(RestReply::json(200, &world.originate(b, &originate_params(params, Some(id))?)?))
        }
        ("GET", [id]) => {
            known_id("Channel", id)?;
            Ok(RestReply::json(200, &world.get_channel(b, id)?))
        }
        ("DELETE", [id]) => {
            known_id("Channel", id)?;
            let cause = hangup_cause(params)?;
            world.hangup_channel(b, id, cause)?;
            Ok(RestReply::no_content())
        }
        (_, [id, action @ ..]) => {
            known_id("Channel", id)?;
            channel_action(world, b, method, id, action, params)
        }
        _ => Err(resource_not_found()),
    }
}

/// `/bridges…`: list, create, get, destroy, add and remove channels.
fn bridges_route(
    world: &mut PbxWorld,
    b: BoxIndex,
    method: &str,
    rest: &[&str],
    params: &RestParams,
) -> Result<RestReply, AriError> {
    match (method, rest) {
        ("GET", []) => Ok(RestReply::json(200, &world.list_bridges(b)?)),
        ("POST", []) => {
            let bridge_id = params.get("bridgeId");
            if let Some(id) = bridge_id {
                new_bridge_id(id)?;
            }
            Ok(RestReply::json(200, &world.create_bridge(b, params.get("type"), bridge_id, params.get("name"))?))
        }
        ("POST", [id]) => {
            new_bridge_id(id)?;
            Ok(RestReply::json(200, &world.create_bridge(b, params.get("type"), Some(id), params.get("name"))?))
        }
        ("GET", [id]) => {
            known_id("Bridge", id)?;
            Ok(RestReply::json(200, &world.get_bridge(b, id)?))
        }
        ("DELETE", [id]) => {
            known_id("Bridge", id)?;
            world.destroy_bridge(b, id)?;
            Ok(RestReply::no_content())
        }
        ("POST", [id, "addChannel"]) => {
            known_id("Bridge", id)?;
            world.add_channels(b, id, &params.list("channel"))?;
            Ok(RestReply::no_content())
        }
        ("POST", [id, "removeChannel"]) => {
            known_id("Bridge", id)?;
            world.remove_channels(b, id, &params.list("channel"))?;
            Ok(RestReply::no_content())
        }
        _ => Err(resource_not_found()),
    }
}

/// `/playbacks/{id}`: get, stop.
fn playbacks_route(world: &mut PbxWorld, b: BoxIndex, method: &str, rest: &[&str]) -> Result<RestReply, AriError> {
    match (method, rest) {
        ("GET", [id]) => {
            known_id("Playback", id)?;
            Ok(RestReply::json(200, &world.get_playback(b, id)?))
        }
        ("DELETE", [id]) => {
            known_id("Playback", id)?;
            world.stop_playback(b, id)?;
            Ok(RestReply::no_content())
        }
        _ => Err(resource_not_found()),
    }
}

/// `/applications…`: list, get.
fn applications_route(world: &mut PbxWorld, b: BoxIndex, method: &str, rest: &[&str]) -> Result<RestReply, AriError> {
    match (method, rest) {
        ("GET", []) => Ok(RestReply::json(200, &world.list_applications(b)?)),
        ("GET", [name]) => {
            known_id("Application", name)?;
            Ok(RestReply::json(200, &world.get_application(b, name)?))
        }
        _ => Err(resource_not_found()),
    }
}

/// `/channels/{id}/{action…}`: what can be done to one channel.
fn channel_action(
    world: &mut PbxWorld,
    b: BoxIndex,
    method: &str,
    id: &str,
    action: &[&str],
    params: &RestParams,
) -> Result<RestReply, AriError> {
    match (method, action) {
        ("POST", ["answer"]) => world.answer(b, id).map(|_| RestReply::no_content()),
        ("POST", ["ring"]) => world.ring(b, id).map(|_| RestReply::no_content()),
        ("DELETE", ["ring"]) => world.get_channel(b, id).map(|_| RestReply::no_content()),
        ("POST", ["moh"]) => world.start_moh(b, id, params.get("mohClass")).map(|_| RestReply::no_content()),
        ("DELETE", ["moh"]) => world.stop_moh(b, id).map(|_| RestReply::no_content()),
        ("POST", ["play"]) => Ok(RestReply::json(201, &world.play(b, id, None, &params.list("media"))?)),
        ("POST", ["play", playback]) => {
            let playback = PlaybackId::new(*playback)
                .map_err(|_| AriError::BadRequest { message: "Invalid playbackId".into() })?;
            Ok(RestReply::json(201, &world.play(b, id, Some(&playback), &params.list("media"))?))
        }
        ("POST", ["dtmf"]) => world.send_dtmf(b, id, params.required("dtmf")?).map(|_| RestReply::no_content()),
        ("POST", ["snoop"]) => Ok(RestReply::json(200, &world.snoop(b, id, &snoop_params(params)?)?)),
        ("POST", ["dial"]) => {
            let timeout_s = params.integer("timeout")?.unwrap_or(0).max(0) as u64;
            world.dial(b, id, timeout_s).map(|_| RestReply::no_content())
        }
        ("POST", ["continue"]) => world
            .continue_in_dialplan(
                b,
                id,
                params.get("context").map(str::to_string),
                params.get("extension").map(str::to_string),
                params.integer("priority")?,
            )
            .map(|_| RestReply::no_content()),
        ("GET", ["variable"]) => {
            let value = world.get_variable(b, id, params.required("variable")?)?;
            Ok(RestReply::json(200, &serde_json::json!({ "value": value })))
        }
        ("POST", ["variable"]) => world
            .set_variable(b, id, params.required("variable")?, params.get("value").unwrap_or(""))
            .map(|_| RestReply::no_content()),
        _ => Err(resource_not_found()),
    }
}
