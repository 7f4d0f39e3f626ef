//! Events about a pod's containers, as the kubelet reports them (`Pulled`,
//! `Created`, `Started`, `Killing`, `BackOff`, `Unhealthy`, `Failed`), so
//! `kubectl describe pod` tells what happened on the node.
//!
//! Each is a core/v1 Event written in the background: a lost event is
//! logged, never retried, and never slows a pod down.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;

/// Whether an event is routine or a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

/// Writes events about one pod's containers.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    node: String,
    pod: ObjectReference,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("pod", &self.pod.name)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    pub fn new(client: kube::Client, node: &str, namespace: &str, name: &str, uid: &str) -> Recorder {
        Recorder {
            client,
            node: node.to_string(),
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
        let now = Timestamp::now();
        let mut involved = self.pod.clone();
        involved.field_path = container.map(|(field, name)| format!("{field}{{{name}}}"));
        let namespace = self.pod.namespace.clone().unwrap_or_default();
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", self.pod.name.as_deref().unwrap_or("pod"))),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: involved,
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some(match kind {
                Kind::Normal => "Normal".into(),
                Kind::Warning => "Warning".into(),
            }),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            action: Some(reason.to_string()),
            count: Some(1),
            ..Event::default()
        };
        let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        tokio::spawn(async move {
            if let Err(error) = events.create(&PostParams::default(), &event).await {
                tracing::debug!(%error, reason = ?event.reason, "cannot record an event");
            }
        });
    }
}
