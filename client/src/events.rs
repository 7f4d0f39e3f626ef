//! core/v1 Events, recorded in the background.
//!
//! An Event is a note for people, not state anyone reconciles on, so
//! recording one never blocks or fails the caller: it is written by a
//! spawned task, and a write the server refuses is logged at debug level
//! and dropped. kube-runtime's own recorder writes `events.k8s.io/v1`
//! Events; skiff serves the core/v1 kind, which `kubectl describe` reads.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;

/// Whether an event is routine or a problem (the Event's `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Normal => "Normal",
            Kind::Warning => "Warning",
        }
    }
}

/// Records Events on behalf of one component (`default-scheduler`,
/// `replicaset-controller`, `kubelet`), optionally on one host.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    component: String,
    host: Option<String>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("component", &self.component)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder for `component`; `host` is the node it runs on, for
    /// components that run per node.
    pub fn new(client: kube::Client, component: impl Into<String>, host: Option<String>) -> Recorder {
        Recorder {
            client,
            component: component.into(),
            host,
        }
    }

    /// Records `reason` (and the `action` taken) about `object`, in the
    /// object's namespace (`default` for cluster-scoped objects, as
    /// Kubernetes does).
    pub fn record(&self, object: &ObjectReference, kind: Kind, reason: &str, action: &str, message: impl Into<String>) {
        let now = Timestamp::now();
        let namespace = object
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let prefix = object.name.as_deref().unwrap_or("object");
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{prefix}.")),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: object.clone(),
            reason: Some(reason.to_string()),
            message: Some(message.into()),
            type_: Some(kind.as_str().into()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.host.clone(),
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.host.clone().unwrap_or_else(|| self.component.clone())),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            action: Some(action.to_string()),
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

/// A reference to `object` for [`Recorder::record`]: kind, apiVersion,
/// namespace, name and uid, as kube-rs derives them.
pub fn reference<K>(object: &K) -> ObjectReference
where
    K: kube::Resource<DynamicType = ()>,
{
    object.object_ref(&())
}
