//! How many replicas one metric asks for: kube-controller-manager's
//! replica calculator, with no I/O.
//!
//! The pods of the target are sorted first: deleted and failed pods are
//! ignored; pending ones (and, for CPU, pods not Ready) are *unready*;
//! pods with no figure are *missing*. The ratio of the current value to
//! the target over the pods that have figures proposes `ceil(ratio ×
//! pods)`, unless it is within the tolerance (10%) of 1. When pods were
//! missing or unready, the ratio is taken again assuming the least
//! favourable figures for the proposed move (missing pods at 100% of the
//! target on the way down and at zero on the way up, unready pods at zero
//! on the way up); if that reverses the direction or falls within the
//! tolerance, the count stays as it is. This damps scaling on a partial
//! view, as Kubernetes does.

use std::collections::BTreeMap;

/// Within this fraction of the target, nothing changes.
pub const TOLERANCE: f64 = 0.1;

/// A pod of the target, as the calculator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    pub name: String,
    pub phase: Phase,
    pub ready: bool,
    pub deleting: bool,
    /// What the pod's containers request of the metric's resource, in
    /// thousandths (millicores, or thousandths of a byte); none if a
    /// container requests none.
    pub request: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// Why no proposal could be made (the `ScalingActive=False` reasons).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("missing request for {0} in pod {1}")]
    MissingRequest(String, String),
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoMetrics,
}

/// A metric's proposal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Proposal {
    pub replicas: i32,
    /// The current average per pod, in thousandths.
    pub average: i64,
    /// For utilization targets, the current utilization in percent.
    pub utilization: Option<i32>,
}

struct Grouped<'a> {
    ready: usize,
    unready: Vec<&'a Pod>,
    missing: Vec<&'a Pod>,
    /// Figures of the ready pods.
    values: BTreeMap<&'a str, i64>,
}

fn group<'a>(pods: &'a [Pod], values: &BTreeMap<String, i64>, cpu: bool) -> Grouped<'a> {
    let mut grouped = Grouped {
        ready: 0,
        unready: Vec::new(),
        missing: Vec::new(),
        values: BTreeMap::new(),
    };
    for pod in pods {
        if pod.deleting || pod.phase == Phase::Failed {
            continue;
        }
        if pod.phase == Phase::Pending {
            grouped.unready.push(pod);
            continue;
        }
        let Some(value) = values.get(&pod.name) else {
            grouped.missing.push(pod);
            continue;
        };
        if cpu && !pod.ready {
            grouped.unready.push(pod);
            continue;
        }
        grouped.ready += 1;
        grouped.values.insert(&pod.name, *value);
    }
    grouped
}

fn within_tolerance(ratio: f64) -> bool {
    (1.0 - ratio).abs() <= TOLERANCE
}

fn ceil_times(ratio: f64, pods: usize) -> i32 {
    (ratio * pods as f64).ceil() as i32
}

/// The proposal of a resource metric with an `Utilization` target (percent
/// of the pods' requests). `values` are the pods' usage in thousandths.
pub fn utilization(
    current: i32,
    target_percent: i32,
    resource: &str,
    pods: &[Pod],
    values: &BTreeMap<String, i64>,
) -> Result<Proposal, Unavailable> {
    let mut requests = BTreeMap::new();
    for pod in pods {
        let request = pod
            .request
            .filter(|r| *r > 0)
            .ok_or_else(|| Unavailable::MissingRequest(resource.to_string(), pod.name.clone()))?;
        requests.insert(pod.name.as_str(), request);
    }
    let mut grouped = group(pods, values, resource == "cpu");
    if grouped.values.is_empty() {
        return Err(Unavailable::NoMetrics);
    }
    let target = f64::from(target_percent.max(1));
    let ratio_of = |values: &BTreeMap<&str, i64>| {
        let (used, requested) = values.iter().fold((0i128, 0i128), |(u, r), (name, v)| {
            (
                u + i128::from(*v),
                r + i128::from(requests.get(name).copied().unwrap_or(0)),
            )
        });
        let percent = if requested == 0 {
            0.0
        } else {
            used as f64 * 100.0 / requested as f64
        };
        (percent / target, percent, (used / values.len().max(1) as i128) as i64)
    };
    let (ratio, percent, average) = ratio_of(&grouped.values);
    let proposal = |replicas| Proposal {
        replicas,
        average,
        utilization: Some(percent.round() as i32),
    };
    let up_with_unready = !grouped.unready.is_empty() && ratio > 1.0;
    if !up_with_unready && grouped.missing.is_empty() {
        if within_tolerance(ratio) {
            return Ok(proposal(current));
        }
        return Ok(proposal(ceil_times(ratio, grouped.ready)));
    }
    if ratio < 1.0 {
        let fallback = i64::from(target_percent.max(100));
        for pod in &grouped.missing {
            let request = requests.get(pod.name.as_str()).copied().unwrap_or(0);
            grouped.values.insert(&pod.name, request * fallback / 100);
        }
    } else if ratio > 1.0 {
        for pod in &grouped.missing {
            grouped.values.insert(&pod.name, 0);
        }
    }
    if up_with_unready {
        for pod in &grouped.unready {
            grouped.values.insert(&pod.name, 0);
        }
    }
    let (again, _, _) = ratio_of(&grouped.values);
    Ok(proposal(settle(current, ratio, again, grouped.values.len())))
}

/// The proposal of a metric with an `AverageValue` target (thousandths per
/// pod): a resource's raw usage, or a Pods metric such as requests per
/// second. Only pending pods count as unready here.
pub fn average_value(
    current: i32,
    target: i64,
    pods: &[Pod],
    values: &BTreeMap<String, i64>,
) -> Result<Proposal, Unavailable> {
    let mut grouped = group(pods, values, false);
    if grouped.values.is_empty() {
        return Err(Unavailable::NoMetrics);
    }
    let target = target.max(1) as f64;
    let ratio_of = |values: &BTreeMap<&str, i64>| {
        let total: i128 = values.values().map(|v| i128::from(*v)).sum();
        let average = total as f64 / values.len().max(1) as f64;
        (average / target, average as i64)
    };
    let (ratio, average) = ratio_of(&grouped.values);
    let proposal = |replicas| Proposal {
        replicas,
        average,
        utilization: None,
    };
    let up_with_unready = !grouped.unready.is_empty() && ratio > 1.0;
    if !up_with_unready && grouped.missing.is_empty() {
        if within_tolerance(ratio) {
            return Ok(proposal(current));
        }
        return Ok(proposal(ceil_times(ratio, grouped.ready)));
    }
    let fill = if ratio < 1.0 { target as i64 } else { 0 };
    for pod in &grouped.missing {
        grouped.values.insert(&pod.name, fill);
    }
    if up_with_unready {
        for pod in &grouped.unready {
            grouped.values.insert(&pod.name, 0);
        }
    }
    let (again, _) = ratio_of(&grouped.values);
    Ok(proposal(settle(current, ratio, again, grouped.values.len())))
}

/// The count after the second look: unchanged if the pessimistic ratio
/// reverses the move or is within the tolerance.
fn settle(current: i32, first: f64, again: f64, pods: usize) -> i32 {
    if within_tolerance(again) || (first < 1.0 && again > 1.0) || (first > 1.0 && again < 1.0) {
        return current;
    }
    let replicas = ceil_times(again, pods);
    if (again < 1.0 && replicas > current) || (again > 1.0 && replicas < current) {
        return current;
    }
    replicas
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool, request: i64) -> Pod {
        Pod {
            name: name.into(),
            phase: Phase::Running,
            ready,
            deleting: false,
            request: Some(request),
        }
    }

    fn values(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
        pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
    }

    #[test]
    fn cpu_utilization_proposes_ceil_of_ratio_times_pods() {
        let pods = [pod("a", true, 100), pod("b", true, 100)];
        // 90% against 50%: 1.8 × 2 = 3.6 → 4.
        let p = utilization(2, 50, "cpu", &pods, &values(&[("a", 80), ("b", 100)])).unwrap();
        assert_eq!((p.replicas, p.utilization, p.average), (4, Some(90), 90));
        // 52% against 50%: within 10%, unchanged.
        let p = utilization(2, 50, "cpu", &pods, &values(&[("a", 52), ("b", 52)])).unwrap();
        assert_eq!(p.replicas, 2);
        // 10% against 50%: 0.2 × 2 → 1.
        let p = utilization(2, 50, "cpu", &pods, &values(&[("a", 10), ("b", 10)])).unwrap();
        assert_eq!(p.replicas, 1);
    }

    #[test]
    fn missing_and_unready_pods_damp_the_move() {
        // Scale down with a pod missing: it counts as at 100% of the
        // target, which reverses the move.
        let pods = [pod("a", true, 100), pod("b", true, 100), pod("c", true, 100)];
        let p = utilization(3, 50, "cpu", &pods, &values(&[("a", 40), ("b", 40)])).unwrap();
        assert_eq!(p.replicas, 3);
        // Scale up with an unready pod: it counts as idle. 2×150% + 0 over
        // 3 pods = 100% against 50%: 2 × 3 = 6.
        let pods = [pod("a", true, 100), pod("b", true, 100), pod("c", false, 100)];
        let p = utilization(3, 50, "cpu", &pods, &values(&[("a", 150), ("b", 150), ("c", 0)])).unwrap();
        assert_eq!(p.replicas, 6);
        // Nothing to go on.
        let p = utilization(3, 50, "cpu", &pods, &values(&[]));
        assert_eq!(p, Err(Unavailable::NoMetrics));
        let no_request = [Pod {
            request: None,
            ..pod("a", true, 0)
        }];
        assert!(matches!(
            utilization(1, 50, "cpu", &no_request, &values(&[("a", 1)])),
            Err(Unavailable::MissingRequest(..))
        ));
    }

    #[test]
    fn average_values_such_as_requests_per_second() {
        let pods = [pod("a", true, 0), pod("b", true, 0)];
        // 30 and 50 requests/s against 10 each: 4 × 2 = 8.
        let p = average_value(2, 10_000, &pods, &values(&[("a", 30_000), ("b", 50_000)])).unwrap();
        assert_eq!((p.replicas, p.average), (8, 40_000));
        // Idle: down to one.
        let p = average_value(2, 10_000, &pods, &values(&[("a", 0), ("b", 0)])).unwrap();
        assert_eq!(p.replicas, 0);
    }
}
