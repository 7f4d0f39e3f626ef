//! Who is asking, and may they: the first two links of the chain every
//! request passes, authentication → authorization → admission → registry.
//!
//! * [`authenticate`]: a chain of authenticators, as kube-apiserver's:
//!   x509 client certificates the cluster CA signed (the TLS listener
//!   verifies them and hands the leaf over as a [`ClientCertificate`]),
//!   static bearer tokens, bootstrap (join) tokens kept as Secrets in
//!   `kube-system`, and ServiceAccount JWTs, checked against the objects
//!   they are bound to. No credentials make the user `system:anonymous`;
//!   bad ones are refused with 401 before anything else happens. The
//!   objects tokens are bound to are checked against a followed view
//!   ([`liveness`]), not read per request.
//! * [`impersonate`]: the `Impersonate-User`, `-Group`, `-Uid` and `-Extra-*`
//!   headers, each authorized with the `impersonate` verb.
//! * [`builtin`]: the admission steps of access control: the RBAC
//!   escalation check and NodeRestriction.
//! * [`service_account`]: the ServiceAccount admission step (a pod's
//!   account, and its token volume).
//! * [`reconcile`]: puts the bootstrap roles and bindings in the store
//!   on start.
//! * [`authorize`]: `system:masters`, then the Node authorizer, then RBAC,
//!   all answered from snapshots that [`follow`] keeps in step with the
//!   store; nothing else.
//!
//! The decisions themselves are pure and live in the `skiff-auth` crate;
//! this module feeds them and applies them to HTTP.

pub mod authenticate;
pub mod authorize;
pub mod builtin;
mod follow;
pub mod impersonate;
pub mod liveness;
pub mod reconcile;
pub mod service_account;

pub use authenticate::{Authentication, ClientCertificate, Outcome};
pub use authorize::Authorizer;
pub use skiff_auth::token::DEFAULT_ISSUER;
pub use skiff_auth::{Attributes, Decision, ResourceAttributes, Target, UserInfo};

use crate::request::ResourceRequest;

/// The authorizer's view of a resource request made by `user`. A request
/// for a namespace object is in that namespace, as kube-apiserver's
/// request info says, so a namespace's RoleBindings cover reading it.
pub fn attributes(user: &UserInfo, request: &ResourceRequest) -> Attributes {
    Attributes::resource(user.clone(), request.verb.as_str(), resource_attributes(request))
}

/// The resource a request names, as authorization (and auditing) see it.
pub fn resource_attributes(request: &ResourceRequest) -> ResourceAttributes {
    let namespace = match (&request.namespace, request.group.as_str(), request.resource.as_str()) {
        (Some(ns), _, _) => ns.clone(),
        (None, "", "namespaces") => request.name.clone().unwrap_or_default(),
        (None, _, _) => String::new(),
    };
    ResourceAttributes {
        namespace,
        group: request.group.clone(),
        resource: request.resource.clone(),
        subresource: request.subresource.clone().unwrap_or_default(),
        name: request.name.clone().unwrap_or_default(),
    }
}

/// The Forbidden message kube-apiserver writes, e.g. `pods "p" is
/// forbidden: User "jane" cannot get resource "pods" in API group "" in
/// the namespace "a"`, with the authorizer's reason after a colon.
pub fn forbidden_message(attributes: &Attributes, reason: &str) -> String {
    let subject = match &attributes.target {
        Target::Resource(r) => {
            let what = if r.group.is_empty() {
                r.combined()
            } else {
                format!("{}.{}", r.combined(), r.group)
            };
            if r.name.is_empty() {
                format!("{what} is forbidden")
            } else {
                format!("{what} \"{}\" is forbidden", r.name)
            }
        }
        Target::NonResource(_) => "forbidden".to_string(),
    };
    let mut message = format!("{subject}: {}", attributes.refusal());
    if !reason.is_empty() {
        message.push_str(": ");
        message.push_str(reason);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_read_as_kubernetes_writes_them() {
        let request = crate::request::parse(&http::Method::GET, "/api/v1/namespaces/a/pods/p", false).unwrap();
        let attributes = attributes(&UserInfo::anonymous(), &request);
        assert_eq!(
            forbidden_message(&attributes, ""),
            "pods \"p\" is forbidden: User \"system:anonymous\" cannot get resource \"pods\" in API group \"\" in the namespace \"a\""
        );
        let request = crate::request::parse(&http::Method::GET, "/apis/apps/v1/deployments", false).unwrap();
        let attributes = super::attributes(&UserInfo::new("jane", ["g"]), &request);
        assert_eq!(
            forbidden_message(&attributes, "RBAC: nope"),
            "deployments.apps is forbidden: User \"jane\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope: RBAC: nope"
        );
    }
}
