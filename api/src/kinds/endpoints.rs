//! Endpoints (core/v1): the ready addresses of a Service, kept by the
//! endpoints controller.

use serde_json::{Value, json};

use super::{BuiltinKind, KindOps, Printer, Typed};
use crate::meta::NameRule;
use crate::patch::schema;
use crate::printer::{AGE, Column, NAME, age, col, host_port, int_at, list_at, list_with_more, name, str_at};

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::core::v1::Endpoints>(),
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
        patch: Some(&schema::CORE_V1_ENDPOINTS),
    },
};

const COLUMNS: &[Column] = &[NAME, col("Endpoints", "string", "Ready addresses and ports."), AGE];

fn row(obj: &Value, now: i128) -> Vec<Value> {
    let subsets = list_at(obj, &["subsets"]);
    let cell = if subsets.is_empty() {
        "<none>".to_owned()
    } else {
        let mut list = Vec::new();
        let mut total = 0;
        for subset in subsets {
            let ips: Vec<&str> = list_at(subset, &["addresses"])
                .iter()
                .map(|a| str_at(a, &["ip"]).unwrap_or(""))
                .collect();
            let ports = list_at(subset, &["ports"]);
            if ports.is_empty() {
                total += ips.len();
                list.extend(ips.iter().map(|ip| (*ip).to_owned()));
            } else {
                for port in ports {
                    total += ips.len();
                    let p = int_at(port, &["port"]);
                    list.extend(ips.iter().map(|ip| host_port(ip, p)));
                }
            }
        }
        list_with_more(&list, total, "")
    };
    vec![name(obj), json!(cell), age(obj, now)]
}

/// `metadata.namespace` only.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    super::fields::object_meta(object, field)
}
