//! Wasm plugins end to end: a real API server on a real store, the
//! scheduler, and the plugin manager, all talking through the API; plugins
//! are loaded by WasmPlugin objects and observed through the API only
//! (pods placed or not, writes admitted, refused or changed, `status`).
//!
//! The example plugins in `plugins/` are built by `cargo xtask
//! build-plugins` (which `cargo xtask test` runs first) into
//! `$CARGO_TARGET_DIR/plugins`; the hostile ones are test programs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use skiff_plugin_host::{ManagerConfig, PluginManager, Sinks, WasmPlugin, WasmPluginStatus};
use skiff_scheduler::{DynamicPlugins, Scheduler, SchedulerConfig, SchedulerHandle};
use skiff_testing::registry::Registry;
use skiff_testing::{TestApi, eventually};

/// A bound, not a pace: compiling a componentize-py or ComponentizeJS
/// component (tens of MB) in a debug build, while the rest of the suite
/// runs beside it on two cores, has taken more than 30 s.
const WAIT: Duration = Duration::from_secs(120);

/// An API server with a scheduler and a plugin manager feeding both.
struct Cluster {
    api: TestApi,
    _scheduler: SchedulerHandle,
    _manager: PluginManager,
}

impl Cluster {
    async fn start() -> anyhow::Result<Cluster> {
        let api = TestApi::start().await?;
        let dynamic = DynamicPlugins::new();
        let scheduler = Scheduler::new(api.client.clone(), &SchedulerConfig::default())?
            .with_dynamic_plugins(dynamic.clone())
            .start();
        scheduler.wait_synced().await;
        let manager = PluginManager::start(
            api.client.clone(),
            ManagerConfig {
                data_dir: api.path("plugins"),
                sinks: Sinks {
                    admission: Some(api.server.registry.admission().clone()),
                    scheduler: Some(dynamic),
                },
            },
        )?;
        Ok(Cluster {
            api,
            _scheduler: scheduler,
            _manager: manager,
        })
    }

    fn client(&self) -> kube::Client {
        self.api.client.clone()
    }

    fn plugins(&self) -> Api<WasmPlugin> {
        Api::all(self.client())
    }

    /// Creates or replaces the WasmPlugin `name` with `spec`.
    async fn apply(&self, name: &str, spec: Value) -> anyhow::Result<()> {
        let object = json!({
            "apiVersion": "skiff.dev/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {"name": name},
            "spec": spec,
        });
        self.plugins()
            .patch(name, &PatchParams::apply("plugin-test").force(), &Patch::Apply(&object))
            .await
            .with_context(|| format!("apply WasmPlugin {name}"))?;
        Ok(())
    }

    /// Waits for the plugin's status to satisfy `ready`.
    async fn status(
        &self,
        name: &str,
        what: &str,
        ready: impl Fn(&WasmPluginStatus) -> bool,
    ) -> anyhow::Result<WasmPluginStatus> {
        let plugins = self.plugins();
        eventually(WAIT, what, || {
            let plugins = plugins.clone();
            let ready = &ready;
            async move {
                let plugin = plugins.get(name).await.ok()?;
                plugin.status.filter(|s| ready(s))
            }
        })
        .await
    }

    /// Waits until generation `generation` of the plugin serves.
    async fn loaded(&self, name: &str, generation: i64) -> anyhow::Result<WasmPluginStatus> {
        self.status(name, &format!("{name} generation {generation} loaded"), |s| {
            s.loaded_generation == Some(generation)
        })
        .await
    }

    /// Waits until the newest generation of the plugin was refused.
    async fn refused(&self, name: &str) -> anyhow::Result<WasmPluginStatus> {
        self.status(name, &format!("{name} refused"), |s| s.load_error.is_some())
            .await
    }

    /// Registers a Ready node with `labels`, 4 CPUs, `memory` and
    /// `images`.
    async fn node(&self, name: &str, labels: Value, memory: &str, images: Value) -> anyhow::Result<()> {
        let mut labels = labels;
        // Both runtimes, as an agent with runc would report.
        labels["skiff.dev/runtime-wasm"] = json!("true");
        labels["skiff.dev/runtime-oci"] = json!("true");
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "status": {
                "allocatable": {"cpu": "4", "memory": memory, "pods": "110"},
                "capacity": {"cpu": "4", "memory": memory, "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
                "images": images,
            },
        }))?;
        let nodes: Api<Node> = Api::all(self.client());
        nodes.create(&PostParams::default(), &node).await?;
        // Status is a subresource: written apart from the object.
        nodes
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": serde_json::to_value(&node.status)?})),
            )
            .await?;
        Ok(())
    }

    async fn pod(&self, name: &str, pod: Value) -> anyhow::Result<Pod> {
        let mut pod = pod;
        pod["apiVersion"] = json!("v1");
        pod["kind"] = json!("Pod");
        pod["metadata"]["name"] = json!(name);
        let pods: Api<Pod> = Api::namespaced(self.client(), "default");
        Ok(pods
            .create(&PostParams::default(), &serde_json::from_value(pod)?)
            .await?)
    }

    /// Waits for the pod to be bound and returns its node.
    async fn placed(&self, name: &str) -> anyhow::Result<String> {
        let pods: Api<Pod> = Api::namespaced(self.client(), "default");
        let placed = eventually(WAIT, &format!("pod {name} placed"), || {
            let pods = pods.clone();
            async move { pods.get(name).await.ok()?.spec?.node_name }
        })
        .await;
        if placed.is_err() {
            let conditions = pods.get(name).await.ok().and_then(|p| p.status?.conditions);
            anyhow::bail!("pod {name} was not placed; its conditions: {conditions:?}");
        }
        placed
    }

    /// Waits for the pod's `FailedScheduling` condition message.
    async fn unschedulable(&self, name: &str) -> anyhow::Result<String> {
        let pods: Api<Pod> = Api::namespaced(self.client(), "default");
        eventually(WAIT, &format!("pod {name} unschedulable"), || {
            let pods = pods.clone();
            async move {
                let pod = pods.get(name).await.ok()?;
                let condition = pod
                    .status?
                    .conditions?
                    .into_iter()
                    .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
                condition.message
            }
        })
        .await
    }

    /// Creates a Deployment of `replicas` with `labels`; returns the API's
    /// answer.
    async fn deployment(&self, name: &str, labels: Value, replicas: i32, image: &str) -> kube::Result<Deployment> {
        let deployment: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "main", "image": image}]},
                },
            },
        }))
        .expect("deployment");
        Api::<Deployment>::namespaced(self.client(), "default")
            .create(&PostParams::default(), &deployment)
            .await
    }
}

/// A built example plugin from `plugins/`.
fn example(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("SKIFF_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // <target>/debug/deps/<test binary>
            let exe = std::env::current_exe().expect("test binary path");
            let target = exe.ancestors().nth(3).expect("target dir").to_path_buf();
            target.join("plugins")
        });
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the example plugins with `cargo xtask build-plugins` (set SKIFF_PLUGIN_DIR if they are elsewhere)",
            path.display()
        )
    })
}

fn inline(bytes: &[u8]) -> Value {
    json!({"inline": base64::engine::general_purpose::STANDARD.encode(bytes)})
}

fn hostile() -> Vec<u8> {
    std::fs::read(skiff_test_programs::PLUGIN_HOSTILE).expect("hostile plugin")
}

/// The message of a refused write.
fn refusal<T: std::fmt::Debug>(result: kube::Result<T>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_filter_places_pods_only_on_labelled_nodes() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.node("plain", json!({}), "8Gi", json!([])).await?;
    cluster
        .node("gpu", json!({"accelerator": "tpu"}), "8Gi", json!([]))
        .await?;
    cluster
        .apply(
            "require-node-label",
            json!({"stage": "Filter", "component": inline(&example("require-node-label"))}),
        )
        .await?;
    cluster.loaded("require-node-label", 1).await?;

    let wants = json!({"metadata": {"annotations": {"skiff.dev/require-node-label": "accelerator"}},
        "spec": {"containers": [{"name": "c", "image": "app.wasm"}]}});
    for i in 0..4 {
        cluster.pod(&format!("needs-label-{i}"), wants.clone()).await?;
    }
    for i in 0..4 {
        assert_eq!(cluster.placed(&format!("needs-label-{i}")).await?, "gpu");
    }
    let missing = json!({"metadata": {"annotations": {"skiff.dev/require-node-label": "fpga"}},
        "spec": {"containers": [{"name": "c", "image": "app.wasm"}]}});
    cluster.pod("needs-fpga", missing).await?;
    let message = cluster.unschedulable("needs-fpga").await?;
    assert!(message.contains("fpga"), "{message}");

    // Deleting the plugin lets the waiting pod go anywhere.
    cluster
        .plugins()
        .delete("require-node-label", &DeleteParams::default())
        .await?;
    cluster.placed("needs-fpga").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_score_prefers_nodes_holding_the_image() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    for name in ["a", "b", "c"] {
        cluster.node(name, json!({}), "8Gi", json!([])).await?;
    }
    cluster
        .node(
            "cached",
            json!({}),
            "8Gi",
            json!([{"names": ["registry.local/hello:v1"], "sizeBytes": 1000}]),
        )
        .await?;
    cluster
        .apply(
            "prefer-cached-image",
            json!({"stage": "Score", "weight": 100, "component": inline(&example("prefer-cached-image"))}),
        )
        .await?;
    cluster.loaded("prefer-cached-image", 1).await?;
    for i in 0..3 {
        cluster
            .pod(
                &format!("hello-{i}"),
                json!({"spec": {"containers": [{"name": "c", "image": "registry.local/hello:v1"}]}}),
            )
            .await?;
        assert_eq!(cluster.placed(&format!("hello-{i}")).await?, "cached");
    }
    let status = cluster
        .status("prefer-cached-image", "calls counted", |s| s.calls >= 3)
        .await?;
    assert_eq!(status.errors, 0);
    assert!(status.latency_p99_microseconds.is_some());
    Ok(())
}

/// A plugin that refuses by user sees the user the API server
/// authenticated: here the admin impersonating jane, whom RBAC lets edit
/// the namespace and the plugin does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validate_plugin_denies_by_username() -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let cluster = Cluster::start().await?;
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "people-edit", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"},
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"},
        ],
    }))?;
    Api::<RoleBinding>::namespaced(cluster.client(), "default")
        .create(&PostParams::default(), &binding)
        .await?;
    cluster
        .apply(
            "deny-users",
            json!({
                "stage": "Validate",
                "component": inline(&example("deny-users")),
                "config": {"users": ["jane"], "groups": ["contractors"]},
                "match": {"rules": [{"apiGroups": [""], "resources": ["configmaps"], "operations": ["CREATE"]}]},
            }),
        )
        .await?;
    cluster.loaded("deny-users", 1).await?;
    let map =
        |name: &str| -> anyhow::Result<ConfigMap> { Ok(serde_json::from_value(json!({"metadata": {"name": name}}))?) };
    let as_user = |client: kube::Client| Api::<ConfigMap>::namespaced(client, "default");

    let jane = as_user(cluster.api.impersonating("jane", &[]).await?);
    let (code, message) = refusal(jane.create(&PostParams::default(), &map("by-jane")?).await);
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "admission webhook \"deny-users\" denied the request: user \"jane\" may not create configmaps in namespace \"default\""
    );
    let contractor = as_user(cluster.api.impersonating("bob", &["contractors"]).await?);
    let (code, message) = refusal(contractor.create(&PostParams::default(), &map("by-contractor")?).await);
    assert_eq!(code, 403);
    assert!(message.contains("(group \"contractors\")"), "{message}");
    let bob = as_user(cluster.api.impersonating("bob", &["staff"]).await?);
    bob.create(&PostParams::default(), &map("by-bob")?).await?;
    as_user(cluster.client())
        .create(&PostParams::default(), &map("by-admin")?)
        .await?;
    // Nothing the plugin refused was written.
    assert!(as_user(cluster.client()).get_opt("by-jane").await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_validate_requires_a_team_label_and_reloads_hot() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let rules =
        json!({"rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "operations": ["CREATE", "UPDATE"]}]});
    let component = inline(&example("require-team-label"));
    cluster
        .apply(
            "require-team-label",
            json!({"stage": "Validate", "component": component, "match": rules}),
        )
        .await?;
    cluster.loaded("require-team-label", 1).await?;

    let (code, message) = refusal(cluster.deployment("nolabel", json!({}), 1, "app.wasm").await);
    assert_eq!(code, 400);
    assert!(
        message.starts_with("admission webhook \"require-team-label\" denied the request:"),
        "{message}"
    );
    assert!(message.contains("team"), "{message}");
    cluster
        .deployment("labelled", json!({"team": "payments"}), 1, "app.wasm")
        .await?;

    // Hot reload: a new configuration takes effect without a restart.
    cluster
        .apply(
            "require-team-label",
            json!({"stage": "Validate", "component": component, "match": rules, "config": {"label": "owner"}}),
        )
        .await?;
    cluster.loaded("require-team-label", 2).await?;
    let (_, message) = refusal(
        cluster
            .deployment("teamonly", json!({"team": "x"}), 1, "app.wasm")
            .await,
    );
    assert!(message.contains("owner"), "{message}");
    cluster
        .deployment("owned", json!({"owner": "someone"}), 1, "app.wasm")
        .await?;

    // A broken update leaves generation 2 serving and says so.
    cluster
        .apply(
            "require-team-label",
            json!({"stage": "Validate", "component": inline(b"not wasm at all"), "match": rules}),
        )
        .await?;
    let status = cluster.refused("require-team-label").await?;
    assert_eq!(status.loaded_generation, Some(2));
    assert_eq!(status.observed_generation, Some(3));
    let degraded = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("Degraded");
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "UpdateRejected")
    );
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert_eq!(ready.status, "True");
    let (_, message) = refusal(cluster.deployment("still", json!({"team": "x"}), 1, "app.wasm").await);
    assert!(message.contains("owner"), "{message}");

    // Deleted: every Deployment is admitted again.
    cluster
        .plugins()
        .delete("require-team-label", &DeleteParams::default())
        .await?;
    let mut attempt = 0;
    eventually(WAIT, "the plugin gone from admission", || {
        attempt += 1;
        let name = format!("free-{attempt}");
        let cluster = &cluster;
        async move { cluster.deployment(&name, json!({}), 1, "app.wasm").await.ok() }
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_mutate_defaults_limits_of_wasm_pods() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster
        .apply(
            "wasm-default-limits",
            json!({
                "stage": "Mutate",
                "component": inline(&example("wasm-default-limits")),
                "config": {"memory": "64Mi", "cpu": "250m"},
                "match": {"rules": [{"apiGroups": [""], "resources": ["pods"], "operations": ["CREATE"]}]},
            }),
        )
        .await?;
    cluster.loaded("wasm-default-limits", 1).await?;
    let wasm = cluster
        .pod(
            "wasm",
            json!({"spec": {"runtimeClassName": "wasmtime", "containers": [
                {"name": "a", "image": "a.wasm"},
                {"name": "b", "image": "b.wasm", "resources": {"limits": {"memory": "32Mi"}}},
            ]}}),
        )
        .await?;
    let containers = wasm.spec.expect("spec").containers;
    let limits =
        |i: usize| serde_json::to_value(&containers[i].resources.as_ref().expect("resources").limits).expect("limits");
    assert_eq!(limits(0), json!({"cpu": "250m", "memory": "64Mi"}));
    assert_eq!(limits(1), json!({"cpu": "250m", "memory": "32Mi"}));
    let oci = cluster
        .pod(
            "oci",
            json!({"spec": {"containers": [{"name": "a", "image": "busybox"}]}}),
        )
        .await?;
    let untouched = oci.spec.expect("spec").containers[0]
        .resources
        .clone()
        .unwrap_or_default();
    assert_eq!(untouched.limits, None);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_validators_load_from_a_registry() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let registry = Registry::start(&cluster.api.path("registry"))?;
    let python = registry
        .push_wasm("plugins/registry-allowlist:v1", &example("registry-allowlist"))
        .await?;
    let javascript = registry
        .push_wasm("plugins/max-replicas:v1", &example("max-replicas"))
        .await?;
    let deployments = json!({"rules": [{"apiGroups": ["apps"], "resources": ["deployments"]}]});
    cluster
        .apply(
            "registry-allowlist",
            json!({
                "stage": "Validate",
                "component": {"oci": python},
                "config": {"registries": ["127.0.0.1:5000/", "registry.local/"]},
                "match": deployments,
                "limits": {"timeoutMilliseconds": 2000},
            }),
        )
        .await?;
    cluster
        .apply(
            "max-replicas",
            json!({
                "stage": "Validate",
                "component": {"oci": javascript},
                "config": {"max": 5},
                "match": deployments,
                "limits": {"timeoutMilliseconds": 2000},
            }),
        )
        .await?;
    // Interpreted components are large: compiling them takes a while.
    for name in ["registry-allowlist", "max-replicas"] {
        cluster
            .status(name, &format!("{name} loaded"), |s| {
                s.loaded_generation == Some(1) || s.load_error.is_some()
            })
            .await
            .map(|s| assert_eq!(s.load_error, None, "{name}"))?;
    }

    let (_, message) = refusal(
        cluster
            .deployment("elsewhere", json!({}), 1, "docker.io/library/nginx")
            .await,
    );
    assert!(message.contains("registry-allowlist"), "{message}");
    assert!(message.contains("docker.io/library/nginx"), "{message}");
    let (_, message) = refusal(cluster.deployment("huge", json!({}), 50, "registry.local/app:v1").await);
    assert!(message.contains("max-replicas"), "{message}");
    cluster
        .deployment("fine", json!({}), 3, "registry.local/app:v1")
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_filter_keeps_memory_headroom() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.node("small", json!({}), "1Gi", json!([])).await?;
    cluster.node("large", json!({}), "16Gi", json!([])).await?;
    cluster
        .apply(
            "memory-headroom",
            json!({"stage": "Filter", "component": inline(&example("memory-headroom")), "config": {"percent": 50}}),
        )
        .await?;
    cluster.loaded("memory-headroom", 1).await?;
    let wants = json!({"spec": {"containers": [{"name": "c", "image": "app", "resources": {"requests": {"memory": "768Mi"}}}]}});
    for i in 0..3 {
        cluster.pod(&format!("big-{i}"), wants.clone()).await?;
        assert_eq!(cluster.placed(&format!("big-{i}")).await?, "large");
    }
    let too_big =
        json!({"spec": {"containers": [{"name": "c", "image": "app", "resources": {"requests": {"memory": "12Gi"}}}]}});
    cluster.pod("too-big", too_big).await?;
    let message = cluster.unschedulable("too-big").await?;
    assert!(message.contains("would keep less than 50% memory free"), "{message}");
    Ok(())
}

/// A pod for the hostile filter: `mode` in its annotation.
fn hostile_pod(mode: &str) -> Value {
    json!({"metadata": {"annotations": {"skiff.dev/hostile": mode}},
        "spec": {"containers": [{"name": "c", "image": "app"}]}})
}

/// A Deployment annotated for the hostile validator.
async fn hostile_write(cluster: &Cluster, name: &str, mode: &str) -> kube::Result<Deployment> {
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "annotations": {"skiff.dev/hostile": mode}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "main", "image": "app"}]}},
        },
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(cluster.client(), "default")
        .create(&PostParams::default(), &deployment)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_validators_fail_their_call_only() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let rules = json!({"rules": [{"apiGroups": ["apps"], "resources": ["deployments"]}]});
    cluster
        .apply(
            "hostile",
            json!({
                "stage": "Validate",
                "component": inline(&hostile()),
                "match": rules,
                "limits": {"timeoutMilliseconds": 200, "memory": "32Mi"},
            }),
        )
        .await?;
    cluster.loaded("hostile", 1).await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");

    for (mode, expected) in [
        ("loop", "time limit of 200 ms"),
        ("alloc", "memory limit"),
        ("trap", "trapped"),
        ("error", "the plugin failed"),
    ] {
        let started = std::time::Instant::now();
        let (code, message) = refusal(hostile_write(&cluster, &format!("{mode}-fail"), mode).await);
        assert_eq!(code, 500, "{mode}: {message}");
        assert!(message.contains(expected), "{mode}: {message}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{mode} took {:?}",
            started.elapsed()
        );
        // The server goes on serving, and the plugin is fresh again.
        pods.list(&Default::default()).await?;
        hostile_write(&cluster, &format!("{mode}-after"), "ok").await?;
    }
    // While one write waits out a looping call, other requests are
    // answered.
    let looping = hostile_write(&cluster, "loop-concurrent", "loop");
    let others = async {
        let started = std::time::Instant::now();
        for _ in 0..5 {
            pods.list(&Default::default()).await?;
        }
        anyhow::Ok(started.elapsed())
    };
    let (looped, listed) = tokio::join!(looping, others);
    assert_eq!(refusal(looped).0, 500);
    let listed = listed?;
    assert!(listed < Duration::from_secs(5), "5 lists took {listed:?}");

    let (code, message) = refusal(hostile_write(&cluster, "denied", "deny").await);
    assert_eq!(code, 400, "{message}");
    assert!(message.contains("hostile says no"), "{message}");

    let status = cluster
        .status("hostile", "errors counted", |s| s.errors >= 5 && s.calls >= 10)
        .await?;
    assert!(status.last_error.is_some());

    // Under Ignore, a failing call lets the write through.
    cluster
        .apply(
            "hostile",
            json!({
                "stage": "Validate",
                "component": inline(&hostile()),
                "match": rules,
                "failurePolicy": "Ignore",
                "limits": {"timeoutMilliseconds": 200, "fuel": 50_000_000u64},
            }),
        )
        .await?;
    cluster.loaded("hostile", 2).await?;
    hostile_write(&cluster, "loop-ignored", "loop").await?;
    let status = cluster
        .status("hostile", "fuel failure reported", |s| {
            s.last_error.as_deref().is_some_and(|e| e.contains("fuel"))
        })
        .await?;
    let degraded = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("Degraded");
    assert_eq!(degraded.reason, "CallFailed");
    // WasmPlugins themselves never pass through plugins.
    cluster.plugins().delete("hostile", &DeleteParams::default()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_filters_follow_the_failure_policy() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.node("n1", json!({}), "8Gi", json!([])).await?;
    let component = inline(&std::fs::read(skiff_test_programs::PLUGIN_FILTER_HOSTILE)?);
    cluster
        .apply(
            "hostile-filter",
            json!({"stage": "Filter", "component": component, "limits": {"timeoutMilliseconds": 100}}),
        )
        .await?;
    cluster.loaded("hostile-filter", 1).await?;
    for mode in ["loop", "alloc", "trap"] {
        cluster.pod(&format!("hostile-{mode}"), hostile_pod(mode)).await?;
    }
    cluster.pod("calm", hostile_pod("ok")).await?;
    assert_eq!(cluster.placed("calm").await?, "n1");
    // The whole Node object is there for the asking, by index.
    cluster.pod("reads-node-json", hostile_pod("json")).await?;
    assert_eq!(cluster.placed("reads-node-json").await?, "n1");
    let status = cluster
        .status("hostile-filter", "the three failures counted", |s| s.errors >= 3)
        .await?;
    assert!(status.last_error.is_some());
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    for mode in ["loop", "alloc", "trap"] {
        let pod = pods.get(&format!("hostile-{mode}")).await?;
        assert!(pod.spec.and_then(|s| s.node_name).is_none(), "{mode}");
    }

    // Ignore: the failing plugin passes every node, and the waiting pod
    // is retried at once.
    cluster
        .apply(
            "hostile-filter",
            json!({"stage": "Filter", "component": component, "failurePolicy": "Ignore",
                   "limits": {"timeoutMilliseconds": 100}}),
        )
        .await?;
    for mode in ["loop", "alloc", "trap"] {
        assert_eq!(cluster.placed(&format!("hostile-{mode}")).await?, "n1");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_plugins_are_refused_clearly_and_change_nothing() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let filter = std::fs::read(skiff_test_programs::PLUGIN_FILTER_HOSTILE)?;
    let core = std::fs::read(skiff_test_programs::NOT_A_COMPONENT)?;
    let cases = [
        (
            "core-module",
            json!({"stage": "Validate", "component": inline(&core)}),
            "not a component",
        ),
        (
            "wrong-world",
            json!({"stage": "Validate", "component": inline(&filter)}),
            "admission-validate",
        ),
        (
            "unreachable",
            json!({"stage": "Validate", "component": {"oci": "127.0.0.1:1/plugins/none:v1"}}),
            "cannot fetch",
        ),
        (
            "rejected-config",
            json!({"stage": "Validate", "component": inline(&hostile()), "config": {"reject": true}}),
            "refused its configuration",
        ),
        (
            "bad-digest",
            json!({"stage": "Validate", "component": {"inline": base64::engine::general_purpose::STANDARD.encode(hostile()), "digest": "sha256:00"}}),
            "digest",
        ),
        (
            "init-loops",
            json!({"stage": "Validate", "component": inline(&hostile()), "config": {"initLoop": true}}),
            "time limit",
        ),
    ];
    for (name, spec, _) in &cases {
        cluster.apply(name, spec.clone()).await?;
    }
    for (name, _, expected) in &cases {
        let status = cluster.refused(name).await?;
        let error = status.load_error.clone().unwrap_or_default();
        assert!(error.contains(expected), "{name}: {error}");
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready").expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "LoadFailed"),
            "{name}"
        );
    }
    // None of them is in the admission chain.
    cluster.deployment("unaffected", json!({}), 1, "app").await?;

    // The API refuses what the schema rules out, and stores nothing.
    let err = cluster
        .apply("bogus", json!({"stage": "Bogus", "component": {"oci": "x"}}))
        .await
        .expect_err("a bad stage is refused");
    assert!(format!("{err:#}").contains("stage"), "{err:#}");
    assert!(cluster.plugins().get_opt("bogus").await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_pulls_from_a_private_registry_with_its_pull_secret() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let registry = Registry::start_private(&cluster.api.path("registry"), "plugins", "s3cret")?;
    let reference = registry
        .push_wasm_as(
            "plugins/require-team-label:v1",
            &example("require-team-label"),
            Some(("plugins", "s3cret")),
        )
        .await?;
    let spec = |pull_secret: Option<&str>| {
        let mut component = json!({"oci": reference});
        if let Some(name) = pull_secret {
            component["pullSecret"] = json!(name);
        }
        json!({"stage": "Validate", "component": component,
            "match": {"rules": [{"apiGroups": ["apps"], "resources": ["deployments"]}]}})
    };
    // Anonymous: the registry refuses, and the status says so.
    cluster.apply("private", spec(None)).await?;
    let refused = cluster
        .status("private", "private refused", |s| s.load_error.is_some())
        .await?;
    let error = refused.load_error.unwrap_or_default();
    assert!(error.contains("Not authorized"), "{error}");

    // With the login in a kube-system Secret: loaded.
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let config = json!({"auths": {registry.addr.clone(): {"auth": b64("plugins:s3cret")}}}).to_string();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "plugin-registry"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": b64(&config)},
    }))?;
    Api::<Secret>::namespaced(cluster.client(), "kube-system")
        .create(&PostParams::default(), &secret)
        .await?;
    cluster.apply("private", spec(Some("plugin-registry"))).await?;
    cluster.loaded("private", 2).await?;
    Ok(())
}
