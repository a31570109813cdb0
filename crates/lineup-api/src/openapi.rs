//! The OpenAPI 3.1 document, written by hand as a table of operations (one row per route;
//! `tests/openapi.rs` checks the table against the router both ways) plus the shared schemas.

use axum::Json;
use serde_json::{json, Map, Value};

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
}

/// One documented operation.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// Schema name of the JSON body, if any.
    pub body: Option<&'static str>,
    /// Schema name of the 200 answer (`text` for plain text).
    pub answer: &'static str,
    /// A WebSocket upgrade (GET with `Upgrade: websocket`; `?token=` accepted).
    pub websocket: bool,
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    access: Access,
    body: Option<&'static str>,
    answer: &'static str,
) -> Operation {
    Operation { method, path, summary, access, body, answer, websocket: false }
}

const fn ws(path: &'static str, summary: &'static str, access: Access, answer: &'static str) -> Operation {
    Operation { method: "get", path, summary, access, body: None, answer, websocket: true }
}

pub const OPERATIONS: &[Operation] = &[
    op("get", "/healthz", "The process is up.", Access::Public, None, "Status"),
    op("get", "/readyz", "Ready to route (503 when not); says when degraded (Redis or history down).", Access::Public, None, "Readiness"),
    op("get", "/metrics", "Prometheus text exposition.", Access::Viewer, None, "text"),
    op("get", "/v1/openapi.json", "This document.", Access::Public, None, "Object"),
    op("get", "/v1/me", "The caller's token holder and role (the dashboard hides actions the role may not take).", Access::Viewer, None, "Me"),
    op("get", "/v1/config", "The whole routing config (PIN hashes redacted below admin). A linearizable read: it shows every apply acknowledged by any node (`?stale=true`: this node's copy, without asking the leader).", Access::Viewer, None, "RoutingConfigSet"),
    op("put", "/v1/config", "Replace the whole routing config (`?dry_run=true`: the diff only). Validated, then one ApplyConfig command.", Access::Admin, Some("RoutingConfigSet"), "ConfigApplied"),
    op("get", "/v1/config/callback-policy", "Which numbers a callback may dial (a linearizable read).", Access::Viewer, None, "CallbackPolicy"),
    op("put", "/v1/config/callback-policy", "Replace the callback destination policy. Validated, then one PutCallbackPolicy command.", Access::Admin, Some("CallbackPolicy"), "CallbackPolicy"),
    op("get", "/v1/config/alarm-policy", "When raised queue alarms clear: clear levels and the minimum hold (a linearizable read).", Access::Viewer, None, "AlarmPolicy"),
    op("put", "/v1/config/alarm-policy", "Replace the alarm policy. Validated, then one PutAlarmPolicy command.", Access::Admin, Some("AlarmPolicy"), "AlarmPolicy"),
    op("get", "/v1/config/ingress", "The DID map for ingress steering: each DID's gate and preferred sites (a linearizable read).", Access::Viewer, None, "IngressPolicy"),
    op("put", "/v1/config/ingress", "Replace the DID map. Checked (numbers, duplicates, gates exist), then one PutIngress command.", Access::Admin, Some("IngressPolicy"), "IngressPolicy"),
    op("get", "/v1/ingress", "Where a SIP proxy should send a new call to a DID (`did=`) or queue (`queue=`): the sites with a SIP target, best first (a free qualified operator there, then staffing against waiting load, then unstaffed, then unreachable; lost sites absent), from this node's replica. A node that has not heard its leader answers its static order (`fallback: true`). 404 for a DID not in the map.", Access::Viewer, None, "IngressAnswer"),
    op("get", "/v1/config/webhooks", "The webhooks told about alarms and site health, secrets redacted (a linearizable read).", Access::Viewer, None, "Webhooks"),
    op("put", "/v1/config/webhooks", "Replace the webhook list. Checked, then one PutWebhooks command; a redacted secret keeps the named webhook's own. Answers the list, secrets redacted.", Access::Admin, Some("Webhooks"), "Webhooks"),
    op("get", "/v1/config/queues/{id}", "One queue's config.", Access::Viewer, None, "QueueConfig"),
    op("put", "/v1/config/queues/{id}", "Create or replace a queue (path id = body id).", Access::Admin, Some("QueueConfig"), "ObjectApplied"),
    op("delete", "/v1/config/queues/{id}", "Delete a queue (refused while referenced or holding calls).", Access::Admin, None, "ObjectApplied"),
    op("get", "/v1/config/gates/{id}", "One gate's config.", Access::Viewer, None, "GateConfig"),
    op("put", "/v1/config/gates/{id}", "Create or replace a gate.", Access::Admin, Some("GateConfig"), "ObjectApplied"),
    op("delete", "/v1/config/gates/{id}", "Delete a gate.", Access::Admin, None, "ObjectApplied"),
    op("get", "/v1/config/operators/{id}", "One operator's config (PIN hash redacted below admin).", Access::Viewer, None, "OperatorConfig"),
    op("put", "/v1/config/operators/{id}", "Create or replace an operator (`pin_hash: \"(redacted)\"` keeps the current PIN).", Access::Admin, Some("OperatorConfig"), "ObjectApplied"),
    op("delete", "/v1/config/operators/{id}", "Delete an operator (refused while logged in).", Access::Admin, None, "ObjectApplied"),
    op("get", "/v1/config/schedules/{id}", "One schedule.", Access::Viewer, None, "ScheduleConfig"),
    op("put", "/v1/config/schedules/{id}", "Create or replace a schedule.", Access::Admin, Some("ScheduleConfig"), "ObjectApplied"),
    op("delete", "/v1/config/schedules/{id}", "Delete a schedule (refused while a queue uses it).", Access::Admin, None, "ObjectApplied"),
    op("get", "/v1/queues", "Live figures per queue and gate: waiting, longest wait, ETA, service level, abandon rate, answered, alarms.", Access::Viewer, None, "QueuesAnswer"),
    op("get", "/v1/operators", "Operators with state, site, mode and time in state.", Access::Viewer, None, "OperatorsAnswer"),
    op("get", "/v1/calls", "Calls: waiting calls first in global order across queues and sites, then offered and connected.", Access::Viewer, None, "CallsAnswer"),
    op("get", "/v1/calls/{id}", "One call.", Access::Viewer, None, "CallRow"),
    op("get", "/v1/cluster", "Members, leader, term, lag and per-site health.", Access::Viewer, None, "ClusterStatus"),
    op("post", "/v1/cluster/members", "Add a site to the Raft group (learner until caught up, then voter). Leader only: elsewhere 503 names the leader.", Access::Admin, Some("MemberRequest"), "ClusterStatus"),
    op("delete", "/v1/cluster/members/{site}", "Remove a site from the Raft group (leader only); 422 for a site that is not a member.", Access::Admin, None, "ClusterStatus"),
    op("post", "/v1/cluster/members/{site}/lost", "Declare a site gone: its calls end and its operators are logged out (a silent site is only unreachable).", Access::Admin, None, "ClusterStatus"),
    op("post", "/v1/cluster/snapshot", "Build a snapshot of this node's routing state now and compact its log behind it (this node only; answered once the build is asked for, with this node's own view). 503 without a cluster.", Access::Admin, None, "ClusterStatus"),
    op("get", "/v1/cluster/backup", "A backup file of the committed routing state (a linearizable read): a self-describing binary file (magic, format version, the log index and term it was taken at, the time, the members, a SHA-256 checksum, the state). `lineup backup` saves it and `lineup restore` seeds a new cluster's nodes from it. 503 when there is no leader or quorum, or without a cluster.", Access::Admin, None, "binary"),
    op("get", "/v1/audit", "Who made each accepted admin and supervisor write (the token's name), newest first: `from`/`to` (Unix ms, included), `actor` (a token name), `limit` (default 100, capped at 1000). Refused writes leave no row. 503 when the node keeps no audit trail (no history database); rows reach the history database shortly after the write is applied.", Access::Supervisor, None, "AuditEntries"),
    op("get", "/v1/reports/queues", "Interval report per queue from the history database: for `[from, to)` (Unix ms) in `interval`s (15m, 30m, 60m or day, counted from `from`; default 60m, at most 3000 intervals), optionally one `queue` and one `gate`: offered, answered, abandoned before and after the service-level threshold (each queue's configured one, or `service_level_ms` for all), timed out, full, closed, service level, ASA, AHT (talk + wrap-up), longest wait, callbacks. Calls count in the interval they entered. `format=csv` answers CSV (a header line of the same names). 422 for a bad period or parameter; 503 when the node has no history database.", Access::Supervisor, None, "QueueReport"),
    op("get", "/v1/reports/operators", "Interval report per operator from the history database (parameters as `/v1/reports/queues`): calls taken (in the interval answered; only the `queue`/`gate` asked for), talk, wrap-up, break time by reason, available and logged-in time (split at interval edges), logins, occupancy. With `queue`: its members and whoever took one of its calls. `format=csv` answers CSV.", Access::Supervisor, None, "OperatorReport"),
    op("post", "/v1/operators/{id}/state", "Set an operator's state: available, break (with reason) or offline.", Access::Supervisor, Some("StateRequest"), "ActionDone"),
    op("post", "/v1/operators/{id}/logout", "Log an operator out (after the current call if busy).", Access::Supervisor, None, "ActionDone"),
    op("post", "/v1/operators/{id}/pull", "The operator takes the named waiting call, or its next eligible one.", Access::Supervisor, Some("PullRequest"), "ActionDone"),
    op("post", "/v1/calls/{id}/reassign", "Move a waiting call to another queue (keep_age keeps its place by arrival; default true).", Access::Supervisor, Some("ReassignRequest"), "ActionDone"),
    op("post", "/v1/calls/{id}/priority", "Change a waiting call's priority (lower is served first).", Access::Supervisor, Some("PriorityRequest"), "ActionDone"),
    op("post", "/v1/calls/{id}/monitor", "Monitor a connected call from the supervisor's own phone (audited): `listen` (the supervisor hears both parties, nobody hears the supervisor), `whisper` (only the operator hears the supervisor) or `barge` (both do). The site holding the operator's leg snoops on it and rings `endpoint` (`PJSIP/2001`) at `site` (this node's site when absent), over the trunk when that is another site. Hanging up the supervisor's phone ends it; so does the call's end. The call is never changed by it. 404 for an unknown call, 409 when the call is not connected, 422 for a bad endpoint or a site that is not a member.", Access::Supervisor, Some("MonitorRequest"), "ActionDone"),
    op("post", "/v1/calls/{id}/widget-token", "Mint a token for this call's caller widget (128 random bits, hex): it reads only this call's position and live feed and requests only its callback, and dies when the call ends. `url` is the widget page on this node (`/widget?call=…&token=…`). Tokens live in this node's API process only. 404 when the call does not exist or has ended; 503 when too many tokens of calls still going are held.", Access::MintWidget, None, "WidgetLink"),
    op("get", "/v1/calls/{id}/position", "A waiting call's position, ETA and status (caller widget).", Access::Widget, None, "PositionView"),
    op("post", "/v1/calls/{id}/callback", "The caller asks to be called back instead (keeps its place).", Access::WidgetAct, Some("CallbackRequest"), "ActionDone"),
    ws("/v1/calls/{id}/live", "WebSocket: `position` messages whenever position, ETA or status change; `ended` then close.", Access::Widget, "PositionView"),
    ws("/v1/live", "WebSocket: a snapshot (in parts: snapshot, snapshot_operators*, snapshot_calls*, snapshot_end), then numbered deltas (operator, call, call_ended, alarm, queues every second, cluster). A client that falls behind gets a fresh snapshot.", Access::Viewer, "LiveMessage"),
];

fn schema_ref(name: &str) -> Value {
    match name {
        "text" => json!({ "type": "string" }),
        "binary" => json!({ "type": "string", "contentMediaType": "application/octet-stream" }),
        other => json!({ "$ref": format!("#/components/schemas/{other}") }),
    }
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema_ref("Error") } } })
}

fn operation(o: &Operation) -> Value {
    let mut value = json!({
        "summary": o.summary,
        "description": format!("Role: {}.", role_description(o.access)),
        "responses": responses(o),
    });
    let parameters = parameters(o);
    if !parameters.is_empty() {
        value["parameters"] = Value::Array(parameters);
    }
    if let Some(body) = o.body {
        value["requestBody"] =
            json!({ "required": true, "content": { "application/json": { "schema": schema_ref(body) } } });
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
    }
}

/// Every answer a route can give: its success, and each refusal that applies to it.
fn responses(o: &Operation) -> Map<String, Value> {
    let mut responses = Map::new();
    let content_type = match o.answer {
        "text" => "text/plain",
        "binary" => "application/octet-stream",
        _ => "application/json",
    };
    if o.websocket {
        responses.insert(
            "101".into(),
            json!({ "description": "Switching protocols; JSON text messages follow.", "content": { "application/json": { "schema": schema_ref(o.answer) } } }),
        );
        responses.insert("403".into(), error_response("Role not allowed, or Origin not allowed."));
        responses.insert("429".into(), error_response("Too many open WebSockets for this token."));
        responses.insert("503".into(), error_response("Too many open WebSockets on this server."));
    } else {
        responses.insert(
            "200".into(),
            json!({ "description": "OK", "content": { content_type: { "schema": schema_ref(o.answer) } } }),
        );
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
    if o.method != "get" && o.access != Access::Public {
        responses.insert("409".into(), error_response("Refused by the routing core for a reason of state."));
        responses.insert("503".into(), error_response("Not committed (no leader or quorum); nothing changed."));
        responses.insert("504".into(), error_response("Outcome unknown; read state before retrying."));
    }
    responses
}

/// Path and query parameters of a route.
fn parameters(o: &Operation) -> Vec<Value> {
    let mut parameters = Vec::new();
    if o.path.contains("{id}") {
        parameters.push(json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }));
    }
    if o.path.contains("{site}") {
        let site = json!({ "type": "integer", "minimum": 1 });
        parameters.push(json!({ "name": "site", "in": "path", "required": true, "schema": site }));
    }
    if o.path == "/v1/config" && o.method == "put" {
        parameters
            .push(json!({ "name": "dry_run", "in": "query", "required": false, "schema": { "type": "boolean" } }));
    }
    if o.path == "/v1/config" && o.method == "get" {
        parameters.push(json!({ "name": "stale", "in": "query", "required": false, "schema": { "type": "boolean" } }));
    }
    if o.path == "/v1/audit" {
        for (name, kind) in [("from", "integer"), ("to", "integer"), ("actor", "string"), ("limit", "integer")] {
            parameters.push(json!({ "name": name, "in": "query", "required": false, "schema": { "type": kind } }));
        }
    }
    if o.path == "/v1/ingress" {
        for (name, pattern) in [("did", "^\\+?[0-9]{1,32}$"), ("queue", "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,95}$")] {
            let schema = json!({ "type": "string", "pattern": pattern });
            let description = "Exactly one of did and queue.";
            parameters.push(
                json!({ "name": name, "in": "query", "required": false, "schema": schema, "description": description }),
            );
        }
    }
    if o.path.starts_with("/v1/reports/") {
        parameters.extend(report_parameters());
    }
    if o.websocket {
        parameters.push(json!({ "name": "token", "in": "query", "required": false, "schema": { "type": "string" }, "description": "Bearer token, for browsers (they cannot set headers on an upgrade)." }));
    }
    parameters
}

/// The query parameters of both report routes.
fn report_parameters() -> Vec<Value> {
    let query = |name: &str, required: bool, schema: Value| json!({ "name": name, "in": "query", "required": required, "schema": schema });
    let id = json!({ "type": "string", "minLength": 1 });
    vec![
        query("from", true, json!({ "type": "integer", "minimum": 0 })),
        query("to", true, json!({ "type": "integer", "minimum": 0 })),
        query("interval", false, json!({ "enum": ["15m", "30m", "60m", "day"], "default": "60m" })),
        query("queue", false, id.clone()),
        query("gate", false, id),
        query("service_level_ms", false, json!({ "type": "integer", "minimum": 0 })),
        query("format", false, json!({ "enum": ["json", "csv"], "default": "json" })),
    ]
}

fn object(properties: Value) -> Value {
    json!({ "type": "object", "properties": properties })
}

/// A string id as the core accepts it.
fn id_schema() -> Value {
    json!({ "type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,95}$" })
}

fn count_schema() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

fn optional_count_schema() -> Value {
    json!({ "type": ["integer", "null"], "minimum": 0 })
}

/// Adds every schema of `group` (a JSON object) to `schemas`.
fn add_schemas(schemas: &mut Map<String, Value>, group: Value) {
    if let Value::Object(group) = group {
        schemas.extend(group);
    }
}

fn schemas() -> Value {
    let mut schemas = Map::new();
    add_schemas(&mut schemas, basic_schemas());
    add_schemas(&mut schemas, config_schemas());
    add_schemas(&mut schemas, view_schemas());
    add_schemas(&mut schemas, request_and_live_schemas());
    schemas.insert("AuditEntries".into(), json!({ "type": "array", "items": object(json!({ "at": { "type": "integer", "minimum": 0, "description": "Unix ms, the cluster's clock." }, "actor": { "type": "string" }, "role": { "enum": ["supervisor", "admin"] }, "action": { "type": "string" }, "target": { "type": "string", "description": "kind:id words, e.g. `call:c1 queue:support`; empty for whole-config writes." }, "outcome": { "type": "string" } })) }));
    schemas.insert("QueueReport".into(), queue_report_schema());
    schemas.insert("OperatorReport".into(), operator_report_schema());
    schemas.insert("AlarmPolicy".into(), json!({ "type": "object", "description": "An alarm raises at the queue's alarm_depth / alarm_longest_wait_ms and clears at or below its clear level, once raised for hold_ms. Absent fields take the defaults.", "properties": { "depth_clear_percent": { "type": "integer", "minimum": 0, "maximum": 99, "description": "depth clear level: raise - max(1, ceil(raise * (100 - p) / 100)); default 80" }, "longest_wait_clear_percent": { "type": "integer", "minimum": 0, "maximum": 99, "description": "longest-wait clear level: raise * p / 100; default 80" }, "hold_ms": { "type": "integer", "minimum": 0, "maximum": 3600000, "description": "default 30000" }, "queues": { "type": "object", "description": "queue id -> explicit clear levels (kept below the raise level)", "additionalProperties": { "type": "object", "properties": { "depth_clear": { "type": ["integer", "null"] }, "longest_wait_clear_ms": { "type": ["integer", "null"] } }, "additionalProperties": false } } }, "additionalProperties": false }));
    schemas.insert("Webhooks".into(), json!({ "type": "array", "maxItems": lineup_core::WEBHOOKS_MAX_COUNT, "items": { "type": "object", "properties": { "id": { "type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,95}$" }, "url": { "type": "string", "description": "http:// or https:// (checked against the system CA bundle)" }, "secret": { "type": "string", "description": "HMAC-SHA256 key of the Lineup-Signature header, 16 to 256 bytes; always shown as (redacted), which put back keeps the current one" }, "events": { "type": "array", "minItems": 1, "items": { "enum": ["alarm_raised", "alarm_cleared", "site_unreachable", "site_back", "site_lost"] } }, "enabled": { "type": "boolean", "description": "default true" } }, "required": ["id", "url", "secret", "events"], "additionalProperties": false } }));
    schemas.insert("IngressPolicy".into(), json!({ "type": "object", "properties": { "dids": { "type": "array", "maxItems": lineup_core::ingress::INGRESS_DIDS_MAX_COUNT, "items": { "type": "object", "properties": { "did": { "type": "string", "pattern": "^\\+?[0-9]{1,32}$", "maxLength": lineup_core::ingress::DID_MAX_BYTES }, "gate": id_schema(), "prefer_sites": { "type": "array", "maxItems": lineup_core::ingress::INGRESS_PREFERRED_SITES_MAX, "uniqueItems": true, "items": { "type": "integer", "minimum": 1 } } }, "required": ["did", "gate"], "additionalProperties": false } } }, "additionalProperties": false }));
    schemas.insert("IngressAnswer".into(), object(json!({ "did": { "type": ["string", "null"] }, "queue": { "type": "string" }, "gate": { "type": ["string", "null"] }, "ttl_ms": count_schema(), "fallback": { "type": "boolean" }, "sites": { "type": "array", "items": object(json!({ "site": { "type": "integer", "minimum": 1 }, "target": { "type": "string", "description": "the site's SIP URI" }, "score": count_schema(), "reason": { "enum": ["free_operator", "staffed", "unstaffed", "unreachable", "fallback"] }, "free_operators": count_schema(), "staffed_operators": count_schema(), "waiting_callers": count_schema(), "expected_wait_ms": optional_count_schema() })) } })));
    schemas.insert("CallbackPolicy".into(), json!({ "type": "object", "description": "Numbers are compared without a leading '+'. Absent lists take the defaults (emergency numbers and premium ranges denied).", "properties": { "allowed_patterns": { "type": "array", "items": { "type": "string" }, "description": "Asterisk-style patterns (X, Z, N, [1-5], '.', '!'); empty: any number" }, "denied_numbers": { "type": "array", "items": { "type": "string", "pattern": "^\\+?[0-9]{1,32}$" } }, "denied_prefixes": { "type": "array", "items": { "type": "string", "pattern": "^\\+?[0-9]{1,32}$" } } }, "additionalProperties": false }));
    Value::Object(schemas)
}

/// Errors, identity, readiness.
fn basic_schemas() -> Value {
    let (int, opt_int) = (count_schema(), optional_count_schema());
    json!({
        "Error": object(json!({ "error": { "type": "string" }, "code": { "type": "string" }, "field": { "type": "string" }, "kind": { "type": "string" }, "id": { "type": "string" } })),
        "Me": object(json!({ "name": { "type": "string" }, "role": { "enum": ["viewer", "supervisor", "admin"] } })),
        "Status": object(json!({ "status": { "type": "string" } })),
        "Object": { "type": "object" },
        "Readiness": object(json!({ "ready": { "type": "boolean" }, "degraded": { "type": "boolean" }, "degraded_edges": { "type": "array", "items": { "type": "string" } }, "clock_alarm": { "type": ["string", "null"] }, "problems": { "type": "array", "items": { "type": "string" } }, "site": int, "raft_role": { "type": "string" }, "leader": opt_int })),
    })
}

/// The routing configuration and what applying it changed.
fn config_schemas() -> Value {
    let (id, int, opt_int) = (id_schema(), count_schema(), optional_count_schema());
    json!({
        "RoutingConfigSet": object(json!({
            "schedules": { "type": "array", "items": schema_ref("ScheduleConfig") },
            "queues": { "type": "array", "items": schema_ref("QueueConfig") },
            "gates": { "type": "array", "items": schema_ref("GateConfig") },
            "operators": { "type": "array", "items": schema_ref("OperatorConfig") },
        })),
        "QueueConfig": { "type": "object", "description": "lineup_core::QueueConfig; unknown fields are refused, absent ones take defaults.", "properties": { "id": id, "name": { "type": "string" }, "weight": int, "default_priority": int, "max_wait_ms": opt_int, "max_waiting": int, "wrap_up_ms": int, "ring_timeout_ms": int, "service_level_ms": int, "schedule": { "type": ["string", "null"] }, "alarm_longest_wait_ms": opt_int, "alarm_depth": opt_int }, "required": ["id"] },
        "GateConfig": { "type": "object", "properties": { "id": id, "queue": id, "whisper": { "type": ["string", "null"] }, "priority": opt_int, "required_skills": { "type": "object" } }, "required": ["id", "queue"] },
        "OperatorConfig": { "type": "object", "properties": { "id": id, "name": { "type": "string" }, "site": int, "pin_hash": { "type": "string" }, "mode": { "enum": ["persistent", "ring"] }, "endpoint": { "type": ["string", "null"] }, "skills": { "type": "object" }, "memberships": { "type": "object", "additionalProperties": int } }, "required": ["id"] },
        "ScheduleConfig": { "type": "object", "properties": { "id": id, "time_zone": { "type": "string" }, "weekly": { "type": "array" }, "holidays": { "type": "array" } }, "required": ["id", "time_zone", "weekly"] },
        "ConfigChange": object(json!({ "action": { "enum": ["added", "changed", "removed"] }, "kind": { "enum": ["schedule", "queue", "gate", "operator"] }, "id": { "type": "string" }, "fields": { "type": "array", "items": { "type": "string" } } })),
        "ConfigApplied": object(json!({ "dry_run": { "type": "boolean" }, "changes": { "type": "array", "items": schema_ref("ConfigChange") } })),
        "ObjectApplied": object(json!({ "changes": { "type": "array", "items": schema_ref("ConfigChange") } })),
    })
}

/// The read views: queues, gates, operators, calls, the cluster.
fn view_schemas() -> Value {
    let (id, int, opt_int, any) = (id_schema(), count_schema(), optional_count_schema(), json!({}));
    json!({
        "QueueRow": object(json!({ "queue": id, "name": { "type": "string" }, "weight": int, "waiting": int, "callbacks_waiting": int, "longest_wait_ms": opt_int, "eta_ms": opt_int, "logged_in": int, "staffed": int, "available": int, "busy": int, "stats": { "type": "object" }, "alarm_longest_wait": { "type": "boolean" }, "alarm_depth": { "type": "boolean" }, "service_level_permille": opt_int, "abandon_rate_permille": opt_int, "gates": { "type": "array", "items": schema_ref("GateRow") } })),
        "GateRow": object(json!({ "gate": id, "queue": id, "waiting": int, "longest_wait_ms": opt_int, "stats": { "type": "object" }, "service_level_permille": opt_int, "abandon_rate_permille": opt_int })),
        "OperatorRow": object(json!({ "operator": id, "name": { "type": "string" }, "home_site": int, "mode": { "enum": ["persistent", "ring"] }, "state": { "enum": ["offline", "available", "offered", "busy", "wrap_up", "break"] }, "break_reason": { "type": ["string", "null"] }, "call": { "type": ["string", "null"] }, "site": opt_int, "since_ms": int, "time_in_state_ms": int, "rest_until_ms": opt_int, "queues": { "type": "array", "items": id } })),
        "CallRow": object(json!({ "call": id, "status": { "enum": ["waiting", "offered", "connected", "callback_waiting", "callback_offered", "callback_connected"] }, "queue": id, "gate": { "type": ["string", "null"] }, "priority": int, "order_seq": int, "global_order": { "type": "array", "items": int, "minItems": 3, "maxItems": 3, "description": "Sort ascending, element by element, for the global serving order." }, "entry_site": int, "operator": { "type": ["string", "null"] }, "since_ms": int, "wait_ms": int, "position": opt_int, "eta_ms": opt_int, "callback": { "type": "boolean" }, "caller_number": { "type": ["string", "null"] }, "caller_name": { "type": ["string", "null"] } })),
        "QueuesAnswer": object(json!({ "now_ms": int, "index": int, "queues": { "type": "array", "items": schema_ref("QueueRow") } })),
        "OperatorsAnswer": object(json!({ "now_ms": int, "index": int, "operators": { "type": "array", "items": schema_ref("OperatorRow") } })),
        "CallsAnswer": object(json!({ "now_ms": int, "index": int, "calls": { "type": "array", "items": schema_ref("CallRow") } })),
        "ClusterStatus": object(json!({ "leader": opt_int, "term": int, "members": { "type": "array", "items": object(json!({ "site": int, "voter": { "type": "boolean" }, "reachable": { "type": ["boolean", "null"] }, "lag_entries": opt_int, "health": any, "site_state": { "type": "string", "enum": ["up", "unreachable", "lost"] }, "unreachable_since_ms": opt_int })) } })),
    })
}

/// Action request bodies and answers, the widget's views and live messages.
fn request_and_live_schemas() -> Value {
    let (id, int, opt_int) = (id_schema(), count_schema(), optional_count_schema());
    json!({
        "StateRequest": { "type": "object", "properties": { "state": { "enum": ["available", "break", "offline"] }, "reason": { "type": "string", "description": "Required for break, refused otherwise." } }, "required": ["state"], "additionalProperties": false },
        "MemberRequest": { "type": "object", "properties": { "site": int, "address": { "type": "string" } }, "required": ["site", "address"], "additionalProperties": false },
        "PullRequest": { "type": "object", "properties": { "call": { "type": ["string", "null"] } }, "additionalProperties": false },
        "ReassignRequest": { "type": "object", "properties": { "queue": id, "keep_age": { "type": "boolean", "default": true } }, "required": ["queue"], "additionalProperties": false },
        "MonitorRequest": { "type": "object", "properties": { "mode": { "enum": ["listen", "whisper", "barge"] }, "endpoint": { "type": "string", "maxLength": 128, "pattern": "^[A-Za-z0-9@._+-]+/[A-Za-z0-9/@._+-]+$" }, "site": { "type": ["integer", "null"], "minimum": 0 } }, "required": ["mode", "endpoint"], "additionalProperties": false },
        "PriorityRequest": { "type": "object", "properties": { "priority": { "type": "integer", "minimum": 0, "maximum": 255 } }, "required": ["priority"], "additionalProperties": false },
        "CallbackRequest": { "type": "object", "properties": { "number": { "type": "string", "pattern": "^\\+?[0-9]{3,15}$" } }, "required": ["number"], "additionalProperties": false },
        "ActionDone": object(json!({ "ok": { "type": "boolean" }, "response": { "description": "lineup_core::Response, e.g. \"Done\" or {\"Pulled\": {call, fence}}" } })),
        "WidgetLink": object(json!({ "token": { "type": "string", "pattern": "^[0-9a-f]{32}$" }, "url": { "type": "string", "description": "Relative to the node's base address." } })),
        "PositionView": object(json!({ "type": { "enum": ["position", "ended"] }, "call": id, "status": { "type": "string" }, "queue": id, "position": opt_int, "eta_ms": opt_int })),
        "LiveMessage": { "type": "object", "description": "See the crate documentation of lineup_api::live for every message type.", "properties": { "type": { "enum": ["snapshot", "snapshot_operators", "snapshot_calls", "snapshot_end", "operator", "call", "call_ended", "alarm", "queues", "cluster"] }, "seq": int, "index": int, "now_ms": int }, "required": ["type", "seq"] },
    })
}

/// One row per queue (and gate) and interval.
fn queue_report_schema() -> Value {
    let int = count_schema();
    report_schema(&[
        ("queue", json!({ "type": "string" })),
        ("gate", json!({ "type": ["string", "null"] })),
        ("interval_start", json!({ "type": "integer", "minimum": 0, "description": "Unix ms." })),
        ("offered", int.clone()),
        ("answered", int.clone()),
        ("answered_within_sl", int.clone()),
        ("abandoned", int.clone()),
        ("abandoned_before_sl", int.clone()),
        ("abandoned_after_sl", int.clone()),
        ("timed_out", int.clone()),
        ("full", int.clone()),
        ("closed", int.clone()),
        ("other", int.clone()),
        ("service_level_threshold_ms", int.clone()),
        (
            "service_level",
            json!({ "type": ["number", "null"], "minimum": 0, "maximum": 1, "description": "answered_within_sl / (offered - abandoned_before_sl)." }),
        ),
        ("asa_s", json!({ "type": ["number", "null"], "minimum": 0 })),
        (
            "aht_s",
            json!({ "type": ["number", "null"], "minimum": 0, "description": "Talk + wrap-up per answered call." }),
        ),
        ("talk_s", json!({ "type": "number", "minimum": 0 })),
        ("wrap_up_s", json!({ "type": "number", "minimum": 0 })),
        ("longest_wait_s", json!({ "type": "number", "minimum": 0 })),
        ("callbacks_promised", int.clone()),
        ("callbacks_made", int.clone()),
        ("callbacks_answered", int.clone()),
    ])
}

/// One row per operator and interval.
fn operator_report_schema() -> Value {
    let int = count_schema();
    let seconds = json!({ "type": "number", "minimum": 0 });
    report_schema(&[
        ("operator", json!({ "type": "string" })),
        ("interval_start", json!({ "type": "integer", "minimum": 0, "description": "Unix ms." })),
        ("calls_taken", int.clone()),
        ("talk_s", seconds.clone()),
        ("wrap_up_s", seconds.clone()),
        ("break_s", seconds.clone()),
        (
            "breaks",
            json!({ "type": "object", "additionalProperties": seconds.clone(), "description": "Break seconds by reason." }),
        ),
        ("available_s", seconds.clone()),
        ("logged_in_s", seconds),
        ("logins", int.clone()),
        (
            "occupancy",
            json!({ "type": ["number", "null"], "minimum": 0, "maximum": 1, "description": "(talk + wrap-up) / (logged in - break)." }),
        ),
    ])
}

/// An array of report rows with every field required.
fn report_schema(fields: &[(&str, Value)]) -> Value {
    let properties: Map<String, Value> =
        fields.iter().map(|(name, schema)| (name.to_string(), schema.clone())).collect();
    let required: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
    json!({ "type": "array", "items": { "type": "object", "properties": properties, "required": required } })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for o in OPERATIONS {
        let entry = paths.entry(o.path.to_string()).or_insert_with(|| json!({}));
        entry[o.method] = operation(o);
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
            "schemas": schemas(),
        },
    })
}

pub async fn serve_document() -> Json<Value> {
    Json(document())
}
