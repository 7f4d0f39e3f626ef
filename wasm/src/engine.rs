//! The node's one wasmtime [`Engine`]: pooling allocator, copy-on-write
//! memory images, epoch interruption driven by a ticker thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::WasmError;

/// How often the epoch advances: the granularity of CPU deadlines and of
/// how soon a runaway guest notices it is being stopped.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Sizes of the instance pool. Every live instance (an HTTP request in
/// flight, a running command) takes one slot of each kind it uses.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Component instances alive at once.
    pub instances: u32,
    /// Linear memories alive at once (a component may have several).
    pub memories: u32,
    /// The most any one linear memory may grow to; per-pod limits are
    /// enforced below this by a store limiter.
    pub max_memory_bytes: usize,
    /// Address space reserved per linear memory. Smaller than the 4 GiB
    /// default so that tens of thousands of memories fit; accesses beyond
    /// it are bounds-checked instead of caught by guard pages.
    pub memory_reservation: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            instances: 1000,
            memories: 2000,
            max_memory_bytes: 512 << 20,
            memory_reservation: 1 << 30,
        }
    }
}

/// The engine and the thread that advances its epoch. Dropping the last
/// handle stops the thread.
#[derive(Debug, Clone)]
pub struct NodeEngine {
    engine: Engine,
    _ticker: Arc<EpochTicker>,
}

/// A thread that advances an engine's epoch every [`EPOCH_TICK`], so that
/// stores with an epoch deadline are interrupted on time. Dropping it
/// stops the thread (within one tick).
#[derive(Debug)]
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    /// Starts ticking `engine`, on a thread called `name`.
    pub fn start(engine: &Engine, name: &str) -> std::io::Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let ticking = engine.clone();
        let flag = stop.clone();
        std::thread::Builder::new().name(name.into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                ticking.increment_epoch();
            }
        })?;
        Ok(EpochTicker { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl NodeEngine {
    pub fn new(pool: &PoolConfig) -> Result<NodeEngine, WasmError> {
        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(pool.instances)
            .total_core_instances(pool.instances.saturating_mul(4))
            .total_memories(pool.memories)
            .total_tables(pool.memories)
            .total_stacks(pool.instances)
            .max_memory_size(pool.max_memory_bytes)
            .max_core_instances_per_component(50)
            .max_memories_per_component(10)
            .max_tables_per_component(20)
            .max_component_instance_size(1 << 20)
            // Reset a freed slot's memory and tables in place (memset of
            // the pages actually touched, found with PAGEMAP_SCAN where the
            // kernel has it) instead of madvise, so the next instance in
            // the slot neither faults its pages back in nor shoots down TLBs.
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10)
            .pagemap_scan(Enabled::Auto);
        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling))
            .memory_init_cow(true)
            .memory_reservation(pool.memory_reservation)
            .memory_guard_size(64 << 10)
            .epoch_interruption(true)
            .wasm_component_model(true);
        let engine = Engine::new(&config).map_err(|e| WasmError::Engine(e.to_string()))?;
        let ticker = EpochTicker::start(&engine, "skiff-wasm-epoch")
            .map_err(|e| WasmError::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(NodeEngine {
            engine,
            _ticker: Arc::new(ticker),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// Epoch ticks in a duration, at least one.
pub fn ticks(duration: Duration) -> u64 {
    (duration.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}
