//! Byte layouts of RocksDB keys and values.
//!
//! * `history` keys are `escape(user_key) ++ 0x00 0x00 ++ be64(!revision)`:
//!   the escaping (`0x00` → `0x00 0xff`) keeps user-key order and makes the
//!   encoding prefix-free, and the inverted revision puts a key's newest
//!   version first, so "the newest version at or below R" is one seek.
//! * `changes` keys are `be64(revision) ++ be32(sub)`: the write log in
//!   revision order that watches replay and compaction walks.
//! * `log` keys are `be64(index)`.
//!
//! Values are bincode of the serde types in this crate; every decode failure
//! is reported as corruption, never a panic.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::kv::Revision;

const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xff;
const TERMINATOR: u8 = 0x00;

/// The history-key prefix shared by every version of `user_key`.
pub(crate) fn history_prefix(user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(user_key.len() + 10);
    for &b in user_key {
        out.push(b);
        if b == ESCAPE {
            out.push(ESCAPED_ZERO);
        }
    }
    out.push(ESCAPE);
    out.push(TERMINATOR);
    out
}

/// The history key of `user_key` at `revision`.
pub(crate) fn history_key(user_key: &[u8], revision: Revision) -> Vec<u8> {
    let mut out = history_prefix(user_key);
    out.extend_from_slice(&(!revision).to_be_bytes());
    out
}

/// Splits a history key into its user key and revision.
pub(crate) fn decode_history_key(raw: &[u8]) -> Result<(Vec<u8>, Revision)> {
    let corrupt = || Error::corrupt("history key");
    if raw.len() < 10 {
        return Err(corrupt());
    }
    let (body, rev) = raw.split_at(raw.len() - 8);
    let rev = !u64::from_be_bytes(rev.try_into().map_err(|_| corrupt())?);
    let mut key = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b != ESCAPE {
            key.push(b);
            i += 1;
            continue;
        }
        match body.get(i + 1) {
            Some(&ESCAPED_ZERO) => {
                key.push(0);
                i += 2;
            }
            Some(&TERMINATOR) if i + 2 == body.len() => return Ok((key, rev)),
            _ => return Err(corrupt()),
        }
    }
    Err(corrupt())
}

pub(crate) fn change_key(revision: Revision, sub: u32) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&revision.to_be_bytes());
    out[8..].copy_from_slice(&sub.to_be_bytes());
    out
}

pub(crate) fn decode_change_key(raw: &[u8]) -> Result<Revision> {
    let head: [u8; 8] = raw
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::corrupt("change key"))?;
    Ok(u64::from_be_bytes(head))
}

pub(crate) fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

pub(crate) fn decode_log_key(raw: &[u8]) -> Result<u64> {
    let raw: [u8; 8] = raw.try_into().map_err(|_| Error::corrupt("log key"))?;
    Ok(u64::from_be_bytes(raw))
}

/// Values larger than this are refused rather than allocated: a corrupt
/// length field or a hostile peer must not exhaust memory.
const DECODE_LIMIT: u64 = 512 << 20;

fn options() -> impl bincode::Options {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_limit(DECODE_LIMIT)
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    use bincode::Options;
    options().serialize(value).map_err(|e| Error::Encode { source: e })
}

pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, raw: &[u8]) -> Result<T> {
    use bincode::Options;
    options().deserialize(raw).map_err(|_| Error::corrupt(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keys_round_trip_and_keep_order() {
        let keys: [&[u8]; 6] = [b"", b"a", b"a\x00", b"a\x00b", b"a\x01", b"b\xff\x00"];
        let mut encoded = Vec::new();
        for k in keys {
            for rev in [1u64, 7, u64::MAX - 1] {
                let raw = history_key(k, rev);
                assert_eq!(decode_history_key(&raw).unwrap(), (k.to_vec(), rev));
                encoded.push((raw, k, rev));
            }
        }
        let mut sorted = encoded.clone();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        // User keys ascending; within a key, revisions descending.
        let expected: Vec<_> = {
            let mut e = encoded.clone();
            e.sort_by(|a, b| a.1.cmp(b.1).then(b.2.cmp(&a.2)));
            e
        };
        assert_eq!(sorted, expected);
    }

    #[test]
    fn garbage_history_keys_are_corruption_not_panics() {
        for raw in [&b""[..], b"abc", b"a\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00"] {
            assert!(decode_history_key(raw).is_err());
        }
    }
}
