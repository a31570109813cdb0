//! The REST half of the client: one `HttpAri` per Asterisk, implementing `Ari` over reqwest.

use crate::basic_auth::authorization_value;
use crate::config::AriConfig;
use crate::error::AriError;
use crate::events::AriEvents;
use crate::ids::{validate_variable_name, ApplicationName, BridgeId, ChannelId, PlaybackId};
use crate::model::{
    validate_dtmf, Application, Bridge, Channel, ContinueTarget, CreateBridgeRequest, CreateChannelRequest,
    DialRequest, HangupReason, Media, OriginateRequest, OriginateTarget, Playback, SnoopRequest, VariableValue,
    MEDIA_PER_PLAY_MAX_COUNT,
};
use crate::Ari;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::Method;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Largest REST answer body accepted (a `GET /channels` on a busy box is the biggest). A
/// missed-caller read, `DB_KEYS(lineup-missed)` on a channel, answers every key of the
/// family in one value: 1,000 records of about 100 bytes are about 100 KB, far inside it.
pub const RESPONSE_SIZE_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Longest Asterisk error message kept in an error value.
const ERROR_MESSAGE_LENGTH_MAX_BYTES: usize = 512;
/// Longest `appArgs` element accepted.
const APP_ARGUMENT_LENGTH_MAX_BYTES: usize = 128;

/// ARI over HTTP. Cheap to clone (reqwest's client is shared).
#[derive(Clone)]
pub struct HttpAri {
    http: reqwest::Client,
    base_url: String,
    authorization: HeaderValue,
    request_timeout_ms: u64,
    /// `ws://host:port/ari/events`, for `subscribe_events`.
    events_url: String,
}

impl fmt::Debug for HttpAri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpAri").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

type Query = Vec<(&'static str, String)>;

/// What an answer from Asterisk says: the body of a 2xx answer, or the typed error of any
/// other status (ARI's `{"message": ...}` if the body has one, else the body itself,
/// shortened). The body is at most [`RESPONSE_SIZE_MAX_BYTES`] long.
pub fn read_answer(status: u16, bytes: &[u8]) -> Result<String, AriError> {
    if bytes.len() > RESPONSE_SIZE_MAX_BYTES {
        return Err(AriError::MessageTooLarge { size_bytes: bytes.len(), limit_bytes: RESPONSE_SIZE_MAX_BYTES });
    }
    let text = String::from_utf8_lossy(bytes).into_owned();
    if (200..300).contains(&status) {
        return Ok(text);
    }
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|value| value.get("message").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or(text)
        .chars()
        .take(ERROR_MESSAGE_LENGTH_MAX_BYTES)
        .collect();
    Err(AriError::from_status(status, message))
}

/// The typed value of a 2xx answer's body (a `Channel`, a list of bridges, ...).
pub fn decode_answer<T: DeserializeOwned>(operation: &'static str, text: &str) -> Result<T, AriError> {
    serde_json::from_str(text)
        .map_err(|error| AriError::MalformedJson { context: operation, detail: error.to_string() })
}

fn validate_app_args(args: &[String]) -> Result<String, AriError> {
    for argument in args {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"=_.-".contains(&b);
        if argument.is_empty() || argument.len() > APP_ARGUMENT_LENGTH_MAX_BYTES || !argument.bytes().all(allowed) {
            // A comma would split one argument into two inside Stasis().
            return Err(AriError::InvalidInput {
                what: "appArgs element",
                value: argument.chars().take(APP_ARGUMENT_LENGTH_MAX_BYTES).collect(),
                reason: "1..=128 of A-Z a-z 0-9 = _ . -",
            });
        }
    }
    Ok(args.join(","))
}

fn variables_body(variables: &BTreeMap<String, String>) -> Result<Option<serde_json::Value>, AriError> {
    if variables.is_empty() {
        return Ok(None);
    }
    for name in variables.keys() {
        validate_variable_name(name)?;
    }
    Ok(Some(serde_json::json!({ "variables": variables })))
}

impl HttpAri {
    pub fn new(config: &AriConfig) -> Result<HttpAri, AriError> {
        let base_url = config.validated_base_url()?;
        let mut authorization = HeaderValue::from_str(&authorization_value(&config.username, &config.password))
            .map_err(|_| AriError::InvalidConfig("credentials are not a valid header value".into()))?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .build()
            .map_err(|error| AriError::InvalidConfig(error.to_string()))?;
        let events_url = format!("ws://{}/events", &base_url["http://".len()..]);
        Ok(HttpAri { http, base_url, authorization, request_timeout_ms: config.request_timeout_ms, events_url })
    }

    /// Sends one request; returns the body of a 2xx answer, or the typed error.
    async fn send(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        query: Query,
        body: Option<serde_json::Value>,
    ) -> Result<String, AriError> {
        let url = format!("{}{}", self.base_url, path);
        let mut request = self.http.request(method, url).header(AUTHORIZATION, self.authorization.clone());
        if !query.is_empty() {
            request = request.query(&query);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let exchange = async {
            let mut response = request.send().await?;
            let status = response.status().as_u16();
            // Read at most RESPONSE_SIZE_MAX_BYTES (+1 to tell "exactly full" from "too big").
            let mut bytes: Vec<u8> = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                let room = RESPONSE_SIZE_MAX_BYTES + 1 - bytes.len();
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if bytes.len() > RESPONSE_SIZE_MAX_BYTES {
                    break;
                }
            }
            Ok::<_, reqwest::Error>((status, bytes))
        };
        let timeout = Duration::from_millis(self.request_timeout_ms);
        let (status, bytes) = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => return Err(AriError::Timeout { operation, timeout_ms: self.request_timeout_ms }),
            Ok(Err(error)) if error.is_timeout() => {
                return Err(AriError::Timeout { operation, timeout_ms: self.request_timeout_ms })
            }
            Ok(Err(error)) => return Err(AriError::Transport { operation, detail: error.to_string() }),
            Ok(Ok(answer)) => answer,
        };
        let answer = read_answer(status, &bytes);
        match &answer {
            Ok(_) => tracing::debug!(operation, status, "ari request done"),
            Err(error) => tracing::debug!(operation, status, %error, "ari request refused"),
        }
        answer
    }

    async fn send_for<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        query: Query,
        body: Option<serde_json::Value>,
    ) -> Result<T, AriError> {
        let text = self.send(operation, method, path, query, body).await?;
        decode_answer(operation, &text)
    }

    async fn send_void(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        query: Query,
    ) -> Result<(), AriError> {
        self.send(operation, method, path, query, None).await.map(|_| ())
    }
}

impl Ari for HttpAri {
    fn subscribe_events(&self, applications: &[ApplicationName]) -> Result<AriEvents, AriError> {
        if applications.is_empty() {
            return Err(AriError::InvalidConfig("at least one application is required".into()));
        }
        let names: Vec<&str> = applications.iter().map(ApplicationName::as_str).collect();
        let url = format!("{}?app={}", self.events_url, names.join(","));
        let authorization = self
            .authorization
            .to_str()
            .map_err(|_| AriError::InvalidConfig("credentials are not a valid header value".into()))?;
        AriEvents::connect_url(&url, authorization)
    }

    async fn answer(&self, channel: &ChannelId) -> Result<(), AriError> {
        self.send_void("answer", Method::POST, &format!("/channels/{channel}/answer"), vec![]).await
    }

    async fn hangup(&self, channel: &ChannelId, reason: HangupReason) -> Result<(), AriError> {
        let query = vec![("reason", reason.as_str().to_string())];
        self.send_void("hangup", Method::DELETE, &format!("/channels/{channel}"), query).await
    }

    async fn ring(&self, channel: &ChannelId) -> Result<(), AriError> {
        self.send_void("ring", Method::POST, &format!("/channels/{channel}/ring"), vec![]).await
    }

    async fn play(
        &self,
        channel: &ChannelId,
        playback: Option<&PlaybackId>,
        media: &[Media],
    ) -> Result<Playback, AriError> {
        if media.is_empty() || media.len() > MEDIA_PER_PLAY_MAX_COUNT {
            return Err(AriError::InvalidInput {
                what: "media list",
                value: media.len().to_string(),
                reason: "1..=MEDIA_PER_PLAY_MAX_COUNT media URIs",
            });
        }
        let joined = media.iter().map(Media::to_string).collect::<Vec<_>>().join(",");
        let path = match playback {
            Some(playback) => format!("/channels/{channel}/play/{playback}"),
            None => format!("/channels/{channel}/play"),
        };
        self.send_for("play", Method::POST, &path, vec![("media", joined)], None).await
    }

    async fn stop_playback(&self, playback: &PlaybackId) -> Result<(), AriError> {
        self.send_void("stop playback", Method::DELETE, &format!("/playbacks/{playback}"), vec![]).await
    }

    async fn start_moh(&self, channel: &ChannelId, class: Option<&str>) -> Result<(), AriError> {
        let mut query = vec![];
        if let Some(class) = class {
            crate::ids::validate_id("music on hold class", class)?;
            query.push(("mohClass", class.to_string()));
        }
        self.send_void("start moh", Method::POST, &format!("/channels/{channel}/moh"), query).await
    }

    async fn stop_moh(&self, channel: &ChannelId) -> Result<(), AriError> {
        self.send_void("stop moh", Method::DELETE, &format!("/channels/{channel}/moh"), vec![]).await
    }

    async fn send_dtmf(&self, channel: &ChannelId, digits: &str) -> Result<(), AriError> {
        validate_dtmf(digits)?;
        self.send_void("send dtmf", Method::POST, &format!("/channels/{channel}/dtmf"), vec![("dtmf", digits.into())])
            .await
    }

    async fn originate(&self, request: &OriginateRequest) -> Result<Channel, AriError> {
        let mut query: Query = vec![("endpoint", request.endpoint.to_string())];
        match &request.target {
            OriginateTarget::Application { app, app_args } => {
                query.push(("app", app.to_string()));
                if !app_args.is_empty() {
                    query.push(("appArgs", validate_app_args(app_args)?));
                }
            }
            OriginateTarget::Dialplan { context, extension, priority } => {
                crate::ids::validate_id("context", context)?;
                crate::ids::validate_id("extension", extension)?;
                query.push(("context", context.clone()));
                query.push(("extension", extension.clone()));
                query.push(("priority", priority.to_string()));
            }
        }
        if let Some(id) = &request.channel_id {
            query.push(("channelId", id.to_string()));
        }
        if let Some(id) = &request.other_channel_id {
            query.push(("otherChannelId", id.to_string()));
        }
        if let Some(caller_id) = &request.caller_id {
            query.push(("callerId", caller_id.clone()));
        }
        if let Some(timeout_s) = request.timeout_s {
            query.push(("timeout", timeout_s.to_string()));
        }
        if let Some(originator) = &request.originator {
            query.push(("originator", originator.to_string()));
        }
        let body = variables_body(&request.variables)?;
        self.send_for("originate", Method::POST, "/channels", query, body).await
    }

    async fn create_channel(&self, request: &CreateChannelRequest) -> Result<Channel, AriError> {
        let mut query: Query = vec![("endpoint", request.endpoint.to_string()), ("app", request.app.to_string())];
        if !request.app_args.is_empty() {
            query.push(("appArgs", validate_app_args(&request.app_args)?));
        }
        if let Some(id) = &request.channel_id {
            query.push(("channelId", id.to_string()));
        }
        if let Some(id) = &request.other_channel_id {
            query.push(("otherChannelId", id.to_string()));
        }
        if let Some(originator) = &request.originator {
            query.push(("originator", originator.to_string()));
        }
        let body = variables_body(&request.variables)?;
        self.send_for("create channel", Method::POST, "/channels/create", query, body).await
    }

    async fn snoop(&self, request: &SnoopRequest) -> Result<Channel, AriError> {
        let mut query: Query = vec![
            ("app", request.app.to_string()),
            ("spy", request.spy.as_str().into()),
            ("whisper", request.whisper.as_str().into()),
        ];
        if !request.app_args.is_empty() {
            query.push(("appArgs", validate_app_args(&request.app_args)?));
        }
        if let Some(id) = &request.snoop_id {
            query.push(("snoopId", id.to_string()));
        }
        let path = format!("/channels/{}/snoop", request.channel);
        self.send_for("snoop", Method::POST, &path, query, None).await
    }

    async fn dial(&self, channel: &ChannelId, request: &DialRequest) -> Result<(), AriError> {
        let mut query: Query = vec![("timeout", request.timeout_s.to_string())];
        if let Some(caller) = &request.caller {
            query.push(("caller", caller.to_string()));
        }
        self.send_void("dial", Method::POST, &format!("/channels/{channel}/dial"), query).await
    }

    async fn continue_in_dialplan(
        &self,
        channel: &ChannelId,
        target: &ContinueTarget,
        variables: &[(String, String)],
    ) -> Result<(), AriError> {
        // ARI's continue takes no variables: set them first, so the dialplan sees them at once.
        for (name, value) in variables {
            self.set_variable(channel, name, value).await?;
        }
        let mut query: Query = vec![];
        if let Some(context) = &target.context {
            crate::ids::validate_id("context", context)?;
            query.push(("context", context.clone()));
        }
        if let Some(extension) = &target.extension {
            crate::ids::validate_id("extension", extension)?;
            query.push(("extension", extension.clone()));
        }
        if let Some(priority) = target.priority {
            query.push(("priority", priority.to_string()));
        }
        self.send_void("continue", Method::POST, &format!("/channels/{channel}/continue"), query).await
    }

    async fn get_variable(&self, channel: &ChannelId, name: &str) -> Result<String, AriError> {
        validate_variable_name(name)?;
        let path = format!("/channels/{channel}/variable");
        let value: VariableValue =
            self.send_for("get variable", Method::GET, &path, vec![("variable", name.into())], None).await?;
        Ok(value.value)
    }

    async fn asterisk_variable(&self, name: &str) -> Result<String, AriError> {
        crate::ids::validate_asterisk_variable_name(name)?;
        let query = vec![("variable", name.to_string())];
        let value: VariableValue =
            self.send_for("get asterisk variable", Method::GET, "/asterisk/variable", query, None).await?;
        Ok(value.value)
    }

    async fn set_asterisk_variable(&self, name: &str, value: &str) -> Result<(), AriError> {
        crate::ids::validate_asterisk_variable_name(name)?;
        let query = vec![("variable", name.to_string()), ("value", value.to_string())];
        self.send_void("set asterisk variable", Method::POST, "/asterisk/variable", query).await
    }

    async fn set_variable(&self, channel: &ChannelId, name: &str, value: &str) -> Result<(), AriError> {
        validate_variable_name(name)?;
        let query = vec![("variable", name.to_string()), ("value", value.to_string())];
        self.send_void("set variable", Method::POST, &format!("/channels/{channel}/variable"), query).await
    }

    async fn get_channel(&self, channel: &ChannelId) -> Result<Channel, AriError> {
        self.send_for("get channel", Method::GET, &format!("/channels/{channel}"), vec![], None).await
    }

    async fn list_channels(&self) -> Result<Vec<Channel>, AriError> {
        self.send_for("list channels", Method::GET, "/channels", vec![], None).await
    }

    async fn create_bridge(&self, request: &CreateBridgeRequest) -> Result<Bridge, AriError> {
        let mut query: Query =
            vec![("type", request.bridge_type.as_str().to_string()), ("bridgeId", request.bridge_id.to_string())];
        if let Some(name) = &request.name {
            crate::ids::validate_id("bridge name", name)?;
            query.push(("name", name.clone()));
        }
        self.send_for("create bridge", Method::POST, "/bridges", query, None).await
    }

    async fn add_channels(&self, bridge: &BridgeId, channels: &[ChannelId]) -> Result<(), AriError> {
        let list = channels.iter().map(ChannelId::as_str).collect::<Vec<_>>().join(",");
        self.send_void("add channel", Method::POST, &format!("/bridges/{bridge}/addChannel"), vec![("channel", list)])
            .await
    }

    async fn remove_channels(&self, bridge: &BridgeId, channels: &[ChannelId]) -> Result<(), AriError> {
        let list = channels.iter().map(ChannelId::as_str).collect::<Vec<_>>().join(",");
        let path = format!("/bridges/{bridge}/removeChannel");
        self.send_void("remove channel", Method::POST, &path, vec![("channel", list)]).await
    }

    async fn destroy_bridge(&self, bridge: &BridgeId) -> Result<(), AriError> {
        self.send_void("destroy bridge", Method::DELETE, &format!("/bridges/{bridge}"), vec![]).await
    }

    async fn get_bridge(&self, bridge: &BridgeId) -> Result<Bridge, AriError> {
        self.send_for("get bridge", Method::GET, &format!("/bridges/{bridge}"), vec![], None).await
    }

    async fn list_bridges(&self) -> Result<Vec<Bridge>, AriError> {
        self.send_for("list bridges", Method::GET, "/bridges", vec![], None).await
    }

    async fn get_application(&self, application: &ApplicationName) -> Result<Application, AriError> {
        self.send_for("get application", Method::GET, &format!("/applications/{application}"), vec![], None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_its_body_or_the_typed_refusal() {
        assert!(matches!(read_answer(200, b"{}"), Ok(ref body) if body == "{}"));
        let gone = read_answer(404, br#"{"message":"Channel not found"}"#);
        assert!(matches!(gone, Err(AriError::NotFound { ref message }) if message == "Channel not found"));
        let long = vec![b'x'; 2 * ERROR_MESSAGE_LENGTH_MAX_BYTES];
        let Err(AriError::ServerError { message }) = read_answer(500, &long) else { panic!("a 500") };
        assert_eq!(message.len(), ERROR_MESSAGE_LENGTH_MAX_BYTES);
        let huge = vec![b' '; RESPONSE_SIZE_MAX_BYTES + 1];
        assert!(matches!(read_answer(200, &huge), Err(AriError::MessageTooLarge { .. })));
        assert!(matches!(decode_answer::<Channel>("get channel", "[1"), Err(AriError::MalformedJson { .. })));
    }
}
