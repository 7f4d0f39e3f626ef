//! The authenticators, tried in kube-apiserver's order: client
//! certificate, then the bearer token as a static token, a bootstrap
//! token, and a ServiceAccount token.
//!
//! A request with no credentials is anonymous; one whose credentials no
//! authenticator accepts is refused, even on paths anonymous users may
//! read, as kube-apiserver refuses it.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use http::HeaderMap;
use serde_json::Value;
use skiff_auth::UserInfo;
use skiff_auth::token::{Keys, TokenError};
use skiff_auth::user::names;
use skiff_store::{KeyRange, RangeRequest, ReadConsistency, Store};

use super::liveness::{Known, Liveness};

/// The leaf certificate (DER) a client presented and the TLS listener
/// verified against the cluster CA.
#[derive(Clone, Debug)]
pub struct ClientCertificate(pub Arc<[u8]>);

/// What authentication found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    User(UserInfo),
    /// No credentials at all.
    Anonymous,
    /// Credentials no authenticator accepts, and why (for the log only:
    /// the client learns no more than 401).
    Refused(String),
}

/// The authenticators' configuration.
#[derive(Clone, Debug, Default)]
pub struct Authentication {
    tokens: HashMap<String, UserInfo>,
    service_accounts: Option<Arc<Keys>>,
    audiences: Vec<String>,
    verified: Arc<VerifiedTokens>,
    /// The followed view of the objects tokens are bound to; without it
    /// every check reads the store.
    liveness: Option<Arc<Liveness>>,
}

/// ServiceAccount tokens whose signature was verified, with their claims:
/// an ES256 verification costs far more than the rest of a request, and a
/// client sends one token many times. Only the signature check is
/// remembered; expiry, audience and the bound objects are checked on
/// every request, so a deleted ServiceAccount's token is refused at once.
#[derive(Debug, Default)]
struct VerifiedTokens {
    claims: std::sync::RwLock<HashMap<String, skiff_auth::token::Claims>>,
}

/// Tokens remembered at most; the cache starts afresh when full.
const VERIFIED_TOKENS: usize = 10_000;

impl VerifiedTokens {
    fn get(&self, token: &str) -> Option<skiff_auth::token::Claims> {
        self.claims.read().ok()?.get(token).cloned()
    }

    fn insert(&self, token: &str, claims: &skiff_auth::token::Claims) {
        if let Ok(mut cache) = self.claims.write() {
            if cache.len() >= VERIFIED_TOKENS {
                cache.clear();
            }
            cache.insert(token.to_string(), claims.clone());
        }
    }
}

impl Authentication {
    pub fn new() -> Authentication {
        Authentication::default()
    }

    /// Accepts `token` as `user` (kube-apiserver's `--token-auth-file`).
    pub fn with_token(mut self, token: impl Into<String>, user: UserInfo) -> Authentication {
        self.tokens.insert(token.into(), user);
        self
    }

    /// Accepts ServiceAccount tokens `keys` signed for one of `audiences`
    /// (the issuer when empty).
    pub fn with_service_accounts(mut self, keys: Arc<Keys>, audiences: Vec<String>) -> Authentication {
        self.audiences = if audiences.is_empty() {
            vec![keys.issuer().to_string()]
        } else {
            audiences
        };
        self.service_accounts = Some(keys);
        self
    }

    /// Checks the objects ServiceAccount tokens are bound to against a
    /// view that follows `store` ([`Liveness`]) rather than reading the
    /// store on every request. Must be called within a Tokio runtime.
    pub fn following(mut self, store: &Store) -> Authentication {
        if self.service_accounts.is_some() {
            self.liveness = Some(Arc::new(Liveness::follow(store)));
        }
        self
    }

    /// After a deletion of the object at store key `key`: waits (a bounded
    /// time) until tokens bound to it are refused, so that the deleting
    /// client's next request sees it ([`Liveness::deleted`]).
    pub async fn deleted(&self, key: &str) {
        if let Some(liveness) = &self.liveness {
            liveness.deleted(key).await;
        }
    }

    /// The key that signs ServiceAccount tokens, if this server has one.
    pub fn service_account_keys(&self) -> Option<&Arc<Keys>> {
        self.service_accounts.as_ref()
    }

    /// The audiences the API accepts tokens for.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// Authenticates a request by its client certificate or bearer token.
    pub async fn authenticate(
        &self,
        store: &Store,
        headers: &HeaderMap,
        certificate: Option<&ClientCertificate>,
    ) -> Outcome {
        if let Some(certificate) = certificate {
            match certificate_user(&certificate.0) {
                Ok(user) => return Outcome::User(user),
                Err(reason) => return Outcome::Refused(reason),
            }
        }
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Outcome::Anonymous;
        };
        let Some(token) = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
        else {
            return Outcome::Refused("the Authorization header is not a bearer token".into());
        };
        match self.authenticate_token(store, token, &self.audiences).await {
            Ok(user) => Outcome::User(user),
            Err(reason) => Outcome::Refused(reason),
        }
    }

    /// Authenticates a bearer token, for a request or a TokenReview,
    /// accepting ServiceAccount tokens for one of `audiences`.
    pub async fn authenticate_token(
        &self,
        store: &Store,
        token: &str,
        audiences: &[String],
    ) -> Result<UserInfo, String> {
        if let Some(user) = self.static_token(token) {
            return Ok(user);
        }
        if let Some((id, secret)) = bootstrap_token(token) {
            return bootstrap_user(store, id, secret).await;
        }
        let Some(keys) = &self.service_accounts else {
            return Err("unknown bearer token".into());
        };
        let now = jiff::Timestamp::now().as_second().max(0).unsigned_abs();
        let claims = match self.verified.get(token) {
            Some(claims) => {
                check_lifetime_and_audience(&claims, audiences, now)?;
                claims
            }
            None => match keys.verify(token, audiences, now) {
                Ok(claims) => {
                    self.verified.insert(token, &claims);
                    claims
                }
                Err(TokenError::NotOurs) => return Err("unknown bearer token".into()),
                Err(error) => return Err(error.to_string()),
            },
        };
        check_bound_objects(store, self.liveness.as_deref(), &claims).await?;
        Ok(claims.user())
    }

    fn static_token(&self, token: &str) -> Option<UserInfo> {
        // Compare against every token without short-circuiting on the
        // first differing byte.
        let mut found = None;
        for (known, user) in &self.tokens {
            if constant_time_eq(known.as_bytes(), token.as_bytes()) {
                found = Some(user.clone());
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The user a verified client certificate names: its subject's common
/// name, and its organizations as groups.
fn certificate_user(der: &[u8]) -> Result<UserInfo, String> {
    let (_, certificate) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("client certificate does not parse: {e}"))?;
    let subject = certificate.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
        .ok_or("client certificate has no common name")?;
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(String::from)
        .collect();
    groups.push(names::AUTHENTICATED.into());
    Ok(UserInfo::new(name, groups))
}

/// `<id>.<secret>`: six and sixteen characters of `[a-z0-9]`.
fn bootstrap_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |part: &str, len: usize| {
        part.len() == len && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// A stored object, read from this server's replica.
async fn stored(store: &Store, key: String) -> Result<Option<Value>, String> {
    let page = store
        .range(RangeRequest::new(KeyRange::key(key)), ReadConsistency::Serializable)
        .await
        .map_err(|e| format!("cannot read the store: {e}"))?;
    Ok(page.kvs.first().and_then(|kv| serde_json::from_slice(&kv.value).ok()))
}

/// The user of bootstrap token `<id>.<secret>`, from the Secret
/// `kube-system/bootstrap-token-<id>` (type `bootstrap.kubernetes.io/token`).
async fn bootstrap_user(store: &Store, id: &str, secret: &str) -> Result<UserInfo, String> {
    let invalid = || "invalid bootstrap token".to_string();
    let object = stored(
        store,
        format!("/registry/core/secrets/kube-system/bootstrap-token-{id}"),
    )
    .await?
    .ok_or_else(invalid)?;
    if object.get("type").and_then(Value::as_str) != Some("bootstrap.kubernetes.io/token")
        || object.pointer("/metadata/deletionTimestamp").is_some()
    {
        return Err(invalid());
    }
    let field = |name: &str| {
        object
            .pointer(&format!("/data/{name}"))
            .and_then(Value::as_str)
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
    };
    if field("token-id").as_deref() != Some(id)
        || !constant_time_eq(field("token-secret").unwrap_or_default().as_bytes(), secret.as_bytes())
        || field("usage-bootstrap-authentication").as_deref() != Some("true")
    {
        return Err(invalid());
    }
    if let Some(expiration) = field("expiration") {
        let expired = expiration
            .parse::<jiff::Timestamp>()
            .map(|at| at <= jiff::Timestamp::now())
            .unwrap_or(true);
        if expired {
            return Err(format!("bootstrap token {id} has expired"));
        }
    }
    let mut groups = vec![names::BOOTSTRAPPERS.to_string()];
    groups.extend(
        field("auth-extra-groups")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|g| g.starts_with("system:bootstrappers:"))
            .map(String::from),
    );
    groups.push(names::AUTHENTICATED.into());
    Ok(UserInfo::new(format!("system:bootstrap:{id}"), groups))
}

/// What [`Keys::verify`] checks besides the signature, for a token whose
/// signature was verified before.
fn check_lifetime_and_audience(
    claims: &skiff_auth::token::Claims,
    audiences: &[String],
    now: u64,
) -> Result<(), String> {
    if claims.exp.saturating_add(skiff_auth::token::LEEWAY_SECONDS) < now {
        return Err("service account token has expired".into());
    }
    if claims.nbf > now.saturating_add(skiff_auth::token::LEEWAY_SECONDS) {
        return Err("service account token is not valid yet".into());
    }
    if !claims.aud.iter().any(|a| audiences.contains(a)) {
        return Err("token audiences do not match any of the API server's".into());
    }
    Ok(())
}

/// A ServiceAccount token is good only while its ServiceAccount, and the
/// Pod, Secret or Node it is bound to, exist with the UIDs it names. Each
/// is looked up in `liveness` first, and read from the store when the view
/// does not hold it with that UID (it may be newer than the view).
async fn check_bound_objects(
    store: &Store,
    liveness: Option<&Liveness>,
    claims: &skiff_auth::token::Claims,
) -> Result<(), String> {
    let k = &claims.kubernetes;
    let ns = &k.namespace;
    let mut checks = vec![(
        "serviceaccount",
        format!("/registry/core/serviceaccounts/{ns}/{}", k.serviceaccount.name),
        &k.serviceaccount,
    )];
    if let Some(pod) = &k.pod {
        checks.push(("pod", format!("/registry/core/pods/{ns}/{}", pod.name), pod));
    }
    if let Some(secret) = &k.secret {
        checks.push(("secret", format!("/registry/core/secrets/{ns}/{}", secret.name), secret));
    }
    if let Some(node) = &k.node {
        // A token bound to a pod names its node only for information.
        if k.pod.is_none() {
            checks.push(("node", format!("/registry/core/nodes/{}", node.name), node));
        }
    }
    for (what, key, reference) in checks {
        let viewed = liveness
            .and_then(|l| l.get(&key))
            .filter(|known| reference.uid.is_empty() || known.uid == reference.uid);
        let known = match viewed {
            Some(known) => Some(known),
            None => stored(store, key).await?.map(|object| Known {
                uid: object
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                deleting: object.pointer("/metadata/deletionTimestamp").is_some(),
            }),
        };
        let uid = known.as_ref().map(|k| k.uid.as_str());
        match uid {
            None => {
                return Err(format!(
                    "{what} {:?} named by the token no longer exists",
                    reference.name
                ));
            }
            Some(uid) if !reference.uid.is_empty() && uid != reference.uid => {
                return Err(format!(
                    "{what} {:?} named by the token was replaced (UID {uid}, token says {})",
                    reference.name, reference.uid
                ));
            }
            Some(_) => {}
        }
        let deleting = known.is_some_and(|k| k.deleting);
        if deleting && what != "serviceaccount" {
            return Err(format!(
                "{what} {:?} named by the token is being deleted",
                reference.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_tokens_have_their_shape() {
        assert_eq!(
            bootstrap_token("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(bootstrap_token("abcdef.0123456789ABCDEF"), None);
        assert_eq!(bootstrap_token("abcde.0123456789abcdef"), None);
        assert_eq!(bootstrap_token("eyJhbGciOi.xyz.abc"), None);
    }

    #[test]
    fn certificates_name_user_and_groups() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::Pki::load_or_create(dir.path(), &["localhost".into()]).unwrap();
        let (cert, _) = pki.issue_client("jane", Some("devs"), 2040).unwrap();
        let der = rustls_pki_der(&cert);
        let user = certificate_user(&der).unwrap();
        assert_eq!(user.name, "jane");
        assert_eq!(user.groups, vec!["devs", "system:authenticated"]);
    }

    fn rustls_pki_der(pem: &str) -> Vec<u8> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
    }
}
