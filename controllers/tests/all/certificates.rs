//! CertificateSigningRequests: a node joining with a join token has its
//! client certificate approved and issued, and the certificate
//! authenticates as the node; what does not fit is left for an
//! administrator; bodies that are not requests are refused.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestSpec};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use skiff_testing::Credential;

use crate::support::{Cluster, until};

const KUBELET: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const CLIENT: &str = "kubernetes.io/kube-apiserver-client";

/// A key and a request (PEM) for `common_name` in `organization`.
fn request(common_name: &str, organization: Option<&str>) -> (rcgen::KeyPair, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    if let Some(organization) = organization {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, organization);
    }
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    (key, pem)
}

fn csr(name: &str, pem: &str, signer: &str, usages: &[&str]) -> CertificateSigningRequest {
    CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(pem.as_bytes().to_vec()),
            signer_name: signer.into(),
            usages: Some(usages.iter().map(|u| u.to_string()).collect()),
            // Set by the server from whoever creates the request.
            username: Some("system:masters-impostor".into()),
            groups: Some(vec!["system:masters".into()]),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    }
}

/// A join token, as `skiff token create` makes it.
async fn join_token(client: &kube::Client) -> String {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    let (id, secret) = ("abcdef", "0123456789abcdef");
    let data = BTreeMap::from([
        ("token-id".to_string(), id.to_string()),
        ("token-secret".to_string(), secret.to_string()),
        ("usage-bootstrap-authentication".to_string(), "true".to_string()),
        (
            "auth-extra-groups".to_string(),
            "system:bootstrappers:skiff:default-node-token".to_string(),
        ),
    ]);
    let object = Secret {
        metadata: ObjectMeta {
            name: Some(format!("bootstrap-token-{id}")),
            ..ObjectMeta::default()
        },
        type_: Some("bootstrap.kubernetes.io/token".into()),
        string_data: Some(data),
        ..Secret::default()
    };
    secrets.create(&PostParams::default(), &object).await.unwrap();
    format!("{id}.{secret}")
}

/// Waits until `name` is issued; returns its certificate (PEM).
async fn issued(api: &Api<CertificateSigningRequest>, name: &str) -> String {
    until(&format!("{name} to be issued"), || async {
        let csr = api.get(name).await.ok()?;
        let certificate = csr.status?.certificate?;
        Some(String::from_utf8(certificate.0).unwrap())
    })
    .await
}

fn condition(csr: &CertificateSigningRequest, kind: &str) -> Option<String> {
    csr.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.reason.clone().unwrap_or_default())
}

/// Who `client` authenticates as: user name and groups.
async fn whoami(client: &kube::Client) -> (String, Vec<String>) {
    let reviews: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = reviews
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let user = review.status.unwrap().user_info.unwrap();
    (user.username.unwrap(), user.groups.unwrap_or_default())
}

#[tokio::test]
async fn a_joining_node_is_approved_and_issued_what_fits_and_nothing_else() {
    let cluster = Cluster::start().await;
    let admin = cluster.client();
    let token = join_token(&admin).await;
    let joining = cluster.api.client_with(&Credential::Token(&token)).await.unwrap();
    let as_token: Api<CertificateSigningRequest> = Api::all(joining.clone());

    // What does not fit a node's client certificate, asked first.
    let node_usages = ["digital signature", "client auth"];
    let (_, masters) = request("system:node:n1", Some("system:masters"));
    let (_, server) = request("system:node:n1", Some("system:nodes"));
    let (_, jane) = request("jane", None);
    for (name, pem, signer, usages) in [
        ("masters", &masters, KUBELET, &node_usages[..]),
        ("serving", &server, KUBELET, &["digital signature", "server auth"][..]),
        ("jane", &jane, CLIENT, &["client auth"][..]),
    ] {
        as_token
            .create(&PostParams::default(), &csr(name, pem, signer, usages))
            .await
            .unwrap();
    }
    // Then the node's.
    let (key, pem) = request("system:node:n1", Some("system:nodes"));
    let created = as_token
        .create(&PostParams::default(), &csr("node-n1", &pem, KUBELET, &node_usages))
        .await
        .unwrap();
    assert_eq!(created.spec.username.as_deref(), Some("system:bootstrap:abcdef"));
    assert!(
        created
            .spec
            .groups
            .unwrap()
            .contains(&"system:bootstrappers".to_string())
    );
    let certificate = issued(&as_token, "node-n1").await;
    let approved = as_token.get("node-n1").await.unwrap();
    assert_eq!(condition(&approved, "Approved").as_deref(), Some("AutoApproved"));

    // The certificate authenticates as the node.
    let node = cluster
        .api
        .client_with(&Credential::Certificate {
            cert_pem: &certificate,
            key_pem: &key.serialize_pem(),
        })
        .await
        .unwrap();
    let (user, groups) = whoami(&node).await;
    assert_eq!(user, "system:node:n1");
    assert!(groups.contains(&"system:nodes".to_string()), "{groups:?}");

    // Processed before the node's, the others stay pending.
    for name in ["masters", "serving", "jane"] {
        let pending = as_token.get(name).await.unwrap();
        assert_eq!(condition(&pending, "Approved"), None, "{name}");
        assert!(pending.status.and_then(|s| s.certificate).is_none(), "{name}");
    }

    // The node renews its own certificate, and gets its proxy's; it may
    // not have another node's.
    let as_node: Api<CertificateSigningRequest> = Api::all(node.clone());
    let (_, other) = request("system:node:n2", Some("system:nodes"));
    as_node
        .create(&PostParams::default(), &csr("node-n2", &other, KUBELET, &node_usages))
        .await
        .unwrap();
    let (_, renewal) = request("system:node:n1", Some("system:nodes"));
    as_node
        .create(&PostParams::default(), &csr("renewal", &renewal, KUBELET, &node_usages))
        .await
        .unwrap();
    let (proxy_key, proxy) = request("system:kube-proxy", None);
    as_node
        .create(&PostParams::default(), &csr("proxy", &proxy, CLIENT, &node_usages))
        .await
        .unwrap();
    issued(&as_node, "renewal").await;
    let proxy_certificate = issued(&as_node, "proxy").await;
    let (user, _) = whoami(
        &cluster
            .api
            .client_with(&Credential::Certificate {
                cert_pem: &proxy_certificate,
                key_pem: &proxy_key.serialize_pem(),
            })
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(user, "system:kube-proxy");
    let another = as_node.get("node-n2").await.unwrap();
    assert_eq!(condition(&another, "Approved"), None);
}

#[tokio::test]
async fn bad_requests_are_invalid_and_approving_takes_the_signers_approve() {
    let cluster = Cluster::start().await;
    let admin = cluster.client();
    let csrs: Api<CertificateSigningRequest> = Api::all(admin.clone());
    let invalid = |e: kube::Error| match e {
        kube::Error::Api(status) => (status.code, status.reason, status.message),
        other => panic!("{other}"),
    };

    let not_a_request = csr("junk", "hello", "example.com/signer", &["client auth"]);
    let (code, reason, message) = invalid(csrs.create(&PostParams::default(), &not_a_request).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (422, "Invalid"), "{message}");
    assert!(message.contains("spec.request"), "{message}");
    let (_, pem) = request("jane", None);
    let mut unsigned = csr("unsigned", &pem, "", &[]);
    unsigned.spec.usages = None;
    let (code, _, message) = invalid(csrs.create(&PostParams::default(), &unsigned).await.unwrap_err());
    assert_eq!(code, 422, "{message}");
    assert!(
        message.contains("spec.signerName: Required value") && message.contains("spec.usages: Required value"),
        "{message}"
    );
    // The API-client signer issues no system:masters certificates.
    let (_, masters) = request("mallory", Some("system:masters"));
    let (code, _, message) = invalid(
        csrs.create(
            &PostParams::default(),
            &csr("masters", &masters, CLIENT, &["client auth"]),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 403, "{message}");

    // Jane may update approvals, but approve for no signer.
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    roles
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: ObjectMeta {
                    name: Some("csr-approval-writer".into()),
                    ..ObjectMeta::default()
                },
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec!["certificates.k8s.io".into()]),
                    resources: Some(vec![
                        "certificatesigningrequests".into(),
                        "certificatesigningrequests/approval".into(),
                    ]),
                    verbs: vec!["get".into(), "update".into()],
                    ..PolicyRule::default()
                }]),
                ..ClusterRole::default()
            },
        )
        .await
        .unwrap();
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    bindings
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some("jane-approves".into()),
                    ..ObjectMeta::default()
                },
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "ClusterRole".into(),
                    name: "csr-approval-writer".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "User".into(),
                    name: "jane".into(),
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .unwrap();
    let (_, pem) = request("bob", None);
    let mut pending = csrs
        .create(
            &PostParams::default(),
            &csr("bob", &pem, "example.com/signer", &["client auth"]),
        )
        .await
        .unwrap();
    pending
        .status
        .get_or_insert_default()
        .conditions
        .get_or_insert_default()
        .push(k8s_openapi::api::certificates::v1::CertificateSigningRequestCondition {
            type_: "Approved".into(),
            status: "True".into(),
            reason: Some("Test".into()),
            ..Default::default()
        });
    let jane: Api<CertificateSigningRequest> = Api::all(cluster.api.impersonating("jane", &[]).await.unwrap());
    let (code, _, message) = invalid(
        jane.replace_subresource("approval", "bob", &PostParams::default(), &pending)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("user not permitted to approve requests with signerName \"example.com/signer\""),
        "{message}"
    );
    // Through status, an approval is dropped; through approval, the admin's
    // stands, and the signature only counts there.
    let unchanged = csrs
        .replace_status("bob", &PostParams::default(), &pending)
        .await
        .unwrap();
    assert_eq!(condition(&unchanged, "Approved"), None);
    pending.metadata.resource_version = unchanged.metadata.resource_version.clone();
    let approved = csrs
        .replace_subresource("approval", "bob", &PostParams::default(), &pending)
        .await
        .unwrap();
    assert_eq!(condition(&approved, "Approved").as_deref(), Some("Test"));
    assert_eq!(approved.spec, pending.spec);
}
