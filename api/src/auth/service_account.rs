//! The ServiceAccount admission step: which identity a new pod runs as,
//! and the volume that hands it its credentials. kube-apiserver's
//! `ServiceAccount` admission plugin makes the same changes:
//!
//! * `spec.serviceAccountName` defaults to `default` (and the deprecated
//!   `spec.serviceAccount` follows it);
//! * the account must exist in the pod's namespace, or the pod is
//!   Forbidden;
//! * unless the pod or else the account sets `automountServiceAccountToken:
//!   false`, a projected volume `kube-api-access-<5 chars>` is added (a
//!   token the node agent requests, bound to the pod; the cluster CA from
//!   the `kube-root-ca.crt` ConfigMap; the namespace from the downward
//!   API) and mounted read-only at [`MOUNT_PATH`] in every init and app
//!   container that has nothing mounted there already;
//! * a pod that names no `imagePullSecrets` gets the account's.
//!
//! Pods the agent mirrors from static manifests (annotation
//! `kubernetes.io/config.mirror`) are left alone, as in Kubernetes.
//!
//! [`mutate`] is pure; the registry looks the account up and calls it.

use serde_json::{Value, json};

use crate::error::ApiError;

/// Where pods find their token, `ca.crt` and `namespace`.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The prefix of the projected volume's name.
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The account a pod runs as when it names none.
pub const DEFAULT_ACCOUNT: &str = "default";
/// The ConfigMap every namespace holds with the cluster CA, and its key.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
pub const ROOT_CA_KEY: &str = "ca.crt";
/// The lifetime the projected token asks for: an hour and seven seconds,
/// as kube-apiserver writes it (the odd seconds mark it as the default).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// The annotation of pods mirrored from static manifests.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The account `pod` runs as (after defaulting); `None` for mirror pods,
/// which the step leaves alone.
pub fn account_name(pod: &Value) -> Option<String> {
    if pod
        .pointer(&format!(
            "/metadata/annotations/{}",
            MIRROR_ANNOTATION.replace('/', "~1")
        ))
        .is_some()
    {
        return None;
    }
    let named = pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .or_else(|| {
            pod.pointer("/spec/serviceAccount")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
        });
    Some(named.unwrap_or(DEFAULT_ACCOUNT).to_string())
}

/// The Forbidden error for a pod whose account `account` in `namespace`
/// does not exist.
pub fn missing(pod_name: &str, namespace: &str, account: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "pods \"{pod_name}\" is forbidden: error looking up service account {namespace}/{account}: serviceaccount \"{account}\" not found"
    ))
}

/// Applies the step to `pod`, whose account is `account` (the object).
/// `suffix` makes the volume name when one is added (five characters of
/// the generated-name alphabet).
pub fn mutate(pod: &mut Value, account: &Value, suffix: &str) {
    let Some(name) = account_name(pod) else { return };
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.insert("serviceAccountName".into(), json!(name));
    spec.insert("serviceAccount".into(), json!(name));
    let names_none = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if names_none
        && let Some(secrets) = account.get("imagePullSecrets").and_then(Value::as_array)
        && !secrets.is_empty()
    {
        spec.insert("imagePullSecrets".into(), Value::Array(secrets.clone()));
    }
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| account.get("automountServiceAccountToken").and_then(Value::as_bool))
        .unwrap_or(true);
    if !automount {
        return;
    }
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|n| n.starts_with(VOLUME_PREFIX))
        .map(String::from);
    let volume_name = existing.clone().unwrap_or_else(|| format!("{VOLUME_PREFIX}{suffix}"));
    let mut mounted = false;
    for group in ["initContainers", "containers"] {
        for container in spec.get_mut(group).and_then(Value::as_array_mut).into_iter().flatten() {
            let Some(container) = container.as_object_mut() else {
                continue;
            };
            let mounts = container.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else { continue };
            let taken = mounts
                .iter()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH));
            if !taken {
                mounts.push(json!({"name": volume_name, "readOnly": true, "mountPath": MOUNT_PATH}));
                mounted = true;
            }
        }
    }
    if mounted
        && existing.is_none()
        && let Some(volumes) = spec.entry("volumes").or_insert_with(|| json!([])).as_array_mut()
    {
        volumes.push(projected_volume(&volume_name));
    }
}

/// The volume kube-apiserver adds: token, CA and namespace.
fn projected_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": ROOT_CA_KEY, "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [
                    {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
                ]}},
            ],
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "a"}, "spec": spec})
    }

    #[test]
    fn a_pod_gets_the_default_account_and_its_token_volume_in_every_container() {
        let mut p = pod(json!({
            "initContainers": [{"name": "i", "image": "x"}],
            "containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}],
        }));
        mutate(&mut p, &json!({}), "abcde");
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(p["spec"]["serviceAccount"], "default");
        let volumes = p["spec"]["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 2);
        assert_eq!(volumes[1]["name"], "kube-api-access-abcde");
        let sources = volumes[1]["projected"]["sources"].as_array().unwrap();
        assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
        assert_eq!(
            sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
            "metadata.namespace"
        );
        for group in ["initContainers", "containers"] {
            let mounts = p["spec"][group][0]["volumeMounts"].as_array().unwrap();
            let last = mounts.last().unwrap();
            assert_eq!(last["mountPath"], MOUNT_PATH);
            assert_eq!(last["readOnly"], true);
            assert_eq!(last["name"], "kube-api-access-abcde");
        }
    }

    #[test]
    fn automount_false_on_the_pod_or_else_the_account_adds_nothing() {
        let mut p = pod(json!({"containers": [{"name": "c"}], "automountServiceAccountToken": false}));
        mutate(&mut p, &json!({"automountServiceAccountToken": true}), "abcde");
        assert!(p["spec"].get("volumes").is_none());

        let mut p = pod(json!({"serviceAccountName": "robot", "containers": [{"name": "c"}]}));
        mutate(&mut p, &json!({"automountServiceAccountToken": false}), "abcde");
        assert_eq!(p["spec"]["serviceAccountName"], "robot");
        assert!(p["spec"].get("volumes").is_none());

        let mut p = pod(json!({"automountServiceAccountToken": true, "containers": [{"name": "c"}]}));
        mutate(&mut p, &json!({"automountServiceAccountToken": false}), "abcde");
        assert_eq!(
            p["spec"]["volumes"].as_array().unwrap().len(),
            1,
            "the pod's own choice wins"
        );
    }

    #[test]
    fn a_path_already_mounted_and_a_volume_already_there_are_kept() {
        let mut p = pod(json!({
            "containers": [
                {"name": "own", "volumeMounts": [{"name": "mine", "mountPath": MOUNT_PATH}]},
                {"name": "other"},
            ],
            "volumes": [{"name": "mine", "secret": {"secretName": "s"}}, {"name": "kube-api-access-zzzzz", "projected": {}}],
        }));
        mutate(&mut p, &json!({}), "abcde");
        let volumes = p["spec"]["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 2, "the existing token volume is reused");
        assert_eq!(p["spec"]["containers"][0]["volumeMounts"].as_array().unwrap().len(), 1);
        assert_eq!(
            p["spec"]["containers"][1]["volumeMounts"][0]["name"],
            "kube-api-access-zzzzz"
        );
    }

    #[test]
    fn a_pod_without_pull_secrets_gets_the_accounts() {
        let account = json!({"imagePullSecrets": [{"name": "registry"}], "automountServiceAccountToken": false});
        let mut p = pod(json!({"containers": [{"name": "c"}]}));
        mutate(&mut p, &account, "abcde");
        assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "registry"}]));
        let mut p = pod(json!({"containers": [{"name": "c"}], "imagePullSecrets": [{"name": "own"}]}));
        mutate(&mut p, &account, "abcde");
        assert_eq!(
            p["spec"]["imagePullSecrets"],
            json!([{"name": "own"}]),
            "the pod's own win"
        );
    }

    #[test]
    fn mirror_pods_are_left_alone() {
        let mut p = json!({
            "metadata": {"name": "p", "annotations": {"kubernetes.io/config.mirror": "x"}},
            "spec": {"containers": [{"name": "c"}]},
        });
        let before = p.clone();
        assert_eq!(account_name(&p), None);
        mutate(&mut p, &json!({}), "abcde");
        assert_eq!(p, before);
    }
}
