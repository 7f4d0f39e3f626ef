//! Per-kind rules the registry applies at fixed points, as Kubernetes'
//! registry strategies do: server-set metadata on create and update,
//! defaults, validation, and what a delete does to an object that must
//! linger.
//!
//! Everything here is pure: values in, values (or an `Invalid` error) out.

use serde_json::{Map, Value, json};

use crate::catalog::Resource;
use crate::error::{ApiError, Cause, Result};
use crate::meta::{self, NameRule};
use crate::registry::{DeleteOptions, Part, Propagation, WriteOptions};

/// Characters `generateName` suffixes are drawn from (no vowels, no
/// look-alikes), as Kubernetes uses.
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const GENERATED_SUFFIX_LEN: usize = 5;
const GENERATE_NAME_BASE_MAX: usize = 58;
const DEFAULT_POD_GRACE_SECONDS: i64 = 30;

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
pub fn prepare_for_create(resource: &Resource, object: &mut Value, _options: &WriteOptions) {
    let metadata = meta::metadata_mut(object);
    metadata.insert("uid".into(), Value::String(uuid::Uuid::new_v4().to_string()));
    metadata.insert("creationTimestamp".into(), Value::String(meta::now_rfc3339()));
    metadata.insert("generation".into(), json!(1));
    for server_owned in ["deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
        metadata.remove(server_owned);
    }
    if resource.has_status() && !matches!((resource.group.as_str(), resource.kind.as_str()), ("", "Node")) {
        meta::object_mut(object).remove("status");
    }
    default(resource, object);
    if crate::crd::is_crd(resource) {
        object["status"] = crate::crd::status(object);
    }
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Pod") => {
            object["status"] = json!({"phase": "Pending", "qosClass": qos_class(object)});
            default_toleration_seconds(object);
        }
        ("batch", "Job") => job_selector(object),
        _ => {}
    }
}

/// How long a pod stays on a node that is not ready or unreachable
/// before it is evicted, unless it says otherwise (kube-apiserver's
/// DefaultTolerationSeconds admission).
const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Adds the NoExecute tolerations for `node.kubernetes.io/not-ready` and
/// `node.kubernetes.io/unreachable` a pod does not already have.
fn default_toleration_seconds(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    let Some(list) = tolerations.as_array_mut() else {
        return;
    };
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let covered = list.iter().any(|t| {
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            let tolerated_key = t.get("key").and_then(Value::as_str).unwrap_or("");
            let exists = t.get("operator").and_then(Value::as_str) == Some("Exists");
            (effect.is_empty() || effect == "NoExecute")
                && (tolerated_key == key || (tolerated_key.is_empty() && exists))
        });
        if !covered {
            list.push(json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }));
        }
    }
}

/// A Job without `manualSelector: true` selects its pods by its own uid:
/// the API generates the selector and the template labels that match it,
/// as kube-apiserver does.
fn job_selector(job: &mut Value) {
    let uid = job.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
    let name = job.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
    let Some(spec) = job.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let template = meta::object_mut(spec.entry("template").or_insert_with(|| json!({})));
    let metadata = meta::object_mut(template.entry("metadata").or_insert_with(|| json!({})));
    let labels = meta::object_mut(metadata.entry("labels").or_insert_with(|| json!({})));
    for (key, value) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        labels.insert(key.into(), value.clone());
    }
}

/// The new state of an object from the stored one and what the client sent.
pub fn prepare_for_update(
    resource: &Resource,
    part: Part,
    old: &Value,
    desired: Value,
    _options: &WriteOptions,
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
    if crate::crd::is_crd(resource) && part != Part::Status {
        next["status"] = crate::crd::status(&next);
    }
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
    let wanted = match options.propagation {
        Some(Propagation::Orphan) => Some("orphan"),
        Some(Propagation::Foreground) => Some("foregroundDeletion"),
        _ => None,
    };
    if let Some(finalizer) = wanted
        && !finalizers.iter().any(|f| f == finalizer)
    {
        finalizers.push(finalizer.into());
    }
    let is_namespace = (resource.group.as_str(), resource.kind.as_str()) == ("", "Namespace");
    // As in Kubernetes, a pod waits for its node to stop it only if one
    // runs it: bound, not finished, and with a grace period (the request's,
    // else the spec's) above zero.
    let pod_grace = options
        .grace_period_seconds
        .or_else(|| {
            current
                .pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(DEFAULT_POD_GRACE_SECONDS);
    let finished = matches!(
        meta::str_field(current, &["status", "phase"]),
        Some("Succeeded" | "Failed")
    );
    let graceful_pod = (resource.group.as_str(), resource.kind.as_str()) == ("", "Pod")
        && meta::str_field(current, &["spec", "nodeName"]).is_some_and(|n| !n.is_empty())
        && !finished
        && pod_grace > 0;
    let namespace_finalizing = is_namespace
        && current
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
    if finalizers.is_empty() && !graceful_pod && !namespace_finalizing {
        return None;
    }
    let metadata = meta::metadata_mut(&mut next);
    if !metadata.contains_key("deletionTimestamp") {
        metadata.insert("deletionTimestamp".into(), Value::String(meta::now_rfc3339()));
        let grace = if graceful_pod { pod_grace } else { 0 };
        metadata.insert("deletionGracePeriodSeconds".into(), json!(grace));
    }
    if !finalizers.is_empty() {
        metadata.insert("finalizers".into(), json!(finalizers));
    }
    if is_namespace {
        next["status"]["phase"] = json!("Terminating");
    }
    Some(next)
}

/// Whether an update to an object being deleted removes it, as the
/// generic registry decides: never while `metadata.finalizers` remain; when
/// the update took away the last of them; or when the object was deleted
/// with no grace period. A pod in its grace period (deleted with
/// `deletionGracePeriodSeconds > 0`, no finalizers) therefore survives its
/// status writes until the node deletes it for good. A namespace goes once
/// both its `metadata.finalizers` and its `spec.finalizers` are empty.
pub fn update_finishes_deletion(resource: &Resource, current: &Value, next: &Value) -> bool {
    if !meta::is_deleting(next) || !meta::finalizers(next).is_empty() {
        return false;
    }
    if (resource.group.as_str(), resource.kind.as_str()) == ("", "Namespace") {
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

/// Kubernetes' defaults for the fields skiff serves.
pub fn default(resource: &Resource, object: &mut Value) {
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Namespace") => {
            let spec = meta::object_mut(meta::object_mut(object).entry("spec").or_insert_with(|| json!({})));
            spec.entry("finalizers").or_insert_with(|| json!(["kubernetes"]));
            if object.pointer("/status/phase").is_none() {
                object["status"] = json!({"phase": "Active"});
            }
        }
        ("", "Pod") => {
            if let Some(spec) = object.get_mut("spec") {
                default_pod_spec(spec);
            }
        }
        ("", "Secret") => {
            set_default(object, "type", json!("Opaque"));
            merge_string_data(object);
        }
        ("", "Service") => {
            if let Some(spec) = object.get_mut("spec") {
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
        }
        ("apps", kind @ ("Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")) => {
            let Some(spec) = object.get_mut("spec") else { return };
            if kind != "DaemonSet" {
                set_default(spec, "replicas", json!(1));
            }
            match kind {
                "Deployment" => {
                    set_default(spec, "revisionHistoryLimit", json!(10));
                    set_default(spec, "progressDeadlineSeconds", json!(600));
                    let strategy =
                        meta::object_mut(meta::object_mut(spec).entry("strategy").or_insert_with(|| json!({})));
                    let kind = strategy.entry("type").or_insert_with(|| json!("RollingUpdate"));
                    if kind.as_str().is_none_or(str::is_empty) {
                        *kind = json!("RollingUpdate");
                    }
                    if strategy.get("type") == Some(&json!("RollingUpdate")) {
                        let rolling = meta::object_mut(strategy.entry("rollingUpdate").or_insert_with(|| json!({})));
                        rolling.entry("maxSurge").or_insert_with(|| json!("25%"));
                        rolling.entry("maxUnavailable").or_insert_with(|| json!("25%"));
                    }
                }
                "StatefulSet" => {
                    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
                    set_default(spec, "revisionHistoryLimit", json!(10));
                    let strategy = meta::object_mut(
                        meta::object_mut(spec)
                            .entry("updateStrategy")
                            .or_insert_with(|| json!({})),
                    );
                    strategy.entry("type").or_insert_with(|| json!("RollingUpdate"));
                    if strategy.get("type") == Some(&json!("RollingUpdate")) {
                        let rolling = meta::object_mut(strategy.entry("rollingUpdate").or_insert_with(|| json!({})));
                        rolling.entry("partition").or_insert_with(|| json!(0));
                    }
                }
                "DaemonSet" => {
                    set_default(spec, "revisionHistoryLimit", json!(10));
                    let strategy = meta::object_mut(
                        meta::object_mut(spec)
                            .entry("updateStrategy")
                            .or_insert_with(|| json!({})),
                    );
                    strategy.entry("type").or_insert_with(|| json!("RollingUpdate"));
                    if strategy.get("type") == Some(&json!("RollingUpdate")) {
                        let rolling = meta::object_mut(strategy.entry("rollingUpdate").or_insert_with(|| json!({})));
                        rolling.entry("maxUnavailable").or_insert_with(|| json!(1));
                        rolling.entry("maxSurge").or_insert_with(|| json!(0));
                    }
                }
                _ => {}
            }
            if let Some(pod) = spec.pointer_mut("/template/spec") {
                default_pod_spec(pod);
            }
        }
        ("batch", "Job") => {
            let Some(spec) = object.get_mut("spec") else { return };
            set_default(spec, "backoffLimit", json!(6));
            set_default(spec, "completionMode", json!("NonIndexed"));
            set_default(spec, "suspend", json!(false));
            set_default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
            // Neither set: one pod, to one completion.
            if spec.get("completions").is_none_or(Value::is_null) && spec.get("parallelism").is_none_or(Value::is_null)
            {
                spec["completions"] = json!(1);
            }
            set_default(spec, "parallelism", json!(1));
            if let Some(pod) = spec.pointer_mut("/template/spec") {
                default_pod_spec(pod);
            }
        }
        ("batch", "CronJob") => {
            let Some(spec) = object.get_mut("spec") else { return };
            set_default(spec, "concurrencyPolicy", json!("Allow"));
            set_default(spec, "suspend", json!(false));
            set_default(spec, "successfulJobsHistoryLimit", json!(3));
            set_default(spec, "failedJobsHistoryLimit", json!(1));
            if let Some(pod) = spec.pointer_mut("/jobTemplate/spec/template/spec") {
                default_pod_spec(pod);
            }
        }
        _ => {}
    }
}

/// A Secret's `stringData` is write-only, as in Kubernetes: its entries
/// are encoded into `data` (overriding keys there) and it is not stored.
/// One that is not a map of strings is left for validation to refuse.
fn merge_string_data(secret: &mut Value) {
    use base64::Engine;
    let Some(strings) = secret.get("stringData").and_then(Value::as_object) else {
        return;
    };
    if !strings.values().all(Value::is_string) {
        return;
    }
    let encoded: Vec<(String, Value)> = strings
        .iter()
        .map(|(key, value)| {
            let text = value.as_str().unwrap_or_default();
            (
                key.clone(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            )
        })
        .collect();
    let map = meta::object_mut(secret);
    map.remove("stringData");
    let data = map.entry("data").or_insert_with(|| json!({}));
    if data.is_null() {
        *data = json!({});
    }
    if let Some(data) = data.as_object_mut() {
        data.extend(encoded);
    }
}

fn set_default(object: &mut Value, field: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        let slot = map.entry(field).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
}

fn default_pod_spec(spec: &mut Value) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(DEFAULT_POD_GRACE_SECONDS));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        for container in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            let latest = container.get("image").and_then(Value::as_str).is_some_and(|image| {
                !image.rsplit('/').next().unwrap_or(image).contains(':') || image.ends_with(":latest")
            });
            set_default(
                container,
                "imagePullPolicy",
                json!(if latest { "Always" } else { "IfNotPresent" }),
            );
            set_default(container, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(container, "terminationMessagePolicy", json!("File"));
            set_default(container, "resources", json!({}));
            for port in container
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                set_default(port, "protocol", json!("TCP"));
            }
        }
    }
}

/// `Guaranteed` when every container's requests equal its limits for cpu
/// and memory, `BestEffort` when none has any, else `Burstable`.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|list| pod.pointer(&format!("/spec/{list}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for container in containers {
        let requests = container.pointer("/resources/requests").and_then(Value::as_object);
        let limits = container.pointer("/resources/limits").and_then(Value::as_object);
        any |= requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty());
        for resource in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(resource));
            let request = requests.and_then(|r| r.get(resource)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// Semantic validation: names, labels, and the required fields of the
/// kinds skiff acts on. `old` is the stored object on update, with the part
/// the update may change.
pub fn validate(resource: &Resource, object: &Value, old: Option<(&Value, Part)>) -> Result<()> {
    let mut causes = Vec::new();
    let name = meta::name(object).unwrap_or_default().to_string();
    if let Some(reason) = NameRule::for_kind(&resource.group, &resource.kind).check(&name) {
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
    if let crate::catalog::Shape::Custom { schema: Some(schema) } = &resource.shape {
        causes.extend(crate::structural::validate(schema, object));
    }
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Pod") => {
            validate_pod_spec(object.get("spec"), "spec", &mut causes);
            if let Some((old, part)) = old {
                validate_pod_update(old, object, part == Part::Binding, &mut causes);
            }
        }
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") | ("batch", "Job") => {
            validate_pod_spec(object.pointer("/spec/template/spec"), "spec.template.spec", &mut causes);
            if resource.group == "apps" {
                validate_selector(object, &mut causes);
            }
            if let Some(replicas) = object.pointer("/spec/replicas").and_then(Value::as_i64)
                && replicas < 0
            {
                causes.push(Cause::invalid(
                    "spec.replicas",
                    replicas,
                    "must be greater than or equal to 0",
                ));
            }
        }
        ("batch", "CronJob") => {
            if meta::str_field(object, &["spec", "schedule"]).is_none_or(str::is_empty) {
                causes.push(Cause::required("spec.schedule"));
            }
            validate_pod_spec(
                object.pointer("/spec/jobTemplate/spec/template/spec"),
                "spec.jobTemplate.spec.template.spec",
                &mut causes,
            );
        }
        ("", "Secret") => {
            if let Some(strings) = object.get("stringData") {
                causes.push(Cause::invalid(
                    "stringData",
                    strings.to_string(),
                    "must be a map of keys to string values",
                ));
            }
        }
        ("", "Service") => validate_service(object, &mut causes),
        ("networking.k8s.io", "Ingress") => validate_ingress(object, &mut causes),
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&resource.group, &resource.kind, &name, causes))
    }
}

/// An Ingress's rules and backends, as kube-apiserver checks them.
fn validate_ingress(object: &Value, causes: &mut Vec<Cause>) {
    let spec = object.get("spec");
    let rules = spec.and_then(|s| s.get("rules")).and_then(Value::as_array);
    let default = spec.and_then(|s| s.get("defaultBackend")).filter(|b| !b.is_null());
    if default.is_none() && rules.is_none_or(Vec::is_empty) {
        causes.push(Cause::invalid(
            "spec",
            "[]",
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(backend) = default {
        validate_ingress_backend(backend, "spec.defaultBackend", causes);
    }
    for (i, rule) in rules.map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
        if let Some(host) = rule.get("host").and_then(Value::as_str).filter(|h| !h.is_empty()) {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if host.parse::<std::net::IpAddr>().is_ok() {
                causes.push(Cause::invalid(
                    format!("spec.rules[{i}].host"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            } else if let Some(reason) = NameRule::Dns1123Subdomain.check(bare) {
                causes.push(Cause::invalid(format!("spec.rules[{i}].host"), host, reason));
            }
        }
        let Some(http) = rule.get("http").filter(|h| !h.is_null()) else {
            continue;
        };
        let paths = http
            .get("paths")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if paths.is_empty() {
            causes.push(Cause::required(format!("spec.rules[{i}].http.paths")));
        }
        for (j, path) in paths.iter().enumerate() {
            let at = format!("spec.rules[{i}].http.paths[{j}]");
            const TYPES: [&str; 3] = ["Exact", "Prefix", "ImplementationSpecific"];
            // The canonical form makes a missing pathType an empty one.
            match path.get("pathType").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                None => causes.push(Cause::required(format!("{at}.pathType"))),
                Some(kind) if !TYPES.contains(&kind) => {
                    causes.push(Cause::not_supported(format!("{at}.pathType"), kind, &TYPES));
                }
                Some(kind) => {
                    let text = path.get("path").and_then(Value::as_str).unwrap_or_default();
                    if kind != "ImplementationSpecific" && !text.starts_with('/') {
                        causes.push(Cause::invalid(format!("{at}.path"), text, "must be an absolute path"));
                    }
                }
            }
            match path.get("backend") {
                Some(backend) => validate_ingress_backend(backend, &format!("{at}.backend"), causes),
                None => causes.push(Cause::required(format!("{at}.backend"))),
            }
        }
    }
}

fn validate_ingress_backend(backend: &Value, at: &str, causes: &mut Vec<Cause>) {
    let service = backend.get("service").filter(|s| !s.is_null());
    let resource = backend.get("resource").filter(|r| !r.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => causes.push(Cause::invalid(at, "", "cannot set both service and resource backends")),
        (None, None) => causes.push(Cause::invalid(at, "", "one of service or resource must be specified")),
        (None, Some(_)) => {}
        (Some(service), None) => {
            let name = service.get("name").and_then(Value::as_str).unwrap_or_default();
            if name.is_empty() {
                causes.push(Cause::required(format!("{at}.service.name")));
            } else if let Some(reason) = NameRule::Dns1035Label.check(name) {
                causes.push(Cause::invalid(format!("{at}.service.name"), name, reason));
            }
            let port = service.get("port");
            let number = port.and_then(|p| p.get("number")).and_then(Value::as_i64);
            let port_name = port
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty());
            match (number, port_name) {
                (Some(_), Some(_)) => causes.push(Cause::invalid(
                    format!("{at}.service.port"),
                    "",
                    "cannot set both port name & port number",
                )),
                (None, None) => causes.push(Cause::invalid(
                    format!("{at}.service.port"),
                    "",
                    "port name or number is required",
                )),
                (Some(n), None) if !(1..=65535).contains(&n) => causes.push(Cause::invalid(
                    format!("{at}.service.port.number"),
                    n,
                    "must be between 1 and 65535, inclusive",
                )),
                _ => {}
            }
        }
    }
}

/// A Service's type and ports, as kube-apiserver checks them (the
/// addresses are checked where they are allocated, in `services`).
fn validate_service(object: &Value, causes: &mut Vec<Cause>) {
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

fn validate_pod_spec(spec: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let containers = spec.and_then(|s| s.get("containers")).and_then(Value::as_array);
    let Some(containers) = containers.filter(|c| !c.is_empty()) else {
        causes.push(Cause::required(format!("{path}.containers")));
        return;
    };
    let mut names = std::collections::BTreeSet::new();
    for (i, container) in containers.iter().enumerate() {
        let name = container.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            causes.push(Cause::required(format!("{path}.containers[{i}].name")));
        } else if let Some(reason) = NameRule::Dns1123Label.check(name) {
            causes.push(Cause::invalid(format!("{path}.containers[{i}].name"), name, reason));
        } else if !names.insert(name) {
            causes.push(Cause {
                reason: "FieldValueDuplicate",
                message: format!("Duplicate value: \"{name}\""),
                field: format!("{path}.containers[{i}].name"),
            });
        }
        if container.get("image").and_then(Value::as_str).is_none_or(str::is_empty) {
            causes.push(Cause::required(format!("{path}.containers[{i}].image")));
        }
    }
    if let Some(policy) = spec.and_then(|s| s.get("restartPolicy")).and_then(Value::as_str)
        && !matches!(policy, "Always" | "OnFailure" | "Never")
    {
        causes.push(Cause::not_supported(
            format!("{path}.restartPolicy"),
            policy,
            &["Always", "OnFailure", "Never"],
        ));
    }
}

/// A pod's spec is immutable but for container images, tolerations
/// (additions) and activeDeadlineSeconds; a binding sets `nodeName`.
fn validate_pod_update(old: &Value, new: &Value, binding: bool, causes: &mut Vec<Cause>) {
    let strip = |pod: &Value| {
        let mut spec = pod.get("spec").cloned().unwrap_or(Value::Null);
        for list in ["containers", "initContainers"] {
            for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(c) = c.as_object_mut() {
                    c.remove("image");
                }
            }
        }
        if let Some(s) = spec.as_object_mut() {
            s.remove("activeDeadlineSeconds");
            s.remove("tolerations");
            if binding {
                s.remove("nodeName");
            }
        }
        spec
    };
    if strip(old) != strip(new) {
        causes.push(Cause::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations)",
        ));
    }
}

fn validate_selector(object: &Value, causes: &mut Vec<Cause>) {
    let Some(selector) = object.pointer("/spec/selector").filter(|s| !s.is_null()) else {
        causes.push(Cause::required("spec.selector"));
        return;
    };
    let labels = object
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    let expressions = selector.get("matchExpressions").and_then(Value::as_array);
    if match_labels.is_none_or(Map::is_empty) && expressions.is_none_or(Vec::is_empty) {
        causes.push(Cause::invalid(
            "spec.selector",
            "{}",
            "empty selector is invalid for deployment",
        ));
        return;
    }
    let selects = match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    if !selects {
        let rendered = labels
            .iter()
            .map(|(k, v)| format!("{k}:{}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(",");
        causes.push(Cause::invalid(
            "spec.template.metadata.labels",
            format!("map[{rendered}]"),
            "`selector` does not match template `labels`",
        ));
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
            DEFAULT_POD_GRACE_SECONDS
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
