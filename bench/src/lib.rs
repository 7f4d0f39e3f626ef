//! skiff's benchmarks. Figures are measured and reported, never asserted.
//!
//! * `store-bench` (`cargo xtask bench store`): write throughput and
//!   p50/p99 commit latency at 1, 16 and 256 concurrent clients, plus
//!   linearizable reads, for 1 and 3 skiff nodes and 1 and 3 etcd nodes on
//!   loopback, side by side on the same machine, with skiff/etcd ratios.
//!
//! * `api-bench` (`cargo xtask bench api`): the Kubernetes API over TLS
//!   (HTTP/2): create/get/list throughput and p50/p99 at fixed concurrency,
//!   creates at a fixed rate, and watch fan-out to thousands of watchers
//!   with per-delivery latency; the same writes straight to the store are
//!   the peer, so the ratio is the API layer's cost.
//!
//! * `scheduler-bench` (`cargo xtask bench scheduler`): the scheduler end
//!   to end through the API with simulated nodes (Node objects with no
//!   agent, as kubemark and KWOK make): pods/s binding 10,000 pods at
//!   1,000 and 5,000 nodes, create→bound p50/p99; the peer is the API's
//!   own create+bind path with no scheduling decision (this program binds
//!   round-robin on a server without scheduler), so the ratio is the
//!   scheduler's cost; kube-scheduler's CI floor is printed as a cited
//!   reference line. Beside it, the scheduling core alone in memory
//!   (cycles/s over the same nodes), which bounds what the API around it
//!   leaves. Also the time from `kubectl apply` of a 100-replica
//!   Wasm Deployment to all pods Ready on a real node agent. Parts in
//!   [`scheduler`].
//!
//! * `node-bench` (`cargo xtask bench node`): the node agent. Wasm
//!   instantiation from a pre-compiled component, create→Running through
//!   the API for Wasm pods and runc pods side by side, the first request
//!   through the gateway, gateway requests/s against `wasmtime serve` on
//!   the same component, a Wasm pod's requests/s alone and beside a Wasm
//!   pod spinning under a CPU limit, and how many idle Wasm pods one agent
//!   holds, with its RSS per pod. Parts in [`node`].
//!
//! * `autoscale-bench` (`cargo xtask bench autoscale`): what metrics cost
//!   on the request path (API get and create, a Wasm service's requests
//!   at its pod and through its ClusterIP) on a server counting them
//!   beside one started with `--no-request-metrics`, in the same run,
//!   alternately; how fast a `requests-per-second` HorizontalPodAutoscaler
//!   reacts to a load step (to its decision and to the new replicas
//!   Ready); and the first request's latency to a Service whose Wasm
//!   Deployment was scaled to zero. Plots beside the JSON. Parts in
//!   [`autoscale`].
//!
//! In the store and API benches both systems run as separate processes
//! and are driven over the network by their own client (skiff's
//! [`skiff_store::Client`], etcd's gRPC client), with the same keys, value
//! size and concurrency.

pub mod api;
pub mod autoscale;
pub mod load;
pub mod node;
pub mod procs;
pub mod scheduler;
