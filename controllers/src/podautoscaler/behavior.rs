//! How fast an autoscaler may move: the `behavior` field of an
//! `autoscaling/v2` HorizontalPodAutoscaler, as kube-controller-manager
//! applies it, in two steps with no I/O (time is a parameter):
//!
//! 1. [`stabilize`]: the recommendation is held against those of the
//!    stabilization windows: it rises only to the lowest recommendation of
//!    the scale-up window and falls only to the highest of the scale-down
//!    window, so that a metric which flaps does not make replicas flap.
//! 2. [`limit`]: the change is capped by the policies (`Pods` or
//!    `Percent` per `periodSeconds`, counted from the scale events of that
//!    period), the `selectPolicy` choosing the one that allows most
//!    (`Max`), least (`Min`), or none (`Disabled`), and by min/max
//!    replicas.
//!
//! A HorizontalPodAutoscaler without `behavior` gets Kubernetes' defaults
//! ([`Rules::default_up`], [`Rules::default_down`]): up at once by 4 pods
//! or 100% every 15 s, whichever is more; down to the highest
//! recommendation of the last 300 s, by up to 100% every 15 s.
//! (kube-controller-manager keeps an older, nearly equal rule for HPAs
//! without `behavior`; skiff applies the defaults to all.)

use std::time::Duration;

use jiff::Timestamp;

/// One rate limit: at most `value` pods, or `value` percent, per period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Pods { value: i32, period: Duration },
    Percent { value: i32, period: Duration },
}

impl Policy {
    fn period(&self) -> Duration {
        match self {
            Policy::Pods { period, .. } | Policy::Percent { period, .. } => *period,
        }
    }
}

/// Which policy wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    /// The one that allows the largest change.
    Max,
    /// The one that allows the smallest change.
    Min,
    /// No change in this direction.
    Disabled,
}

/// `scaleUp` or `scaleDown`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub stabilization: Duration,
    pub select: Select,
    pub policies: Vec<Policy>,
}

impl Rules {
    /// Kubernetes' `scaleUp` default.
    pub fn default_up() -> Rules {
        Rules {
            stabilization: Duration::ZERO,
            select: Select::Max,
            policies: vec![
                Policy::Pods {
                    value: 4,
                    period: Duration::from_secs(15),
                },
                Policy::Percent {
                    value: 100,
                    period: Duration::from_secs(15),
                },
            ],
        }
    }

    /// Kubernetes' `scaleDown` default.
    pub fn default_down() -> Rules {
        Rules {
            stabilization: Duration::from_secs(300),
            select: Select::Max,
            policies: vec![Policy::Percent {
                value: 100,
                period: Duration::from_secs(15),
            }],
        }
    }

    fn longest_period(&self) -> Duration {
        self.policies.iter().map(Policy::period).max().unwrap_or_default()
    }
}

/// A recommendation made at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recommendation {
    pub at: Timestamp,
    pub replicas: i32,
}

/// A change of replicas the autoscaler made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleEvent {
    pub at: Timestamp,
    /// Positive up, negative down.
    pub change: i32,
}

/// What one autoscaler remembers between cycles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    pub recommendations: Vec<Recommendation>,
    pub events: Vec<ScaleEvent>,
}

impl History {
    /// Notes a change of replicas made at `at`, and forgets what no
    /// window or period can reach any more.
    pub fn scaled(&mut self, at: Timestamp, from: i32, to: i32, up: &Rules, down: &Rules) {
        if from != to {
            self.events.push(ScaleEvent { at, change: to - from });
        }
        let keep = up.longest_period().max(down.longest_period());
        self.events.retain(|e| elapsed(e.at, at) <= keep);
    }
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    now.duration_since(since).unsigned_abs()
}

/// Step 1: `desired` held against the windows' recommendations; the new
/// recommendation is remembered. The second value says which way it was
/// held, if it was.
pub fn stabilize(
    history: &mut History,
    now: Timestamp,
    current: i32,
    desired: i32,
    up: &Rules,
    down: &Rules,
) -> (i32, Option<Held>) {
    let (mut up_bound, mut down_bound) = (desired, desired);
    for r in &history.recommendations {
        let age = elapsed(r.at, now);
        if age <= up.stabilization {
            up_bound = up_bound.min(r.replicas);
        }
        if age <= down.stabilization {
            down_bound = down_bound.max(r.replicas);
        }
    }
    let keep = up.stabilization.max(down.stabilization);
    history.recommendations.retain(|r| elapsed(r.at, now) <= keep);
    history.recommendations.push(Recommendation {
        at: now,
        replicas: desired,
    });
    let stabilized = current.max(up_bound).min(down_bound);
    let held = match stabilized.cmp(&desired) {
        std::cmp::Ordering::Less => Some(Held::Up),
        std::cmp::Ordering::Greater => Some(Held::Down),
        std::cmp::Ordering::Equal => None,
    };
    (stabilized, held)
}

/// Which way a window held a recommendation back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    Up,
    Down,
}

/// Why [`limit`] changed the count, the `ScalingLimited` reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    TooManyReplicas,
    TooFewReplicas,
    ScaleUpLimit,
    ScaleDownLimit,
}

impl Limited {
    pub fn reason(self) -> &'static str {
        match self {
            Limited::TooManyReplicas => "TooManyReplicas",
            Limited::TooFewReplicas => "TooFewReplicas",
            Limited::ScaleUpLimit => "ScaleUpLimit",
            Limited::ScaleDownLimit => "ScaleDownLimit",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Limited::TooManyReplicas => "the desired replica count is more than the maximum replica count",
            Limited::TooFewReplicas => "the desired replica count is less than the minimum replica count",
            Limited::ScaleUpLimit => "the desired replica count is increasing faster than the maximum scale rate",
            Limited::ScaleDownLimit => "the desired replica count is decreasing faster than the maximum scale rate",
        }
    }
}

/// Replicas added and removed within `period` before `now`.
fn changes_within(events: &[ScaleEvent], now: Timestamp, period: Duration) -> (i32, i32) {
    events
        .iter()
        .filter(|e| elapsed(e.at, now) <= period)
        .fold((0, 0), |(added, removed), e| {
            if e.change > 0 {
                (added + e.change, removed)
            } else {
                (added, removed - e.change)
            }
        })
}

/// The most replicas the scale-up rules allow now.
fn up_limit(current: i32, events: &[ScaleEvent], now: Timestamp, rules: &Rules) -> i32 {
    let proposals = rules.policies.iter().map(|policy| {
        let (added, removed) = changes_within(events, now, policy.period());
        let start = current - added + removed;
        match *policy {
            Policy::Pods { value, .. } => start.saturating_add(value),
            Policy::Percent { value, .. } => (f64::from(start) * (1.0 + f64::from(value) / 100.0)).ceil() as i32,
        }
    });
    match rules.select {
        Select::Disabled => current,
        Select::Max => proposals.max().unwrap_or(current),
        Select::Min => proposals.min().unwrap_or(current),
    }
}

/// The fewest replicas the scale-down rules allow now.
fn down_limit(current: i32, events: &[ScaleEvent], now: Timestamp, rules: &Rules) -> i32 {
    let proposals = rules.policies.iter().map(|policy| {
        let (added, removed) = changes_within(events, now, policy.period());
        let start = current + removed - added;
        match *policy {
            Policy::Pods { value, .. } => start.saturating_sub(value),
            Policy::Percent { value, .. } => (f64::from(start) * (1.0 - f64::from(value) / 100.0)) as i32,
        }
    });
    match rules.select {
        Select::Disabled => current,
        // The policy allowing the largest change down: the lowest count.
        Select::Max => proposals.min().unwrap_or(current),
        Select::Min => proposals.max().unwrap_or(current),
    }
}

/// Bounds on the count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub min: i32,
    pub max: i32,
}

/// Step 2: `desired` capped by the rate policies and the bounds.
pub fn limit(
    history: &History,
    now: Timestamp,
    current: i32,
    desired: i32,
    bounds: Bounds,
    up: &Rules,
    down: &Rules,
) -> (i32, Option<Limited>) {
    if desired > current {
        let rate = up_limit(current, &history.events, now, up).max(current);
        let (allowed, why) = if bounds.max > rate {
            (rate, Limited::ScaleUpLimit)
        } else {
            (bounds.max, Limited::TooManyReplicas)
        };
        if desired > allowed {
            return (allowed, Some(why));
        }
    } else if desired < current {
        let rate = down_limit(current, &history.events, now, down).min(current);
        let (allowed, why) = if bounds.min < rate {
            (rate, Limited::ScaleDownLimit)
        } else {
            (bounds.min, Limited::TooFewReplicas)
        };
        if desired < allowed {
            return (allowed, Some(why));
        }
    }
    (desired, None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    const WIDE: Bounds = Bounds { min: 1, max: 100 };

    #[test]
    fn scale_down_waits_for_the_highest_recommendation_of_its_window() {
        let (up, down) = (Rules::default_up(), Rules::default_down());
        let mut history = History::default();
        assert_eq!(stabilize(&mut history, at(0), 5, 8, &up, &down), (8, None));
        // Load falls: the window still remembers 8.
        assert_eq!(stabilize(&mut history, at(60), 8, 2, &up, &down), (8, Some(Held::Down)));
        assert_eq!(
            stabilize(&mut history, at(200), 8, 3, &up, &down),
            (8, Some(Held::Down))
        );
        // 8 leaves the window after 300 s; 3 (at 200 s) is still in it.
        assert_eq!(
            stabilize(&mut history, at(301), 8, 2, &up, &down),
            (3, Some(Held::Down))
        );
        assert_eq!(stabilize(&mut history, at(502), 3, 2, &up, &down), (2, None));
    }

    #[test]
    fn a_scale_up_window_needs_every_recent_recommendation_higher() {
        let up = Rules {
            stabilization: Duration::from_secs(60),
            ..Rules::default_up()
        };
        let down = Rules {
            stabilization: Duration::ZERO,
            ..Rules::default_down()
        };
        let mut history = History::default();
        assert_eq!(stabilize(&mut history, at(0), 2, 2, &up, &down), (2, None));
        assert_eq!(stabilize(&mut history, at(10), 2, 6, &up, &down), (2, Some(Held::Up)));
        assert_eq!(stabilize(&mut history, at(61), 2, 6, &up, &down), (6, None));
    }

    #[test]
    fn policies_cap_the_rate_and_select_picks_among_them() {
        let (up, down) = (Rules::default_up(), Rules::default_down());
        let mut history = History::default();
        // From 1: 4 pods beats 100% (2), so 5.
        assert_eq!(
            limit(&history, at(0), 1, 20, WIDE, &up, &down),
            (5, Some(Limited::ScaleUpLimit))
        );
        history.scaled(at(0), 1, 5, &up, &down);
        // Within the same 15 s the period started at 1: still 5.
        assert_eq!(
            limit(&history, at(10), 5, 20, WIDE, &up, &down),
            (5, Some(Limited::ScaleUpLimit))
        );
        // A new period: 100% of 5 beats 4 pods.
        assert_eq!(
            limit(&history, at(16), 5, 20, WIDE, &up, &down),
            (10, Some(Limited::ScaleUpLimit))
        );
        // The bound is the reason when it is the lower cap.
        assert_eq!(
            limit(&history, at(16), 5, 20, Bounds { min: 1, max: 7 }, &up, &down),
            (7, Some(Limited::TooManyReplicas))
        );
        // Min of the two; Disabled holds.
        let cautious = Rules {
            select: Select::Min,
            ..Rules::default_up()
        };
        assert_eq!(
            limit(&History::default(), at(0), 10, 50, WIDE, &cautious, &down),
            (14, Some(Limited::ScaleUpLimit))
        );
        let off = Rules {
            select: Select::Disabled,
            ..Rules::default_down()
        };
        assert_eq!(
            limit(&History::default(), at(0), 10, 2, WIDE, &up, &off),
            (10, Some(Limited::ScaleDownLimit))
        );
        // Down by at most 2 pods a minute.
        let gentle = Rules {
            policies: vec![Policy::Pods {
                value: 2,
                period: Duration::from_secs(60),
            }],
            ..Rules::default_down()
        };
        assert_eq!(
            limit(&History::default(), at(0), 10, 1, WIDE, &up, &gentle),
            (8, Some(Limited::ScaleDownLimit))
        );
        assert_eq!(
            limit(&History::default(), at(0), 3, 0, WIDE, &up, &down),
            (1, Some(Limited::TooFewReplicas))
        );
        assert_eq!(limit(&History::default(), at(0), 3, 2, WIDE, &up, &down), (2, None));
    }
}
