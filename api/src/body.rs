//! Request bodies: JSON, YAML or Kubernetes protobuf in, one JSON value
//! out; and the strict field checks `fieldValidation` asks for.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::catalog::{Resource, Shape};
use crate::error::{ApiError, Result};
use crate::options::FieldValidation;
use crate::patch::PatchType;

/// The largest request body accepted, as kube-apiserver's default.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
const ACCEPTED_OBJECT_TYPES: &str = "application/json, application/yaml, application/vnd.kubernetes.protobuf";

/// The media type without parameters, lower-cased.
pub fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Decodes an object body (create, update) by its content type.
pub fn decode_object(content_type: Option<&str>, bytes: &[u8]) -> Result<Value> {
    match media_type(content_type).as_str() {
        "application/json" | "" | "*/*" => parse_json(bytes),
        "application/yaml" | "application/x-yaml" | "text/yaml" => parse_yaml(bytes),
        PROTOBUF => {
            use crate::protobuf::ProtobufError as E;
            let mut object = crate::protobuf::decode_envelope(bytes).map_err(|e| match e {
                E::UnknownKind { .. } | E::Unsupported { .. } => {
                    ApiError::UnsupportedMediaType(format!("{e}; accepted: {ACCEPTED_OBJECT_TYPES}"))
                }
                E::Schema => {
                    tracing::error!(error = %e, "protobuf schema table is inconsistent");
                    ApiError::Internal
                }
                other => ApiError::BadRequest(other.to_string()),
            })?;
            drop_unset_strings(&mut object);
            Ok(object)
        }
        _ => Err(ApiError::UnsupportedMediaType(ACCEPTED_OBJECT_TYPES.into())),
    }
}

/// Protobuf cannot tell an empty string from an unset one, and Go writes
/// every string field; the JSON a client would send leaves them out.
fn drop_unset_strings(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !matches!(v, Value::Null) && v.as_str() != Some(""));
            map.values_mut().for_each(drop_unset_strings);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_unset_strings),
        _ => {}
    }
}

/// Parses JSON, rejecting duplicate fields (which `serde_json::Value`
/// would silently collapse to the last one).
pub fn parse_json(bytes: &[u8]) -> Result<Value> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue::deserialize(&mut deserializer)
        .and_then(|v| deserializer.end().map(|()| v.0))
        .map_err(|e| ApiError::BadRequest(format!("the request body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Parses YAML (which also accepts JSON); duplicate keys are errors.
pub fn parse_yaml(bytes: &[u8]) -> Result<Value> {
    serde_yaml::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("the request body is not valid YAML: {e}")))
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> std::result::Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let StrictValue(value) = access.next_value()?;
            if map.insert(key.clone(), value).is_some() {
                return Err(serde::de::Error::custom(format!("duplicate field \"{key}\"")));
            }
        }
        Ok(Value::Object(map))
    }
}

/// Field paths present (and not null) in `raw` but absent from its
/// canonical form: the fields the kind's schema does not know.
pub fn unknown_fields(raw: &Value, canonical: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk_unknown(raw, canonical, String::new(), &mut found);
    found
}

fn walk_unknown(raw: &Value, canonical: &Value, path: String, found: &mut Vec<String>) {
    match (raw, canonical) {
        (Value::Object(raw), Value::Object(canonical)) => {
            for (key, value) in raw {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match canonical.get(key) {
                    Some(known) => walk_unknown(value, known, child, found),
                    None if value.is_null() => {}
                    None => found.push(child),
                }
            }
        }
        (Value::Array(raw), Value::Array(canonical)) => {
            for (i, (value, known)) in raw.iter().zip(canonical).enumerate() {
                walk_unknown(value, known, format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// The canonical form of a body, and the warnings `fieldValidation=Warn`
/// returns; `Strict` turns unknown fields into a 400, as Kubernetes does.
pub fn canonicalize(resource: &Resource, raw: Value, validation: FieldValidation) -> Result<(Value, Vec<String>)> {
    let (canonical, unknown) = match &resource.shape {
        Shape::Builtin { canonicalize, .. } => {
            let canonical = canonicalize(&raw).map_err(|e| {
                ApiError::BadRequest(format!(
                    "{} in version \"{}\" cannot be handled as a {}: {e}",
                    resource.kind,
                    resource.api_version(),
                    resource.kind
                ))
            })?;
            let unknown = unknown_fields(&raw, &canonical);
            let mut canonical = canonical;
            if let Err(errors) = crate::quantity::canonicalize_object(&resource.group, &resource.kind, &mut canonical) {
                let causes = errors
                    .into_iter()
                    .map(|(field, message)| crate::error::Cause {
                        reason: "FieldValueInvalid",
                        message,
                        field,
                    })
                    .collect();
                let name = crate::meta::name(&canonical).unwrap_or_default().to_string();
                return Err(ApiError::invalid(&resource.group, &resource.kind, &name, causes));
            }
            (canonical, unknown)
        }
        Shape::Custom {
            schema: Some(schema), ..
        } => {
            let mut pruned = raw;
            let unknown = crate::structural::prune_and_default(schema, &mut pruned);
            (pruned, unknown)
        }
        Shape::Custom { schema: None, .. } => return Ok((raw, Vec::new())),
    };
    if unknown.is_empty() || validation == FieldValidation::Ignore {
        return Ok((canonical, Vec::new()));
    }
    let messages: Vec<String> = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
    match validation {
        FieldValidation::Strict => Err(ApiError::BadRequest(format!(
            "strict decoding error: {}",
            messages.join(", ")
        ))),
        _ => Ok((canonical, messages)),
    }
}

const ACCEPTED_PATCHES: &str = "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml";

/// The patch type a PATCH's content type names.
pub fn patch_type(content_type: Option<&str>) -> Result<PatchType> {
    match media_type(content_type).as_str() {
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchType::Apply),
        _ => Err(ApiError::UnsupportedMediaType(ACCEPTED_PATCHES.into())),
    }
}

/// Parses a patch body for its type.
pub fn parse_patch(patch_type: PatchType, bytes: &[u8]) -> Result<Value> {
    match patch_type {
        PatchType::Apply => parse_yaml(bytes),
        _ => parse_json(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicate_fields_are_rejected() {
        assert!(parse_json(br#"{"a":1,"b":{"c":1}}"#).is_ok());
        let err = parse_json(br#"{"a":1,"b":{"c":1,"c":2}}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate field \"c\""), "{err}");
        assert!(parse_json(b"{").is_err());
        assert!(parse_json(br#"{"a":1} trailing"#).is_err());
    }

    #[test]
    fn unknown_fields_are_named_by_path() {
        let raw = json!({"spec": {"foo": 1, "containers": [{"name": "a", "bogus": true}], "empty": null}});
        let canonical = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(
            unknown_fields(&raw, &canonical),
            ["spec.containers[0].bogus", "spec.foo"]
        );
    }

    #[test]
    fn strict_validation_rejects_and_warn_reports() {
        let catalog = crate::catalog::Catalog::new();
        let cm = catalog.lookup("", "v1", "configmaps").unwrap();
        let raw = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "datum": {}});
        let err = canonicalize(&cm, raw.clone(), FieldValidation::Strict).unwrap_err();
        assert_eq!(err.to_string(), "strict decoding error: unknown field \"datum\"");
        let raw = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "datum": 1});
        let (_, warnings) = canonicalize(&cm, raw.clone(), FieldValidation::Warn).unwrap();
        assert_eq!(warnings, ["unknown field \"datum\""]);
        let (_, warnings) = canonicalize(&cm, raw, FieldValidation::Ignore).unwrap();
        assert!(warnings.is_empty());
        let wrong_type = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": 5});
        assert!(matches!(
            canonicalize(&cm, wrong_type, FieldValidation::Strict),
            Err(ApiError::BadRequest(_))
        ));
    }
}
