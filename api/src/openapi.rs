//! `/openapi/v2` and `/openapi/v3`, generated from the `k8s-openapi`
//! schemas of the served kinds.
//!
//! What clients rely on: kubectl finds a kind's schema by the
//! `x-kubernetes-group-version-kind` extension (so `kubectl explain`
//! works), and it sends `fieldValidation=Strict` instead of validating on
//! its side when a PATCH operation lists the `fieldValidation` parameter.
//! Custom resources get their CRD's schema, or an open object.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::catalog::{Catalog, Resource, Shape};

/// The documents for one catalog generation.
#[derive(Debug)]
struct Documents {
    generation: u64,
    v2: Arc<Value>,
    /// `api/v1`, `apis/apps/v1`, … → document.
    v3: BTreeMap<String, (String, Arc<Value>)>,
}

/// Builds documents on first use and again after the catalog changes.
#[derive(Debug, Default)]
pub struct OpenApi {
    cache: Mutex<Option<Arc<Documents>>>,
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn definition_name(resource: &Resource) -> String {
    let group = if resource.group.is_empty() {
        "core"
    } else {
        &resource.group
    };
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), resource.version, resource.kind)
}

fn gvk(resource: &Resource) -> Value {
    json!([{"group": resource.group, "version": resource.version, "kind": resource.kind}])
}

/// Generates the schema of each resource into `definitions`, marks it with
/// its group/version/kind, and returns the definition names.
fn definitions(resources: &[Arc<Resource>], settings: SchemaSettings) -> (Map<String, Value>, Vec<String>) {
    let mut generator = settings.into_generator();
    let mut names = Vec::new();
    let mut custom = Map::new();
    for resource in resources {
        match &resource.shape {
            Shape::Builtin { schema, .. } => {
                let reference = schema(&mut generator);
                let name = reference
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.rsplit('/').next())
                    .map(String::from)
                    .unwrap_or_else(|| definition_name(resource));
                names.push(name);
            }
            Shape::Custom { schema, .. } => {
                let name = definition_name(resource);
                let mut body = schema
                    .as_deref()
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
                if let Some(props) = body.get_mut("properties").and_then(Value::as_object_mut) {
                    props.entry("metadata").or_insert_with(|| json!({"type": "object"}));
                }
                custom.insert(name.clone(), body);
                names.push(name);
            }
        }
    }
    let mut defs = generator.take_definitions(true);
    defs.extend(custom);
    for (resource, name) in resources.iter().zip(&names) {
        if let Some(def) = defs.get_mut(name).and_then(Value::as_object_mut) {
            def.insert("x-kubernetes-group-version-kind".into(), gvk(resource));
        }
    }
    (defs, names)
}

fn parameter(name: &str, v3: bool) -> Value {
    if v3 {
        json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
    } else {
        json!({"name": name, "in": "query", "type": "string", "uniqueItems": true})
    }
}

/// The operations on one resource, enough for clients to find the kind and
/// to see that the server validates fields.
fn paths(resource: &Resource, definition: &str, v3: bool, out: &mut Map<String, Value>) {
    let reference = if v3 {
        format!("#/components/schemas/{definition}")
    } else {
        format!("#/definitions/{definition}")
    };
    let base = format!("/{}", gv_path(&resource.group, &resource.version));
    let collection = if resource.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", resource.plural)
    } else {
        format!("{base}/{}", resource.plural)
    };
    let item = format!("{collection}/{{name}}");
    let kind = json!({"group": resource.group, "version": resource.version, "kind": resource.kind});
    let body = |v3: bool| {
        if v3 {
            json!({"content": {"application/json": {"schema": {"$ref": reference}}}})
        } else {
            json!({"in": "body", "name": "body", "required": true, "schema": {"$ref": reference}})
        }
    };
    let ok = |v3: bool| {
        if v3 {
            json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": reference}}}}})
        } else {
            json!({"200": {"description": "OK", "schema": {"$ref": reference}}})
        }
    };
    let write_params = || {
        json!([
            parameter("dryRun", v3),
            parameter("fieldManager", v3),
            parameter("fieldValidation", v3)
        ])
    };
    let operation = |action: &str, with_body: bool| {
        let mut op = json!({
            "operationId": format!("{action}{}", resource.kind),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": kind,
            "responses": ok(v3),
            "parameters": if with_body { write_params() } else { json!([]) },
        });
        if with_body {
            if v3 {
                op["requestBody"] = body(true);
            } else if let Some(params) = op["parameters"].as_array_mut() {
                params.push(body(false));
            }
        }
        op
    };
    out.insert(
        collection,
        json!({"get": operation("list", false), "post": operation("post", true)}),
    );
    out.insert(
        item,
        json!({
            "get": operation("get", false),
            "put": operation("put", true),
            "patch": operation("patch", true),
            "delete": operation("delete", false),
        }),
    );
}

fn build(catalog: &Catalog) -> Documents {
    let resources = catalog.resources();
    // v2: one document.
    let v2_settings = SchemaSettings::openapi3().with(|s| {
        s.definitions_path = "/definitions".into();
        s.meta_schema = None;
    });
    let (defs, names) = definitions(&resources, v2_settings);
    let mut v2_paths = Map::new();
    for (resource, name) in resources.iter().zip(&names) {
        paths(resource, name, false, &mut v2_paths);
    }
    let v2 = json!({
        "swagger": "2.0",
        "info": {"title": "skiff", "version": crate::discovery::KUBERNETES_VERSION},
        "paths": v2_paths,
        "definitions": defs,
    });
    // v3: one document per group/version.
    let mut v3 = BTreeMap::new();
    for gv in catalog.group_versions() {
        let members: Vec<Arc<Resource>> = resources
            .iter()
            .filter(|r| r.group == gv.group && r.version == gv.version)
            .cloned()
            .collect();
        let settings = SchemaSettings::openapi3().with(|s| s.meta_schema = None);
        let (schemas, names) = definitions(&members, settings);
        let mut gv_paths = Map::new();
        for (resource, name) in members.iter().zip(&names) {
            paths(resource, name, true, &mut gv_paths);
        }
        let doc = json!({
            "openapi": "3.0.0",
            "info": {"title": "skiff", "version": crate::discovery::KUBERNETES_VERSION},
            "paths": gv_paths,
            "components": {"schemas": schemas},
        });
        let hash = content_hash(&doc);
        v3.insert(gv_path(&gv.group, &gv.version), (hash, Arc::new(doc)));
    }
    Documents {
        generation: catalog.generation(),
        v2: Arc::new(v2),
        v3,
    }
}

/// A stable hash of a document, so clients can cache it by URL.
fn content_hash(doc: &Value) -> String {
    // FNV-1a, 64 bits: stable across processes, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in doc.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016X}")
}

impl OpenApi {
    fn documents(&self, catalog: &Catalog) -> Arc<Documents> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match cache.as_ref() {
            Some(docs) if docs.generation == catalog.generation() => docs.clone(),
            _ => {
                let docs = Arc::new(build(catalog));
                *cache = Some(docs.clone());
                docs
            }
        }
    }

    pub fn v2(&self, catalog: &Catalog) -> Arc<Value> {
        self.documents(catalog).v2.clone()
    }

    /// The `/openapi/v3` index.
    pub fn v3_index(&self, catalog: &Catalog) -> Value {
        let docs = self.documents(catalog);
        let paths: Map<String, Value> = docs
            .v3
            .iter()
            .map(|(path, (hash, _))| {
                (
                    path.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
                )
            })
            .collect();
        json!({"paths": paths})
    }

    /// `/openapi/v3/<path>`.
    pub fn v3(&self, catalog: &Catalog, path: &str) -> Option<Arc<Value>> {
        self.documents(catalog).v3.get(path).map(|(_, doc)| doc.clone())
    }
}

/// An OpenAPI v2 document in gnostic's protobuf encoding (`openapi_v2.Document`)
/// with only `swagger` (field 1) and `info` (field 2: title 1, version 2).
pub fn v2_protobuf_stub() -> Vec<u8> {
    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2];
        let mut len = bytes.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        out.extend_from_slice(bytes);
        out
    }
    let info = [
        field(1, b"skiff"),
        field(2, crate::discovery::KUBERNETES_VERSION.as_bytes()),
    ]
    .concat();
    [field(1, b"2.0"), field(2, &info)].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_carry_kinds_and_field_validation() {
        let catalog = Catalog::new();
        let openapi = OpenApi::default();
        let index = openapi.v3_index(&catalog);
        let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        let apps = openapi.v3(&catalog, "apis/apps/v1").unwrap();
        let deployment = &apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(deployment["x-kubernetes-group-version-kind"][0]["kind"], "Deployment");
        assert!(deployment["properties"]["spec"].is_object());
        let patch = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        let v2 = openapi.v2(&catalog);
        assert!(v2["definitions"]["io.k8s.api.core.v1.Pod"].is_object());
        assert!(v2["definitions"]["io.k8s.api.core.v1.PodSpec"].is_object());
    }
}
