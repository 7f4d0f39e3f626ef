//! Ingress rules, compiled for matching. Pure.
//!
//! Rules of every Ingress skiff serves are merged, oldest Ingress first.
//! A request's host picks one group of rules: those naming the host
//! exactly, else those whose wildcard (`*.example.com`, one label) covers
//! it, else those naming no host. In that group the longest matching path
//! wins, `Exact` before `Prefix` at equal length (`ImplementationSpecific`
//! is `Prefix`); a `Prefix` matches whole path elements, so `/api` matches
//! `/api` and `/api/v1` but not `/apis`. Without a match, the oldest
//! Ingress's `defaultBackend` serves, if any.

use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};

use crate::table::key_of;

/// What a matched rule sends the request to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Service {
        name: String,
        port: Port,
    },
    /// A backend skiff does not serve (a `resource` backend), and why.
    Unsupported(String),
}

/// A Service port as an Ingress backend names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Port {
    Number(i32),
    Name(String),
}

/// A matched backend and the Ingress it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// `namespace/name` of the Ingress.
    pub ingress: String,
    pub namespace: String,
    pub target: Target,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Host {
    Any,
    Exact(String),
    /// `*.example.com`, kept as `.example.com`.
    Wildcard(String),
}

impl Host {
    fn parse(host: Option<&str>) -> Host {
        match host.map(str::to_ascii_lowercase) {
            None => Host::Any,
            Some(h) if h.is_empty() => Host::Any,
            Some(h) => match h.strip_prefix('*') {
                Some(suffix) => Host::Wildcard(suffix.to_string()),
                None => Host::Exact(h),
            },
        }
    }

    fn covers(&self, host: &str) -> bool {
        match self {
            Host::Any => true,
            Host::Exact(exact) => exact == host,
            Host::Wildcard(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Host::Exact(_) => 0,
            Host::Wildcard(_) => 1,
            Host::Any => 2,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PathKind {
    Exact,
    Prefix,
}

#[derive(Debug)]
struct Rule {
    host: Host,
    path: String,
    kind: PathKind,
    backend: Backend,
}

impl Rule {
    /// How well the rule matches `path`: longer is better, then Exact.
    fn matches(&self, path: &str) -> Option<(usize, u8)> {
        match self.kind {
            PathKind::Exact => (path == self.path).then_some((self.path.len(), 1)),
            PathKind::Prefix => {
                let prefix = self.path.trim_end_matches('/');
                let hit = prefix.is_empty()
                    || path == prefix
                    || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'));
                hit.then_some((prefix.len(), 0))
            }
        }
    }
}

/// A TLS section: the hosts it covers and the Secret holding their
/// certificate.
#[derive(Debug)]
struct Tls {
    hosts: Vec<Host>,
    namespace: String,
    secret: String,
}

/// Every served Ingress's rules, ready to match.
#[derive(Debug, Default)]
pub struct Rules {
    rules: Vec<Rule>,
    default: Option<Backend>,
    tls: Vec<Tls>,
}

/// Whether skiff serves this Ingress: class `skiff`, or no class at all.
pub fn is_ours(ingress: &Ingress) -> bool {
    let class = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
        .or_else(|| {
            ingress
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/ingress.class"))
                .map(String::as_str)
        });
    class.is_none_or(|c| c == "skiff")
}

fn target(backend: &IngressBackend) -> Target {
    match (&backend.service, &backend.resource) {
        (Some(service), _) => {
            let port = service.port.as_ref();
            let port = match (port.and_then(|p| p.number), port.and_then(|p| p.name.clone())) {
                (Some(n), _) => Port::Number(n),
                (None, Some(name)) => Port::Name(name),
                (None, None) => {
                    return Target::Unsupported(format!("the backend Service {} names no port", service.name));
                }
            };
            Target::Service {
                name: service.name.clone(),
                port,
            }
        }
        (None, Some(resource)) => Target::Unsupported(format!(
            "resource backends ({} {}) are not served by skiff's ingress",
            resource.kind, resource.name
        )),
        (None, None) => Target::Unsupported("the backend names neither a Service nor a resource".into()),
    }
}

impl Rules {
    /// The rules of the Ingresses skiff serves among `ingresses`.
    pub fn compile(ingresses: &[Arc<Ingress>]) -> Rules {
        let mut ours: Vec<&Ingress> = ingresses.iter().map(Arc::as_ref).filter(|i| is_ours(i)).collect();
        ours.sort_by(|a, b| {
            let created = |i: &Ingress| i.metadata.creation_timestamp.clone().map(|t| t.0);
            created(a)
                .cmp(&created(b))
                .then_with(|| key_of(&a.metadata).cmp(&key_of(&b.metadata)))
        });
        let mut compiled = Rules::default();
        for ingress in ours {
            let (namespace, name) = key_of(&ingress.metadata);
            let backend = |target: Target| Backend {
                ingress: format!("{namespace}/{name}"),
                namespace: namespace.clone(),
                target,
            };
            let Some(spec) = ingress.spec.as_ref() else { continue };
            if compiled.default.is_none()
                && let Some(default) = &spec.default_backend
            {
                compiled.default = Some(backend(target(default)));
            }
            for rule in spec.rules.iter().flatten() {
                let host = Host::parse(rule.host.as_deref());
                for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
                    compiled.rules.push(Rule {
                        host: host.clone(),
                        path: path.path.clone().unwrap_or_else(|| "/".into()),
                        kind: if path.path_type == "Exact" {
                            PathKind::Exact
                        } else {
                            PathKind::Prefix
                        },
                        backend: backend(target(&path.backend)),
                    });
                }
            }
            for tls in spec.tls.iter().flatten() {
                if let Some(secret) = &tls.secret_name {
                    compiled.tls.push(Tls {
                        hosts: tls.hosts.iter().flatten().map(|h| Host::parse(Some(h))).collect(),
                        namespace: namespace.clone(),
                        secret: secret.clone(),
                    });
                }
            }
        }
        compiled
    }

    /// The backend for a request to `host` (no port, any case) and `path`.
    pub fn route(&self, host: &str, path: &str) -> Option<&Backend> {
        let host = host.to_ascii_lowercase();
        let group = self
            .rules
            .iter()
            .filter(|r| r.host.covers(&host))
            .map(|r| r.host.rank())
            .min();
        let best = group.and_then(|rank| {
            self.rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.host.rank() == rank && r.host.covers(&host))
                .filter_map(|(i, r)| {
                    r.matches(path)
                        .map(|(len, kind)| ((len, kind, std::cmp::Reverse(i)), r))
                })
                .max_by_key(|(score, _)| *score)
                .map(|(_, r)| &r.backend)
        });
        best.or(self.default.as_ref())
    }

    /// The Secret (namespace, name) whose certificate serves `host`.
    pub fn certificate_for(&self, host: &str) -> Option<(&str, &str)> {
        let host = host.to_ascii_lowercase();
        let exact = self
            .tls
            .iter()
            .find(|t| t.hosts.iter().any(|h| *h == Host::Exact(host.clone())));
        let any = || self.tls.iter().find(|t| t.hosts.iter().any(|h| h.covers(&host)));
        exact.or_else(any).map(|t| (t.namespace.as_str(), t.secret.as_str()))
    }

    /// Every (namespace, Secret) a TLS section names.
    pub fn secrets(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tls.iter().map(|t| (t.namespace.as_str(), t.secret.as_str()))
    }

    /// Every backend, with the Ingress it belongs to.
    pub fn backends(&self) -> impl Iterator<Item = &Backend> {
        self.rules.iter().map(|r| &r.backend).chain(self.default.iter())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ingress(name: &str, created: &str, spec: serde_json::Value) -> Arc<Ingress> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "d", "creationTimestamp": created},
                "spec": spec}),
            )
            .unwrap(),
        )
    }

    fn service(name: &str, port: i32) -> serde_json::Value {
        json!({"service": {"name": name, "port": {"number": port}}})
    }

    fn routed(rules: &Rules, host: &str, path: &str) -> Option<String> {
        rules.route(host, path).map(|b| match &b.target {
            Target::Service { name, .. } => name.clone(),
            Target::Unsupported(why) => why.clone(),
        })
    }

    #[test]
    fn hosts_and_paths_pick_the_most_specific_rule() {
        let rules = Rules::compile(&[
            ingress(
                "b",
                "2026-01-02T00:00:00Z",
                json!({
                "defaultBackend": service("fallback", 80),
                "rules": [
                    {"host": "shop.example.com", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": service("shop", 80)},
                        {"path": "/api", "pathType": "Prefix", "backend": service("api", 80)},
                        {"path": "/api/health", "pathType": "Exact", "backend": service("health", 80)}]}},
                    {"host": "*.example.com", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": service("wild", 80)}]}},
                    {"http": {"paths": [{"path": "/any", "pathType": "ImplementationSpecific", "backend": service("any", 80)}]}}]}),
            ),
            ingress(
                "a",
                "2026-01-01T00:00:00Z",
                json!({
                "defaultBackend": service("older-default", 80),
                "ingressClassName": "skiff"}),
            ),
            ingress(
                "other",
                "2026-01-01T00:00:00Z",
                json!({
                "ingressClassName": "nginx", "defaultBackend": service("not-ours", 80)}),
            ),
        ]);
        assert_eq!(routed(&rules, "SHOP.example.com", "/api/v1").as_deref(), Some("api"));
        assert_eq!(routed(&rules, "shop.example.com", "/apis").as_deref(), Some("shop"));
        assert_eq!(
            routed(&rules, "shop.example.com", "/api/health").as_deref(),
            Some("health")
        );
        assert_eq!(
            routed(&rules, "shop.example.com", "/api/health/x").as_deref(),
            Some("api")
        );
        assert_eq!(routed(&rules, "blog.example.com", "/x").as_deref(), Some("wild"));
        assert_eq!(
            routed(&rules, "a.b.example.com", "/any/1").as_deref(),
            Some("any"),
            "one label only"
        );
        assert_eq!(
            routed(&rules, "elsewhere", "/nothing").as_deref(),
            Some("older-default")
        );
    }

    #[test]
    fn certificates_follow_tls_hosts_and_odd_backends_say_why() {
        let rules = Rules::compile(&[ingress(
            "t",
            "2026-01-01T00:00:00Z",
            json!({
            "tls": [{"hosts": ["*.example.com"], "secretName": "wild-cert"}, {"hosts": ["a.example.com"], "secretName": "a-cert"}],
            "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"resource": {"kind": "Bucket", "name": "b"}}}]}}]}),
        )]);
        assert_eq!(rules.certificate_for("a.example.com"), Some(("d", "a-cert")));
        assert_eq!(rules.certificate_for("b.example.com"), Some(("d", "wild-cert")));
        assert_eq!(rules.certificate_for("example.org"), None);
        assert!(
            routed(&rules, "x", "/")
                .unwrap()
                .contains("resource backends (Bucket b)")
        );
        assert_eq!(rules.secrets().count(), 2);
    }
}
