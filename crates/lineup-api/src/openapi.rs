//! The OpenAPI 3.1 document: a table of operations (one row per route; `tests/openapi.rs`
//! checks it against the router both ways) whose bodies and answers name the handlers' own
//! types. Their schemas are derived by utoipa (`openapi_schemas.rs`); the paths, parameters,
//! error answers and roles are built here from the table.

use crate::openapi_schemas::{
    agent_message, any_object, list_of, live_message, named, webhooks, widget_message, SchemaOf, Schemas,
};
use crate::{agent, audit, backend, health, ingress, monitor, reports, rest, views};
use axum::Json;
use lineup_core as core;
use serde_json::{json, Map, Value};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::IntoParams;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Viewer,
    Supervisor,
    Admin,
    /// That call's own widget token, or viewers and above.
    Widget,
    /// That call's own widget token, supervisors and admins (a viewer changes nothing).
    WidgetAct,
    /// Frontend, supervisor or admin tokens: mints a call's widget token.
    MintWidget,
    /// An operator's own agent panel token (from `POST /v1/agent/sign-in`); no other token.
    Agent,
}

/// What a route answers with on success.
#[derive(Clone, Copy)]
pub enum Answer {
    /// JSON of this schema.
    Json(SchemaOf),
    /// Plain text (the Prometheus exposition).
    Text,
    /// A binary file (the backup).
    Binary,
}

/// One documented operation.
#[derive(Clone, Copy)]
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// The JSON body's schema, if any.
    pub body: Option<SchemaOf>,
    pub answer: Answer,
    /// A WebSocket upgrade (GET with `Upgrade: websocket`; `?token=` accepted): `answer`
    /// is the schema of its messages.
    pub websocket: bool,
    /// The handler's query parameters (its `Query<T>` type).
    pub query: Option<ParamsOf>,
}

/// The query parameters of a handler's `Query<T>`, derived (`IntoParams`).
pub type ParamsOf = fn() -> Vec<Parameter>;

fn query_of<T: IntoParams>() -> Vec<Parameter> {
    T::into_params(|| Some(ParameterIn::Query))
}

impl Operation {
    /// The handler reads these query parameters.
    const fn query(self, params: ParamsOf) -> Operation {
        Operation { query: Some(params), ..self }
    }
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    access: Access,
    body: Option<SchemaOf>,
    answer: Answer,
) -> Operation {
    Operation { method, path, summary, access, body, answer, websocket: false, query: None }
}

const fn ws(path: &'static str, summary: &'static str, access: Access, messages: SchemaOf) -> Operation {
    let answer = Answer::Json(messages);
    Operation { method: "get", path, summary, access, body: None, answer, websocket: true, query: None }
}

pub const OPERATIONS: &[Operation] = &[
    op("get", "/healthz", "The process is up.", Access::Public, None, Answer::Json(named::<health::Status>)),
    op("get", "/readyz", "Ready to route (503 when not); says when degraded (Redis or history down).", Access::Public, None, Answer::Json(named::<health::Readiness>)),
    op("get", "/metrics", "Prometheus text exposition.", Access::Viewer, None, Answer::Text),
    op("get", "/v1/openapi.json", "This document.", Access::Public, None, Answer::Json(any_object)),
    op("get", "/v1/me", "The caller's token holder and role (the dashboard hides actions the role may not take).", Access::Viewer, None, Answer::Json(named::<rest::Me>)),
    op("get", "/v1/config", "The whole routing config (PIN hashes redacted below admin). A linearizable read: it shows every apply acknowledged by any node (`?stale=true`: this node's copy, without asking the leader).", Access::Viewer, None, Answer::Json(named::<core::RoutingConfigSet>)).query(query_of::<rest::ConfigRead>),
    op("put", "/v1/config", "Replace the whole routing config (`?dry_run=true`: the diff only). Validated, then one ApplyConfig command.", Access::Admin, Some(named::<core::RoutingConfigSet>), Answer::Json(named::<rest::ConfigApplied>)).query(query_of::<rest::DryRun>),
    op("get", "/v1/config/callback-policy", "Which numbers a callback may dial (a linearizable read).", Access::Viewer, None, Answer::Json(named::<core::CallbackPolicy>)),
    op("put", "/v1/config/callback-policy", "Replace the callback destination policy. Validated, then one PutCallbackPolicy command.", Access::Admin, Some(named::<core::CallbackPolicy>), Answer::Json(named::<core::CallbackPolicy>)),
    op("get", "/v1/config/alarm-policy", "When raised queue alarms clear: clear levels and the minimum hold (a linearizable read).", Access::Viewer, None, Answer::Json(named::<core::AlarmPolicy>)),
    op("put", "/v1/config/alarm-policy", "Replace the alarm policy. Validated, then one PutAlarmPolicy command.", Access::Admin, Some(named::<core::AlarmPolicy>), Answer::Json(named::<core::AlarmPolicy>)),
    op("get", "/v1/config/ingress", "The DID map for ingress steering: each DID's gate and preferred sites (a linearizable read).", Access::Viewer, None, Answer::Json(named::<core::ingress::IngressPolicy>)),
    op("put", "/v1/config/ingress", "Replace the DID map. Checked (numbers, duplicates, gates exist), then one PutIngress command.", Access::Admin, Some(named::<core::ingress::IngressPolicy>), Answer::Json(named::<core::ingress::IngressPolicy>)),
    op("get", "/v1/ingress", "Where a SIP proxy should send a new call to a DID (`did=`) or queue (`queue=`): the sites with a SIP target, best first (a free qualified operator there, then staffing against waiting load, then unstaffed, then unreachable; lost sites absent), from this node's replica. A node that has not heard its leader answers its static order (`fallback: true`). 404 for a DID not in the map.", Access::Viewer, None, Answer::Json(named::<ingress::IngressAnswer>)).query(query_of::<ingress::IngressQuery>),
    op("get", "/v1/config/webhooks", "The webhooks told about alarms and site health, secrets redacted (a linearizable read).", Access::Viewer, None, Answer::Json(webhooks)),
    op("put", "/v1/config/webhooks", "Replace the webhook list. Checked, then one PutWebhooks command; a redacted secret keeps the named webhook's own. Answers the list, secrets redacted.", Access::Admin, Some(webhooks), Answer::Json(webhooks)),
    op("get", "/v1/config/queues/{id}", "One queue's config.", Access::Viewer, None, Answer::Json(named::<core::QueueConfig>)),
    op("put", "/v1/config/queues/{id}", "Create or replace a queue (path id = body id).", Access::Admin, Some(named::<core::QueueConfig>), Answer::Json(named::<rest::ObjectApplied>)),
    op("delete", "/v1/config/queues/{id}", "Delete a queue (refused while referenced or holding calls).", Access::Admin, None, Answer::Json(named::<rest::ObjectApplied>)),
    op("get", "/v1/config/gates/{id}", "One gate's config.", Access::Viewer, None, Answer::Json(named::<core::GateConfig>)),
    op("put", "/v1/config/gates/{id}", "Create or replace a gate.", Access::Admin, Some(named::<core::GateConfig>), Answer::Json(named::<rest::ObjectApplied>)),
    op("delete", "/v1/config/gates/{id}", "Delete a gate.", Access::Admin, None, Answer::Json(named::<rest::ObjectApplied>)),
    op("get", "/v1/config/operators/{id}", "One operator's config (PIN hash redacted below admin).", Access::Viewer, None, Answer::Json(named::<core::OperatorConfig>)),
    op("put", "/v1/config/operators/{id}", "Create or replace an operator (`pin_hash: \"(redacted)\"` keeps the current PIN).", Access::Admin, Some(named::<core::OperatorConfig>), Answer::Json(named::<rest::ObjectApplied>)),
    op("delete", "/v1/config/operators/{id}", "Delete an operator (refused while logged in).", Access::Admin, None, Answer::Json(named::<rest::ObjectApplied>)),
    op("get", "/v1/config/schedules/{id}", "One schedule.", Access::Viewer, None, Answer::Json(named::<core::ScheduleConfig>)),
    op("put", "/v1/config/schedules/{id}", "Create or replace a schedule.", Access::Admin, Some(named::<core::ScheduleConfig>), Answer::Json(named::<rest::ObjectApplied>)),
    op("delete", "/v1/config/schedules/{id}", "Delete a schedule (refused while a queue uses it).", Access::Admin, None, Answer::Json(named::<rest::ObjectApplied>)),
    op("get", "/v1/queues", "Live figures per queue and gate: waiting, longest wait, ETA, service level, abandon rate, answered, alarms.", Access::Viewer, None, Answer::Json(named::<rest::QueuesAnswer>)),
    op("get", "/v1/operators", "Operators with state, site, mode and time in state.", Access::Viewer, None, Answer::Json(named::<rest::OperatorsAnswer>)),
    op("get", "/v1/calls", "Calls: waiting calls first in global order across queues and sites, then offered and connected.", Access::Viewer, None, Answer::Json(named::<rest::CallsAnswer>)),
    op("get", "/v1/calls/{id}", "One call.", Access::Viewer, None, Answer::Json(named::<views::CallRow>)),
    op("get", "/v1/cluster", "Members, leader, term, lag and per-site health.", Access::Viewer, None, Answer::Json(named::<backend::ClusterStatus>)).query(query_of::<rest::ClusterQuery>),
    op("post", "/v1/cluster/members", "Add a site to the Raft group (learner until caught up, then voter). Leader only: elsewhere 503 names the leader.", Access::Admin, Some(named::<rest::MemberRequest>), Answer::Json(named::<backend::ClusterStatus>)),
    op("delete", "/v1/cluster/members/{site}", "Remove a site from the Raft group (leader only); 422 for a site that is not a member.", Access::Admin, None, Answer::Json(named::<backend::ClusterStatus>)),
    op("post", "/v1/cluster/members/{site}/lost", "Declare a site gone: its calls end and its operators are logged out (a silent site is only unreachable).", Access::Admin, None, Answer::Json(named::<backend::ClusterStatus>)),
    op("post", "/v1/cluster/snapshot", "Build a snapshot of this node's routing state now and compact its log behind it (this node only; answered once the build is asked for, with this node's own view). 503 without a cluster.", Access::Admin, None, Answer::Json(named::<backend::ClusterStatus>)),
    op("get", "/v1/cluster/backup", "A backup file of the committed routing state (a linearizable read): a self-describing binary file (magic, format version, the log index and term it was taken at, the time, the members, a SHA-256 checksum, the state). `lineup backup` saves it and `lineup restore` seeds a new cluster's nodes from it. 503 when there is no leader or quorum, or without a cluster.", Access::Admin, None, Answer::Binary),
    op("get", "/v1/audit", "Who made each accepted admin and supervisor write (the token's name), newest first: `from`/`to` (Unix ms, included), `actor` (a token name), `limit` (default 100, capped at 1000). Refused writes leave no row. 503 when the node keeps no audit trail (no history database); rows reach the history database shortly after the write is applied.", Access::Supervisor, None, Answer::Json(list_of::<audit::AuditEntry>)).query(query_of::<audit::AuditParams>),
    op("get", "/v1/reports/queues", "Interval report per queue from the history database: for `[from, to)` (Unix ms) in `interval`s (15m, 30m, 60m or day, counted from `from`; default 60m, at most 3000 intervals), optionally one `queue` and one `gate`: offered, answered, abandoned before and after the service-level threshold (each queue's configured one, or `service_level_ms` for all), timed out, full, closed, service level, ASA, AHT (talk + wrap-up), longest wait, callbacks. Calls count in the interval they entered. `format=csv` answers CSV (a header line of the same names). 422 for a bad period or parameter; 503 when the node has no history database.", Access::Supervisor, None, Answer::Json(list_of::<reports::QueueReportRow>)).query(query_of::<reports::ReportParams>),
    op("get", "/v1/reports/operators", "Interval report per operator from the history database (parameters as `/v1/reports/queues`): calls taken (in the interval answered; only the `queue`/`gate` asked for), talk, wrap-up, break time by reason, available and logged-in time (split at interval edges), logins, occupancy. With `queue`: its members and whoever took one of its calls. `format=csv` answers CSV.", Access::Supervisor, None, Answer::Json(list_of::<reports::OperatorReportRow>)).query(query_of::<reports::ReportParams>),
    op("post", "/v1/operators/{id}/state", "Set an operator's state: available, break (with reason) or offline.", Access::Supervisor, Some(named::<rest::StateRequest>), Answer::Json(named::<rest::ActionDone>)),
    op("post", "/v1/operators/{id}/logout", "Log an operator out (after the current call if busy).", Access::Supervisor, None, Answer::Json(named::<rest::ActionDone>)),
    op("post", "/v1/operators/{id}/pull", "The operator takes the named waiting call, or its next eligible one.", Access::Supervisor, Some(named::<rest::PullRequest>), Answer::Json(named::<rest::ActionDone>)),
    op("post", "/v1/calls/{id}/reassign", "Move a waiting call to another queue (keep_age keeps its place by arrival; default true).", Access::Supervisor, Some(named::<rest::ReassignRequest>), Answer::Json(named::<rest::ActionDone>)),
    op("post", "/v1/calls/{id}/priority", "Change a waiting call's priority (lower is served first).", Access::Supervisor, Some(named::<rest::PriorityRequest>), Answer::Json(named::<rest::ActionDone>)),
    op("post", "/v1/calls/{id}/monitor", "Monitor a connected call from the supervisor's own phone (audited): `listen` (the supervisor hears both parties, nobody hears the supervisor), `whisper` (only the operator hears the supervisor) or `barge` (both do). The site holding the operator's leg snoops on it and rings `endpoint` (`PJSIP/2001`) at `site` (this node's site when absent), over the trunk when that is another site. Hanging up the supervisor's phone ends it; so does the call's end. The call is never changed by it. 404 for an unknown call, 409 when the call is not connected, 422 for a bad endpoint or a site that is not a member.", Access::Supervisor, Some(named::<monitor::MonitorRequest>), Answer::Json(named::<rest::ActionDone>)),
    op("post", "/v1/calls/{id}/hangup", "Hang up a caller on the line (audited): the caller's site hangs up the channel, and the call ends as any hangup ends it (abandoned while waiting or offered, completed by the caller once connected), shortly after this answer. 404 for an unknown call, 409 for a callback promise (no caller on the line) or when the caller's site is unreachable.", Access::Supervisor, None, Answer::Json(named::<rest::ActionDone>)),
    op("post", "/v1/calls/{id}/widget-token", "Mint a token for this call's caller widget (128 random bits, hex): it reads only this call's position and live feed and requests only its callback, and dies when the call ends. `url` is the widget page on this node (`/widget?call=…&token=…`). Tokens live in this node's API process only. 404 when the call does not exist or has ended; 503 when too many tokens of calls still going are held.", Access::MintWidget, None, Answer::Json(named::<rest::WidgetLink>)),
    op("get", "/v1/calls/{id}/position", "A waiting call's position, ETA and status (caller widget).", Access::Widget, None, Answer::Json(named::<views::PositionView>)),
    op("post", "/v1/calls/{id}/callback", "The caller asks to be called back instead (keeps its place).", Access::WidgetAct, Some(named::<rest::CallbackRequest>), Answer::Json(named::<rest::ActionDone>)),
    op("post", "/v1/agent/sign-in", "An operator signs in to its agent panel with its id and PIN (checked as the phone login checks it). A wrong PIN counts towards the operator's lockout at every site, and against the client address like a wrong token; a locked-out operator is refused (429). The token opens only this operator's own panel routes, for `lifetime_ms` or until sign-out; it lives in this node's API process.", Access::Public, Some(named::<agent::SignInRequest>), Answer::Json(named::<agent::SignedIn>)),
    op("post", "/v1/agent/sign-out", "This panel's token stops working (the operator's state is unchanged).", Access::Agent, None, Answer::Json(named::<agent::SignedOut>)),
    op("get", "/v1/agent/me", "The operator's panel: state, the call offered or connected (caller, queue, gate, whisper), in pull mode the callers it may take, its figures today.", Access::Agent, None, Answer::Json(named::<agent::AgentAnswer>)),
    op("post", "/v1/agent/state", "The operator sets its own state: available (also ends a wrap-up early), break with a reason, or offline.", Access::Agent, Some(named::<rest::StateRequest>), Answer::Json(named::<rest::ActionDone>)),
    op("post", "/v1/agent/pull", "The operator takes the named waiting caller, or its next one.", Access::Agent, Some(named::<rest::PullRequest>), Answer::Json(named::<rest::ActionDone>)),
    op("post", "/v1/agent/login", "A ring-mode operator logs in at this node's site (each offer then rings its endpoint). A persistent operator logs in by phone (its line stays open between calls): refused, naming `channel`.", Access::Agent, None, Answer::Json(named::<rest::ActionDone>)),
    op("post", "/v1/agent/logout", "The operator logs out (after its current call if busy).", Access::Agent, None, Answer::Json(named::<rest::ActionDone>)),
    ws("/v1/agent/live", "WebSocket: `{type: agent, now_ms, ...panel}` at once and whenever the panel changes; `{type: signed_out}` then close when the token expires or the operator is removed.", Access::Agent, agent_message),
    ws("/v1/calls/{id}/live", "WebSocket: `position` messages whenever position, ETA or status change; `ended` then close.", Access::Widget, widget_message),
    ws("/v1/live", "WebSocket: a snapshot (in parts: snapshot, snapshot_operators*, snapshot_calls*, snapshot_end), then numbered deltas (operator, call, call_ended, alarm, queues every second, cluster). A client that falls behind gets a fresh snapshot.", Access::Viewer, live_message),
];

/// An error answer; `document` registers the `Error` schema (`ErrorBody`) it names.
fn error_response(description: &str) -> Value {
    let schema = json!({ "$ref": "#/components/schemas/Error" });
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn operation(o: &Operation, schemas: &mut Schemas) -> Value {
    let mut value = json!({
        "summary": o.summary,
        "description": format!("Role: {}.", role_description(o.access)),
        "responses": responses(o, schemas),
    });
    let parameters = parameters(o);
    if !parameters.is_empty() {
        value["parameters"] = Value::Array(parameters);
    }
    if let Some(body) = o.body {
        value["requestBody"] =
            json!({ "required": true, "content": { "application/json": { "schema": body(schemas) } } });
    }
    value["security"] = if o.access == Access::Public { json!([]) } else { json!([{ "bearer": [] }]) };
    value
}

/// Who may call a route, in words.
fn role_description(access: Access) -> &'static str {
    match access {
        Access::Public => "none",
        Access::Viewer => "viewer, supervisor or admin",
        Access::Supervisor => "supervisor or admin",
        Access::Admin => "admin",
        Access::Widget => "this call's widget token, viewer, supervisor or admin",
        Access::WidgetAct => "this call's widget token, supervisor or admin",
        Access::MintWidget => "frontend, supervisor or admin",
        Access::Agent => "the operator's own agent panel token (from POST /v1/agent/sign-in)",
    }
}

/// Every answer a route can give: its success, and each refusal that applies to it.
fn responses(o: &Operation, schemas: &mut Schemas) -> Map<String, Value> {
    let mut responses = Map::new();
    let (content_type, schema) = match o.answer {
        Answer::Text => ("text/plain", json!({ "type": "string" })),
        Answer::Binary => {
            ("application/octet-stream", json!({ "type": "string", "contentMediaType": "application/octet-stream" }))
        }
        Answer::Json(schema_of) => ("application/json", schema_of(schemas)),
    };
    if o.websocket {
        responses.insert(
            "101".into(),
            json!({ "description": "Switching protocols; JSON text messages follow.", "content": { "application/json": { "schema": schema } } }),
        );
        responses.insert("403".into(), error_response("Role not allowed, or Origin not allowed."));
        responses.insert("429".into(), error_response("Too many open WebSockets for this token."));
        responses.insert("503".into(), error_response("Too many open WebSockets on this server."));
    } else {
        responses
            .insert("200".into(), json!({ "description": "OK", "content": { content_type: { "schema": schema } } }));
    }
    // Every route, pages and health included, counts against its client address's rate.
    responses.insert(
        "429".into(),
        error_response("A rate limit (per client address or token), or this address presented too many wrong tokens; `Retry-After` says when to try again."),
    );
    if o.access != Access::Public {
        responses.insert("401".into(), error_response("Missing or unknown bearer token."));
        responses.insert("403".into(), error_response("The token's role may not do this."));
    }
    if o.body.is_some() {
        responses.insert("400".into(), error_response("Not JSON."));
        responses.insert("413".into(), error_response("Body over the limit."));
        responses.insert("408".into(), error_response("The body did not arrive within the body read timeout."));
        responses.insert("422".into(), error_response("Valid JSON, invalid content; `field` names the field."));
    }
    if o.path.contains("{id}") {
        responses.insert("404".into(), error_response("No such object."));
    }
    if o.path == "/v1/ingress" {
        responses
            .insert("404".into(), error_response("The DID is not in the map, or its gate or queue does not exist."));
        responses.insert("422".into(), error_response("Neither or both of did and queue."));
    }
    if o.path.starts_with("/v1/reports/") {
        responses["200"]["content"]["text/csv"] = json!({ "schema": { "type": "string" } });
        responses.insert("422".into(), error_response("A bad period or parameter; `field` names it."));
        responses.insert("503".into(), error_response("No history database on this node, or it cannot be read."));
    }
    if o.path == "/v1/cluster/backup" {
        responses.insert(
            "503".into(),
            error_response("No leader or quorum to confirm the committed state, a state over the backup size limit, or no cluster."),
        );
    }
    if o.path == "/v1/agent/sign-in" {
        responses.insert("401".into(), error_response("Unknown operator or wrong PIN."));
    }
    if o.method != "get" && o.access != Access::Public {
        responses.insert("409".into(), error_response("Refused by the routing core for a reason of state."));
        responses.insert("503".into(), error_response("Not committed (no leader or quorum); nothing changed."));
        responses.insert("504".into(), error_response("Outcome unknown; read state before retrying."));
    }
    responses
}

/// Path and query parameters of a route: the path's `{id}` or `{site}`, then the handler's
/// own query parameters (and a WebSocket's `token`).
fn parameters(o: &Operation) -> Vec<Value> {
    let mut parameters = Vec::new();
    if o.path.contains("{id}") {
        parameters.push(json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }));
    }
    if o.path.contains("{site}") {
        let site = json!({ "type": "integer", "minimum": 1 });
        parameters.push(json!({ "name": "site", "in": "path", "required": true, "schema": site }));
    }
    let mut query = o.query.map(|params| params()).unwrap_or_default();
    if o.websocket {
        query.extend(query_of::<crate::auth::TokenQuery>());
    }
    parameters.extend(query.into_iter().map(|p| serde_json::to_value(p).unwrap_or_default()));
    parameters
}

/// The whole document.
pub fn document() -> Value {
    let mut schemas = Schemas::default();
    named::<crate::error::ErrorBody>(&mut schemas);
    let mut paths = Map::new();
    for o in OPERATIONS {
        let entry = paths.entry(o.path.to_string()).or_insert_with(|| json!({}));
        entry[o.method] = operation(o, &mut schemas);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Lineup node API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "REST and WebSocket API of one Lineup node: routing config, live state across every site, supervisor actions, the caller widget, health and metrics. Errors are {error, code, field?}. Requests are rate-limited per client address and per token (429 with Retry-After), and an address that presents too many wrong tokens is answered 429 until its window ends; a connection over the server's cap is answered 503 and closed, and one whose request head does not arrive in time is closed.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas.into_json(),
        },
    })
}

pub async fn serve_document() -> Json<Value> {
    Json(document())
}
