//! `wasm-default-limits`: an admission Mutate plugin. A Pod created with
//! `spec.runtimeClassName: wasmtime` gets a memory and a CPU limit on every
//! container and init container that sets none, as an RFC 6902 JSON patch,
//! so no Wasm instance runs unbounded.
//!
//! * The default is the configuration's, unless the container requests
//!   more of that resource: then its request becomes the limit (a limit
//!   below the request would make the Pod invalid).
//! * A container's existing limits are never changed.
//! * Updates, deletes, other kinds and other runtime classes are left
//!   `unchanged`, and so is a Pod whose containers all have both limits.
//!
//! Configuration (all fields optional):
//! `{"runtimeClassName": "wasmtime", "memory": "128Mi", "cpu": "500m"}`.

use std::cell::RefCell;

use serde_json::{Map, Value, json};

wit_bindgen::generate!({
    path: "../../wit",
    world: "admission-mutate",
});

use skiff::plugins::admission::Operation;

#[derive(Debug, Clone, PartialEq)]
struct Config {
    runtime_class_name: String,
    /// `(resource, default limit)`: memory first, then cpu.
    defaults: Vec<(&'static str, String)>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            runtime_class_name: "wasmtime".to_string(),
            defaults: vec![("memory", "128Mi".to_string()), ("cpu", "500m".to_string())],
        }
    }
}

thread_local! {
    static CONFIG: RefCell<Config> = RefCell::new(Config::default());
}

fn parse_config(text: &str) -> Result<Config, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("config is not JSON: {e}"))?;
    let Some(fields) = value.as_object() else {
        return Err("config must be a JSON object".to_string());
    };
    let mut config = Config::default();
    let string = |key: &str| -> Result<Option<String>, String> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(other) => Err(format!("config.{key} must be a non-empty string, not {other}")),
        }
    };
    if let Some(name) = string("runtimeClassName")? {
        config.runtime_class_name = name;
    }
    for (resource, default) in &mut config.defaults {
        if let Some(limit) = string(resource)? {
            if parse_quantity(&limit).is_none() {
                return Err(format!("config.{resource}: {limit:?} is not a quantity"));
            }
            *default = limit;
        }
    }
    Ok(config)
}

/// A Kubernetes quantity (`128Mi`, `0.5`, `500m`, `1e3`) in base units, as
/// far as comparing two of them needs.
fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim().strip_prefix('+').unwrap_or(text.trim());
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() || number == "." {
        return None;
    }
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            10f64.powi(digits.parse().ok()?)
        }
    };
    Some(number * scale)
}

/// A quantity as JSON gives it: a string, or (from YAML `cpu: 1`) a number.
fn quantity_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The limits `container` lacks, with the value each gets.
fn missing_limits(config: &Config, container: &Value) -> Map<String, Value> {
    let resources = &container["resources"];
    let mut missing = Map::new();
    for (resource, default) in &config.defaults {
        if !resources["limits"][*resource].is_null() {
            continue;
        }
        let request = quantity_text(&resources["requests"][*resource]);
        let limit = match request {
            Some(request) if parse_quantity(&request) > parse_quantity(default) => request,
            _ => default.clone(),
        };
        missing.insert(resource.to_string(), Value::String(limit));
    }
    missing
}

/// The patch operations that give every container of `pod` its limits.
fn patch(config: &Config, pod: &Value) -> Vec<Value> {
    let mut ops = Vec::new();
    for field in ["containers", "initContainers"] {
        let Some(containers) = pod["spec"][field].as_array() else {
            continue;
        };
        for (index, container) in containers.iter().enumerate() {
            let missing = missing_limits(config, container);
            if missing.is_empty() {
                continue;
            }
            let base = format!("/spec/{field}/{index}/resources");
            match &container["resources"] {
                Value::Null => ops.push(json!({"op": "add", "path": base, "value": {"limits": missing}})),
                Value::Object(resources) => match resources.get("limits") {
                    None | Some(Value::Null) => {
                        ops.push(json!({"op": "add", "path": format!("{base}/limits"), "value": missing}));
                    }
                    Some(Value::Object(_)) => {
                        for (resource, limit) in missing {
                            let path = format!("{base}/limits/{resource}");
                            ops.push(json!({"op": "add", "path": path, "value": limit}));
                        }
                    }
                    // Malformed: left for the Pod's validation to refuse.
                    Some(_) => {}
                },
                _ => {}
            }
        }
    }
    ops
}

fn decide(config: &Config, request: &Request) -> Result<Mutation, String> {
    let is_pod = request.group.is_empty() && request.kind == "Pod";
    let (true, Operation::Create, Some(text)) = (is_pod, request.operation, &request.object) else {
        return Ok(Mutation::Unchanged);
    };
    let pod: Value = serde_json::from_str(text).map_err(|e| format!("the object is not JSON: {e}"))?;
    if pod["spec"]["runtimeClassName"].as_str() != Some(config.runtime_class_name.as_str()) {
        return Ok(Mutation::Unchanged);
    }
    let ops = patch(config, &pod);
    if ops.is_empty() {
        return Ok(Mutation::Unchanged);
    }
    Ok(Mutation::Patch(Value::Array(ops).to_string()))
}

struct WasmDefaultLimits;

impl Guest for WasmDefaultLimits {
    fn init(config: String) -> Result<(), String> {
        let config = parse_config(&config)?;
        CONFIG.with(|c| *c.borrow_mut() = config);
        Ok(())
    }

    fn mutate(request: Request) -> Result<Mutation, String> {
        CONFIG.with(|c| decide(&c.borrow(), &request))
    }
}

export!(WasmDefaultLimits);

#[cfg(test)]
mod tests {
    use super::*;
    use skiff::plugins::admission::UserInfo;

    fn request(pod: Value) -> Request {
        Request {
            operation: Operation::Create,
            group: String::new(),
            version: "v1".into(),
            kind: "Pod".into(),
            resource: "pods".into(),
            sub_resource: None,
            namespace: Some("default".into()),
            name: "p".into(),
            user: UserInfo {
                username: "admin".into(),
                groups: Vec::new(),
            },
            dry_run: false,
            object: Some(pod.to_string()),
            old_object: None,
        }
    }

    fn patch_of(pod: Value) -> Option<Value> {
        match decide(&Config::default(), &request(pod)).unwrap() {
            Mutation::Patch(text) => Some(serde_json::from_str(&text).unwrap()),
            Mutation::Unchanged => None,
            Mutation::Denied(d) => panic!("denied: {}", d.message),
        }
    }

    #[test]
    fn each_missing_level_is_added_once() {
        let pod = json!({"spec": {"runtimeClassName": "wasmtime", "containers": [
            {"name": "a"},
            {"name": "b", "resources": {}},
            {"name": "c", "resources": {"limits": {"cpu": "1"}}},
            {"name": "d", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
        ], "initContainers": [{"name": "i", "resources": {"limits": {"memory": "64Mi"}}}]}});
        let expected = json!([
            {"op": "add", "path": "/spec/containers/0/resources", "value": {"limits": {"memory": "128Mi", "cpu": "500m"}}},
            {"op": "add", "path": "/spec/containers/1/resources/limits", "value": {"memory": "128Mi", "cpu": "500m"}},
            {"op": "add", "path": "/spec/containers/2/resources/limits/memory", "value": "128Mi"},
            {"op": "add", "path": "/spec/initContainers/0/resources/limits/cpu", "value": "500m"},
        ]);
        assert_eq!(patch_of(pod), Some(expected));
    }

    #[test]
    fn a_larger_request_becomes_the_limit() {
        let pod = json!({"spec": {"runtimeClassName": "wasmtime", "containers": [
            {"name": "a", "resources": {"requests": {"memory": "1Gi", "cpu": "100m"}}},
        ]}});
        let expected = json!([
            {"op": "add", "path": "/spec/containers/0/resources/limits", "value": {"memory": "1Gi", "cpu": "500m"}},
        ]);
        assert_eq!(patch_of(pod), Some(expected));
    }

    #[test]
    fn other_pods_and_complete_pods_are_unchanged() {
        let runc = json!({"spec": {"runtimeClassName": "runc", "containers": [{"name": "a"}]}});
        let none = json!({"spec": {"containers": [{"name": "a"}]}});
        let done = json!({"spec": {"runtimeClassName": "wasmtime", "containers": [
            {"name": "a", "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}},
        ]}});
        assert_eq!(patch_of(runc), None);
        assert_eq!(patch_of(none), None);
        assert_eq!(patch_of(done), None);
        let mut update = request(json!({"spec": {"runtimeClassName": "wasmtime", "containers": [{"name": "a"}]}}));
        update.operation = Operation::Update;
        assert!(matches!(
            decide(&Config::default(), &update).unwrap(),
            Mutation::Unchanged
        ));
    }

    #[test]
    fn the_config_overrides_defaults_and_checks_quantities() {
        let config = parse_config(r#"{"runtimeClassName":"wasm","memory":"64Mi"}"#).unwrap();
        assert_eq!(config.runtime_class_name, "wasm");
        assert_eq!(
            config.defaults,
            vec![("memory", "64Mi".to_string()), ("cpu", "500m".to_string())]
        );
        assert!(parse_config(r#"{"cpu":"lots"}"#).is_err());
        assert!(parse_config(r#"{"memory":5}"#).is_err());
    }

    #[test]
    fn quantities_compare_in_base_units() {
        assert_eq!(parse_quantity("128Mi"), Some(128.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("1E"), Some(1e18));
        assert!(parse_quantity("1G") < parse_quantity("1Gi"));
        assert_eq!(parse_quantity("abc"), None);
        assert_eq!(parse_quantity("1Xi"), None);
    }
}
