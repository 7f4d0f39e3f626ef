//! Custom resources checked against their CRD's structural schema (an
//! `openAPIV3Schema`): unknown fields pruned (and reported, for
//! `fieldValidation`), defaults applied, and values validated, as
//! kube-apiserver does for custom resources.
//!
//! Supported keywords: `type`, `properties`, `additionalProperties`,
//! `items`, `required`, `enum`, `default`, `nullable`, `minimum`,
//! `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `minLength`,
//! `maxLength`, `minItems`, `maxItems`, `x-kubernetes-preserve-unknown-fields`,
//! `x-kubernetes-int-or-string`, `x-kubernetes-embedded-resource`. Others
//! (`pattern`, `format`, CEL rules) are accepted and not enforced.

use serde_json::{Map, Value};

use crate::error::Cause;

/// Prunes fields the schema does not declare and applies defaults.
/// Returns the paths of the pruned fields. `apiVersion`, `kind` and
/// `metadata` at the root are left to the generic checks.
pub fn prune_and_default(schema: &Value, object: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    if let Value::Object(map) = object {
        let props = schema.get("properties").and_then(Value::as_object);
        let preserve = preserves_unknown(schema);
        let keys: Vec<String> = map.keys().cloned().collect();
        for key in keys {
            if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match props.and_then(|p| p.get(&key)) {
                Some(sub) => {
                    if let Some(value) = map.get_mut(&key) {
                        walk(sub, value, &key, &mut unknown);
                    }
                }
                None if preserve => {}
                None => {
                    map.remove(&key);
                    unknown.push(key);
                }
            }
        }
        apply_defaults(schema, map, "", &mut unknown);
    }
    unknown
}

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
        || schema.get("x-kubernetes-embedded-resource").and_then(Value::as_bool) == Some(true)
}

fn walk(schema: &Value, value: &mut Value, path: &str, unknown: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            if props.is_none() && additional.is_none() && (preserves_unknown(schema) || schema.get("type").is_none()) {
                return;
            }
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child = format!("{path}.{key}");
                let sub = props.and_then(|p| p.get(&key)).or(additional);
                match sub {
                    Some(sub) => {
                        if let Some(v) = map.get_mut(&key) {
                            walk(sub, v, &child, unknown);
                        }
                    }
                    None if preserves_unknown(schema) => {}
                    None if schema.get("additionalProperties").and_then(Value::as_bool) == Some(true) => {}
                    None => {
                        map.remove(&key);
                        unknown.push(child);
                    }
                }
            }
            apply_defaults(schema, map, path, unknown);
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

fn apply_defaults(schema: &Value, map: &mut Map<String, Value>, path: &str, unknown: &mut Vec<String>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (key, sub) in props {
        if map.get(key).is_none_or(Value::is_null)
            && let Some(default) = sub.get("default")
        {
            let mut value = default.clone();
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            walk(sub, &mut value, &child, unknown);
            map.insert(key.clone(), value);
        }
    }
}

/// Checks `object` against the schema; every problem is a cause.
pub fn validate(schema: &Value, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let (Some(props), Some(map)) = (schema.get("properties").and_then(Value::as_object), object.as_object()) {
        for (key, sub) in props {
            if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(value) = map.get(key) {
                check(sub, value, key, &mut causes);
            }
        }
        required(schema, map, "", &mut causes);
    }
    causes
}

fn required(schema: &Value, map: &Map<String, Value>, path: &str, causes: &mut Vec<Cause>) {
    for name in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
        if let Some(name) = name.as_str()
            && map.get(name).is_none_or(Value::is_null)
        {
            let field = if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            };
            causes.push(Cause::required(field));
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) && schema.get("type").is_some() {
            causes.push(Cause::invalid(
                path,
                "null",
                format!(
                    "{path} in body must be of type {}",
                    schema["type"].as_str().unwrap_or("object")
                ),
            ));
        }
        return;
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    let actual = type_name(value);
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let ok = actual == expected
            || (expected == "number" && actual == "integer")
            || (int_or_string && matches!(actual, "integer" | "string"));
        if !ok {
            causes.push(Cause {
                reason: "FieldValueTypeInvalid",
                message: format!(
                    "Invalid value: \"{actual}\": {path} in body must be of type {expected}: \"{actual}\""
                ),
                field: path.to_string(),
            });
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let shown: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            message: format!("Unsupported value: {value}: supported values: {}", shown.join(", ")),
            field: path.to_string(),
        });
    }
    match value {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            let exclusive_min = schema.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
            let exclusive_max = schema.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && (x < min || (exclusive_min && x == min))
            {
                let relation = if exclusive_min {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                causes.push(Cause::invalid(
                    path,
                    value,
                    format!("{path} in body should be {relation} {min}"),
                ));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && (x > max || (exclusive_max && x == max))
            {
                let relation = if exclusive_max {
                    "less than"
                } else {
                    "less than or equal to"
                };
                causes.push(Cause::invalid(
                    path,
                    value,
                    format!("{path} in body should be {relation} {max}"),
                ));
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                causes.push(Cause::invalid(
                    path,
                    s,
                    format!("{path} in body should be at least {min} chars long"),
                ));
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                causes.push(Cause {
                    reason: "FieldValueTooLong",
                    message: format!("Too long: may not be more than {max} bytes"),
                    field: path.to_string(),
                });
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && len < min
            {
                causes.push(Cause::invalid(
                    path,
                    len,
                    format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && len > max
            {
                causes.push(Cause {
                    reason: "FieldValueTooMany",
                    message: format!("Too many: {len}: must have at most {max} items"),
                    field: path.to_string(),
                });
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), causes);
                }
            }
        }
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, v) in map {
                if let Some(sub) = props.and_then(|p| p.get(key)).or(additional) {
                    check(sub, v, &format!("{path}.{key}"), causes);
                }
            }
            required(schema, map, path, causes);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "minLength": 1},
                        "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
                        "mode": {"type": "string", "enum": ["fast", "slow"]},
                        "ports": {"type": "array", "maxItems": 2, "items": {"type": "object", "properties": {"port": {"type": "integer"}}}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "size": {"x-kubernetes-int-or-string": true}
                    }
                },
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
            }
        })
    }

    #[test]
    fn unknown_fields_are_pruned_and_defaults_applied() {
        let mut object = json!({
            "apiVersion": "x.dev/v1", "kind": "Thing", "metadata": {"name": "a"},
            "spec": {"image": "i", "bogus": 1, "ports": [{"port": 80, "extra": true}], "free": {"anything": [1]}, "labels": {"a": "b"}},
            "other": 2
        });
        let unknown = prune_and_default(&schema(), &mut object);
        assert_eq!(unknown, ["other", "spec.bogus", "spec.ports[0].extra"]);
        assert_eq!(object["spec"]["replicas"], 1);
        assert_eq!(object["spec"]["free"]["anything"], json!([1]));
        assert_eq!(object["metadata"]["name"], "a");
    }

    #[test]
    fn values_are_validated() {
        let object = json!({"spec": {"replicas": 11, "mode": "medium", "ports": [{}, {}, {}], "labels": {"a": 1}, "size": "5%"}});
        let causes = validate(&schema(), &object);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.labels.a",
                "spec.mode",
                "spec.ports",
                "spec.replicas",
                "spec.image"
            ]
        );
        let fine = json!({"spec": {"image": "i", "replicas": 0, "size": 3}, "status": {"ready": true}});
        assert!(validate(&schema(), &fine).is_empty());
        let wrong_type = json!({"spec": "x"});
        assert_eq!(validate(&schema(), &wrong_type)[0].reason, "FieldValueTypeInvalid");
    }
}
