//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386),
//! strategic merge patch for built-in kinds, and apply patches.
//!
//! Each turns the stored object into the desired one; the registry then
//! treats the result exactly like an update.

pub mod apply;
pub mod schema;
pub mod strategic;

use serde_json::Value;

use crate::body;
use crate::catalog::Resource;
use crate::error::{ApiError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

const ACCEPTED: &str = "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml";

impl PatchType {
    pub fn from_content_type(content_type: Option<&str>) -> Result<PatchType> {
        match body::media_type(content_type).as_str() {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchType::Apply),
            _ => Err(ApiError::UnsupportedMediaType(ACCEPTED.into())),
        }
    }
}

/// Parses a patch body for its type.
pub fn parse(patch_type: PatchType, bytes: &[u8]) -> Result<Value> {
    match patch_type {
        PatchType::Apply => body::parse_yaml(bytes),
        _ => body::parse_json(bytes),
    }
}

/// Applies a JSON, merge or strategic patch to `current`.
pub fn apply(patch_type: PatchType, resource: &Resource, current: &Value, patch: &Value) -> Result<Value> {
    match patch_type {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::BadRequest(format!("the JSON patch is invalid: {e}")))?;
            let mut doc = current.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::invalid(
                    &resource.group,
                    &resource.kind,
                    "",
                    vec![crate::error::Cause {
                        reason: "FieldValueInvalid",
                        message: format!("the JSON patch could not be applied: {e}"),
                        field: String::new(),
                    }],
                )
            })?;
            Ok(doc)
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::BadRequest("a merge patch must be a JSON object".into()));
            }
            let mut doc = current.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
        PatchType::Strategic | PatchType::Apply => match resource.ops.patch {
            Some(root) => strategic::apply(current, patch, root).map_err(|e| match e.status_code() {
                422 => ApiError::invalid(
                    &resource.group,
                    &resource.kind,
                    "",
                    vec![crate::error::Cause {
                        reason: "FieldValueInvalid",
                        message: e.to_string(),
                        field: String::new(),
                    }],
                ),
                _ => ApiError::BadRequest(e.to_string()),
            }),
            // Custom kinds have no patch strategies: apply merges like a
            // merge patch; a strategic patch is refused, as Kubernetes does.
            None if patch_type == PatchType::Apply => apply(PatchType::Merge, resource, current, patch),
            None => Err(ApiError::UnsupportedMediaType(
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
            )),
        },
    }
}
