//! Services: type and ports defaulted and checked as kube-apiserver does. Their
//! addresses (ClusterIPs, node ports) are allocated in the same transaction
//! as the write, by [`crate::services`].

use serde_json::{Value, json};

use super::set_default;
use super::{BuiltinKind, KindOps, Printer, Typed};
use crate::error::Cause;
use crate::meta::NameRule;
use crate::options::Part;
use crate::patch::schema;
use crate::printer::{
    AGE, Column, NAME, age, at, col, format_labels, int_at, list_at, load_balancer_addresses, name, non_empty, str_at,
    wide,
};

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::core::v1::Service>(),
    ops: KindOps {
        name_rule: NameRule::Dns1035Label,
        create_keeps_status: false,
        prepare_for_create: super::nothing_on_create,
        prepare_for_update: super::nothing_on_update,
        defaults,
        validate,
        deletion_grace: super::no_deletion_grace,
        spec_finalizers: false,
        delete_returns_object: true,
        unnamed_propagation: super::Unnamed::Background,
        printer: Printer {
            columns: COLUMNS,
            row,
            conditions: super::no_row_conditions,
        },
        field_label,
        patch: Some(&schema::CORE_V1_SERVICE),
    },
};

const COLUMNS: &[Column] = &[
    NAME,
    col("Type", "string", "How the service is exposed."),
    col("Cluster-IP", "string", "Virtual IP inside the cluster."),
    col("External-IP", "string", "Addresses reachable from outside the cluster."),
    col("Port(s)", "string", "Ports exposed, with node ports."),
    AGE,
    wide("Selector", "string", "Labels of the pods the service routes to."),
];

fn row(obj: &Value, now: i128) -> Vec<Value> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let kind = non_empty(spec, &["type"]).unwrap_or("ClusterIP");
    let cluster_ip = list_at(spec, &["clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| non_empty(spec, &["clusterIP"]))
        .unwrap_or("<none>");
    let external: Vec<&str> = list_at(spec, &["externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external_ip = match kind {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_owned(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let lb = load_balancer_addresses(at(obj, &["status", "loadBalancer"]));
            let mut all: Vec<&str> = lb.split(',').filter(|s| !s.is_empty()).collect();
            all.extend(&external);
            if all.is_empty() {
                "<pending>".to_owned()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(spec, &["externalName"]).unwrap_or("").to_owned(),
        _ => "<unknown>".to_owned(),
    };
    let ports: Vec<String> = list_at(spec, &["ports"])
        .iter()
        .map(|p| {
            let port = int_at(p, &["port"]);
            let protocol = non_empty(p, &["protocol"]).unwrap_or("TCP");
            match int_at(p, &["nodePort"]) {
                n if n > 0 => format!("{port}:{n}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_owned()
    } else {
        ports.join(",")
    };
    vec![
        name(obj),
        json!(kind),
        json!(cluster_ip),
        json!(external_ip),
        json!(ports),
        age(obj, now),
        json!(format_labels(spec.get("selector"))),
    ]
}

fn defaults(object: &mut Value) {
    super::default_status(object, json!({"loadBalancer": {}}));
    let Some(spec) = object.get_mut("spec") else { return };
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    for port in spec
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        set_default(port, "protocol", json!("TCP"));
        if port.get("targetPort").is_none()
            && let Some(p) = port.get("port").cloned()
        {
            port["targetPort"] = p;
        }
    }
}

/// A Service's type and ports, as kube-apiserver checks them (the
/// addresses are checked where they are allocated, in `services`).
fn validate(object: &Value, _old: Option<(&Value, Part)>, causes: &mut Vec<Cause>) {
    let spec = object.get("spec");
    let kind = spec
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    const TYPES: [&str; 4] = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
    if !TYPES.contains(&kind) {
        causes.push(Cause::not_supported("spec.type", kind, &TYPES));
    }
    let ports = spec.and_then(|s| s.get("ports")).and_then(Value::as_array);
    if kind == "ExternalName" {
        if spec
            .and_then(|s| s.get("externalName"))
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.push(Cause::required("spec.externalName"));
        }
    } else if ports.is_none_or(Vec::is_empty)
        && spec.and_then(|s| s.get("clusterIP")).and_then(Value::as_str) != Some("None")
    {
        causes.push(Cause::required("spec.ports"));
    }
    let ports = ports.map(Vec::as_slice).unwrap_or_default();
    let mut names = std::collections::BTreeSet::new();
    let mut numbers = std::collections::BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let field = |name: &str| format!("spec.ports[{i}].{name}");
        let duplicate = |field: String, value: String| Cause {
            reason: "FieldValueDuplicate",
            message: format!("Duplicate value: {value}"),
            field,
        };
        let name = port.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            if ports.len() > 1 {
                causes.push(Cause::required(field("name")));
            }
        } else if let Some(reason) = NameRule::Dns1123Label.check(name) {
            causes.push(Cause::invalid(field("name"), name, reason));
        } else if !names.insert(name) {
            causes.push(duplicate(field("name"), format!("\"{name}\"")));
        }
        let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&number) {
            causes.push(Cause::invalid(
                field("port"),
                number,
                "must be between 1 and 65535, inclusive",
            ));
        }
        const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];
        let protocol = port.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        if !PROTOCOLS.contains(&protocol) {
            causes.push(Cause::not_supported(field("protocol"), protocol, &PROTOCOLS));
        }
        if !numbers.insert((number, protocol)) {
            causes.push(duplicate(
                "spec.ports".into(),
                format!("core.ServicePort{{Name:\"{name}\", Protocol:\"{protocol}\", Port:{number}}}"),
            ));
        }
        match port.get("targetPort") {
            Some(Value::Number(n)) if !n.as_i64().is_some_and(|n| (1..=65535).contains(&n)) => {
                causes.push(Cause::invalid(
                    field("targetPort"),
                    n,
                    "must be between 1 and 65535, inclusive",
                ));
            }
            Some(Value::String(text))
                if text.parse::<u16>().is_err() && NameRule::Dns1123Label.check(text).is_some() =>
            {
                causes.push(Cause::invalid(
                    field("targetPort"),
                    text,
                    "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                ));
            }
            _ => {}
        }
    }
}

/// `spec.clusterIP` and `spec.type`, besides `metadata.namespace`.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    match field {
        "spec.clusterIP" => Some(super::fields::string_at(object, &["spec", "clusterIP"])),
        "spec.type" => Some(super::fields::string_at(object, &["spec", "type"])),
        _ => super::fields::object_meta(object, field),
    }
}
