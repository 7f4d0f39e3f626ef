//! Strategic-merge-patch metadata of the built-in kinds.
//!
//! A strategic merge patch needs to know, for every list in an object, whether
//! the list is replaced wholesale or merged, and what identifies an item when it
//! is merged. Kubernetes records this on its Go types (the `patchStrategy` and
//! `patchMergeKey` struct tags of `k8s.io/api`). This module carries the same
//! facts as static tables: one [`TypeInfo`] per object type, listing only the
//! fields that matter to a patch: fields with a merge strategy, fields whose
//! map is governed by `$retainKeys`, and fields that lead to a type which has
//! such fields. Anything not listed merges as a map or is replaced as a list,
//! which is also what Kubernetes does for fields without tags.
//!
//! Types are looked up by type, not by path: `Container` is described once and
//! used for `containers`, `initContainers` and `ephemeralContainers`, of pods
//! and of every pod template. Each kind names its top-level type in its
//! [`KindOps::patch`](crate::kinds::KindOps::patch); custom resources name
//! none, and the caller answers a strategic merge patch for them with 415,
//! as Kubernetes does.
//!
//! Server-side apply needs related but not identical facts, which Kubernetes
//! publishes as the OpenAPI extensions `x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys` and `x-kubernetes-map-type`:
//! [`FieldInfo::list_type`] and [`FieldInfo::is_atomic`] give them. They follow
//! from the patch metadata (a list merged by key is a map list with that key,
//! merged primitives are a set, a replaced list is atomic) except where the
//! tables say otherwise: keys of several fields (container and service ports,
//! topology spread constraints) and values owned as a whole (label selectors,
//! `nodeSelector`, owner references).

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
pub struct ListKeys(KeySource);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeySource {
    /// The field's patch merge key, alone.
    MergeKey(&'static str),
    /// Keys declared for apply because they differ from the merge key.
    Declared(&'static [ListKey]),
}

impl ListKeys {
    /// The key fields.
    pub fn iter(self) -> impl Iterator<Item = ListKey> {
        let (single, declared): (Option<ListKey>, &'static [ListKey]) = match self.0 {
            KeySource::MergeKey(name) => (Some(ListKey { name, default: None }), &[]),
            KeySource::Declared(keys) => (None, keys),
        };
        single.into_iter().chain(declared.iter().copied())
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
    /// List-map keys for server-side apply where they differ from the merge key.
    apply_keys: Option<&'static [ListKey]>,
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
        match (self.apply_keys, self.strategy) {
            (Some(keys), _) => ListType::Map(ListKeys(KeySource::Declared(keys))),
            (None, ListStrategy::MergeByKey(key)) => ListType::Map(ListKeys(KeySource::MergeKey(key))),
            (None, ListStrategy::MergePrimitives) => ListType::Set,
            (None, ListStrategy::Replace) => ListType::Atomic,
        }
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

// Constructors for the tables below.

/// A field whose value (a map, or the items of a replaced list) has `child`'s
/// metadata.
const fn nested(name: &'static str, child: &'static TypeInfo) -> FieldInfo {
    FieldInfo {
        name,
        strategy: ListStrategy::Replace,
        retain_keys: false,
        child: Some(child),
        apply_keys: None,
        atomic: false,
    }
}

/// A list of objects merged by `key`.
const fn by_key(name: &'static str, key: &'static str, child: Option<&'static TypeInfo>) -> FieldInfo {
    FieldInfo {
        name,
        strategy: ListStrategy::MergeByKey(key),
        retain_keys: false,
        child,
        apply_keys: None,
        atomic: false,
    }
}

/// A list of primitives merged as a set.
const fn primitives(name: &'static str) -> FieldInfo {
    FieldInfo {
        name,
        strategy: ListStrategy::MergePrimitives,
        retain_keys: false,
        child: None,
        apply_keys: None,
        atomic: false,
    }
}

/// A list that is replaced. Listed only where a reader might expect a merge.
const fn replaced(name: &'static str) -> FieldInfo {
    FieldInfo {
        name,
        strategy: ListStrategy::Replace,
        retain_keys: false,
        child: None,
        apply_keys: None,
        atomic: false,
    }
}

/// A map (a union of mutually exclusive members) with the `retainKeys` strategy.
const fn retaining(name: &'static str) -> FieldInfo {
    FieldInfo {
        name,
        strategy: ListStrategy::Replace,
        retain_keys: true,
        child: None,
        apply_keys: None,
        atomic: false,
    }
}

/// A map or struct that server-side apply owns as a whole; a strategic merge
/// patch still merges it, as Kubernetes does.
const fn atomic(name: &'static str) -> FieldInfo {
    FieldInfo {
        name,
        strategy: ListStrategy::Replace,
        retain_keys: false,
        child: None,
        apply_keys: None,
        atomic: true,
    }
}

impl FieldInfo {
    /// The same field with the `retainKeys` strategy added.
    const fn with_retain_keys(self) -> FieldInfo {
        FieldInfo {
            retain_keys: true,
            ..self
        }
    }

    /// The same list with other keys for server-side apply than its merge key.
    const fn with_apply_keys(self, keys: &'static [ListKey]) -> FieldInfo {
        FieldInfo {
            apply_keys: Some(keys),
            ..self
        }
    }

    /// The same list with items that server-side apply owns as a whole.
    const fn with_atomic_items(self) -> FieldInfo {
        FieldInfo { atomic: true, ..self }
    }
}

/// `selector` of the workloads: a `LabelSelector` (or, for a replication
/// controller, a plain map), atomic for server-side apply.
const SELECTOR: FieldInfo = atomic("selector");

// Shared sub-types.

static OBJECT_META: TypeInfo = TypeInfo {
    name: "ObjectMeta",
    fields: &[
        primitives("finalizers"),
        by_key("ownerReferences", "uid", None).with_atomic_items(),
    ],
};

const METADATA: FieldInfo = nested("metadata", &OBJECT_META);

/// `conditions` of most statuses (the various `*Condition` types and
/// `metav1.Condition`), merged by `type`.
const CONDITIONS: FieldInfo = by_key("conditions", "type", None);

/// A status whose only patch metadata is its conditions.
static CONDITIONED_STATUS: TypeInfo = TypeInfo {
    name: "Status",
    fields: &[CONDITIONS],
};

const STATUS: FieldInfo = nested("status", &CONDITIONED_STATUS);

/// `Container`, and `EphemeralContainer`, which carries the same tags.
static CONTAINER: TypeInfo = TypeInfo {
    name: "Container",
    fields: &[
        by_key("ports", "containerPort", None).with_apply_keys(&[key("containerPort"), key_or("protocol", "TCP")]),
        by_key("env", "name", None),
        by_key("volumeMounts", "mountPath", None),
        by_key("volumeDevices", "devicePath", None),
        replaced("envFrom"),
    ],
};

static POD_SPEC: TypeInfo = TypeInfo {
    name: "PodSpec",
    fields: &[
        by_key("containers", "name", Some(&CONTAINER)),
        by_key("initContainers", "name", Some(&CONTAINER)),
        by_key("ephemeralContainers", "name", Some(&CONTAINER)),
        by_key("volumes", "name", None).with_retain_keys(),
        by_key("imagePullSecrets", "name", None),
        by_key("hostAliases", "ip", None),
        by_key("topologySpreadConstraints", "topologyKey", None)
            .with_apply_keys(&[key("topologyKey"), key("whenUnsatisfiable")]),
        by_key("schedulingGates", "name", None),
        by_key("resourceClaims", "name", None).with_retain_keys(),
        replaced("tolerations"),
        atomic("nodeSelector"),
    ],
};

static CONTAINER_STATUS: TypeInfo = TypeInfo {
    name: "ContainerStatus",
    fields: &[
        by_key("volumeMounts", "mountPath", None),
        by_key("allocatedResourcesStatus", "name", None),
    ],
};

static POD_STATUS: TypeInfo = TypeInfo {
    name: "PodStatus",
    fields: &[
        CONDITIONS,
        by_key("podIPs", "ip", None),
        by_key("hostIPs", "ip", None),
        by_key("resourceClaimStatuses", "name", None).with_retain_keys(),
        nested("containerStatuses", &CONTAINER_STATUS),
        nested("initContainerStatuses", &CONTAINER_STATUS),
        nested("ephemeralContainerStatuses", &CONTAINER_STATUS),
    ],
};

static POD_TEMPLATE_SPEC: TypeInfo = TypeInfo {
    name: "PodTemplateSpec",
    fields: &[METADATA, nested("spec", &POD_SPEC)],
};

const TEMPLATE: FieldInfo = nested("template", &POD_TEMPLATE_SPEC);

/// The spec of the workloads whose only patch metadata is their pod template:
/// ReplicaSet, DaemonSet, ReplicationController and Job.
static TEMPLATED_SPEC: TypeInfo = TypeInfo {
    name: "TemplatedSpec",
    fields: &[TEMPLATE, SELECTOR],
};

pub static PERSISTENT_VOLUME_CLAIM: TypeInfo = TypeInfo {
    name: "PersistentVolumeClaim",
    fields: &[METADATA, STATUS],
};

// Kinds.

/// Kinds whose only patch metadata is in `metadata`.
pub static PLAIN: TypeInfo = TypeInfo {
    name: "Object",
    fields: &[METADATA],
};

/// Kinds with conditions in their status and nothing else, such as
/// HorizontalPodAutoscaler.
pub static WITH_CONDITIONS: TypeInfo = TypeInfo {
    name: "ObjectWithConditions",
    fields: &[METADATA, STATUS],
};

pub static POD: TypeInfo = TypeInfo {
    name: "Pod",
    fields: &[METADATA, nested("spec", &POD_SPEC), nested("status", &POD_STATUS)],
};

pub static POD_TEMPLATE: TypeInfo = TypeInfo {
    name: "PodTemplate",
    fields: &[METADATA, TEMPLATE],
};

pub static SERVICE: TypeInfo = TypeInfo {
    name: "Service",
    fields: &[
        METADATA,
        nested(
            "spec",
            &TypeInfo {
                name: "ServiceSpec",
                fields: &[
                    by_key("ports", "port", None).with_apply_keys(&[key("port"), key_or("protocol", "TCP")]),
                    atomic("selector"),
                ],
            },
        ),
        STATUS,
    ],
};

pub static NODE: TypeInfo = TypeInfo {
    name: "Node",
    fields: &[
        METADATA,
        nested(
            "spec",
            &TypeInfo {
                name: "NodeSpec",
                fields: &[primitives("podCIDRs"), replaced("taints")],
            },
        ),
        nested(
            "status",
            &TypeInfo {
                name: "NodeStatus",
                fields: &[CONDITIONS, by_key("addresses", "type", None)],
            },
        ),
    ],
};

/// Namespace: `spec.finalizers` is an atomic list, unlike `metadata.finalizers`.
pub static NAMESPACE: TypeInfo = TypeInfo {
    name: "Namespace",
    fields: &[METADATA, STATUS],
};

pub static SERVICE_ACCOUNT: TypeInfo = TypeInfo {
    name: "ServiceAccount",
    fields: &[METADATA, by_key("secrets", "name", None), replaced("imagePullSecrets")],
};

/// ReplicaSet, DaemonSet, ReplicationController and Job.
pub static WORKLOAD: TypeInfo = TypeInfo {
    name: "Workload",
    fields: &[METADATA, nested("spec", &TEMPLATED_SPEC), STATUS],
};

pub static DEPLOYMENT: TypeInfo = TypeInfo {
    name: "Deployment",
    fields: &[
        METADATA,
        nested(
            "spec",
            &TypeInfo {
                name: "DeploymentSpec",
                fields: &[TEMPLATE, retaining("strategy"), SELECTOR],
            },
        ),
        STATUS,
    ],
};

pub static STATEFUL_SET: TypeInfo = TypeInfo {
    name: "StatefulSet",
    fields: &[
        METADATA,
        nested(
            "spec",
            &TypeInfo {
                name: "StatefulSetSpec",
                fields: &[
                    TEMPLATE,
                    nested("volumeClaimTemplates", &PERSISTENT_VOLUME_CLAIM),
                    SELECTOR,
                ],
            },
        ),
        STATUS,
    ],
};

pub static CRON_JOB: TypeInfo = TypeInfo {
    name: "CronJob",
    fields: &[
        METADATA,
        nested(
            "spec",
            &TypeInfo {
                name: "CronJobSpec",
                fields: &[nested(
                    "jobTemplate",
                    &TypeInfo {
                        name: "JobTemplateSpec",
                        fields: &[METADATA, nested("spec", &TEMPLATED_SPEC)],
                    },
                )],
            },
        ),
    ],
};

pub static CSI_NODE: TypeInfo = TypeInfo {
    name: "CSINode",
    fields: &[
        METADATA,
        nested(
            "spec",
            &TypeInfo {
                name: "CSINodeSpec",
                fields: &[by_key("drivers", "name", None)],
            },
        ),
    ],
};

pub static WEBHOOK_CONFIGURATION: TypeInfo = TypeInfo {
    name: "WebhookConfiguration",
    fields: &[
        METADATA,
        by_key(
            "webhooks",
            "name",
            Some(&TypeInfo {
                name: "Webhook",
                fields: &[by_key("matchConditions", "name", None)],
            }),
        ),
    ],
};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The patch metadata of a kind as its ops name it, and of the kinds
    /// whose tables exist before skiff serves them.
    pub(crate) fn root_type(group: &str, kind: &str) -> Option<&'static TypeInfo> {
        let unserved: Option<&'static TypeInfo> = match (group, kind) {
            ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration") => {
                Some(&WEBHOOK_CONFIGURATION)
            }
            ("", "PersistentVolumeClaim") => Some(&PERSISTENT_VOLUME_CLAIM),
            ("storage.k8s.io", "CSINode") => Some(&CSI_NODE),
            ("autoscaling", "HorizontalPodAutoscaler") => Some(&WITH_CONDITIONS),
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
