//! Strategic-merge-patch metadata of the built-in kinds.
//!
//! A strategic merge patch needs to know, for every list in an object, whether
//! the list is replaced wholesale or merged, and what identifies an item when it
//! is merged. Kubernetes records this on its Go types (the `+patchStrategy` and
//! `+patchMergeKey` markers of `k8s.io/api`, which become struct tags). This
//! module carries the same facts as static tables: one [`TypeInfo`] per object
//! type, listing only the fields that matter to a patch: fields with a merge
//! strategy, fields whose map is governed by `$retainKeys`, fields with a list
//! type or owned whole by apply (below), and fields that lead to a type which
//! has such fields. Anything not listed merges as a map or is replaced as a
//! list, which is also what Kubernetes does for fields without markers.
//!
//! The tables are generated (`generated.rs`, by `cargo xtask gen-patch-schema`)
//! from the markers k8s-pb keeps in its doc comments, with k8s-openapi's JSON
//! names; this file holds the data model. Each Kubernetes type has one static
//! named after its group, version and type (`CORE_V1_POD`,
//! `APPS_V1_DEPLOYMENT`).
//!
//! Types are looked up by type, not by path: `Container` is described once and
//! used for `containers` and `initContainers`, of pods and of every pod
//! template. Each kind names its top-level type in its
//! [`KindOps::patch`](crate::kinds::KindOps::patch); custom resources name
//! none, and the caller answers a strategic merge patch for them with 415,
//! as Kubernetes does.
//!
//! Server-side apply needs related but not identical facts, which Kubernetes
//! publishes as the OpenAPI extensions `x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys` and `x-kubernetes-map-type`, generated from the
//! `+listType`, `+listMapKey`, `+mapType` and `+structType` markers:
//! [`FieldInfo::list_type`] and [`FieldInfo::is_atomic`] give them. A list
//! without `+listType` gets what kube-openapi derives from its patch strategy
//! (a list merged by key is a map list with that key, merged primitives are a
//! set, any other list is atomic). A key field's `+default` (the `protocol`
//! of ports defaults to `TCP`) is the key an item leaving it out has.
//!
//! Not modelled: `patchStrategy=replace` (only on PodDisruptionBudget's
//! `spec.selector`, which therefore merges as a map here), and metadata of
//! the values of maps of objects (DRA device `capacity`, CRD schema
//! `properties`).

use std::fmt;

/// How a list-valued field is combined with the list a patch supplies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the stored one. The default for every list
    /// without a `patchStrategy` tag (Kubernetes calls these atomic lists).
    Replace,
    /// A list of objects merged item by item: items are matched by the value
    /// of the named field, matching items are merged recursively, others are
    /// added, and `$patch: delete` items remove matches.
    MergeByKey(&'static str),
    /// A list of primitive values merged as an ordered set: the union of both
    /// lists; items leave through `$deleteFromPrimitiveList/<field>`.
    MergePrimitives,
}

/// How server-side apply treats a list (`x-kubernetes-list-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListType {
    /// The list is one value: owned, compared and replaced as a whole.
    Atomic,
    /// A list of primitives whose items are owned one by one and merged as
    /// a union.
    Set,
    /// A list of objects identified by the values of their key fields
    /// (`x-kubernetes-list-map-keys`); items are owned and merged one by one.
    Map(ListKeys),
}

/// The key fields of a [`ListType::Map`] list, in the order Kubernetes
/// declares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListKeys(&'static [ListKey]);

impl ListKeys {
    /// The key fields.
    pub fn iter(self) -> impl Iterator<Item = ListKey> {
        self.0.iter().copied()
    }
}

/// One key field of a [`ListType::Map`] list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListKey {
    name: &'static str,
    default: Option<&'static str>,
}

impl ListKey {
    /// The JSON name of the key field.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The string the field defaults to when an item leaves it out (`TCP`
    /// for the `protocol` of ports), which then identifies the item as if it
    /// had been given.
    pub fn default(&self) -> Option<&'static str> {
        self.default
    }
}

/// A key field of a list map that items must carry.
const fn key(name: &'static str) -> ListKey {
    ListKey { name, default: None }
}

/// A key field of a list map that defaults to `default`.
const fn key_or(name: &'static str, default: &'static str) -> ListKey {
    ListKey {
        name,
        default: Some(default),
    }
}

/// Patch metadata of one object type: the fields a strategic merge patch has
/// to treat specially, each with the type of its value (or of its items).
#[derive(Debug)]
pub struct TypeInfo {
    name: &'static str,
    fields: &'static [FieldInfo],
}

impl TypeInfo {
    /// A type with no metadata: its maps merge and its lists are replaced.
    /// Used for every field the tables do not describe.
    pub const UNTYPED: TypeInfo = TypeInfo {
        name: "untyped",
        fields: &[],
    };

    /// The Kubernetes name of the type, such as `PodSpec`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The fields with patch metadata, in no particular order.
    pub fn fields(&self) -> &'static [FieldInfo] {
        self.fields
    }

    /// The metadata of the field with this JSON name, if it has any.
    pub fn field(&self, name: &str) -> Option<&'static FieldInfo> {
        self.fields.iter().find(|field| field.name == name)
    }
}

/// Patch metadata of one field of a [`TypeInfo`].
pub struct FieldInfo {
    name: &'static str,
    strategy: ListStrategy,
    retain_keys: bool,
    child: Option<&'static TypeInfo>,
    /// The list type for server-side apply.
    list_type: ListType,
    /// Whether apply owns the value (or each item of a list) as a whole.
    atomic: bool,
}

impl FieldInfo {
    /// The JSON name of the field.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How the field's value is merged when it is a list.
    pub fn strategy(&self) -> ListStrategy {
        self.strategy
    }

    /// Whether the field carries the `retainKeys` strategy: its map (or each
    /// item of its list) is a union whose unset members a client clears by
    /// sending `$retainKeys`. The patch engine honours that directive wherever
    /// it appears; this flag tells a patch *generator* where to emit it.
    pub fn retain_keys(&self) -> bool {
        self.retain_keys
    }

    /// The type of the field's value, or of each item when the value is a
    /// list; `None` when that type has nothing a patch treats specially.
    pub fn child(&self) -> Option<&'static TypeInfo> {
        self.child
    }

    /// How server-side apply treats the field's value when it is a list.
    pub fn list_type(&self) -> ListType {
        self.list_type
    }

    /// Whether server-side apply owns, compares and replaces the field's value
    /// as one, like a scalar: `x-kubernetes-map-type: atomic` on a map or a
    /// struct (label selectors, `nodeSelector`). On a list field the flag
    /// describes each item (owner references): the items are owned whole.
    pub fn is_atomic(&self) -> bool {
        self.atomic
    }
}

impl fmt::Debug for FieldInfo {
    // Only the child's name: printing the whole subtree for every field would
    // repeat shared types (Container, ObjectMeta) many times over.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldInfo")
            .field("name", &self.name)
            .field("strategy", &self.strategy)
            .field("retain_keys", &self.retain_keys)
            .field("child", &self.child.map(TypeInfo::name))
            .finish()
    }
}

// Constructors for the generated tables.

impl FieldInfo {
    /// A field with nothing special: merged as a map, replaced as a list
    /// (`listType=atomic`, listed so a reader sees it is not merged).
    const fn new(name: &'static str) -> FieldInfo {
        FieldInfo {
            name,
            strategy: ListStrategy::Replace,
            retain_keys: false,
            child: None,
            list_type: ListType::Atomic,
            atomic: false,
        }
    }

    /// A list of objects merged by `key` (`patchStrategy=merge`, `patchMergeKey`).
    const fn merge_key(self, key: &'static str) -> FieldInfo {
        FieldInfo {
            strategy: ListStrategy::MergeByKey(key),
            ..self
        }
    }

    /// A list of primitives merged as a set (`patchStrategy=merge`, no key).
    const fn merge_primitives(self) -> FieldInfo {
        FieldInfo {
            strategy: ListStrategy::MergePrimitives,
            ..self
        }
    }

    /// With the `retainKeys` strategy.
    const fn retaining(self) -> FieldInfo {
        FieldInfo {
            retain_keys: true,
            ..self
        }
    }

    /// A list server-side apply treats as a set (`listType=set`).
    const fn set(self) -> FieldInfo {
        FieldInfo {
            list_type: ListType::Set,
            ..self
        }
    }

    /// A list server-side apply treats as a map with these keys
    /// (`listType=map`, `listMapKey`).
    const fn map(self, keys: &'static [ListKey]) -> FieldInfo {
        FieldInfo {
            list_type: ListType::Map(ListKeys(keys)),
            ..self
        }
    }

    /// A value (or each item of a list) server-side apply owns as a whole
    /// (`mapType=atomic`, or `structType=atomic` on its type).
    const fn atomic(self) -> FieldInfo {
        FieldInfo { atomic: true, ..self }
    }

    /// A value (or each item of a list) of type `child`.
    const fn with_child(self, child: &'static TypeInfo) -> FieldInfo {
        FieldInfo {
            child: Some(child),
            ..self
        }
    }
}

/// The generated tables: one static per Kubernetes type with patch
/// metadata, named after its group, version and type (`CORE_V1_POD`).
mod generated;

pub use generated::*;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The patch metadata of a kind as its ops name it, and of the kinds
    /// whose tables exist before skiff serves them.
    pub(crate) fn root_type(group: &str, kind: &str) -> Option<&'static TypeInfo> {
        let unserved: Option<&'static TypeInfo> = match (group, kind) {
            ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
                Some(&ADMISSIONREGISTRATION_V1_VALIDATING_WEBHOOK_CONFIGURATION)
            }
            ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
                Some(&ADMISSIONREGISTRATION_V1_MUTATING_WEBHOOK_CONFIGURATION)
            }
            ("", "PersistentVolumeClaim") => Some(&CORE_V1_PERSISTENT_VOLUME_CLAIM),
            ("storage.k8s.io", "CSINode") => Some(&STORAGE_V1_CSI_NODE),
            ("autoscaling", "HorizontalPodAutoscaler") => Some(&AUTOSCALING_V2_HORIZONTAL_POD_AUTOSCALER),
            _ => None,
        };
        unserved.or_else(|| crate::catalog::Catalog::new().by_kind(group, kind)?.ops.patch)
    }

    /// Follows a dotted path of field names from a root type.
    fn field_at(root: &'static TypeInfo, path: &str) -> &'static FieldInfo {
        let mut ty = root;
        let mut names = path.split('.').peekable();
        loop {
            let name = names.next().unwrap();
            let field = ty
                .field(name)
                .unwrap_or_else(|| panic!("{} has no field {name}", ty.name()));
            if names.peek().is_none() {
                return field;
            }
            ty = field.child().unwrap_or_else(|| panic!("{name} has no child type"));
        }
    }

    #[test]
    fn merge_keys_of_shared_types() {
        use ListStrategy::*;
        let cases: &[(&str, &str, &str, ListStrategy)] = &[
            ("", "Pod", "metadata.finalizers", MergePrimitives),
            ("", "Pod", "metadata.ownerReferences", MergeByKey("uid")),
            ("", "Pod", "spec.containers", MergeByKey("name")),
            ("", "Pod", "spec.initContainers.env", MergeByKey("name")),
            ("", "Pod", "spec.ephemeralContainers.ports", MergeByKey("containerPort")),
            ("", "Pod", "spec.containers.volumeMounts", MergeByKey("mountPath")),
            ("", "Pod", "spec.containers.volumeDevices", MergeByKey("devicePath")),
            ("", "Pod", "spec.containers.envFrom", Replace),
            ("", "Pod", "spec.volumes", MergeByKey("name")),
            ("", "Pod", "spec.imagePullSecrets", MergeByKey("name")),
            ("", "Pod", "spec.hostAliases", MergeByKey("ip")),
            ("", "Pod", "spec.tolerations", Replace),
            ("", "Pod", "status.conditions", MergeByKey("type")),
            ("", "Pod", "status.podIPs", MergeByKey("ip")),
            ("", "Service", "spec.ports", MergeByKey("port")),
            ("", "Node", "spec.taints", Replace),
            ("", "Node", "spec.podCIDRs", MergePrimitives),
            ("", "Node", "status.addresses", MergeByKey("type")),
            ("", "ServiceAccount", "secrets", MergeByKey("name")),
            (
                "apps",
                "Deployment",
                "spec.template.spec.containers.env",
                MergeByKey("name"),
            ),
            (
                "apps",
                "Deployment",
                "spec.template.metadata.finalizers",
                MergePrimitives,
            ),
            ("apps", "Deployment", "status.conditions", MergeByKey("type")),
            ("apps", "StatefulSet", "spec.template.spec.volumes", MergeByKey("name")),
            ("apps", "DaemonSet", "spec.template.spec.containers", MergeByKey("name")),
            (
                "batch",
                "Job",
                "spec.template.spec.containers.ports",
                MergeByKey("containerPort"),
            ),
            (
                "batch",
                "CronJob",
                "spec.jobTemplate.spec.template.spec.containers",
                MergeByKey("name"),
            ),
            (
                "admissionregistration.k8s.io",
                "ValidatingWebhookConfiguration",
                "webhooks",
                MergeByKey("name"),
            ),
        ];
        for &(group, kind, path, want) in cases {
            let root = root_type(group, kind).unwrap();
            assert_eq!(field_at(root, path).strategy(), want, "{group}/{kind} {path}");
        }
    }

    #[test]
    fn retain_keys_fields() {
        let deployment = root_type("apps", "Deployment").unwrap();
        assert!(field_at(deployment, "spec.strategy").retain_keys());
        assert!(field_at(deployment, "spec.template.spec.volumes").retain_keys());
        assert!(!field_at(deployment, "spec.template.spec.containers").retain_keys());
        let daemon_set = root_type("apps", "DaemonSet").unwrap();
        assert!(
            daemon_set
                .field("spec")
                .unwrap()
                .child()
                .unwrap()
                .field("updateStrategy")
                .is_none()
        );
    }

    #[test]
    fn every_required_kind_has_metadata() {
        let kinds: &[(&str, &str)] = &[
            ("", "Pod"),
            ("", "Service"),
            ("", "ConfigMap"),
            ("", "Secret"),
            ("", "Namespace"),
            ("", "Node"),
            ("", "ServiceAccount"),
            ("", "Endpoints"),
            ("", "Event"),
            ("apps", "Deployment"),
            ("apps", "ReplicaSet"),
            ("apps", "DaemonSet"),
            ("apps", "StatefulSet"),
            ("batch", "Job"),
            ("batch", "CronJob"),
            ("networking.k8s.io", "Ingress"),
            ("rbac.authorization.k8s.io", "Role"),
            ("rbac.authorization.k8s.io", "ClusterRole"),
            ("rbac.authorization.k8s.io", "RoleBinding"),
            ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
            ("discovery.k8s.io", "EndpointSlice"),
            ("coordination.k8s.io", "Lease"),
            ("node.k8s.io", "RuntimeClass"),
        ];
        for &(group, kind) in kinds {
            let root = root_type(group, kind).unwrap_or_else(|| panic!("no metadata for {group}/{kind}"));
            let finalizers = field_at(root, "metadata.finalizers");
            assert_eq!(finalizers.strategy(), ListStrategy::MergePrimitives, "{group}/{kind}");
        }
    }

    /// Each kind points at the static generated for its own type, not at a
    /// look-alike of another group or version.
    #[test]
    fn kinds_name_their_own_type() {
        for (group, kind) in [
            ("", "Pod"),
            ("", "Service"),
            ("", "ServiceAccount"),
            ("", "Event"),
            ("apps", "Deployment"),
            ("apps", "DaemonSet"),
            ("batch", "CronJob"),
            ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
            ("discovery.k8s.io", "EndpointSlice"),
            ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ] {
            let root = root_type(group, kind).unwrap_or_else(|| panic!("no metadata for {group}/{kind}"));
            assert_eq!(root.name(), kind, "{group}/{kind}");
        }
    }

    #[test]
    fn unknown_kinds_have_none() {
        assert!(root_type("example.com", "Widget").is_none());
        assert!(root_type("apps", "Pod").is_none());
        assert!(root_type("", "Deployment").is_none());
    }

    #[test]
    fn debug_names_the_child_only() {
        let text = format!("{:?}", field_at(root_type("", "Pod").unwrap(), "spec.containers"));
        assert!(text.contains("Some(\"Container\")"), "{text}");
        assert!(!text.contains("containerPort"), "{text}");
    }

    /// The list type server-side apply sees, with keys as (name, default).
    fn apply_keys(field: &FieldInfo) -> Option<Vec<(&'static str, Option<&'static str>)>> {
        match field.list_type() {
            ListType::Map(keys) => Some(keys.iter().map(|k| (k.name(), k.default())).collect()),
            _ => None,
        }
    }

    #[test]
    fn apply_list_types() {
        let pod = root_type("", "Pod").unwrap();
        type Keys = &'static [(&'static str, Option<&'static str>)];
        let cases: &[(&'static TypeInfo, &str, Keys)] = &[
            (pod, "spec.containers", &[("name", None)]),
            (
                pod,
                "spec.containers.ports",
                &[("containerPort", None), ("protocol", Some("TCP"))],
            ),
            (
                pod,
                "spec.topologySpreadConstraints",
                &[("topologyKey", None), ("whenUnsatisfiable", None)],
            ),
            (pod, "metadata.ownerReferences", &[("uid", None)]),
            (
                root_type("", "Service").unwrap(),
                "spec.ports",
                &[("port", None), ("protocol", Some("TCP"))],
            ),
        ];
        for &(root, path, want) in cases {
            assert_eq!(apply_keys(field_at(root, path)).as_deref(), Some(want), "{path}");
        }
        assert_eq!(field_at(pod, "metadata.finalizers").list_type(), ListType::Set);
        assert_eq!(field_at(pod, "spec.tolerations").list_type(), ListType::Atomic);
        // The apply keys leave the strategic merge key alone.
        assert_eq!(
            field_at(pod, "spec.containers.ports").strategy(),
            ListStrategy::MergeByKey("containerPort")
        );
    }

    #[test]
    fn atomic_values() {
        for (group, kind, path) in [
            ("apps", "Deployment", "spec.selector"),
            ("apps", "ReplicaSet", "spec.selector"),
            ("apps", "StatefulSet", "spec.selector"),
            ("batch", "Job", "spec.selector"),
            ("", "Service", "spec.selector"),
            ("", "Pod", "spec.nodeSelector"),
            ("", "Pod", "metadata.ownerReferences"),
        ] {
            assert!(
                field_at(root_type(group, kind).unwrap(), path).is_atomic(),
                "{kind} {path}"
            );
        }
        let pod = root_type("", "Pod").unwrap();
        assert!(!field_at(pod, "spec.containers").is_atomic());
        assert!(pod.field("metadata").is_some_and(|f| !f.is_atomic()));
    }
}
