//! Certificate signing requests as the access model reads them.
//!
//! A `certificates.k8s.io/v1` CertificateSigningRequest carries a PKCS#10
//! request (PEM) and names a signer. Once signed by the cluster CA, the
//! certificate authenticates as its subject: the common name is the user,
//! the organizations its groups. So what a request asks for *is* an
//! identity, and deciding whether to grant it is an access decision:
//!
//! * [`Request::parse_pem`] reads the request as kube-apiserver's
//!   `ParseCSR` does (the first PEM block, which must be a `CERTIFICATE
//!   REQUEST`, with a valid signature) into the parts a decision needs:
//!   subject and subject alternative names.
//! * [`kubelet_client_problem`] is Kubernetes' `ValidateKubeletClientCSR`:
//!   the shape of a node's client certificate request for the signer
//!   [`KUBE_APISERVER_CLIENT_KUBELET`], which the approver and the signer
//!   both check.
//! * [`apiserver_client_usages_problem`] is the signer
//!   [`KUBE_APISERVER_CLIENT`]'s check of the usages asked for.
//! * [`check_certificates_pem`] is what `status.certificate` must hold.
//!
//! Nothing here does I/O; the API server validates with it, the
//! controllers approve and sign with it.

use std::collections::BTreeSet;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// The signer of node (kubelet) client certificates.
pub const KUBE_APISERVER_CLIENT_KUBELET: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The signer of client certificates for the API server in general.
pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";

/// The key usages `spec.usages` may name, as `certificates.k8s.io/v1`
/// lists them.
pub const KNOWN_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// Why a request cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    #[error("PEM block type must be CERTIFICATE REQUEST")]
    NotARequest,
    #[error("{0}")]
    Malformed(String),
    #[error("the certificate request's signature does not verify")]
    BadSignature,
}

/// A parsed PKCS#10 request: what a certificate signed from it would say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// The subject's common name (empty when it has none).
    pub common_name: String,
    /// The subject's organizations, in order.
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub email_addresses: Vec<String>,
    /// IP address SANs, as their raw octets.
    pub ip_addresses: Vec<Vec<u8>>,
    pub uris: Vec<String>,
}

impl Request {
    /// Reads the first PEM block of `pem`, which must be a `CERTIFICATE
    /// REQUEST` whose signature verifies with its own public key.
    pub fn parse_pem(pem: &[u8]) -> Result<Request, CsrError> {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| CsrError::NotARequest)?;
        if block.label != "CERTIFICATE REQUEST" {
            return Err(CsrError::NotARequest);
        }
        let (_, request) = X509CertificationRequest::from_der(&block.contents)
            .map_err(|e| CsrError::Malformed(format!("x509: malformed certificate request: {e}")))?;
        request.verify_signature().map_err(|_| CsrError::BadSignature)?;
        let subject = &request.certification_request_info.subject;
        let mut parsed = Request {
            common_name: subject
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .unwrap_or_default()
                .to_string(),
            organizations: subject
                .iter_organization()
                .filter_map(|o| o.as_str().ok())
                .map(String::from)
                .collect(),
            ..Request::default()
        };
        for extension in request.requested_extensions().into_iter().flatten() {
            let ParsedExtension::SubjectAlternativeName(names) = extension else {
                continue;
            };
            for name in &names.general_names {
                match name {
                    GeneralName::DNSName(dns) => parsed.dns_names.push((*dns).to_string()),
                    GeneralName::RFC822Name(email) => parsed.email_addresses.push((*email).to_string()),
                    GeneralName::IPAddress(ip) => parsed.ip_addresses.push(ip.to_vec()),
                    GeneralName::URI(uri) => parsed.uris.push((*uri).to_string()),
                    _ => {}
                }
            }
        }
        Ok(parsed)
    }

    /// Whether the request names any subject alternative name.
    pub fn has_alternative_names(&self) -> bool {
        !(self.dns_names.is_empty()
            && self.email_addresses.is_empty()
            && self.ip_addresses.is_empty()
            && self.uris.is_empty())
    }
}

/// Why `request` with `usages` is not a node's client certificate
/// request (Kubernetes' `ValidateKubeletClientCSR`); `None` if it is: the
/// subject `CN=system:node:<name>, O=system:nodes`, no alternative names,
/// and the usages exactly {digital signature, client auth}, optionally
/// with key encipherment (which only RSA keys use).
pub fn kubelet_client_problem(request: &Request, usages: &[String]) -> Option<String> {
    if request.organizations != ["system:nodes"] {
        return Some("subject organization is not system:nodes".into());
    }
    if !request.dns_names.is_empty() {
        return Some("DNS subjectAltNames are not allowed".into());
    }
    if !request.email_addresses.is_empty() {
        return Some("Email subjectAltNames are not allowed".into());
    }
    if !request.ip_addresses.is_empty() {
        return Some("IP subjectAltNames are not allowed".into());
    }
    if !request.uris.is_empty() {
        return Some("URI subjectAltNames are not allowed".into());
    }
    if !request.common_name.starts_with("system:node:") {
        return Some("subject common name does not begin with system:node:".into());
    }
    let usages: BTreeSet<&str> = usages.iter().map(String::as_str).collect();
    let without_rsa = BTreeSet::from(["digital signature", "client auth"]);
    let with_rsa = BTreeSet::from(["digital signature", "key encipherment", "client auth"]);
    if usages != without_rsa && usages != with_rsa {
        return Some("usages did not match [client auth digital signature key encipherment]".into());
    }
    None
}

/// Why `usages` do not fit a client certificate for the API server (the
/// signer [`KUBE_APISERVER_CLIENT`]'s check); `None` if they do: client
/// auth, and besides it at most digital signature and key encipherment.
pub fn apiserver_client_usages_problem(usages: &[String]) -> Option<String> {
    for usage in usages {
        if !matches!(usage.as_str(), "digital signature" | "key encipherment" | "client auth") {
            return Some(format!("invalid usage for client certificate: {usage}"));
        }
    }
    if !usages.iter().any(|u| u == "client auth") {
        return Some("missing required usage for client certificate: client auth".into());
    }
    None
}

/// Checks that `pem` is one or more `CERTIFICATE` blocks, each holding a
/// certificate that parses: what `status.certificate` of a
/// CertificateSigningRequest must hold. Empty is allowed.
pub fn check_certificates_pem(pem: &[u8]) -> Result<(), String> {
    if pem.is_empty() {
        return Ok(());
    }
    let mut blocks = 0;
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = match block {
            Ok(block) => block,
            // Text after the last block.
            Err(x509_parser::error::PEMError::MissingHeader) => break,
            Err(e) => return Err(format!("PEM does not decode: {e}")),
        };
        if block.label != "CERTIFICATE" {
            return Err(format!(
                "only CERTIFICATE PEM blocks are allowed, found {:?}",
                block.label
            ));
        }
        x509_parser::parse_x509_certificate(&block.contents).map_err(|e| format!("x509: {e}"))?;
        blocks += 1;
    }
    if blocks == 0 {
        return Err("must contain at least one CERTIFICATE PEM block".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real request for `common_name` in `organization`, with `dns` as
    /// alternative names.
    fn request_pem(common_name: &str, organization: Option<&str>, dns: &[&str]) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        if let Some(organization) = organization {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, organization);
        }
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn requests_parse_into_subject_and_names() {
        let pem = request_pem("system:node:n1", Some("system:nodes"), &["n1.example"]);
        let request = Request::parse_pem(pem.as_bytes()).unwrap();
        assert_eq!(request.common_name, "system:node:n1");
        assert_eq!(request.organizations, ["system:nodes"]);
        assert_eq!(request.dns_names, ["n1.example"]);
        assert!(request.has_alternative_names());
    }

    #[test]
    fn what_is_not_a_request_is_refused() {
        assert!(matches!(Request::parse_pem(b"hello"), Err(CsrError::NotARequest)));
        let certificate = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            Request::parse_pem(certificate.as_bytes()),
            Err(CsrError::NotARequest)
        ));
        let garbage = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
        assert!(matches!(
            Request::parse_pem(garbage.as_bytes()),
            Err(CsrError::Malformed(_))
        ));
    }

    #[test]
    fn a_request_whose_signature_fails_is_refused() {
        use base64::Engine;
        let pem = request_pem("system:node:n1", Some("system:nodes"), &[]);
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let mut der = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
        // The last byte is the signature's.
        *der.last_mut().unwrap() ^= 0x01;
        let tampered = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        );
        assert!(matches!(
            Request::parse_pem(tampered.as_bytes()),
            Err(CsrError::BadSignature | CsrError::Malformed(_))
        ));
    }

    fn node_request() -> Request {
        Request {
            common_name: "system:node:n1".into(),
            organizations: vec!["system:nodes".into()],
            ..Request::default()
        }
    }

    fn usages(list: &[&str]) -> Vec<String> {
        list.iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn node_client_requests_have_one_shape() {
        let request = node_request();
        assert_eq!(
            kubelet_client_problem(&request, &usages(&["digital signature", "client auth"])),
            None
        );
        assert_eq!(
            kubelet_client_problem(
                &request,
                &usages(&["key encipherment", "digital signature", "client auth"])
            ),
            None
        );
        assert!(kubelet_client_problem(&request, &usages(&["client auth"])).is_some());
        assert!(kubelet_client_problem(&request, &usages(&["digital signature", "server auth"])).is_some());
        let other = Request {
            common_name: "jane".into(),
            ..node_request()
        };
        assert!(kubelet_client_problem(&other, &usages(&["digital signature", "client auth"])).is_some());
        let masters = Request {
            organizations: vec!["system:masters".into()],
            ..node_request()
        };
        assert!(kubelet_client_problem(&masters, &usages(&["digital signature", "client auth"])).is_some());
        let named = Request {
            dns_names: vec!["n1".into()],
            ..node_request()
        };
        assert!(kubelet_client_problem(&named, &usages(&["digital signature", "client auth"])).is_some());
    }

    #[test]
    fn apiserver_client_usages_need_client_auth_and_nothing_else() {
        assert_eq!(apiserver_client_usages_problem(&usages(&["client auth"])), None);
        assert_eq!(
            apiserver_client_usages_problem(&usages(&["digital signature", "key encipherment", "client auth"])),
            None
        );
        assert!(apiserver_client_usages_problem(&usages(&["digital signature"])).is_some());
        assert!(apiserver_client_usages_problem(&usages(&["client auth", "server auth"])).is_some());
    }

    #[test]
    fn issued_certificates_are_certificate_blocks() {
        assert_eq!(check_certificates_pem(b""), Ok(()));
        assert!(check_certificates_pem(b"not pem").is_err());
        let request = request_pem("jane", None, &[]);
        assert!(check_certificates_pem(request.as_bytes()).is_err());
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(vec!["a.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        assert_eq!(check_certificates_pem(certificate.as_bytes()), Ok(()));
        let two = format!("{certificate}{certificate}");
        assert_eq!(check_certificates_pem(two.as_bytes()), Ok(()));
    }
}
