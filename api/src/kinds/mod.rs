//! Everything the API server knows about one kind, kept in one place.
//!
//! Each built-in kind has a file here holding one [`BuiltinKind`]: its
//! `k8s-openapi` type and its [`KindOps`], the server-set fields it gets on
//! create and update (which may depend on the user writing), its defaults
//! and validation, its name rule, what a delete does to it, the columns
//! `kubectl get` prints, the fields a field selector may name, and where a
//! strategic merge patch finds its list metadata. kube-apiserver keeps the
//! same facts together per resource in its registry strategy and REST
//! storage; the generic code here (the registry, [`crate::strategy`],
//! [`crate::table`], field selectors, patches) only dispatches through the
//! [`KindOps`] of the [`Resource`](crate::catalog::Resource) it serves.
//!
//! Every field of [`KindOps`] must be given, so a kind cannot half-land: a
//! kind without a printer, a field-label table or patch metadata does not
//! compile. Kinds that have nothing to add say so with the shared no-op
//! hooks below. A test walks the catalog and checks the rest (that the
//! ops match the catalog entry, that rows have one cell per column).
//!
//! Adding a built-in kind: a file here with its `KIND`, a `mod` line below,
//! and one line in [`crate::catalog::builtins`].
//!
//! Custom resources (CRD kinds and `skiff.dev` WasmPlugins) share
//! [`custom::OPS`]; their schema checks live in [`crate::structural`].

use serde_json::Value;

use crate::error::Cause;
use crate::meta::NameRule;
use crate::options::{DeleteOptions, Part, WriteOptions};
use crate::patch::schema::TypeInfo;
use crate::printer::Column;

pub mod api_service;
pub mod certificate_signing_request;
pub mod config_map;
pub mod cron_job;
pub mod custom;
pub mod custom_resource_definition;
pub mod daemon_set;
pub mod deployment;
pub mod endpoint_slice;
pub mod endpoints;
pub mod event;
pub mod fields;
pub mod horizontal_pod_autoscaler;
pub mod ingress;
pub mod ingress_class;
pub mod job;
pub mod label_selector;
pub mod lease;
pub mod namespace;
pub mod network_policy;
pub mod node;
pub mod pod;
pub mod pod_spec;
pub mod rbac;
pub mod replica_set;
pub mod replication_controller;
pub mod review;
pub mod runtime_class;
pub mod secret;
pub mod service;
pub mod service_account;
pub mod stateful_set;
pub mod workload;

/// Decodes a body into its typed form and encodes it back: the canonical
/// JSON of a built-in object. Fields the type does not know are dropped.
pub type Canonicalize = fn(&Value) -> Result<Value, serde_json::Error>;

/// Generates the OpenAPI schema of a built-in kind.
pub type SchemaFn = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// A built-in kind's Kubernetes type, as `k8s-openapi` describes it.
#[derive(Clone, Copy, Debug)]
pub struct Typed {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The URL segment, e.g. `deployments`.
    pub plural: &'static str,
    pub canonicalize: Canonicalize,
    pub schema: SchemaFn,
}

impl Typed {
    /// The facts of `k8s-openapi` type `T`.
    pub const fn of<T>() -> Typed
    where
        T: k8s_openapi::Resource + serde::de::DeserializeOwned + serde::Serialize + schemars::JsonSchema,
    {
        Typed {
            group: T::GROUP,
            version: T::VERSION,
            kind: T::KIND,
            plural: T::URL_PATH_SEGMENT,
            canonicalize: canonical::<T>,
            schema: schema_of::<T>,
        }
    }
}

fn canonical<T>(value: &Value) -> Result<Value, serde_json::Error>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: T = serde_json::from_value(value.clone())?;
    serde_json::to_value(typed)
}

fn schema_of<T: schemars::JsonSchema>(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<T>()
}

/// A kind's semantic checks: the object, on update the stored object with
/// the part written, and the causes found so far to add to.
pub type Validate = fn(&Value, Option<(&Value, Part)>, &mut Vec<Cause>);

/// How `kubectl get` prints a kind: the Table's columns and each object's
/// cells, one per column.
#[derive(Clone, Copy, Debug)]
pub struct Printer {
    pub columns: &'static [Column],
    /// One object's cells as of `now` (nanoseconds since the epoch).
    pub row: fn(&Value, i128) -> Vec<Value>,
    /// The row `conditions` Kubernetes attaches (a finished pod is
    /// `Completed`), if any.
    pub conditions: fn(&Value) -> Option<Value>,
}

/// A built-in kind: its Kubernetes type and its hooks.
#[derive(Debug)]
pub struct BuiltinKind {
    pub typed: Typed,
    pub ops: KindOps,
}

/// The hooks of one kind. See the module doc.
#[derive(Debug)]
pub struct KindOps {
    /// How `metadata.name` is checked.
    pub name_rule: NameRule,
    /// Whether a create keeps the `status` it is sent although the kind has
    /// a status subresource (a node agent registers its Node with status).
    pub create_keeps_status: bool,
    /// Server-set fields of a new object, after defaults; the options
    /// name the user creating it.
    pub prepare_for_create: fn(&mut Value, &WriteOptions),
    /// Server-set fields of an updated object, after defaults: the new
    /// object, the stored one, which [`Part`] of the object the update
    /// writes, and the options (the user writing).
    pub prepare_for_update: fn(&mut Value, &Value, Part, &WriteOptions),
    /// Kubernetes' defaults for the kind's fields.
    pub defaults: fn(&mut Value),
    /// Semantic checks beyond the generic ones (name, labels, finalizers):
    /// the object, and on update the stored object with the part written.
    pub validate: Validate,
    /// The seconds a deleted object lingers for something to stop it (a
    /// pod on a node); 0 removes it at once unless finalizers hold it.
    pub deletion_grace: fn(&Value, &DeleteOptions) -> i64,
    /// Whether `spec.finalizers` also hold a deleted object, which then
    /// reports `status.phase: Terminating` (namespaces).
    pub spec_finalizers: bool,
    /// Whether a DELETE that removes the object answers with the object,
    /// as kube-apiserver's stores with `ReturnDeletedObject` do (pods,
    /// Services, namespaces, service accounts), rather than a Status.
    pub delete_returns_object: bool,
    /// What a DELETE naming no propagation policy does with the object's
    /// dependents.
    pub unnamed_propagation: Unnamed,
    pub printer: Printer,
    /// The value of a selectable field other than `metadata.name`:
    /// `None` when the kind does not support the field, `Some(None)` when
    /// the object lacks it. See [`fields`].
    pub field_label: fn(&Value, &str) -> Option<Option<String>>,
    /// The top-level strategic-merge-patch metadata; `None` answers a
    /// strategic merge patch with 415 (custom resources).
    pub patch: Option<&'static TypeInfo>,
}

/// What a DELETE naming no propagation policy does with dependents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unnamed {
    /// Deletes them in the background (most kinds).
    Background,
    /// Orphans them, as the v1 `DefaultGarbageCollectionPolicy` of Jobs
    /// and ReplicationControllers says; `warning`, if any, goes back to the
    /// client in a `Warning` header (kube-apiserver warns of Jobs).
    Orphan { warning: Option<&'static str> },
}

impl KindOps {
    /// The value of selectable field `field` of `object`.
    ///
    /// `Ok(None)` means the kind supports the field but the object lacks it
    /// (it then compares as `""`, so `spec.nodeName=` selects unscheduled
    /// pods). A field the kind does not support is
    /// [`SelectorError::UnsupportedField`](crate::selector::SelectorError::UnsupportedField),
    /// whatever the object.
    pub fn field_value(&self, object: &Value, field: &str) -> crate::selector::Result<Option<String>> {
        if field == "metadata.name" {
            return Ok(fields::string_at(object, &["metadata", "name"]));
        }
        (self.field_label)(object, field)
            .ok_or_else(|| crate::selector::SelectorError::UnsupportedField(field.to_owned()))
    }
}

/// A create hook for kinds that set nothing on create.
pub fn nothing_on_create(_: &mut Value, _: &WriteOptions) {}

/// An update hook for kinds that set nothing on update.
pub fn nothing_on_update(_: &mut Value, _: &Value, _: Part, _: &WriteOptions) {}

/// A defaults hook for kinds without defaults.
pub fn no_defaults(_: &mut Value) {}

/// A validation hook for kinds checked only generically.
pub fn no_validation(_: &Value, _: Option<(&Value, Part)>, _: &mut Vec<Cause>) {}

/// A deletion hook for kinds that go at once.
pub fn no_deletion_grace(_: &Value, _: &DeleteOptions) -> i64 {
    0
}

/// A row-conditions hook for kinds whose rows carry none.
pub fn no_row_conditions(_: &Value) -> Option<Value> {
    None
}

/// Gives `object` the `status` fields that kube-apiserver always returns
/// for its kind: Go's JSON encoding writes non-pointer structs and numbers
/// without `omitempty` even when empty (a new Service reads back with
/// `status: {loadBalancer: {}}`, a ReplicaSet with `status: {replicas: 0}`),
/// and clients assert on them. Fields present are kept.
pub(crate) fn default_status(object: &mut Value, empty: Value) {
    let Value::Object(empty) = empty else { return };
    let Some(map) = object.as_object_mut() else { return };
    let status = map.entry("status").or_insert_with(|| Value::Object(Default::default()));
    if status.is_null() {
        *status = Value::Object(Default::default());
    }
    for (field, value) in empty {
        set_default(status, &field, value);
    }
}

/// Sets `field` of `object` to `value` when absent or null.
pub(crate) fn set_default(object: &mut Value, field: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        let slot = map.entry(field).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Shape};
    use serde_json::json;

    /// Every built-in in the catalog carries its own kind's ops, complete
    /// enough to serve: a printer whose rows fit its columns, a name
    /// column, field labels, and patch metadata.
    #[test]
    fn every_builtin_has_complete_ops() {
        let catalog = Catalog::new();
        let mut builtins = 0;
        for resource in catalog.resources() {
            let ops = resource.ops;
            let Shape::Builtin { .. } = resource.shape else {
                assert!(
                    std::ptr::eq(ops, &custom::OPS),
                    "{}: custom resources share their ops",
                    resource.kind
                );
                continue;
            };
            builtins += 1;
            assert!(
                ops.patch.is_some(),
                "{}: no strategic merge patch metadata",
                resource.kind
            );
            let object = json!({
                "apiVersion": resource.api_version(), "kind": resource.kind,
                "metadata": {"name": "x", "namespace": "default", "creationTimestamp": "2024-05-01T12:00:00Z"},
            });
            let cells = (ops.printer.row)(&object, 0);
            assert_eq!(
                cells.len(),
                ops.printer.columns.len(),
                "{}: one cell per column",
                resource.kind
            );
            assert!(
                ops.printer.columns.iter().any(|c| c.format == "name"),
                "{}: a printer names its objects",
                resource.kind
            );
            assert_eq!(ops.field_value(&object, "metadata.name").unwrap().as_deref(), Some("x"));
            assert!(ops.field_value(&object, "no.such.field").is_err(), "{}", resource.kind);
            // Defaults and validation run on an object with nothing in it
            // (validation may find causes; it must not fail otherwise).
            let mut bare = json!({"metadata": {"name": "x"}});
            (ops.defaults)(&mut bare);
            let mut causes = Vec::new();
            (ops.validate)(&bare, None, &mut causes);
        }
        assert!(builtins >= 25, "only {builtins} built-ins");
    }

    #[test]
    fn custom_resources_print_name_and_age_and_answer_merge_patches_only() {
        let ops = &custom::OPS;
        assert!(ops.patch.is_none());
        let names: Vec<_> = ops.printer.columns.iter().map(|c| c.name).collect();
        assert_eq!(names, ["Name", "Age"]);
        let widget = json!({"metadata": {"name": "w", "namespace": "a"}});
        assert_eq!(
            ops.field_value(&widget, "metadata.namespace").unwrap().as_deref(),
            Some("a")
        );
        assert!(ops.field_value(&widget, "spec.size").is_err());
    }
}
