//! The controllers against a real API server (skiff-api over a one-node
//! RocksDB store, served over TLS, through kube-rs). Nodes are played by
//! a stand-in that marks pods running and ready, so what is tested is the
//! controllers' own behaviour; the end-to-end tests in `skiff/tests`
//! run the same controllers with real node agents.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod apiservice;
mod certificates;
mod cronjob;
mod daemonset;
mod deployment;
mod endpoints;
mod gc;
mod podautoscaler;
mod replicaset;
mod serviceaccount;
mod statefulset;
mod support;
