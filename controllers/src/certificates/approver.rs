//! The approver (kube-controller-manager's `csrapproving`): approves the
//! certificate requests a node may have without anyone looking.
//!
//! A request is recognized by its signer and shape ([`grants`]), which
//! name the permission its requester needs: `create` on
//! `certificatesigningrequests/selfnodeclient` (a node renewing its own
//! client certificate: the requester is the subject) or
//! `certificatesigningrequests/nodeclient` (a new node, asking with a join
//! token). The approver asks the API whether the requester (the
//! `spec.username`, `groups`, `uid` and `extra` the API server recorded)
//! holds one, with a SubjectAccessReview, and if so approves with the
//! condition `Approved`, reason `AutoApproved`. A request it does not
//! recognize, or whose requester lacks the permission, stays pending for
//! an administrator (`kubectl certificate approve|deny`).
//!
//! Recognized:
//!
//! * signer `kubernetes.io/kube-apiserver-client-kubelet`, the shape of a
//!   node client certificate ([`skiff_auth::csr::kubelet_client_problem`]):
//!   Kubernetes' two recognizers.
//! * a skiff choice: signer `kubernetes.io/kube-apiserver-client` for
//!   `CN=system:kube-proxy` with no organization and no alternative
//!   names, client usages only: the identity of a node's service proxy.
//!   The same two permissions get it approved, so whoever may have a node
//!   client certificate may have the proxy's. Kubernetes approves nothing
//!   for that signer on its own; kubeadm and k3s hand the proxy's
//!   credential to nodes by other means.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{PostParams, ResourceExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use skiff_auth::csr;

use super::{has_condition, issued, request_of, usages};
use crate::error::{Result, is_not_found};

/// The user a node's service proxy authenticates as.
pub const PROXY_USER: &str = "system:kube-proxy";

/// A permission that gets a request approved (`create` on
/// `certificatesigningrequests/<subresource>`), and the message the
/// approval carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub subresource: &'static str,
    pub message: &'static str,
}

const SELF_NODE_CLIENT: Grant = Grant {
    subresource: "selfnodeclient",
    message: "Auto approving self kubelet client certificate after SubjectAccessReview.",
};
const NODE_CLIENT: Grant = Grant {
    subresource: "nodeclient",
    message: "Auto approving kubelet client certificate after SubjectAccessReview.",
};
const PROXY_MESSAGE: &str = "Auto approving the service proxy's client certificate after SubjectAccessReview.";

/// The permissions, in the order tried, any of which gets `csr` approved;
/// none when the approver leaves it alone: decided or issued already, for
/// another signer, or of a shape it does not know.
pub fn grants(csr: &CertificateSigningRequest) -> Vec<Grant> {
    if issued(csr) || has_condition(csr, "Approved") || has_condition(csr, "Denied") {
        return Vec::new();
    }
    let Some(request) = request_of(csr) else {
        return Vec::new();
    };
    let usages = usages(csr);
    let requester = csr.spec.username.as_deref().unwrap_or_default();
    match csr.spec.signer_name.as_str() {
        csr::KUBE_APISERVER_CLIENT_KUBELET if csr::kubelet_client_problem(&request, &usages).is_none() => {
            if requester == request.common_name {
                vec![SELF_NODE_CLIENT, NODE_CLIENT]
            } else {
                vec![NODE_CLIENT]
            }
        }
        csr::KUBE_APISERVER_CLIENT
            if request.common_name == PROXY_USER
                && request.organizations.is_empty()
                && !request.has_alternative_names()
                && csr::apiserver_client_usages_problem(&usages).is_none() =>
        {
            [SELF_NODE_CLIENT, NODE_CLIENT]
                .map(|grant| Grant {
                    message: PROXY_MESSAGE,
                    ..grant
                })
                .to_vec()
        }
        _ => Vec::new(),
    }
}

struct Context {
    client: kube::Client,
}

/// Runs the approver until the client's watches end.
pub async fn run(client: kube::Client) {
    let context = Arc::new(Context { client: client.clone() });
    Controller::new(
        Api::<CertificateSigningRequest>::all(client),
        watcher::Config::default(),
    )
    .run(crate::metered("csr-approver", reconcile), crate::retry_later, context)
    .for_each(|result| async move { crate::log_outcome("csr-approver", result) })
    .await;
}

async fn reconcile(csr: Arc<CertificateSigningRequest>, ctx: Arc<Context>) -> Result<Action> {
    for grant in grants(&csr) {
        if !requester_may(&ctx.client, &csr, grant).await? {
            continue;
        }
        let mut approved = (*csr).clone();
        approved
            .status
            .get_or_insert_default()
            .conditions
            .get_or_insert_default()
            .push(CertificateSigningRequestCondition {
                type_: "Approved".into(),
                status: "True".into(),
                reason: Some("AutoApproved".into()),
                message: Some(grant.message.into()),
                last_update_time: Some(Time(Timestamp::now())),
                ..CertificateSigningRequestCondition::default()
            });
        let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
        return match api
            .replace_subresource("approval", &csr.name_any(), &PostParams::default(), &approved)
            .await
        {
            Ok(_) => {
                tracing::info!(csr = %csr.name_any(), grant = grant.subresource, "approved");
                Ok(Action::await_change())
            }
            Err(e) if is_not_found(&e) => Ok(Action::await_change()),
            Err(e) => Err(e.into()),
        };
    }
    Ok(Action::await_change())
}

/// Whether the requester of `csr` may `create` the subresource `grant`
/// names, as the API's authorizer decides.
async fn requester_may(client: &kube::Client, csr: &CertificateSigningRequest, grant: Grant) -> Result<bool> {
    let spec = &csr.spec;
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: spec.username.clone(),
            uid: spec.uid.clone(),
            groups: spec.groups.clone(),
            extra: spec.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("certificatesigningrequests".into()),
                subresource: Some(grant.subresource.into()),
                verb: Some("create".into()),
                version: Some("*".into()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let answered = reviews.create(&PostParams::default(), &review).await?;
    Ok(answered.status.is_some_and(|s| s.allowed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::certificates::v1::{CertificateSigningRequestSpec, CertificateSigningRequestStatus};

    fn request_pem(common_name: &str, organization: Option<&str>) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        if let Some(organization) = organization {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, organization);
        }
        params.serialize_request(&key).unwrap().pem().unwrap().into_bytes()
    }

    fn csr(signer: &str, subject: (&str, Option<&str>), usages: &[&str], requester: &str) -> CertificateSigningRequest {
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                request: ByteString(request_pem(subject.0, subject.1)),
                signer_name: signer.into(),
                usages: Some(usages.iter().map(|u| u.to_string()).collect()),
                username: Some(requester.into()),
                ..CertificateSigningRequestSpec::default()
            },
            ..CertificateSigningRequest::default()
        }
    }

    const NODE: (&str, Option<&str>) = ("system:node:n1", Some("system:nodes"));
    const CLIENT: &[&str] = &["digital signature", "client auth"];

    #[test]
    fn a_new_node_needs_nodeclient_and_a_renewal_selfnodeclient_too() {
        let kubelet = csr::KUBE_APISERVER_CLIENT_KUBELET;
        assert_eq!(
            grants(&csr(kubelet, NODE, CLIENT, "system:bootstrap:abcdef")),
            [NODE_CLIENT]
        );
        assert_eq!(
            grants(&csr(kubelet, NODE, CLIENT, "system:node:n1")),
            [SELF_NODE_CLIENT, NODE_CLIENT]
        );
    }

    #[test]
    fn other_shapes_and_signers_are_left_alone() {
        let kubelet = csr::KUBE_APISERVER_CLIENT_KUBELET;
        let token = "system:bootstrap:abcdef";
        for other in [
            csr(kubelet, ("system:node:n1", Some("system:masters")), CLIENT, token),
            csr(kubelet, ("jane", Some("system:nodes")), CLIENT, token),
            csr(
                kubelet,
                NODE,
                &["digital signature", "client auth", "server auth"],
                token,
            ),
            csr(kubelet, NODE, &["client auth"], token),
            csr("example.com/signer", NODE, CLIENT, token),
            csr(csr::KUBE_APISERVER_CLIENT, ("jane", None), CLIENT, token),
            csr(
                csr::KUBE_APISERVER_CLIENT,
                (PROXY_USER, Some("system:masters")),
                CLIENT,
                token,
            ),
        ] {
            assert_eq!(grants(&other), [], "{:?}", other.spec.signer_name);
        }
        let mut decided = csr(kubelet, NODE, CLIENT, token);
        decided.status = Some(CertificateSigningRequestStatus {
            conditions: Some(vec![CertificateSigningRequestCondition {
                type_: "Denied".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_eq!(grants(&decided), []);
    }

    #[test]
    fn the_proxy_identity_goes_with_a_node_identity() {
        let proxy = csr(
            csr::KUBE_APISERVER_CLIENT,
            (PROXY_USER, None),
            &["client auth"],
            "system:node:n1",
        );
        let found: Vec<&str> = grants(&proxy).iter().map(|g| g.subresource).collect();
        assert_eq!(found, ["selfnodeclient", "nodeclient"]);
    }
}
