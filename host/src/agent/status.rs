//! A pod's status from what the agent knows of its containers: a pure
//! function, so the kubelet's rules for phase and conditions are tested
//! without running anything.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, HostIP,
    PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// How one container run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
}

/// Where one container is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    Waiting { reason: String, message: Option<String> },
    Running { started_at: Timestamp },
    Terminated(Terminated),
}

/// What the agent knows of one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    pub image_id: String,
    /// `<runtime>://<id>` once the container was created.
    pub container_id: Option<String>,
    pub state: Phase,
    pub last_termination: Option<Terminated>,
    pub restart_count: i32,
    /// Passed its readiness probe (or has none) while running.
    pub ready: bool,
    /// Passed its startup probe (or has none) while running.
    pub started: bool,
}

impl ContainerRecord {
    /// A container not started yet.
    pub fn waiting(name: &str, image: &str, reason: &str) -> ContainerRecord {
        ContainerRecord {
            name: name.to_string(),
            image: image.to_string(),
            image_id: String::new(),
            container_id: None,
            state: Phase::Waiting {
                reason: reason.to_string(),
                message: None,
            },
            last_termination: None,
            restart_count: 0,
            ready: false,
            started: false,
        }
    }

    fn succeeded(&self) -> bool {
        matches!(&self.state, Phase::Terminated(t) if t.exit_code == 0)
    }
}

/// Everything the status is computed from.
#[derive(Clone, Debug, Default)]
pub struct PodView {
    pub init_containers: Vec<ContainerRecord>,
    pub containers: Vec<ContainerRecord>,
    pub pod_ip: Option<String>,
    pub host_ip: String,
    pub start_time: Option<Timestamp>,
    /// Set when the pod as a whole failed (e.g. a deadline), with a reason.
    pub failed: Option<(String, String)>,
}

fn terminated_state(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: t.started_at.map(Time),
        finished_at: Some(Time(t.finished_at)),
        ..Default::default()
    }
}

fn container_status(record: &ContainerRecord) -> ContainerStatus {
    let state = match &record.state {
        Phase::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        Phase::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..Default::default()
        },
        Phase::Terminated(t) => ContainerState {
            terminated: Some(terminated_state(t)),
            ..Default::default()
        },
    };
    let running = matches!(record.state, Phase::Running { .. });
    ContainerStatus {
        name: record.name.clone(),
        image: record.image.clone(),
        image_id: record.image_id.clone(),
        container_id: record.container_id.clone(),
        state: Some(state),
        last_state: record.last_termination.as_ref().map(|t| ContainerState {
            terminated: Some(terminated_state(t)),
            ..Default::default()
        }),
        ready: running && record.ready,
        started: Some(running && record.started),
        restart_count: record.restart_count,
        ..Default::default()
    }
}

fn terminated_of(t: &ContainerStateTerminated) -> Terminated {
    Terminated {
        exit_code: t.exit_code,
        reason: t.reason.clone().unwrap_or_default(),
        message: t.message.clone(),
        started_at: t.started_at.as_ref().map(|t| t.0),
        finished_at: t.finished_at.as_ref().map_or_else(Timestamp::now, |t| t.0),
    }
}

impl ContainerRecord {
    /// What a container's reported status says of it: the record an agent
    /// that adopts the container starts from (the inverse of the status
    /// this module writes).
    pub fn of_status(status: &ContainerStatus) -> ContainerRecord {
        let state = status.state.as_ref();
        let phase = if let Some(running) = state.and_then(|s| s.running.as_ref()) {
            Phase::Running {
                started_at: running.started_at.as_ref().map_or_else(Timestamp::now, |t| t.0),
            }
        } else if let Some(terminated) = state.and_then(|s| s.terminated.as_ref()) {
            Phase::Terminated(terminated_of(terminated))
        } else {
            let waiting = state.and_then(|s| s.waiting.as_ref());
            Phase::Waiting {
                reason: waiting.and_then(|w| w.reason.clone()).unwrap_or_default(),
                message: waiting.and_then(|w| w.message.clone()),
            }
        };
        ContainerRecord {
            name: status.name.clone(),
            image: status.image.clone(),
            image_id: status.image_id.clone(),
            container_id: status.container_id.clone(),
            state: phase,
            last_termination: status
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(terminated_of),
            restart_count: status.restart_count,
            ready: status.ready,
            started: status.started.unwrap_or(status.ready),
        }
    }
}

/// The pod phase by the kubelet's rules: waiting containers (never run)
/// keep a pod Pending; any running container makes it Running; when all
/// have stopped, the restart policy decides between Running (they will
/// restart), Succeeded and Failed.
pub fn phase(restart_policy: &str, view: &PodView) -> &'static str {
    if view.failed.is_some() {
        return "Failed";
    }
    let init_failed = view
        .init_containers
        .iter()
        .any(|c| matches!(&c.state, Phase::Terminated(t) if t.exit_code != 0) || c.last_termination.is_some());
    if !view.init_containers.iter().all(ContainerRecord::succeeded) {
        return if init_failed && restart_policy == "Never" {
            "Failed"
        } else {
            "Pending"
        };
    }
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &view.containers {
        match &c.state {
            Phase::Running { .. } => running += 1,
            Phase::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            // A container waiting to restart has run before: it counts
            // as stopped, so a crash-looping pod stays Running.
            Phase::Waiting { .. } if c.last_termination.is_some() => stopped += 1,
            Phase::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        if restart_policy == "Always" {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if restart_policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else {
        "Pending"
    }
}

fn condition(kind: &str, ok: bool, reason: Option<&str>, now: Timestamp) -> PodCondition {
    PodCondition {
        type_: kind.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: (!ok)
            .then(|| reason.unwrap_or_default().to_string())
            .filter(|r| !r.is_empty()),
        last_transition_time: Some(Time(now)),
        ..Default::default()
    }
}

/// The status to report. `previous` is what the API holds, so a condition
/// keeps its `lastTransitionTime` while its status does not change.
/// (`qosClass` is the API server's, set when the pod is created.)
pub fn pod_status(spec: &PodSpec, view: &PodView, previous: Option<&PodStatus>, now: Timestamp) -> PodStatus {
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let phase = phase(restart_policy, view);
    let done = matches!(phase, "Succeeded" | "Failed");
    let initialized = view.init_containers.iter().all(ContainerRecord::succeeded);
    let containers_ready = !done
        && view
            .containers
            .iter()
            .all(|c| matches!(c.state, Phase::Running { .. }) && c.ready);
    let not_ready = if done { "PodCompleted" } else { "ContainersNotReady" };
    let mut conditions = vec![
        condition("PodReadyToStartContainers", view.pod_ip.is_some(), None, now),
        condition("Initialized", initialized, Some("ContainersNotInitialized"), now),
        condition("Ready", containers_ready, Some(not_ready), now),
        condition("ContainersReady", containers_ready, Some(not_ready), now),
        condition("PodScheduled", true, None, now),
    ];
    if let Some(previous) = previous.and_then(|p| p.conditions.as_ref()) {
        for c in &mut conditions {
            if let Some(old) = previous.iter().find(|o| o.type_ == c.type_ && o.status == c.status) {
                c.last_transition_time = old.last_transition_time.clone();
            }
        }
    }
    let (reason, message) = match &view.failed {
        Some((reason, message)) => (Some(reason.clone()), Some(message.clone())),
        None => (None, None),
    };
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(view.host_ip.clone()),
        host_ips: Some(vec![HostIP {
            ip: view.host_ip.clone(),
        }]),
        pod_ip: view.pod_ip.clone(),
        pod_ips: view.pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        start_time: view.start_time.map(Time),
        init_container_statuses: (!view.init_containers.is_empty())
            .then(|| view.init_containers.iter().map(container_status).collect()),
        container_statuses: Some(view.containers.iter().map(container_status).collect()),
        reason,
        message,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn running(name: &str) -> ContainerRecord {
        ContainerRecord {
            state: Phase::Running { started_at: at(1) },
            ready: true,
            started: true,
            image_id: "sha256:x".into(),
            ..ContainerRecord::waiting(name, "img", "ContainerCreating")
        }
    }

    fn exited(name: &str, code: i32) -> ContainerRecord {
        ContainerRecord {
            state: Phase::Terminated(Terminated {
                exit_code: code,
                reason: if code == 0 { "Completed" } else { "Error" }.into(),
                message: None,
                started_at: Some(at(1)),
                finished_at: at(2),
            }),
            ..ContainerRecord::waiting(name, "img", "")
        }
    }

    fn crash_looping(name: &str) -> ContainerRecord {
        let last = match exited(name, 1).state {
            Phase::Terminated(t) => t,
            _ => unreachable!(),
        };
        ContainerRecord {
            last_termination: Some(last),
            restart_count: 3,
            ..ContainerRecord::waiting(name, "img", "CrashLoopBackOff")
        }
    }

    fn view(init: Vec<ContainerRecord>, containers: Vec<ContainerRecord>) -> PodView {
        PodView {
            init_containers: init,
            containers,
            pod_ip: Some("127.1.0.1".into()),
            host_ip: "127.0.0.1".into(),
            start_time: Some(at(0)),
            failed: None,
        }
    }

    #[test]
    fn phase_follows_the_kubelet() {
        let cases = [
            (
                "Always",
                view(vec![], vec![ContainerRecord::waiting("a", "i", "ContainerCreating")]),
                "Pending",
            ),
            ("Always", view(vec![], vec![running("a"), exited("b", 0)]), "Running"),
            ("Always", view(vec![], vec![crash_looping("a")]), "Running"),
            ("Always", view(vec![], vec![exited("a", 0)]), "Running"),
            (
                "OnFailure",
                view(vec![], vec![exited("a", 0), exited("b", 0)]),
                "Succeeded",
            ),
            ("OnFailure", view(vec![], vec![exited("a", 1)]), "Running"),
            ("Never", view(vec![], vec![exited("a", 0), exited("b", 2)]), "Failed"),
            (
                "Never",
                view(
                    vec![exited("i", 1)],
                    vec![ContainerRecord::waiting("a", "i", "PodInitializing")],
                ),
                "Failed",
            ),
            (
                "Always",
                view(
                    vec![running("i")],
                    vec![ContainerRecord::waiting("a", "i", "PodInitializing")],
                ),
                "Pending",
            ),
            ("Always", view(vec![exited("i", 0)], vec![running("a")]), "Running"),
        ];
        for (policy, view, want) in cases {
            assert_eq!(phase(policy, &view), want, "{policy} {view:?}");
        }
    }

    #[test]
    fn conditions_and_container_statuses() {
        let spec = PodSpec::default();
        let mut v = view(vec![], vec![running("a")]);
        v.containers[0].ready = false;
        let status = pod_status(&spec, &v, None, at(5));
        let conditions = status.conditions.clone().unwrap();
        let get = |t: &str| conditions.iter().find(|c| c.type_ == t).unwrap().clone();
        assert_eq!(get("Ready").status, "False");
        assert_eq!(get("Ready").reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(get("Initialized").status, "True");
        assert_eq!(get("PodScheduled").status, "True");

        v.containers[0].ready = true;
        let later = pod_status(&spec, &v, Some(&status), at(9));
        let conditions = later.conditions.clone().unwrap();
        let get = |t: &str| conditions.iter().find(|c| c.type_ == t).unwrap().clone();
        assert_eq!(get("Ready").status, "True");
        assert_eq!(get("Ready").last_transition_time, Some(Time(at(9))));
        assert_eq!(
            get("Initialized").last_transition_time,
            Some(Time(at(5))),
            "unchanged conditions keep their transition time"
        );
        let statuses = later.container_statuses.unwrap();
        assert!(statuses[0].ready);
        assert!(statuses[0].state.as_ref().unwrap().running.is_some());

        let once = PodSpec {
            restart_policy: Some("Never".into()),
            ..PodSpec::default()
        };
        let done = pod_status(&once, &view(vec![], vec![exited("a", 0)]), None, at(5));
        assert_eq!(done.phase.as_deref(), Some("Succeeded"));
        let conditions = done.conditions.unwrap();
        let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));

        let looping = pod_status(&spec, &view(vec![], vec![crash_looping("a")]), None, at(5));
        let status = &looping.container_statuses.unwrap()[0];
        assert_eq!(status.restart_count, 3);
        assert_eq!(
            status
                .state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        assert_eq!(
            status
                .last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            1
        );
    }

    #[test]
    fn a_record_reads_back_from_the_status_it_wrote() {
        let started_at: Timestamp = "2026-12-07T05:00:00Z".parse().unwrap();
        let record = ContainerRecord {
            name: "web".into(),
            image: "local/busybox:1".into(),
            image_id: "local/busybox:1@sha256:00".into(),
            container_id: Some("runc://u-web-2".into()),
            state: Phase::Running { started_at },
            last_termination: Some(Terminated {
                exit_code: 3,
                reason: "Error".into(),
                message: None,
                started_at: Some(started_at),
                finished_at: started_at,
            }),
            restart_count: 2,
            ready: true,
            started: true,
        };
        assert_eq!(ContainerRecord::of_status(&container_status(&record)), record);
    }
}
