//! The schemas of the OpenAPI document. Every body and answer a handler serializes is a Rust
//! type whose schema utoipa derives (`ToSchema`, following its serde attributes); the
//! operations table names it by a function over the type, so a schema is referenced only
//! where it is also defined, under the type's own name. Written by hand: only the
//! WebSocket frames (`LiveMessage`, `WidgetMessage`), whose messages are many small
//! borrowed structs in `live.rs`.

use serde_json::{json, Map, Value};
use utoipa::openapi::schema::{ArrayBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::ToSchema;

/// The named schemas a document uses (its `components/schemas`), as JSON.
#[derive(Default)]
pub struct Schemas(Map<String, Value>);

/// A body's or an answer's schema: registers the named schemas it uses, answers the schema
/// to put in place (a `$ref`, or an array of one).
pub type SchemaOf = fn(&mut Schemas) -> Value;

impl Schemas {
    /// Registers `T` and every schema it refers to; answers a reference to it.
    pub fn add<T: ToSchema>(&mut self) -> RefOr<Schema> {
        let name = T::name().into_owned();
        if !self.0.contains_key(&name) {
            self.insert(&name, T::schema());
            let mut nested = Vec::new();
            T::schemas(&mut nested);
            for (nested_name, schema) in nested {
                self.insert(&nested_name, schema);
            }
        }
        Ref::from_schema_name(name).into()
    }

    fn insert(&mut self, name: &str, schema: impl serde::Serialize) {
        // A utoipa schema always serializes (string keys, no non-finite numbers).
        self.0.insert(name.to_string(), serde_json::to_value(schema).unwrap_or_default());
    }

    pub fn into_json(self) -> Value {
        Value::Object(self.0)
    }
}

fn to_json(schema: RefOr<Schema>) -> Value {
    serde_json::to_value(schema).unwrap_or_default()
}

/// A reference to `T`'s derived schema.
pub fn named<T: ToSchema>(schemas: &mut Schemas) -> Value {
    to_json(schemas.add::<T>())
}

/// An array of `T`.
pub fn list_of<T: ToSchema>(schemas: &mut Schemas) -> Value {
    to_json(ArrayBuilder::new().items(schemas.add::<T>()).into())
}

/// The webhook list: an array of at most `WEBHOOKS_MAX_COUNT`.
pub fn webhooks(schemas: &mut Schemas) -> Value {
    let items = schemas.add::<lineup_core::WebhookConfig>();
    to_json(ArrayBuilder::new().items(items).max_items(Some(lineup_core::WEBHOOKS_MAX_COUNT)).into())
}

/// Any JSON object (this document).
pub fn any_object(_: &mut Schemas) -> Value {
    json!({ "type": "object" })
}

/// The messages of `/v1/live`, by hand (see `live.rs` for each message).
pub fn live_message(schemas: &mut Schemas) -> Value {
    let kinds = [
        "snapshot",
        "snapshot_operators",
        "snapshot_calls",
        "snapshot_end",
        "operator",
        "call",
        "call_ended",
        "alarm",
        "queues",
        "cluster",
    ];
    let count = json!({ "type": "integer", "minimum": 0 });
    let schema = json!({
        "type": "object",
        "description": "See the crate documentation of lineup_api::live for every message type.",
        "properties": { "type": { "type": "string", "enum": kinds }, "seq": count, "index": count, "now_ms": count },
        "required": ["type", "seq"],
    });
    schemas.0.insert("LiveMessage".into(), schema);
    json!({ "$ref": "#/components/schemas/LiveMessage" })
}

/// The messages of `/v1/calls/{id}/live`: `position` (with the `PositionView` fields) or
/// `ended`, by hand.
pub fn widget_message(schemas: &mut Schemas) -> Value {
    let call = named::<lineup_core::CallId>(schemas);
    named::<crate::views::PositionView>(schemas);
    let schema = json!({
        "type": "object",
        "description": "`position` carries the PositionView fields; `ended` only the call, then the socket closes.",
        "properties": { "type": { "type": "string", "enum": ["position", "ended"] }, "call": call },
        "required": ["type", "call"],
    });
    schemas.0.insert("WidgetMessage".into(), schema);
    json!({ "$ref": "#/components/schemas/WidgetMessage" })
}

/// `/v1/agent/live`'s messages: the panel (`agent`, with `now_ms`), or `signed_out`.
pub fn agent_message(schemas: &mut Schemas) -> Value {
    named::<crate::agent::AgentAnswer>(schemas);
    let schema = json!({
        "type": "object",
        "description": "`agent` carries the AgentAnswer fields; `signed_out` nothing more, then the socket closes.",
        "properties": { "type": { "type": "string", "enum": ["agent", "signed_out"] } },
        "required": ["type"],
    });
    schemas.0.insert("AgentMessage".into(), schema);
    json!({ "$ref": "#/components/schemas/AgentMessage" })
}
