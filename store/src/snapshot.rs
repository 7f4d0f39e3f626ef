//! The snapshot file format: the state-machine column families streamed
//! from one RocksDB snapshot into a flat, checksummed file.
//!
//! ```text
//! "SKIFFSN1" | be64 revision | be64 compacted
//! { u8 family (1-based index in SM_FAMILIES) | be32 key len | key | be32 value len | value }*
//! u8 0 | be64 record count | be64 FNV-1a of every byte before it
//! ```
//!
//! Files are written and read on blocking threads; a reader checks the
//! checksum before anything is installed, so a truncated or corrupted
//! transfer is rejected without touching the state machine.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use rocksdb::WriteBatch;

use crate::db::{Db, SM_FAMILIES, meta};
use crate::error::{Error, Result};
use crate::kv::Revision;
use crate::types::{LogId, StoredMembership};

const MAGIC: &[u8; 8] = b"SKIFFSN1";

/// The revisions recorded in a snapshot file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotRevisions {
    pub revision: Revision,
    pub compacted: Revision,
}

struct Hasher(u64);

impl Hasher {
    fn new() -> Self {
        Hasher(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

struct HashingWriter<W: Write> {
    inner: W,
    hash: Hasher,
}

impl<W: Write> HashingWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.inner.write_all(bytes)
    }
}

/// The raft metadata read from the same RocksDB snapshot as the data.
#[derive(Clone, Debug)]
pub(crate) struct Written {
    pub applied: Option<LogId>,
    pub membership: StoredMembership,
}

/// Writes the state machine, as of a RocksDB snapshot, to `path`.
/// Returns the raft position that state corresponds to.
pub(crate) fn write(db: &Db, path: &Path) -> Result<Written> {
    let io = |e| Error::io(path, e);
    let snap = db.raw().snapshot();
    let meta_cf = db.cf(crate::db::CF_META)?;
    let read_rev = |key: &'static [u8]| -> Result<Revision> {
        match snap.get_cf(meta_cf, key)? {
            Some(raw) => crate::codec::decode("snapshot revision", &raw),
            None => Ok(0),
        }
    };
    let revs = SnapshotRevisions {
        revision: read_rev(meta::REVISION)?,
        compacted: read_rev(meta::COMPACTED)?,
    };
    let written = Written {
        applied: match snap.get_cf(meta_cf, meta::APPLIED)? {
            Some(raw) => crate::codec::decode::<Option<LogId>>("applied log id", &raw)?,
            None => None,
        },
        membership: match snap.get_cf(meta_cf, meta::MEMBERSHIP)? {
            Some(raw) => crate::codec::decode("membership", &raw)?,
            None => StoredMembership::default(),
        },
    };
    let file = File::create(path).map_err(io)?;
    let mut out = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        hash: Hasher::new(),
    };
    out.put(MAGIC).map_err(io)?;
    out.put(&revs.revision.to_be_bytes()).map_err(io)?;
    out.put(&revs.compacted.to_be_bytes()).map_err(io)?;
    let mut count: u64 = 0;
    for (i, name) in SM_FAMILIES.iter().enumerate() {
        let family = u8::try_from(i + 1).map_err(|_| Error::corrupt("family index"))?;
        let mut it = snap.raw_iterator_cf(db.cf(name)?);
        it.seek_to_first();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            out.put(&[family]).map_err(io)?;
            for part in [k, v] {
                let len = u32::try_from(part.len()).map_err(|_| Error::corrupt("oversized record"))?;
                out.put(&len.to_be_bytes()).map_err(io)?;
                out.put(part).map_err(io)?;
            }
            count += 1;
            it.next();
        }
        it.status()?;
    }
    out.put(&[0]).map_err(io)?;
    out.put(&count.to_be_bytes()).map_err(io)?;
    let digest = out.hash.0;
    out.inner.write_all(&digest.to_be_bytes()).map_err(io)?;
    let file = out.inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(written)
}

struct HashingReader<R: Read> {
    inner: R,
    hash: Hasher,
}

impl<R: Read> HashingReader<R> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.inner
            .read_exact(&mut buf)
            .map_err(|_| Error::corrupt("snapshot: truncated"))?;
        self.hash.update(&buf);
        Ok(buf)
    }

    fn take_vec(&mut self) -> Result<Vec<u8>> {
        let len = u32::from_be_bytes(self.take::<4>()?) as usize;
        let mut buf = vec![0u8; len];
        self.inner
            .read_exact(&mut buf)
            .map_err(|_| Error::corrupt("snapshot: truncated"))?;
        self.hash.update(&buf);
        Ok(buf)
    }
}

/// Reads a snapshot file, calling `record(family_name, key, value)` for
/// each record, and returns its revisions once the checksum has matched.
pub(crate) fn read(path: &Path, mut record: impl FnMut(&'static str, Vec<u8>, Vec<u8>)) -> Result<SnapshotRevisions> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut r = HashingReader {
        inner: BufReader::with_capacity(1 << 20, file),
        hash: Hasher::new(),
    };
    if &r.take::<8>()? != MAGIC {
        return Err(Error::corrupt("snapshot: not a skiff snapshot"));
    }
    let revs = SnapshotRevisions {
        revision: u64::from_be_bytes(r.take::<8>()?),
        compacted: u64::from_be_bytes(r.take::<8>()?),
    };
    let mut count: u64 = 0;
    loop {
        let [family] = r.take::<1>()?;
        if family == 0 {
            break;
        }
        let name = SM_FAMILIES
            .get(usize::from(family) - 1)
            .ok_or_else(|| Error::corrupt("snapshot: unknown family"))?;
        let key = r.take_vec()?;
        let value = r.take_vec()?;
        record(name, key, value);
        count += 1;
    }
    let declared = u64::from_be_bytes(r.take::<8>()?);
    let computed = r.hash.0;
    let mut digest = [0u8; 8];
    r.inner
        .read_exact(&mut digest)
        .map_err(|_| Error::corrupt("snapshot: truncated"))?;
    if declared != count || u64::from_be_bytes(digest) != computed {
        return Err(Error::corrupt("snapshot: checksum mismatch"));
    }
    let mut trailing = [0u8; 1];
    if r.inner.read(&mut trailing).map_err(|e| Error::io(path, e))? != 0 {
        return Err(Error::corrupt("snapshot: trailing bytes"));
    }
    Ok(revs)
}

/// Replaces the state machine with the snapshot in `path`, atomically: the
/// file is verified in full first, then old state and new records go into
/// one write batch together with the raft metadata in `extra`.
pub(crate) fn install(
    db: &Db,
    path: &Path,
    extra: impl FnOnce(&mut WriteBatch) -> Result<()>,
) -> Result<SnapshotRevisions> {
    let (mut batch, revs) = stage(db, path)?;
    extra(&mut batch)?;
    commit(db, batch)?;
    Ok(revs)
}

/// Verifies the snapshot file in `path` in full, then stages replacing
/// the state machine with it in a write batch: the old state cleared, the
/// snapshot's records and revisions written. Nothing is written yet.
pub(crate) fn stage(db: &Db, path: &Path) -> Result<(WriteBatch, SnapshotRevisions)> {
    // First pass: verify without staging anything.
    read(path, |_, _, _| {})?;
    let mut batch = WriteBatch::default();
    db.clear_state_machine(&mut batch)?;
    let mut staged: Result<()> = Ok(());
    let revs = read(path, |family, key, value| {
        if staged.is_ok() {
            staged = db.cf(family).map(|cf| batch.put_cf(cf, key, value));
        }
    })?;
    staged?;
    db.put_meta(&mut batch, meta::REVISION, &revs.revision)?;
    db.put_meta(&mut batch, meta::COMPACTED, &revs.compacted)?;
    Ok((batch, revs))
}

/// Writes a [`stage`]d install, durably.
pub(crate) fn commit(db: &Db, batch: WriteBatch) -> Result<()> {
    let mut opts = rocksdb::WriteOptions::default();
    opts.set_sync(true);
    db.raw().write_opt(batch, &opts)?;
    Ok(())
}
