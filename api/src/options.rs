//! The options a request carries into the registry: how a write, delete,
//! list or watch is to be done. Parsed from the query and body at the HTTP
//! edge (`server::query`), read by the registry, the kinds' strategies,
//! body decoding and watch.

use crate::auth::UserInfo;
use crate::selector::{FieldSelector, LabelSelector};

/// `fieldValidation`: what to do with fields the schema does not know.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    #[default]
    Warn,
    Ignore,
}

/// Options shared by create, update and patch.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    /// Who is writing, for admission.
    pub user: UserInfo,
    /// A server-side apply, which records its own field ownership.
    pub applying: bool,
    /// A write through a CertificateSigningRequest's `approval`
    /// subresource. The registry writes it as a [`Part::Status`] update
    /// (that is also what admission sees); the kind's update hook keeps
    /// of it only `status.conditions`, where a `status` write keeps
    /// everything but the Approved and Denied conditions.
    pub approval: bool,
    /// A write through the `scale` subresource: written as the main
    /// object, seen by admission as `scale`.
    pub scale: bool,
}

/// `DeleteOptions` as far as the registry acts on them.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub user: UserInfo,
    pub dry_run: bool,
    pub propagation: Option<Propagation>,
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

/// Which part of an object an update may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The object; `status` is kept as stored when the kind has a status
    /// subresource.
    Main,
    /// Only `status` (the `/status` subresource).
    Status,
    /// `pods/binding`: the main object, where `spec.nodeName` may be set
    /// once.
    Binding,
}

/// Read options for list and watch.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub label_selector: Option<LabelSelector>,
    pub field_selector: Option<FieldSelector>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}
