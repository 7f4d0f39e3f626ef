//! Discovery documents: `/version`, the legacy `/api`, `/apis`,
//! `/api/v1`, `/apis/<group>[/<version>]`, and aggregated discovery
//! (`apidiscovery.k8s.io/v2`), all built from the live [`Catalog`].

use serde_json::{Value, json};

use crate::catalog::{Catalog, Resource, Serving};

/// The Content-Type aggregated discovery must be answered with; kubectl
/// ignores the same body under plain `application/json`.
pub const AGGREGATED_CONTENT_TYPE: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The Kubernetes release whose API skiff serves: the `k8s-openapi`
/// feature it is built with.
pub const KUBERNETES_MINOR: u32 = 33;
pub const KUBERNETES_VERSION: &str = "v1.33.0";

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Whether an Accept header asks for aggregated discovery.
pub fn wants_aggregated(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',')
            .any(|part| part.contains("as=APIGroupDiscoveryList") && part.contains("v=v2"))
    })
}

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBERNETES_MINOR.to_string(),
        "gitVersion": format!("{KUBERNETES_VERSION}+skiff-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "n/a (skiff is written in Rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `/api`: the legacy core versions.
pub fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    })
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": entries,
        "preferredVersion": entries.first().cloned().unwrap_or(Value::Null),
    })
}

fn named_groups(catalog: &Catalog) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for gv in catalog.group_versions().into_iter().filter(|gv| !gv.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == gv.group) {
            Some((_, versions)) => versions.push(gv.version),
            None => groups.push((gv.group, vec![gv.version])),
        }
    }
    groups
}

/// `/apis`: every named group.
pub fn group_list(catalog: &Catalog) -> Value {
    let groups: Vec<Value> = named_groups(catalog)
        .iter()
        .map(|(g, versions)| {
            let mut group = group_json(g, versions);
            if let Some(map) = group.as_object_mut() {
                map.remove("kind");
                map.remove("apiVersion");
            }
            group
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(catalog: &Catalog, group: &str) -> Option<Value> {
    named_groups(catalog)
        .into_iter()
        .find(|(g, _)| g == group)
        .map(|(g, versions)| group_json(&g, &versions))
}

/// A subresource as discovery lists it: name, kind (group, version, kind)
/// and verbs.
struct Sub {
    name: &'static str,
    group: String,
    version: String,
    kind: String,
    verbs: &'static [&'static str],
}

fn subresources(resource: &Resource) -> Vec<Sub> {
    let own = |name, verbs| Sub {
        name,
        group: resource.group.clone(),
        version: resource.version.clone(),
        kind: resource.kind.clone(),
        verbs,
    };
    let other = |name, group: &str, version: &str, kind: &str, verbs| Sub {
        name,
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        verbs,
    };
    let s = &resource.subresources;
    let mut subs = Vec::new();
    if s.approval {
        subs.push(own("approval", &["get", "patch", "update"]));
    }
    if s.streams {
        subs.push(other("attach", "", "v1", "PodAttachOptions", &["create", "get"]));
    }
    if s.binding {
        subs.push(other("binding", "", "v1", "Binding", &["create"]));
    }
    if s.eviction {
        subs.push(other("eviction", "policy", "v1", "Eviction", &["create"]));
    }
    if s.finalize {
        subs.push(own("finalize", &["update"]));
    }
    if s.streams {
        subs.push(other("exec", "", "v1", "PodExecOptions", &["create", "get"]));
    }
    if s.log {
        subs.push(own("log", &["get"]));
    }
    if s.streams {
        subs.push(other(
            "portforward",
            "",
            "v1",
            "PodPortForwardOptions",
            &["create", "get"],
        ));
    }
    if s.scale.is_some() {
        subs.push(other(
            "scale",
            "autoscaling",
            "v1",
            "Scale",
            &["get", "patch", "update"],
        ));
    }
    if s.status {
        subs.push(own("status", &["get", "patch", "update"]));
    }
    if s.token {
        subs.push(other(
            "token",
            "authentication.k8s.io",
            "v1",
            "TokenRequest",
            &["create"],
        ));
    }
    if resource.serving == Serving::CustomMetrics {
        for metric in crate::usage::CUSTOM_METRICS {
            subs.push(own(metric, &["get"]));
        }
    }
    subs
}

/// The verbs a resource serves.
fn verbs(resource: &Resource) -> &'static [&'static str] {
    match resource.serving {
        Serving::Stored => ALL_VERBS,
        Serving::Review => &["create"],
        Serving::ResourceMetrics => &["get", "list"],
        Serving::CustomMetrics => &[],
    }
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub fn resource_list(catalog: &Catalog, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<_> = catalog
        .resources()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let mut entries = Vec::new();
    for r in &resources {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs(r),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        // A metrics API lists its metrics only (`pods/<metric>`).
        if r.serving != Serving::CustomMetrics {
            entries.push(entry);
        }
        for sub in subresources(r) {
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if sub.group != r.group || sub.version != r.version {
                entry["group"] = json!(sub.group);
                entry["version"] = json!(sub.version);
            }
            entries.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }))
}

fn aggregated_resource(r: &Resource) -> Value {
    let mut entry = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": verbs(r),
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    let subs: Vec<Value> = subresources(r)
        .into_iter()
        .map(|s| {
            json!({
                "subresource": s.name,
                "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                "verbs": s.verbs,
            })
        })
        .collect();
    if !subs.is_empty() {
        entry["subresources"] = json!(subs);
    }
    entry
}

/// Aggregated discovery for the core group (`/api`) or the named groups
/// (`/apis`).
pub fn aggregated(catalog: &Catalog, core: bool) -> Value {
    let resources = catalog.resources();
    let mut items = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    for gv in catalog.group_versions() {
        if gv.group.is_empty() == core && !groups.contains(&gv.group) {
            groups.push(gv.group.clone());
        }
    }
    for group in groups {
        let versions: Vec<Value> = catalog
            .group_versions()
            .into_iter()
            .filter(|gv| gv.group == group)
            .map(|gv| {
                let entries: Vec<Value> = resources
                    .iter()
                    .filter(|r| r.group == group && r.version == gv.version)
                    .map(|r| aggregated_resource(r))
                    .collect();
                json!({"version": gv.version, "resources": entries, "freshness": "Current"})
            })
            .collect();
        items.push(json!({"metadata": {"name": group}, "versions": versions}));
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_discovery_lists_subresources() {
        let catalog = Catalog::new();
        let core = aggregated(&catalog, true);
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        let pods = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap();
        let subs: Vec<&str> = pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["subresource"].as_str().unwrap())
            .collect();
        assert_eq!(
            subs,
            ["attach", "binding", "eviction", "exec", "log", "portforward", "status"]
        );
        let named = aggregated(&catalog, false);
        assert!(
            named["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["metadata"]["name"] == "apps")
        );
    }

    #[test]
    fn legacy_documents() {
        let catalog = Catalog::new();
        let list = resource_list(&catalog, "apps", "v1").unwrap();
        assert!(
            list["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "deployments/scale" && r["group"] == "autoscaling" && r["kind"] == "Scale")
        );
        assert!(resource_list(&catalog, "apps", "v2").is_none());
        assert_eq!(
            group(&catalog, "apps").unwrap()["preferredVersion"]["groupVersion"],
            "apps/v1"
        );
        assert!(wants_aggregated(Some(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        )));
        assert!(!wants_aggregated(Some("application/json")));
    }
}
