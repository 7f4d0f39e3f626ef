//! Server-side apply (`application/apply-patch+yaml`) and the field
//! ownership it rests on, `metadata.managedFields`.
//!
//! Every write records which fields its *manager* (the request's
//! `fieldManager`) set. [`apply`] works from those records: the fields of an
//! applied configuration become exactly the applier's set; fields the applier
//! set last time and has now left out leave the object unless another manager
//! set them too; and changing a field that another manager set is a conflict,
//! unless the request forces it, which moves the field to the applier.
//! [`record_update`] keeps the records current for every other write: create,
//! update, and JSON, merge or strategic patches.
//!
//! Both are pure functions on `serde_json::Value`: the caller reads the stored
//! object, calls one of them, and writes what it returns. Decoding, defaulting,
//! validation and storage stay with the caller.
//!
//! # Field sets
//!
//! A manager's fields are a tree in the `FieldsV1` format of Kubernetes:
//! `f:<name>` is a field of an object, `k:<json>` an item of a list map named
//! by its key fields (a JSON object, names sorted), `v:<json>` an item of a
//! set, and `.` inside a node says the node itself belongs to the set (a list
//! item, or a map that an update created). A leaf is `{}`. Entries are kept
//! one per applier (`operation: Apply`) and one per updater and API version
//! (`operation: Update`), as Kubernetes keeps them.
//!
//! # Types
//!
//! How lists and maps combine comes from [`super::schema`]:
//! [`FieldInfo::list_type`] (atomic, set or map with keys) and
//! [`FieldInfo::is_atomic`]. Wherever there is no metadata (custom kinds, and
//! fields the tables do not describe) maps are granular and lists atomic.
//!
//! # Not tracked
//!
//! `apiVersion`, `kind`, and the server's or the request's metadata (`name`,
//! `namespace`, `uid`, `resourceVersion`, `generation`, `creationTimestamp`,
//! `deletionTimestamp`, `deletionGracePeriodSeconds`, `selfLink`,
//! `managedFields`) belong to no manager. [`Scope`] says which top-level
//! fields a request writes: `status` is left out on the main resource of a
//! kind with a status subresource, and only `status` counts on `/status`.
//!
//! # Simplified compared with Kubernetes
//!
//! * One schema for every version of a kind: entries of other API versions
//!   are compared without conversion.
//! * Structs and maps are not told apart: a non-empty map in an applied
//!   configuration never gets its own `.` (Kubernetes gives one to entries of
//!   true maps whose value is an object).
//! * Update entries are not capped (Kubernetes folds the oldest of more than
//!   ten into `ancient-changes`).
//! * Client-side-apply migration (`kubectl-client-side-apply` and the
//!   last-applied annotation) gets no special treatment.
//! * A removal that empties a map or list removes it too (Kubernetes' typed
//!   objects drop empty optional values when they are serialised).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::schema::{FieldInfo, ListType, TypeInfo};

/// The Update manager that owns the fields of an object which predates field
/// tracking when it is first applied to.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Metadata fields that no manager owns.
const UNTRACKED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
];

/// The top-level fields that are not data and never owned.
const TYPE_FIELDS: &[&str] = &["apiVersion", "kind"];

/// Which part of an object a write goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A kind without a status subresource: the whole object.
    Object,
    /// The main resource of a kind with a status subresource: `status`
    /// belongs to the subresource, is ignored in an applied configuration and
    /// is never owned here.
    Main,
    /// The `status` subresource: only `status` is written and owned, and
    /// entries carry `subresource: status`.
    Status,
}

impl Scope {
    /// Whether a top-level data field belongs to this scope.
    fn covers(self, field: &str) -> bool {
        match self {
            Scope::Object => true,
            Scope::Main => field != "status",
            Scope::Status => field == "status",
        }
    }

    fn subresource(self) -> Option<&'static str> {
        match self {
            Scope::Status => Some("status"),
            Scope::Object | Scope::Main => None,
        }
    }
}

/// The operation a managed-fields entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One server-side apply request.
#[derive(Clone, Copy, Debug)]
pub struct ApplyRequest<'a> {
    /// The `fieldManager` query parameter (required for apply).
    pub manager: &'a str,
    /// The `force` query parameter: take conflicting fields instead of failing.
    pub force: bool,
    /// The body: the applier's configuration, with `apiVersion` and `kind`.
    pub applied: &'a Value,
    /// RFC 3339 time for the applier's entry.
    pub now: &'a str,
    /// The part of the object the request writes.
    pub scope: Scope,
}

/// A field another manager owns and the apply would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// How it came to own the field.
    pub operation: Operation,
    /// The API version of its entry.
    pub api_version: String,
    /// The subresource of its entry, such as `status`.
    pub subresource: Option<String>,
    /// The field, as Kubernetes prints paths: `.spec.replicas`,
    /// `.spec.containers[name="app"].image`, `.metadata.finalizers[="x"]`.
    pub field: String,
}

impl Conflict {
    /// The owner as Kubernetes names it in messages: `"kubectl"` for an
    /// applier, `"kubectl" using apps/v1` for an updater.
    pub fn owner(&self) -> String {
        let mut owner = format!("{:?}", self.manager);
        if let Some(subresource) = &self.subresource {
            owner.push_str(&format!(" with subresource {subresource:?}"));
        }
        if self.operation == Operation::Update {
            owner.push_str(&format!(" using {}", self.api_version));
        }
        owner
    }
}

/// Why an apply was refused.
///
/// None is worth retrying unchanged: a conflict goes away when the request
/// sets `force` (or leaves the fields out), the other variants describe the
/// request. [`ApplyError::status_code`] gives the HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Fields that other managers own would change. Rendered as 409 Conflict
    /// with one cause (`FieldManagerConflict`) per conflict.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The body is not an applied configuration: not an object, no
    /// `apiVersion` or `kind`, or `metadata.managedFields` set. Rendered as 400.
    #[error("{0}")]
    BadRequest(String),
    /// The configuration does not fit the kind's lists: an item of a list map
    /// without its key, a key given twice, an item of the wrong type.
    /// Rendered as 422.
    #[error("{0}")]
    Invalid(String),
}

impl ApplyError {
    /// The message Kubernetes sends, such as `Apply failed with 1 conflict:
    /// conflict with "kubectl" using apps/v1: .spec.replicas`.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The HTTP status to answer with.
    pub fn status_code(&self) -> u16 {
        match self {
            ApplyError::Conflicts(_) => 409,
            ApplyError::BadRequest(_) => 400,
            ApplyError::Invalid(_) => 422,
        }
    }
}

/// The result type of this module.
pub type Result<T, E = ApplyError> = std::result::Result<T, E>;

fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.owner(),
            only.field
        );
    }
    let mut by_owner: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for conflict in conflicts {
        by_owner.entry(conflict.owner()).or_default().push(&conflict.field);
    }
    let mut lines = Vec::new();
    for (owner, fields) in by_owner {
        lines.push(format!("conflicts with {owner}:"));
        lines.extend(fields.into_iter().map(|field| format!("- {field}")));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

/// Applies `request.applied` to `current` (the stored object without its
/// `resourceVersion`, or `None` to create) and returns the new object with its
/// `metadata.managedFields` updated. `root` is the kind's metadata
/// (a kind's [`KindOps::patch`](crate::kinds::KindOps::patch)); `None` for custom kinds.
///
/// Re-applying the configuration last applied returns `current` unchanged.
/// A `resourceVersion` in the configuration is kept in the result, so the
/// caller's precondition check sees it; other server-set metadata in it is
/// merged but never owned, and the caller restores it as for any update.
pub fn apply(current: Option<&Value>, request: &ApplyRequest<'_>, root: Option<&TypeInfo>) -> Result<Value> {
    let Value::Object(applied) = request.applied else {
        return Err(ApplyError::BadRequest(format!(
            "an applied configuration must be an object, not {}",
            json_type(request.applied)
        )));
    };
    let mut api_version = "";
    for field in TYPE_FIELDS {
        match applied.get(*field).and_then(Value::as_str) {
            Some(value) if !value.is_empty() => {
                if *field == "apiVersion" {
                    api_version = value;
                }
            }
            _ => {
                return Err(ApplyError::BadRequest(format!(
                    "{field} must be set in an applied configuration"
                )));
            }
        }
    }
    match applied.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(metadata)) => {
            if metadata.get("managedFields").is_some_and(|fields| !fields.is_null()) {
                return Err(ApplyError::BadRequest(
                    "metadata.managedFields must be nil in an applied configuration".into(),
                ));
            }
        }
        Some(other) => {
            return Err(ApplyError::BadRequest(format!(
                "metadata must be an object, not {}",
                json_type(other)
            )));
        }
    }
    let kind = Kind::root(root);
    let scope = request.scope;
    let owned = match tracked(request.applied, scope) {
        Value::Object(config) => object_set(&config, kind, Mode::Applied, &mut Vec::new())?,
        _ => FieldSet::default(),
    };

    let live = match current {
        Some(object @ Value::Object(_)) => object.clone(),
        _ => Value::Object(Map::new()),
    };
    let mut entries = decode_entries(current);
    if current.is_some() && entries.is_empty() {
        let fields = changes(&Value::Object(Map::new()), &tracked(&live, scope), kind).added;
        entries.push(Entry {
            manager: BEFORE_FIRST_APPLY.into(),
            operation: Operation::Update,
            api_version: live
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or(api_version)
                .into(),
            subresource: None,
            time: None,
            fields,
        });
    }
    let mut me = Entry {
        manager: request.manager.into(),
        operation: Operation::Apply,
        api_version: api_version.into(),
        subresource: scope.subresource().map(String::from),
        time: None,
        fields: owned,
    };
    let previous = entries
        .iter()
        .position(|entry| entry.same_owner(&me))
        .map(|index| entries.remove(index));

    let mut merged = merge(Some(live.clone()), &merge_view(applied, scope), kind);
    if let Some(previous) = &previous {
        let mut keep = me.fields.clone();
        for entry in &entries {
            keep.union_with(&entry.fields);
        }
        let dropped = previous.fields.minus(&keep);
        if !dropped.is_empty() {
            prune(&mut merged, &dropped, &keep, kind, &[]);
        }
    }

    let diff = changes(&tracked(&live, scope), &tracked(&merged, scope), kind);
    let mut changed = diff.added;
    changed.union_with(&diff.modified);
    let conflicts: Vec<Conflict> = entries
        .iter()
        .flat_map(|entry| {
            entry
                .fields
                .intersect(&changed)
                .paths()
                .into_iter()
                .map(|path| Conflict {
                    manager: entry.manager.clone(),
                    operation: entry.operation,
                    api_version: entry.api_version.clone(),
                    subresource: entry.subresource.clone(),
                    field: render_path(&path),
                })
        })
        .collect();
    if !conflicts.is_empty() && !request.force {
        return Err(ApplyError::Conflicts(conflicts));
    }
    for entry in &mut entries {
        entry.fields = entry.fields.minus(&changed).minus(&diff.removed);
    }

    strip_nulls(&mut merged, &me.fields, kind);
    let object_changed = without_managed_fields(&merged) != without_managed_fields(&live);
    me.time = match &previous {
        Some(previous) if !object_changed => previous.time.clone(),
        _ => Some(request.now.into()),
    };
    entries.push(me);
    write_entries(&mut merged, entries);
    Ok(merged)
}

/// Records a write other than apply (create, update, patch) by `manager`:
/// the fields that changed between `old` (`None` on create) and `new` become
/// the manager's `Update` entry for `new`'s `apiVersion`, and leave every
/// other entry; removed fields leave every entry. Writes the result to
/// `new`'s `metadata.managedFields`. Entries start from `new`'s own
/// `managedFields` when it has them (a client may reset them that way) and
/// from `old`'s otherwise. The entry's time becomes `now` when the manager
/// changed something.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    now: &str,
    scope: Scope,
    root: Option<&TypeInfo>,
) {
    if !new.is_object() {
        return;
    }
    let kind = Kind::root(root);
    let sent = new
        .pointer("/metadata/managedFields")
        .is_some_and(|fields| !fields.is_null());
    let mut entries = decode_entries(if sent { Some(&*new) } else { old });
    let empty = Value::Object(Map::new());
    let diff = changes(&tracked(old.unwrap_or(&empty), scope), &tracked(new, scope), kind);
    let mut changed = diff.added;
    changed.union_with(&diff.modified);

    let me = Entry {
        manager: manager.into(),
        operation: Operation::Update,
        api_version: new.get("apiVersion").and_then(Value::as_str).unwrap_or_default().into(),
        subresource: scope.subresource().map(String::from),
        time: None,
        fields: FieldSet::default(),
    };
    let previous = entries
        .iter()
        .position(|entry| entry.same_owner(&me))
        .map(|index| entries.remove(index));
    for entry in &mut entries {
        entry.fields = entry.fields.minus(&changed).minus(&diff.removed);
    }
    let mut fields = previous
        .as_ref()
        .map(|previous| previous.fields.minus(&diff.removed))
        .unwrap_or_default();
    fields.union_with(&changed);
    let time = match previous {
        Some(previous) if changed.is_empty() => previous.time,
        _ => Some(now.into()),
    };
    entries.push(Entry { fields, time, ..me });
    write_entries(new, entries);
}

// ---------------------------------------------------------------------------
// Field sets.

/// A set of field paths, as a tree keyed by `FieldsV1` path elements
/// (`f:name`, `k:{..}`, `v:..`, `i:n`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct FieldSet {
    /// Whether the path leading to this node is itself in the set.
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

static NO_FIELDS: FieldSet = FieldSet {
    member: false,
    children: BTreeMap::new(),
};

impl FieldSet {
    fn leaf() -> FieldSet {
        FieldSet {
            member: true,
            children: BTreeMap::new(),
        }
    }

    fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// Whether anything is in the set at or under the child `step`.
    fn has_under(&self, step: &str) -> bool {
        self.children.get(step).is_some_and(|child| !child.is_empty())
    }

    fn insert_child(&mut self, step: String, child: FieldSet) {
        if !child.is_empty() {
            self.children.entry(step).or_default().union_with(&child);
        }
    }

    fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (step, child) in &other.children {
            self.children.entry(step.clone()).or_default().union_with(child);
        }
    }

    fn minus(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (step, child) in &self.children {
            let rest = match other.children.get(step) {
                Some(other) => child.minus(other),
                None => child.clone(),
            };
            out.insert_child(step.clone(), rest);
        }
        out
    }

    fn intersect(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (step, child) in &self.children {
            if let Some(other) = other.children.get(step) {
                out.insert_child(step.clone(), child.intersect(other));
            }
        }
        out
    }

    /// The member paths, parents before children.
    fn paths(&self) -> Vec<Vec<String>> {
        fn walk(set: &FieldSet, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            if set.member {
                out.push(prefix.clone());
            }
            for (step, child) in &set.children {
                prefix.push(step.clone());
                walk(child, prefix, out);
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    /// The `fieldsV1` JSON of the set.
    fn to_json(&self) -> Value {
        let mut object = Map::new();
        if self.member && !self.children.is_empty() {
            object.insert(".".into(), Value::Object(Map::new()));
        }
        for (step, child) in &self.children {
            object.insert(step.clone(), child.to_json());
        }
        Value::Object(object)
    }

    /// Reads `fieldsV1` JSON; `None` when it is not a tree of objects.
    fn from_json(value: &Value) -> Option<FieldSet> {
        let Value::Object(object) = value else {
            return None;
        };
        let mut set = FieldSet::default();
        for (step, child) in object {
            if step == "." {
                set.member = true;
                continue;
            }
            let mut child = FieldSet::from_json(child)?;
            if child.children.is_empty() {
                // `{}` is a leaf.
                child.member = true;
            }
            set.children.insert(step.clone(), child);
        }
        Some(set)
    }
}

/// A path as Kubernetes prints it: `.spec.containers[name="app"].image`.
fn render_path(path: &[String]) -> String {
    path.iter().map(|step| render_step(step)).collect()
}

fn render_step(step: &str) -> String {
    if let Some(name) = step.strip_prefix("f:") {
        format!(".{name}")
    } else if let Some(keys) = step.strip_prefix("k:") {
        match serde_json::from_str::<Map<String, Value>>(keys) {
            Ok(keys) => {
                let keys: Vec<String> = keys.iter().map(|(name, value)| format!("{name}={value}")).collect();
                format!("[{}]", keys.join(","))
            }
            Err(_) => format!("[{keys}]"),
        }
    } else if let Some(value) = step.strip_prefix("v:") {
        format!("[={value}]")
    } else if let Some(index) = step.strip_prefix("i:") {
        format!("[{index}]")
    } else {
        step.to_owned()
    }
}

// ---------------------------------------------------------------------------
// Types.

/// How a value in one position of an object combines: its list type, the
/// metadata of its fields (or of its items), and whether it is atomic.
#[derive(Clone, Copy, Debug)]
struct Kind<'t> {
    list: ListType,
    ty: Option<&'t TypeInfo>,
    atomic: bool,
}

impl<'t> Kind<'t> {
    fn root(ty: Option<&'t TypeInfo>) -> Kind<'t> {
        Kind {
            list: ListType::Atomic,
            ty,
            atomic: false,
        }
    }

    fn field(self, name: &str) -> Kind<'t> {
        match self.ty.and_then(|ty| ty.field(name)) {
            Some(info) => Kind {
                list: info.list_type(),
                ty: info.child().map(|child| child as &'t TypeInfo),
                atomic: FieldInfo::is_atomic(info),
            },
            None => Kind {
                list: ListType::Atomic,
                ty: None,
                atomic: false,
            },
        }
    }

    /// The kind of the items of a list of this kind.
    fn item(self) -> Kind<'t> {
        Kind {
            list: ListType::Atomic,
            ..self
        }
    }

    /// Whether an object here is combined field by field.
    fn granular_object(self) -> bool {
        !self.atomic
    }

    /// Whether a list here is combined item by item.
    fn granular_list(self) -> bool {
        self.list != ListType::Atomic
    }

    fn is_list_map(self) -> bool {
        matches!(self.list, ListType::Map(_))
    }
}

/// Why a list item has no path element.
enum Unnamed {
    NotAnObject,
    MissingKey(&'static str),
}

/// The path element of `item` in a granular list of type `list`.
fn item_step(item: &Value, list: ListType) -> std::result::Result<String, Unnamed> {
    match list {
        ListType::Map(keys) => {
            let Value::Object(fields) = item else {
                return Err(Unnamed::NotAnObject);
            };
            let mut key = Map::new();
            for field in keys.iter() {
                let value = match (fields.get(field.name()), field.default()) {
                    (Some(value), _) if !value.is_null() => value.clone(),
                    (_, Some(default)) => Value::String(default.into()),
                    _ => return Err(Unnamed::MissingKey(field.name())),
                };
                key.insert(field.name().into(), value);
            }
            Ok(format!("k:{}", Value::Object(key)))
        }
        ListType::Set | ListType::Atomic => Ok(format!("v:{item}")),
    }
}

/// The key field names of a list map, which a kept item must keep.
fn key_names(list: ListType) -> Vec<&'static str> {
    match list {
        ListType::Map(keys) => keys.iter().map(|key| key.name()).collect(),
        ListType::Set | ListType::Atomic => Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// The fields of a value.

/// What a field set is computed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// An applied configuration: malformed lists are errors, and a non-empty
    /// map is not a member of its own.
    Applied,
    /// A value that a write created: every map is a member (`.`), and items
    /// without a path element are skipped.
    Created,
}

/// The fields of an object: one child per field.
fn object_set(object: &Map<String, Value>, kind: Kind<'_>, mode: Mode, path: &mut Vec<String>) -> Result<FieldSet> {
    let mut set = FieldSet::default();
    for (name, value) in object {
        let step = format!("f:{name}");
        path.push(step.clone());
        let child = value_set(value, kind.field(name), mode, path)?;
        path.pop();
        set.insert_child(step, child);
    }
    Ok(set)
}

/// The fields of a value in a position of kind `kind`, the position included.
fn value_set(value: &Value, kind: Kind<'_>, mode: Mode, path: &mut Vec<String>) -> Result<FieldSet> {
    match value {
        Value::Object(object) if kind.granular_object() && !object.is_empty() => {
            let mut set = object_set(object, kind, mode, path)?;
            set.member = mode == Mode::Created;
            Ok(set)
        }
        Value::Array(items) if kind.granular_list() => {
            let mut set = FieldSet::default();
            for (index, item) in items.iter().enumerate() {
                let step = match item_step(item, kind.list) {
                    Ok(step) => step,
                    Err(_) if mode == Mode::Created => continue,
                    Err(reason) => return Err(unnamed_item(path, index, reason)),
                };
                if mode == Mode::Applied && set.children.contains_key(&step) {
                    return Err(ApplyError::Invalid(format!(
                        "{}: duplicate entries for key {}",
                        render_path(path),
                        render_step(&step)
                    )));
                }
                path.push(step.clone());
                let mut child = match item {
                    Value::Object(fields) if kind.is_list_map() && kind.granular_object() => {
                        object_set(fields, kind.item(), mode, path)?
                    }
                    _ => FieldSet::default(),
                };
                path.pop();
                child.member = true;
                set.children.insert(step, child);
            }
            Ok(set)
        }
        _ => Ok(FieldSet::leaf()),
    }
}

fn unnamed_item(path: &[String], index: usize, reason: Unnamed) -> ApplyError {
    let at = render_path(path);
    ApplyError::Invalid(match reason {
        Unnamed::NotAnObject => format!("{at}: element {index}: expected an object in a list with keys"),
        Unnamed::MissingKey(key) => format!(
            "{at}: element {index}: associative list with keys has an element that omits key field {key:?} (and doesn't have default value)"
        ),
    })
}

// ---------------------------------------------------------------------------
// Views of an object.

/// The fields of `object` that managers can own, for `scope`.
fn tracked(object: &Value, scope: Scope) -> Value {
    let Value::Object(fields) = object else {
        return Value::Object(Map::new());
    };
    let mut out = Map::new();
    for (name, value) in fields {
        if TYPE_FIELDS.contains(&name.as_str()) || !scope.covers(name) {
            continue;
        }
        if name == "metadata" {
            let Value::Object(metadata) = value else {
                continue;
            };
            let kept: Map<String, Value> = metadata
                .iter()
                .filter(|(field, _)| !UNTRACKED_METADATA.contains(&field.as_str()))
                .map(|(field, value)| (field.clone(), value.clone()))
                .collect();
            if !kept.is_empty() {
                out.insert(name.clone(), Value::Object(kept));
            }
            continue;
        }
        out.insert(name.clone(), value.clone());
    }
    Value::Object(out)
}

/// What of an applied configuration is merged into the object: the fields of
/// `scope`, the type fields, and metadata minus `managedFields` and nulls
/// where the server keeps its own values.
fn merge_view(applied: &Map<String, Value>, scope: Scope) -> Value {
    let mut out = Map::new();
    for (name, value) in applied {
        if name == "metadata" {
            if let Value::Object(metadata) = value {
                let kept: Map<String, Value> = metadata
                    .iter()
                    .filter(|(field, value)| {
                        !(field.as_str() == "managedFields"
                            || (value.is_null() && UNTRACKED_METADATA.contains(&field.as_str())))
                    })
                    .map(|(field, value)| (field.clone(), value.clone()))
                    .collect();
                out.insert(name.clone(), Value::Object(kept));
            }
        } else if TYPE_FIELDS.contains(&name.as_str()) || scope.covers(name) {
            out.insert(name.clone(), value.clone());
        }
    }
    Value::Object(out)
}

fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        metadata.remove("managedFields");
    }
    object
}

// ---------------------------------------------------------------------------
// Merge.

/// Merges an applied value into the live one: objects field by field (unless
/// atomic), granular lists item by item, anything else replaced. Nulls of the
/// configuration are kept, to be compared and then stripped.
fn merge(live: Option<Value>, config: &Value, kind: Kind<'_>) -> Value {
    match (live, config) {
        (Some(Value::Object(mut live)), Value::Object(config)) if kind.granular_object() => {
            for (name, value) in config {
                let field = kind.field(name);
                match live.get_mut(name) {
                    Some(slot) => {
                        let old = std::mem::take(slot);
                        *slot = merge(Some(old), value, field);
                    }
                    None => {
                        live.insert(name.clone(), value.clone());
                    }
                }
            }
            Value::Object(live)
        }
        (Some(Value::Array(live)), Value::Array(config)) if kind.granular_list() => {
            Value::Array(merge_list(live, config, kind))
        }
        _ => config.clone(),
    }
}

/// Merges a granular list. Matching items merge; the configuration's items
/// come in its order, and live items it does not name keep their places
/// relative to the items around them.
fn merge_list(live: Vec<Value>, config: &[Value], kind: Kind<'_>) -> Vec<Value> {
    let item_kind = kind.item();
    let live_steps: Vec<Option<String>> = live.iter().map(|item| item_step(item, kind.list).ok()).collect();
    let config_steps: Vec<Option<String>> = config.iter().map(|item| item_step(item, kind.list).ok()).collect();
    let mut first_at: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, step) in live_steps.iter().enumerate() {
        if let Some(step) = step {
            first_at.entry(step.as_str()).or_insert(index);
        }
    }
    let named: BTreeSet<&str> = config_steps.iter().flatten().map(String::as_str).collect();
    // Shared items in the configuration's order: the next one due.
    let mut shared = config_steps
        .iter()
        .flatten()
        .map(String::as_str)
        .filter(|step| first_at.contains_key(step));
    let mut next_shared = shared.next();
    let mut live: Vec<Option<Value>> = live.into_iter().map(Some).collect();
    let mut merged: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::with_capacity(live.len().max(config.len()));
    let (mut l, mut r) = (0, 0);
    loop {
        // Emit live items the configuration does not name; skip named ones
        // until the configuration reaches them.
        while l < live.len() {
            match live_steps[l].as_deref() {
                Some(step) if named.contains(step) => {
                    let due = config_steps.get(r).and_then(Option::as_deref) == Some(step);
                    if merged.contains(step) || first_at.get(step) != Some(&l) || (!due && next_shared != Some(step)) {
                        l += 1;
                    } else {
                        break;
                    }
                }
                _ => {
                    if let Some(item) = live[l].take() {
                        out.push(item);
                    }
                    l += 1;
                }
            }
        }
        let Some(item) = config.get(r) else {
            break;
        };
        match config_steps[r].as_deref() {
            Some(step) => {
                let base = first_at.get(step).and_then(|&index| live[index].take());
                out.push(merge(base, item, item_kind));
                merged.insert(step);
                if next_shared == Some(step) {
                    next_shared = shared.next();
                }
            }
            None => out.push(item.clone()),
        }
        r += 1;
    }
    out
}

/// Removes from `value` the members of `dropped` under which `keep` has
/// nothing, and the maps and lists that this empties. `protected` names the
/// fields (the keys of a kept list item) that stay regardless.
fn prune(value: &mut Value, dropped: &FieldSet, keep: &FieldSet, kind: Kind<'_>, protected: &[&str]) {
    match value {
        Value::Object(object) if kind.granular_object() => {
            for (step, gone) in &dropped.children {
                let Some(name) = step.strip_prefix("f:") else {
                    continue;
                };
                if protected.contains(&name) {
                    continue;
                }
                let kept = keep.has_under(step);
                let Some(child) = object.get_mut(name) else {
                    continue;
                };
                if gone.member && !kept {
                    object.remove(name);
                    continue;
                }
                if !gone.children.is_empty() {
                    let was_empty = is_empty_container(child);
                    let keep_child = keep.children.get(step).unwrap_or(&NO_FIELDS);
                    prune(child, gone, keep_child, kind.field(name), &[]);
                    if !kept && !was_empty && is_empty_container(child) {
                        object.remove(name);
                    }
                }
            }
        }
        Value::Array(items) if kind.granular_list() => {
            let keys = key_names(kind.list);
            let mut out = Vec::with_capacity(items.len());
            for mut item in std::mem::take(items) {
                let step = item_step(&item, kind.list).ok();
                let Some((step, gone)) = step.and_then(|step| dropped.children.get(&step).map(|gone| (step, gone)))
                else {
                    out.push(item);
                    continue;
                };
                let kept = keep.has_under(&step);
                if gone.member && !kept {
                    continue;
                }
                if !gone.children.is_empty() {
                    let keep_child = keep.children.get(&step).unwrap_or(&NO_FIELDS);
                    prune(&mut item, gone, keep_child, kind.item(), &keys);
                }
                out.push(item);
            }
            *items = out;
        }
        _ => {}
    }
}

fn is_empty_container(value: &Value) -> bool {
    match value {
        Value::Object(object) => object.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// Removes the nulls an applied configuration set (the members of `owned`):
/// a null asks for the field to be unset, and the applier owns the absence.
fn strip_nulls(value: &mut Value, owned: &FieldSet, kind: Kind<'_>) {
    match value {
        Value::Object(object) if kind.granular_object() => {
            for (step, node) in &owned.children {
                let Some(name) = step.strip_prefix("f:") else {
                    continue;
                };
                match object.get_mut(name) {
                    Some(Value::Null) if node.member => {
                        object.remove(name);
                    }
                    Some(child) if !node.children.is_empty() => strip_nulls(child, node, kind.field(name)),
                    _ => {}
                }
            }
        }
        Value::Array(items) if kind.granular_list() => {
            for item in items {
                if let Ok(step) = item_step(item, kind.list)
                    && let Some(node) = owned.children.get(&step)
                    && !node.children.is_empty()
                {
                    strip_nulls(item, node, kind.item());
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Comparison.

/// The paths that differ between two versions of an object.
#[derive(Debug, Default)]
struct Diff {
    /// Present only in the new version. A created map or list item is a
    /// member too, with all it holds.
    added: FieldSet,
    /// Present in both with different values (leaves only).
    modified: FieldSet,
    /// Present only in the old version.
    removed: FieldSet,
}

impl Diff {
    fn insert_child(&mut self, step: &str, child: Diff) {
        self.added.insert_child(step.to_owned(), child.added);
        self.modified.insert_child(step.to_owned(), child.modified);
        self.removed.insert_child(step.to_owned(), child.removed);
    }
}

/// Compares two (tracked views of) objects. `metadata`, `spec` and `status`
/// are never members themselves: Kubernetes' zero object already has them.
fn changes(old: &Value, new: &Value, kind: Kind<'_>) -> Diff {
    let mut diff = compare(Some(old), Some(new), kind);
    for set in [&mut diff.added, &mut diff.removed] {
        for child in set.children.values_mut() {
            if !child.children.is_empty() {
                child.member = false;
            }
        }
    }
    diff
}

fn compare(old: Option<&Value>, new: Option<&Value>, kind: Kind<'_>) -> Diff {
    let whole = |value: &Value| value_set(value, kind, Mode::Created, &mut Vec::new()).unwrap_or_default();
    match (old, new) {
        (None, None) => Diff::default(),
        (None, Some(new)) => Diff {
            added: whole(new),
            ..Diff::default()
        },
        (Some(old), None) => Diff {
            removed: whole(old),
            ..Diff::default()
        },
        (Some(old), Some(new)) if old == new => Diff::default(),
        (Some(Value::Object(old)), Some(Value::Object(new))) if kind.granular_object() => {
            let mut diff = Diff::default();
            let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
            for name in names {
                let child = compare(old.get(name), new.get(name), kind.field(name));
                diff.insert_child(&format!("f:{name}"), child);
            }
            diff
        }
        (Some(Value::Array(old)), Some(Value::Array(new))) if kind.granular_list() => {
            let index = |items: &'_ [Value]| -> BTreeMap<String, usize> {
                let mut index = BTreeMap::new();
                for (at, item) in items.iter().enumerate() {
                    if let Ok(step) = item_step(item, kind.list) {
                        index.entry(step).or_insert(at);
                    }
                }
                index
            };
            let (old_index, new_index) = (index(old), index(new));
            let steps: BTreeSet<&String> = old_index.keys().chain(new_index.keys()).collect();
            let mut diff = Diff::default();
            for step in steps {
                let before = old_index.get(step).map(|&at| &old[at]);
                let after = new_index.get(step).map(|&at| &new[at]);
                diff.insert_child(step, compare_item(before, after, kind));
            }
            diff
        }
        _ => Diff {
            modified: FieldSet::leaf(),
            ..Diff::default()
        },
    }
}

/// Compares the items with one path element in two versions of a list.
fn compare_item(old: Option<&Value>, new: Option<&Value>, kind: Kind<'_>) -> Diff {
    let item_kind = kind.item();
    let whole = |item: &Value| {
        let mut set = match item {
            Value::Object(fields) if kind.is_list_map() && item_kind.granular_object() => {
                object_set(fields, item_kind, Mode::Created, &mut Vec::new()).unwrap_or_default()
            }
            _ => FieldSet::default(),
        };
        set.member = true;
        set
    };
    match (old, new) {
        (None, None) => Diff::default(),
        (None, Some(new)) => Diff {
            added: whole(new),
            ..Diff::default()
        },
        (Some(old), None) => Diff {
            removed: whole(old),
            ..Diff::default()
        },
        (Some(old), Some(new)) if old == new => Diff::default(),
        (Some(old @ Value::Object(_)), Some(new @ Value::Object(_)))
            if kind.is_list_map() && item_kind.granular_object() =>
        {
            compare(Some(old), Some(new), item_kind)
        }
        _ => Diff {
            modified: FieldSet::leaf(),
            ..Diff::default()
        },
    }
}

// ---------------------------------------------------------------------------
// managedFields entries.

#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    subresource: Option<String>,
    time: Option<String>,
    fields: FieldSet,
}

impl Entry {
    /// Whether two entries belong to the same owner: appliers are one per
    /// manager, updaters one per manager and API version.
    fn same_owner(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    fn from_json(value: &Value) -> Option<Entry> {
        let text = |field: &str| value.get(field).and_then(Value::as_str).map(String::from);
        let operation = match value.get("operation").and_then(Value::as_str)? {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return None,
        };
        if value
            .get("fieldsType")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "FieldsV1")
        {
            return None;
        }
        let fields = match value.get("fieldsV1") {
            Some(fields) => FieldSet::from_json(fields)?,
            None => FieldSet::default(),
        };
        Some(Entry {
            manager: text("manager").unwrap_or_default(),
            operation,
            api_version: text("apiVersion").unwrap_or_default(),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            time: text("time"),
            fields,
        })
    }

    fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), Value::String(self.manager.clone()));
        entry.insert("operation".into(), Value::String(self.operation.as_str().into()));
        entry.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(time) = &self.time {
            entry.insert("time".into(), Value::String(time.clone()));
        }
        entry.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        entry.insert("fieldsV1".into(), self.fields.to_json());
        if let Some(subresource) = &self.subresource {
            entry.insert("subresource".into(), Value::String(subresource.clone()));
        }
        Value::Object(entry)
    }
}

/// The entries of an object's `managedFields`, one per owner. Entries that do
/// not decode are dropped, as Kubernetes resets managed fields it cannot read.
fn decode_entries(object: Option<&Value>) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let stored = object
        .and_then(|object| object.pointer("/metadata/managedFields"))
        .and_then(Value::as_array);
    for entry in stored.into_iter().flatten().filter_map(Entry::from_json) {
        match entries.iter_mut().find(|known| known.same_owner(&entry)) {
            Some(known) => known.fields.union_with(&entry.fields),
            None => entries.push(entry),
        }
    }
    entries
}

/// Writes the non-empty entries to `metadata.managedFields`, in Kubernetes'
/// order (operation, time, manager, API version, subresource), or removes the
/// field when none is left.
fn write_entries(object: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|entry| !entry.fields.is_empty());
    entries.sort_by(|a, b| {
        (a.operation, &a.time, &a.manager, &a.api_version, &a.subresource).cmp(&(
            b.operation,
            &b.time,
            &b.manager,
            &b.api_version,
            &b.subresource,
        ))
    });
    let Value::Object(fields) = object else {
        return;
    };
    if entries.is_empty() {
        if let Some(Value::Object(metadata)) = fields.get_mut("metadata") {
            metadata.remove("managedFields");
        }
        return;
    }
    let metadata = fields.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    if let Value::Object(metadata) = metadata {
        metadata.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::to_json).collect()),
        );
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::patch::schema::tests::root_type;

    const T1: &str = "2025-01-01T00:00:00Z";
    const T2: &str = "2025-01-02T00:00:00Z";

    fn deployment() -> Option<&'static TypeInfo> {
        root_type("apps", "Deployment")
    }

    fn deploy(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec})
    }

    /// A pod template with the given containers.
    fn template(containers: Value) -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}})
    }

    fn request<'a>(manager: &'a str, applied: &'a Value, force: bool, now: &'a str) -> ApplyRequest<'a> {
        ApplyRequest {
            manager,
            force,
            applied,
            now,
            scope: Scope::Main,
        }
    }

    /// One write in a case.
    enum Write {
        /// A manager applies a configuration.
        Apply(&'static str, Value),
        /// The same, forced.
        Force(&'static str, Value),
        /// A manager replaces the object by one with `pointer` set to `value`.
        Update(&'static str, &'static str, Value),
    }

    /// Runs writes in order from no object, one second apart; checks the
    /// object (without `managedFields`) and each entry as (manager,
    /// operation, fieldsV1), in the stored order.
    struct Case {
        name: &'static str,
        root: Option<&'static TypeInfo>,
        writes: Vec<Write>,
        object: Value,
        entries: Vec<(&'static str, &'static str, Value)>,
    }

    fn run_writes(root: Option<&TypeInfo>, writes: &[Write]) -> Result<Option<Value>> {
        let mut object: Option<Value> = None;
        for (step, write) in writes.iter().enumerate() {
            let now = format!("2025-01-01T00:00:{step:02}Z");
            let now = now.as_str();
            object = Some(match write {
                Write::Apply(manager, config) => apply(object.as_ref(), &request(manager, config, false, now), root)?,
                Write::Force(manager, config) => apply(object.as_ref(), &request(manager, config, true, now), root)?,
                Write::Update(manager, pointer, value) => {
                    let old = object.clone().unwrap_or_else(|| json!({}));
                    let mut new = old.clone();
                    *new.pointer_mut(pointer).unwrap() = value.clone();
                    record_update(Some(&old), &mut new, manager, now, Scope::Main, root);
                    new
                }
            });
        }
        Ok(object)
    }

    fn entries_of(object: &Value) -> Vec<(String, String, Value)> {
        object
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|entry| {
                (
                    entry["manager"].as_str().unwrap().to_owned(),
                    entry["operation"].as_str().unwrap().to_owned(),
                    entry["fieldsV1"].clone(),
                )
            })
            .collect()
    }

    fn run(cases: Vec<Case>) {
        for case in cases {
            let got = run_writes(case.root, &case.writes)
                .unwrap_or_else(|e| panic!("{}: {}", case.name, e.message()))
                .unwrap();
            let entries = entries_of(&got);
            assert_eq!(
                without_managed_fields(&got),
                case.object,
                "{}: object\n{}",
                case.name,
                serde_json::to_string_pretty(&got).unwrap()
            );
            let want: Vec<(String, String, Value)> = case
                .entries
                .into_iter()
                .map(|(m, o, f)| (m.to_owned(), o.to_owned(), f))
                .collect();
            assert_eq!(
                entries,
                want,
                "{}: entries\n{}",
                case.name,
                serde_json::to_string_pretty(&got["metadata"]["managedFields"]).unwrap()
            );
        }
    }

    #[test]
    fn ownership() {
        let web = || json!([{"name": "app", "image": "nginx", "ports": [{"containerPort": 80}]}]);
        run(vec![
            Case {
                name: "first apply creates the object and the applier's entry",
                root: deployment(),
                writes: vec![Write::Apply(
                    "kubectl",
                    deploy(
                        json!({"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template(web())}),
                    ),
                )],
                object: deploy(
                    json!({"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template(web())}),
                ),
                entries: vec![(
                    "kubectl",
                    "Apply",
                    json!({"f:spec": {
                        "f:replicas": {},
                        "f:selector": {},
                        "f:template": {
                            "f:metadata": {"f:labels": {"f:app": {}}},
                            "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                                ".": {},
                                "f:image": {},
                                "f:name": {},
                                "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                    ".": {},
                                    "f:containerPort": {},
                                }},
                            }}},
                        },
                    }}),
                )],
            },
            Case {
                name: "a field left out of the configuration leaves the object",
                root: deployment(),
                writes: vec![
                    Write::Apply("a", deploy(json!({"replicas": 2, "minReadySeconds": 5}))),
                    Write::Apply("a", deploy(json!({"minReadySeconds": 5}))),
                ],
                object: deploy(json!({"minReadySeconds": 5})),
                entries: vec![("a", "Apply", json!({"f:spec": {"f:minReadySeconds": {}}}))],
            },
            Case {
                name: "a field another applier shares stays",
                root: deployment(),
                writes: vec![
                    Write::Apply("a", deploy(json!({"replicas": 2, "minReadySeconds": 5}))),
                    Write::Apply("b", deploy(json!({"replicas": 2}))),
                    Write::Apply("a", deploy(json!({"minReadySeconds": 5}))),
                ],
                object: deploy(json!({"replicas": 2, "minReadySeconds": 5})),
                // The object did not change at a's second apply: its time stays.
                entries: vec![
                    ("a", "Apply", json!({"f:spec": {"f:minReadySeconds": {}}})),
                    ("b", "Apply", json!({"f:spec": {"f:replicas": {}}})),
                ],
            },
            Case {
                name: "list-map items merge by key and are owned one by one",
                root: deployment(),
                writes: vec![
                    Write::Apply(
                        "a",
                        deploy(json!({"template": template(json!([{"name": "app", "image": "v1"}]))})),
                    ),
                    Write::Apply(
                        "b",
                        deploy(json!({"template": {"spec": {"containers": [{"name": "proxy", "image": "envoy"}]}}})),
                    ),
                    Write::Apply(
                        "a",
                        deploy(json!({"template": template(json!([{"name": "app", "image": "v2"}]))})),
                    ),
                ],
                object: deploy(json!({"template": template(json!([
                    {"name": "app", "image": "v2"},
                    {"name": "proxy", "image": "envoy"},
                ]))})),
                entries: vec![
                    (
                        "b",
                        "Apply",
                        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                            "k:{\"name\":\"proxy\"}": {".": {}, "f:image": {}, "f:name": {}},
                        }}}}}),
                    ),
                    (
                        "a",
                        "Apply",
                        json!({"f:spec": {"f:template": {
                            "f:metadata": {"f:labels": {"f:app": {}}},
                            "f:spec": {"f:containers": {
                                "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}},
                            }},
                        }}}),
                    ),
                ],
            },
            Case {
                name: "a list item left out goes, others' items stay",
                root: deployment(),
                writes: vec![
                    Write::Apply(
                        "a",
                        deploy(json!({"template": {"spec": {"containers": [{"name": "app"}, {"name": "job"}]}}})),
                    ),
                    Write::Apply(
                        "b",
                        deploy(json!({"template": {"spec": {"containers": [{"name": "proxy"}]}}})),
                    ),
                    Write::Apply(
                        "a",
                        deploy(json!({"template": {"spec": {"containers": [{"name": "app"}]}}})),
                    ),
                ],
                object: deploy(json!({"template": {"spec": {"containers": [{"name": "app"}, {"name": "proxy"}]}}})),
                entries: vec![
                    (
                        "b",
                        "Apply",
                        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                            "k:{\"name\":\"proxy\"}": {".": {}, "f:name": {}},
                        }}}}}),
                    ),
                    (
                        "a",
                        "Apply",
                        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                            "k:{\"name\":\"app\"}": {".": {}, "f:name": {}},
                        }}}}}),
                    ),
                ],
            },
            Case {
                name: "set items are owned by value and merge as a union",
                root: deployment(),
                writes: vec![
                    Write::Apply(
                        "a",
                        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "finalizers": ["x"]}}),
                    ),
                    Write::Apply(
                        "b",
                        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "finalizers": ["y"]}}),
                    ),
                ],
                object: json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "finalizers": ["x", "y"]}}),
                entries: vec![
                    ("a", "Apply", json!({"f:metadata": {"f:finalizers": {"v:\"x\"": {}}}})),
                    ("b", "Apply", json!({"f:metadata": {"f:finalizers": {"v:\"y\"": {}}}})),
                ],
            },
            Case {
                name: "an atomic selector is replaced, not merged",
                root: deployment(),
                writes: vec![
                    Write::Apply(
                        "a",
                        deploy(json!({"selector": {"matchLabels": {"app": "web", "tier": "fe"}}})),
                    ),
                    Write::Apply("a", deploy(json!({"selector": {"matchLabels": {"app": "web"}}}))),
                ],
                object: deploy(json!({"selector": {"matchLabels": {"app": "web"}}})),
                entries: vec![("a", "Apply", json!({"f:spec": {"f:selector": {}}}))],
            },
            Case {
                name: "labels merge key by key",
                root: deployment(),
                writes: vec![
                    Write::Apply(
                        "a",
                        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"a": "1"}}}),
                    ),
                    Write::Apply(
                        "b",
                        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"b": "2"}}}),
                    ),
                    Write::Apply(
                        "a",
                        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
                    ),
                ],
                object: json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"b": "2"}}}),
                entries: vec![("b", "Apply", json!({"f:metadata": {"f:labels": {"f:b": {}}}}))],
            },
            Case {
                name: "custom kinds: lists are atomic and forcing takes them",
                root: None,
                writes: vec![
                    Write::Apply(
                        "a",
                        json!({"apiVersion": "x.io/v1", "kind": "W", "metadata": {"name": "w"}, "spec": {"items": [1, 2], "n": 1}}),
                    ),
                    Write::Force(
                        "b",
                        json!({"apiVersion": "x.io/v1", "kind": "W", "metadata": {"name": "w"}, "spec": {"items": [3]}}),
                    ),
                ],
                object: json!({"apiVersion": "x.io/v1", "kind": "W", "metadata": {"name": "w"}, "spec": {"items": [3], "n": 1}}),
                entries: vec![
                    ("a", "Apply", json!({"f:spec": {"f:n": {}}})),
                    ("b", "Apply", json!({"f:spec": {"f:items": {}}})),
                ],
            },
            Case {
                name: "a null unsets the field and the applier owns it",
                root: deployment(),
                writes: vec![
                    Write::Apply("a", deploy(json!({"replicas": 2, "paused": true}))),
                    Write::Apply("a", deploy(json!({"replicas": null, "paused": true}))),
                ],
                object: deploy(json!({"paused": true})),
                entries: vec![("a", "Apply", json!({"f:spec": {"f:paused": {}, "f:replicas": {}}}))],
            },
            Case {
                name: "status is not applied through the main resource",
                root: deployment(),
                writes: vec![Write::Apply(
                    "a",
                    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1}, "status": {"replicas": 9}}),
                )],
                object: deploy(json!({"replicas": 1})),
                entries: vec![("a", "Apply", json!({"f:spec": {"f:replicas": {}}}))],
            },
            Case {
                name: "an update takes the fields it changes",
                root: deployment(),
                writes: vec![
                    Write::Apply("a", deploy(json!({"replicas": 2, "paused": false}))),
                    Write::Update("kubectl", "/spec/replicas", json!(5)),
                ],
                object: deploy(json!({"replicas": 5, "paused": false})),
                entries: vec![
                    ("a", "Apply", json!({"f:spec": {"f:paused": {}}})),
                    ("kubectl", "Update", json!({"f:spec": {"f:replicas": {}}})),
                ],
            },
            Case {
                name: "an update that changes nothing records nothing",
                root: deployment(),
                writes: vec![
                    Write::Apply("a", deploy(json!({"replicas": 2}))),
                    Write::Update("kubectl", "/spec/replicas", json!(2)),
                ],
                object: deploy(json!({"replicas": 2})),
                entries: vec![("a", "Apply", json!({"f:spec": {"f:replicas": {}}}))],
            },
        ]);
    }

    #[test]
    fn conflicts() {
        let scaled = || {
            let mut object = deploy(json!({"replicas": 5, "minReadySeconds": 1}));
            object["metadata"]["managedFields"] = json!([
                {"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1", "time": T1,
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:minReadySeconds": {}}}},
            ]);
            object
        };
        let untracked = || deploy(json!({"replicas": 5}));
        let containers = || {
            let mut object = deploy(json!({"template": template(json!([{"name": "app", "image": "v1"}]))}));
            object["metadata"]["managedFields"] = json!([
                {"manager": "ci", "operation": "Apply", "apiVersion": "apps/v1", "time": T1,
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                     "k:{\"name\":\"app\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}}},
            ]);
            object
        };
        let cases: Vec<(&str, Value, Value, &str)> = vec![
            (
                "an updater's field",
                scaled(),
                deploy(json!({"replicas": 3})),
                "Apply failed with 1 conflict: conflict with \"kubectl\" using apps/v1: .spec.replicas",
            ),
            (
                "two fields of one updater",
                scaled(),
                deploy(json!({"replicas": 3, "minReadySeconds": 2})),
                "Apply failed with 2 conflicts: conflicts with \"kubectl\" using apps/v1:\n- .spec.minReadySeconds\n- .spec.replicas",
            ),
            (
                "an object from before field tracking",
                untracked(),
                deploy(json!({"replicas": 3})),
                "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas",
            ),
            (
                "an applier's field in a list item",
                containers(),
                deploy(json!({"template": {"spec": {"containers": [{"name": "app", "image": "v2"}]}}})),
                "Apply failed with 1 conflict: conflict with \"ci\": .spec.template.spec.containers[name=\"app\"].image",
            ),
        ];
        for (name, current, config, message) in cases {
            let error = apply(Some(&current), &request("kubectl", &config, false, T2), deployment()).unwrap_err();
            assert_eq!(error.message(), message, "{name}");
            assert_eq!(error.status_code(), 409, "{name}");
            let ApplyError::Conflicts(conflicts) = error else {
                unreachable!()
            };

            // Forced, the applier's values win and the fields leave their owners.
            let forced = apply(Some(&current), &request("kubectl", &config, true, T2), deployment())
                .unwrap_or_else(|e| panic!("{name}: {}", e.message()));
            assert_eq!(forced["spec"]["replicas"], config["spec"]["replicas"], "{name}");
            let entries = entries_of(&forced);
            for conflict in &conflicts {
                let owned = entries
                    .iter()
                    .filter(|(m, o, _)| *m == conflict.manager && o == conflict.operation.as_str())
                    .flat_map(|(_, _, fields)| FieldSet::from_json(fields).unwrap().paths())
                    .any(|path| render_path(&path) == conflict.field);
                assert!(!owned, "{name}: {} kept {}", conflict.manager, conflict.field);
            }
        }
    }

    #[test]
    fn same_value_is_shared_without_conflict() {
        let mut current = deploy(json!({"replicas": 5}));
        current["metadata"]["managedFields"] = json!([
            {"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1", "time": T1,
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
        ]);
        let config = deploy(json!({"replicas": 5}));
        let got = apply(Some(&current), &request("ci", &config, false, T2), deployment()).unwrap();
        let entries = entries_of(&got);
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert!(
            entries
                .iter()
                .all(|(_, _, f)| *f == json!({"f:spec": {"f:replicas": {}}}))
        );
    }

    #[test]
    fn forcing_moves_ownership() {
        let mut current = deploy(json!({"replicas": 5, "paused": false}));
        current["metadata"]["managedFields"] = json!([
            {"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1", "time": T1,
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:paused": {}}}},
        ]);
        let config = deploy(json!({"replicas": 3}));
        let got = apply(Some(&current), &request("ci", &config, true, T2), deployment()).unwrap();
        assert_eq!(got["spec"], json!({"replicas": 3, "paused": false}));
        assert_eq!(
            got["metadata"]["managedFields"],
            json!([
                {"manager": "ci", "operation": "Apply", "apiVersion": "apps/v1", "time": T2,
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                {"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1", "time": T1,
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:paused": {}}}},
            ])
        );
    }

    #[test]
    fn reapplying_is_a_no_op() {
        let config = deploy(json!({
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(json!([{"name": "app", "image": "nginx", "ports": [{"containerPort": 80}]}])),
        }));
        let first = apply(None, &request("kubectl", &config, false, T1), deployment()).unwrap();
        // What the server adds (defaults, status) is nobody's and stays.
        let mut stored = first.clone();
        stored["spec"]["strategy"] = json!({"type": "RollingUpdate"});
        stored["status"] = json!({"replicas": 2});
        let second = apply(Some(&stored), &request("kubectl", &config, false, T2), deployment()).unwrap();
        assert_eq!(second, stored);
    }

    #[test]
    fn update_entries() {
        // A create records every field, with `.` on the maps it made.
        let mut created = deploy(json!({"replicas": 1, "template": {"metadata": {"labels": {"app": "web"}}}}));
        record_update(None, &mut created, "kubectl-create", T1, Scope::Main, deployment());
        assert_eq!(
            created["metadata"]["managedFields"],
            json!([{"manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1", "time": T1,
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {
                "f:replicas": {},
                "f:template": {".": {}, "f:metadata": {".": {}, "f:labels": {".": {}, "f:app": {}}}},
            }}}])
        );
        // Removing a field takes it from its owner; the remover gets nothing.
        let mut removed = created.clone();
        removed["spec"].as_object_mut().unwrap().remove("replicas");
        record_update(Some(&created), &mut removed, "edit", T2, Scope::Main, deployment());
        assert_eq!(
            entries_of(&removed),
            vec![(
                "kubectl-create".to_owned(),
                "Update".to_owned(),
                json!({"f:spec": {"f:template": {".": {}, "f:metadata": {".": {}, "f:labels": {".": {}, "f:app": {}}}}}})
            )]
        );
        // A status write is owned with its subresource.
        let mut status = created.clone();
        status["status"] = json!({"replicas": 1});
        record_update(
            Some(&created),
            &mut status,
            "controller",
            T2,
            Scope::Status,
            deployment(),
        );
        let entry = status["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == "controller")
            .unwrap();
        assert_eq!(entry["subresource"], "status");
        assert_eq!(entry["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
        // Managed fields sent as `[]` reset the records.
        let mut reset = created.clone();
        reset["metadata"]["managedFields"] = json!([]);
        record_update(Some(&created), &mut reset, "x", T2, Scope::Main, deployment());
        assert!(reset["metadata"].get("managedFields").is_none(), "{reset}");
    }

    #[test]
    fn bad_input() {
        let service = root_type("", "Service");
        let cases: Vec<(&str, Value, Option<&'static TypeInfo>, u16, &str)> = vec![
            (
                "not an object",
                json!([1]),
                deployment(),
                400,
                "an applied configuration must be an object, not a list",
            ),
            (
                "no kind",
                json!({"apiVersion": "apps/v1"}),
                deployment(),
                400,
                "kind must be set in an applied configuration",
            ),
            (
                "managed fields",
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"managedFields": []}}),
                deployment(),
                400,
                "metadata.managedFields must be nil in an applied configuration",
            ),
            (
                "an item without its key",
                deploy(json!({"template": {"spec": {"containers": [{"name": "a"}, {"image": "x"}]}}})),
                deployment(),
                422,
                ".spec.template.spec.containers: element 1: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)",
            ),
            (
                "a key given twice",
                json!({"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"port": 80}, {"port": 80, "protocol": "TCP"}]}}),
                service,
                422,
                ".spec.ports: duplicate entries for key [port=80,protocol=\"TCP\"]",
            ),
            (
                "a scalar in a list map",
                deploy(json!({"template": {"spec": {"containers": ["a"]}}})),
                deployment(),
                422,
                ".spec.template.spec.containers: element 0: expected an object in a list with keys",
            ),
        ];
        for (name, config, root, status, message) in cases {
            let error = apply(None, &request("m", &config, false, T1), root).unwrap_err();
            assert_eq!(
                (error.status_code(), error.message().as_str()),
                (status, message),
                "{name}"
            );
        }
    }

    #[test]
    fn fields_v1_encoding() {
        let service = root_type("", "Service");
        let config = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "finalizers": ["a/b"]},
            "spec": {"ports": [{"port": 443, "protocol": "UDP"}, {"port": 80, "name": "http"}]}});
        let got = apply(None, &request("m", &config, false, T1), service).unwrap();
        let fields = got["metadata"]["managedFields"][0]["fieldsV1"].clone();
        assert_eq!(
            fields,
            json!({
                "f:metadata": {"f:finalizers": {"v:\"a/b\"": {}}},
                "f:spec": {"f:ports": {
                    "k:{\"port\":443,\"protocol\":\"UDP\"}": {".": {}, "f:port": {}, "f:protocol": {}},
                    "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}, "f:port": {}},
                }},
            })
        );
        let set = FieldSet::from_json(&fields).unwrap();
        assert_eq!(set.to_json(), fields);
        let rendered: Vec<String> = set.paths().iter().map(|p| render_path(p)).collect();
        assert_eq!(
            rendered,
            [
                ".metadata.finalizers[=\"a/b\"]",
                ".spec.ports[port=443,protocol=\"UDP\"]",
                ".spec.ports[port=443,protocol=\"UDP\"].port",
                ".spec.ports[port=443,protocol=\"UDP\"].protocol",
                ".spec.ports[port=80,protocol=\"TCP\"]",
                ".spec.ports[port=80,protocol=\"TCP\"].name",
                ".spec.ports[port=80,protocol=\"TCP\"].port",
            ]
        );
        // Entries that do not decode are dropped.
        assert!(FieldSet::from_json(&json!({"f:a": 1})).is_none());
    }

    #[test]
    fn list_order() {
        let kind = Kind {
            list: root_type("", "Pod")
                .and_then(|pod| pod.field("spec"))
                .and_then(FieldInfo::child)
                .and_then(|spec| spec.field("containers"))
                .map(FieldInfo::list_type)
                .unwrap(),
            ty: None,
            atomic: false,
        };
        let names = |names: &[&str]| -> Vec<Value> { names.iter().map(|n| json!({"name": n})).collect() };
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&["a", "b"], &["a", "b"], &["a", "b"]),
            (&["a", "x", "b"], &["b", "a"], &["x", "b", "a"]),
            (&["x", "a"], &["n", "a"], &["x", "n", "a"]),
            (&["a", "x"], &["a", "n"], &["a", "x", "n"]),
            (&[], &["a"], &["a"]),
            (&["a", "a", "b"], &["a"], &["a", "b"]),
        ];
        for &(live, config, want) in cases {
            assert_eq!(
                merge_list(names(live), &names(config), kind),
                names(want),
                "{live:?} + {config:?}"
            );
        }
    }
}
