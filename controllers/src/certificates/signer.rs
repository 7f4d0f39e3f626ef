//! The signer (kube-controller-manager's `csrsigning`): issues the
//! certificates of approved requests to the signers
//! `kubernetes.io/kube-apiserver-client-kubelet` and
//! `kubernetes.io/kube-apiserver-client`, with the cluster CA.
//!
//! [`decide`] says what to do with a request: leave it (not approved,
//! failed, issued, another signer's), fail it (approved but not of a
//! shape its signer issues: condition `Failed`, reason
//! `SignerValidationFailure`), or sign it for a validity: a year
//! ([`DEFAULT_VALIDITY`], kube-controller-manager's
//! `--cluster-signing-duration`), or what `spec.expirationSeconds` asks
//! if shorter, but no less than ten minutes. The certificate goes into
//! `status.certificate` through the `status` subresource.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{PostParams, ResourceExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use skiff_auth::csr;

use super::{Authority, has_condition, issued, request_of, usages};
use crate::error::{Result, is_not_found};

/// How long a certificate is valid unless the request asks for less.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// The shortest validity issued, whatever the request asks.
pub const SHORTEST_VALIDITY: Duration = Duration::from_secs(10 * 60);

/// What the signer does with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Leave,
    /// Mark it failed, for this reason.
    Fail(String),
    Sign {
        valid_for: Duration,
    },
}

/// What to do with `csr`.
pub fn decide(csr: &CertificateSigningRequest) -> Decision {
    let approved = has_condition(csr, "Approved") && !has_condition(csr, "Denied");
    if !approved || has_condition(csr, "Failed") || issued(csr) {
        return Decision::Leave;
    }
    let signer = csr.spec.signer_name.as_str();
    if signer != csr::KUBE_APISERVER_CLIENT_KUBELET && signer != csr::KUBE_APISERVER_CLIENT {
        return Decision::Leave;
    }
    let Some(request) = request_of(csr) else {
        return Decision::Fail("the certificate request does not parse".into());
    };
    let usages = usages(csr);
    let problem = if signer == csr::KUBE_APISERVER_CLIENT_KUBELET {
        csr::kubelet_client_problem(&request, &usages)
    } else {
        csr::apiserver_client_usages_problem(&usages)
    };
    if let Some(problem) = problem {
        return Decision::Fail(problem);
    }
    let asked = csr
        .spec
        .expiration_seconds
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)));
    let valid_for = asked
        .unwrap_or(DEFAULT_VALIDITY)
        .clamp(SHORTEST_VALIDITY, DEFAULT_VALIDITY);
    Decision::Sign { valid_for }
}

struct Context {
    client: kube::Client,
    authority: Authority,
}

/// Runs the signer until the client's watches end.
pub async fn run(client: kube::Client, authority: Authority) {
    let context = Arc::new(Context {
        client: client.clone(),
        authority,
    });
    Controller::new(
        Api::<CertificateSigningRequest>::all(client),
        watcher::Config::default(),
    )
    .run(crate::metered("csr-signer", reconcile), crate::retry_later, context)
    .for_each(|result| async move { crate::log_outcome("csr-signer", result) })
    .await;
}

async fn reconcile(csr: Arc<CertificateSigningRequest>, ctx: Arc<Context>) -> Result<Action> {
    let mut next = (*csr).clone();
    let status = next.status.get_or_insert_default();
    match decide(&csr) {
        Decision::Leave => return Ok(Action::await_change()),
        Decision::Fail(reason) => {
            tracing::info!(csr = %csr.name_any(), %reason, "refusing to sign");
            status
                .conditions
                .get_or_insert_default()
                .push(CertificateSigningRequestCondition {
                    type_: "Failed".into(),
                    status: "True".into(),
                    reason: Some("SignerValidationFailure".into()),
                    message: Some(reason),
                    last_update_time: Some(Time(Timestamp::now())),
                    ..CertificateSigningRequestCondition::default()
                });
        }
        Decision::Sign { valid_for } => {
            let request = String::from_utf8_lossy(&csr.spec.request.0).into_owned();
            match ctx.authority.sign(&request, valid_for) {
                Ok(certificate) => status.certificate = Some(ByteString(certificate.into_bytes())),
                // The request parsed, so the CA cannot sign: nothing a retry
                // of this request would change soon.
                Err(error) => {
                    tracing::error!(csr = %csr.name_any(), %error, "cannot sign");
                    return Ok(Action::requeue(Duration::from_secs(60)));
                }
            }
        }
    }
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    match api.replace_status(&csr.name_any(), &PostParams::default(), &next).await {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::{CertificateSigningRequestSpec, CertificateSigningRequestStatus};

    fn request_pem(common_name: &str, organization: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, organization);
        params.serialize_request(&key).unwrap().pem().unwrap().into_bytes()
    }

    fn approved(signer: &str, organization: &str, expiration: Option<i32>) -> CertificateSigningRequest {
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                request: ByteString(request_pem("system:node:n1", organization)),
                signer_name: signer.into(),
                usages: Some(vec!["digital signature".into(), "client auth".into()]),
                expiration_seconds: expiration,
                ..CertificateSigningRequestSpec::default()
            },
            status: Some(CertificateSigningRequestStatus {
                conditions: Some(vec![CertificateSigningRequestCondition {
                    type_: "Approved".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..CertificateSigningRequest::default()
        }
    }

    #[test]
    fn approved_requests_of_its_signers_are_signed_for_a_year_or_less() {
        let kubelet = csr::KUBE_APISERVER_CLIENT_KUBELET;
        assert_eq!(
            decide(&approved(kubelet, "system:nodes", None)),
            Decision::Sign {
                valid_for: DEFAULT_VALIDITY
            }
        );
        assert_eq!(
            decide(&approved(kubelet, "system:nodes", Some(3600))),
            Decision::Sign {
                valid_for: Duration::from_secs(3600)
            }
        );
        assert_eq!(
            decide(&approved(kubelet, "system:nodes", Some(i32::MAX))),
            Decision::Sign {
                valid_for: DEFAULT_VALIDITY
            }
        );
        assert_eq!(
            decide(&approved(kubelet, "system:nodes", Some(60))),
            Decision::Sign {
                valid_for: SHORTEST_VALIDITY
            }
        );
    }

    #[test]
    fn others_are_left_or_failed() {
        let kubelet = csr::KUBE_APISERVER_CLIENT_KUBELET;
        assert_eq!(
            decide(&approved("example.com/signer", "system:nodes", None)),
            Decision::Leave
        );
        assert!(matches!(
            decide(&approved(kubelet, "system:masters", None)),
            Decision::Fail(_)
        ));
        let mut pending = approved(kubelet, "system:nodes", None);
        pending.status = None;
        assert_eq!(decide(&pending), Decision::Leave);
        let mut issued = approved(kubelet, "system:nodes", None);
        issued.status.as_mut().unwrap().certificate = Some(ByteString(b"x".to_vec()));
        assert_eq!(decide(&issued), Decision::Leave);
    }
}
