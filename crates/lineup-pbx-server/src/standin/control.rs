//! The stand-in's control API, for the chaos harness only (loopback, no auth: it scripts the
//! humans, it does not stand for anything Asterisk has).
//!
//! - `POST /callers` places a scripted caller; `POST /operators` logs an operator in (ring
//!   mode: its phone answers offers after `answer_after_ms`);
//! - `POST /hangup` hangs a leg up as its human would; `POST /drain` hangs up every caller;
//! - `GET /truth` the whole ground truth, `GET /state` the live engagements and waiting callers.

use super::script::{hang_up, log_in};
use super::truth::{CallerPlan, OperatorMode, OperatorTruth, Party};
use super::SharedTruth;
use crate::error::ServerError;
use crate::server::LiveWorld;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lineup_ari::CallerId;
use lineup_pbx_sim::world::{BoxIndex, PhoneBehaviour, PhoneCall};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// The context callers dial into (`[lineup-gates]` in the deployed dialplan).
pub const CALLER_CONTEXT: &str = "lineup-gates";

#[derive(Clone)]
struct Control {
    live: Arc<LiveWorld>,
    truth: SharedTruth,
}

/// The control API's server; stops when dropped.
pub struct ControlServer {
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ControlServer {
    pub fn start(
        listener: tokio::net::TcpListener,
        live: Arc<LiveWorld>,
        truth: SharedTruth,
    ) -> Result<ControlServer, ServerError> {
        let address = listener.local_addr().map_err(|error| ServerError::Serve(error.to_string()))?;
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/callers", post(place_caller))
            .route("/operators", post(add_operator))
            .route("/hangup", post(hangup))
            .route("/drain", post(drain))
            .route("/truth", get(truth_report))
            .route("/state", get(live_state))
            .with_state(Control { live, truth });
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::warn!(%error, "stand-in control API stopped");
            }
        });
        Ok(ControlServer { address, task })
    }
}

fn refused(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "message": message }))).into_response()
}

#[derive(Deserialize)]
struct CallerRequest {
    box_index: usize,
    exten: String,
    number: String,
    #[serde(flatten)]
    plan: CallerPlan,
}

async fn place_caller(State(control): State<Control>, Json(request): Json<CallerRequest>) -> Response {
    let call = PhoneCall {
        phone: format!("caller-{}", request.number.trim_start_matches('+')),
        caller: CallerId { name: format!("Caller {}", request.number), number: request.number.clone() },
        context: CALLER_CONTEXT.into(),
        exten: request.exten.clone(),
        patience_ms: None,
        keys: vec![],
    };
    let placed = control.live.with_world(|world| {
        let channel = world.place_call(BoxIndex(request.box_index), call).map_err(|e| e.to_string())?;
        let leg = (request.box_index, channel.to_string());
        if !control.truth.lock().add_caller(leg, request.plan.clone(), world.now_ms()) {
            return Err("too many callers".to_string());
        }
        Ok(channel)
    });
    match placed {
        Ok(channel) => {
            let call_id = format!("{}-{channel}", request.box_index + 1);
            Json(json!({ "channel": channel.to_string(), "call_id": call_id })).into_response()
        }
        Err(message) => refused(message),
    }
}

#[derive(Deserialize)]
struct OperatorRequest {
    id: String,
    box_index: usize,
    mode: OperatorMode,
    pin: String,
    /// Ring mode: how long the phone rings before the operator answers.
    #[serde(default)]
    answer_after_ms: Option<u64>,
}

async fn add_operator(State(control): State<Control>, Json(request): Json<OperatorRequest>) -> Response {
    let logged = control.live.with_world(|world| {
        if request.mode == OperatorMode::Ring {
            let behaviour = PhoneBehaviour { answer_after_ms: request.answer_after_ms, ..Default::default() };
            world
                .register_phone(BoxIndex(request.box_index), &format!("phone-{}", request.id), behaviour)
                .map_err(|e| e.to_string())?;
        }
        let mut truth = control.truth.lock();
        truth.add_operator(OperatorTruth {
            id: request.id.clone(),
            box_index: request.box_index,
            mode: request.mode,
            pin: request.pin.clone(),
            login_leg: None,
            login_taken: false,
            logins: 0,
        });
        log_in(world, &mut truth, &request.id)
    });
    match logged {
        Ok(channel) => Json(json!({ "channel": channel.to_string() })).into_response(),
        Err(message) => refused(message),
    }
}

#[derive(Deserialize)]
struct HangupRequest {
    box_index: usize,
    channel: String,
    party: Party,
}

async fn hangup(State(control): State<Control>, Json(request): Json<HangupRequest>) -> Response {
    let leg = (request.box_index, request.channel);
    let done = control.live.with_world(|world| hang_up(world, &mut control.truth.lock(), &leg, request.party));
    Json(json!({ "hung_up": done })).into_response()
}

async fn drain(State(control): State<Control>) -> Response {
    let count = control.live.with_world(|world| {
        let mut truth = control.truth.lock();
        let callers = truth.live_callers();
        callers.iter().filter(|leg| hang_up(world, &mut truth, leg, Party::Caller)).count()
    });
    Json(json!({ "hung_up": count })).into_response()
}

async fn truth_report(State(control): State<Control>) -> Response {
    let report = control.truth.lock().report();
    Json(report).into_response()
}

async fn live_state(State(control): State<Control>) -> Response {
    let state = control.truth.lock().live_state();
    Json(state).into_response()
}
