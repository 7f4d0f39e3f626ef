//! Encryption at rest, configured as kube-apiserver's
//! `--encryption-provider-config` is: an `EncryptionConfiguration`
//! (`apiserver.config.k8s.io/v1`) lists resources (`secrets`,
//! `deployments.apps`, `*.apps` for a group, `*.*` for everything) and,
//! for each list, providers. The first provider seals what is written;
//! any of them opens what is read. [`Encryption`] is the store's
//! [`ValueTransformer`], choosing the rule by the object's store key
//! (`/registry/<group>/<resource>/…`).
//!
//! Providers, stored as kube-apiserver stores them
//! (`k8s:enc:<provider>:v1:<key name>:` then the sealed bytes):
//! * `aesgcm`: AES-GCM (16- or 32-byte keys) with a random 96-bit nonce,
//!   the object's store key as authenticated data (a value moved under
//!   another key does not open); ring.
//! * `aescbc`: AES-CBC with PKCS#7 padding and a random IV (16- or
//!   32-byte keys); no authentication, as in kube-apiserver, which
//!   discourages it; RustCrypto's `aes` and `cbc`.
//! * `secretbox`: XSalsa20-Poly1305 with a random 192-bit nonce (32-byte
//!   keys); RustCrypto's `crypto_secretbox`.
//! * `identity`: stored as given; it opens values without a `k8s:enc:`
//!   prefix (written before encryption was turned on).
//!
//! Every key listed opens what it sealed, so a key is rotated by putting
//! a new one first ([`Encryption::rotated`]), restarting, rewriting the
//! stored objects whose [`ValueTransformer::form`] is not current
//! (`skiff secrets-encrypt reencrypt`, `crate::server::encryption`), then
//! dropping the old one.
//! `kms` is refused with a message that says so.

use std::sync::Arc;

use base64::Engine as _;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
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

/// One key of a provider, ready.
enum Cipher {
    Gcm(Box<LessSafeKey>),
    Cbc128([u8; 16]),
    Cbc256([u8; 32]),
    Secretbox(Box<XSalsa20Poly1305>),
}

/// One provider, ready: its kind (as in the stored prefix) and keys.
enum Provider {
    Identity,
    Keys {
        kind: &'static str,
        keys: Vec<(String, Cipher)>,
    },
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Provider::Identity => f.write_str("identity"),
            Provider::Keys { kind, keys } => {
                let names: Vec<&str> = keys.iter().map(|(n, _)| n.as_str()).collect();
                write!(f, "{kind}{names:?}")
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
        _ => return Err("each provider names one kind: aesgcm, aescbc, secretbox or identity".into()),
    };
    let kind: &'static str = match name {
        "identity" => return Ok(Provider::Identity),
        "aesgcm" => "aesgcm",
        "aescbc" => "aescbc",
        "secretbox" => "secretbox",
        "kms" => return Err("the kms provider is not supported here; use aesgcm, aescbc or secretbox".into()),
        other => return Err(format!("unknown provider {other:?}")),
    };
    let config: KeysConfig = serde_yaml::from_value(value.clone()).map_err(|e| format!("{kind}: {e}"))?;
    if config.keys.is_empty() {
        return Err(format!("{kind}: no keys"));
    }
    let mut keys = Vec::new();
    for key in config.keys {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key.secret.trim())
            .map_err(|_| format!("{kind} key {:?}: the secret is not base64", key.name))?;
        let wrong = |lengths: &str| format!("{kind} key {:?}: {} bytes; it must be {lengths}", key.name, bytes.len());
        let cipher = match (kind, bytes.len()) {
            ("aesgcm", 16) => Cipher::Gcm(Box::new(LessSafeKey::new(
                UnboundKey::new(&AES_128_GCM, &bytes).map_err(|_| wrong("16 or 32"))?,
            ))),
            ("aesgcm", 32) => Cipher::Gcm(Box::new(LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| wrong("16 or 32"))?,
            ))),
            ("aesgcm", _) => return Err(wrong("16 or 32")),
            ("aescbc", 16) => Cipher::Cbc128(bytes.as_slice().try_into().map_err(|_| wrong("16 or 32"))?),
            ("aescbc", 32) => Cipher::Cbc256(bytes.as_slice().try_into().map_err(|_| wrong("16 or 32"))?),
            ("aescbc", _) => return Err(wrong("16 or 32")),
            (_, 32) => Cipher::Secretbox(Box::new(
                XSalsa20Poly1305::new_from_slice(&bytes).map_err(|_| wrong("32"))?,
            )),
            _ => return Err(wrong("32")),
        };
        if key.name.is_empty() || key.name.contains(':') {
            return Err(format!("{kind} key name {:?}: empty or holding ':'", key.name));
        }
        keys.push((key.name, cipher));
    }
    Ok(Provider::Keys { kind, keys })
}

/// `value` sealed with `cipher`, `aad` authenticated where the cipher
/// can (AES-GCM; kube-apiserver's aescbc and secretbox take none).
fn seal_with(cipher: &Cipher, random: &SystemRandom, aad: &[u8], value: Vec<u8>) -> Result<Vec<u8>, String> {
    let no_randomness = |_| "no randomness".to_string();
    match cipher {
        Cipher::Gcm(key) => {
            let mut nonce = [0u8; NONCE_LEN];
            random.fill(&mut nonce).map_err(no_randomness)?;
            let mut sealed = value;
            key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut sealed)
                .map_err(|_| "AES-GCM refused to seal".to_string())?;
            Ok([nonce.as_slice(), &sealed].concat())
        }
        Cipher::Cbc128(key) => {
            let mut iv = [0u8; 16];
            random.fill(&mut iv).map_err(no_randomness)?;
            let sealed =
                cbc::Encryptor::<aes::Aes128>::new(key.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(&value);
            Ok([iv.as_slice(), &sealed].concat())
        }
        Cipher::Cbc256(key) => {
            let mut iv = [0u8; 16];
            random.fill(&mut iv).map_err(no_randomness)?;
            let sealed =
                cbc::Encryptor::<aes::Aes256>::new(key.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(&value);
            Ok([iv.as_slice(), &sealed].concat())
        }
        Cipher::Secretbox(key) => {
            let mut nonce = [0u8; 24];
            random.fill(&mut nonce).map_err(no_randomness)?;
            let sealed = key
                .encrypt(&nonce.into(), value.as_slice())
                .map_err(|_| "secretbox refused to seal".to_string())?;
            Ok([nonce.as_slice(), &sealed].concat())
        }
    }
}

/// What [`seal_with`] sealed (the part after the prefix), opened.
fn open_with(cipher: &Cipher, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, ()> {
    match cipher {
        Cipher::Gcm(key) => {
            let (nonce, sealed) = sealed.split_at_checked(NONCE_LEN).ok_or(())?;
            let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| ())?;
            let mut buffer = sealed.to_vec();
            let len = key
                .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buffer)
                .map_err(|_| ())?
                .len();
            buffer.truncate(len);
            Ok(buffer)
        }
        Cipher::Cbc128(key) => {
            let (iv, sealed) = sealed.split_at_checked(16).ok_or(())?;
            let iv: [u8; 16] = iv.try_into().map_err(|_| ())?;
            cbc::Decryptor::<aes::Aes128>::new(key.into(), &iv.into())
                .decrypt_padded_vec_mut::<Pkcs7>(sealed)
                .map_err(|_| ())
        }
        Cipher::Cbc256(key) => {
            let (iv, sealed) = sealed.split_at_checked(16).ok_or(())?;
            let iv: [u8; 16] = iv.try_into().map_err(|_| ())?;
            cbc::Decryptor::<aes::Aes256>::new(key.into(), &iv.into())
                .decrypt_padded_vec_mut::<Pkcs7>(sealed)
                .map_err(|_| ())
        }
        Cipher::Secretbox(key) => {
            let (nonce, sealed) = sealed.split_at_checked(24).ok_or(())?;
            let nonce: [u8; 24] = nonce.try_into().map_err(|_| ())?;
            key.decrypt(&nonce.into(), sealed).map_err(|_| ())
        }
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
            Some(Provider::Keys { kind, keys }) => {
                let Some((name, cipher)) = keys.first() else {
                    return Ok(value);
                };
                let sealed = seal_with(cipher, &self.random, key, value)?;
                Ok([format!("{PREFIX}{kind}:v1:{name}:").as_bytes(), &sealed].concat())
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
            let Provider::Keys { kind, keys } = provider else {
                continue;
            };
            for (name, cipher) in keys {
                let head = format!("{PREFIX}{kind}:v1:{name}:");
                let Some(sealed) = stored.strip_prefix(head.as_bytes()) else {
                    continue;
                };
                return open_with(cipher, key, sealed).map_err(|()| {
                    format!("{kind} key {name:?} does not open it (another key of that name, or tampered)")
                });
            }
        }
        let head: String = String::from_utf8_lossy(&stored[..stored.len().min(40)])
            .split(':')
            .take(5)
            .collect::<Vec<_>>()
            .join(":");
        Err(format!("sealed as {head}, which no configured key opens"))
    }

    fn form(&self, key: &[u8], stored: &[u8]) -> skiff_store::StoredForm {
        let name = match stored.strip_prefix(PREFIX.as_bytes()) {
            // `<kind>:v1:<key name>:…`
            Some(rest) => {
                let mut parts = rest.splitn(4, |b| *b == b':');
                let kind = String::from_utf8_lossy(parts.next().unwrap_or_default());
                let name = String::from_utf8_lossy(parts.nth(1).unwrap_or_default());
                format!("{kind}:{name}")
            }
            None => "identity".to_string(),
        };
        let written = match self.rule(key).and_then(|rule| rule.providers.first()) {
            Some(Provider::Keys { kind, keys }) => keys.first().map(|(key_name, _)| format!("{kind}:{key_name}")),
            Some(Provider::Identity) | None => None,
        };
        let current = written.as_deref().unwrap_or("identity") == name;
        skiff_store::StoredForm { name, current }
    }
}

impl Encryption {
    /// The form each configured resource is written in now: its store key
    /// prefix, and `<provider>:<key name>` or `identity`.
    pub fn write_forms(&self) -> Vec<(String, String)> {
        self.rules
            .iter()
            .flat_map(|rule| {
                let form = match rule.providers.first() {
                    Some(Provider::Keys { kind, keys }) => keys
                        .first()
                        .map_or_else(|| "identity".to_string(), |(name, _)| format!("{kind}:{name}")),
                    _ => "identity".to_string(),
                };
                rule.prefixes.iter().map(move |p| (p.clone(), form.clone()))
            })
            .collect()
    }

    /// A configuration `text` with a new AES-256-GCM key first among the
    /// `aesgcm` keys of every rule that has them (or, for a rule whose
    /// first provider is not `aesgcm`, a new `aesgcm` provider first):
    /// what rotation writes. The older keys stay, so what they sealed
    /// still opens. The new key is named `key<n>`, `n` one more than the
    /// highest number in use.
    pub fn rotated(text: &str) -> Result<(String, String), String> {
        Encryption::parse(text)?;
        let mut config: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        let mut highest = 0u64;
        let mut names = Vec::new();
        collect_key_names(&config, &mut names);
        for name in &names {
            if let Some(n) = name.strip_prefix("key").and_then(|n| n.parse::<u64>().ok()) {
                highest = highest.max(n);
            }
        }
        let name = format!("key{}", highest + 1);
        let mut secret = [0u8; 32];
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| "no randomness".to_string())?;
        let secret = base64::engine::general_purpose::STANDARD.encode(secret);
        let new_key =
            serde_yaml::to_value(serde_json::json!({"name": name, "secret": secret})).map_err(|e| e.to_string())?;
        let resources = config
            .get_mut("resources")
            .and_then(|r| r.as_sequence_mut())
            .ok_or("the configuration lists no resources")?;
        for rule in resources {
            let Some(providers) = rule.get_mut("providers").and_then(|p| p.as_sequence_mut()) else {
                continue;
            };
            let existing = providers.iter_mut().find_map(|p| {
                p.get_mut("aesgcm")
                    .and_then(|a| a.get_mut("keys"))
                    .and_then(|k| k.as_sequence_mut())
            });
            match existing {
                Some(keys) => keys.insert(0, new_key.clone()),
                None => {
                    let provider = serde_yaml::to_value(serde_json::json!({"aesgcm": {"keys": [new_key.clone()]}}))
                        .map_err(|e| e.to_string())?;
                    providers.insert(0, provider);
                }
            }
            // The provider holding the new key writes.
            if let Some(at) = providers.iter().position(|p| p.get("aesgcm").is_some())
                && at != 0
            {
                let provider = providers.remove(at);
                providers.insert(0, provider);
            }
        }
        let text = serde_yaml::to_string(&config).map_err(|e| e.to_string())?;
        Encryption::parse(&text)?;
        Ok((text, name))
    }
}

fn collect_key_names(value: &serde_yaml::Value, names: &mut Vec<String>) {
    match value {
        serde_yaml::Value::Mapping(map) => {
            if let (Some(serde_yaml::Value::String(name)), Some(_)) = (map.get("name"), map.get("secret")) {
                names.push(name.clone());
            }
            map.values().for_each(|v| collect_key_names(v, names));
        }
        serde_yaml::Value::Sequence(items) => items.iter().for_each(|v| collect_key_names(v, names)),
        _ => {}
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
    fn rotation_puts_a_new_key_first_and_keeps_the_old_ones() {
        let first = Encryption::default_config().unwrap();
        let before = Encryption::parse(&first).unwrap();
        let sealed = before.seal(SECRET, b"v".to_vec()).unwrap();
        assert_eq!(
            before.form(SECRET, &sealed),
            skiff_store::StoredForm {
                name: "aesgcm:key1".into(),
                current: true
            }
        );
        let (text, name) = Encryption::rotated(&first).unwrap();
        assert_eq!(name, "key2");
        let after = Encryption::parse(&text).unwrap();
        assert_eq!(
            after.write_forms(),
            [("/registry/core/secrets/".to_string(), "aesgcm:key2".to_string())]
        );
        // The old key still opens what it sealed, which is no longer current.
        assert_eq!(after.open(SECRET, sealed.clone()).unwrap(), b"v");
        assert!(!after.form(SECRET, &sealed).current);
        let resealed = after.seal(SECRET, b"v".to_vec()).unwrap();
        assert_eq!(after.form(SECRET, &resealed).name, "aesgcm:key2");
        assert!(after.form(SECRET, &resealed).current);
        // Plain values are identity, and not current under a key.
        assert_eq!(after.form(SECRET, b"{}").name, "identity");
        assert!(!after.form(SECRET, b"{}").current);
        assert_eq!(Encryption::rotated(&text).unwrap().1, "key3");
    }

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
    fn every_provider_opens_what_it_sealed_and_the_others_read_it() {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let short = base64::engine::general_purpose::STANDARD.encode([8u8; 16]);
        let with = |providers: &str| {
            Encryption::parse(&format!(
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
                 - resources: [secrets]\n  providers:\n{providers}"
            ))
            .unwrap()
        };
        let keys =
            |kind: &str, secret: &str| format!("  - {kind}:\n      keys:\n      - name: k\n        secret: {secret}\n");
        let all = [
            ("aesgcm", keys("aesgcm", &key)),
            ("aescbc", keys("aescbc", &key)),
            ("aescbc", keys("aescbc", &short)),
            ("secretbox", keys("secretbox", &key)),
        ];
        let plain = b"{\"data\":{\"k\":\"dmFsdWU=\"}}".to_vec();
        for (kind, provider) in &all {
            let sealed = with(provider).seal(SECRET, plain.clone()).unwrap();
            assert!(sealed.starts_with(format!("k8s:enc:{kind}:v1:k:").as_bytes()), "{kind}");
            assert!(!sealed.windows(8).any(|w| w == b"dmFsdWU="), "{kind}");
            assert_eq!(with(provider).open(SECRET, sealed.clone()).unwrap(), plain, "{kind}");
            // A configuration that writes with another provider still
            // reads it, when it lists this one.
            let migrating = with(&format!(
                "{}{provider}",
                keys("secretbox", &key).replace("name: k", "name: next")
            ));
            assert_eq!(migrating.open(SECRET, sealed).unwrap(), plain, "{kind}");
        }
    }

    #[test]
    fn bad_configurations_are_refused_with_their_reason() {
        let head = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n";
        for (providers, says) in [
            ("  - kms:\n      name: k\n", "not supported"),
            (
                "  - secretbox:\n      keys:\n      - name: k\n        secret: c2hvcnQ=\n",
                "must be 32",
            ),
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
