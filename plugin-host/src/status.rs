//! A plugin's `status`, computed from what the manager knows of it. Pure,
//! so the conditions' rules are unit-tested.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::metrics::MetricsSnapshot;
use crate::spec::WasmPluginStatus;

/// What the manager knows of one plugin.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Facts {
    /// The newest generation tried (loaded or refused).
    pub observed_generation: Option<i64>,
    /// The generation serving now, and its component's digest.
    pub serving: Option<(i64, String)>,
    /// Why the newest generation was refused, if it was.
    pub load_error: Option<String>,
    /// Calls to the serving version.
    pub metrics: MetricsSnapshot,
}

fn condition(
    kind: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    previous: &[Condition],
) -> Condition {
    let status = if ok { "True" } else { "False" };
    // The transition time moves only when the status does.
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == kind && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(jiff::Timestamp::now()));
    Condition {
        type_: kind.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// The status for `facts`; `previous` conditions keep their transition
/// times when they have not changed.
pub(crate) fn status(facts: &Facts, previous: &[Condition]) -> WasmPluginStatus {
    let generation = facts.observed_generation;
    let ready = match (&facts.serving, &facts.load_error) {
        (Some((serving, digest)), _) => condition(
            "Ready",
            true,
            "Loaded",
            format!("generation {serving} ({digest}) is serving"),
            generation,
            previous,
        ),
        (None, Some(error)) => condition("Ready", false, "LoadFailed", error.clone(), generation, previous),
        (None, None) => condition(
            "Ready",
            false,
            "Loading",
            "the plugin is being loaded".into(),
            generation,
            previous,
        ),
    };
    let degraded = match (&facts.load_error, &facts.serving) {
        (Some(error), Some((serving, _))) => condition(
            "Degraded",
            true,
            "UpdateRejected",
            format!(
                "generation {} was not loaded, generation {serving} keeps serving: {error}",
                generation.unwrap_or_default()
            ),
            generation,
            previous,
        ),
        (Some(error), None) => condition("Degraded", true, "LoadFailed", error.clone(), generation, previous),
        (None, _) if facts.metrics.last_failed => condition(
            "Degraded",
            true,
            "CallFailed",
            facts.metrics.last_error.clone().unwrap_or_default(),
            generation,
            previous,
        ),
        (None, _) => condition("Degraded", false, "AsExpected", String::new(), generation, previous),
    };
    WasmPluginStatus {
        observed_generation: generation,
        conditions: vec![ready, degraded],
        loaded_generation: facts.serving.as_ref().map(|(g, _)| *g),
        digest: facts.serving.as_ref().map(|(_, d)| d.clone()),
        load_error: facts.load_error.clone(),
        calls: facts.metrics.calls,
        errors: facts.metrics.errors,
        last_error: facts.metrics.last_error.clone(),
        latency_p50_microseconds: facts.metrics.p50_micros,
        latency_p99_microseconds: facts.metrics.p99_micros,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(status: &'a WasmPluginStatus, kind: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == kind).unwrap()
    }

    #[test]
    fn a_loaded_plugin_is_ready_and_not_degraded() {
        let facts = Facts {
            observed_generation: Some(1),
            serving: Some((1, "sha256:ab".into())),
            ..Default::default()
        };
        let status = status(&facts, &[]);
        assert_eq!(get(&status, "Ready").status, "True");
        assert_eq!(get(&status, "Degraded").status, "False");
        assert_eq!(status.loaded_generation, Some(1));
        assert_eq!(status.digest.as_deref(), Some("sha256:ab"));
    }

    #[test]
    fn a_rejected_update_keeps_the_old_version_ready_but_degraded() {
        let facts = Facts {
            observed_generation: Some(2),
            serving: Some((1, "sha256:ab".into())),
            load_error: Some("not a component".into()),
            ..Default::default()
        };
        let status = status(&facts, &[]);
        assert_eq!(get(&status, "Ready").status, "True");
        let degraded = get(&status, "Degraded");
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "UpdateRejected")
        );
        assert!(degraded.message.contains("generation 1 keeps serving"));
        assert_eq!(status.load_error.as_deref(), Some("not a component"));
    }

    #[test]
    fn a_failed_first_load_is_not_ready() {
        let facts = Facts {
            observed_generation: Some(1),
            load_error: Some("cannot fetch".into()),
            ..Default::default()
        };
        let status = status(&facts, &[]);
        let ready = get(&status, "Ready");
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "LoadFailed"));
    }

    #[test]
    fn a_failing_call_degrades_until_one_succeeds_and_times_stay() {
        let mut facts = Facts {
            observed_generation: Some(1),
            serving: Some((1, "sha256:ab".into())),
            ..Default::default()
        };
        facts.metrics.last_failed = true;
        facts.metrics.last_error = Some("the call ran out of fuel".into());
        let first = status(&facts, &[]);
        assert_eq!(get(&first, "Degraded").reason, "CallFailed");
        let again = status(&facts, &first.conditions);
        assert_eq!(
            get(&again, "Degraded").last_transition_time,
            get(&first, "Degraded").last_transition_time
        );
        facts.metrics.last_failed = false;
        assert_eq!(get(&status(&facts, &again.conditions), "Degraded").status, "False");
    }
}
