//! Memory per container: what its live instances hold in linear memory,
//! and the per-instance limit (`resources.limits.memory`).
//!
//! Each instance's store has a [`Limiter`]: wasmtime asks it before a
//! linear memory is created or grown, and it both applies the limit
//! (wasmtime's own [`StoreLimits`]) and adds what was granted to the
//! container's [`MemoryGauge`]. The store gives it all back when it is
//! dropped. The gauge is what the node reports as the container's working
//! set: an HTTP service between requests holds no instance and reports
//! nothing; the compiled code, shared by every pod of the same component,
//! is the node's, not the container's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// The linear memory a container's live instances hold, all together.
#[derive(Debug, Default)]
pub struct MemoryGauge {
    bytes: AtomicU64,
}

impl MemoryGauge {
    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn add(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn sub(&self, bytes: usize) {
        // Never below zero, whatever the order of updates.
        let _ = self.bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
            Some(held.saturating_sub(bytes as u64))
        });
    }
}

/// One store's limiter: the limit, and its share of the gauge.
pub(crate) struct Limiter {
    limits: StoreLimits,
    gauge: Option<Arc<MemoryGauge>>,
    /// What this store holds in the gauge.
    held: usize,
    /// The last growth granted, taken back if wasmtime then fails it.
    granted: usize,
}

impl Limiter {
    pub(crate) fn new(memory_bytes: Option<usize>, gauge: Option<Arc<MemoryGauge>>) -> Limiter {
        let mut limits = StoreLimitsBuilder::new().trap_on_grow_failure(true);
        if let Some(bytes) = memory_bytes {
            limits = limits.memory_size(bytes);
        }
        Limiter {
            limits: limits.build(),
            gauge,
            held: 0,
            granted: 0,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        self.granted = 0;
        if allowed && let Some(gauge) = &self.gauge {
            let grown = desired.saturating_sub(current);
            gauge.add(grown);
            self.held += grown;
            self.granted = grown;
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        if let Some(gauge) = &self.gauge {
            gauge.sub(self.granted);
            self.held -= self.granted;
        }
        self.granted = 0;
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl Drop for Limiter {
    fn drop(&mut self) {
        if let Some(gauge) = &self.gauge {
            gauge.sub(self.held);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_holds_what_it_was_granted_until_dropped() {
        let gauge = Arc::new(MemoryGauge::default());
        let mut a = Limiter::new(Some(1 << 20), Some(gauge.clone()));
        let mut b = Limiter::new(None, Some(gauge.clone()));
        assert!(a.memory_growing(0, 64 << 10, None).unwrap());
        assert!(b.memory_growing(0, 128 << 10, None).unwrap());
        assert_eq!(gauge.bytes(), 192 << 10);
        // Past the limit: refused (a trap), nothing counted.
        assert!(a.memory_growing(64 << 10, 2 << 20, None).is_err());
        assert_eq!(gauge.bytes(), 192 << 10);
        // Granted, then failed by wasmtime: taken back.
        assert!(b.memory_growing(128 << 10, 256 << 10, None).unwrap());
        b.memory_grow_failed(wasmtime::format_err!("no room")).unwrap_err();
        assert_eq!(gauge.bytes(), 192 << 10);
        drop(a);
        assert_eq!(gauge.bytes(), 128 << 10);
        drop(b);
        assert_eq!(gauge.bytes(), 0);
    }
}
