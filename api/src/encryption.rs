//! Encryption at rest, configured as kube-apiserver's
//! `--encryption-provider-config` is: an `EncryptionConfiguration`
//! (`apiserver.config.k8s.io/v1`) lists resources (`secrets`,
//! `deployments.apps`, `*.apps` for a group, `*.*` for everything) and,
//! for each list, providers. The first provider seals what is written;
//! any of them opens what is read. [`Encryption`] is the store's
//! [`ValueTransformer`], choosing the rule by the object's store key
//! (`/registry/<group>/<resource>/…`).
//!
//! Providers:
//! * `aesgcm`: AES-256-GCM (or 128/192 by key length) with a random
//!   96-bit nonce, the object's store key as authenticated data (a value
//!   moved under another key does not open), stored as kube-apiserver
//!   stores it: `k8s:enc:aesgcm:v1:<key name>:` + nonce + sealed bytes.
//!   Every key listed opens what it sealed, so a key is rotated by
//!   putting a new one first, restarting, rewriting the objects
//!   (`kubectl get secrets -A -o json | kubectl replace -f -`), then
//!   dropping the old one.
//! * `identity`: stored as given; it opens values without a `k8s:enc:`
//!   prefix (written before encryption was turned on).
//!
//! `aescbc`, `secretbox` and `kms` are refused with a message that says so.
//! ring does the cryptography, as it does TLS.

use std::sync::Arc;

use base64::Engine as _;
use ring::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use skiff_store::ValueTransformer;

const PREFIX: &str = "k8s:enc:";
const NONCE_LEN: usize = 12;

/// The configuration, as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    kind: String,
    api_version: String,
    #[serde(default)]
    resources: Vec<ResourceConfig>,
}

#[derive(Debug, Deserialize)]
struct ResourceConfig {
    resources: Vec<String>,
    providers: Vec<serde_yaml::Mapping>,
}

#[derive(Debug, Deserialize)]
struct KeysConfig {
    keys: Vec<KeyConfig>,
}

#[derive(Debug, Deserialize)]
struct KeyConfig {
    name: String,
    secret: String,
}

/// One provider, ready.
enum Provider {
    Identity,
    AesGcm(Vec<(String, LessSafeKey)>),
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Provider::Identity => f.write_str("identity"),
            Provider::AesGcm(keys) => {
                let names: Vec<&str> = keys.iter().map(|(n, _)| n.as_str()).collect();
                write!(f, "aesgcm{names:?}")
            }
        }
    }
}

/// A rule: the store key prefixes of its resources, and its providers.
#[derive(Debug)]
struct Rule {
    prefixes: Vec<String>,
    providers: Vec<Provider>,
}

/// Encryption at rest for the store: see the module docs.
#[derive(Debug)]
pub struct Encryption {
    rules: Vec<Rule>,
    random: SystemRandom,
}

/// The store key prefix of a configured resource name.
fn prefix(resource: &str) -> Result<String, String> {
    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
    let group = if group.is_empty() { "core" } else { group };
    match (plural, group) {
        ("*", "*") => Ok("/registry/".into()),
        ("*", group) => Ok(format!("/registry/{group}/")),
        (plural, _) if plural.contains('*') || plural.is_empty() => {
            Err(format!("{resource:?} is not a resource, `*.<group>` or `*.*`"))
        }
        (plural, group) => Ok(format!("/registry/{group}/{plural}/")),
    }
}

fn provider(entry: &serde_yaml::Mapping) -> Result<Provider, String> {
    let (name, value) = match entry.iter().next() {
        Some((serde_yaml::Value::String(name), value)) if entry.len() == 1 => (name.as_str(), value),
        _ => return Err("each provider names one kind: aesgcm or identity".into()),
    };
    match name {
        "identity" => Ok(Provider::Identity),
        "aesgcm" => {
            let keys: KeysConfig = serde_yaml::from_value(value.clone()).map_err(|e| format!("aesgcm: {e}"))?;
            if keys.keys.is_empty() {
                return Err("aesgcm: no keys".into());
            }
            let mut ready = Vec::new();
            for key in keys.keys {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(key.secret.trim())
                    .map_err(|_| format!("aesgcm key {:?}: the secret is not base64", key.name))?;
                let algorithm = match bytes.len() {
                    16 => &AES_128_GCM,
                    32 => &AES_256_GCM,
                    n => return Err(format!("aesgcm key {:?}: {n} bytes; it must be 16 or 32", key.name)),
                };
                let unbound = UnboundKey::new(algorithm, &bytes).map_err(|_| format!("aesgcm key {:?}", key.name))?;
                if key.name.is_empty() || key.name.contains(':') {
                    return Err(format!("aesgcm key name {:?}: empty or holding ':'", key.name));
                }
                ready.push((key.name, LessSafeKey::new(unbound)));
            }
            Ok(Provider::AesGcm(ready))
        }
        "aescbc" | "secretbox" | "kms" => Err(format!("the {name} provider is not supported here; use aesgcm")),
        other => Err(format!("unknown provider {other:?}")),
    }
}

impl Encryption {
    /// Reads an `EncryptionConfiguration` (YAML or JSON).
    pub fn parse(text: &str) -> Result<Encryption, String> {
        let config: Config = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        if config.kind != "EncryptionConfiguration" || !config.api_version.starts_with("apiserver.config.k8s.io/") {
            return Err(format!(
                "{}/{} is not an apiserver.config.k8s.io EncryptionConfiguration",
                config.api_version, config.kind
            ));
        }
        let mut rules = Vec::new();
        for resource in &config.resources {
            let prefixes = resource
                .resources
                .iter()
                .map(|r| prefix(r))
                .collect::<Result<Vec<_>, _>>()?;
            let providers = resource.providers.iter().map(provider).collect::<Result<Vec<_>, _>>()?;
            if providers.is_empty() {
                return Err(format!("{:?}: no providers", resource.resources));
            }
            rules.push(Rule { prefixes, providers });
        }
        Ok(Encryption {
            rules,
            random: SystemRandom::new(),
        })
    }

    /// The configuration a cluster starts with: Secrets sealed with one
    /// new AES-256-GCM key, and readable if written before (identity).
    pub fn default_config() -> Result<String, String> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| "no randomness".to_string())?;
        let secret = base64::engine::general_purpose::STANDARD.encode(key);
        Ok(format!(
            "apiVersion: apiserver.config.k8s.io/v1\n\
             kind: EncryptionConfiguration\n\
             resources:\n\
             - resources: [secrets]\n\
             \x20 providers:\n\
             \x20 - aesgcm:\n\
             \x20     keys:\n\
             \x20     - name: key1\n\
             \x20       secret: {secret}\n\
             \x20 - identity: {{}}\n"
        ))
    }

    fn rule(&self, key: &[u8]) -> Option<&Rule> {
        let key = std::str::from_utf8(key).ok()?;
        self.rules
            .iter()
            .find(|rule| rule.prefixes.iter().any(|p| key.starts_with(p.as_str())))
    }

    /// The configured resources' store key prefixes, in order.
    pub fn prefixes(&self) -> Vec<&str> {
        self.rules
            .iter()
            .flat_map(|r| r.prefixes.iter().map(String::as_str))
            .collect()
    }

    pub fn into_transformer(self) -> Arc<dyn ValueTransformer> {
        Arc::new(self)
    }
}

impl ValueTransformer for Encryption {
    fn seal(&self, key: &[u8], value: Vec<u8>) -> Result<Vec<u8>, String> {
        let Some(rule) = self.rule(key) else {
            return Ok(value);
        };
        match rule.providers.first() {
            Some(Provider::AesGcm(keys)) => {
                let Some((name, cipher)) = keys.first() else {
                    return Ok(value);
                };
                let mut nonce = [0u8; NONCE_LEN];
                self.random.fill(&mut nonce).map_err(|_| "no randomness".to_string())?;
                let mut sealed = value;
                cipher
                    .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(key), &mut sealed)
                    .map_err(|_| "AES-GCM refused to seal".to_string())?;
                let mut out = format!("{PREFIX}aesgcm:v1:{name}:").into_bytes();
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
                Ok(out)
            }
            Some(Provider::Identity) | None => Ok(value),
        }
    }

    fn open(&self, key: &[u8], stored: Vec<u8>) -> Result<Vec<u8>, String> {
        let Some(rule) = self.rule(key) else {
            return Ok(stored);
        };
        if !stored.starts_with(PREFIX.as_bytes()) {
            return if rule.providers.iter().any(|p| matches!(p, Provider::Identity)) {
                Ok(stored)
            } else {
                Err("it is not encrypted, and the identity provider is not configured for it".into())
            };
        }
        for provider in &rule.providers {
            let Provider::AesGcm(keys) = provider else { continue };
            for (name, cipher) in keys {
                let head = format!("{PREFIX}aesgcm:v1:{name}:");
                let Some(rest) = stored.strip_prefix(head.as_bytes()) else {
                    continue;
                };
                if rest.len() < NONCE_LEN {
                    return Err(format!("sealed with key {name:?}, but too short"));
                }
                let (nonce, sealed) = rest.split_at(NONCE_LEN);
                let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| "bad nonce".to_string())?;
                let mut buffer = sealed.to_vec();
                let plain = cipher
                    .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(key), &mut buffer)
                    .map_err(|_| format!("key {name:?} does not open it (another key of that name, or tampered)"))?;
                let len = plain.len();
                buffer.truncate(len);
                return Ok(buffer);
            }
        }
        let head: String = String::from_utf8_lossy(&stored[..stored.len().min(40)])
            .split(':')
            .take(5)
            .collect::<Vec<_>>()
            .join(":");
        Err(format!("sealed as {head}, which no configured key opens"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(keys: &[(&str, [u8; 32])], identity: bool) -> Encryption {
        let keys: String = keys
            .iter()
            .map(|(name, key)| {
                format!(
                    "      - name: {name}\n        secret: {}\n",
                    base64::engine::general_purpose::STANDARD.encode(key)
                )
            })
            .collect();
        let identity = if identity { "  - identity: {}\n" } else { "" };
        Encryption::parse(&format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
             - resources: [secrets, '*.apps']\n  providers:\n  - aesgcm:\n      keys:\n{keys}{identity}"
        ))
        .unwrap()
    }

    const SECRET: &[u8] = b"/registry/core/secrets/default/db";

    #[test]
    fn configured_resources_are_sealed_and_open_again() {
        let encryption = config(&[("key1", [1; 32])], true);
        assert_eq!(encryption.prefixes(), ["/registry/core/secrets/", "/registry/apps/"]);
        let plain = br#"{"data":{"password":"aHVudGVyMg=="}}"#.to_vec();
        let sealed = encryption.seal(SECRET, plain.clone()).unwrap();
        assert!(sealed.starts_with(b"k8s:enc:aesgcm:v1:key1:"));
        assert!(!sealed.windows(8).any(|w| w == b"aHVudGVy"));
        assert_eq!(encryption.open(SECRET, sealed.clone()).unwrap(), plain);
        // Bound to its key: moved elsewhere, it does not open.
        assert!(
            encryption
                .open(b"/registry/core/secrets/default/other", sealed)
                .is_err()
        );
        // Other resources pass as they are; unencrypted Secrets open by identity.
        let pod = b"/registry/core/pods/default/p";
        assert_eq!(encryption.seal(pod, plain.clone()).unwrap(), plain);
        assert_eq!(encryption.open(SECRET, plain.clone()).unwrap(), plain);
        let deployment = encryption
            .seal(b"/registry/apps/deployments/default/web", plain.clone())
            .unwrap();
        assert!(deployment.starts_with(b"k8s:enc:aesgcm:v1:key1:"));
    }

    #[test]
    fn a_rotated_key_still_opens_what_it_sealed() {
        let old = config(&[("key1", [1; 32])], false);
        let sealed = old.seal(SECRET, b"v".to_vec()).unwrap();
        let rotated = config(&[("key2", [2; 32]), ("key1", [1; 32])], false);
        assert_eq!(rotated.open(SECRET, sealed.clone()).unwrap(), b"v");
        assert!(
            rotated
                .seal(SECRET, b"v".to_vec())
                .unwrap()
                .starts_with(b"k8s:enc:aesgcm:v1:key2:")
        );
        let dropped = config(&[("key2", [2; 32])], false);
        let error = dropped.open(SECRET, sealed).unwrap_err();
        assert!(error.contains("no configured key opens"), "{error}");
        // Without identity, unencrypted data is refused.
        assert!(dropped.open(SECRET, b"{}".to_vec()).is_err());
    }

    #[test]
    fn bad_configurations_are_refused_with_their_reason() {
        let head = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n";
        for (providers, says) in [
            ("  - secretbox:\n      keys: []\n", "not supported"),
            (
                "  - aesgcm:\n      keys:\n      - name: k\n        secret: c2hvcnQ=\n",
                "16 or 32",
            ),
            ("  - aesgcm:\n      keys: []\n", "no keys"),
            ("  - rot13: {}\n", "unknown provider"),
        ] {
            let error = Encryption::parse(&format!("{head}{providers}")).unwrap_err();
            assert!(error.contains(says), "{providers}: {error}");
        }
        assert!(Encryption::parse("kind: Pod\napiVersion: v1\n").is_err());
        let default = Encryption::parse(&Encryption::default_config().unwrap()).unwrap();
        assert!(
            default
                .seal(SECRET, b"x".to_vec())
                .unwrap()
                .starts_with(b"k8s:enc:aesgcm:v1:key1:")
        );
    }
}
