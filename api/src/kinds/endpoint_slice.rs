//! EndpointSlices (`discovery.k8s.io/v1`): what the service proxy routes to.

use serde_json::{Value, json};

use super::{BuiltinKind, KindOps, Printer, Typed};
use crate::meta::NameRule;
use crate::patch::schema;
use crate::printer::{AGE, Column, NAME, age, at, col, list_at, list_with_more, name, str_at};

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::discovery::v1::EndpointSlice>(),
    ops: KindOps {
        name_rule: NameRule::Dns1123Subdomain,
        create_keeps_status: false,
        prepare_for_create: super::nothing_on_create,
        prepare_for_update: super::nothing_on_update,
        defaults: super::no_defaults,
        validate: super::no_validation,
        deletion_grace: super::no_deletion_grace,
        spec_finalizers: false,
        delete_returns_object: false,
        unnamed_propagation: super::Unnamed::Background,
        printer: Printer {
            columns: COLUMNS,
            row,
            conditions: super::no_row_conditions,
        },
        field_label,
        patch: Some(&schema::DISCOVERY_V1_ENDPOINT_SLICE),
    },
};

const COLUMNS: &[Column] = &[
    NAME,
    col("AddressType", "string", "Address family of the endpoints."),
    col("Ports", "string", "Ports of the endpoints."),
    col("Endpoints", "string", "Addresses of the endpoints."),
    AGE,
];

fn row(obj: &Value, now: i128) -> Vec<Value> {
    let ports: Vec<String> = list_at(obj, &["ports"])
        .iter()
        .map(|p| match at(p, &["port"]).and_then(Value::as_i64) {
            Some(n) => n.to_string(),
            None => str_at(p, &["name"]).unwrap_or("*").to_owned(),
        })
        .collect();
    let addresses: Vec<String> = list_at(obj, &["endpoints"])
        .iter()
        .flat_map(|e| list_at(e, &["addresses"]))
        .map(|a| a.as_str().unwrap_or("").to_owned())
        .collect();
    vec![
        name(obj),
        json!(str_at(obj, &["addressType"]).unwrap_or("")),
        json!(list_with_more(&ports, ports.len(), "<unset>")),
        json!(list_with_more(&addresses, addresses.len(), "<unset>")),
        age(obj, now),
    ]
}

/// `metadata.namespace` only.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    super::fields::object_meta(object, field)
}
