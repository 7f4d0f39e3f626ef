//! A served API with the controllers running, and a stand-in node.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;
use skiff_testing::TestApi;

/// Pods whose first container's image is this never become ready.
pub const BROKEN_IMAGE: &str = "example.invalid/broken:1";

pub struct Cluster {
    pub api: TestApi,
    _controllers: skiff_controllers::Controllers,
    _node: tokio::task::JoinHandle<()>,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let api = TestApi::start().await.unwrap();
        // The stand-in node does not renew heartbeats, so nodes the tests
        // create stay as they made them instead of going silent.
        let pki = api.pki.clone();
        let config = skiff_controllers::Config {
            node_lifecycle: skiff_controllers::nodelifecycle::Config {
                grace_period: Duration::from_secs(3600),
                ..Default::default()
            },
            root_ca: Some(api.ca_pem.clone()),
            authority: Some(skiff_controllers::certificates::Authority::new(
                move |request, valid_for| pki.sign_request(request, valid_for).map_err(|e| e.to_string()),
            )),
            metrics: Default::default(),
            autoscaler: skiff_controllers::podautoscaler::Config {
                sync_period: std::time::Duration::from_secs(1),
            },
        };
        let controllers = skiff_controllers::start(api.client.clone(), config);
        let node = tokio::spawn(stand_in_node(api.client.clone()));
        Cluster {
            api,
            _controllers: controllers,
            _node: node,
        }
    }

    pub fn client(&self) -> kube::Client {
        self.api.client.clone()
    }
}

/// Marks every pod that is not being deleted Running and Ready (unless
/// its image is [`BROKEN_IMAGE`]), as a node would once it started it.
async fn stand_in_node(client: kube::Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut events = watcher(pods, watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        let Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) = event else {
            continue;
        };
        let started = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready"));
        if pod.metadata.deletion_timestamp.is_some() || started {
            continue;
        }
        let broken = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.as_deref())
            == Some(BROKEN_IMAGE);
        let now = Timestamp::now().to_string();
        let status = if broken {
            json!({"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "False", "lastTransitionTime": now}]}})
        } else {
            json!({"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now}]}})
        };
        let namespaced: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        let _ = namespaced
            .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(status))
            .await;
    }
}

/// Polls `f` for up to 60 s.
pub async fn until<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    skiff_testing::eventually(Duration::from_secs(60), what, f)
        .await
        .unwrap()
}

/// The pods in `namespace` with label `app=<app>`.
pub async fn pods_of(client: &kube::Client, namespace: &str, app: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.list(&kube::api::ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
