//! The raft layer: openraft's storage and network traits implemented on
//! RocksDB and HTTP.

pub(crate) mod log_store;
pub(crate) mod network;
pub(crate) mod state_machine;
