//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386),
//! strategic merge patch for built-in kinds, and apply patches.
//!
//! Each turns the stored object into the desired one; the registry then
//! treats the result exactly like an update. Everything here is pure; the
//! HTTP layer reads the patch type from the content type
//! ([`crate::body::patch_type`]) and turns a [`PatchError`] into a
//! `Status`.

pub mod apply;
pub mod schema;
pub mod strategic;

use serde_json::Value;

/// The kinds of PATCH body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

/// Why a patch could not be applied. None of these is worth retrying: the
/// patch, not the stored object, is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch is well formed but does not apply to this object
    /// (a JSON patch's failed test, a strategic patch's bad directive).
    #[error("{0}")]
    Invalid(String),
    /// The patch itself is malformed.
    #[error("{0}")]
    Malformed(String),
    /// A strategic merge patch for a kind without patch metadata (custom
    /// resources), which Kubernetes refuses with 415.
    #[error("strategic merge patch is not supported for this kind")]
    StrategicUnsupported,
}

/// Applies a patch to `current`. `root` is the kind's strategic merge patch
/// metadata; without it an apply patch merges like a merge patch and a
/// strategic patch is [`PatchError::StrategicUnsupported`].
pub fn apply(
    patch_type: PatchType,
    root: Option<&'static schema::TypeInfo>,
    current: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| PatchError::Malformed(format!("the JSON patch is invalid: {e}")))?;
            let mut doc = current.clone();
            json_patch::patch(&mut doc, &ops)
                .map_err(|e| PatchError::Invalid(format!("the JSON patch could not be applied: {e}")))?;
            Ok(doc)
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(PatchError::Malformed("a merge patch must be a JSON object".into()));
            }
            let mut doc = current.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
        PatchType::Strategic | PatchType::Apply => match root {
            Some(root) => strategic::apply(current, patch, root).map_err(|e| match e.status_code() {
                422 => PatchError::Invalid(e.to_string()),
                _ => PatchError::Malformed(e.to_string()),
            }),
            // Custom kinds have no patch strategies: apply merges like a
            // merge patch; a strategic patch is refused, as Kubernetes does.
            None if patch_type == PatchType::Apply => apply(PatchType::Merge, None, current, patch),
            None => Err(PatchError::StrategicUnsupported),
        },
    }
}
