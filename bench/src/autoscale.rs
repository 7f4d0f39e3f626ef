//! The parts of `autoscale-bench`: the objects it applies (a Wasm
//! Deployment, its Service, an autoscaling/v2 HorizontalPodAutoscaler on
//! `requests-per-second`), a recorder of a Deployment's wanted and Ready
//! replicas over time (two watches: the Deployment's `spec.replicas`, its
//! pods' `Ready` condition), keep-alive HTTP load that runs until told to
//! stop, the arithmetic that turns a timeline into reaction times, and
//! the SVG plots drawn beside the JSON (`plotters`, SVG backend only).
//!
//! The arithmetic is pure ([`since`], [`reaction`], [`steps`]) and tested
//! here; the recorder only feeds it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::Method;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::ApiClient;
use crate::node::HttpConn;

/// A Wasm HTTP Deployment of `replicas` pods of `image`, labelled
/// `app: name`, stopped at once when scaled down.
pub fn deployment(name: &str, replicas: u32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "main", "image": image, "ports": [{"containerPort": 8080}]}],
                },
            },
        },
    })
}

/// A ClusterIP Service on port 80 for the pods labelled `app: name`.
pub fn service(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    })
}

/// An autoscaling/v2 HPA of Deployment `name` on the Pods metric
/// `requests-per-second` (an average of `target` per pod), scaling down
/// after `down_window` seconds by up to all pods a second.
pub fn autoscaler(name: &str, min: u32, max: u32, target: &str, down_window: u32) -> Value {
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min,
            "maxReplicas": max,
            "metrics": [{"type": "Pods", "pods": {
                "metric": {"name": "requests-per-second"},
                "target": {"type": "AverageValue", "averageValue": target},
            }}],
            "behavior": {"scaleDown": {
                "stabilizationWindowSeconds": down_window,
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}],
            }},
        },
    })
}

/// Creates `object` under the collection `path`.
pub async fn create(api: &ApiClient, path: &str, object: &Value) -> anyhow::Result<Value> {
    let bytes = api
        .call(
            Method::POST,
            path,
            Some(object.to_string().into_bytes()),
            "application/json",
        )
        .await
        .with_context(|| format!("POST {path}"))?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// Sets Deployment `name`'s replicas through its `scale` subresource, as
/// `kubectl scale` does.
pub async fn scale(api: &ApiClient, ns: &str, name: &str, replicas: u32) -> anyhow::Result<()> {
    let patch = json!({"spec": {"replicas": replicas}});
    api.call(
        Method::PATCH,
        &format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale"),
        Some(patch.to_string().into_bytes()),
        "application/merge-patch+json",
    )
    .await
    .with_context(|| format!("scaling deployment {ns}/{name} to {replicas}"))?;
    Ok(())
}

/// One point of a replica timeline: seconds since the reference instant,
/// replicas wanted (`spec.replicas`), pods Ready.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Sample {
    pub t_s: f64,
    pub wanted: i64,
    pub ready: usize,
}

/// A change the recorder saw.
#[derive(Clone, Copy, Debug)]
pub struct Change {
    pub at: Instant,
    pub wanted: i64,
    pub ready: usize,
    /// Pods of the Deployment that exist, terminating or not.
    pub present: usize,
}

#[derive(Debug, Default)]
struct State {
    wanted: i64,
    ready: BTreeSet<String>,
    present: BTreeSet<String>,
    log: Vec<Change>,
}

impl State {
    fn note(&mut self, at: Instant) {
        let (wanted, ready, present) = (self.wanted, self.ready.len(), self.present.len());
        let same = self
            .log
            .last()
            .is_some_and(|c| c.wanted == wanted && c.ready == ready && c.present == present);
        if !same {
            self.log.push(Change {
                at,
                wanted,
                ready,
                present,
            });
        }
    }
}

/// Whether a pod counts as Ready: its `Ready` condition is true and it
/// is not being deleted.
fn pod_ready(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// A Deployment's wanted and Ready replicas as they change, from two
/// watches; they stop when this is dropped.
#[derive(Debug)]
pub struct Recorder {
    state: Arc<Mutex<State>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

impl Recorder {
    /// Starts recording Deployment `ns/name` and its pods (labelled
    /// `app: name`) until `deadline`.
    pub fn start(api: &ApiClient, ns: &str, name: &str, deadline: Instant) -> Recorder {
        let state = Arc::new(Mutex::new(State::default()));
        let deployments = {
            let (state, name) = (state.clone(), name.to_string());
            follow(
                api.clone(),
                format!("/apis/apps/v1/namespaces/{ns}/deployments"),
                deadline,
                move |kind, object, at| {
                    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
                    if kind == "SYNC" || object["metadata"]["name"] != name.as_str() {
                        return;
                    }
                    state.wanted = match kind {
                        "DELETED" => 0,
                        _ => object["spec"]["replicas"].as_i64().unwrap_or(1),
                    };
                    state.note(at);
                },
            )
        };
        let pods = {
            let (state, name) = (state.clone(), name.to_string());
            follow(
                api.clone(),
                format!("/api/v1/namespaces/{ns}/pods"),
                deadline,
                move |kind, object, at| {
                    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
                    if kind == "SYNC" {
                        state.ready.clear();
                        state.present.clear();
                        return;
                    }
                    if object["metadata"]["labels"]["app"] != name.as_str() {
                        return;
                    }
                    let pod = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    if kind == "DELETED" {
                        state.ready.remove(&pod);
                        state.present.remove(&pod);
                    } else {
                        if pod_ready(object) {
                            state.ready.insert(pod.clone());
                        } else {
                            state.ready.remove(&pod);
                        }
                        state.present.insert(pod);
                    }
                    state.note(at);
                },
            )
        };
        Recorder {
            state,
            tasks: vec![tokio::spawn(deployments), tokio::spawn(pods)],
        }
    }

    /// Every change seen so far.
    pub fn changes(&self) -> Vec<Change> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).log.clone()
    }

    /// The latest change (wanted, Ready, present), if any was seen.
    pub fn now(&self) -> Option<Change> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .log
            .last()
            .copied()
    }

    /// Waits until `done` holds for the latest change, or `deadline`.
    pub async fn until(&self, deadline: Instant, done: impl Fn(&Change) -> bool) -> bool {
        while Instant::now() < deadline {
            if self.now().is_some_and(|c| done(&c)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

#[derive(Debug, Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: Value,
}

/// Follows the collection at `list_path` until `deadline`: calls
/// `seen("SYNC", Null, at)` and then `seen("ADDED", object, at)` for each
/// object listed, then `seen(type, object, at)` for every watch event;
/// resumes a watch that ends and lists again after an `ERROR` (such as an
/// expired resourceVersion).
pub async fn follow(
    api: ApiClient,
    list_path: String,
    deadline: Instant,
    mut seen: impl FnMut(&str, &Value, Instant) + Send,
) {
    let mut rv: Option<String> = None;
    while Instant::now() < deadline {
        let from = match &rv {
            Some(rv) => rv.clone(),
            None => match api.call(Method::GET, &list_path, None, "application/json").await {
                Ok(bytes) => {
                    let Ok(list) = serde_json::from_slice::<Value>(&bytes) else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let at = Instant::now();
                    seen("SYNC", &Value::Null, at);
                    for item in list["items"].as_array().into_iter().flatten() {
                        seen("ADDED", item, at);
                    }
                    let listed = list["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string();
                    rv = Some(listed.clone());
                    listed
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let path = format!("{list_path}?watch=true&resourceVersion={from}&allowWatchBookmarks=true");
        let Ok(mut body) = api.watch(&path).await else {
            rv = None;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut buffer = Vec::new();
        'stream: loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let frame = match tokio::time::timeout(remaining, body.frame()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(_) => break,
                Err(_) => return,
            };
            let Ok(data) = frame.into_data() else { continue };
            buffer.extend_from_slice(&data);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let Ok(event) = serde_json::from_slice::<WatchEvent>(&line) else {
                    continue;
                };
                if event.kind == "ERROR" {
                    rv = None;
                    break 'stream;
                }
                if let Some(v) = event.object["metadata"]["resourceVersion"].as_str() {
                    rv = Some(v.to_string());
                }
                if event.kind != "BOOKMARK" {
                    seen(&event.kind, &event.object, Instant::now());
                }
            }
        }
    }
}

/// The timeline from `start` to `end`, in seconds since `start`: the
/// state at `start` (the last change before it) first, then each change.
pub fn since(changes: &[Change], start: Instant, end: Instant) -> Vec<Sample> {
    let sample = |c: &Change| Sample {
        t_s: c.at.saturating_duration_since(start).as_secs_f64(),
        wanted: c.wanted,
        ready: c.ready,
    };
    let mut out: Vec<Sample> = Vec::new();
    if let Some(before) = changes.iter().rev().find(|c| c.at < start) {
        out.push(Sample {
            t_s: 0.0,
            ..sample(before)
        });
    }
    // Changes of the pods present alone (one terminating, say) are not
    // samples.
    for s in changes.iter().filter(|c| c.at >= start && c.at <= end).map(sample) {
        if out
            .last()
            .is_none_or(|last| (last.wanted, last.ready) != (s.wanted, s.ready))
        {
            out.push(s);
        }
    }
    out
}

/// How a Deployment reacted to a load step at `t = 0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Reaction {
    /// Replicas wanted and Ready before the step.
    pub wanted_before: i64,
    pub ready_before: usize,
    /// The most replicas wanted after it.
    pub peak_wanted: i64,
    /// When the autoscaler first raised the replicas.
    pub decision_s: Option<f64>,
    /// When the first new replica was Ready.
    pub first_ready_s: Option<f64>,
    /// When as many replicas as at the peak were Ready.
    pub all_ready_s: Option<f64>,
}

/// The reaction in a timeline that starts with the state at the step.
pub fn reaction(timeline: &[Sample]) -> Reaction {
    let Some(first) = timeline.first() else {
        return Reaction::default();
    };
    let peak_wanted = timeline.iter().map(|s| s.wanted).max().unwrap_or(first.wanted);
    let decision_s = timeline.iter().find(|s| s.wanted > first.wanted).map(|s| s.t_s);
    let first_ready_s = timeline.iter().find(|s| s.ready > first.ready).map(|s| s.t_s);
    let all_ready_s = decision_s.and_then(|decided| {
        timeline
            .iter()
            .find(|s| s.t_s >= decided && s.ready as i64 >= peak_wanted)
            .map(|s| s.t_s)
    });
    Reaction {
        wanted_before: first.wanted,
        ready_before: first.ready,
        peak_wanted,
        decision_s,
        first_ready_s,
        all_ready_s,
    }
}

/// A timeline's values as a step line ending at `end_s`: each value held
/// until the next change.
pub fn steps(timeline: &[Sample], value: impl Fn(&Sample) -> f64, end_s: f64) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for s in timeline {
        if let Some(&(_, last)) = out.last() {
            out.push((s.t_s, last));
        }
        out.push((s.t_s, value(s)));
    }
    if let Some(&(t, last)) = out.last()
        && end_s > t
    {
        out.push((end_s, last));
    }
    out
}

/// Keep-alive GETs of `/` to `addr` from `clients` connections until
/// `stop` is set or `max` has passed; counts what was answered and what
/// failed.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    started: Instant,
    ok: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(addr: SocketAddr, clients: usize, max: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let started = Instant::now();
        let tasks = (0..clients.max(1))
            .map(|_| {
                let (stop, ok, errors) = (stop.clone(), ok.clone(), errors.clone());
                tokio::spawn(async move {
                    let mut conn: Option<HttpConn> = None;
                    while !stop.load(Ordering::Relaxed) && started.elapsed() < max {
                        if conn.is_none() {
                            match HttpConn::connect(addr).await {
                                Ok(c) => conn = Some(c),
                                Err(_) => {
                                    errors.fetch_add(1, Ordering::Relaxed);
                                    tokio::time::sleep(Duration::from_millis(10)).await;
                                    continue;
                                }
                            }
                        }
                        let Some(c) = conn.as_mut() else { continue };
                        match tokio::time::timeout(Duration::from_secs(10), c.get("/")).await {
                            Ok(Ok(_)) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                conn = None;
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            started,
            ok,
            errors,
            tasks,
        }
    }

    /// Stops the load: (requests answered, errors, seconds it ran).
    pub async fn stop(self) -> (u64, u64, f64) {
        self.stop.store(true, Ordering::Relaxed);
        let seconds = self.started.elapsed().as_secs_f64();
        for task in self.tasks {
            let _ = task.await;
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            seconds,
        )
    }
}

/// A closed-loop run of keep-alive GETs (see [`crate::load::run`]): the
/// raw result, so that several runs can be merged.
pub async fn http_run(addr: SocketAddr, clients: usize, duration: Duration) -> crate::load::Run {
    let connections: Arc<Vec<tokio::sync::Mutex<Option<HttpConn>>>> =
        Arc::new((0..clients).map(|_| tokio::sync::Mutex::new(None)).collect());
    crate::load::run(clients, duration, move |client, _| {
        let connections = connections.clone();
        async move {
            let mut slot = connections[client].lock().await;
            if slot.is_none() {
                *slot = Some(HttpConn::connect(addr).await?);
            }
            let Some(conn) = slot.as_mut() else {
                bail!("no connection")
            };
            if let Err(error) = conn.get("/").await {
                *slot = None;
                return Err(error);
            }
            Ok(())
        }
    })
    .await
}

/// Several runs as one: operations, errors and seconds added up,
/// latencies pooled and sorted.
pub fn merge(runs: Vec<crate::load::Run>) -> crate::load::Run {
    let mut merged: crate::load::Run = (0, 0, 0.0, Vec::new());
    for (ops, errors, seconds, latencies) in runs {
        merged.0 += ops;
        merged.1 += errors;
        merged.2 += seconds;
        merged.3.extend(latencies);
    }
    merged.3.sort_unstable();
    merged
}

/// One repetition's timeline for the HPA plot.
#[derive(Debug)]
pub struct PlotRun<'a> {
    pub label: String,
    pub timeline: &'a [Sample],
    /// When the load stopped (a dotted vertical line), and when the plot
    /// of this run ends.
    pub load_stopped_s: f64,
    pub end_s: f64,
}

/// Replicas wanted (dashed) and Ready (solid) against seconds since the
/// load step, one colour per repetition.
pub fn plot_replicas(path: &Path, title: &str, runs: &[PlotRun<'_>]) -> anyhow::Result<()> {
    use plotters::prelude::*;

    let x_max = runs.iter().map(|r| r.end_s).fold(1.0, f64::max) * 1.05;
    let y_max = runs
        .iter()
        .flat_map(|r| r.timeline.iter())
        .map(|s| s.wanted.max(s.ready as i64))
        .max()
        .unwrap_or(1) as f64
        + 1.0;
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the load step")
        .y_desc("replicas (dashed: wanted, solid: Ready; dotted: load stopped)")
        .draw()
        .map_err(plot_error)?;
    for (i, run) in runs.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        let wanted = steps(run.timeline, |s| s.wanted as f64, run.end_s);
        let ready = steps(run.timeline, |s| s.ready as f64, run.end_s);
        chart
            .draw_series(DashedLineSeries::new(wanted, 6, 4, colour.stroke_width(2)))
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(ready, colour.stroke_width(2)))
            .map_err(plot_error)?
            .label(run.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart
            .draw_series(DashedLineSeries::new(
                [(run.load_stopped_s, 0.0), (run.load_stopped_s, y_max)],
                2,
                4,
                colour.stroke_width(1),
            ))
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// One series of per-sample values for [`plot_samples`].
#[derive(Debug)]
pub struct PlotSeries<'a> {
    pub label: &'a str,
    pub values_ms: Vec<Option<f64>>,
}

/// Each sample's values (points, by sample number) with horizontal lines
/// at `marks` (label, ms), e.g. the p50 and p99 of the first series.
pub fn plot_samples(path: &Path, title: &str, series: &[PlotSeries<'_>], marks: &[(&str, f64)]) -> anyhow::Result<()> {
    use plotters::prelude::*;

    let n = series.iter().map(|s| s.values_ms.len()).max().unwrap_or(0).max(1);
    let last = i32::try_from(n).unwrap_or(i32::MAX - 1) + 1;
    let y_max = series
        .iter()
        .flat_map(|s| s.values_ms.iter().flatten().copied())
        .chain(marks.iter().map(|(_, v)| *v))
        .fold(1.0, f64::max)
        // Room above the points for the legend.
        * 1.6;
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0..last, 0.0..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_labels(usize::try_from(last).unwrap_or(0).min(20) + 1)
        .x_desc("sample")
        .y_desc("milliseconds after the request was sent")
        .draw()
        .map_err(plot_error)?;
    for (i, s) in series.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        let points: Vec<(i32, f64)> = (1..).zip(&s.values_ms).filter_map(|(k, v)| v.map(|v| (k, v))).collect();
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled())))
            .map_err(plot_error)?
            .label(s.label)
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, colour.filled()));
    }
    for (i, (label, value)) in marks.iter().enumerate() {
        let colour = Palette99::pick(series.len() + i).to_rgba();
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0, *value), (last, *value)],
                6,
                4,
                colour.stroke_width(1),
            ))
            .map_err(plot_error)?
            .label(format!("{label} {value:.1} ms"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn plot_error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(start: Instant, ms: u64, wanted: i64, ready: usize) -> Change {
        Change {
            at: start + Duration::from_millis(ms),
            wanted,
            ready,
            present: ready,
        }
    }

    #[test]
    fn a_timeline_starts_with_the_state_at_the_step() {
        let t = Instant::now();
        let mut terminating = change(t, 1_500, 1, 1);
        terminating.present = 2;
        let changes = [
            change(t, 0, 1, 0),
            change(t, 100, 1, 1),
            terminating,
            change(t, 2_000, 4, 1),
        ];
        let timeline = since(&changes, t + Duration::from_millis(1_000), t + Duration::from_secs(10));
        assert_eq!(
            timeline,
            [
                Sample {
                    t_s: 0.0,
                    wanted: 1,
                    ready: 1
                },
                Sample {
                    t_s: 1.0,
                    wanted: 4,
                    ready: 1
                },
            ]
        );
    }

    #[test]
    fn the_reaction_is_read_from_the_timeline() {
        let s = |t_s, wanted, ready| Sample { t_s, wanted, ready };
        let timeline = [
            s(0.0, 1, 1),
            s(1.5, 2, 1),
            s(1.6, 2, 2),
            s(2.5, 4, 2),
            s(2.7, 4, 3),
            s(2.8, 4, 4),
        ];
        let r = reaction(&timeline);
        assert_eq!(r.peak_wanted, 4);
        assert_eq!(r.decision_s, Some(1.5));
        assert_eq!(r.first_ready_s, Some(1.6));
        assert_eq!(r.all_ready_s, Some(2.8));
        // No decision: nothing to be Ready for.
        let idle = reaction(&[s(0.0, 1, 1), s(3.0, 1, 1)]);
        assert_eq!((idle.decision_s, idle.all_ready_s), (None, None));
    }

    #[test]
    fn steps_hold_each_value_until_the_next_change() {
        let s = |t_s, wanted| Sample { t_s, wanted, ready: 0 };
        let points = steps(&[s(0.0, 1), s(2.0, 3)], |s| s.wanted as f64, 5.0);
        assert_eq!(points, [(0.0, 1.0), (2.0, 1.0), (2.0, 3.0), (5.0, 3.0)]);
    }

    #[test]
    fn the_plots_are_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let s = |t_s, wanted, ready| Sample { t_s, wanted, ready };
        let timeline = [s(0.0, 1, 1), s(1.5, 4, 1), s(2.0, 4, 4)];
        let hpa = dir.path().join("hpa.svg");
        plot_replicas(
            &hpa,
            "replicas",
            &[PlotRun {
                label: "run 1".into(),
                timeline: &timeline,
                load_stopped_s: 2.5,
                end_s: 3.0,
            }],
        )
        .unwrap();
        let zero = dir.path().join("zero.svg");
        plot_samples(
            &zero,
            "first request",
            &[PlotSeries {
                label: "total",
                values_ms: vec![Some(12.0), None, Some(15.0)],
            }],
            &[("p50", 13.0), ("p99", 15.0)],
        )
        .unwrap();
        for file in [hpa, zero] {
            let svg = std::fs::read_to_string(&file).unwrap();
            assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{svg}");
        }
    }
}
