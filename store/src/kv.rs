//! The store's data model: keys, values, revisions, transactions, ranges and
//! watch events. These types are what callers (the API server) speak; they
//! carry no Kubernetes meaning.

use serde::{Deserialize, Serialize};

/// A store revision. Every write transaction advances the one global
/// revision by exactly one; `0` means "no revision" (an absent key, or
/// "latest" in a request).
pub type Revision = u64;

/// A key with its value and MVCC bookkeeping, as etcd reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Revision of the write that created this key (since its last delete).
    pub create_revision: Revision,
    /// Revision of the write that last changed this key.
    pub mod_revision: Revision,
    /// Number of writes to this key since it was created; `1` on creation.
    pub version: u64,
}

/// A set of keys: one key, a half-open interval, or everything from a key on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyRange {
    /// Exactly this key.
    Key(Vec<u8>),
    /// Every key `k` with `start <= k < end`.
    Between { start: Vec<u8>, end: Vec<u8> },
    /// Every key `k` with `start <= k`.
    From(Vec<u8>),
}

impl KeyRange {
    /// Exactly one key.
    pub fn key(key: impl Into<Vec<u8>>) -> Self {
        KeyRange::Key(key.into())
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let start = prefix.into();
        match prefix_end(&start) {
            Some(end) => KeyRange::Between { start, end },
            None => KeyRange::From(start),
        }
    }

    /// Every key `k` with `start <= k < end`.
    pub fn between(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        KeyRange::Between {
            start: start.into(),
            end: end.into(),
        }
    }

    /// The smallest key in the range.
    pub fn start(&self) -> &[u8] {
        match self {
            KeyRange::Key(k) | KeyRange::From(k) => k,
            KeyRange::Between { start, .. } => start,
        }
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Key(k) => k.as_slice() == key,
            KeyRange::Between { start, end } => start.as_slice() <= key && key < end.as_slice(),
            KeyRange::From(start) => start.as_slice() <= key,
        }
    }

    /// Whether every key of the range is `>= key`'s successors, i.e. iteration
    /// that has reached `key` has left the range.
    pub fn is_past(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Key(k) => key > k.as_slice(),
            KeyRange::Between { end, .. } => key >= end.as_slice(),
            KeyRange::From(_) => false,
        }
    }

    /// The same range starting at `from` instead (for paging); `None` when
    /// `from` is already past the range.
    pub fn resume_at(&self, from: &[u8]) -> Option<KeyRange> {
        if self.is_past(from) {
            return None;
        }
        Some(match self {
            KeyRange::Key(k) => {
                if from > k.as_slice() {
                    return None;
                }
                KeyRange::Key(k.clone())
            }
            KeyRange::Between { start, end } => KeyRange::Between {
                start: from.max(start.as_slice()).to_vec(),
                end: end.clone(),
            },
            KeyRange::From(start) => KeyRange::From(from.max(start.as_slice()).to_vec()),
        })
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        match self {
            KeyRange::Key(k) if k.is_empty() => Err("empty key".into()),
            KeyRange::Between { start, end } if start >= end => Err("range start must be below its end".into()),
            _ => Ok(()),
        }
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None`
/// when there is none (the prefix is empty or all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// What a [`Compare`] looks at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The key's version; `0` when the key does not exist.
    Version(u64),
    /// The key's create revision; `0` when the key does not exist.
    CreateRevision(Revision),
    /// The key's mod revision; `0` when the key does not exist.
    ModRevision(Revision),
    /// The key's value. A comparison on the value of an absent key is false.
    Value(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Less,
    Greater,
}

/// One guard of a transaction: `key`'s `target` `op` the given operand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub key: Vec<u8>,
    pub op: CompareOp,
    pub target: CompareTarget,
}

impl Compare {
    /// True when `key` exists.
    pub fn exists(key: impl Into<Vec<u8>>) -> Self {
        Compare {
            key: key.into(),
            op: CompareOp::Greater,
            target: CompareTarget::Version(0),
        }
    }

    /// True when `key` does not exist.
    pub fn absent(key: impl Into<Vec<u8>>) -> Self {
        Compare {
            key: key.into(),
            op: CompareOp::Equal,
            target: CompareTarget::Version(0),
        }
    }

    /// True when `key` was last modified at `revision` (the optimistic
    /// concurrency check of an update).
    pub fn mod_revision(key: impl Into<Vec<u8>>, op: CompareOp, revision: Revision) -> Self {
        Compare {
            key: key.into(),
            op,
            target: CompareTarget::ModRevision(revision),
        }
    }

    /// True when `key` was created at `revision`.
    pub fn create_revision(key: impl Into<Vec<u8>>, op: CompareOp, revision: Revision) -> Self {
        Compare {
            key: key.into(),
            op,
            target: CompareTarget::CreateRevision(revision),
        }
    }

    /// True when `key`'s value compares as given.
    pub fn value(key: impl Into<Vec<u8>>, op: CompareOp, value: impl Into<Vec<u8>>) -> Self {
        Compare {
            key: key.into(),
            op,
            target: CompareTarget::Value(value.into()),
        }
    }

    /// Evaluates the guard against the key's current state.
    pub(crate) fn holds(&self, current: Option<&KeyValue>) -> bool {
        use std::cmp::Ordering;
        let ordering: Ordering = match (&self.target, current) {
            (CompareTarget::Value(_), None) => return false,
            (CompareTarget::Value(want), Some(kv)) => kv.value.as_slice().cmp(want.as_slice()),
            (CompareTarget::Version(want), kv) => kv.map_or(0, |kv| kv.version).cmp(want),
            (CompareTarget::CreateRevision(want), kv) => kv.map_or(0, |kv| kv.create_revision).cmp(want),
            (CompareTarget::ModRevision(want), kv) => kv.map_or(0, |kv| kv.mod_revision).cmp(want),
        };
        match self.op {
            CompareOp::Equal => ordering == Ordering::Equal,
            CompareOp::NotEqual => ordering != Ordering::Equal,
            CompareOp::Less => ordering == Ordering::Less,
            CompareOp::Greater => ordering == Ordering::Greater,
        }
    }
}

/// One operation of a transaction. Operations run in order and see the
/// effects of those before them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete(KeyRange),
    Get(KeyRange),
}

impl TxnOp {
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        TxnOp::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        TxnOp::Delete(KeyRange::key(key))
    }

    pub fn get(key: impl Into<Vec<u8>>) -> Self {
        TxnOp::Get(KeyRange::key(key))
    }
}

/// An atomic transaction: if every compare holds, run `success`, else run
/// `failure`. The whole transaction gets one revision if it writes anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compares.extend(compares);
        self
    }

    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.success.extend(ops);
        self
    }

    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.failure.extend(ops);
        self
    }

    /// Rejects transactions the state machine would not apply meaningfully:
    /// empty keys, inverted ranges, or two writes to the same key in one
    /// branch (as etcd does).
    pub(crate) fn validate(&self) -> Result<(), String> {
        for cmp in &self.compares {
            if cmp.key.is_empty() {
                return Err("compare on an empty key".into());
            }
        }
        for branch in [&self.success, &self.failure] {
            let mut puts: Vec<&[u8]> = Vec::new();
            let mut deletes: Vec<&KeyRange> = Vec::new();
            for op in branch {
                match op {
                    TxnOp::Put { key, .. } => {
                        if key.is_empty() {
                            return Err("put of an empty key".into());
                        }
                        if puts.contains(&key.as_slice()) || deletes.iter().any(|d| d.contains(key)) {
                            return Err(duplicate(key));
                        }
                        puts.push(key);
                    }
                    TxnOp::Delete(range) => {
                        range.validate()?;
                        if let Some(key) = puts.iter().find(|k| range.contains(k)) {
                            return Err(duplicate(key));
                        }
                        deletes.push(range);
                    }
                    TxnOp::Get(range) => range.validate()?,
                }
            }
        }
        Ok(())
    }
}

fn duplicate(key: &[u8]) -> String {
    format!("duplicate key given in txn request: {}", String::from_utf8_lossy(key))
}

/// The outcome of one [`TxnOp`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    /// The key's previous value, if it existed.
    Put { prev: Option<KeyValue> },
    /// The keys that were deleted, with their values before deletion.
    Delete { deleted: Vec<KeyValue> },
    /// The keys found.
    Get { kvs: Vec<KeyValue> },
}

/// The outcome of a [`Txn`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResponse {
    /// Whether the compares held (so `success` ran).
    pub succeeded: bool,
    /// The store revision after the transaction: its own revision if it
    /// wrote, else the revision it read at.
    pub revision: Revision,
    /// One result per operation of the branch that ran.
    pub results: Vec<OpResult>,
}

/// How a read is served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadConsistency {
    /// Reflects every write acknowledged anywhere before the read began
    /// (a read index confirmed by a quorum).
    #[default]
    Linearizable,
    /// Whatever this replica has applied; may lag the leader.
    Serializable,
}

/// A range read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    pub range: KeyRange,
    /// Read as of this revision; `0` for the latest.
    pub revision: Revision,
    /// At most this many items; `0` for no limit.
    pub limit: usize,
    /// Return keys and metadata only, no values.
    pub keys_only: bool,
    /// Also count every key in the range (costs a full scan).
    pub count: bool,
}

impl RangeRequest {
    pub fn new(range: KeyRange) -> Self {
        RangeRequest {
            range,
            revision: 0,
            limit: 0,
            keys_only: false,
            count: false,
        }
    }

    pub fn at_revision(mut self, revision: Revision) -> Self {
        self.revision = revision;
        self
    }

    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    pub fn with_count(mut self) -> Self {
        self.count = true;
        self
    }
}

/// The result of a range read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResponse {
    pub kvs: Vec<KeyValue>,
    /// The revision the read was served at; pass it back to read the next
    /// page at the same revision.
    pub revision: Revision,
    /// Whether keys remain in the range after the last one returned.
    pub more: bool,
    /// The number of keys in the whole range, when asked for.
    pub count: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change seen by a watcher.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// The key after the change. For a delete: the key, an empty value, and
    /// `mod_revision` set to the deleting revision.
    pub kv: KeyValue,
    /// The key before the change, if it existed.
    pub prev_kv: Option<KeyValue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_carries_over_ff() {
        assert_eq!(prefix_end(b"a"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn ranges_contain_what_they_say() {
        let r = KeyRange::prefix("/registry/pods/");
        assert!(r.contains(b"/registry/pods/default/a"));
        assert!(!r.contains(b"/registry/pods0"));
        assert!(r.is_past(b"/registry/pods0"));
        assert!(KeyRange::From(b"b".to_vec()).contains(b"zzz"));
        assert!(!KeyRange::key("a").contains(b"ab"));
    }

    #[test]
    fn duplicate_writes_in_one_branch_are_rejected() {
        let txn = Txn::new().and_then([TxnOp::put("a", "1"), TxnOp::put("a", "2")]);
        assert!(txn.validate().is_err());
        let txn = Txn::new().and_then([TxnOp::put("a", "1"), TxnOp::get("a")]);
        assert!(txn.validate().is_ok());
        let txn = Txn::new().and_then([TxnOp::put("", "1")]);
        assert!(txn.validate().is_err());
    }

    #[test]
    fn compares_on_absent_keys_see_zero() {
        assert!(Compare::absent("k").holds(None));
        assert!(!Compare::exists("k").holds(None));
        assert!(Compare::mod_revision("k", CompareOp::Equal, 0).holds(None));
        assert!(!Compare::value("k", CompareOp::NotEqual, "x").holds(None));
    }
}
