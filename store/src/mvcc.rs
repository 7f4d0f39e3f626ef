//! The MVCC state machine's pure core: applying transactions to a view of
//! the live keys, producing the writes to persist and the events to publish.
//!
//! Nothing here does I/O. [`Batch`] reads through a [`LiveState`] (the
//! RocksDB adapter implements it over the `live` column family) plus an
//! overlay of what earlier transactions in the same batch wrote, so a whole
//! raft apply batch becomes one atomic `WriteBatch`.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::kv::{Event, EventKind, KeyRange, KeyValue, OpResult, Revision, Txn, TxnOp, TxnResponse};

/// One version of a key, as kept in the `history` column family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Version {
    Put {
        value: Vec<u8>,
        create_revision: Revision,
        version: u64,
    },
    Tombstone,
}

impl Version {
    /// The key-value this version describes, `None` for a tombstone.
    pub(crate) fn into_kv(self, key: Vec<u8>, mod_revision: Revision) -> Option<KeyValue> {
        match self {
            Version::Put {
                value,
                create_revision,
                version,
            } => Some(KeyValue {
                key,
                value,
                create_revision,
                mod_revision,
                version,
            }),
            Version::Tombstone => None,
        }
    }
}

/// A live key as kept in the `live` column family (the key is the RocksDB key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Live {
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: u64,
}

impl Live {
    pub(crate) fn into_kv(self, key: Vec<u8>) -> KeyValue {
        KeyValue {
            key,
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
        }
    }

    fn from_kv(kv: &KeyValue) -> Live {
        Live {
            value: kv.value.clone(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
        }
    }
}

/// One write the adapter must persist, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    SetLive {
        key: Vec<u8>,
        live: Live,
    },
    ClearLive {
        key: Vec<u8>,
    },
    AddVersion {
        key: Vec<u8>,
        revision: Revision,
        version: Version,
    },
    LogChange {
        revision: Revision,
        sub: u32,
        key: Vec<u8>,
    },
}

/// Read access to the live keys as of the start of a batch.
pub(crate) trait LiveState {
    fn live(&self, key: &[u8]) -> Result<Option<KeyValue>>;
    /// Every live key in `range`, in key order.
    fn scan_live(&self, range: &KeyRange) -> Result<Vec<KeyValue>>;
}

/// Applies transactions on top of a [`LiveState`], collecting writes and events.
pub(crate) struct Batch<'a, S: LiveState> {
    base: &'a S,
    /// Keys written earlier in this batch: `None` for deleted.
    overlay: BTreeMap<Vec<u8>, Option<KeyValue>>,
    revision: Revision,
    pub writes: Vec<Write>,
    pub events: Vec<Event>,
}

impl<S: LiveState> std::fmt::Debug for Batch<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("revision", &self.revision)
            .field("writes", &self.writes.len())
            .finish()
    }
}

impl<'a, S: LiveState> Batch<'a, S> {
    pub(crate) fn new(base: &'a S, revision: Revision) -> Self {
        Batch {
            base,
            overlay: BTreeMap::new(),
            revision,
            writes: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The store revision after everything applied so far.
    pub(crate) fn revision(&self) -> Revision {
        self.revision
    }

    fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        match self.overlay.get(key) {
            Some(state) => Ok(state.clone()),
            None => self.base.live(key),
        }
    }

    fn scan(&self, range: &KeyRange) -> Result<Vec<KeyValue>> {
        if let KeyRange::Key(key) = range {
            return Ok(self.get(key)?.into_iter().collect());
        }
        let mut found: BTreeMap<Vec<u8>, KeyValue> = self
            .base
            .scan_live(range)?
            .into_iter()
            .map(|kv| (kv.key.clone(), kv))
            .collect();
        let upper = match range {
            KeyRange::Between { end, .. } => Bound::Excluded(end.clone()),
            _ => Bound::Unbounded,
        };
        let lower = Bound::Included(range.start().to_vec());
        for (key, state) in self.overlay.range((lower, upper)) {
            match state {
                Some(kv) => found.insert(key.clone(), kv.clone()),
                None => found.remove(key),
            };
        }
        Ok(found.into_values().collect())
    }

    /// Applies one transaction. The revision advances by one if, and only
    /// if, the transaction changed something (as in etcd: deleting nothing
    /// is not a write).
    pub(crate) fn apply_txn(&mut self, txn: &Txn) -> Result<TxnResponse> {
        let mut succeeded = true;
        for cmp in &txn.compares {
            if !cmp.holds(self.get(&cmp.key)?.as_ref()) {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded { &txn.success } else { &txn.failure };
        let revision = self.revision + 1;
        let mut sub: u32 = 0;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                TxnOp::Put { key, value } => {
                    let prev = self.get(key)?;
                    let kv = KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
                        mod_revision: revision,
                        version: prev.as_ref().map_or(1, |p| p.version + 1),
                    };
                    self.record(revision, &mut sub, EventKind::Put, kv, prev.clone());
                    results.push(OpResult::Put { prev });
                }
                TxnOp::Delete(range) => {
                    let deleted = self.scan(range)?;
                    for prev in &deleted {
                        let tombstone = KeyValue {
                            key: prev.key.clone(),
                            value: Vec::new(),
                            create_revision: 0,
                            mod_revision: revision,
                            version: 0,
                        };
                        self.record(revision, &mut sub, EventKind::Delete, tombstone, Some(prev.clone()));
                    }
                    results.push(OpResult::Delete { deleted });
                }
                TxnOp::Get(range) => {
                    results.push(OpResult::Get { kvs: self.scan(range)? });
                }
            }
        }
        if sub > 0 {
            self.revision = revision;
        }
        Ok(TxnResponse {
            succeeded,
            revision: self.revision,
            results,
        })
    }

    fn record(&mut self, revision: Revision, sub: &mut u32, kind: EventKind, kv: KeyValue, prev_kv: Option<KeyValue>) {
        let key = kv.key.clone();
        let (version, live) = match kind {
            EventKind::Put => (
                Version::Put {
                    value: kv.value.clone(),
                    create_revision: kv.create_revision,
                    version: kv.version,
                },
                Some(kv.clone()),
            ),
            EventKind::Delete => (Version::Tombstone, None),
        };
        self.writes.push(match &live {
            Some(kv) => Write::SetLive {
                key: key.clone(),
                live: Live::from_kv(kv),
            },
            None => Write::ClearLive { key: key.clone() },
        });
        self.writes.push(Write::AddVersion {
            key: key.clone(),
            revision,
            version,
        });
        self.writes.push(Write::LogChange {
            revision,
            sub: *sub,
            key: key.clone(),
        });
        *sub += 1;
        self.overlay.insert(key, live);
        self.events.push(Event { kind, kv, prev_kv });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Compare, CompareOp};

    /// A `LiveState` over a plain map, standing in for RocksDB.
    #[derive(Default)]
    struct MapState(BTreeMap<Vec<u8>, KeyValue>);

    impl LiveState for MapState {
        fn live(&self, key: &[u8]) -> Result<Option<KeyValue>> {
            Ok(self.0.get(key).cloned())
        }
        fn scan_live(&self, range: &KeyRange) -> Result<Vec<KeyValue>> {
            Ok(self.0.values().filter(|kv| range.contains(&kv.key)).cloned().collect())
        }
    }

    impl MapState {
        fn commit(&mut self, writes: &[Write]) {
            for w in writes {
                match w {
                    Write::SetLive { key, live } => {
                        self.0.insert(key.clone(), live.clone().into_kv(key.clone()));
                    }
                    Write::ClearLive { key } => {
                        self.0.remove(key);
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn puts_count_versions_and_keep_create_revision() {
        let state = MapState::default();
        let mut batch = Batch::new(&state, 10);
        let r1 = batch.apply_txn(&Txn::new().and_then([TxnOp::put("k", "a")])).unwrap();
        let r2 = batch.apply_txn(&Txn::new().and_then([TxnOp::put("k", "b")])).unwrap();
        assert_eq!((r1.revision, r2.revision), (11, 12));
        let OpResult::Put { prev: Some(prev) } = &r2.results[0] else {
            panic!("expected a previous value: {r2:?}");
        };
        assert_eq!(
            (prev.value.as_slice(), prev.version, prev.mod_revision),
            (&b"a"[..], 1, 11)
        );
        let ev = &batch.events[1];
        assert_eq!((ev.kv.create_revision, ev.kv.mod_revision, ev.kv.version), (11, 12, 2));
    }

    #[test]
    fn failed_compare_runs_the_failure_branch_without_a_revision() {
        let mut state = MapState::default();
        let mut batch = Batch::new(&state, 0);
        batch.apply_txn(&Txn::new().and_then([TxnOp::put("k", "v")])).unwrap();
        let writes = batch.writes.clone();
        state.commit(&writes);

        let mut batch = Batch::new(&state, 1);
        let cas = Txn::new()
            .when([Compare::mod_revision("k", CompareOp::Equal, 7)])
            .and_then([TxnOp::put("k", "new")])
            .or_else([TxnOp::get("k")]);
        let resp = batch.apply_txn(&cas).unwrap();
        assert!(!resp.succeeded);
        assert_eq!(resp.revision, 1);
        assert!(batch.writes.is_empty());
        let OpResult::Get { kvs } = &resp.results[0] else {
            panic!("expected a get result")
        };
        assert_eq!(kvs[0].value, b"v");
    }

    #[test]
    fn range_delete_sees_earlier_writes_in_the_batch_and_deleting_nothing_is_not_a_write() {
        let mut state = MapState::default();
        let mut batch = Batch::new(&state, 0);
        batch
            .apply_txn(&Txn::new().and_then([TxnOp::put("a/1", "x"), TxnOp::put("b", "y")]))
            .unwrap();
        let writes = batch.writes.clone();
        state.commit(&writes);

        let mut batch = Batch::new(&state, 1);
        batch.apply_txn(&Txn::new().and_then([TxnOp::put("a/2", "z")])).unwrap();
        let resp = batch
            .apply_txn(&Txn::new().and_then([TxnOp::Delete(KeyRange::prefix("a/"))]))
            .unwrap();
        let OpResult::Delete { deleted } = &resp.results[0] else {
            panic!("expected a delete result")
        };
        assert_eq!(
            deleted.iter().map(|kv| kv.key.as_slice()).collect::<Vec<_>>(),
            [&b"a/1"[..], b"a/2"]
        );
        assert_eq!(resp.revision, 3);
        let resp = batch
            .apply_txn(&Txn::new().and_then([TxnOp::Delete(KeyRange::prefix("a/"))]))
            .unwrap();
        assert_eq!(resp.revision, 3, "deleting nothing must not advance the revision");
    }
}
