//! The scheduling queue: which pending pod to schedule next, and when to
//! retry one that did not fit.
//!
//! A pod is in exactly one of four places:
//!
//! * **active**: ready to be scheduled, highest `spec.priority` first, then
//!   in the order pods became ready;
//! * **backoff**: waiting out a delay after a failed attempt, 1 s doubling
//!   per attempt up to 10 s (configurable), as in kube-scheduler;
//! * **unschedulable**: no node fit, and nothing has changed since. A
//!   [`ClusterEvent`] that one of the plugins that rejected it cares about
//!   moves it back (to backoff if its delay has not passed yet, else to
//!   active); so does a change to the pod itself, and so does time: after
//!   5 minutes it is retried anyway;
//! * **in flight**: popped and being scheduled or bound. If a cluster event
//!   happens meanwhile and the pod then fails, it goes to backoff rather
//!   than unschedulable, so the event is not missed.
//!
//! Time is a parameter of every call, so the queue is plain data that
//! tests drive with made-up instants.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use crate::framework::ClusterEvent;

/// The queue's delays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// The delay after the first failed attempt.
    pub initial_backoff: Duration,
    /// The longest delay.
    pub max_backoff: Duration,
    /// How long a pod stays unschedulable without any event before it is
    /// retried anyway.
    pub unschedulable_timeout: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            unschedulable_timeout: Duration::from_secs(5 * 60),
        }
    }
}

/// A pod's identity in the queue: namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl PodKey {
    pub fn of(pod: &Pod) -> PodKey {
        PodKey {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Where a pod is in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Active,
    /// Waiting until the instant.
    Backoff(Instant),
    /// Unschedulable since the instant.
    Unschedulable(Instant),
    InFlight,
}

/// A popped pod, to hand back with [`SchedulingQueue::done`] or
/// [`SchedulingQueue::requeue`].
#[derive(Clone, Debug)]
pub struct QueuedPod {
    pub key: PodKey,
    /// The latest version of the pod the queue has seen.
    pub pod: Arc<Pod>,
    /// Failed attempts before this one.
    pub attempts: u32,
    /// When the pod entered the queue.
    pub queued_at: Instant,
    cycle: u64,
}

/// Why a popped pod comes back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// No node fit; the plugins that rejected it decide which events
    /// retry it.
    Unschedulable { rejected_by: BTreeSet<String> },
    /// Something failed (a plugin error, the binding call): retry after the
    /// back-off.
    Error,
}

#[derive(Debug)]
struct Entry {
    pod: Arc<Pod>,
    place: Place,
    /// Failed attempts so far.
    attempts: u32,
    /// When the last attempt failed.
    failed_at: Option<Instant>,
    /// Order among pods of equal priority in the active set.
    sequence: u64,
    rejected_by: BTreeSet<String>,
    /// The cycle in which the pod was popped.
    cycle: u64,
    /// Whether the pod itself changed while it was in flight.
    changed_in_flight: bool,
    /// When the pod entered the queue.
    added: Instant,
}

impl Entry {
    fn priority(&self) -> i32 {
        priority(&self.pod)
    }
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// Whether an update to a pod may change how it schedules: its spec,
/// labels or annotations (not its status, which the scheduler itself
/// writes when the pod does not fit).
fn scheduling_relevant_change(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec
        || old.metadata.labels != new.metadata.labels
        || old.metadata.annotations != new.metadata.annotations
}

type ActiveKey = (Reverse<i32>, u64, PodKey);

/// Pending pods, by the four places described in the module documentation.
#[derive(Debug)]
pub struct SchedulingQueue {
    config: QueueConfig,
    entries: HashMap<PodKey, Entry>,
    active: BTreeSet<ActiveKey>,
    backoff: BTreeSet<(Instant, u64, PodKey)>,
    unschedulable: BTreeSet<(Instant, u64, PodKey)>,
    sequence: u64,
    /// Incremented by every pop.
    cycle: u64,
    /// The cycle during which the last cluster event arrived.
    moved_at_cycle: u64,
}

impl SchedulingQueue {
    pub fn new(config: QueueConfig) -> SchedulingQueue {
        SchedulingQueue {
            config,
            entries: HashMap::new(),
            active: BTreeSet::new(),
            backoff: BTreeSet::new(),
            unschedulable: BTreeSet::new(),
            sequence: 0,
            cycle: 0,
            moved_at_cycle: 0,
        }
    }

    fn next_sequence(&mut self) -> u64 {
        self.sequence += 1;
        self.sequence
    }

    /// How long a pod waits after `attempts` failed attempts.
    pub fn backoff_for(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        self.config
            .initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.config.max_backoff)
    }

    /// Takes `key` out of whichever ordered set holds it.
    fn unlink(&mut self, key: &PodKey) {
        let Some(entry) = self.entries.get(key) else {
            return;
        };
        match entry.place {
            Place::Active => {
                self.active
                    .remove(&(Reverse(entry.priority()), entry.sequence, key.clone()));
            }
            Place::Backoff(until) => {
                self.backoff.remove(&(until, entry.sequence, key.clone()));
            }
            Place::Unschedulable(since) => {
                self.unschedulable.remove(&(since, entry.sequence, key.clone()));
            }
            Place::InFlight => {}
        }
    }

    /// Puts an entry that is in no set into `place`.
    fn link(&mut self, key: &PodKey, place: Place) {
        let sequence = self.next_sequence();
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        entry.place = place;
        entry.sequence = sequence;
        match place {
            Place::Active => {
                self.active.insert((Reverse(entry.priority()), sequence, key.clone()));
            }
            Place::Backoff(until) => {
                self.backoff.insert((until, sequence, key.clone()));
            }
            Place::Unschedulable(since) => {
                self.unschedulable.insert((since, sequence, key.clone()));
            }
            Place::InFlight => {}
        }
    }

    /// Active, or backoff if the pod's delay has not passed at `now`.
    fn ready_place(&self, key: &PodKey, now: Instant) -> Place {
        let Some(entry) = self.entries.get(key) else {
            return Place::Active;
        };
        match entry.failed_at {
            Some(failed) if entry.attempts > 0 => {
                let until = failed + self.backoff_for(entry.attempts);
                if until > now {
                    Place::Backoff(until)
                } else {
                    Place::Active
                }
            }
            _ => Place::Active,
        }
    }

    fn relink(&mut self, key: &PodKey, place: Place) {
        self.unlink(key);
        self.link(key, place);
    }

    /// Adds a pending pod, or records a newer version of one already here.
    ///
    /// A new version of an unschedulable pod whose spec, labels or
    /// annotations changed is retried; one in flight fails over to
    /// backoff instead of unschedulable.
    pub fn add(&mut self, pod: Arc<Pod>, now: Instant) {
        let key = PodKey::of(&pod);
        let Some(entry) = self.entries.get_mut(&key) else {
            self.entries.insert(
                key.clone(),
                Entry {
                    pod,
                    place: Place::Active,
                    attempts: 0,
                    failed_at: None,
                    sequence: 0,
                    rejected_by: BTreeSet::new(),
                    cycle: 0,
                    changed_in_flight: false,
                    added: now,
                },
            );
            self.link(&key, Place::Active);
            return;
        };
        if entry.pod.metadata.uid != pod.metadata.uid {
            // A new pod under an old name: start over.
            self.delete(&key);
            self.add(pod, now);
            return;
        }
        let changed = scheduling_relevant_change(&entry.pod, &pod);
        let place = entry.place;
        let priority_changed = priority(&entry.pod) != priority(&pod);
        match place {
            Place::Active if priority_changed => {
                self.unlink(&key);
                if let Some(entry) = self.entries.get_mut(&key) {
                    entry.pod = pod;
                }
                self.link(&key, Place::Active);
            }
            Place::Unschedulable(_) if changed => {
                if let Some(entry) = self.entries.get_mut(&key) {
                    entry.pod = pod;
                }
                let place = self.ready_place(&key, now);
                self.relink(&key, place);
            }
            Place::InFlight => {
                entry.pod = pod;
                entry.changed_in_flight |= changed;
            }
            _ => entry.pod = pod,
        }
    }

    /// Forgets a pod (deleted, bound elsewhere, or no longer ours).
    pub fn delete(&mut self, key: &PodKey) {
        self.unlink(key);
        self.entries.remove(key);
    }

    /// Moves backoff pods whose delay has passed to active, and retries
    /// pods unschedulable for longer than the timeout.
    pub fn flush(&mut self, now: Instant) {
        while let Some((until, _, key)) = self.backoff.first().cloned() {
            if until > now {
                break;
            }
            self.relink(&key, Place::Active);
        }
        while let Some((since, _, key)) = self.unschedulable.first().cloned() {
            if since + self.config.unschedulable_timeout > now {
                break;
            }
            let place = self.ready_place(&key, now);
            self.relink(&key, place);
        }
    }

    /// The next pod to schedule, after [`flush`](Self::flush)ing at `now`.
    /// The pod stays in flight until [`done`](Self::done) or
    /// [`requeue`](Self::requeue).
    pub fn pop(&mut self, now: Instant) -> Option<QueuedPod> {
        self.flush(now);
        let (_, _, key) = self.active.pop_first()?;
        self.cycle += 1;
        let cycle = self.cycle;
        let entry = self.entries.get_mut(&key)?;
        entry.place = Place::InFlight;
        entry.cycle = cycle;
        entry.changed_in_flight = false;
        Some(QueuedPod {
            key,
            pod: entry.pod.clone(),
            attempts: entry.attempts,
            queued_at: entry.added,
            cycle,
        })
    }

    /// The pod was bound: it leaves the queue.
    pub fn done(&mut self, key: &PodKey) {
        if self.entries.get(key).is_some_and(|e| e.place == Place::InFlight) {
            self.entries.remove(key);
        }
    }

    /// A popped pod failed to schedule at `now`; it waits in backoff or
    /// unschedulable as the module documentation describes. Does nothing
    /// if the pod was deleted meanwhile.
    pub fn requeue(&mut self, queued: &QueuedPod, why: Requeue, now: Instant) {
        let moved_since_pop = self.moved_at_cycle >= queued.cycle;
        let Some(entry) = self.entries.get(&queued.key) else {
            return;
        };
        if entry.place != Place::InFlight {
            return;
        }
        let attempts = entry.attempts.saturating_add(1);
        let changed = entry.changed_in_flight;
        let backoff = Place::Backoff(now + self.backoff_for(attempts));
        let (place, rejected_by) = match why {
            Requeue::Unschedulable { rejected_by } if !moved_since_pop && !changed => {
                (Place::Unschedulable(now), rejected_by)
            }
            Requeue::Unschedulable { rejected_by } => (backoff, rejected_by),
            Requeue::Error => (backoff, BTreeSet::new()),
        };
        if let Some(entry) = self.entries.get_mut(&queued.key) {
            entry.attempts = attempts;
            entry.failed_at = Some(now);
            entry.rejected_by = rejected_by;
        }
        self.link(&queued.key, place);
    }

    /// A cluster event happened at `now`: unschedulable pods that a plugin
    /// in `interested` rejected (or that nothing in particular rejected)
    /// are retried. Returns how many moved.
    pub fn on_event(&mut self, _event: ClusterEvent, interested: &BTreeSet<String>, now: Instant) -> usize {
        self.moved_at_cycle = self.cycle;
        let moving: Vec<PodKey> = self
            .unschedulable
            .iter()
            .map(|(_, _, key)| key)
            .filter(|key| {
                self.entries.get(*key).is_some_and(|entry| {
                    entry.rejected_by.is_empty() || entry.rejected_by.iter().any(|p| interested.contains(p))
                })
            })
            .cloned()
            .collect();
        for key in &moving {
            let place = self.ready_place(key, now);
            self.relink(key, place);
        }
        moving.len()
    }

    /// Retries every unschedulable and backing-off pod at once, back-off
    /// or not: the plugins changed, so what rejected them may not any more
    /// (and a plugin change is rare). Returns how many moved.
    pub fn retry_unschedulable(&mut self) -> usize {
        self.moved_at_cycle = self.cycle;
        let moving: Vec<PodKey> = self
            .unschedulable
            .iter()
            .map(|(_, _, key)| key.clone())
            .chain(self.backoff.iter().map(|(_, _, key)| key.clone()))
            .collect();
        for key in &moving {
            self.relink(key, Place::Active);
        }
        moving.len()
    }

    /// When [`pop`](Self::pop) may next have something that is not ready
    /// now: the earliest end of a back-off or unschedulable timeout.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let backoff = self.backoff.first().map(|(until, _, _)| *until);
        let timeout = self
            .unschedulable
            .first()
            .map(|(since, _, _)| *since + self.config.unschedulable_timeout);
        match (backoff, timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Where `key` is, if queued.
    pub fn place(&self, key: &PodKey) -> Option<Place> {
        self.entries.get(key).map(|e| e.place)
    }

    /// The latest version of a queued pod.
    pub fn pod(&self, key: &PodKey) -> Option<&Arc<Pod>> {
        self.entries.get(key).map(|e| &e.pod)
    }

    pub fn contains(&self, key: &PodKey) -> bool {
        self.entries.contains_key(key)
    }

    /// Every pod in the queue, in any place.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Pods ready to pop.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    pub fn backoff_len(&self) -> usize {
        self.backoff.len()
    }

    pub fn unschedulable_len(&self) -> usize {
        self.unschedulable.len()
    }

    /// The keys of every queued pod.
    pub fn keys(&self) -> impl Iterator<Item = &PodKey> {
        self.entries.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, priority: Option<i32>) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
                "spec": {"priority": priority, "containers": [{"name": "c"}]},
            }))
            .unwrap(),
        )
    }

    fn key(name: &str) -> PodKey {
        PodKey {
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn rejected(plugins: &[&str]) -> Requeue {
        Requeue::Unschedulable {
            rejected_by: plugins.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn names(set: &[&str]) -> BTreeSet<String> {
        set.iter().map(|s| s.to_string()).collect()
    }

    fn pop_names(queue: &mut SchedulingQueue, now: Instant) -> Vec<String> {
        std::iter::from_fn(|| queue.pop(now)).map(|q| q.key.name).collect()
    }

    #[test]
    fn priority_then_arrival() {
        let t0 = Instant::now();
        let mut queue = SchedulingQueue::new(QueueConfig::default());
        queue.add(pod("low-1", None), t0);
        queue.add(pod("high", Some(100)), t0);
        queue.add(pod("low-2", Some(0)), t0);
        queue.add(pod("negative", Some(-5)), t0);
        assert_eq!(pop_names(&mut queue, t0), ["high", "low-1", "low-2", "negative"]);
        assert_eq!(queue.len(), 4, "popped pods stay in flight");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let queue = SchedulingQueue::new(QueueConfig::default());
        let delays: Vec<u64> = (1..=6).map(|n| queue.backoff_for(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn errors_back_off() {
        let t0 = Instant::now();
        let mut queue = SchedulingQueue::new(QueueConfig::default());
        queue.add(pod("p", None), t0);
        let popped = queue.pop(t0).unwrap();
        queue.requeue(&popped, Requeue::Error, t0);
        assert_eq!(
            queue.place(&key("p")),
            Some(Place::Backoff(t0 + Duration::from_secs(1)))
        );
        assert_eq!(queue.next_wakeup(), Some(t0 + Duration::from_secs(1)));
        assert!(queue.pop(t0 + Duration::from_millis(999)).is_none());
        let popped = queue.pop(t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(popped.attempts, 1);
        let t1 = t0 + Duration::from_secs(1);
        queue.requeue(&popped, Requeue::Error, t1);
        assert_eq!(
            queue.place(&key("p")),
            Some(Place::Backoff(t1 + Duration::from_secs(2)))
        );
        let popped = queue.pop(t1 + Duration::from_secs(2)).unwrap();
        queue.done(&popped.key);
        assert!(queue.is_empty());
    }

    #[test]
    fn unschedulable_pods_wait_for_a_relevant_event() {
        let t0 = Instant::now();
        let mut queue = SchedulingQueue::new(QueueConfig::default());
        queue.add(pod("p", None), t0);
        let popped = queue.pop(t0).unwrap();
        queue.requeue(&popped, rejected(&["NodeResourcesFit"]), t0);
        assert_eq!(queue.place(&key("p")), Some(Place::Unschedulable(t0)));
        assert!(queue.pop(t0 + Duration::from_secs(60)).is_none());

        // An event no rejecting plugin cares about leaves it.
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(
            queue.on_event(ClusterEvent::AssignedPodAdded, &names(&["PodTopologySpread"]), t1),
            0
        );
        // One that NodeResourcesFit cares about retries it, at once since
        // its one-second back-off has passed.
        assert_eq!(
            queue.on_event(ClusterEvent::NodeAdded, &names(&["NodeResourcesFit"]), t1),
            1
        );
        assert_eq!(queue.place(&key("p")), Some(Place::Active));
        assert_eq!(queue.pop(t1).map(|q| q.attempts), Some(1));
    }

    #[test]
    fn a_plugin_change_retries_waiting_pods_at_once() {
        let t0 = Instant::now();
        let mut queue = SchedulingQueue::new(QueueConfig::default());
        queue.add(pod("rejected", None), t0);
        queue.add(pod("failed", None), t0);
        let first = queue.pop(t0).unwrap();
        let second = queue.pop(t0).unwrap();
        queue.requeue(&first, rejected(&["wasm-filter"]), t0);
        queue.requeue(&second, Requeue::Error, t0);
        assert!(queue.pop(t0).is_none());
        assert_eq!(queue.retry_unschedulable(), 2);
        let mut names = pop_names(&mut queue, t0);
        names.sort();
        assert_eq!(names, ["failed", "rejected"]);
    }

    #[test]
    fn moved_pods_still_in_backoff_wait_for_it() {
        let t0 = Instant::now();
        let mut queue = SchedulingQueue::new(QueueConfig::default());
        queue.add(pod("p", None), t0);
        let popped = queue.pop(t0).unwrap();
        queue.requeue(&popped, rejected(&["NodeAffinity"]), t0);
        let soon = t0 + Duration::from_millis(200);
        queue.on_event(ClusterEvent::NodeChanged, &names(&["NodeAffinity"]), soon);
        assert_eq!(
            queue.place(&key("p")),
            Some(Place::Backoff(t0 + Duration::from_secs(1)))
        );
    }

    #[test]
    fn an_event_during_the_attempt_means_backoff_not_unschedulable() {
        let t0 = Instant::now();
        let mut queue = SchedulingQueue::new(QueueConfig::default());
        queue.add(pod("p", None), t0);
        let popped = queue.pop(t0).unwrap();
        queue.on_event(ClusterEvent::NodeAdded, &names(&[]), t0);
        queue.requeue(&popped, rejected(&["NodeResourcesFit"]), t0);
        assert_eq!(
            queue.place(&key("p")),
            Some(Place::Backoff(t0 + Duration::from_secs(1)))
        );

        // The same for a change to the pod itself.
        let popped = queue.pop(t0 + Duration::from_secs(1)).unwrap();
        let mut changed = (*popped.pod).clone();
        changed.metadata.labels = Some([("new".to_string(), "label".to_string())].into());
        queue.add(Arc::new(changed), t0);
        queue.requeue(&popped, rejected(&["NodeResourcesFit"]), t0 + Duration::from_secs(1));
        assert!(matches!(queue.place(&key("p")), Some(Place::Backoff(_))));
    }

    #[test]
    fn unschedulable_pods_are_retried_after_the_timeout_or_a_change() {
        let t0 = Instant::now();
        let mut queue = SchedulingQueue::new(QueueConfig::default());
        queue.add(pod("p", None), t0);
        let popped = queue.pop(t0).unwrap();
        queue.requeue(&popped, rejected(&["NodeAffinity"]), t0);
        assert_eq!(queue.next_wakeup(), Some(t0 + Duration::from_secs(300)));
        assert!(queue.pop(t0 + Duration::from_secs(299)).is_none());
        let popped = queue.pop(t0 + Duration::from_secs(300)).unwrap();

        let t1 = t0 + Duration::from_secs(300);
        queue.requeue(&popped, rejected(&["NodeAffinity"]), t1);
        // A status-only update (the scheduler's own condition) changes nothing.
        let mut status_only = (*popped.pod).clone();
        status_only.status = Some(Default::default());
        queue.add(Arc::new(status_only), t1);
        assert_eq!(queue.place(&key("p")), Some(Place::Unschedulable(t1)));
        // A spec change retries it (after its back-off of 2 s).
        let mut respec = (*popped.pod).clone();
        if let Some(spec) = respec.spec.as_mut() {
            spec.node_selector = Some([("zone".to_string(), "a".to_string())].into());
        }
        queue.add(Arc::new(respec), t1);
        assert_eq!(
            queue.place(&key("p")),
            Some(Place::Backoff(t1 + Duration::from_secs(2)))
        );
    }

    #[test]
    fn deleted_and_replaced_pods() {
        let t0 = Instant::now();
        let mut queue = SchedulingQueue::new(QueueConfig::default());
        queue.add(pod("p", None), t0);
        let popped = queue.pop(t0).unwrap();
        queue.delete(&popped.key);
        queue.requeue(&popped, Requeue::Error, t0);
        assert!(queue.is_empty(), "a requeue after deletion is ignored");

        queue.add(pod("q", None), t0);
        let mut replacement = (*pod("q", Some(10))).clone();
        replacement.metadata.uid = Some("another".into());
        queue.add(Arc::new(replacement), t0);
        let popped = queue.pop(t0).unwrap();
        assert_eq!(popped.pod.metadata.uid.as_deref(), Some("another"));
        assert!(queue.pop(t0).is_none());
    }

    #[test]
    fn a_priority_change_reorders_the_active_set() {
        let t0 = Instant::now();
        let mut queue = SchedulingQueue::new(QueueConfig::default());
        queue.add(pod("a", None), t0);
        queue.add(pod("b", None), t0);
        queue.add(pod("b", Some(5)), t0);
        assert_eq!(queue.active_len(), 2);
        assert_eq!(pop_names(&mut queue, t0), ["b", "a"]);
    }
}
