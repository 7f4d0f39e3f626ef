//! `plugins-bench`: what Wasm plugins cost.
//!
//! Run with `cargo xtask bench plugins` (release build; it builds the
//! example plugins first). Two phases, in this process, on the example
//! plugins of `plugins/`:
//!
//! 1. **Per call**: each plugin called `--calls` times through the same
//!    adapter the API server or the scheduler uses (Rust, Python,
//!    JavaScript and C), with the default limits; admission plugins get a
//!    Deployment (or a Pod) request, scheduler plugins a pod and
//!    `--call-nodes` nodes. Reported: p50/p99/mean latency, and how long
//!    compiling and the first instance (with `init`) took. The same policy
//!    written in Rust against the host's own types is timed beside the
//!    Rust validator, as the floor.
//! 2. **Scheduler**: the scheduling cycle alone, in memory, at `--nodes`
//!    simulated nodes, with the default profile plus a Filter and a Score
//!    plugin: once the Wasm `require-node-label` and
//!    `prefer-cached-image`, once the same logic built in. The ratio of
//!    cycles/s is the Wasm plugins' overhead.
//!
//! JSON on stdout (or `--out`), a summary on stderr.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;
use serde_json::{Value, json};
use skiff_api::admission::{Attributes, MutatingPlugin, Operation, ValidatingPlugin};
use skiff_api::auth::UserInfo;
use skiff_api::catalog::Catalog;
use skiff_bench::scheduler::{core_cycles_with, node_name};
use skiff_bench::{load, procs};
use skiff_plugin_host::metrics::Metrics;
use skiff_plugin_host::spec::MatchRules;
use skiff_plugin_host::{
    FailurePolicy, Limits, NamespaceLabels, PluginRuntime, Stage, WasmAdmissionPlugin, WasmSchedulerPlugin,
};
use skiff_scheduler::{CycleState, FilterPlugin, NodeInfo, Plugin, Profile, ScorePlugin, Status};

#[derive(Debug, Parser)]
struct Args {
    /// Where `cargo xtask build-plugins` put the example plugins.
    #[arg(long)]
    plugins_dir: PathBuf,
    /// Calls per plugin in the per-call phase.
    #[arg(long, default_value_t = 5000)]
    calls: usize,
    /// Calls for the interpreted plugins (Python, JavaScript).
    #[arg(long, default_value_t = 1000)]
    interpreted_calls: usize,
    /// Nodes per scheduler plugin call in the per-call phase.
    #[arg(long, default_value_t = 100)]
    call_nodes: usize,
    /// Simulated nodes in the scheduler phase.
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Pods scheduled per profile in the scheduler phase.
    #[arg(long, default_value_t = 2000)]
    pods: usize,
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct CallFigures {
    plugin: String,
    language: &'static str,
    stage: &'static str,
    component_bytes: usize,
    compile_and_first_instance_ms: f64,
    calls: usize,
    p50_us: f64,
    p99_us: f64,
    mean_us: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    cores: usize,
    per_call: Vec<CallFigures>,
    scheduler: Vec<skiff_bench::scheduler::CoreRun>,
    scheduler_profiles: Vec<&'static str>,
    wasm_over_native_cycles: f64,
}

fn figures(
    name: &str,
    language: &'static str,
    stage: &'static str,
    size: usize,
    load: Duration,
    mut times: Vec<Duration>,
) -> CallFigures {
    times.sort();
    // `percentile` answers in milliseconds.
    let at = |q: f64| load::percentile(&times, q) * 1e3;
    let mean = times.iter().sum::<Duration>().as_secs_f64() * 1e6 / times.len().max(1) as f64;
    CallFigures {
        plugin: name.to_string(),
        language,
        stage,
        component_bytes: size,
        compile_and_first_instance_ms: load.as_secs_f64() * 1e3,
        calls: times.len(),
        p50_us: at(0.5),
        p99_us: at(0.99),
        mean_us: mean,
    }
}

fn time_calls(calls: usize, mut call: impl FnMut()) -> Vec<Duration> {
    // A few calls first, so that lazily touched memory is in place.
    for _ in 0..calls.min(20) {
        call();
    }
    (0..calls)
        .map(|_| {
            let started = Instant::now();
            call();
            started.elapsed()
        })
        .collect()
}

fn deployment(image: &str, replicas: i64, labels: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": image}]}}},
    })
}

/// The `require-team-label` policy built in, as the floor for the Wasm
/// validator.
#[derive(Debug)]
struct NativeTeamLabel;

impl ValidatingPlugin for NativeTeamLabel {
    fn name(&self) -> &str {
        "native-team-label"
    }
    fn handles(&self, _: &Attributes<'_>) -> bool {
        true
    }
    fn validate(
        &self,
        _: &Attributes<'_>,
        object: &Value,
        _: Option<&Value>,
    ) -> Result<(), skiff_api::admission::Denial> {
        match object.pointer("/metadata/labels/team") {
            Some(_) => Ok(()),
            None => Err(skiff_api::admission::Denial::new("missing label team")),
        }
    }
}

/// The `require-node-label` filter built in.
#[derive(Debug)]
struct NativeRequireNodeLabel;

impl Plugin for NativeRequireNodeLabel {
    fn name(&self) -> &str {
        "native-require-node-label"
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NativeRequireNodeLabel {
    fn filter(&self, _: &CycleState, pod: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<Status>, Status> {
        let wanted = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("skiff.dev/require-node-label"));
        Ok(nodes
            .iter()
            .map(|node| {
                let Some(wanted) = wanted else {
                    return Status::success();
                };
                let (key, value) = match wanted.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (wanted.as_str(), None),
                };
                match (node.label(key), value) {
                    (Some(have), Some(want)) if have == want => Status::success(),
                    (Some(_), None) => Status::success(),
                    _ => Status::unresolvable(format!("node(s) didn't have label {wanted}")),
                }
            })
            .collect())
    }
}

/// The `prefer-cached-image` score built in.
#[derive(Debug)]
struct NativePreferCachedImage;

impl Plugin for NativePreferCachedImage {
    fn name(&self) -> &str {
        "native-prefer-cached-image"
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl ScorePlugin for NativePreferCachedImage {
    fn score(&self, _: &CycleState, pod: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<i64>, Status> {
        let images: Vec<&str> = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .filter_map(|c| c.image.as_deref())
            .collect();
        Ok(nodes
            .iter()
            .map(|node| {
                let held = node.node().status.as_ref().and_then(|s| s.images.as_ref());
                let holds = |image: &str| {
                    held.into_iter()
                        .flatten()
                        .any(|i| i.names.iter().flatten().any(|n| n == image))
                };
                let count = images.iter().filter(|i| holds(i)).count() as i64;
                if images.is_empty() {
                    0
                } else {
                    100 * count / images.len() as i64
                }
            })
            .collect())
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let read = |name: &str| {
        let path = args.plugins_dir.join(format!("{name}.wasm"));
        std::fs::read(&path).with_context(|| format!("{} (run `cargo xtask build-plugins`)", path.display()))
    };
    let dir = tempfile::tempdir()?;
    let runtime = PluginRuntime::new(dir.path().join("compiled"))?;
    let limits = Limits {
        timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let catalog = Catalog::new();
    let deployments = catalog.lookup("apps", "v1", "deployments").context("deployments")?;
    let pods = catalog.lookup("", "v1", "pods").context("pods")?;
    let admin = UserInfo::admin();
    let attributes = |resource: &'static str| Attributes {
        operation: Operation::Create,
        resource: if resource == "pods" { &pods } else { &deployments },
        subresource: None,
        namespace: Some("default"),
        name: "web",
        user: &admin,
        dry_run: false,
    };
    let mut per_call = Vec::new();

    // Admission plugins.
    let admission = [
        (
            "require-team-label",
            "Rust",
            Stage::Validate,
            "{}",
            deployment("registry.local/web:v1", 3, json!({"team": "a"})),
        ),
        (
            "wasm-default-limits",
            "Rust",
            Stage::Mutate,
            "{}",
            json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"runtimeClassName": "wasmtime", "containers": [{"name": "main", "image": "app.wasm"}]}}),
        ),
        (
            "registry-allowlist",
            "Python",
            Stage::Validate,
            r#"{"registries": ["registry.local/"]}"#,
            deployment("registry.local/web:v1", 3, json!({})),
        ),
        (
            "max-replicas",
            "JavaScript",
            Stage::Validate,
            r#"{"max": 10}"#,
            deployment("registry.local/web:v1", 3, json!({})),
        ),
    ];
    for (name, language, stage, config, object) in admission {
        let bytes = read(name)?;
        let started = Instant::now();
        let (_, instance) = runtime.instantiate(name, stage, &bytes, config.to_string(), limits)?;
        let load = started.elapsed();
        let plugin = WasmAdmissionPlugin::new(
            name.to_string(),
            stage,
            FailurePolicy::Fail,
            MatchRules::default(),
            NamespaceLabels::default(),
            instance,
            Arc::new(Metrics::default()),
        );
        let calls = if language == "Rust" {
            args.calls
        } else {
            args.interpreted_calls
        };
        let kind = if stage == Stage::Mutate { "pods" } else { "deployments" };
        let attrs = attributes(kind);
        let mut refusal = None;
        let times = time_calls(calls, || {
            let result = if stage == Stage::Mutate {
                let mut copy = object.clone();
                MutatingPlugin::mutate(&plugin, &attrs, &mut copy, None)
            } else {
                ValidatingPlugin::validate(&plugin, &attrs, &object, None)
            };
            if let Err(denial) = result {
                refusal = Some(denial.message);
            }
        });
        if let Some(message) = refusal {
            anyhow::bail!("{name} refused the benchmark's request: {message}");
        }
        let stage_name = if stage == Stage::Mutate { "Mutate" } else { "Validate" };
        per_call.push(figures(name, language, stage_name, bytes.len(), load, times));
    }
    let native = NativeTeamLabel;
    let object = deployment("registry.local/web:v1", 3, json!({"team": "a"}));
    let attrs = attributes("deployments");
    let times = time_calls(args.calls, || {
        let _ = native.validate(&attrs, &object, None);
    });
    per_call.push(figures(
        "require-team-label (built in)",
        "Rust, in the host",
        "Validate",
        0,
        Duration::ZERO,
        times,
    ));

    // Scheduler plugins, on `call_nodes` nodes per call.
    let snapshot_nodes: Vec<NodeInfo> = (0..args.call_nodes)
        .map(|i| {
            let mut node = skiff_bench::scheduler::node_object(&node_name(i));
            decorate_node(i, &mut node);
            Ok(NodeInfo::new(Arc::new(serde_json::from_value(node)?)))
        })
        .collect::<anyhow::Result<_>>()?;
    let node_refs: Vec<&NodeInfo> = snapshot_nodes.iter().collect();
    let mut pod = skiff_bench::scheduler::pod_object("p-00000");
    decorate_pod(0, &mut pod);
    let pod: Pod = serde_json::from_value(pod)?;
    let scheduling = [
        ("require-node-label", "Rust", Stage::Filter, "{}"),
        ("prefer-cached-image", "Rust", Stage::Score, "{}"),
        ("memory-headroom", "C", Stage::Filter, r#"{"percent": 20}"#),
    ];
    let mut wasm_plugins = BTreeMap::new();
    for (name, language, stage, config) in scheduling {
        let bytes = read(name)?;
        let started = Instant::now();
        let (_, instance) = runtime.instantiate(name, stage, &bytes, config.to_string(), limits)?;
        let load = started.elapsed();
        let plugin = Arc::new(WasmSchedulerPlugin::new(
            name.to_string(),
            stage,
            FailurePolicy::Fail,
            instance,
            Arc::new(Metrics::default()),
        ));
        let state = CycleState::new();
        let times = time_calls(args.calls, || {
            let ok = match stage {
                Stage::Score => plugin.score(&state, &pod, &node_refs).is_ok(),
                _ => plugin.filter(&state, &pod, &node_refs).is_ok(),
            };
            assert!(ok, "{name} failed in the benchmark");
        });
        let stage_name = if stage == Stage::Score { "Score" } else { "Filter" };
        per_call.push(figures(name, language, stage_name, bytes.len(), load, times));
        wasm_plugins.insert(name, plugin);
    }
    for figures in &per_call {
        eprintln!(
            "{:<32} {:<18} {:<8} p50 {:>9.1} µs  p99 {:>9.1} µs  (load {:.0} ms, {} KiB)",
            figures.plugin,
            figures.language,
            figures.stage,
            figures.p50_us,
            figures.p99_us,
            figures.compile_and_first_instance_ms,
            figures.component_bytes / 1024
        );
    }

    // The scheduling cycle with the Wasm pair and with the same logic built in.
    let default = Profile::default_profile()?;
    let with = |filter: Arc<dyn Plugin>, score: Arc<dyn Plugin>| -> anyhow::Result<Profile> {
        Ok(default.with_plugin(filter, 1).with_plugin(score, 1))
    };
    let native = with(Arc::new(NativeRequireNodeLabel), Arc::new(NativePreferCachedImage))?;
    let wasm = with(
        wasm_plugins["require-node-label"].clone(),
        wasm_plugins["prefer-cached-image"].clone(),
    )?;
    let mut scheduler = Vec::new();
    for (label, profile) in [
        ("default", &default),
        ("default + built-in pair", &native),
        ("default + Wasm pair", &wasm),
    ] {
        let run = core_cycles_with(profile, args.nodes, args.pods, &decorate_node, &decorate_pod)?;
        eprintln!(
            "scheduler {label:<26} {} nodes: {:>8.0} cycles/s  p50 {:>7.0} µs  p99 {:>7.0} µs  ({:.0} nodes examined)",
            args.nodes, run.cycles_per_sec, run.cycle_p50_us, run.cycle_p99_us, run.mean_nodes_examined
        );
        scheduler.push(run);
    }
    let ratio = scheduler[2].cycles_per_sec / scheduler[1].cycles_per_sec.max(f64::MIN_POSITIVE);
    eprintln!("Wasm pair / built-in pair: x{ratio:.2} cycles/s");
    let report = Report {
        cores: procs::cores(),
        per_call,
        scheduler,
        scheduler_profiles: vec!["default", "default + built-in pair", "default + Wasm pair"],
        wasm_over_native_cycles: ratio,
    };
    println!("{}", procs::write_report(args.out.as_deref(), &report)?);
    Ok(())
}

/// Every node carries the `zone` label the pods require; one in ten holds
/// the pods' image.
fn decorate_node(i: usize, node: &mut Value) {
    node["metadata"]["labels"]["zone"] = json!(format!("z{}", i % 3));
    if i.is_multiple_of(10) {
        node["status"]["images"] = json!([{"names": ["local/hello:1"], "sizeBytes": 1_000_000}]);
    }
}

fn decorate_pod(_: usize, pod: &mut Value) {
    pod["metadata"]["annotations"] = json!({"skiff.dev/require-node-label": "zone"});
}
