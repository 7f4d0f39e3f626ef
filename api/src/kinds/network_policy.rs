//! NetworkPolicies (`networking.k8s.io/v1`): which connections the pods a
//! policy selects may accept and make. Defaulted and checked as
//! kube-apiserver does; what a policy allows is decided by
//! `skiff-netpolicy`, whose [`Cidr`] reads `ipBlock`s here too.

use serde_json::{Value, json};
use skiff_netpolicy::Cidr;

use super::{BuiltinKind, KindOps, Printer, Typed, label_selector, set_default};
use crate::error::Cause;
use crate::meta::{self, NameRule};
use crate::options::Part;
use crate::patch::schema;
use crate::printer::{AGE, Column, NAME, age, at, col, format_label_selector, name};

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::networking::v1::NetworkPolicy>(),
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
        patch: Some(&schema::NETWORKING_V1_NETWORK_POLICY),
    },
};

/// As kubectl prints them: `POD-SELECTOR` is `app=web`, or `<none>` for the
/// empty selector (every pod of the namespace).
const COLUMNS: &[Column] = &[
    NAME,
    col("Pod-Selector", "string", "The pods the policy applies to."),
    AGE,
];

fn row(obj: &Value, now: i128) -> Vec<Value> {
    vec![
        name(obj),
        json!(format_label_selector(at(obj, &["spec", "podSelector"]))),
        age(obj, now),
    ]
}

const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];
const POLICY_TYPES: [&str; 2] = ["Ingress", "Egress"];
const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
const CIDR_FORMAT: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

/// Kubernetes' defaults: the empty `podSelector` (Go's is not a pointer),
/// `policyTypes` Ingress plus Egress when there are egress rules, and TCP
/// for every port without a protocol.
fn defaults(object: &mut Value) {
    let spec = meta::object_mut(object).entry("spec").or_insert(Value::Null);
    if spec.is_null() {
        *spec = json!({});
    }
    set_default(spec, "podSelector", json!({}));
    let has_egress = !list(spec, "egress").is_empty();
    if list(spec, "policyTypes").is_empty() {
        let types = if has_egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        meta::object_mut(spec).insert("policyTypes".into(), types);
    }
    for direction in ["ingress", "egress"] {
        let rules = spec.get_mut(direction).and_then(Value::as_array_mut);
        for rule in rules.into_iter().flatten() {
            let ports = rule.get_mut("ports").and_then(Value::as_array_mut);
            for port in ports.into_iter().flatten() {
                set_default(port, "protocol", json!("TCP"));
            }
        }
    }
}

/// kube-apiserver's `ValidateNetworkPolicySpec`: the pod selector, each
/// rule's ports and peers, and the policy types.
fn validate(object: &Value, _old: Option<(&Value, Part)>, causes: &mut Vec<Cause>) {
    let Some(spec) = object.get("spec") else { return };
    label_selector::validate(spec.get("podSelector"), "spec.podSelector", causes);
    for (direction, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in list(spec, direction).iter().enumerate() {
            let at = format!("spec.{direction}[{i}]");
            for (j, port) in list(rule, "ports").iter().enumerate() {
                validate_port(port, &format!("{at}.ports[{j}]"), causes);
            }
            for (j, peer) in list(rule, peers).iter().enumerate() {
                validate_peer(peer, &format!("{at}.{peers}[{j}]"), causes);
            }
        }
    }
    let types = list(spec, "policyTypes");
    if types.len() > POLICY_TYPES.len() {
        causes.push(Cause::invalid(
            "spec.policyTypes",
            Value::from(types.to_vec()),
            "may not specify more than two policyTypes",
        ));
        return;
    }
    for (i, kind) in types.iter().enumerate() {
        let kind = kind.as_str().unwrap_or_default();
        if !POLICY_TYPES.contains(&kind) {
            causes.push(Cause::not_supported(
                format!("spec.policyTypes[{i}]"),
                kind,
                &POLICY_TYPES,
            ));
        }
    }
}

/// A protocol of the three, and `port` a number in range (then `endPort`,
/// if any, in range and not below it) or a port name (then no `endPort`).
fn validate_port(port: &Value, at: &str, causes: &mut Vec<Cause>) {
    if let Some(protocol) = port.get("protocol").and_then(Value::as_str)
        && !PROTOCOLS.contains(&protocol)
    {
        causes.push(Cause::not_supported(format!("{at}.protocol"), protocol, &PROTOCOLS));
    }
    let end = port.get("endPort").and_then(Value::as_i64);
    let end_at = format!("{at}.endPort");
    match port.get("port") {
        Some(Value::Number(number)) => {
            let number = number.as_i64().unwrap_or_default();
            if !(1..=65535).contains(&number) {
                causes.push(Cause::invalid(format!("{at}.port"), number, PORT_RANGE));
            }
            if let Some(end) = end {
                if end < number {
                    // kube-apiserver reports `port`'s value here.
                    causes.push(Cause::invalid(
                        &end_at,
                        number,
                        "must be greater than or equal to `port`",
                    ));
                }
                if !(1..=65535).contains(&end) {
                    causes.push(Cause::invalid(&end_at, end, PORT_RANGE));
                }
            }
        }
        Some(Value::String(port_name)) => {
            if let Some(end) = end {
                causes.push(Cause::invalid(
                    &end_at,
                    end,
                    "may not be specified when `port` is non-numeric",
                ));
            }
            for problem in port_name_errors(port_name) {
                causes.push(Cause::invalid(format!("{at}.port"), port_name, problem));
            }
        }
        _ => {
            if let Some(end) = end {
                causes.push(Cause::invalid(
                    &end_at,
                    end,
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

/// Why `name` is not an IANA service name (`IsValidPortName`), one reason
/// per rule it breaks.
fn port_name_errors(name: &str) -> Vec<&'static str> {
    let mut errors = Vec::new();
    if name.len() > 15 {
        errors.push("must be no more than 15 characters");
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        errors.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        errors.push("must contain at least one letter (a-z)");
    }
    if name.contains("--") {
        errors.push("must not contain consecutive hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') {
        errors.push("must not begin or end with a hyphen");
    }
    errors
}

/// At least one of `podSelector`, `namespaceSelector` and `ipBlock`, and
/// `ipBlock` only alone; each valid.
fn validate_peer(peer: &Value, at: &str, causes: &mut Vec<Cause>) {
    let present = |field: &str| peer.get(field).filter(|v| !v.is_null());
    let (pods, namespaces, block) = (present("podSelector"), present("namespaceSelector"), present("ipBlock"));
    label_selector::validate(pods, &format!("{at}.podSelector"), causes);
    label_selector::validate(namespaces, &format!("{at}.namespaceSelector"), causes);
    if let Some(block) = block {
        validate_ip_block(block, &format!("{at}.ipBlock"), causes);
    }
    match [pods, namespaces, block].iter().flatten().count() {
        0 => causes.push(Cause {
            reason: "FieldValueRequired",
            message: "Required value: must specify a peer".into(),
            field: at.to_owned(),
        }),
        1 => {}
        _ if block.is_some() => causes.push(Cause::forbidden(at, "may not specify both ipBlock and another peer")),
        _ => {}
    }
}

/// `cidr` a CIDR, and each `except` a CIDR strictly inside it.
fn validate_ip_block(block: &Value, at: &str, causes: &mut Vec<Cause>) {
    let text = block.get("cidr").and_then(Value::as_str).unwrap_or_default();
    if text.is_empty() {
        causes.push(Cause::required(format!("{at}.cidr")));
        return;
    }
    let Ok(cidr) = text.parse::<Cidr>() else {
        causes.push(Cause::invalid(format!("{at}.cidr"), text, CIDR_FORMAT));
        return;
    };
    for (i, except) in list(block, "except").iter().enumerate() {
        let text = except.as_str().unwrap_or_default();
        match text.parse::<Cidr>() {
            Err(_) => causes.push(Cause::invalid(format!("{at}.except[{i}]"), text, CIDR_FORMAT)),
            Ok(except) if !cidr.contains_strictly(except) => causes.push(Cause::invalid(
                format!("{at}.except[{i}]"),
                text,
                "must be a strict subset of `cidr`",
            )),
            Ok(_) => {}
        }
    }
}

/// The list at `field` of `value`; empty when absent.
fn list<'a>(value: &'a Value, field: &str) -> &'a [Value] {
    value
        .get(field)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `metadata.namespace` only.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    super::fields::object_meta(object, field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(mut object: Value) -> Value {
        defaults(&mut object);
        object
    }

    fn causes(spec: Value) -> Vec<String> {
        let object = defaulted(json!({"metadata": {"name": "p"}, "spec": spec}));
        let mut causes = Vec::new();
        validate(&object, None, &mut causes);
        causes
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn defaults_are_kubernetes_own() {
        assert_eq!(
            defaulted(json!({"metadata": {"name": "p"}}))["spec"],
            json!({"podSelector": {}, "policyTypes": ["Ingress"]})
        );
        let object = defaulted(json!({"spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}],
            "egress": [{"ports": [{"port": "dns"}]}],
        }}));
        assert_eq!(object["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(object["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(object["spec"]["ingress"][0]["ports"][1]["protocol"], "UDP");
        assert_eq!(object["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
        let egress_only = defaulted(json!({"spec": {"policyTypes": ["Egress"], "egress": [{}]}}));
        assert_eq!(egress_only["spec"]["policyTypes"], json!(["Egress"]));
        let no_egress_rules = defaulted(json!({"spec": {"egress": []}}));
        assert_eq!(no_egress_rules["spec"]["policyTypes"], json!(["Ingress"]));
    }

    #[test]
    fn valid_policies_pass() {
        for spec in [
            json!({}),
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
            json!({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{
                "from": [
                    {"podSelector": {"matchLabels": {"app": "client"}}},
                    {"namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "In", "values": ["dev"]}]},
                     "podSelector": {}},
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.3.4/32"]}},
                    {"ipBlock": {"cidr": "2001:db8::/32", "except": ["2001:db8:1::/48"]}},
                ],
                "ports": [{"port": 80}, {"port": "http", "protocol": "TCP"}, {"port": 8000, "endPort": 8080},
                          {"port": 53, "protocol": "UDP"}, {"protocol": "SCTP"}, {"port": 9, "endPort": 9}],
            }]}),
        ] {
            assert_eq!(causes(spec.clone()), Vec::<String>::new(), "{spec}");
        }
    }

    #[test]
    fn invalid_policies_name_their_fields() {
        let peer = |peer: Value| json!({"ingress": [{"from": [peer]}]});
        let port = |port: Value| json!({"egress": [{"ports": [port]}]});
        let cases = [
            (
                json!({"podSelector": {"matchLabels": {"app": "not valid"}}}),
                "spec.podSelector.matchLabels: Invalid value: \"not valid\"",
            ),
            (
                peer(json!({})),
                "spec.ingress[0].from[0]: Required value: must specify a peer",
            ),
            (
                peer(json!({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}})),
                "spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer",
            ),
            (
                peer(json!({"ipBlock": {"cidr": "10.0.0.0/8"}, "namespaceSelector": {}})),
                "spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer",
            ),
            (
                peer(json!({"ipBlock": {"cidr": ""}})),
                "spec.ingress[0].from[0].ipBlock.cidr: Required value",
            ),
            (
                peer(json!({"ipBlock": {"cidr": "10.0.0.0/33"}})),
                "spec.ingress[0].from[0].ipBlock.cidr: Invalid value: \"10.0.0.0/33\": must be a valid CIDR value",
            ),
            (
                peer(json!({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}})),
                "spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: \"11.0.0.0/16\": must be a strict subset of `cidr`",
            ),
            (
                peer(json!({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}})),
                "must be a strict subset of `cidr`",
            ),
            (
                peer(json!({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["nope"]}})),
                "spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: \"nope\": must be a valid CIDR value",
            ),
            (
                peer(json!({"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Lt"}]}})),
                "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].operator: Invalid value: \"Lt\"",
            ),
            (
                port(json!({"port": 80, "protocol": "ICMP"})),
                "spec.egress[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
            ),
            (
                port(json!({"port": 0})),
                "spec.egress[0].ports[0].port: Invalid value: \"0\": must be between 1 and 65535, inclusive",
            ),
            (
                port(json!({"port": 70000})),
                "spec.egress[0].ports[0].port: Invalid value: \"70000\"",
            ),
            (
                port(json!({"port": "HTTP"})),
                "spec.egress[0].ports[0].port: Invalid value: \"HTTP\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            ),
            (
                port(json!({"port": "8080"})),
                "spec.egress[0].ports[0].port: Invalid value: \"8080\": must contain at least one letter (a-z)",
            ),
            (
                port(json!({"port": "a-very-long-port-name"})),
                "must be no more than 15 characters",
            ),
            (port(json!({"port": "a--b"})), "must not contain consecutive hyphens"),
            (port(json!({"port": "-ab"})), "must not begin or end with a hyphen"),
            (
                port(json!({"endPort": 90})),
                "spec.egress[0].ports[0].endPort: Invalid value: \"90\": may not be specified when `port` is not specified",
            ),
            (
                port(json!({"port": "http", "endPort": 90})),
                "spec.egress[0].ports[0].endPort: Invalid value: \"90\": may not be specified when `port` is non-numeric",
            ),
            (
                port(json!({"port": 100, "endPort": 90})),
                "spec.egress[0].ports[0].endPort: Invalid value: \"100\": must be greater than or equal to `port`",
            ),
            (
                port(json!({"port": 100, "endPort": 70000})),
                "spec.egress[0].ports[0].endPort: Invalid value: \"70000\": must be between 1 and 65535, inclusive",
            ),
            (
                json!({"policyTypes": ["Ingress", "Sideways"]}),
                "spec.policyTypes[1]: Unsupported value: \"Sideways\": supported values: \"Ingress\", \"Egress\"",
            ),
            (
                json!({"policyTypes": ["Ingress", "Egress", "Ingress"]}),
                "spec.policyTypes: Invalid value: \"[\"Ingress\",\"Egress\",\"Ingress\"]\": may not specify more than two policyTypes",
            ),
        ];
        for (spec, expected) in cases {
            let found = causes(spec.clone());
            assert!(
                found.iter().any(|c| c.contains(expected)),
                "{spec}: {expected} not in {found:#?}"
            );
        }
    }

    #[test]
    fn rows_print_the_pod_selector() {
        let row = |spec: Value| row(&json!({"metadata": {"name": "p"}, "spec": spec}), 0)[1].clone();
        assert_eq!(row(json!({"podSelector": {}})), "<none>");
        assert_eq!(row(json!({"podSelector": {"matchLabels": {"app": "web"}}})), "app=web");
        assert_eq!(
            row(json!({"podSelector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}})),
            "app=web,tier in (a,b)"
        );
    }
}
