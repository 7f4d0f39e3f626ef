//! Puts the bootstrap policy (`skiff_auth::bootstrap`) in the store on
//! every start, as kube-apiserver's RBAC post-start hook does: missing
//! roles and bindings are created; existing ones keep whatever was added
//! to them and get back what they lack (rules, aggregation selectors,
//! subjects, labels, annotations), unless their
//! `rbac.authorization.kubernetes.io/autoupdate` annotation is `"false"`.

use serde_json::{Map, Value};

use crate::auth::UserInfo;
use crate::error::{ApiError, Result};
use crate::options::{Part, WriteOptions};
use crate::registry::Registry;

const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

/// Creates or completes every object of the bootstrap policy.
pub async fn reconcile(registry: &Registry) -> Result<()> {
    let policy = skiff_auth::bootstrap::policy();
    let encode = |object: Result<Value, serde_json::Error>| {
        object.map_err(|error| {
            tracing::error!(%error, "the bootstrap policy does not encode");
            ApiError::Internal
        })
    };
    let mut objects = Vec::new();
    for role in &policy.cluster_roles {
        objects.push(("clusterroles", "ClusterRole", encode(serde_json::to_value(role))?));
    }
    for binding in &policy.cluster_role_bindings {
        objects.push((
            "clusterrolebindings",
            "ClusterRoleBinding",
            encode(serde_json::to_value(binding))?,
        ));
    }
    for role in &policy.roles {
        objects.push(("roles", "Role", encode(serde_json::to_value(role))?));
    }
    for binding in &policy.role_bindings {
        objects.push(("rolebindings", "RoleBinding", encode(serde_json::to_value(binding))?));
    }
    for (plural, kind, mut object) in objects {
        let resource = registry
            .catalog()
            .lookup("rbac.authorization.k8s.io", "v1", plural)
            .ok_or(ApiError::Internal)?;
        object["apiVersion"] = Value::String("rbac.authorization.k8s.io/v1".into());
        object["kind"] = Value::String(kind.into());
        let namespace = crate::meta::namespace(&object).map(String::from);
        let name = crate::meta::name(&object).unwrap_or_default().to_string();
        let options = WriteOptions {
            user: UserInfo::apiserver(),
            field_manager: Some("skiff-apiserver".into()),
            ..Default::default()
        };
        match registry
            .create(&resource, namespace.as_deref(), object.clone(), &options)
            .await
        {
            Ok(_) => continue,
            Err(ApiError::AlreadyExists(_)) => {}
            Err(error) => return Err(error),
        }
        registry
            .update(
                &resource,
                namespace.as_deref(),
                &name,
                Part::Main,
                &options,
                |current| Ok(completed(current, &object)),
            )
            .await?;
    }
    Ok(())
}

/// `current` with what `wanted` has and it lacks, or unchanged if its
/// owner turned automatic updates off.
fn completed(current: &Value, wanted: &Value) -> Value {
    let mut next = current.clone();
    let opted_out = current
        .pointer(&format!("/metadata/annotations/{}", AUTOUPDATE.replace('/', "~1")))
        .and_then(Value::as_str)
        == Some("false");
    if opted_out {
        return next;
    }
    for field in ["labels", "annotations"] {
        if let Some(Value::Object(wanted)) = wanted.pointer(&format!("/metadata/{field}")) {
            let metadata = crate::meta::metadata_mut(&mut next);
            let have = metadata.entry(field).or_insert_with(|| Value::Object(Map::new()));
            if let Some(have) = have.as_object_mut() {
                for (key, value) in wanted {
                    have.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
        }
    }
    for pointer in ["/rules", "/subjects", "/aggregationRule/clusterRoleSelectors"] {
        let Some(Value::Array(wanted)) = wanted.pointer(pointer) else {
            continue;
        };
        let (parent, field) = pointer.rsplit_once('/').unwrap_or_default();
        let Some(holder) = (if parent.is_empty() {
            Some(&mut next)
        } else {
            next.as_object_mut().map(|o| {
                o.entry(parent.trim_start_matches('/'))
                    .or_insert_with(|| Value::Object(Map::new()))
            })
        })
        .and_then(Value::as_object_mut) else {
            continue;
        };
        let have = holder.entry(field).or_insert_with(|| Value::Array(Vec::new()));
        if let Some(have) = have.as_array_mut() {
            for item in wanted {
                if !have.contains(item) {
                    have.push(item.clone());
                }
            }
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn existing_objects_are_completed_not_replaced() {
        let wanted = json!({
            "metadata": {"name": "view", "labels": {"a": "1"}, "annotations": {AUTOUPDATE: "true"}},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]},
        });
        let current = json!({
            "metadata": {"name": "view", "labels": {"a": "mine"}},
            "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}],
        });
        let next = completed(&current, &wanted);
        assert_eq!(next["metadata"]["labels"]["a"], "mine");
        assert_eq!(next["rules"].as_array().unwrap().len(), 2);
        assert_eq!(
            next["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"]["x"],
            "y"
        );
        let mut opted_out = current.clone();
        opted_out["metadata"]["annotations"] = json!({AUTOUPDATE: "false"});
        assert_eq!(completed(&opted_out, &wanted), opted_out);
    }
}
