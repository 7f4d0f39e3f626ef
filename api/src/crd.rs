//! CustomResourceDefinitions: what a CRD makes the server serve, the
//! checks a CRD must pass. The status the server gives a CRD is its kind's
//! ([`crate::kinds::custom_resource_definition`]).
//!
//! The catalog follows the stored CRDs: [`sync`] loads them at start and
//! then watches their keys, so every API server of a cluster serves the
//! same custom resources. The server that writes a CRD also updates its own
//! catalog at once, so a client may use the new resource right after the
//! create returns.

use std::sync::Arc;

use serde_json::Value;
use skiff_store::{EventKind, KeyRange, RangeRequest, ReadConsistency};

use crate::catalog::{Catalog, Resource, ScalePaths, Shape, Subresources};
use crate::error::Cause;
use crate::meta;
use crate::printer::CustomColumn;

const GROUP: &str = "apiextensions.k8s.io";
const KIND: &str = "CustomResourceDefinition";

/// Whether a resource is the CRD kind itself.
pub fn is_crd(resource: &Resource) -> bool {
    resource.group == GROUP && resource.kind == KIND
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn strings(value: &Value, pointer: &str) -> Vec<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default()
}

/// `.spec.replicas` → `spec.replicas`.
fn json_path(path: &str) -> String {
    path.trim_start_matches('.').to_string()
}

/// The printer columns of one CRD version, as declared.
fn printer_columns(version: &Value) -> impl Iterator<Item = Result<CustomColumn, String>> + '_ {
    version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(CustomColumn::parse)
}

/// The resources a CRD serves: one per served version.
pub fn resources(crd: &Value) -> Vec<Resource> {
    let group = str_at(crd, "/spec/group");
    let kind = str_at(crd, "/spec/names/kind");
    let plural = str_at(crd, "/spec/names/plural");
    let singular = match str_at(crd, "/spec/names/singular") {
        "" => kind.to_ascii_lowercase(),
        s => s.to_string(),
    };
    let list_kind = match str_at(crd, "/spec/names/listKind") {
        "" => format!("{kind}List"),
        s => s.to_string(),
    };
    let namespaced = str_at(crd, "/spec/scope") != "Cluster";
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool) != Some(false))
        .map(|v| {
            let scale = v.pointer("/subresources/scale").map(|s| ScalePaths {
                spec_replicas: json_path(str_at(s, "/specReplicasPath")),
                status_replicas: json_path(str_at(s, "/statusReplicasPath")),
                label_selector: s.get("labelSelectorPath").and_then(Value::as_str).map(json_path),
            });
            Resource {
                group: group.to_string(),
                version: str_at(v, "/name").to_string(),
                kind: kind.to_string(),
                list_kind: list_kind.clone(),
                plural: plural.to_string(),
                singular: singular.clone(),
                namespaced,
                short_names: strings(crd, "/spec/names/shortNames"),
                categories: strings(crd, "/spec/names/categories"),
                subresources: Subresources {
                    status: v.pointer("/subresources/status").is_some(),
                    scale,
                    ..Subresources::default()
                },
                serving: crate::catalog::Serving::Stored,
                conversion: None,
                shape: Shape::Custom {
                    schema: v.pointer("/schema/openAPIV3Schema").cloned().map(Arc::new),
                    // Refused at write when a path does not parse.
                    columns: printer_columns(v).filter_map(Result::ok).collect(),
                },
                ops: &crate::kinds::custom::OPS,
            }
        })
        .collect()
}

/// What makes a CRD unacceptable, as Kubernetes words it.
pub fn validate(crd: &Value, catalog: &Catalog) -> Vec<Cause> {
    let mut causes = Vec::new();
    let group = str_at(crd, "/spec/group");
    let plural = str_at(crd, "/spec/names/plural");
    let kind = str_at(crd, "/spec/names/kind");
    if group.is_empty() || !group.contains('.') {
        causes.push(Cause::invalid(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural"));
    }
    if kind.is_empty() {
        causes.push(Cause::required("spec.names.kind"));
    }
    let name = meta::name(crd).unwrap_or_default();
    if !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let scope = str_at(crd, "/spec/scope");
    if !matches!(scope, "Namespaced" | "Cluster") {
        causes.push(Cause::not_supported("spec.scope", scope, &["Cluster", "Namespaced"]));
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::required("spec.versions"));
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        causes.push(Cause::invalid(
            "spec.versions",
            storage,
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if str_at(v, "/name").is_empty() {
            causes.push(Cause::required(format!("spec.versions[{i}].name")));
        }
        for (j, column) in printer_columns(v).enumerate() {
            if let Err(error) = column {
                let field = format!("spec.versions[{i}].additionalPrinterColumns[{j}].jsonPath");
                let path = v
                    .pointer(&format!("/additionalPrinterColumns/{j}/jsonPath"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                causes.push(Cause::invalid(
                    field,
                    path,
                    format!("must be a simple json path: {error}"),
                ));
            }
        }
    }
    if catalog
        .resources()
        .iter()
        .any(|r| r.is_builtin() && r.group == group && r.plural == plural)
    {
        causes.push(Cause::invalid(
            "spec.names.plural",
            plural,
            "is served by the API server itself",
        ));
    }
    causes
}

/// Brings the catalog in line with one stored CRD (or its removal).
pub fn reconcile(catalog: &Catalog, previous: Option<&Value>, current: Option<&Value>) {
    let names = |crd: &Value| {
        (
            str_at(crd, "/spec/group").to_string(),
            str_at(crd, "/spec/names/plural").to_string(),
        )
    };
    if let Some(previous) = previous
        && current.is_none_or(|c| names(c) != names(previous))
    {
        let (group, plural) = names(previous);
        catalog.withdraw(&group, &plural);
    }
    if let Some(current) = current {
        let (group, plural) = names(current);
        catalog.replace(&group, &plural, resources(current));
    }
}

/// The store prefix of every CRD.
fn crd_prefix() -> &'static str {
    "/registry/apiextensions.k8s.io/customresourcedefinitions/"
}

/// Loads every stored CRD into the catalog, then follows changes until the
/// store shuts down. Returns after the initial load; the follower runs in
/// a task.
pub async fn sync(store: skiff_store::Store, catalog: Catalog) -> Result<(), skiff_store::Error> {
    let page = store
        .range(
            RangeRequest::new(KeyRange::prefix(crd_prefix())),
            ReadConsistency::Linearizable,
        )
        .await?;
    for kv in &page.kvs {
        if let Ok(crd) = serde_json::from_slice::<Value>(&kv.value) {
            reconcile(&catalog, None, Some(&crd));
        }
    }
    let mut watcher = store.watch(KeyRange::prefix(crd_prefix()), page.revision + 1).await?;
    tokio::spawn(async move {
        while let Some(Ok(events)) = watcher.next().await {
            for event in events {
                let decode = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).ok();
                let previous = event.prev_kv.as_ref().and_then(|kv| decode(&kv.value));
                let current = match event.kind {
                    EventKind::Put => decode(&event.kv.value),
                    EventKind::Delete => None,
                };
                reconcile(&catalog, previous.as_ref(), current.as_ref());
            }
        }
        tracing::debug!("CRD watch ended");
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::custom_resource_definition::status;
    use serde_json::json;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.dev"},
            "spec": {
                "group": "example.dev", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object"}},
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}}},
                    {"name": "v1beta1", "served": false, "storage": false}
                ]
            }
        })
    }

    #[test]
    fn a_crd_serves_its_versions() {
        let served = resources(&crd());
        assert_eq!(served.len(), 1, "unserved versions are skipped");
        let r = &served[0];
        assert_eq!(
            (r.group.as_str(), r.version.as_str(), r.plural.as_str()),
            ("example.dev", "v1", "widgets")
        );
        assert_eq!((r.singular.as_str(), r.list_kind.as_str()), ("widget", "WidgetList"));
        assert!(r.namespaced && r.subresources.status);
        assert_eq!(r.subresources.scale.as_ref().unwrap().spec_replicas, "spec.replicas");
    }

    #[test]
    fn crds_are_validated_and_reconciled() {
        let catalog = Catalog::new();
        assert!(validate(&crd(), &catalog).is_empty());
        let mut bad = crd();
        bad["metadata"]["name"] = json!("wrong");
        bad["spec"]["versions"][0]["storage"] = json!(false);
        assert_eq!(validate(&bad, &catalog).len(), 2);
        let mut builtin = crd();
        builtin["spec"]["group"] = json!("apps");
        builtin["spec"]["names"]["plural"] = json!("deployments");
        builtin["metadata"]["name"] = json!("deployments.apps");
        assert!(!validate(&builtin, &catalog).is_empty());

        reconcile(&catalog, None, Some(&crd()));
        assert!(catalog.lookup("example.dev", "v1", "widgets").is_some());
        reconcile(&catalog, Some(&crd()), None);
        assert!(catalog.lookup("example.dev", "v1", "widgets").is_none());
        assert_eq!(status(&crd())["storedVersions"], json!(["v1"]));
    }
}
