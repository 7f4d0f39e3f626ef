//! CertificateSigningRequests: the approver and the signer, as
//! kube-controller-manager's `csrapproving` and `csrsigning` controllers
//! run them, for the two signers node agents use.
//!
//! * [`approver`] approves what a node may have without anyone looking:
//!   a node's client certificate, asked for with a join token or by the
//!   node renewing its own (`kubernetes.io/kube-apiserver-client-kubelet`),
//!   and, a skiff choice, the service proxy's client certificate
//!   (`kubernetes.io/kube-apiserver-client`, `CN=system:kube-proxy`) for
//!   whoever may have the former. It asks the API whether the requester
//!   may (a SubjectAccessReview), as Kubernetes does.
//! * [`signer`] issues the certificates of approved requests to those two
//!   signers with the cluster CA, which `skiff server` hands in as an
//!   [`Authority`].
//!
//! What each decides is a pure function ([`approver::grants`],
//! [`signer::decide`]); the reconciles do the API calls.

pub mod approver;
pub mod signer;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestCondition};
use skiff_auth::csr::Request;

/// Signs a request (PEM) for a validity from now: the certificate (PEM),
/// or why not.
type Sign = dyn Fn(&str, Duration) -> Result<String, String> + Send + Sync;

/// Issues client certificates with the cluster CA: the certificate (PEM)
/// for a request (PEM), valid for the duration given from now, or why not.
#[derive(Clone)]
pub struct Authority(Arc<Sign>);

impl Authority {
    pub fn new(sign: impl Fn(&str, Duration) -> Result<String, String> + Send + Sync + 'static) -> Authority {
        Authority(Arc::new(sign))
    }

    fn sign(&self, request_pem: &str, valid_for: Duration) -> Result<String, String> {
        (self.0)(request_pem, valid_for)
    }
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

/// The PKCS#10 request of `csr`, read; `None` when it does not parse
/// (which validation refuses on create).
fn request_of(csr: &CertificateSigningRequest) -> Option<Request> {
    Request::parse_pem(&csr.spec.request.0).ok()
}

fn conditions(csr: &CertificateSigningRequest) -> &[CertificateSigningRequestCondition] {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

/// Whether `csr` has a condition of type `kind` that is true.
fn has_condition(csr: &CertificateSigningRequest, kind: &str) -> bool {
    conditions(csr).iter().any(|c| c.type_ == kind && c.status == "True")
}

/// Whether `csr` was issued its certificate.
fn issued(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

fn usages(csr: &CertificateSigningRequest) -> Vec<String> {
    csr.spec.usages.clone().unwrap_or_default()
}
