//! Ingresses (`networking.k8s.io/v1`): rules and backends checked as
//! kube-apiserver does; served by the proxy on every node.

use serde_json::{Value, json};

use super::{BuiltinKind, KindOps, Printer, Typed};
use crate::error::Cause;
use crate::meta::NameRule;
use crate::options::Part;
use crate::patch::schema;
use crate::printer::{AGE, Column, NAME, age, at, col, list_at, load_balancer_addresses, name, non_empty, str_at};

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::networking::v1::Ingress>(),
    ops: KindOps {
        name_rule: NameRule::Dns1123Subdomain,
        create_keeps_status: false,
        prepare_for_create: super::nothing_on_create,
        prepare_for_update: super::nothing_on_update,
        defaults,
        validate,
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
        patch: Some(&schema::NETWORKING_V1_INGRESS),
    },
};

const COLUMNS: &[Column] = &[
    NAME,
    col("Class", "string", "Ingress class."),
    col("Hosts", "string", "Hosts the rules match."),
    col("Address", "string", "Load balancer addresses."),
    col("Ports", "string", "Ports served."),
    AGE,
];

fn row(obj: &Value, now: i128) -> Vec<Value> {
    let rules = list_at(obj, &["spec", "rules"]);
    // The first three non-empty hosts; "more" once a rule is left over.
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        more |= hosts.len() == 3;
        if !more {
            hosts.extend(non_empty(rule, &["host"]));
        }
    }
    let hosts = match (hosts.is_empty(), more) {
        (true, _) => "*".to_owned(),
        (false, true) => format!("{} + {} more...", hosts.join(","), rules.len() - 3),
        (false, false) => hosts.join(","),
    };
    let ports = if list_at(obj, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(obj),
        json!(str_at(obj, &["spec", "ingressClassName"]).unwrap_or("<none>")),
        json!(hosts),
        json!(load_balancer_addresses(at(obj, &["status", "loadBalancer"]))),
        json!(ports),
        age(obj, now),
    ]
}

/// An Ingress's rules and backends, as kube-apiserver checks them.
fn defaults(object: &mut Value) {
    super::default_status(object, json!({"loadBalancer": {}}));
}

fn validate(object: &Value, _old: Option<(&Value, Part)>, causes: &mut Vec<Cause>) {
    let spec = object.get("spec");
    let rules = spec.and_then(|s| s.get("rules")).and_then(Value::as_array);
    let default = spec.and_then(|s| s.get("defaultBackend")).filter(|b| !b.is_null());
    if default.is_none() && rules.is_none_or(Vec::is_empty) {
        causes.push(Cause::invalid(
            "spec",
            "[]",
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(backend) = default {
        validate_ingress_backend(backend, "spec.defaultBackend", causes);
    }
    for (i, rule) in rules.map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
        if let Some(host) = rule.get("host").and_then(Value::as_str).filter(|h| !h.is_empty()) {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if host.parse::<std::net::IpAddr>().is_ok() {
                causes.push(Cause::invalid(
                    format!("spec.rules[{i}].host"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            } else if let Some(reason) = NameRule::Dns1123Subdomain.check(bare) {
                causes.push(Cause::invalid(format!("spec.rules[{i}].host"), host, reason));
            }
        }
        let Some(http) = rule.get("http").filter(|h| !h.is_null()) else {
            continue;
        };
        let paths = http
            .get("paths")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if paths.is_empty() {
            causes.push(Cause::required(format!("spec.rules[{i}].http.paths")));
        }
        for (j, path) in paths.iter().enumerate() {
            let at = format!("spec.rules[{i}].http.paths[{j}]");
            const TYPES: [&str; 3] = ["Exact", "Prefix", "ImplementationSpecific"];
            // The canonical form makes a missing pathType an empty one.
            match path.get("pathType").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                None => causes.push(Cause::required(format!("{at}.pathType"))),
                Some(kind) if !TYPES.contains(&kind) => {
                    causes.push(Cause::not_supported(format!("{at}.pathType"), kind, &TYPES));
                }
                Some(kind) => {
                    let text = path.get("path").and_then(Value::as_str).unwrap_or_default();
                    if kind != "ImplementationSpecific" && !text.starts_with('/') {
                        causes.push(Cause::invalid(format!("{at}.path"), text, "must be an absolute path"));
                    }
                }
            }
            match path.get("backend") {
                Some(backend) => validate_ingress_backend(backend, &format!("{at}.backend"), causes),
                None => causes.push(Cause::required(format!("{at}.backend"))),
            }
        }
    }
}

fn validate_ingress_backend(backend: &Value, at: &str, causes: &mut Vec<Cause>) {
    let service = backend.get("service").filter(|s| !s.is_null());
    let resource = backend.get("resource").filter(|r| !r.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => causes.push(Cause::invalid(at, "", "cannot set both service and resource backends")),
        (None, None) => causes.push(Cause::invalid(at, "", "one of service or resource must be specified")),
        (None, Some(_)) => {}
        (Some(service), None) => {
            let name = service.get("name").and_then(Value::as_str).unwrap_or_default();
            if name.is_empty() {
                causes.push(Cause::required(format!("{at}.service.name")));
            } else if let Some(reason) = NameRule::Dns1035Label.check(name) {
                causes.push(Cause::invalid(format!("{at}.service.name"), name, reason));
            }
            let port = service.get("port");
            let number = port.and_then(|p| p.get("number")).and_then(Value::as_i64);
            let port_name = port
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty());
            match (number, port_name) {
                (Some(_), Some(_)) => causes.push(Cause::invalid(
                    format!("{at}.service.port"),
                    "",
                    "cannot set both port name & port number",
                )),
                (None, None) => causes.push(Cause::invalid(
                    format!("{at}.service.port"),
                    "",
                    "port name or number is required",
                )),
                (Some(n), None) if !(1..=65535).contains(&n) => causes.push(Cause::invalid(
                    format!("{at}.service.port.number"),
                    n,
                    "must be between 1 and 65535, inclusive",
                )),
                _ => {}
            }
        }
    }
}

/// `metadata.namespace` only.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    super::fields::object_meta(object, field)
}
