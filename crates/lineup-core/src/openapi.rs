//! JSON schemas the `ToSchema` derives cannot say from a field's type alone: the identifier
//! charset, DIDs and lists bounded by the core's own limits. Built from the same constants
//! the validation uses, so the API's OpenAPI document cannot drift from them.

use crate::callback_policy::{CALLBACK_POLICY_ENTRIES_MAX, CALLBACK_POLICY_ENTRY_MAX_BYTES};
use crate::ids::ID_MAX_BYTES;
use crate::ingress::{DID_MAX_BYTES, INGRESS_PREFERRED_SITES_MAX};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

/// The identifier charset (`ids::validate_id`): letters, digits, `._-`, not starting with `.`.
pub fn id_pattern() -> String {
    format!("^[A-Za-z0-9_-][A-Za-z0-9._-]{{0,{}}}$", ID_MAX_BYTES - 1)
}

/// A string in the identifier charset.
pub fn id_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(id_pattern())).max_length(Some(ID_MAX_BYTES))
}

/// A site number (the node's Raft id).
pub fn site_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0))
}

/// A dialled number: an optional `+`, then digits.
pub fn did_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^\\+?[0-9]{{1,{DID_MAX_BYTES}}}$")))
        .max_length(Some(DID_MAX_BYTES))
}

/// A DID's preferred sites.
pub fn preferred_sites_schema() -> RefOr<Schema> {
    let site = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1));
    ArrayBuilder::new().items(site).max_items(Some(INGRESS_PREFERRED_SITES_MAX)).unique_items(true).into()
}

/// A callback policy's list of numbers or prefixes.
pub fn number_list_schema() -> RefOr<Schema> {
    let number = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^\\+?[0-9]{{1,{CALLBACK_POLICY_ENTRY_MAX_BYTES}}}$")))
        .max_length(Some(CALLBACK_POLICY_ENTRY_MAX_BYTES));
    ArrayBuilder::new().items(number).max_items(Some(CALLBACK_POLICY_ENTRIES_MAX)).into()
}

/// A webhook's id (a plain string field in the identifier charset).
pub fn id_field_schema() -> RefOr<Schema> {
    id_schema().into()
}

/// A DID field.
pub fn did_field_schema() -> RefOr<Schema> {
    did_schema().into()
}
