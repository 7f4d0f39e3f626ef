//! Values transformed on their way into and out of the store, which is
//! how the API server keeps chosen resources encrypted at rest
//! (kube-apiserver's storage transformers): a [`ValueTransformer`] set on
//! a [`Store`](crate::Store) seals every value a transaction puts, before
//! it is proposed (so the raft log, the database and snapshots hold only
//! the sealed form), and opens every value ranges, transactions and
//! watches of that `Store` return.
//!
//! What crosses the peer port stays sealed: forwarded writes are sealed by
//! the node that took them, and reads served to a remote
//! [`Client`](crate::Client) are not opened, as etcd shows encrypted
//! values to `etcdctl`. A compare on a value compares the sealed form.

use crate::error::{Error, Result};
use crate::kv::{Event, KeyValue, OpResult, Txn, TxnOp};

/// Seals values for storage and opens them again, by key.
pub trait ValueTransformer: Send + Sync + std::fmt::Debug {
    /// The form of `value` to store at `key`.
    fn seal(&self, key: &[u8], value: Vec<u8>) -> std::result::Result<Vec<u8>, String>;
    /// The value `stored` at `key` was given as.
    fn open(&self, key: &[u8], stored: Vec<u8>) -> std::result::Result<Vec<u8>, String>;

    /// Which form `stored` is in (a name such as `aesgcm:key1`, or
    /// `identity`), and whether it is the form [`seal`](Self::seal) writes
    /// at `key` now; what is not is rewritten by
    /// [`Store::reseal`](crate::Store::reseal).
    fn form(&self, key: &[u8], stored: &[u8]) -> StoredForm {
        let _ = (key, stored);
        StoredForm {
            name: "identity".into(),
            current: true,
        }
    }
}

/// What [`ValueTransformer::form`] tells of a stored value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredForm {
    pub name: String,
    pub current: bool,
}

/// What [`Store::reseal`](crate::Store::reseal) found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Keys looked at.
    pub checked: u64,
    /// Keys written again in the current form.
    pub rewritten: u64,
    /// Each form found before the rewrite, and how many keys held it.
    pub forms: std::collections::BTreeMap<String, u64>,
}

pub(crate) fn seal_txn(transformer: &dyn ValueTransformer, txn: &mut Txn) -> Result<()> {
    for op in txn.success.iter_mut().chain(txn.failure.iter_mut()) {
        if let TxnOp::Put { key, value } = op {
            *value = transformer.seal(key, std::mem::take(value)).map_err(|e| {
                Error::invalid(format!(
                    "cannot seal the value of {}: {e}",
                    String::from_utf8_lossy(key)
                ))
            })?;
        }
    }
    Ok(())
}

pub(crate) fn open_kv(transformer: &dyn ValueTransformer, kv: &mut KeyValue) -> Result<()> {
    // A deletion's event carries an empty value: nothing to open.
    if kv.value.is_empty() {
        return Ok(());
    }
    kv.value = transformer.open(&kv.key, std::mem::take(&mut kv.value)).map_err(|e| {
        Error::corrupt(format!(
            "the value of {} cannot be opened: {e}",
            String::from_utf8_lossy(&kv.key)
        ))
    })?;
    Ok(())
}

pub(crate) fn open_kvs(transformer: &dyn ValueTransformer, kvs: &mut [KeyValue]) -> Result<()> {
    kvs.iter_mut().try_for_each(|kv| open_kv(transformer, kv))
}

pub(crate) fn open_results(transformer: &dyn ValueTransformer, results: &mut [OpResult]) -> Result<()> {
    for result in results {
        match result {
            OpResult::Put { prev } => {
                if let Some(kv) = prev {
                    open_kv(transformer, kv)?;
                }
            }
            OpResult::Delete { deleted: kvs } | OpResult::Get { kvs } => open_kvs(transformer, kvs)?,
        }
    }
    Ok(())
}

pub(crate) fn open_events(transformer: &dyn ValueTransformer, events: &mut [Event]) -> Result<()> {
    for event in events {
        open_kv(transformer, &mut event.kv)?;
        if let Some(prev) = &mut event.prev_kv {
            open_kv(transformer, prev)?;
        }
    }
    Ok(())
}
