//! The rules the registry applies at fixed points, as kube-apiserver's
//! generic registry does: server-set metadata on create and update,
//! defaults, validation, and what a delete does to an object that must
//! linger. What is generic (uid, timestamps, generation, immutable
//! metadata, finalizers) is here; what belongs to one kind is in its
//! [`KindOps`](crate::kinds::KindOps), reached through the resource.
//!
//! Everything here is pure: values in, values (or an `Invalid` error) out.

use serde_json::{Value, json};

use crate::catalog::Resource;
use crate::error::{ApiError, Cause, Result};
use crate::kinds::Unnamed;
use crate::meta;
use crate::options::{DeleteOptions, Part, Propagation, WriteOptions};

/// Characters `generateName` suffixes are drawn from (no vowels, no
/// look-alikes), as Kubernetes uses.
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const GENERATED_SUFFIX_LEN: usize = 5;
const GENERATE_NAME_BASE_MAX: usize = 58;

/// `base` plus a random suffix.
pub fn generate_name(base: &str) -> String {
    let base: String = base.chars().take(GENERATE_NAME_BASE_MAX).collect();
    let random = uuid::Uuid::new_v4();
    let suffix: String = random.as_bytes()[..GENERATED_SUFFIX_LEN]
        .iter()
        .map(|b| NAME_ALPHABET[usize::from(*b) % NAME_ALPHABET.len()] as char)
        .collect();
    format!("{base}{suffix}")
}

/// `apiVersion` and `kind` must name this resource; absent ones are filled.
pub fn check_type_meta(resource: &Resource, object: &mut Value) -> Result<()> {
    if !object.is_object() {
        return Err(ApiError::BadRequest("the request body must be a JSON object".into()));
    }
    let api_version = resource.api_version();
    let map = meta::object_mut(object);
    for (field, expected) in [("apiVersion", api_version.as_str()), ("kind", resource.kind.as_str())] {
        match map.get(field) {
            None | Some(Value::Null) => {
                map.insert(field.into(), Value::String(expected.into()));
            }
            Some(Value::String(s)) if s.is_empty() => {
                map.insert(field.into(), Value::String(expected.into()));
            }
            Some(Value::String(s)) if s == expected => {}
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "the API version in the data ({}) does not match the expected API version ({api_version}) or kind {}",
                    other.as_str().unwrap_or("?"),
                    resource.kind
                )));
            }
        }
    }
    Ok(())
}

/// The body's namespace must match the URL's; it is filled in when absent
/// and dropped for cluster-scoped kinds.
pub fn check_namespace(resource: &Resource, namespace: Option<&str>, object: &mut Value) -> Result<()> {
    let body_ns = meta::namespace(object).map(String::from);
    let metadata = meta::metadata_mut(object);
    if !resource.namespaced {
        metadata.remove("namespace");
        return Ok(());
    }
    let Some(namespace) = namespace else {
        return Err(ApiError::BadRequest(
            "a namespaced object needs a namespace in the URL".into(),
        ));
    };
    match body_ns {
        Some(ns) if ns != namespace => Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request".into(),
        )),
        _ => {
            metadata.insert("namespace".into(), Value::String(namespace.into()));
            Ok(())
        }
    }
}

/// Server-set metadata and defaults for a new object.
pub fn prepare_for_create(resource: &Resource, object: &mut Value, options: &WriteOptions) {
    let metadata = meta::metadata_mut(object);
    metadata.insert("uid".into(), Value::String(uuid::Uuid::new_v4().to_string()));
    metadata.insert("creationTimestamp".into(), Value::String(meta::now_rfc3339()));
    metadata.insert("generation".into(), json!(1));
    for server_owned in ["deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
        metadata.remove(server_owned);
    }
    if resource.has_status() && !resource.ops.create_keeps_status {
        meta::object_mut(object).remove("status");
    }
    default(resource, object);
    (resource.ops.prepare_for_create)(object, options);
}

/// The new state of an object from the stored one and what the client sent.
pub fn prepare_for_update(
    resource: &Resource,
    part: Part,
    old: &Value,
    desired: Value,
    options: &WriteOptions,
) -> Value {
    let mut next = match part {
        Part::Main | Part::Binding => {
            let mut next = desired;
            if resource.has_status() {
                match old.get("status") {
                    Some(status) => next["status"] = status.clone(),
                    None => {
                        meta::object_mut(&mut next).remove("status");
                    }
                }
            }
            next
        }
        Part::Status => {
            let mut next = old.clone();
            match desired.get("status") {
                Some(status) => next["status"] = status.clone(),
                None => {
                    meta::object_mut(&mut next).remove("status");
                }
            }
            // Ownership of status fields is recorded with the write.
            if let Some(fields) = desired.pointer("/metadata/managedFields") {
                meta::metadata_mut(&mut next).insert("managedFields".into(), fields.clone());
            }
            next
        }
    };
    let old_meta = old
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let metadata = meta::metadata_mut(&mut next);
    for immutable in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "name",
        "namespace",
    ] {
        match old_meta.get(immutable) {
            Some(value) => metadata.insert(immutable.into(), value.clone()),
            None => metadata.remove(immutable),
        };
    }
    if !metadata.contains_key("managedFields")
        && let Some(fields) = old_meta.get("managedFields")
    {
        metadata.insert("managedFields".into(), fields.clone());
    }
    default(resource, &mut next);
    (resource.ops.prepare_for_update)(&mut next, old, part, options);
    // Compared with the old object defaulted the same way, so a default
    // added since it was stored does not count as a change.
    let mut old_defaulted = old.clone();
    default(resource, &mut old_defaulted);
    if meta::spec_part(&next) != meta::spec_part(&old_defaulted) {
        let generation = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(0) + 1;
        meta::metadata_mut(&mut next).insert("generation".into(), json!(generation));
    }
    next
}

/// What a delete turns the object into, or `None` to remove it now.
pub fn mark_for_deletion(resource: &Resource, current: &Value, options: &DeleteOptions) -> Option<Value> {
    let mut next = current.clone();
    let mut finalizers = meta::finalizers(current);
    let propagation = options.propagation.or(match resource.ops.unnamed_propagation {
        Unnamed::Orphan { .. } => Some(Propagation::Orphan),
        Unnamed::Background => None,
    });
    let wanted = match propagation {
        Some(Propagation::Orphan) => Some("orphan"),
        Some(Propagation::Foreground) => Some("foregroundDeletion"),
        _ => None,
    };
    if let Some(finalizer) = wanted
        && !finalizers.iter().any(|f| f == finalizer)
    {
        finalizers.push(finalizer.into());
    }
    let grace = (resource.ops.deletion_grace)(current, options);
    let spec_finalizing = resource.ops.spec_finalizers
        && current
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
    if finalizers.is_empty() && grace == 0 && !spec_finalizing {
        return None;
    }
    let metadata = meta::metadata_mut(&mut next);
    if !metadata.contains_key("deletionTimestamp") {
        metadata.insert("deletionTimestamp".into(), Value::String(meta::now_rfc3339()));
        metadata.insert("deletionGracePeriodSeconds".into(), json!(grace));
    }
    if !finalizers.is_empty() {
        metadata.insert("finalizers".into(), json!(finalizers));
    }
    if resource.ops.spec_finalizers {
        next["status"]["phase"] = json!("Terminating");
    }
    Some(next)
}

/// Whether an update to an object being deleted removes it, as the
/// generic registry decides: never while `metadata.finalizers` remain; when
/// the update took away the last of them; or when the object was deleted
/// with no grace period. A pod in its grace period (deleted with
/// `deletionGracePeriodSeconds > 0`, no finalizers) therefore survives its
/// status writes until the node deletes it for good. A kind with
/// [`spec_finalizers`](crate::kinds::KindOps::spec_finalizers) (namespaces)
/// goes once both its `metadata.finalizers` and its `spec.finalizers` are
/// empty.
pub fn update_finishes_deletion(resource: &Resource, current: &Value, next: &Value) -> bool {
    if !meta::is_deleting(next) || !meta::finalizers(next).is_empty() {
        return false;
    }
    if resource.ops.spec_finalizers {
        return next
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty());
    }
    let grace = current
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    !meta::finalizers(current).is_empty() || grace == Some(0)
}

/// Kubernetes' defaults for the fields of the resource's kind.
pub fn default(resource: &Resource, object: &mut Value) {
    (resource.ops.defaults)(object);
}

/// Semantic validation: names, labels, and the required fields of the
/// kinds skiff acts on. `old` is the stored object on update, with the part
/// the update may change.
pub fn validate(resource: &Resource, object: &Value, old: Option<(&Value, Part)>) -> Result<()> {
    let mut causes = Vec::new();
    let name = meta::name(object).unwrap_or_default().to_string();
    if let Some(reason) = resource.ops.name_rule.check(&name) {
        causes.push(Cause::invalid("metadata.name", &name, reason));
    }
    meta::check_labels_and_annotations(object, &mut causes);
    if let Some((old, _)) = old
        && meta::is_deleting(old)
    {
        let before = meta::finalizers(old);
        if meta::finalizers(object).iter().any(|f| !before.contains(f)) {
            causes.push(Cause::forbidden(
                "metadata.finalizers",
                "no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    if let crate::catalog::Shape::Custom {
        schema: Some(schema), ..
    } = &resource.shape
    {
        causes.extend(crate::structural::validate(schema, object));
    }
    (resource.ops.validate)(object, old, &mut causes);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&resource.group, &resource.kind, &name, causes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn resource(group: &str, plural: &str) -> std::sync::Arc<Resource> {
        Catalog::new().lookup(group, "v1", plural).unwrap()
    }

    #[test]
    fn secret_string_data_is_merged_into_data() {
        let secrets = resource("", "secrets");
        let mut secret = json!({
            "metadata": {"name": "s"},
            "data": {"a": "b2xk", "c": "Yw=="},
            "stringData": {"a": "new", "b": "b"},
        });
        default(&secrets, &mut secret);
        assert_eq!(secret.get("stringData"), None, "stringData is write-only");
        assert_eq!(secret["data"], json!({"a": "bmV3", "b": "Yg==", "c": "Yw=="}));
        assert!(validate(&secrets, &secret, None).is_ok());
        let mut bad = json!({"metadata": {"name": "s"}, "stringData": {"a": 1}});
        default(&secrets, &mut bad);
        assert!(validate(&secrets, &bad, None).is_err(), "a non-string value is refused");
    }

    #[test]
    fn generated_names_use_the_kubernetes_alphabet() {
        let name = generate_name("web-");
        assert_eq!(name.len(), 9);
        assert!(name[4..].bytes().all(|b| NAME_ALPHABET.contains(&b)));
        assert_eq!(generate_name(&"x".repeat(80)).len(), 63);
    }

    #[test]
    fn generation_moves_with_spec_only() {
        let deployments = resource("apps", "deployments");
        let old = json!({"metadata": {"name": "d", "generation": 1, "uid": "u"}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let labels_only = json!({"metadata": {"name": "d", "labels": {"a": "b"}}, "spec": {"replicas": 1}});
        let next = prepare_for_update(&deployments, Part::Main, &old, labels_only, &WriteOptions::default());
        assert_eq!(next["metadata"]["generation"], 1);
        assert_eq!(next["metadata"]["uid"], "u");
        assert_eq!(next["status"]["replicas"], 1, "status is kept on a main update");
        let scaled = json!({"metadata": {"name": "d"}, "spec": {"replicas": 3}, "status": {"replicas": 9}});
        let next = prepare_for_update(&deployments, Part::Main, &old, scaled, &WriteOptions::default());
        assert_eq!(next["metadata"]["generation"], 2);
        assert_eq!(next["status"]["replicas"], 1);
        let status = json!({"spec": {"replicas": 7}, "status": {"replicas": 2}});
        let next = prepare_for_update(&deployments, Part::Status, &old, status, &WriteOptions::default());
        assert_eq!(next["spec"]["replicas"], 1, "a status update keeps the spec");
        assert_eq!(next["status"]["replicas"], 2);
        assert_eq!(next["metadata"]["generation"], 1);
    }

    #[test]
    fn finalizers_and_graceful_pods_linger() {
        let configmaps = resource("", "configmaps");
        let plain = json!({"metadata": {"name": "c"}});
        assert!(mark_for_deletion(&configmaps, &plain, &DeleteOptions::default()).is_none());
        let held = json!({"metadata": {"name": "c", "finalizers": ["x"]}});
        let marked = mark_for_deletion(&configmaps, &held, &DeleteOptions::default()).unwrap();
        assert!(meta::is_deleting(&marked));
        let foreground = DeleteOptions {
            propagation: Some(Propagation::Foreground),
            ..DeleteOptions::default()
        };
        let marked = mark_for_deletion(&configmaps, &plain, &foreground).unwrap();
        assert_eq!(meta::finalizers(&marked), vec!["foregroundDeletion"]);

        let pods = resource("", "pods");
        let bound = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n", "terminationGracePeriodSeconds": 5}});
        let marked = mark_for_deletion(&pods, &bound, &DeleteOptions::default()).unwrap();
        assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 5);
        let now = DeleteOptions {
            grace_period_seconds: Some(0),
            ..DeleteOptions::default()
        };
        assert!(mark_for_deletion(&pods, &bound, &now).is_none());
        // A pod nothing runs any more, or asking for no grace, goes at once.
        for phase in ["Succeeded", "Failed"] {
            let done = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n"}, "status": {"phase": phase}});
            assert!(
                mark_for_deletion(&pods, &done, &DeleteOptions::default()).is_none(),
                "{phase}"
            );
        }
        let no_grace =
            json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n", "terminationGracePeriodSeconds": 0}});
        assert!(mark_for_deletion(&pods, &no_grace, &DeleteOptions::default()).is_none());
        let running = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n"}, "status": {"phase": "Running"}});
        let marked = mark_for_deletion(&pods, &running, &DeleteOptions::default()).unwrap();
        assert_eq!(
            marked["metadata"]["deletionGracePeriodSeconds"],
            crate::kinds::pod_spec::DEFAULT_GRACE_SECONDS
        );
    }

    #[test]
    fn pods_are_defaulted_and_validated() {
        let pods = resource("", "pods");
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "busybox", "ports": [{"containerPort": 80}]}]}});
        prepare_for_create(&pods, &mut pod, &WriteOptions::default());
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(pod["status"]["qosClass"], "BestEffort");

        let deployments = resource("apps", "deployments");
        let mut d =
            json!({"metadata": {"name": "d"}, "spec": {"strategy": {}, "template": {"spec": {"containers": []}}}});
        default(&deployments, &mut d);
        assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let mut recreate = json!({"spec": {"strategy": {"type": "Recreate"}}});
        default(&deployments, &mut recreate);
        assert!(recreate["spec"]["strategy"].get("rollingUpdate").is_none());
        validate(&pods, &pod, None).unwrap();

        let bad = json!({"metadata": {"name": "Bad_Name"}, "spec": {"containers": [{"name": "a"}, {"name": "a", "image": "x"}]}});
        let Err(ApiError::Invalid { causes, .. }) = validate(&pods, &bad, None) else {
            panic!("invalid pod accepted")
        };
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            ["metadata.name", "spec.containers[0].image", "spec.containers[1].name"]
        );

        let mut changed = pod.clone();
        changed["spec"]["restartPolicy"] = json!("Never");
        assert!(validate(&pods, &changed, Some((&pod, Part::Main))).is_err());
        let mut bound = pod.clone();
        bound["spec"]["nodeName"] = json!("n1");
        assert!(validate(&pods, &bound, Some((&pod, Part::Main))).is_err());
        validate(&pods, &bound, Some((&pod, Part::Binding))).unwrap();
        let mut new_image = pod.clone();
        new_image["spec"]["containers"][0]["image"] = json!("busybox:2");
        validate(&pods, &new_image, Some((&pod, Part::Main))).unwrap();
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let deployments = resource("apps", "deployments");
        let d = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "y"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let Err(ApiError::Invalid { causes, .. }) = validate(&deployments, &d, None) else {
            panic!("mismatched selector accepted")
        };
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn type_meta_is_filled_or_checked() {
        let configmaps = resource("", "configmaps");
        let mut obj = json!({"metadata": {"name": "c"}});
        check_type_meta(&configmaps, &mut obj).unwrap();
        assert_eq!(
            (obj["apiVersion"].as_str(), obj["kind"].as_str()),
            (Some("v1"), Some("ConfigMap"))
        );
        let mut wrong = json!({"apiVersion": "apps/v1", "kind": "ConfigMap"});
        assert!(matches!(
            check_type_meta(&configmaps, &mut wrong),
            Err(ApiError::BadRequest(_))
        ));
        assert!(check_type_meta(&configmaps, &mut json!([1])).is_err());
    }
}
