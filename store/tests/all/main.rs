//! skiff-store's integration tests: real RocksDB on disk, real raft over
//! HTTP on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod backup;
mod bad_input;
mod catch_up;
mod cluster;
mod conformance;
mod membership;
mod metrics;
mod mvcc;
mod support;
mod watch;
