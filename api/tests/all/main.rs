//! The API server's integration tests: the router driven without a socket
//! over a real one-node store, and kube-rs against a served TLS endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod admission;
mod audit;
mod auth;
mod crd;
mod discovery;
mod kube_rs;
mod metrics;
mod network_policies;
mod rest;
mod services;
mod traces;
mod watch;
