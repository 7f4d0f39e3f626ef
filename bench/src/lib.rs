//! skiff's benchmarks. Figures are measured and reported, never asserted.
//!
//! * `store-bench` (`cargo xtask bench store`): write throughput and
//!   p50/p99 commit latency at 1, 16 and 256 concurrent clients, plus
//!   linearizable reads, for 1 and 3 skiff nodes and 1 and 3 etcd nodes on
//!   loopback, side by side on the same machine, with skiff/etcd ratios.
//!
//! Both systems run as separate processes and are driven over the network
//! by their own client (skiff's [`skiff_store::Client`], etcd's gRPC client),
//! with the same keys, value size and concurrency.

pub mod load;
pub mod procs;
