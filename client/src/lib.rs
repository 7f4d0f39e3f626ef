//! What skiff's own components share as clients of the API.
//!
//! The scheduler, the controllers and the node agent talk to the API
//! server through kube-rs exactly as third-party clients do; this crate
//! holds the little they have in common beyond kube-rs itself:
//!
//! * [`events::Recorder`] writes core/v1 Events about the objects a
//!   component acts on, in the shape `kubectl describe` shows
//!   (`Scheduled`, `FailedScheduling`, `SuccessfulCreate`,
//!   `ScalingReplicaSet`, `Pulled`, `BackOff`, …).
//! * [`selector`] matches `metav1.LabelSelector`s against labels and
//!   renders them as `labelSelector` query values;
//! * [`taints`] decides which tolerations tolerate which taints;
//! * [`leader`] elects one leader among control-plane servers on a Lease;
//! * [`balancer`] spreads a component's connections over several API
//!   servers and moves them off a dead one (a node agent's failover);
//! * [`identity::RotatingIdentity`] is a TLS certificate a node presents
//!   that its renewal replaces while clients and listeners run.

pub mod balancer;
pub mod events;
pub mod identity;
pub mod leader;
pub mod selector;
pub mod taints;
