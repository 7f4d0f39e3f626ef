//! What a request asks for: the verb, the resource and the object, parsed
//! from the method, path and query alone, before anything is looked up.

use http::Method;

/// The Kubernetes verb of a resource request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// A request for a resource, e.g. `PATCH /apis/apps/v1/namespaces/a/deployments/web/scale`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRequest {
    pub verb: Verb,
    /// Empty for the core group.
    pub group: String,
    pub version: String,
    /// The plural resource name, e.g. `deployments`.
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses a path under `/api` or `/apis`; `None` when it names no resource
/// (a discovery document, or nothing at all).
pub fn parse(method: &Method, path: &str, watch: bool) -> Option<ResourceRequest> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    if rest.is_empty() || rest.iter().any(|p| p.is_empty()) {
        return None;
    }
    // `namespaces/<ns>/<resource>…` addresses a namespaced resource, except
    // the namespace object's own subresources (`namespaces/<ns>/status`).
    let (namespace, rest) = match rest {
        ["namespaces", ns, resource, tail @ ..] if !matches!(*resource, "status" | "finalize") => {
            let mut rest = vec![*resource];
            rest.extend_from_slice(tail);
            (Some(ns.to_string()), rest)
        }
        _ => (None, rest.to_vec()),
    };
    let (resource, name, subresource) = match rest.as_slice() {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(name.to_string()), None),
        [resource, name, sub] => (*resource, Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    let verb = match (method.clone(), name.is_some()) {
        (Method::GET, _) if watch => Verb::Watch,
        (Method::GET, true) => Verb::Get,
        (Method::GET, false) => Verb::List,
        (Method::POST, _) => Verb::Create,
        (Method::PUT, _) => Verb::Update,
        (Method::PATCH, _) => Verb::Patch,
        (Method::DELETE, true) => Verb::Delete,
        (Method::DELETE, false) => Verb::DeleteCollection,
        _ => return None,
    };
    Some(ResourceRequest {
        verb,
        group: group.to_string(),
        version: version.to_string(),
        resource: resource.to_string(),
        namespace,
        name,
        subresource,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, path: &str) -> ResourceRequest {
        parse(&method, path, false).unwrap()
    }

    #[test]
    fn paths_name_resources_like_kube_apiserver() {
        let r = req(Method::GET, "/api/v1/namespaces/default/pods");
        assert_eq!(
            (r.verb, r.group.as_str(), r.resource.as_str()),
            (Verb::List, "", "pods")
        );
        assert_eq!(r.namespace.as_deref(), Some("default"));

        let r = req(Method::PATCH, "/apis/apps/v1/namespaces/a/deployments/web/scale");
        assert_eq!(r.verb, Verb::Patch);
        assert_eq!(r.group, "apps");
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource.as_deref(), Some("scale"));

        let r = req(Method::GET, "/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("kube-system"), None)
        );

        let r = req(Method::PUT, "/api/v1/namespaces/x/finalize");
        assert_eq!(
            (r.resource.as_str(), r.subresource.as_deref()),
            ("namespaces", Some("finalize"))
        );

        let r = req(Method::GET, "/api/v1/pods");
        assert_eq!((r.verb, r.namespace), (Verb::List, None));

        assert_eq!(parse(&Method::GET, "/api/v1/pods", true).unwrap().verb, Verb::Watch);
        assert_eq!(
            req(Method::DELETE, "/api/v1/namespaces/a/pods").verb,
            Verb::DeleteCollection
        );
    }

    #[test]
    fn discovery_and_nonsense_are_not_resources() {
        assert!(parse(&Method::GET, "/api/v1", false).is_none());
        assert!(parse(&Method::GET, "/apis/apps/v1", false).is_none());
        assert!(parse(&Method::GET, "/version", false).is_none());
        assert!(parse(&Method::GET, "/api/v1/namespaces/a/pods/p/log/extra", false).is_none());
        assert!(parse(&Method::GET, "/api/v1//pods", false).is_none());
        assert!(parse(&Method::OPTIONS, "/api/v1/pods", false).is_none());
    }
}
