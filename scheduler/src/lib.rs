//! skiff's scheduler: picks a node for every pending pod and binds it
//! there through `pods/binding`, as kube-scheduler does.
//!
//! # The map
//!
//! The crate is a sans-IO core with an I/O shell around it.
//!
//! **Core** (pure, synchronous, unit-tested without a cluster):
//!
//! * [`Snapshot`] / [`NodeInfo`] ([`snapshot`]): every node with the pods
//!   placed on it and what they request ([`resources`]).
//! * [`framework`]: the extension points a plugin implements
//!   ([`PreFilterPlugin`], [`FilterPlugin`], [`PostFilterPlugin`],
//!   [`PreScorePlugin`], [`ScorePlugin`] with normalisation,
//!   [`ReservePlugin`], [`BindPlugin`]), the [`Status`] they answer with and
//!   the [`CycleState`] they share within a cycle. Filter and Score are
//!   called once per pod with *all* candidate nodes, so a plugin behind a
//!   costly boundary (a Wasm component) is called once per pod.
//! * [`plugins`]: the built-ins (node name, cordons, taints, node affinity,
//!   runtime support, resource fit, topology spread, balanced allocation,
//!   image locality, the default binder).
//! * [`Profile`]: the plugins enabled at each point under one scheduler
//!   name, built from a [`SchedulerConfig`] file ([`config`]) through the
//!   [`Registry`] of plugin names, or in code with [`Profile::builder`].
//! * [`schedule`] ([`cycle`]): `(profile, pod, snapshot, seed) →`
//!   [`Decision`]: the chosen node with every feasible node's score, or a
//!   [`FitError`] with every node's reason and kube-scheduler's
//!   FailedScheduling message ([`message`]), or a plugin error. In large
//!   clusters a cycle stops filtering once it has [`nodes_to_find`]
//!   feasible nodes; [`schedule_from`] says where it starts looking.
//! * [`SchedulingQueue`] ([`queue`]): active, back-off and unschedulable
//!   pods, with time passed in.
//! * [`DynamicPlugins`]: plugins added and removed at run time (the Wasm
//!   plugins), enabled in every profile from the next cycle on.
//!
//! **Shell** ([`Scheduler`], in `runner`): kube-runtime reflectors watch
//! Nodes and Pods into a cache (snapshot + queue); the loop pops a pod,
//! runs [`schedule`], assumes the pod on its node and binds it in a task;
//! failures become a `FailedScheduling` Event and a `PodScheduled=False`
//! condition, and the pod waits for a cluster change.
//!
//! ```text
//!  watch Nodes ─┐                      ┌─ Reserve, assume ─ Bind task ─ pods/binding, Event Scheduled
//!  watch Pods ──┴─ Cache ─ queue.pop ─ schedule(profile, pod, snapshot)
//!     (snapshot + queue)  ▲                      └─ FailedScheduling Event, PodScheduled=False,
//!                         └────────── cluster events retry ──────────┘     pod to unschedulable
//! ```
//!
//! [`metrics`] counts attempts, times them and reads the queues under
//! kube-scheduler's metric names ([`Scheduler::with_metrics`]).
//!
//! Starting it, as `skiff server` does:
//!
//! ```no_run
//! # async fn start(client: kube::Client) -> skiff_scheduler::Result<()> {
//! use skiff_scheduler::{Scheduler, SchedulerConfig};
//!
//! let config = SchedulerConfig::default(); // or SchedulerConfig::from_file(path)?
//! let handle = Scheduler::new(client, &config)?.start();
//! handle.wait_synced().await;
//! // … the scheduler runs until `handle` is dropped.
//! # Ok(())
//! # }
//! ```

mod cache;
pub mod config;
pub mod cycle;
mod dynamic;
mod error;
pub mod framework;
pub mod message;
pub mod metrics;
pub mod plugins;
mod profile;
pub mod queue;
mod registry;
pub mod resources;
mod runner;
pub mod snapshot;

pub use config::{ProfileConfig, SchedulerConfig};
pub use cycle::{Decision, NodeScore, PluginScore, Scheduled, nodes_to_find, schedule, schedule_from};
pub use dynamic::{DynamicPlugin, DynamicPlugins};
pub use error::{ConfigProblem, Error, Result};
pub use framework::{
    BindOutcome, BindPlugin, ClusterEvent, Code, CycleState, FilterPlugin, Plugin, PostFilterPlugin, PostFilterResult,
    PreFilterPlugin, PreFilterResult, PreScorePlugin, ReservePlugin, ScorePlugin, Status,
};
pub use message::FitError;
pub use profile::{DEFAULT_SCHEDULER_NAME, ExtensionPoint, Profile, ProfileBuilder};
pub use queue::{QueueConfig, SchedulingQueue};
pub use registry::{Factory, Registry, decode_args};
pub use runner::{Scheduler, SchedulerHandle, SchedulerOptions, SchedulerStats};
pub use snapshot::{NodeInfo, PodInfo, Snapshot};
