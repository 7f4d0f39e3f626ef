//! Who is asking, and may they: the pure core of skiff's access model,
//! which is Kubernetes' own.
//!
//! Nothing here does I/O. The API server (`skiff-api`) authenticates a
//! request into a [`UserInfo`], describes what it asks as an
//! [`Attributes`], and asks an authorizer built from the objects it
//! watches:
//!
//! * [`rbac`]: Role, ClusterRole, RoleBinding and ClusterRoleBinding as
//!   `rbac.authorization.k8s.io/v1` defines them. A [`rbac::Policy`] is an
//!   immutable, indexed snapshot of those objects (ClusterRole aggregation
//!   resolved); it decides requests, lists a user's rules (for
//!   SelfSubjectRulesReview) and checks that a role or binding grants
//!   nothing its writer lacks (the `escalate` and `bind` verbs).
//! * [`node`]: the Node authorizer's graph (which Secrets, ConfigMaps,
//!   claims and ServiceAccounts a node's pods name) and NodeRestriction
//!   (a node writes only its own Node, Lease and pods' status).
//! * [`token`]: ServiceAccount tokens (ES256 JWTs with Kubernetes'
//!   claims), signed and verified, and the OpenID documents that publish
//!   the key.
//! * [`csr`]: certificate signing requests: the PKCS#10 request read
//!   into the identity a signed certificate would carry, and the shapes
//!   Kubernetes' node and API-client signers accept.
//! * [`bootstrap`]: the roles and bindings every cluster starts with, as
//!   kube-apiserver reconciles them on start, plus the roles of skiff's own
//!   components.
//!
//! Decisions are [`Decision`]s; a denial carries the reason kube-apiserver
//! would append to its Forbidden message.

pub mod attributes;
pub mod bootstrap;
pub mod csr;
pub mod node;
pub mod rbac;
pub mod token;
pub mod user;

pub use attributes::{Attributes, ResourceAttributes, Target};
pub use user::UserInfo;

/// What an authorizer decides about a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// This authorizer has no opinion; the next one in the chain decides.
    NoOpinion(String),
    /// Refused, whatever later authorizers would say.
    Deny(String),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}
