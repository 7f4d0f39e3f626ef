//! core/v1 Events, recorded in the background and counted as Kubernetes
//! components count them.
//!
//! An Event is a note for people, not state anyone reconciles on, so
//! recording one never blocks or fails the caller: [`Recorder::record`]
//! queues it (up to 1000; beyond that it is dropped, as client-go's
//! broadcaster drops) for one background task per recorder, which writes
//! the queue in order.
//!
//! That task runs each event through the [`correlator`], client-go's
//! `tools/record` logic as a pure core: a repeat of an Event already
//! written is a strategic-merge PATCH of that Event (`count` one more, a
//! new `lastTimestamp`) rather than another Event; many similar events
//! about one object become one `(combined from similar events)` Event;
//! and a source writing too much about one object is held back. The
//! PATCH that finds the Event gone (expired, or deleted) creates it
//! again. A write the server refuses is logged at debug level and
//! dropped, not retried (client-go retries transport errors, up to 12
//! times ten seconds apart).
//!
//! Events carry what client-go's core/v1 recorder sets (`source`,
//! `count`, `firstTimestamp`, `lastTimestamp`, `reportingComponent` and
//! `reportingInstance`), and besides `action` and `eventTime` (kept equal
//! to `firstTimestamp`, as `kubectl describe` prefers it for "first seen").
//! kube-runtime's own recorder writes `events.k8s.io/v1` Events; skiff
//! serves the core/v1 kind, which `kubectl describe` reads.

pub mod correlator;

use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tokio::sync::mpsc;

use correlator::{Correlated, Correlator, Write};

/// Events a recorder holds before its writer takes them; more are dropped.
const QUEUED: usize = 1000;

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
/// `replicaset-controller`, `kubelet`), optionally on one host. Clones
/// share one queue, writer and correlator.
#[derive(Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
}

struct Shared {
    client: kube::Client,
    component: String,
    host: Option<String>,
    /// The writer's queue, once the first event started the writer (and
    /// again if its runtime ended).
    queue: Mutex<Option<mpsc::Sender<Recorded>>>,
}

/// An event and when it happened.
struct Recorded {
    event: Event,
    at: Timestamp,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("component", &self.shared.component)
            .field("host", &self.shared.host)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder for `component`; `host` is the node it runs on, for
    /// components that run per node.
    pub fn new(client: kube::Client, component: impl Into<String>, host: Option<String>) -> Recorder {
        Recorder {
            shared: Arc::new(Shared {
                client,
                component: component.into(),
                host,
                queue: Mutex::new(None),
            }),
        }
    }

    /// Records `reason` (and the `action` taken) about `object`, in the
    /// object's namespace (`default` for cluster-scoped objects, as
    /// Kubernetes does).
    pub fn record(&self, object: &ObjectReference, kind: Kind, reason: &str, action: &str, message: impl Into<String>) {
        let at = Timestamp::now();
        let event = self.event(object, kind, reason, action, message.into(), at);
        self.enqueue(Recorded { event, at });
    }

    fn event(
        &self,
        object: &ObjectReference,
        kind: Kind,
        reason: &str,
        action: &str,
        message: String,
        at: Timestamp,
    ) -> Event {
        let shared = &self.shared;
        let namespace = object
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        Event {
            metadata: correlator::named(object.name.as_deref().unwrap_or_default(), Some(namespace), at),
            involved_object: object.clone(),
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some(kind.as_str().into()),
            source: Some(EventSource {
                component: Some(shared.component.clone()),
                host: shared.host.clone(),
            }),
            reporting_component: Some(shared.component.clone()),
            reporting_instance: Some(shared.host.clone().unwrap_or_else(|| shared.component.clone())),
            first_timestamp: Some(Time(at)),
            last_timestamp: Some(Time(at)),
            event_time: Some(MicroTime(at)),
            action: Some(action.to_string()),
            count: Some(1),
            ..Event::default()
        }
    }

    /// Hands `recorded` to the writer, starting it on the current runtime
    /// if there is none yet.
    fn enqueue(&self, recorded: Recorded) {
        let sender = {
            let mut queue = self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            match queue.as_ref().filter(|q| !q.is_closed()) {
                Some(sender) => sender.clone(),
                None => {
                    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                        tracing::debug!(reason = ?recorded.event.reason, "no runtime to record an event on");
                        return;
                    };
                    let (sender, receiver) = mpsc::channel(QUEUED);
                    runtime.spawn(write_all(self.shared.client.clone(), receiver));
                    *queue = Some(sender.clone());
                    sender
                }
            }
        };
        if let Err(error) = sender.try_send(recorded) {
            tracing::debug!(%error, "event queue full; an event is dropped");
        }
    }
}

/// Writes the queued events in order until every sender is gone.
async fn write_all(client: kube::Client, mut queue: mpsc::Receiver<Recorded>) {
    let mut correlator = Correlator::default();
    while let Some(Recorded { event, at }) = queue.recv().await {
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let reason = event.reason.clone();
        let Correlated { key, write } = correlator.correlate(event, at);
        let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
        let written = match write {
            Write::Skip => {
                tracing::debug!(?reason, "too many events about one object; one is dropped");
                continue;
            }
            Write::Create(event) => events.create(&PostParams::default(), &event).await,
            Write::Update { event, patch } => update(&events, &event, patch).await,
        };
        match written {
            Ok(stored) => correlator.stored(&key, &stored),
            Err(error) => tracing::debug!(%error, ?reason, "cannot record an event"),
        }
    }
}

/// Patches the Event `event` counts towards; creates it if it is gone.
async fn update(events: &Api<Event>, event: &Event, patch: k8s_openapi::serde_json::Value) -> kube::Result<Event> {
    let name = event.metadata.name.as_deref().unwrap_or_default();
    match events
        .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        Err(kube::Error::Api(status)) if status.code == 404 => events.create(&PostParams::default(), event).await,
        written => written,
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
