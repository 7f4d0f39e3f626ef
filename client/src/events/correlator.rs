//! Which Events to write, and how: the pure core of the event
//! [`Recorder`](super::Recorder), with time as a parameter and no I/O.
//!
//! It follows the `EventCorrelator` of client-go's `tools/record`, which
//! every Kubernetes component's core/v1 recorder runs each Event through,
//! in the same order:
//!
//! 1. **Aggregation.** Events alike but for their message (same source,
//!    involved object, type, reason, reporting controller and instance)
//!    are grouped, and the distinct messages in a group counted while
//!    each comes within ten minutes of the last. The event that would
//!    make ten distinct messages, and every new message after it, is
//!    written instead as one Event about the object whose message is
//!    `(combined from similar events): ` and the latest message.
//! 2. **Deduplication.** An Event identical to one written before (same
//!    source, involved object including `fieldPath`, type, reason and
//!    message) is written as an update of that Event: `count` one more,
//!    `lastTimestamp` (and `message`) the new event's, name and
//!    `firstTimestamp` kept. There is no time limit but the cache's: once
//!    the server has dropped the old Event (its TTL), the update finds
//!    nothing and the recorder creates it again.
//! 3. **Spam filter.** Per source and involved object (and type), a token
//!    bucket holding 25 that refills one token every five minutes; an
//!    Event that finds it empty is not written. It runs after counting,
//!    so a dropped repeat still shows in the count of the next one
//!    written.
//!
//! Each of the three caches keeps at most 4096 keys and forgets the least
//! recently used first. Events are named `<object name>.<unix nanoseconds
//! in hex>`, chosen by the client, as client-go names them.
//!
//! Only `count`, `firstTimestamp` and `lastTimestamp` are kept, as by
//! client-go's core/v1 recorder: `series` is what the `events.k8s.io/v1`
//! recorder (`tools/events`) maintains instead, and is left unset.
//!
//! Deviations from client-go:
//! * When a group reaches ten distinct messages client-go forgets an
//!   arbitrary one of them; here it is always the newest, so which
//!   messages go to the combined Event is deterministic: the first nine
//!   keep Events of their own, later ones are combined.
//! * What the server stored is filed under the key the event was
//!   correlated under ([`Correlator::stored`]); client-go recomputes the
//!   key from the stored Event, which for a combined Event is another key.
//! * Where `<object name>.<hex>` is not a valid name (an object named
//!   `system:…`, or a very long name) client-go picks a random UUID; here
//!   the server generates one from `event-`, and the name it chose is
//!   learnt from its answer.

use std::collections::HashSet;
use std::num::NonZeroUsize;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use k8s_openapi::serde_json::{Value, json};
use lru::LruCache as Lru;

/// The prefix of a combined Event's message.
pub const COMBINED: &str = "(combined from similar events): ";

/// The `generateName` of an Event whose own name would not be valid.
const FALLBACK_PREFIX: &str = "event-";

/// How the correlator judges; [`Options::default`] is client-go's.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Keys each cache keeps (4096).
    pub capacity: usize,
    /// Distinct messages in a group at which they are combined (10).
    pub similar_max: usize,
    /// How long after the last similar event a group is kept (10 min).
    pub similar_window: SignedDuration,
    /// Events a source may write about one object at once (25).
    pub spam_burst: u32,
    /// The time it takes to earn one more (5 min).
    pub spam_refill: SignedDuration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            capacity: 4096,
            similar_max: 10,
            similar_window: SignedDuration::from_mins(10),
            spam_burst: 25,
            spam_refill: SignedDuration::from_mins(5),
        }
    }
}

/// What to write for an Event.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Create this Event.
    Create(Event),
    /// Patch the Event named `event.metadata.name` with `patch` (its
    /// `count`, `lastTimestamp` and `message`, as a strategic merge
    /// patch); if it is gone, create `event` instead.
    Update { event: Event, patch: Value },
    /// Nothing: the spam filter holds it back.
    Skip,
}

/// What [`Correlator::correlate`] decided, and the key to report what the
/// server stored under ([`Correlator::stored`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Correlated {
    pub key: Key,
    pub write: Write,
}

/// Which written Event an event counts towards.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    combined: bool,
    parts: Vec<String>,
}

/// The distinct messages of a group of similar events, and when the
/// latest came.
#[derive(Debug)]
struct Similar {
    messages: HashSet<String>,
    last: Timestamp,
}

/// What was last written for a key.
#[derive(Debug)]
struct Seen {
    count: i32,
    first: Option<Time>,
    /// Unknown until the server named an Event created with
    /// `generateName`.
    name: Option<String>,
}

/// A token bucket, kept as the time its tokens run out at the rate they
/// are spent (a generic cell rate algorithm, exact in whole nanoseconds):
/// an event may pass while that lies less than a bucket's worth of
/// refills ahead.
#[derive(Debug)]
struct Bucket {
    spent_until: Timestamp,
}

/// Decides, event by event, whether to create, update or drop it.
#[derive(Debug)]
pub struct Correlator {
    options: Options,
    similar: Lru<Vec<String>, Similar>,
    seen: Lru<Key, Seen>,
    spam: Lru<Vec<String>, Bucket>,
}

impl Default for Correlator {
    fn default() -> Correlator {
        Correlator::new(Options::default())
    }
}

impl Correlator {
    pub fn new(options: Options) -> Correlator {
        Correlator {
            similar: Lru::new(NonZeroUsize::new(options.capacity).unwrap_or(NonZeroUsize::MIN)),
            seen: Lru::new(NonZeroUsize::new(options.capacity).unwrap_or(NonZeroUsize::MIN)),
            spam: Lru::new(NonZeroUsize::new(options.capacity).unwrap_or(NonZeroUsize::MIN)),
            options,
        }
    }

    /// What to write for `event`, which happened at `now`.
    pub fn correlate(&mut self, event: Event, now: Timestamp) -> Correlated {
        let (event, key) = self.aggregate(event, now);
        let (event, existing) = self.observe(event, &key);
        let write = if !self.admit(&event, now) {
            Write::Skip
        } else if existing {
            Write::Update {
                patch: json!({
                    "count": event.count,
                    "lastTimestamp": event.last_timestamp,
                    "message": event.message,
                }),
                event,
            }
        } else {
            Write::Create(event)
        };
        Correlated { key, write }
    }

    /// Files what the server stored for the event correlated under `key`:
    /// its name (chosen by the server for a `generateName`), count and
    /// first time.
    pub fn stored(&mut self, key: &Key, event: &Event) {
        self.seen.put(key.clone(), Seen::of(event));
    }

    /// The event to count (`event` itself, or a combined one) and its key.
    fn aggregate(&mut self, event: Event, now: Timestamp) -> (Event, Key) {
        let (group, message) = similar_key(&event);
        let window = self.options.similar_window;
        let current = self
            .similar
            .get_mut(&group)
            .is_some_and(|g| now.duration_since(g.last) <= window);
        if !current {
            let fresh = Similar {
                messages: HashSet::new(),
                last: now,
            };
            self.similar.put(group.clone(), fresh);
        }
        let Some(similar) = self.similar.get_mut(&group) else {
            let key = identical_key(&event);
            return (event, key);
        };
        similar.last = now;
        similar.messages.insert(message.clone());
        if similar.messages.len() < self.options.similar_max {
            let key = identical_key(&event);
            return (event, key);
        }
        similar.messages.remove(&message);
        let object = event.involved_object.name.clone().unwrap_or_default();
        let combined = Event {
            metadata: named(&object, event.metadata.namespace.clone(), now),
            message: Some(format!("{COMBINED}{message}")),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: event.event_time.as_ref().map(|_| MicroTime(now)),
            ..event
        };
        let key = Key {
            combined: true,
            parts: group,
        };
        (combined, key)
    }

    /// Counts `event` under `key`: an update of what was written for it
    /// before (`true`), or a new Event.
    fn observe(&mut self, mut event: Event, key: &Key) -> (Event, bool) {
        let mut existing = false;
        if let Some(seen) = self.seen.get_mut(key).filter(|s| s.count > 0) {
            event.count = Some(seen.count.saturating_add(1));
            event.first_timestamp.clone_from(&seen.first);
            if event.event_time.is_some() {
                event.event_time = seen.first.as_ref().map(|t| MicroTime(t.0));
            }
            if let Some(name) = &seen.name {
                event.metadata.name = Some(name.clone());
                event.metadata.generate_name = None;
                existing = true;
            }
        }
        event.metadata.resource_version = None;
        self.seen.put(key.clone(), Seen::of(&event));
        (event, existing)
    }

    /// Whether the spam filter lets `event` through at `now`.
    fn admit(&mut self, event: &Event, now: Timestamp) -> bool {
        let Some(held) = self.options.spam_burst.checked_sub(1) else {
            return false;
        };
        let refill = self.options.spam_refill;
        let slack = i32::try_from(held)
            .ok()
            .and_then(|held| refill.checked_mul(held))
            .unwrap_or(SignedDuration::MAX);
        let key = spam_key(event);
        if self.spam.get_mut(&key).is_none() {
            self.spam.put(key.clone(), Bucket { spent_until: now });
        }
        let Some(bucket) = self.spam.get_mut(&key) else {
            return true;
        };
        let spent_until = bucket.spent_until.max(now);
        if spent_until.duration_since(now) > slack {
            return false;
        }
        bucket.spent_until = spent_until.checked_add(refill).unwrap_or(Timestamp::MAX);
        true
    }
}

impl Seen {
    fn of(event: &Event) -> Seen {
        Seen {
            count: event.count.unwrap_or(1),
            first: event.first_timestamp.clone(),
            name: event.metadata.name.clone(),
        }
    }
}

/// Metadata naming a new Event about `object` at `at`, in `namespace`:
/// `<object>.<unix nanoseconds in hex>`, or generated by the server when
/// that is not a valid name.
pub fn named(object: &str, namespace: Option<String>, at: Timestamp) -> ObjectMeta {
    let name = format!("{object}.{:x}", at.as_nanosecond().max(0));
    let valid = is_dns_subdomain(&name);
    ObjectMeta {
        name: valid.then_some(name),
        generate_name: (!valid).then(|| FALLBACK_PREFIX.to_string()),
        namespace,
        ..ObjectMeta::default()
    }
}

/// Whether `name` is a DNS-1123 subdomain, the names Events take.
fn is_dns_subdomain(name: &str) -> bool {
    let label = |l: &str| {
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        l.starts_with(alnum) && l.ends_with(alnum) && l.chars().all(|c| alnum(c) || c == '-')
    };
    name.len() <= 253 && name.split('.').all(label)
}

fn text(field: &Option<String>) -> String {
    field.clone().unwrap_or_default()
}

/// Source and involved object, but `fieldPath`.
fn source_and_object(event: &Event) -> Vec<String> {
    let source = event.source.clone().unwrap_or_default();
    let object = &event.involved_object;
    vec![
        text(&source.component),
        text(&source.host),
        text(&object.kind),
        text(&object.namespace),
        text(&object.name),
        text(&object.uid),
        text(&object.api_version),
    ]
}

/// The key of events that are the same event.
fn identical_key(event: &Event) -> Key {
    let mut parts = source_and_object(event);
    parts.extend([
        text(&event.involved_object.field_path),
        text(&event.type_),
        text(&event.reason),
        text(&event.message),
    ]);
    Key { combined: false, parts }
}

/// The group of events alike but for their message, and the message.
fn similar_key(event: &Event) -> (Vec<String>, String) {
    let mut group = source_and_object(event);
    group.extend([
        text(&event.type_),
        text(&event.reason),
        text(&event.reporting_component),
        text(&event.reporting_instance),
    ]);
    (group, text(&event.message))
}

/// The spam filter's bucket: source, involved object and type.
fn spam_key(event: &Event) -> Vec<String> {
    let mut key = source_and_object(event);
    key.push(text(&event.type_));
    key
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use k8s_openapi::api::core::v1::{EventSource, ObjectReference};

    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_773_133_200 + second).unwrap()
    }

    /// An event about pod `web` by `kubelet` on `node-1`, at `when`.
    fn event(reason: &str, message: &str, when: Timestamp) -> Event {
        Event {
            metadata: named("web", Some("default".into()), when),
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some("default".into()),
                name: Some("web".into()),
                uid: Some("u1".into()),
                ..ObjectReference::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some("Warning".into()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some("node-1".into()),
            }),
            first_timestamp: Some(Time(when)),
            last_timestamp: Some(Time(when)),
            count: Some(1),
            ..Event::default()
        }
    }

    /// Correlates `event` and, as the recorder does, files what a server
    /// would store: the event as written.
    fn write(correlator: &mut Correlator, event: Event, now: Timestamp) -> Write {
        let Correlated { key, write } = correlator.correlate(event, now);
        match &write {
            Write::Create(stored) | Write::Update { event: stored, .. } => correlator.stored(&key, stored),
            Write::Skip => {}
        }
        write
    }

    #[test]
    fn an_identical_event_updates_the_first_with_its_count_and_time() {
        let mut correlator = Correlator::default();
        let first = event("BackOff", "Back-off restarting failed container", at(0));
        let Write::Create(created) = write(&mut correlator, first.clone(), at(0)) else {
            panic!("the first is created");
        };
        assert_eq!(created, first);
        assert_eq!(created.metadata.name, Some(format!("web.{:x}", at(0).as_nanosecond())));

        let again = event("BackOff", "Back-off restarting failed container", at(30));
        let Write::Update { event: updated, patch } = write(&mut correlator, again, at(30)) else {
            panic!("the second updates the first");
        };
        assert_eq!(updated.metadata.name, created.metadata.name);
        assert_eq!(updated.count, Some(2));
        assert_eq!(updated.first_timestamp, Some(Time(at(0))));
        assert_eq!(updated.last_timestamp, Some(Time(at(30))));
        assert_eq!(
            patch,
            json!({"count": 2, "lastTimestamp": at(30).to_string(), "message": "Back-off restarting failed container"})
        );

        let third = write(
            &mut correlator,
            event("BackOff", "Back-off restarting failed container", at(60)),
            at(60),
        );
        assert!(matches!(third, Write::Update { event, .. } if event.count == Some(3)));

        // Another reason, or another container, is another Event.
        let other = write(&mut correlator, event("Failed", "Error: ErrImagePull", at(61)), at(61));
        assert!(matches!(other, Write::Create(_)), "{other:?}");
        let mut container = event("BackOff", "Back-off restarting failed container", at(62));
        container.involved_object.field_path = Some("spec.containers{sidecar}".into());
        let other = write(&mut correlator, container, at(62));
        assert!(matches!(other, Write::Create(_)), "{other:?}");
    }

    #[test]
    fn an_update_of_an_event_named_by_the_server_waits_for_its_name() {
        let mut correlator = Correlator::default();
        let mut first = event("Killing", "Stopping container", at(0));
        first.metadata = named("system:role", Some("default".into()), at(0));
        assert_eq!(first.metadata.name, None);
        assert_eq!(first.metadata.generate_name.as_deref(), Some("event-"));
        let Correlated { key, write } = correlator.correlate(first.clone(), at(0));
        assert_eq!(write, Write::Create(first.clone()));
        // The create failed: the next is created again, counting both.
        let Write::Create(second) = correlator.correlate(first.clone(), at(1)).write else {
            panic!("no name to update yet");
        };
        assert_eq!(second.count, Some(2));
        // Once the server named it, later ones update it.
        let mut stored = second.clone();
        stored.metadata.name = Some("event-x7k2p".into());
        correlator.stored(&key, &stored);
        let Write::Update { event, .. } = correlator.correlate(first, at(2)).write else {
            panic!("an update once named");
        };
        assert_eq!(
            (event.metadata.name.as_deref(), event.count),
            (Some("event-x7k2p"), Some(3))
        );
        assert_eq!(event.metadata.generate_name, None);
    }

    #[test]
    fn ten_similar_events_are_combined_into_one() {
        let mut correlator = Correlator::default();
        for i in 0..9 {
            let write = write(
                &mut correlator,
                event("FailedMount", &format!("volume {i}"), at(i)),
                at(i),
            );
            assert!(matches!(write, Write::Create(_)), "{i}: {write:?}");
        }
        let Write::Create(combined) = write(&mut correlator, event("FailedMount", "volume 9", at(9)), at(9)) else {
            panic!("the tenth is combined, in a new Event");
        };
        assert_eq!(
            combined.message.as_deref(),
            Some("(combined from similar events): volume 9")
        );
        assert_eq!(combined.count, Some(1));
        assert_eq!(combined.reason.as_deref(), Some("FailedMount"));
        assert_eq!(combined.metadata.name, Some(format!("web.{:x}", at(9).as_nanosecond())));

        // Later new messages update the combined Event...
        let Write::Update { event: updated, patch } =
            write(&mut correlator, event("FailedMount", "volume 10", at(10)), at(10))
        else {
            panic!("an update of the combined Event");
        };
        assert_eq!(updated.metadata.name, combined.metadata.name);
        assert_eq!(updated.count, Some(2));
        assert_eq!(patch["message"], "(combined from similar events): volume 10");
        // ...while one of the first nine still updates its own.
        let Write::Update { event: own, .. } = write(&mut correlator, event("FailedMount", "volume 3", at(11)), at(11))
        else {
            panic!("an update of its own Event");
        };
        assert_eq!(own.message.as_deref(), Some("volume 3"));
        assert_eq!(own.count, Some(2));

        // Ten minutes of quiet start the group afresh.
        let later = at(11 + 601);
        let write = write(&mut correlator, event("FailedMount", "volume 11", later), later);
        assert!(
            matches!(&write, Write::Create(e) if e.message.as_deref() == Some("volume 11")),
            "{write:?}"
        );
    }

    #[test]
    fn the_spam_filter_holds_back_a_source_beyond_its_burst() {
        let mut correlator = Correlator::default();
        let mut written = 0;
        for i in 0..30 {
            // Distinct reasons: neither counted together nor combined.
            let write = write(&mut correlator, event(&format!("Reason{i}"), "m", at(0)), at(0));
            if !matches!(write, Write::Skip) {
                written += 1;
            }
        }
        assert_eq!(written, 25);
        // Another object, or another type, has its own bucket.
        let mut other = event("Reason0", "m", at(0));
        other.involved_object.name = Some("db".into());
        assert!(matches!(correlator.correlate(other, at(0)).write, Write::Create(_)));
        let mut normal = event("Reason0", "m", at(0));
        normal.type_ = Some("Normal".into());
        assert!(matches!(correlator.correlate(normal, at(0)).write, Write::Create(_)));

        // One token comes back every five minutes.
        assert_eq!(
            correlator.correlate(event("Late", "m", at(299)), at(299)).write,
            Write::Skip
        );
        let write = write(&mut correlator, event("Late", "m", at(300)), at(300));
        assert!(
            matches!(&write, Write::Update { event, .. } if event.count == Some(2)),
            "{write:?}"
        );
        assert_eq!(
            correlator.correlate(event("Late", "m", at(301)), at(301)).write,
            Write::Skip
        );
    }

    #[test]
    fn held_back_repeats_still_count() {
        let mut correlator = Correlator::default();
        for i in 0..25 {
            assert!(!matches!(
                write(&mut correlator, event("BackOff", "m", at(i)), at(i)),
                Write::Skip
            ));
        }
        assert_eq!(
            correlator.correlate(event("BackOff", "m", at(30)), at(30)).write,
            Write::Skip
        );
        let Write::Update { event, .. } = correlator.correlate(event("BackOff", "m", at(330)), at(330)).write else {
            panic!("through once a token is back");
        };
        assert_eq!(event.count, Some(27));
    }

    #[test]
    fn the_caches_are_bounded() {
        let options = Options {
            capacity: 3,
            ..Options::default()
        };
        let mut correlator = Correlator::new(options);
        for i in 0..10 {
            let mut e = event("BackOff", "m", at(i));
            e.involved_object.name = Some(format!("pod-{i}"));
            write(&mut correlator, e, at(i));
        }
        assert_eq!(correlator.similar.len(), 3);
        assert_eq!(correlator.seen.len(), 3);
        assert_eq!(correlator.spam.len(), 3);
        // The first object was forgotten: its repeat is a new Event.
        let mut e = event("BackOff", "m", at(20));
        e.involved_object.name = Some("pod-0".into());
        assert!(matches!(correlator.correlate(e, at(20)).write, Write::Create(_)));
    }

    #[test]
    fn names_are_dns_subdomains() {
        assert!(is_dns_subdomain("web-1.189b1c3f2e4d5a6b"));
        assert!(!is_dns_subdomain("system:controller.189b"));
        assert!(!is_dns_subdomain("Web.189b"));
        assert!(!is_dns_subdomain(".189b"));
        assert!(!is_dns_subdomain(&format!("{}.189b", "a".repeat(250))));
    }
}
