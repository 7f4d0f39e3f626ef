//! The admission steps access control adds to every write:
//!
//! * [`Escalation`]: nobody grants, through a Role, ClusterRole or a
//!   binding, rights they do not hold themselves, unless RBAC gives them
//!   the `escalate` verb on the role (for roles) or `bind` on the role a
//!   binding names (for bindings), as kube-apiserver's RBAC storage
//!   checks.
//! * [`NodeRestriction`]: a node writes only its own Node and Lease and
//!   the pods bound to it.
//! * [`CertificateApproval`] and [`CertificateSigning`]: who approves or
//!   denies a CertificateSigningRequest needs `approve`, who issues its
//!   certificate `sign`, on the signer it names (resource `signers` of
//!   `certificates.k8s.io`, named after the signer or `<domain>/*`), as
//!   kube-apiserver's plugins of those names check.
//! * [`CertificateSubjectRestriction`]: no request to the signer
//!   `kubernetes.io/kube-apiserver-client` for a certificate in
//!   `system:masters`.
//!
//! * [`ScaleFromZero`]: the service proxy (`system:kube-proxy`), which
//!   may patch any `scale` subresource to wake a workload an autoscaler
//!   took to zero (`skiff_proxy::wake`), only takes one from zero
//!   replicas to one.
//!
//! Approvals reach admission as status writes (see
//! [`WriteOptions::approval`](crate::options::WriteOptions::approval)).
//! A status write keeps the stored Approved and Denied conditions, so a
//! write that changes them is an approval: that is what
//! [`CertificateApproval`] checks.

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};
use serde_json::Value;
use skiff_auth::node::{Operation as NodeOperation, restrict};
use skiff_auth::user::names;
use skiff_auth::{Attributes, Decision, ResourceAttributes, UserInfo};

use super::Authorizer;
use crate::admission::{Attributes as Admitted, BuiltinPlugin, Operation};
use crate::error::ApiError;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const CERTIFICATES_GROUP: &str = "certificates.k8s.io";

/// The RBAC escalation check.
#[derive(Debug, Clone)]
pub struct Escalation {
    pub authorizer: Authorizer,
}

impl Escalation {
    fn allowed(&self, user: &UserInfo, verb: &str, resource: &str, namespace: &str, name: &str) -> bool {
        let attributes = Attributes::resource(
            user.clone(),
            verb,
            ResourceAttributes {
                namespace: namespace.into(),
                group: RBAC_GROUP.into(),
                resource: resource.into(),
                name: name.into(),
                ..Default::default()
            },
        );
        self.authorizer.authorize(&attributes) == Decision::Allow
    }

    /// The rules a binding would grant: its role's, aggregation resolved.
    fn bound_rules(&self, role: &RoleRef, namespace: &str) -> Vec<PolicyRule> {
        let policy = self.authorizer.policy();
        match role.kind.as_str() {
            "ClusterRole" => policy.cluster_role(&role.name).map(<[_]>::to_vec).unwrap_or_default(),
            _ => policy
                .role(namespace, &role.name)
                .map(<[_]>::to_vec)
                .unwrap_or_default(),
        }
    }

    fn refuse(&self, attributes: &Admitted<'_>, user: &UserInfo, missing: &[PolicyRule]) -> ApiError {
        let rights: Vec<String> = missing.iter().map(describe).collect();
        ApiError::Forbidden(format!(
            "{}.{RBAC_GROUP} \"{}\" is forbidden: user \"{}\" (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{}",
            attributes.resource.plural,
            attributes.name,
            user.name,
            user.groups,
            rights.join("\n")
        ))
    }
}

/// A rule as kube-apiserver prints it in an escalation refusal.
fn describe(rule: &PolicyRule) -> String {
    let list = |v: &Option<Vec<String>>| {
        v.as_deref()
            .unwrap_or_default()
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if rule.non_resource_urls.is_some() {
        return format!(
            "{{NonResourceURLs:[{}], Verbs:[{}]}}",
            list(&rule.non_resource_urls),
            list(&Some(rule.verbs.clone()))
        );
    }
    let mut text = format!(
        "{{APIGroups:[{}], Resources:[{}]",
        list(&rule.api_groups),
        list(&rule.resources)
    );
    if rule.resource_names.is_some() {
        text.push_str(&format!(", ResourceNames:[{}]", list(&rule.resource_names)));
    }
    text.push_str(&format!(", Verbs:[{}]}}", list(&Some(rule.verbs.clone()))));
    text
}

impl BuiltinPlugin for Escalation {
    fn name(&self) -> &str {
        "RBACEscalation"
    }

    fn validate(&self, attributes: &Admitted<'_>, object: &Value, _old: Option<&Value>) -> Result<(), ApiError> {
        let resource = attributes.resource;
        if resource.group != RBAC_GROUP
            || attributes.operation == Operation::Delete
            || attributes.subresource.is_some()
            || attributes.user.in_group(names::MASTERS)
        {
            return Ok(());
        }
        let user = attributes.user;
        let namespace = attributes.namespace.unwrap_or_default();
        match resource.plural.as_str() {
            "roles" | "clusterroles" => {
                if self.allowed(user, "escalate", &resource.plural, namespace, attributes.name) {
                    return Ok(());
                }
                if object.get("aggregationRule").is_some_and(|a| !a.is_null()) {
                    return Err(ApiError::Forbidden(format!(
                        "clusterroles.{RBAC_GROUP} \"{}\" is forbidden: must have the escalate verb on clusterroles to use an aggregationRule",
                        attributes.name
                    )));
                }
                let rules: Vec<PolicyRule> = object
                    .get("rules")
                    .cloned()
                    .map(serde_json::from_value)
                    .transpose()
                    .map_err(|e| ApiError::BadRequest(format!("rules: {e}")))?
                    .unwrap_or_default();
                let held = self.authorizer.rules_for(user, namespace);
                skiff_auth::rbac::covers(&held, &rules).map_err(|missing| self.refuse(attributes, user, &missing))
            }
            "rolebindings" | "clusterrolebindings" => {
                let role: RoleRef = object
                    .get("roleRef")
                    .cloned()
                    .map(serde_json::from_value)
                    .transpose()
                    .map_err(|e| ApiError::BadRequest(format!("roleRef: {e}")))?
                    .unwrap_or_default();
                let role_resource = if role.kind == "ClusterRole" {
                    "clusterroles"
                } else {
                    "roles"
                };
                let role_namespace = if role.kind == "ClusterRole" { "" } else { namespace };
                // `bind` on a ClusterRole may be granted in the binding's
                // namespace, for RoleBindings.
                if self.allowed(user, "bind", role_resource, role_namespace, &role.name)
                    || (role.kind == "ClusterRole"
                        && !namespace.is_empty()
                        && self.allowed(user, "bind", role_resource, namespace, &role.name))
                {
                    return Ok(());
                }
                let rules = self.bound_rules(&role, namespace);
                let held = self.authorizer.rules_for(user, namespace);
                skiff_auth::rbac::covers(&held, &rules).map_err(|missing| self.refuse(attributes, user, &missing))
            }
            _ => Ok(()),
        }
    }
}

/// NodeRestriction.
#[derive(Debug, Clone, Copy)]
pub struct NodeRestriction;

impl BuiltinPlugin for NodeRestriction {
    fn name(&self) -> &str {
        "NodeRestriction"
    }

    fn validate(&self, attributes: &Admitted<'_>, object: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        let Some(node) = attributes.user.node_name() else {
            return Ok(());
        };
        let operation = match attributes.operation {
            Operation::Create => NodeOperation::Create,
            Operation::Update => NodeOperation::Update,
            Operation::Delete => NodeOperation::Delete,
        };
        let resource = ResourceAttributes {
            namespace: attributes.namespace.unwrap_or_default().into(),
            group: attributes.resource.group.clone(),
            resource: attributes.resource.plural.clone(),
            subresource: attributes.subresource.unwrap_or_default().into(),
            name: attributes.name.into(),
        };
        restrict(node, operation, &resource, Some(object), old).map_err(|reason| {
            ApiError::Forbidden(format!(
                "{} \"{}\" is forbidden: {reason}",
                attributes.resource.plural, attributes.name
            ))
        })
    }
}

/// Whether `user` may `verb` (`approve`, `sign`) for `signer`: the signer
/// by name, or every signer of its domain (`example.com/*`).
fn authorized_for_signer(authorizer: &Authorizer, user: &UserInfo, verb: &str, signer: &str) -> bool {
    let domain = signer.split('/').next().unwrap_or_default();
    [signer.to_string(), format!("{domain}/*")].into_iter().any(|name| {
        let attributes = Attributes::resource(
            user.clone(),
            verb,
            ResourceAttributes {
                group: CERTIFICATES_GROUP.into(),
                resource: "signers".into(),
                name,
                ..Default::default()
            },
        );
        authorizer.authorize(&attributes) == Decision::Allow
    })
}

/// A status write (or approval) of a CertificateSigningRequest: its
/// stored and its new state.
fn csr_status_write<'a>(
    attributes: &Admitted<'_>,
    object: &'a Value,
    old: Option<&'a Value>,
) -> Option<(&'a Value, &'a Value)> {
    let resource = attributes.resource;
    (resource.group == CERTIFICATES_GROUP
        && resource.plural == "certificatesigningrequests"
        && attributes.operation == Operation::Update
        && attributes.subresource == Some("status"))
    .then_some(())
    .and(old.map(|old| (old, object)))
}

fn signer_of(csr: &Value) -> &str {
    csr.pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn forbidden_csr(attributes: &Admitted<'_>, reason: impl std::fmt::Display) -> ApiError {
    ApiError::Forbidden(format!(
        "certificatesigningrequests.{CERTIFICATES_GROUP} \"{}\" is forbidden: {reason}",
        attributes.name
    ))
}

/// CertificateApproval: approving or denying needs `approve` on the signer.
#[derive(Debug, Clone)]
pub struct CertificateApproval {
    pub authorizer: Authorizer,
}

impl BuiltinPlugin for CertificateApproval {
    fn name(&self) -> &str {
        "CertificateApproval"
    }

    fn validate(&self, attributes: &Admitted<'_>, object: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        let Some((old, new)) = csr_status_write(attributes, object, old) else {
            return Ok(());
        };
        let decisions = |csr: &Value| -> Vec<Value> {
            csr.pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|c| matches!(c.get("type").and_then(Value::as_str), Some("Approved" | "Denied")))
                .cloned()
                .collect()
        };
        if decisions(old) == decisions(new)
            || authorized_for_signer(&self.authorizer, attributes.user, "approve", signer_of(old))
        {
            return Ok(());
        }
        Err(forbidden_csr(
            attributes,
            format!(
                "user not permitted to approve requests with signerName {:?}",
                signer_of(old)
            ),
        ))
    }
}

/// CertificateSigning: setting the certificate needs `sign` on the signer.
#[derive(Debug, Clone)]
pub struct CertificateSigning {
    pub authorizer: Authorizer,
}

impl BuiltinPlugin for CertificateSigning {
    fn name(&self) -> &str {
        "CertificateSigning"
    }

    fn validate(&self, attributes: &Admitted<'_>, object: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        let Some((old, new)) = csr_status_write(attributes, object, old) else {
            return Ok(());
        };
        let certificate = |csr: &Value| csr.pointer("/status/certificate").cloned();
        if certificate(old) == certificate(new)
            || authorized_for_signer(&self.authorizer, attributes.user, "sign", signer_of(old))
        {
            return Ok(());
        }
        Err(forbidden_csr(
            attributes,
            format!(
                "user not permitted to sign requests with signerName {:?}",
                signer_of(old)
            ),
        ))
    }
}

/// CertificateSubjectRestriction: the API-client signer issues no
/// certificate in `system:masters`, which would bypass authorization.
#[derive(Debug, Clone, Copy)]
pub struct CertificateSubjectRestriction;

impl BuiltinPlugin for CertificateSubjectRestriction {
    fn name(&self) -> &str {
        "CertificateSubjectRestriction"
    }

    fn validate(&self, attributes: &Admitted<'_>, object: &Value, _old: Option<&Value>) -> Result<(), ApiError> {
        let resource = attributes.resource;
        if resource.group != CERTIFICATES_GROUP
            || resource.plural != "certificatesigningrequests"
            || attributes.operation != Operation::Create
            || signer_of(object) != skiff_auth::csr::KUBE_APISERVER_CLIENT
        {
            return Ok(());
        }
        let Some(pem) = crate::kinds::certificate_signing_request::request_pem(object) else {
            return Ok(());
        };
        // A request that does not parse is refused by validation already.
        let Ok(request) = skiff_auth::csr::Request::parse_pem(&pem) else {
            return Ok(());
        };
        if request.organizations.iter().any(|o| o == names::MASTERS) {
            return Err(forbidden_csr(
                attributes,
                format!(
                    "use of {} signer with {} group is not allowed",
                    skiff_auth::csr::KUBE_APISERVER_CLIENT,
                    names::MASTERS
                ),
            ));
        }
        Ok(())
    }
}

/// The service proxy scales only from zero to one.
#[derive(Debug, Clone, Copy)]
pub struct ScaleFromZero;

impl BuiltinPlugin for ScaleFromZero {
    fn name(&self) -> &str {
        "ScaleFromZero"
    }

    fn validate(&self, attributes: &Admitted<'_>, object: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        if attributes.user.name != names::KUBE_PROXY || attributes.subresource != Some("scale") {
            return Ok(());
        }
        let Some(paths) = &attributes.resource.subresources.scale else {
            return Ok(());
        };
        let pointer = format!("/{}", paths.spec_replicas.replace('.', "/"));
        let replicas = |o: Option<&Value>| o.and_then(|o| o.pointer(&pointer)).and_then(Value::as_i64);
        match (replicas(old), replicas(Some(object))) {
            (Some(0) | None, Some(1)) => Ok(()),
            (before, after) => Err(ApiError::Forbidden(format!(
                "{} \"{}\" is forbidden: the service proxy may only scale a workload from 0 replicas to 1, not from {} to {}",
                attributes.resource.plural,
                attributes.name,
                before.unwrap_or(0),
                after.unwrap_or(0)
            ))),
        }
    }
}
