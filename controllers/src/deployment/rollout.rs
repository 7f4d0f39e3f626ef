//! Rollout arithmetic: what a Deployment's ReplicaSets should be scaled to
//! next. Pure and synchronous; [`super`] does the reading and writing.
//!
//! A rollout advances one step per reconcile, each step computed from the
//! sets as they are now, the way Kubernetes' deployment controller does:
//!
//! * **RollingUpdate.** First scale the new set up, as far as `maxSurge`
//!   allows above `replicas`; only when it cannot grow, scale the old sets
//!   down, as far as `maxUnavailable` allows below `replicas` — old sets
//!   with unavailable pods first (removing those costs no availability),
//!   then the oldest sets first.
//! * **Recreate.** Scale every old set to zero, wait until their pods are
//!   gone, then scale the new set to `replicas`.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// What the rollout needs to know about one ReplicaSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

/// One change to make: scale `name` to `replicas`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scale {
    pub name: String,
    pub replicas: i32,
}

/// `maxSurge`/`maxUnavailable` as pod counts for `replicas`: a percentage
/// of surge rounds up, of unavailability down; both zero would deadlock,
/// so unavailability becomes one. Malformed values count as zero.
pub fn fenceposts(max_surge: Option<&IntOrString>, max_unavailable: Option<&IntOrString>, replicas: i32) -> (i32, i32) {
    let quarter = IntOrString::String("25%".into());
    let surge = scaled(max_surge.unwrap_or(&quarter), replicas, true);
    let unavailable = scaled(max_unavailable.unwrap_or(&quarter), replicas, false);
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

fn scaled(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(n) => (*n).max(0),
        IntOrString::String(s) => {
            let Some(percent) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return s.parse::<i32>().unwrap_or(0).max(0);
            };
            let product = percent.max(0) * i64::from(total.max(0));
            let pods = if round_up { (product + 99) / 100 } else { product / 100 };
            i32::try_from(pods).unwrap_or(i32::MAX)
        }
    }
}

/// What the new set should be scaled to: up towards `replicas` as far as
/// `replicas + surge` pods in all sets allow, or down to `replicas`.
pub fn new_set_replicas(replicas: i32, surge: i32, all: &[&Set], new: &Set) -> i32 {
    if new.replicas > replicas {
        return replicas;
    }
    let total: i32 = all.iter().map(|s| s.replicas).sum();
    let allowed = replicas.saturating_add(surge);
    if total >= allowed {
        return new.replicas;
    }
    new.replicas + (allowed - total).min(replicas - new.replicas)
}

/// One RollingUpdate step for the new set `new` and the `old` sets.
pub fn rolling_step(replicas: i32, surge: i32, unavailable: i32, new: &Set, old: &[Set]) -> Vec<Scale> {
    let all: Vec<&Set> = old.iter().chain(std::iter::once(new)).collect();
    let target = new_set_replicas(replicas, surge, &all, new);
    if target != new.replicas {
        return vec![Scale {
            name: new.name.clone(),
            replicas: target,
        }];
    }
    scale_down_old(replicas, unavailable, new, old)
}

/// Scales old sets down as far as availability allows (they are given
/// oldest first).
fn scale_down_old(replicas: i32, unavailable: i32, new: &Set, old: &[Set]) -> Vec<Scale> {
    let old_pods: i32 = old.iter().map(|s| s.replicas).sum();
    if old_pods == 0 {
        return Vec::new();
    }
    let all_pods = old_pods + new.replicas;
    let min_available = replicas - unavailable;
    let new_unavailable = (new.replicas - new.available).max(0);
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let mut sets: Vec<Set> = old.to_vec();
    let mut changes = Vec::new();

    // Unavailable old pods go first: removing them costs no availability.
    let mut cleaned = 0;
    for set in &mut sets {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = (set.replicas - set.available).max(0);
        if set.replicas == 0 || unhealthy == 0 {
            continue;
        }
        let down = unhealthy.min(max_scaled_down - cleaned);
        set.replicas -= down;
        cleaned += down;
        changes.push(set.name.clone());
    }

    // Then available ones, oldest set first, down to minAvailable.
    let available: i32 = sets.iter().map(|s| s.available.min(s.replicas)).sum::<i32>() + new.available;
    let mut budget = (available - min_available).min(max_scaled_down - cleaned).max(0);
    for set in &mut sets {
        if budget == 0 {
            break;
        }
        if set.replicas == 0 {
            continue;
        }
        let down = set.replicas.min(budget);
        set.replicas -= down;
        budget -= down;
        changes.push(set.name.clone());
    }
    sets.into_iter()
        .filter(|s| changes.contains(&s.name))
        .map(|s| Scale {
            name: s.name,
            replicas: s.replicas,
        })
        .collect()
}

/// One Recreate step: old sets to zero first; the new set to `replicas`
/// once `old_pods_remain` is false. `None` for the new set means it does
/// not exist yet and should be created (with the returned count).
pub fn recreate_step(replicas: i32, new: Option<&Set>, old: &[Set], old_pods_remain: bool) -> Vec<Scale> {
    let active: Vec<Scale> = old
        .iter()
        .filter(|s| s.replicas > 0)
        .map(|s| Scale {
            name: s.name.clone(),
            replicas: 0,
        })
        .collect();
    if !active.is_empty() || old_pods_remain {
        return active;
    }
    match new {
        Some(set) if set.replicas == replicas => Vec::new(),
        Some(set) => vec![Scale {
            name: set.name.clone(),
            replicas,
        }],
        None => vec![Scale {
            name: String::new(),
            replicas,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, replicas: i32, available: i32) -> Set {
        Set {
            name: name.into(),
            replicas,
            available,
        }
    }

    fn scale(name: &str, replicas: i32) -> Scale {
        Scale {
            name: name.into(),
            replicas,
        }
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailability_down() {
        let pct = |s: &str| IntOrString::String(s.into());
        let cases = [
            (None, None, 10, (3, 2)),
            (None, None, 1, (1, 0)),
            (Some(pct("50%")), Some(pct("0%")), 3, (2, 0)),
            (Some(IntOrString::Int(0)), Some(IntOrString::Int(0)), 5, (0, 1)),
            (Some(IntOrString::Int(2)), Some(IntOrString::Int(1)), 5, (2, 1)),
            (Some(pct("0%")), Some(pct("10%")), 5, (0, 1)),
            (Some(pct("bad%")), Some(IntOrString::Int(3)), 5, (0, 3)),
        ];
        for (surge, unavailable, replicas, want) in cases {
            assert_eq!(
                fenceposts(surge.as_ref(), unavailable.as_ref(), replicas),
                want,
                "{surge:?} {unavailable:?} of {replicas}"
            );
        }
    }

    #[test]
    fn a_rolling_update_surges_then_scales_old_sets_down_within_availability() {
        // 4 replicas, surge 1, unavailable 1, one old set fully available.
        let old = vec![set("old", 4, 4)];
        // Step 1: the new set grows by the surge.
        let new = set("new", 0, 0);
        assert_eq!(rolling_step(4, 1, 1, &new, &old), vec![scale("new", 1)]);
        // Step 2: 5 pods, new one not yet available: old may lose one.
        let new = set("new", 1, 0);
        assert_eq!(rolling_step(4, 1, 1, &new, &old), vec![scale("old", 3)]);
        // Step 3: with 4 pods again the new set grows.
        let old = vec![set("old", 3, 3)];
        assert_eq!(rolling_step(4, 1, 1, &new, &old), vec![scale("new", 2)]);
        // Nothing more while the new pods are unavailable: 3 available is
        // the minimum.
        let new = set("new", 2, 0);
        assert_eq!(rolling_step(4, 1, 1, &new, &old), Vec::<Scale>::new());
        // Once they are available, the old set shrinks by two.
        let new = set("new", 2, 2);
        assert_eq!(rolling_step(4, 1, 1, &new, &old), vec![scale("old", 1)]);
        // Done: new at 4, old at 0.
        let new = set("new", 4, 4);
        let old = vec![set("old", 0, 0)];
        assert_eq!(rolling_step(4, 1, 1, &new, &old), Vec::<Scale>::new());
    }

    #[test]
    fn unavailable_old_pods_are_removed_first_and_oldest_sets_next() {
        // Two old sets: "a" (oldest) healthy, "b" with two broken pods.
        let old = vec![set("a", 2, 2), set("b", 2, 0)];
        let new = set("new", 2, 2);
        // replicas 4, unavailable 1: 6 pods, min 3 available. b's two
        // unhealthy pods go first, then one healthy one of a.
        assert_eq!(rolling_step(4, 0, 1, &new, &old), vec![scale("a", 1), scale("b", 0)]);
    }

    #[test]
    fn the_new_set_is_scaled_down_when_replicas_shrink() {
        let new = set("new", 10, 10);
        assert_eq!(rolling_step(3, 1, 0, &new, &[]), vec![scale("new", 3)]);
        // Scaling up with no rollout: straight to replicas, surge allowing.
        let new = set("new", 3, 3);
        assert_eq!(rolling_step(10, 3, 2, &new, &[]), vec![scale("new", 10)]);
    }

    #[test]
    fn recreate_stops_everything_old_before_starting_anything_new() {
        let old = vec![set("old", 3, 3)];
        assert_eq!(recreate_step(3, None, &old, true), vec![scale("old", 0)]);
        let old = vec![set("old", 0, 0)];
        assert_eq!(recreate_step(3, None, &old, true), Vec::<Scale>::new());
        assert_eq!(recreate_step(3, None, &old, false), vec![scale("", 3)]);
        let new = set("new", 0, 0);
        assert_eq!(recreate_step(3, Some(&new), &old, false), vec![scale("new", 3)]);
        let new = set("new", 3, 0);
        assert_eq!(recreate_step(3, Some(&new), &old, false), Vec::<Scale>::new());
    }
}
