//! A node agent's client certificates, obtained and renewed through
//! CertificateSigningRequests: the kubelet's TLS bootstrap and
//! certificate rotation, and k3s's agent join.
//!
//! An agent given a join token ([`join`]):
//!
//! 1. generates a P-256 key and asks, as the token's bootstrap user, for
//!    the node's client certificate: `CN=system:node:<name>`,
//!    `O=system:nodes`, signer `kubernetes.io/kube-apiserver-client-kubelet`,
//!    usages digital signature and client auth. The controllers approve
//!    it (the token may `create certificatesigningrequests/nodeclient`)
//!    and issue it. The agent waits on a watch of its request.
//! 2. asks, now as the node, for its service proxy's certificate:
//!    `CN=system:kube-proxy`, signer `kubernetes.io/kube-apiserver-client`,
//!    which skiff's approver grants whoever may have a node certificate
//!    (a skiff choice, see `skiff_controllers::certificates::approver`).
//! 3. keeps both in `DATA/pki/{node,proxy}.{crt,key}` (owner-only), and
//!    from then on presents them; a restarted agent with a valid node
//!    certificate needs no token.
//! 4. renews each when 80% of its validity has passed, as the node
//!    (`selfnodeclient`), and presents the new one from the next TLS
//!    handshake on ([`super::rotating`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestSpec};
use kube::api::{Api, ObjectMeta, PostParams};
use skiff_api::pki::{Credential, write_private};
use skiff_client::identity::RotatingIdentity;
use skiff_host::agent::Clients;

use super::rotating;
use crate::UsageError;

/// Signers of the node's and the proxy's client certificates.
const KUBELET_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// How long an agent waits for a request to be approved and issued.
const ISSUE_WAIT: Duration = Duration::from_secs(15 * 60);
/// How long a failed renewal waits before trying again.
const RENEW_RETRY: Duration = Duration::from_secs(30);

/// Whose certificate: the node's or its proxy's.
#[derive(Clone, Debug)]
pub struct Identity {
    common_name: String,
    organization: Option<&'static str>,
    signer: &'static str,
    /// The file names: `<stem>.crt`, `<stem>.key`.
    stem: &'static str,
}

impl Identity {
    /// `system:node:<name>` in `system:nodes`.
    pub fn node(name: &str) -> Identity {
        Identity {
            common_name: format!("system:node:{name}"),
            organization: Some("system:nodes"),
            signer: KUBELET_SIGNER,
            stem: "node",
        }
    }

    /// `system:kube-proxy`, the node's service proxy.
    pub fn proxy() -> Identity {
        Identity {
            common_name: "system:kube-proxy".into(),
            organization: None,
            signer: CLIENT_SIGNER,
            stem: "proxy",
        }
    }

    fn files(&self, dir: &Path) -> (PathBuf, PathBuf) {
        (
            dir.join(format!("{}.crt", self.stem)),
            dir.join(format!("{}.key", self.stem)),
        )
    }
}

/// A certificate and its key (PEM), and when the certificate is valid.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Issued {
    /// Reads `cert_pem`, which must be `identity`'s.
    fn parse(cert_pem: String, key_pem: String, identity: &Identity) -> anyhow::Result<Issued> {
        let (_, block) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).context("not a PEM certificate")?;
        let (_, certificate) = x509_parser::parse_x509_certificate(&block.contents).context("not a certificate")?;
        let common_name = certificate
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default();
        if common_name != identity.common_name {
            bail!("the certificate is {common_name:?}'s, not {:?}'s", identity.common_name);
        }
        let validity = certificate.validity();
        let at = |t: &x509_parser::time::ASN1Time| Timestamp::from_second(t.timestamp()).context("certificate time");
        Ok(Issued {
            not_before: at(&validity.not_before)?,
            not_after: at(&validity.not_after)?,
            cert_pem,
            key_pem,
        })
    }

    /// When to renew: once 80% of the validity has passed.
    pub fn renew_at(&self) -> Timestamp {
        renew_at(self.not_before, self.not_after)
    }
}

/// 80% of the way from `not_before` to `not_after`.
fn renew_at(not_before: Timestamp, not_after: Timestamp) -> Timestamp {
    let lifetime = not_after.duration_since(not_before);
    not_before.saturating_add(lifetime.mul_f64(0.8)).unwrap_or(not_before)
}

/// `identity`'s stored certificate, if there is one still valid.
fn load(dir: &Path, identity: &Identity) -> Option<Issued> {
    let (cert, key) = identity.files(dir);
    let (Ok(cert_pem), Ok(key_pem)) = (std::fs::read_to_string(&cert), std::fs::read_to_string(&key)) else {
        return None;
    };
    match Issued::parse(cert_pem, key_pem, identity) {
        Ok(issued) if issued.not_after > Timestamp::now() => Some(issued),
        Ok(_) => {
            tracing::warn!(file = %cert.display(), "the stored certificate has expired");
            None
        }
        Err(error) => {
            tracing::warn!(file = %cert.display(), error = %format!("{error:#}"), "ignoring the stored certificate");
            None
        }
    }
}

fn store(dir: &Path, identity: &Identity, issued: &Issued) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (cert, key) = identity.files(dir);
    // The key first: a certificate without its key is of no use.
    write_private(&key, &issued.key_pem)?;
    Ok(write_private(&cert, &issued.cert_pem)?)
}

/// Asks for `identity`'s certificate with `client`, waits until it is
/// issued, and keeps it in `dir`.
async fn obtain(client: &kube::Client, dir: &Path, identity: &Identity) -> anyhow::Result<Issued> {
    let key = rcgen::KeyPair::generate().context("cannot generate a key")?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).context("certificate request")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, identity.common_name.as_str());
    if let Some(organization) = identity.organization {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, organization);
    }
    let request = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .context("cannot make the certificate request")?;
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-csr-", identity.stem)),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.into_bytes()),
            signer_name: identity.signer.into(),
            usages: Some(vec!["digital signature".into(), "client auth".into()]),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    };
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let created = create_retrying(&api, &csr).await?;
    let name = created.metadata.name.unwrap_or_default();
    tracing::info!(csr = %name, user = %identity.common_name, "asked for a client certificate");
    let settled = |csr: Option<&CertificateSigningRequest>| {
        csr.is_none_or(|csr| {
            let status = csr.status.as_ref();
            let certificate = status
                .and_then(|s| s.certificate.as_ref())
                .is_some_and(|c| !c.0.is_empty());
            let refused = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Denied" || c.type_ == "Failed"));
            certificate || refused
        })
    };
    let waited = tokio::time::timeout(ISSUE_WAIT, kube::runtime::wait::await_condition(api, &name, settled))
        .await
        .with_context(|| {
            format!(
                "CertificateSigningRequest {name} was not issued within {} minutes (an administrator may approve it: kubectl certificate approve {name})",
                ISSUE_WAIT.as_secs() / 60
            )
        })?
        .with_context(|| format!("cannot watch CertificateSigningRequest {name}"))?;
    let Some(csr) = waited else {
        bail!("CertificateSigningRequest {name} was deleted before it was issued");
    };
    let status = csr.status.unwrap_or_default();
    if let Some(refusal) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Denied" || c.type_ == "Failed")
    {
        bail!(
            "CertificateSigningRequest {name} is {}: {}",
            refusal.type_,
            refusal.message.as_deref().unwrap_or_default()
        );
    }
    let certificate = status.certificate.map(|c| c.0).unwrap_or_default();
    let cert_pem = String::from_utf8(certificate).context("the issued certificate is not text")?;
    let issued = Issued::parse(cert_pem, key.serialize_pem(), identity)
        .with_context(|| format!("the certificate issued for {name}"))?;
    store(dir, identity, &issued)?;
    Ok(issued)
}

/// Creates `csr`, retrying while the server cannot be reached (it may be
/// starting).
async fn create_retrying(
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
) -> anyhow::Result<CertificateSigningRequest> {
    let mut attempts = 0;
    loop {
        match api.create(&PostParams::default(), csr).await {
            Ok(created) => return Ok(created),
            Err(kube::Error::Api(status)) => {
                bail!("cannot create a CertificateSigningRequest: {}", status.message)
            }
            Err(error) if attempts < 30 => {
                attempts += 1;
                tracing::debug!(%error, "cannot reach the API server yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error).context("cannot create a CertificateSigningRequest"),
        }
    }
}

/// Keeps `current` fresh: at each renewal time asks for a new certificate
/// with `client` (the node's own), stores it and has `presented` present
/// it. Runs until aborted.
async fn keep_renewed(
    client: kube::Client,
    dir: PathBuf,
    identity: Identity,
    mut current: Issued,
    presented: Arc<RotatingIdentity>,
) {
    loop {
        let wait = current.renew_at().duration_since(Timestamp::now());
        if wait > SignedDuration::ZERO {
            tokio::time::sleep(wait.unsigned_abs()).await;
        }
        let renewed = obtain(&client, &dir, &identity).await.and_then(|issued| {
            presented
                .replace(&issued.cert_pem, &issued.key_pem)
                .map(|()| issued)
                .map_err(anyhow::Error::from)
        });
        match renewed {
            Ok(issued) => {
                tracing::info!(user = %identity.common_name, until = %issued.not_after, "client certificate renewed");
                current = issued;
            }
            Err(error) => {
                tracing::warn!(user = %identity.common_name, error = %format!("{error:#}"), "cannot renew the client certificate; trying again");
                tokio::time::sleep(RENEW_RETRY).await;
            }
        }
    }
}

/// The tasks renewing an agent's certificates; dropping this stops them.
#[derive(Debug)]
pub struct Renewals(pub Vec<tokio::task::JoinHandle<()>>);

impl Drop for Renewals {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The clients of node `node_name` authenticated by its certificates in
/// `dir`: those stored if still valid, else obtained with `join_token`;
/// and the tasks that renew them.
pub async fn join(
    server: &str,
    ca_pem: &str,
    dir: &Path,
    node_name: &str,
    join_token: Option<&str>,
) -> anyhow::Result<(Clients, Renewals)> {
    let node = Identity::node(node_name);
    let node_issued = match load(dir, &node) {
        Some(issued) => issued,
        None => {
            let Some(token) = join_token else {
                return Err(UsageError(format!(
                    "{} holds no valid certificate for node {node_name}: give a join token (skiff token create) in --token-file",
                    dir.display()
                ))
                .into());
            };
            let bootstrap = super::client(server, ca_pem, &Credential::Token(token)).await?;
            obtain(&bootstrap, dir, &node)
                .await
                .context("cannot obtain the node's client certificate")?
        }
    };
    let node_presented = RotatingIdentity::new(&node_issued.cert_pem, &node_issued.key_pem)?;
    let node_client = rotating::client(server, ca_pem, node_presented.clone())?;
    let (proxy_presented, proxy_renewal) = proxy_identity(&node_client, dir).await?;
    let proxy_client = rotating::client(server, ca_pem, proxy_presented.clone())?;
    let renewals = Renewals(vec![
        tokio::spawn(keep_renewed(
            node_client.clone(),
            dir.to_path_buf(),
            node,
            node_issued,
            node_presented,
        )),
        proxy_renewal,
    ]);
    Ok((
        Clients {
            node: node_client,
            proxy: proxy_client,
            proxy_identity: Some(proxy_presented),
        },
        renewals,
    ))
}

/// The service proxy's certificate in `dir`, if still valid, else one
/// obtained with `client`; and the task that renews it with `client`.
pub async fn proxy_identity(
    client: &kube::Client,
    dir: &Path,
) -> anyhow::Result<(Arc<RotatingIdentity>, tokio::task::JoinHandle<()>)> {
    let proxy = Identity::proxy();
    let issued = match load(dir, &proxy) {
        Some(issued) => issued,
        None => obtain(client, dir, &proxy)
            .await
            .context("cannot obtain the service proxy's client certificate")?,
    };
    let presented = RotatingIdentity::new(&issued.cert_pem, &issued.key_pem)?;
    let renewal = tokio::spawn(keep_renewed(
        client.clone(),
        dir.to_path_buf(),
        proxy,
        issued,
        presented.clone(),
    ));
    Ok((presented, renewal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_at_four_fifths_of_the_validity() {
        let start: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let end: Timestamp = "2025-01-11T00:00:00Z".parse().unwrap();
        assert_eq!(
            renew_at(start, end),
            "2025-01-09T00:00:00Z".parse::<Timestamp>().unwrap()
        );
    }

    #[test]
    fn stored_certificates_are_the_identitys_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let node = Identity::node("n1");
        assert!(load(dir.path(), &node).is_none());
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:n1");
        let cert_pem = params.self_signed(&key).unwrap().pem();
        let issued = Issued::parse(cert_pem.clone(), key.serialize_pem(), &node).unwrap();
        store(dir.path(), &node, &issued).unwrap();
        assert!(load(dir.path(), &node).is_some());
        assert!(load(dir.path(), &Identity::node("n2")).is_none(), "another node's name");
        use std::os::unix::fs::PermissionsExt;
        for file in ["node.crt", "node.key"] {
            let mode = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{file}");
        }
    }
}
