//! Registry credentials in Docker's config format, as Kubernetes pull
//! secrets carry them, and which of them apply to an image reference.
//!
//! A `kubernetes.io/dockerconfigjson` Secret holds `{"auths": {KEY:
//! ENTRY}}` under `.dockerconfigjson`; the older `kubernetes.io/dockercfg`
//! holds `{KEY: ENTRY}` under `.dockercfg`. An entry carries `username`
//! and `password`, or `auth` (base64 of `user:password`), which wins.
//!
//! A key is a registry host, with an optional port and path, optionally
//! behind `http://` or `https://`; `*` stands for one DNS label of the
//! host. It applies to a reference whose registry host matches (same
//! number of labels, same port) and whose repository starts with the
//! key's path. `index.docker.io` and `registry-1.docker.io` are Docker
//! Hub, `docker.io`. Several may apply; [`Keyring::lookup`] returns them
//! most specific first (longest path, then fewest wildcards), and a
//! puller tries them in turn, as the kubelet does.

use serde::Deserialize;
use std::collections::BTreeMap;

/// One registry login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// The key it was filed under, for messages.
    pub key: String,
    pub username: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    auth: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

/// Where a key applies: host labels (`*` is any one), port, path prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    labels: Vec<String>,
    port: Option<String>,
    path: String,
}

/// The registry and repository of a reference, as a key is matched.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    labels: Vec<String>,
    port: Option<String>,
    path: String,
}

const DOCKER_HUB: &str = "docker.io";

fn hub_alias(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
        other => other,
    }
}

fn split_host_port(host_port: &str) -> (Vec<String>, Option<String>) {
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, Some(port.to_string()))
        }
        _ => (host_port, None),
    };
    let host = hub_alias(&host.to_ascii_lowercase()).to_string();
    (host.split('.').map(str::to_string).collect(), port)
}

impl Pattern {
    fn parse(key: &str) -> Option<Pattern> {
        let bare = key
            .strip_prefix("https://")
            .or_else(|| key.strip_prefix("http://"))
            .unwrap_or(key);
        let (host_port, path) = bare.split_once('/').unwrap_or((bare, ""));
        if host_port.is_empty() {
            return None;
        }
        let (labels, port) = split_host_port(host_port);
        // Docker Hub's legacy key names the API version, not a repository.
        let path = if labels.join(".") == DOCKER_HUB && path.starts_with("v1") {
            ""
        } else {
            path.trim_end_matches('/')
        };
        Some(Pattern {
            labels,
            port,
            path: path.to_string(),
        })
    }

    fn matches(&self, target: &Target) -> bool {
        self.port == target.port
            && self.labels.len() == target.labels.len()
            && self.labels.iter().zip(&target.labels).all(|(p, t)| p == "*" || p == t)
            && (self.path.is_empty()
                || target.path == self.path
                || target
                    .path
                    .strip_prefix(&self.path)
                    .is_some_and(|rest| rest.starts_with('/')))
    }

    fn wildcards(&self) -> usize {
        self.labels.iter().filter(|l| *l == "*").count()
    }
}

impl Target {
    /// `registry/repository[:tag][@digest]`; a first component without a
    /// dot or a port (and not `localhost`) is a Docker Hub repository.
    fn parse(reference: &str) -> Target {
        let without_digest = reference.split('@').next().unwrap_or(reference);
        let (first, rest) = without_digest.split_once('/').unwrap_or(("", without_digest));
        let is_registry = first.contains('.') || first.contains(':') || first == "localhost";
        let (registry, repository) = if is_registry {
            (first, rest)
        } else {
            (DOCKER_HUB, without_digest)
        };
        // A tag follows the last component's ':'.
        let repository = match repository.rsplit_once('/') {
            Some((head, last)) => format!("{head}/{}", last.split(':').next().unwrap_or(last)),
            None => repository.split(':').next().unwrap_or(repository).to_string(),
        };
        let (labels, port) = split_host_port(registry);
        Target {
            labels,
            port,
            path: repository,
        }
    }
}

/// Why a pull secret's content could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadConfig(String);

/// The credentials of a pod's pull secrets.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    entries: Vec<(Pattern, Credential)>,
}

impl Keyring {
    /// Adds the entries of a `.dockerconfigjson` document.
    pub fn add_docker_config_json(&mut self, bytes: &[u8]) -> Result<(), BadConfig> {
        let config: DockerConfigJson =
            serde_json::from_slice(bytes).map_err(|e| BadConfig(format!("not a docker config.json: {e}")))?;
        self.add(config.auths)
    }

    /// Adds the entries of a legacy `.dockercfg` document.
    pub fn add_dockercfg(&mut self, bytes: &[u8]) -> Result<(), BadConfig> {
        let config: BTreeMap<String, Entry> =
            serde_json::from_slice(bytes).map_err(|e| BadConfig(format!("not a .dockercfg: {e}")))?;
        self.add(config)
    }

    fn add(&mut self, entries: BTreeMap<String, Entry>) -> Result<(), BadConfig> {
        for (key, entry) in entries {
            let Some(pattern) = Pattern::parse(&key) else {
                return Err(BadConfig(format!("{key:?} names no registry")));
            };
            let (username, password) = match entry.auth.as_deref().filter(|a| !a.is_empty()) {
                Some(auth) => decode_auth(auth)
                    .ok_or_else(|| BadConfig(format!("the auth of {key:?} is not base64 of user:password")))?,
                None => (entry.username.unwrap_or_default(), entry.password.unwrap_or_default()),
            };
            self.entries.push((
                pattern,
                Credential {
                    key,
                    username,
                    password,
                },
            ));
        }
        Ok(())
    }

    /// Adds the logins of a pull Secret of `kind` (its `type`), whose
    /// data `field` gives by key: `kubernetes.io/dockerconfigjson`
    /// (`.dockerconfigjson`) or `kubernetes.io/dockercfg` (`.dockercfg`).
    pub fn add_secret<'a>(
        &mut self,
        kind: Option<&str>,
        field: impl Fn(&str) -> Option<&'a [u8]>,
    ) -> Result<(), BadConfig> {
        match (kind, field(".dockerconfigjson"), field(".dockercfg")) {
            (Some("kubernetes.io/dockerconfigjson"), Some(json), _) => self.add_docker_config_json(json),
            (Some("kubernetes.io/dockercfg"), _, Some(cfg)) => self.add_dockercfg(cfg),
            (kind, _, _) => Err(BadConfig(format!(
                "it is of type {}, not kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg",
                kind.unwrap_or("Opaque")
            ))),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The credentials that apply to `reference`, most specific first.
    pub fn lookup(&self, reference: &str) -> Vec<&Credential> {
        let target = Target::parse(reference);
        let mut found: Vec<&(Pattern, Credential)> = self.entries.iter().filter(|(p, _)| p.matches(&target)).collect();
        found.sort_by(|(a, _), (b, _)| b.path.len().cmp(&a.path.len()).then(a.wildcards().cmp(&b.wildcards())));
        found.into_iter().map(|(_, c)| c).collect()
    }
}

/// `user:password` from its base64 (standard alphabet, padding optional).
fn decode_auth(auth: &str) -> Option<(String, String)> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let text = String::from_utf8(LENIENT.decode(auth.trim()).ok()?).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn keyring(json: &str) -> Keyring {
        let mut keyring = Keyring::default();
        keyring.add_docker_config_json(json.as_bytes()).unwrap();
        keyring
    }

    fn users<'a>(keyring: &'a Keyring, reference: &str) -> Vec<&'a str> {
        keyring
            .lookup(reference)
            .into_iter()
            .map(|c| c.username.as_str())
            .collect()
    }

    #[test]
    fn auth_wins_over_username_and_password() {
        // "alice:s3cr:et" in base64; a password may hold ':'.
        let k = keyring(
            r#"{"auths": {"127.0.0.1:5000": {"username": "bob", "password": "x", "auth": "YWxpY2U6czNjcjpldA=="}}}"#,
        );
        let found = k.lookup("127.0.0.1:5000/app:1");
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].username.as_str(), found[0].password.as_str()),
            ("alice", "s3cr:et")
        );
        let k = keyring(r#"{"auths": {"127.0.0.1:5000": {"username": "bob", "password": "x"}}}"#);
        assert_eq!(users(&k, "127.0.0.1:5000/app"), ["bob"]);
    }

    #[test]
    fn keys_match_by_host_port_and_path_most_specific_first() {
        let k = keyring(
            r#"{"auths": {
                "https://registry.example.com/": {"username": "host"},
                "registry.example.com/team": {"username": "team"},
                "*.example.com": {"username": "wild"},
                "registry.example.com:5000": {"username": "port"},
                "https://index.docker.io/v1/": {"username": "hub"}
            }}"#,
        );
        assert_eq!(users(&k, "registry.example.com/team/app:1"), ["team", "host", "wild"]);
        assert_eq!(users(&k, "registry.example.com/teamster/app"), ["host", "wild"]);
        assert_eq!(users(&k, "registry.example.com:5000/app@sha256:00"), ["port"]);
        assert_eq!(users(&k, "a.b.example.com/app"), Vec::<&str>::new(), "* is one label");
        assert_eq!(users(&k, "busybox:1.36"), ["hub"]);
        assert_eq!(users(&k, "docker.io/library/busybox"), ["hub"]);
        assert_eq!(users(&k, "localhost/app"), Vec::<&str>::new());
    }

    #[test]
    fn legacy_dockercfg_and_bad_documents() {
        let mut k = Keyring::default();
        k.add_dockercfg(br#"{"127.0.0.1:5000": {"auth": "dTpw"}}"#).unwrap();
        assert_eq!(users(&k, "127.0.0.1:5000/x"), ["u"]);
        assert!(Keyring::default().add_docker_config_json(br#"{"auths": []}"#).is_err());
        assert!(Keyring::default().add_docker_config_json(b"not json").is_err());
        assert!(
            Keyring::default()
                .add_docker_config_json(br#"{"auths": {"r": {"auth": "!!"}}}"#)
                .is_err()
        );
    }
}
