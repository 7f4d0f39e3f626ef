//! ServiceAccount tokens: JSON Web Tokens signed by the cluster's key, with
//! the claims kube-apiserver puts in them, and the OpenID discovery
//! documents that let others verify them.
//!
//! The key is ECDSA P-256 (ES256): kube-apiserver accepts ES256 keys too,
//! and `ring`, which skiff already uses for TLS, makes P-256 keys but not
//! RSA ones. The key id is the base64url SHA-256 of the public key's DER
//! (SubjectPublicKeyInfo), as Kubernetes derives it.
//!
//! Signing and [`Keys::verify`] check only what the token itself says
//! (signature, issuer, audience, lifetime); that the ServiceAccount and the
//! object the token is bound to still exist, with the UIDs it names, is for
//! the caller to check against the store.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use crate::UserInfo;

/// The issuer skiff's tokens name unless told otherwise, as k3s's.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Seconds of clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 60;

/// The DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte
/// uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    #[error("the signing key is not a PKCS#8 ECDSA P-256 key")]
    BadKey,
    #[error("not a ServiceAccount token")]
    NotOurs,
    #[error("invalid bearer token: {0}")]
    Invalid(String),
}

/// The `kubernetes.io` claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    pub namespace: String,
    pub serviceaccount: Reference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Reference>,
}

/// An object a token names, by name and UID.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub uid: String,
}

/// The claims of a ServiceAccount token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: u64,
    pub iat: u64,
    pub nbf: u64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

impl Claims {
    /// The user the token authenticates, with the extras kube-apiserver
    /// adds for bound tokens.
    pub fn user(&self) -> UserInfo {
        let k = &self.kubernetes;
        let mut user = UserInfo::service_account(&k.namespace, &k.serviceaccount.name, &k.serviceaccount.uid);
        let mut extra = BTreeMap::new();
        if let Some(pod) = &k.pod {
            extra.insert("authentication.kubernetes.io/pod-name".into(), vec![pod.name.clone()]);
            extra.insert("authentication.kubernetes.io/pod-uid".into(), vec![pod.uid.clone()]);
        }
        if let Some(node) = &k.node {
            extra.insert("authentication.kubernetes.io/node-name".into(), vec![node.name.clone()]);
            extra.insert("authentication.kubernetes.io/node-uid".into(), vec![node.uid.clone()]);
        }
        if !self.jti.is_empty() {
            extra.insert(
                "authentication.kubernetes.io/credential-id".into(),
                vec![format!("JTI={}", self.jti)],
            );
        }
        user.extra = extra;
        user
    }
}

/// The cluster's token key: signs new tokens and verifies presented ones.
pub struct Keys {
    issuer: String,
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The public point's coordinates, base64url, for the JWKS.
    x: String,
    y: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Keys from a PKCS#8 DER P-256 private key.
    pub fn new(issuer: impl Into<String>, pkcs8: &[u8]) -> Result<Keys, TokenError> {
        let rng = ring::rand::SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).map_err(|_| TokenError::BadKey)?;
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err(TokenError::BadKey);
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..]);
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(point);
        let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &spki));
        let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|_| TokenError::BadKey)?;
        Ok(Keys {
            issuer: issuer.into(),
            kid,
            encoding: EncodingKey::from_ec_der(pkcs8),
            decoding,
            x,
            y,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs `claims`, after setting their issuer.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut claims = claims.clone();
        claims.iss = self.issuer.clone();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// The claims of a token this cluster signed, for one of `audiences`,
    /// valid at `now` (seconds since the epoch). [`TokenError::NotOurs`]
    /// for anything that is not a JWT from this issuer, so other
    /// authenticators may try it.
    pub fn verify(&self, token: &str, audiences: &[String], now: u64) -> Result<Claims, TokenError> {
        // Cheap checks first: a JWT has three parts and names our issuer.
        let mut parts = token.split('.');
        let (Some(_), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::NotOurs);
        };
        let unverified: serde_json::Value = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(TokenError::NotOurs)?;
        if unverified.get("iss").and_then(serde_json::Value::as_str) != Some(self.issuer.as_str()) {
            return Err(TokenError::NotOurs);
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| TokenError::Invalid(describe(e.kind())))?;
        // jsonwebtoken compares against the system clock; `now` lets
        // callers (and tests) be exact about expiry.
        let claims = data.claims;
        if claims.exp + LEEWAY_SECONDS < now {
            return Err(TokenError::Invalid("service account token has expired".into()));
        }
        Ok(claims)
    }

    /// `/openid/v1/jwks`.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "use": "sig",
                "kty": "EC",
                "kid": self.kid,
                "crv": "P-256",
                "alg": "ES256",
                "x": self.x,
                "y": self.y,
            }]
        })
    }

    /// `/.well-known/openid-configuration`, its `jwks_uri` under `base`
    /// (the issuer, unless the API is reached elsewhere).
    pub fn openid_configuration(&self, base: &str) -> serde_json::Value {
        serde_json::json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/openid/v1/jwks", base.trim_end_matches('/')),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    }
}

fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::ExpiredSignature => "service account token has expired".into(),
        ErrorKind::ImmatureSignature => "service account token is not valid yet".into(),
        ErrorKind::InvalidAudience => "token audiences do not match any of the API server's".into(),
        ErrorKind::InvalidIssuer => "token issuer is not this cluster".into(),
        ErrorKind::InvalidSignature => "token signature is invalid (signed by another key?)".into(),
        ErrorKind::InvalidAlgorithm => "token algorithm is not ES256".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("token has no {claim} claim"),
        _ => "malformed token".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh PKCS#8 P-256 key.
    fn key() -> Vec<u8> {
        let rng = ring::rand::SystemRandom::new();
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "system:serviceaccount:apps:builder".into(),
            aud: vec![DEFAULT_ISSUER.into()],
            exp,
            iat: exp.saturating_sub(3600),
            nbf: exp.saturating_sub(3600),
            jti: "j-1".into(),
            kubernetes: KubernetesClaim {
                namespace: "apps".into(),
                serviceaccount: Reference {
                    name: "builder".into(),
                    uid: "sa-uid".into(),
                },
                pod: Some(Reference {
                    name: "p".into(),
                    uid: "pod-uid".into(),
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn tokens_round_trip_and_name_their_user() {
        let keys = Keys::new(DEFAULT_ISSUER, &key()).unwrap();
        let token = keys.sign(&claims(now() + 3600)).unwrap();
        let claims = keys.verify(&token, &[DEFAULT_ISSUER.into()], now()).unwrap();
        let user = claims.user();
        assert_eq!(user.name, "system:serviceaccount:apps:builder");
        assert_eq!(user.uid, "sa-uid");
        assert_eq!(
            user.extra["authentication.kubernetes.io/pod-name"],
            vec!["p".to_string()]
        );
        assert_eq!(keys.jwks()["keys"][0]["kid"], keys.kid.as_str());
    }

    #[test]
    fn bad_tokens_are_refused() {
        let keys = Keys::new(DEFAULT_ISSUER, &key()).unwrap();
        let audiences = [DEFAULT_ISSUER.to_string()];
        let expired = keys.sign(&claims(now() - 600)).unwrap();
        assert!(
            matches!(keys.verify(&expired, &audiences, now()), Err(TokenError::Invalid(m)) if m.contains("expired"))
        );
        let other = Keys::new(DEFAULT_ISSUER, &key()).unwrap();
        let forged = other.sign(&claims(now() + 600)).unwrap();
        assert!(matches!(
            keys.verify(&forged, &audiences, now()),
            Err(TokenError::Invalid(_))
        ));
        let token = keys.sign(&claims(now() + 600)).unwrap();
        assert!(keys.verify(&token, &["https://elsewhere".into()], now()).is_err());
        assert_eq!(keys.verify("abc.def", &audiences, now()), Err(TokenError::NotOurs));
        assert_eq!(keys.verify("static-token", &audiences, now()), Err(TokenError::NotOurs));
        // Tampered payload, same signature.
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        payload["sub"] = "system:serviceaccount:kube-system:admin".into();
        parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
        assert!(matches!(
            keys.verify(&parts.join("."), &audiences, now()),
            Err(TokenError::Invalid(_))
        ));
    }
}
