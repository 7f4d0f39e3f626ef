//! A cluster for one test: the API server, the scheduler, and helpers to
//! make nodes and pods and to wait for what the scheduler does to them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Event, Node, Pod, PodCondition};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use skiff_scheduler::{Scheduler, SchedulerConfig, SchedulerHandle};
use skiff_testing::{TestApi, eventually};

/// How long anything the scheduler does may take to show.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Cluster {
    pub api: TestApi,
    pub scheduler: SchedulerHandle,
}

impl Cluster {
    /// An API server and a scheduler with the default configuration.
    pub async fn start() -> anyhow::Result<Cluster> {
        Cluster::start_with("").await
    }

    /// An API server and a scheduler configured by `yaml`.
    pub async fn start_with(yaml: &str) -> anyhow::Result<Cluster> {
        let api = TestApi::start().await?;
        let config = SchedulerConfig::from_yaml(yaml)?;
        let scheduler = Scheduler::new(api.client.clone(), &config)?.start();
        tokio::time::timeout(WAIT, scheduler.wait_synced())
            .await
            .context("the scheduler's caches did not sync")?;
        Ok(Cluster { api, scheduler })
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.api.client.clone(), "default")
    }

    /// A Ready node with both runtimes, `cpu` and `memory` allocatable,
    /// room for 110 pods, and `labels` on top of the usual ones.
    pub async fn node(&self, name: &str, cpu: &str, memory: &str, labels: Value) -> anyhow::Result<()> {
        self.node_with_spec(name, cpu, memory, labels, json!({})).await
    }

    /// [`node`](Self::node) with `spec` (taints, `unschedulable`) set from
    /// the start, so no cycle sees the node without it.
    pub async fn node_with_spec(
        &self,
        name: &str,
        cpu: &str,
        memory: &str,
        labels: Value,
        spec: Value,
    ) -> anyhow::Result<()> {
        let mut all = json!({
            "kubernetes.io/hostname": name,
            "skiff.dev/runtime-wasm": "true",
            "skiff.dev/runtime-oci": "true",
        });
        if let Some(extra) = labels.as_object() {
            for (k, v) in extra {
                if v.is_null() {
                    all.as_object_mut().map(|m| m.remove(k));
                } else {
                    all[k] = v.clone();
                }
            }
        }
        let nodes: Api<Node> = Api::all(self.api.client.clone());
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": all},
            "spec": spec,
        }))?;
        nodes
            .create(&PostParams::default(), &node)
            .await
            .context("create the node")?;
        let capacity = json!({"cpu": cpu, "memory": memory, "pods": "110"});
        let status = json!({"status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "stand-in node"}],
        }});
        nodes
            .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .context("report the node's status")?;
        Ok(())
    }

    /// Creates pod `name` in `default` with one container requesting
    /// `requests`, and `spec` merged over that.
    pub async fn pod(&self, name: &str, requests: Value, spec: Value) -> anyhow::Result<Pod> {
        let mut object = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "registry.example/app:1", "resources": {"requests": requests}}]},
        });
        if let Some(extra) = spec.as_object() {
            for (k, v) in extra {
                object["spec"][k] = v.clone();
            }
        }
        let pod: Pod = serde_json::from_value(object)?;
        Ok(self.pods().create(&PostParams::default(), &pod).await?)
    }

    /// The node `name` gets bound to.
    pub async fn bound_node(&self, name: &str) -> anyhow::Result<String> {
        let pods = self.pods();
        eventually(WAIT, &format!("pod {name} to be bound"), || {
            let pods = pods.clone();
            async move {
                let pod = pods.get(name).await.ok()?;
                pod.spec?.node_name.filter(|n| !n.is_empty())
            }
        })
        .await
    }

    /// The pod's `PodScheduled` condition once it is `False` with
    /// `message`. (A cycle may see a node before its status, so an earlier
    /// message may differ.)
    pub async fn unschedulable_with(&self, name: &str, message: &str) -> anyhow::Result<PodCondition> {
        let pods = self.pods();
        let last = Arc::new(Mutex::new(None::<String>));
        let found = eventually(
            WAIT,
            &format!("pod {name} to be unschedulable with {message:?}"),
            || {
                let (pods, last) = (pods.clone(), last.clone());
                async move {
                    let pod = pods.get(name).await.ok()?;
                    let condition = pod
                        .status?
                        .conditions?
                        .into_iter()
                        .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
                    *last.lock().unwrap() = condition.message.clone();
                    (condition.message.as_deref() == Some(message)).then_some(condition)
                }
            },
        )
        .await;
        found.with_context(|| format!("the last message was {:?}", last.lock().unwrap()))
    }

    /// The Events about pod `name` with `reason`.
    pub async fn events(&self, name: &str, reason: &str) -> anyhow::Result<Vec<Event>> {
        let events: Api<Event> = Api::namespaced(self.api.client.clone(), "default");
        Ok(events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name) && e.reason.as_deref() == Some(reason))
            .collect())
    }

    /// Waits for an Event about `name` with `reason` and `message`.
    pub async fn event(&self, name: &str, reason: &str, message: &str) -> anyhow::Result<Event> {
        eventually(
            WAIT,
            &format!("a {reason} event for {name} saying {message:?}"),
            || async {
                self.events(name, reason)
                    .await
                    .ok()?
                    .into_iter()
                    .find(|e| e.message.as_deref() == Some(message))
            },
        )
        .await
    }
}
