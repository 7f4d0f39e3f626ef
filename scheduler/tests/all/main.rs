//! The scheduler against a real API server (skiff-api over a one-node
//! RocksDB store, served over TLS, through kube-rs). Nodes are Node
//! objects with no agent behind them, as KWOK makes them: created, then
//! given capacity and a Ready condition through their status.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod binding;
mod metrics;
mod queueing;
mod support;
mod unschedulable;
