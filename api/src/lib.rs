//! skiff's Kubernetes-compatible API server.
//!
//! It turns the store's generic MVCC key-value interface into the
//! Kubernetes REST API, closely enough that kubectl, client-go, the Python
//! `kubernetes` client and kube-rs work against it unchanged.
//!
//! A request flows through:
//!
//! 1. [`server`]: TLS (with optional client certificates), then
//!    authentication ([`auth::Authentication`]), impersonation and routing.
//!    Discovery ([`discovery`]) and OpenAPI ([`openapi`]) are answered from
//!    the live [`catalog::Catalog`]; resource paths are parsed into a
//!    [`request::ResourceRequest`] and authorized ([`auth::Authorizer`]:
//!    the Node authorizer and RBAC).
//! 2. Bodies are decoded ([`body`]: JSON, YAML, or Kubernetes protobuf via
//!    [`protobuf`]), checked against the kind's typed schema for unknown
//!    and duplicate fields, resource quantities put in canonical form
//!    ([`quantity`]), and patches applied ([`patch`]).
//! 3. [`registry::Registry`] runs the [`admission`] chain (mutating
//!    plugins, the kind's validation again, validating plugins) on every
//!    write, and gives Kubernetes object semantics on store
//!    transactions: keys under `/registry/…`, `resourceVersion` = the key's
//!    mod revision, compare-and-swap updates, finalizers, paging with
//!    continue tokens; per-kind rules live in [`strategy`]. Lists filter by
//!    [`selector`]s; [`watch`] turns store events into watch events.
//! 4. Replies are JSON, YAML, or server-side [`table`]s for kubectl, and
//!    every error is a `metav1.Status` ([`error::ApiError`], encoded by
//!    [`status`] as kube-apiserver encodes it).
//!
//! With an audit policy, [`audit`] wraps all of it: every request gets an
//! audit ID and `audit.k8s.io/v1` events (who, what, as whom, with which
//! result) in a rotated log, Secret payloads never among them.
//!
//! Custom resources: [`crd`] turns stored CustomResourceDefinitions into
//! catalog entries (and keeps every server's catalog in step through a
//! store watch); [`structural`] prunes, defaults and validates custom
//! objects against their schema.
//!
//! [`pki`] makes and keeps the CA, serving certificate, the admin's client
//! certificate and token, the ServiceAccount signing key and the admin
//! kubeconfig, and signs client certificates: those of skiff's own
//! components, and those CertificateSigningRequests ask for (the
//! controllers' signer calls [`pki::Pki::sign_request`]).

pub mod admission;
pub mod audit;
pub mod auth;
pub mod body;
pub mod catalog;
pub mod crd;
pub mod discovery;
pub mod encryption;
pub mod error;
pub mod kinds;
pub mod meta;
pub mod openapi;
pub mod options;
pub mod patch;
pub mod pki;
pub mod printer;
pub mod protobuf;
pub use skiff_quantity as quantity;
pub mod registry;
pub mod request;
pub mod selector;
pub mod server;
pub mod services;
pub mod status;
pub mod stored;
pub mod strategy;
pub mod structural;
pub mod table;
pub mod usage;
pub mod watch;

pub use error::{ApiError, Result};
pub use server::{ApiServer, serve_tls};
