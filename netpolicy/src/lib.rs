//! NetworkPolicy (`networking.k8s.io/v1`) verdicts, decided the way
//! Kubernetes defines them: may this connection into or out of this pod go
//! ahead?
//!
//! Everything here is pure and synchronous. The crate reads policies and
//! namespaces the caller already holds (a reflector's store, a test's
//! fixtures) and answers questions about connections; enforcing an answer
//! (refusing the connection, recording an Event) is the caller's business.
//! Nothing here panics, whatever the input.
//!
//! # Map
//!
//! | type | file | what it is |
//! |---|---|---|
//! | [`PolicySet`] | `set.rs` | every policy compiled once, grouped by namespace; asked [`ingress`](PolicySet::ingress) and [`egress`](PolicySet::egress) questions, answering a [`Verdict`] |
//! | [`Endpoint`], [`Peer`], [`Port`], [`Protocol`], [`NamedPort`] | `endpoint.rs` | a connection as the caller knows it: the pod asked about, the other side (an address, and its pod when there is one), the destination port |
//! | `Policy` | `policy.rs` | one policy compiled: the pods it selects, the directions it isolates, its rules' peers and ports |
//! | `Selector` | `selector.rs` | a compiled label selector |
//! | `Namespaces` | `namespaces.rs` | namespace labels, for `namespaceSelector` |
//! | [`Allowed`], [`Allowance`] | `allowed.rs` | what a pod's policies allow in one direction, spelled as address and port sets for a packet filter ([`PolicySet::allowed`]) |
//! | [`Cidr`] | `cidr.rs` | an `ipBlock` range, parsed as kube-apiserver parses it (the API server validates `ipBlock`s with it too) |
//!
//! ```text
//! NetworkPolicies + Namespaces ──PolicySet::new──► namespace → compiled policies, by name
//! (pod, peer, port) ──ingress / egress──► the pod's namespace's policies that select it
//!                                         for that direction ──► Verdict
//! ```
//!
//! # The rules
//!
//! As Kubernetes defines them, for one direction (ingress: connections
//! into the pod; egress: connections out of it):
//!
//! * A pod is **isolated** for a direction when some policy of its own
//!   namespace selects it (`podSelector`; empty selects every pod) and has
//!   the direction in its effective `policyTypes`. Unset `policyTypes` mean
//!   Ingress, plus Egress when the policy has egress rules. Policies of
//!   other namespaces never isolate a pod. A pod not isolated for a
//!   direction may make every connection in it ([`Verdict::Unrestricted`]).
//! * An isolated pod's connection is **allowed** when any rule of any
//!   policy selecting it for the direction matches both the peer and the
//!   port ([`Verdict::Allowed`]); otherwise it is [`Verdict::Denied`],
//!   naming the policies that isolate the pod. Policies only ever add
//!   allowed connections: their union is what is allowed.
//! * **Peers** (`from`, `to`; absent or empty: any peer). `podSelector`
//!   alone: matching pods of the policy's namespace. `namespaceSelector`
//!   alone: every pod of the matching namespaces. Both in one peer: matching
//!   pods in matching namespaces (AND); as two peers, either (OR).
//!   `ipBlock`: the peer's address is in `cidr` and in none of `except`.
//!   Namespaces are matched on their labels, where
//!   `kubernetes.io/metadata.name` ([`NAME_LABEL`]) is always the name.
//! * **Ports** (absent or empty: any port). The protocol (default TCP) must
//!   match; then no `port` matches every port, a number matches itself or,
//!   with `endPort`, the range through it, and a name matches the
//!   destination pod's container port of that name and protocol: the target
//!   for ingress, the peer's pod for egress.
//! * **Label selectors**: `matchLabels` and `matchExpressions` (`In`,
//!   `NotIn`, `Exists`, `DoesNotExist`) must all hold.
//!
//! # Where Kubernetes leaves the choice
//!
//! Kubernetes leaves some behaviour to the network plugin; this crate
//! chooses:
//!
//! * An `ipBlock` is matched against the peer's address whether or not a
//!   pod stands behind it (Kubernetes advises `ipBlock` for addresses
//!   outside the cluster, and leaves pod addresses to the plugin).
//! * Which address and which pod count as "the peer" (after or before any
//!   address translation, for node or host-network traffic) is the
//!   caller's to say through [`Peer`]; this crate does not guess.
//! * An IPv4-mapped IPv6 peer address (`::ffff:10.0.0.1`) is matched as the
//!   IPv4 address it maps, as Go's `net.IPNet` does.
//!
//! # Where this differs from Kubernetes
//!
//! * Input kube-apiserver refuses (a selector with an unknown operator, or
//!   `In`/`NotIn` without values; a peer with no field set or with
//!   `ipBlock` beside a selector; a malformed CIDR; an unknown protocol; a
//!   port out of range; `endPort` below `port`, beside a named port or
//!   without one) cannot be stored through skiff's API, so Kubernetes says
//!   nothing about it. Here such a peer, port or peer selector matches
//!   nothing, which fails closed, and such a `podSelector` selects no pod,
//!   so the policy isolates nothing. Unknown `policyTypes` entries are
//!   ignored.
//! * An IPv4-mapped IPv6 `cidr` (`::ffff:10.0.0.0/104`) is read as the IPv4
//!   network it maps (`10.0.0.0/8`), which is how Go matches it; the
//!   strict-subset check of `except` then compares IPv4 prefix lengths
//!   where kube-apiserver compares the written (IPv6) ones.
//! * Policies with no namespace are left out (kube-apiserver never returns
//!   one).

mod allowed;
mod cidr;
mod endpoint;
mod namespaces;
mod policy;
mod selector;
mod set;
#[cfg(test)]
mod tests;

pub use allowed::{Addresses, Allowance, Allowed, PortSpan};
pub use cidr::Cidr;
pub use endpoint::{Endpoint, NamedPort, Peer, Port, Protocol};
pub use namespaces::NAME_LABEL;
pub use set::{Direction, PolicySet, Verdict};

/// Result of parsing, with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a text is not what it should be. Every variant is bad input, never
/// worth retrying; the variants are leaves, with no underlying error to
/// chain as a source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not `address/prefix` with an IPv4 or IPv6 address and a prefix no
    /// longer than the address (Go's wording).
    #[error("invalid CIDR address: {0}")]
    Cidr(String),
}
