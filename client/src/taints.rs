//! Taints and tolerations, with Kubernetes' matching rules: shared by
//! the scheduler (which keeps pods off tainted nodes) and the node
//! lifecycle controller (which evicts pods from them).

use k8s_openapi::api::core::v1::{Taint, Toleration};

/// Whether `toleration` tolerates `taint`: the effect matches (an empty
/// effect tolerates every effect) and either the operator is `Exists`
/// (with an empty key tolerating every taint) or it is `Equal` (the
/// default) with the same key and value. Any other operator tolerates
/// nothing.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect_ok = toleration
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key = toleration.key.as_deref().unwrap_or("");
    if !effect_ok || (!key.is_empty() && key != taint.key) {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty() && toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}
