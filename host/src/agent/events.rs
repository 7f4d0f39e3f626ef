//! Events about a pod's containers, as the kubelet reports them (`Pulled`,
//! `Created`, `Started`, `Killing`, `BackOff`, `Unhealthy`, `Failed`), so
//! `kubectl describe pod` tells what happened on the node.
//!
//! Written through [`skiff_client::events::Recorder`]: in the background,
//! a lost event is logged, never retried, and never slows a pod down.

use k8s_openapi::api::core::v1::ObjectReference;
pub use skiff_client::events::Kind;

/// Writes events about one pod's containers.
#[derive(Clone, Debug)]
pub struct Recorder {
    inner: skiff_client::events::Recorder,
    pod: ObjectReference,
}

impl Recorder {
    pub fn new(client: kube::Client, node: &str, namespace: &str, name: &str, uid: &str) -> Recorder {
        Recorder {
            inner: skiff_client::events::Recorder::new(client, "kubelet", Some(node.to_string())),
            pod: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(namespace.to_string()),
                name: Some(name.to_string()),
                uid: Some(uid.to_string()),
                ..ObjectReference::default()
            },
        }
    }

    /// Records `reason` about `container` (the field path kubectl shows,
    /// `spec.containers{name}`), or about the pod when `None`.
    pub fn record(&self, kind: Kind, reason: &str, container: Option<(&str, &str)>, message: String) {
        let mut involved = self.pod.clone();
        involved.field_path = container.map(|(field, name)| format!("{field}{{{name}}}"));
        self.inner.record(&involved, kind, reason, reason, message);
    }
}
