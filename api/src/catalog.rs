//! Which resources the server serves: the built-in kinds, typed by
//! `k8s-openapi`, and the kinds CustomResourceDefinitions add at run time.
//!
//! A [`Resource`] says everything the generic registry and the discovery
//! documents need to know about one group/version/resource: its kind, scope,
//! names, subresources, how to check a body of it, and the kind's own rules
//! ([`KindOps`], one file per kind under [`crate::kinds`]). The [`Catalog`]
//! is the live set, shared by the router, discovery and OpenAPI.
//!
//! [`builtins`] has one line per built-in kind: its ops, scope, short
//! names, subresources and categories.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::kinds::{self, BuiltinKind, KindOps};
pub use crate::kinds::{Canonicalize, SchemaFn};
use crate::printer::CustomColumn;

/// How bodies of a kind are checked.
#[derive(Clone, Debug)]
pub enum Shape {
    /// A Kubernetes kind with a `k8s-openapi` type.
    Builtin {
        canonicalize: Canonicalize,
        schema: SchemaFn,
    },
    /// A custom resource: the structural schema of its CRD version (the
    /// `openAPIV3Schema` value), or `None` to accept anything, and the
    /// version's `additionalPrinterColumns` (none: NAME and AGE).
    Custom {
        schema: Option<Arc<Value>>,
        columns: Arc<[CustomColumn]>,
    },
}

/// How one version of a kind is kept in the form of another (the stored
/// one), as kube-apiserver stores every version in one form: applied to
/// every object read and every object written.
#[derive(Clone, Copy, Debug)]
pub struct Conversion {
    pub from_storage: fn(Value) -> Value,
    pub to_storage: fn(Value) -> Value,
}

/// Where a resource's objects come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serving {
    /// Kept in the store: every verb.
    Stored,
    /// A review kind: created to be answered, never stored, so `create` is
    /// its only verb.
    Review,
    /// `metrics.k8s.io`: read from the node agents when asked
    /// (`server::resource_metrics`), so `get` and `list` are its verbs.
    ResourceMetrics,
    /// `custom.metrics.k8s.io`: the same, each metric a subresource
    /// (`server::custom_metrics`), `get` its one verb.
    CustomMetrics,
}

/// Where `/scale` finds replicas in the parent object (JSON paths without
/// the leading dot, e.g. `spec.replicas`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// The subresources a resource serves besides the object itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subresources {
    pub status: bool,
    pub scale: Option<ScalePaths>,
    /// `pods/binding`.
    pub binding: bool,
    /// `pods/log`.
    pub log: bool,
    /// `pods/attach`, `pods/exec` and `pods/portforward`.
    pub streams: bool,
    /// `pods/eviction`.
    pub eviction: bool,
    /// `namespaces/finalize`.
    pub finalize: bool,
    /// `serviceaccounts/token` (TokenRequest).
    pub token: bool,
    /// `certificatesigningrequests/approval`.
    pub approval: bool,
}

/// One served group/version/resource.
#[derive(Clone, Debug)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    /// The URL segment, e.g. `deployments`.
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub subresources: Subresources,
    pub shape: Shape,
    /// Stored, or answered without storage.
    pub serving: Serving,
    /// For a version kept in another version's form: how to convert.
    pub conversion: Option<Conversion>,
    /// The kind's own rules: [`kinds::custom::OPS`] for custom resources.
    pub ops: &'static KindOps,
}

impl Resource {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The group as stored in keys: `core` for the legacy group.
    pub fn storage_group(&self) -> &str {
        if self.group.is_empty() { "core" } else { &self.group }
    }

    /// Whether a PUT/PATCH of the main resource leaves `status` alone.
    pub fn has_status(&self) -> bool {
        self.subresources.status
    }

    pub fn is_builtin(&self) -> bool {
        matches!(self.shape, Shape::Builtin { .. })
    }
}

struct Builtin {
    kind: &'static BuiltinKind,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: Subresources,
    serving: Serving,
    conversion: Option<Conversion>,
}

/// A built-in kind: its type and ops, scope, short names and
/// subresources.
fn builtin(
    kind: &'static BuiltinKind,
    namespaced: bool,
    short_names: &'static [&'static str],
    subresources: Subresources,
) -> Builtin {
    Builtin {
        kind,
        namespaced,
        short_names,
        categories: &[],
        subresources,
        serving: Serving::Stored,
        conversion: None,
    }
}

impl Builtin {
    fn categories(mut self, categories: &'static [&'static str]) -> Builtin {
        self.categories = categories;
        self
    }

    /// Kept in the form of the kind's stored version, converted on the
    /// way in and out.
    fn converted(mut self, conversion: Conversion) -> Builtin {
        self.conversion = Some(conversion);
        self
    }

    fn create_only(mut self) -> Builtin {
        self.serving = Serving::Review;
        self
    }

    fn into_resource(self) -> Resource {
        let typed = self.kind.typed;
        Resource {
            group: typed.group.into(),
            version: typed.version.into(),
            kind: typed.kind.into(),
            list_kind: format!("{}List", typed.kind),
            plural: typed.plural.into(),
            singular: typed.kind.to_ascii_lowercase(),
            namespaced: self.namespaced,
            short_names: self.short_names.iter().map(|s| s.to_string()).collect(),
            categories: self.categories.iter().map(|s| s.to_string()).collect(),
            subresources: self.subresources,
            shape: Shape::Builtin {
                canonicalize: typed.canonicalize,
                schema: typed.schema,
            },
            serving: self.serving,
            conversion: self.conversion,
            ops: &self.kind.ops,
        }
    }
}

fn status() -> Subresources {
    Subresources {
        status: true,
        ..Subresources::default()
    }
}

fn status_and_scale() -> Subresources {
    Subresources {
        status: true,
        scale: Some(ScalePaths {
            spec_replicas: "spec.replicas".into(),
            status_replicas: "status.replicas".into(),
            label_selector: Some("spec.selector".into()),
        }),
        ..Subresources::default()
    }
}

const NAMESPACED: bool = true;
const CLUSTER: bool = false;
const ALL: &[&str] = &["all"];

/// The kinds every skiff server serves, in discovery order.
pub fn builtins() -> Vec<Resource> {
    let none = Subresources::default;
    let kinds = vec![
        builtin(
            &kinds::namespace::KIND,
            CLUSTER,
            &["ns"],
            Subresources {
                status: true,
                finalize: true,
                ..Subresources::default()
            },
        ),
        builtin(
            &kinds::pod::KIND,
            NAMESPACED,
            &["po"],
            Subresources {
                status: true,
                binding: true,
                log: true,
                streams: true,
                eviction: true,
                ..Subresources::default()
            },
        )
        .categories(ALL),
        builtin(&kinds::service::KIND, NAMESPACED, &["svc"], status()).categories(ALL),
        builtin(
            &kinds::replication_controller::KIND,
            NAMESPACED,
            &["rc"],
            status_and_scale(),
        )
        .categories(ALL),
        builtin(&kinds::endpoints::KIND, NAMESPACED, &["ep"], none()),
        builtin(&kinds::config_map::KIND, NAMESPACED, &["cm"], none()),
        builtin(&kinds::secret::KIND, NAMESPACED, &[], none()),
        builtin(&kinds::node::KIND, CLUSTER, &["no"], status()),
        builtin(&kinds::event::KIND, NAMESPACED, &["ev"], none()),
        builtin(
            &kinds::service_account::KIND,
            NAMESPACED,
            &["sa"],
            Subresources {
                token: true,
                ..Subresources::default()
            },
        ),
        builtin(&kinds::deployment::KIND, NAMESPACED, &["deploy"], status_and_scale()).categories(ALL),
        builtin(&kinds::replica_set::KIND, NAMESPACED, &["rs"], status_and_scale()).categories(ALL),
        builtin(&kinds::daemon_set::KIND, NAMESPACED, &["ds"], status()).categories(ALL),
        builtin(&kinds::stateful_set::KIND, NAMESPACED, &["sts"], status_and_scale()).categories(ALL),
        builtin(&kinds::job::KIND, NAMESPACED, &[], status()).categories(ALL),
        builtin(&kinds::cron_job::KIND, NAMESPACED, &["cj"], status()).categories(ALL),
        builtin(&kinds::horizontal_pod_autoscaler::KIND, NAMESPACED, &["hpa"], status()).categories(ALL),
        builtin(
            &kinds::horizontal_pod_autoscaler::KIND_V1,
            NAMESPACED,
            &["hpa"],
            status(),
        )
        .categories(ALL)
        .converted(kinds::horizontal_pod_autoscaler::CONVERSION),
        builtin(&kinds::lease::KIND, NAMESPACED, &[], none()),
        builtin(&kinds::endpoint_slice::KIND, NAMESPACED, &[], none()),
        builtin(&kinds::ingress::KIND, NAMESPACED, &["ing"], status()),
        builtin(&kinds::ingress_class::KIND, CLUSTER, &[], none()),
        builtin(&kinds::network_policy::KIND, NAMESPACED, &["netpol"], none()),
        builtin(&kinds::runtime_class::KIND, CLUSTER, &[], none()),
        builtin(&kinds::rbac::ROLE, NAMESPACED, &[], none()),
        builtin(&kinds::rbac::CLUSTER_ROLE, CLUSTER, &[], none()),
        builtin(&kinds::rbac::ROLE_BINDING, NAMESPACED, &[], none()),
        builtin(&kinds::rbac::CLUSTER_ROLE_BINDING, CLUSTER, &[], none()),
        builtin(
            &kinds::custom_resource_definition::KIND,
            CLUSTER,
            &["crd", "crds"],
            status(),
        ),
        builtin(&kinds::api_service::KIND, CLUSTER, &[], status()),
        builtin(
            &kinds::certificate_signing_request::KIND,
            CLUSTER,
            &["csr"],
            Subresources {
                status: true,
                approval: true,
                ..Subresources::default()
            },
        ),
        builtin(&kinds::review::TOKEN_REVIEW, CLUSTER, &[], none()).create_only(),
        builtin(&kinds::review::SELF_SUBJECT_REVIEW, CLUSTER, &[], none()).create_only(),
        builtin(&kinds::review::LOCAL_SUBJECT_ACCESS_REVIEW, NAMESPACED, &[], none()).create_only(),
        builtin(&kinds::review::SELF_SUBJECT_ACCESS_REVIEW, CLUSTER, &[], none()).create_only(),
        builtin(&kinds::review::SELF_SUBJECT_RULES_REVIEW, CLUSTER, &[], none()).create_only(),
        builtin(&kinds::review::SUBJECT_ACCESS_REVIEW, CLUSTER, &[], none()).create_only(),
    ];
    let mut resources: Vec<Resource> = kinds.into_iter().map(Builtin::into_resource).collect();
    resources.push(wasm_plugin());
    resources.extend(resource_metrics());
    resources.push(custom_metrics());
    resources
}

/// `custom.metrics.k8s.io/v1beta2`: the per-pod figures of Wasm services
/// ([`crate::usage::CUSTOM_METRICS`]), as a metrics adapter serves them
/// elsewhere, for the autoscaler's `Pods` metrics.
fn custom_metrics() -> Resource {
    Resource {
        group: "custom.metrics.k8s.io".into(),
        version: "v1beta2".into(),
        kind: "MetricValueList".into(),
        list_kind: "MetricValueList".into(),
        plural: "pods".into(),
        singular: String::new(),
        namespaced: NAMESPACED,
        short_names: vec![],
        categories: vec![],
        subresources: Subresources::default(),
        serving: Serving::CustomMetrics,
        conversion: None,
        shape: Shape::Custom {
            schema: None,
            columns: Arc::from(Vec::new()),
        },
        ops: &kinds::custom::OPS,
    }
}

/// `metrics.k8s.io/v1beta1` NodeMetrics and PodMetrics (the Metrics API
/// that metrics-server serves elsewhere): never stored, read from the
/// node agents when asked.
fn resource_metrics() -> [Resource; 2] {
    let resource = |kind: &str, plural: &str, namespaced: bool| Resource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        plural: plural.into(),
        singular: String::new(),
        namespaced,
        short_names: vec![],
        categories: vec![],
        subresources: Subresources::default(),
        serving: Serving::ResourceMetrics,
        conversion: None,
        shape: Shape::Custom {
            schema: None,
            columns: Arc::from(Vec::new()),
        },
        ops: &kinds::custom::OPS,
    };
    [
        resource("NodeMetrics", "nodes", CLUSTER),
        resource("PodMetrics", "pods", NAMESPACED),
    ]
}

/// `skiff.dev/v1alpha1` WasmPlugin: stored and served; its spec is checked
/// by the plugin host, not here.
fn wasm_plugin() -> Resource {
    Resource {
        group: "skiff.dev".into(),
        version: "v1alpha1".into(),
        kind: "WasmPlugin".into(),
        list_kind: "WasmPluginList".into(),
        plural: "wasmplugins".into(),
        singular: "wasmplugin".into(),
        namespaced: false,
        short_names: vec!["wp".into()],
        categories: vec![],
        subresources: status(),
        serving: Serving::Stored,
        conversion: None,
        shape: Shape::Custom {
            schema: None,
            columns: Arc::from(Vec::new()),
        },
        ops: &kinds::custom::OPS,
    }
}

/// A group/version as discovery lists it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupVersion {
    pub group: String,
    pub version: String,
}

/// The live set of served resources. Cheap to clone; readers never block
/// each other.
#[derive(Clone, Debug)]
pub struct Catalog {
    inner: Arc<RwLock<Entries>>,
}

#[derive(Debug, Default)]
struct Entries {
    /// In discovery order.
    resources: Vec<Arc<Resource>>,
    by_path: BTreeMap<(String, String, String), Arc<Resource>>,
    /// Bumped on every change, so derived documents know when to rebuild.
    generation: u64,
}

impl Entries {
    fn insert(&mut self, resource: Resource) {
        let key = (
            resource.group.clone(),
            resource.version.clone(),
            resource.plural.clone(),
        );
        let resource = Arc::new(resource);
        self.resources
            .retain(|r| (&r.group, &r.version, &r.plural) != (&key.0, &key.1, &key.2));
        self.resources.push(resource.clone());
        self.by_path.insert(key, resource);
        self.generation += 1;
    }
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::new()
    }
}

impl Catalog {
    /// A catalog of the built-in kinds.
    pub fn new() -> Catalog {
        let mut entries = Entries::default();
        for resource in builtins() {
            entries.insert(resource);
        }
        Catalog {
            inner: Arc::new(RwLock::new(entries)),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The resource served at `/apis/<group>/<version>/<plural>`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        self.read()
            .by_path
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// The resource for a kind, in any served version of its group.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<Arc<Resource>> {
        self.read()
            .resources
            .iter()
            .find(|r| r.group == group && r.kind == kind)
            .cloned()
    }

    /// Every served resource, in discovery order.
    pub fn resources(&self) -> Vec<Arc<Resource>> {
        self.read().resources.clone()
    }

    /// Served group/versions, core first, then groups in order of first
    /// appearance.
    pub fn group_versions(&self) -> Vec<GroupVersion> {
        let mut seen: Vec<GroupVersion> = Vec::new();
        for r in self.read().resources.iter() {
            let gv = GroupVersion {
                group: r.group.clone(),
                version: r.version.clone(),
            };
            if !seen.contains(&gv) {
                seen.push(gv);
            }
        }
        seen
    }

    /// Changes with every change to the served set.
    pub fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Adds or replaces a resource (a CRD version being served).
    pub fn serve(&self, resource: Resource) {
        self.write().insert(resource);
    }

    /// Serves exactly `resources` for `<plural>.<group>` (custom kinds),
    /// in one step: no request sees the resource missing in between.
    pub fn replace(&self, group: &str, plural: &str, resources: Vec<Resource>) {
        let mut entries = self.write();
        Self::withdraw_locked(&mut entries, group, plural);
        for resource in resources {
            entries.insert(resource);
        }
    }

    /// Stops serving every version of `<plural>.<group>` that is not built in.
    pub fn withdraw(&self, group: &str, plural: &str) {
        Self::withdraw_locked(&mut self.write(), group, plural);
    }

    fn withdraw_locked(entries: &mut Entries, group: &str, plural: &str) {
        entries
            .resources
            .retain(|r| r.is_builtin() || !(r.group == group && r.plural == plural));
        entries
            .by_path
            .retain(|(g, _, p), r| r.is_builtin() || !(g == group && p == plural));
        entries.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_found_by_path_and_kind() {
        let catalog = Catalog::new();
        let deployments = catalog.lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(deployments.kind, "Deployment");
        assert!(deployments.namespaced);
        assert!(deployments.subresources.scale.is_some());
        assert_eq!(catalog.by_kind("", "Namespace").unwrap().plural, "namespaces");
        assert_eq!(catalog.group_versions()[0].group, "");
        assert!(catalog.lookup("apps", "v1", "nothings").is_none());
    }

    #[test]
    fn canonical_form_drops_unknown_fields() {
        let catalog = Catalog::new();
        let cm = catalog.lookup("", "v1", "configmaps").unwrap();
        let Shape::Builtin { canonicalize, .. } = cm.shape else {
            panic!("configmaps are built in")
        };
        let out = canonicalize(&serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}, "bogus": 1
        }))
        .unwrap();
        assert_eq!(out["data"]["k"], "v");
        assert!(out.get("bogus").is_none());
    }
}
