//! Strategic merge patch (`application/strategic-merge-patch+json`), the
//! patch format `kubectl apply`, `kubectl edit` and `kubectl patch` send for
//! built-in kinds.
//!
//! [`apply`] is pure: it takes the stored object and the patch as JSON values
//! and the kind's metadata from [`super::schema`], and returns the patched
//! object or a [`PatchError`]. Decoding, validation, admission and storage are
//! the caller's.
//!
//! # Semantics
//!
//! * Objects merge recursively; a `null` value removes the field. Nulls and
//!   directives never reach the result, even inside newly added values.
//! * A list is replaced, unless its field's [`ListStrategy`] says it merges:
//!   lists of objects merge by their merge key (a patch item matching a stored
//!   item is merged into it, other patch items are added), lists of primitives
//!   merge as a union.
//! * Directives:
//!   - `"$patch": "replace"` in an object replaces the stored object with the
//!     rest of the patch object; as an item of a merged list, it replaces the
//!     stored list with the other patch items.
//!   - `"$patch": "delete"` in an object empties it; as an item of a list
//!     merged by key, it removes the stored items with its merge key.
//!   - `"$patch": "merge"` asks for the default and is accepted anywhere a
//!     merge can happen (Kubernetes rejects it; accepting it costs nothing).
//!   - `"$retainKeys": [..]` drops the stored fields of its object that are not
//!     listed; the patch may only set listed fields.
//!   - `"$deleteFromPrimitiveList/<field>": [..]` removes values from a merged
//!     list of primitives.
//!   - `"$setElementOrder/<field>": [..]` gives the order of a merged list,
//!     as merge keys (`[{"name": "a"}, ..]`) or as values for primitives.
//! * Order of a merged list, as in Kubernetes: items named by the patch (by
//!   `$setElementOrder` if present, by the patch list otherwise) appear in the
//!   patch's order; the other stored items keep their relative order and are
//!   interleaved by their stored position, so an item the server added before
//!   the user's items stays before them. A newly added item has no stored
//!   position to compare, so it goes before the stored-only items still
//!   waiting: without `$setElementOrder`, added items come first.
//!
//! Where Kubernetes keeps malformed input verbatim (directives in a replaced
//! list, nulls in added list items), this engine either cleans it or rejects
//! it, so that directives cannot leak into stored objects. In particular, list
//! directives on a list the schema says is replaced are refused: the client
//! believes the list merges, and replacing it with a partial list would lose
//! items.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::schema::{FieldInfo, ListStrategy, TypeInfo};

/// The key of the `$patch` directive.
const PATCH: &str = "$patch";
/// The key of the `$retainKeys` directive.
const RETAIN_KEYS: &str = "$retainKeys";
/// The key prefix of `$setElementOrder/<field>`.
const SET_ORDER: &str = "$setElementOrder/";
/// The key prefix of `$deleteFromPrimitiveList/<field>`.
const DELETE_PRIMITIVES: &str = "$deleteFromPrimitiveList/";

/// Why a strategic merge patch could not be applied.
///
/// Every variant describes the patch, not the server: retrying the same patch
/// against the same object fails the same way, so none is retryable.
/// [`PatchError::status_code`] gives the HTTP status to answer with.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The patch document is not a JSON object. Rendered as 400.
    #[error("a strategic merge patch must be a JSON object, not {found}")]
    NotAnObject {
        /// What the patch was instead, such as "a list".
        found: &'static str,
    },
    /// A directive has a value of the wrong shape, an unknown `$patch` value,
    /// or appears where it cannot apply. Rendered as 400.
    #[error("invalid {directive} directive at {path}: {reason}")]
    InvalidDirective {
        /// Where the directive is, as a field path such as `.spec.containers`.
        path: String,
        /// The directive, such as `$patch` or `$setElementOrder`.
        directive: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value in the patch has a JSON type its field cannot hold where a merge
    /// needs a particular type, such as a string among the items of a list
    /// merged by key. Rendered as 422.
    #[error("wrong type at {path}: expected {expected}, found {found}")]
    WrongType {
        /// Where the value is.
        path: String,
        /// The JSON type the field needs.
        expected: &'static str,
        /// The JSON type the patch has.
        found: &'static str,
    },
    /// An item of a list merged by key (or of its `$setElementOrder` list)
    /// lacks the merge key. Rendered as 422.
    #[error("list item at {path} has no merge key {key:?}")]
    MissingMergeKey {
        /// Where the item is.
        path: String,
        /// The merge key it lacks.
        key: &'static str,
    },
    /// The patch sets a field that its object's `$retainKeys` leaves out.
    /// Rendered as 422.
    #[error("{path} sets field {field:?}, which its $retainKeys does not list")]
    NotRetained {
        /// The object carrying `$retainKeys`.
        path: String,
        /// The field the patch sets.
        field: String,
    },
}

impl PatchError {
    /// The HTTP status a Kubernetes-style API answers with: 400 for a patch
    /// that is malformed as a document, 422 for one whose content does not fit
    /// the object.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::NotAnObject { .. } | PatchError::InvalidDirective { .. } => 400,
            PatchError::WrongType { .. } | PatchError::MissingMergeKey { .. } | PatchError::NotRetained { .. } => 422,
        }
    }
}

/// The result type of this module.
pub type Result<T, E = PatchError> = std::result::Result<T, E>;

/// Applies the strategic merge patch `patch` to `original`, an object of the
/// type `root` describes (a kind's [`KindOps::patch`](crate::kinds::KindOps::patch)), and returns the
/// patched object. `original` is not modified. A non-object `original` is
/// treated as absent.
pub fn apply(original: &Value, patch: &Value, root: &TypeInfo) -> Result<Value> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::NotAnObject {
            found: json_type(patch),
        });
    };
    let original = original.as_object().cloned();
    merge_object(original, patch, root, &Path::root()).map(Value::Object)
}

/// Merges a patch object into an (owned) stored object, honouring `$patch`.
fn merge_object(
    original: Option<Map<String, Value>>,
    patch: &Map<String, Value>,
    ty: &TypeInfo,
    path: &Path<'_>,
) -> Result<Map<String, Value>> {
    match patch.get(PATCH) {
        None => merge_fields(original, patch, ty, path),
        Some(Value::String(directive)) => match directive.as_str() {
            "merge" => merge_fields(original, patch, ty, path),
            "replace" => merge_fields(None, patch, ty, path),
            "delete" => Ok(Map::new()),
            _ => Err(invalid(path, PATCH, "must be \"replace\", \"merge\" or \"delete\"")),
        },
        Some(_) => Err(invalid(path, PATCH, "must be a string")),
    }
}

/// Merges the fields of a patch object (its `$patch` already handled).
fn merge_fields(
    original: Option<Map<String, Value>>,
    patch: &Map<String, Value>,
    ty: &TypeInfo,
    path: &Path<'_>,
) -> Result<Map<String, Value>> {
    let mut out = original.unwrap_or_default();

    // First pass: sort the patch's keys into directives and fields.
    let mut retain: Option<Vec<&str>> = None;
    let mut orders: Vec<(&str, &[Value])> = Vec::new();
    let mut deletions: Vec<(&str, &[Value])> = Vec::new();
    let mut fields: BTreeSet<&str> = BTreeSet::new();
    for (key, value) in patch {
        if key == PATCH {
            continue;
        } else if key == RETAIN_KEYS {
            retain = Some(retain_list(value, path)?);
        } else if let Some(field) = key.strip_prefix(SET_ORDER) {
            orders.push((field, directive_list(field, value, path, "$setElementOrder")?));
            fields.insert(field);
        } else if let Some(field) = key.strip_prefix(DELETE_PRIMITIVES) {
            deletions.push((field, directive_list(field, value, path, "$deleteFromPrimitiveList")?));
            fields.insert(field);
        } else {
            fields.insert(key);
        }
    }

    if let Some(retain) = &retain {
        for (key, value) in patch {
            if !value.is_null() && !is_directive(key) && !retain.contains(&key.as_str()) {
                return Err(PatchError::NotRetained {
                    path: path.render(),
                    field: key.clone(),
                });
            }
        }
        out.retain(|key, _| retain.contains(&key.as_str()));
    }

    // Second pass: each field once, with whatever directives name it.
    for field in fields {
        let info = ty.field(field);
        let at = path.join(Step::Field(field));
        let order = orders.iter().find(|(name, _)| *name == field).map(|(_, list)| *list);
        let delete = deletions.iter().find(|(name, _)| *name == field).map(|(_, list)| *list);
        let has_list_directive = order.is_some() || delete.is_some();
        match patch.get(field) {
            Some(Value::Null) => out.retain(|key, _| key != field),
            Some(Value::Array(items)) => {
                let stored = match out.get_mut(field) {
                    Some(Value::Array(stored)) => Some(std::mem::take(stored)),
                    _ => None,
                };
                let merged = merge_list(stored, Some(items), info, order, delete, &at)?;
                out.insert(field.to_owned(), Value::Array(merged));
            }
            Some(value) if has_list_directive => {
                return Err(PatchError::WrongType {
                    path: at.render(),
                    expected: "a list",
                    found: json_type(value),
                });
            }
            Some(Value::Object(object)) => {
                let stored = match out.get_mut(field) {
                    Some(Value::Object(stored)) => Some(std::mem::take(stored)),
                    _ => None,
                };
                let child = info.and_then(FieldInfo::child).unwrap_or(&TypeInfo::UNTYPED);
                let merged = merge_object(stored, object, child, &at)?;
                out.insert(field.to_owned(), Value::Object(merged));
            }
            Some(scalar) => {
                out.insert(field.to_owned(), scalar.clone());
            }
            // Only directives name the field: reorder or prune the stored list.
            // The directives are checked even when there is no list to act on.
            None => {
                let stored = match out.get_mut(field) {
                    Some(Value::Array(stored)) => Some(std::mem::take(stored)),
                    _ => None,
                };
                let had_list = stored.is_some();
                let merged = merge_list(stored, None, info, order, delete, &at)?;
                if had_list {
                    out.insert(field.to_owned(), Value::Array(merged));
                }
            }
        }
    }
    Ok(out)
}

/// Whether a patch key is a directive rather than a field.
fn is_directive(key: &str) -> bool {
    key == PATCH || key == RETAIN_KEYS || key.starts_with(SET_ORDER) || key.starts_with(DELETE_PRIMITIVES)
}

/// The field names of a `$retainKeys` directive.
fn retain_list<'a>(value: &'a Value, path: &Path<'_>) -> Result<Vec<&'a str>> {
    let Value::Array(items) = value else {
        return Err(invalid(path, RETAIN_KEYS, "must be a list of field names"));
    };
    items
        .iter()
        .map(|item| {
            item.as_str()
                .ok_or_else(|| invalid(path, RETAIN_KEYS, "must be a list of field names"))
        })
        .collect()
}

/// The list of a `$setElementOrder/` or `$deleteFromPrimitiveList/` directive.
fn directive_list<'a>(field: &str, value: &'a Value, path: &Path<'_>, directive: &'static str) -> Result<&'a [Value]> {
    if field.is_empty() {
        return Err(invalid(path, directive, "must name a field after the slash"));
    }
    match value {
        Value::Array(items) => Ok(items),
        _ => Err(invalid(&path.join(Step::Field(field)), directive, "must be a list")),
    }
}

/// Merges a list field: `original` is the stored list (if the field holds
/// one), `patch` the patch's list (if it has one), `order` and `delete` the
/// lists of `$setElementOrder/` and `$deleteFromPrimitiveList/` for the field.
fn merge_list(
    original: Option<Vec<Value>>,
    patch: Option<&[Value]>,
    info: Option<&FieldInfo>,
    order: Option<&[Value]>,
    delete: Option<&[Value]>,
    path: &Path<'_>,
) -> Result<Vec<Value>> {
    let child = info.and_then(FieldInfo::child).unwrap_or(&TypeInfo::UNTYPED);
    match info.map_or(ListStrategy::Replace, FieldInfo::strategy) {
        ListStrategy::Replace => replace_list(original, patch, child, order, delete, path),
        ListStrategy::MergePrimitives => merge_primitives(original, patch, order, delete, path),
        ListStrategy::MergeByKey(key) => merge_by_key(original, patch, key, child, order, delete, path),
    }
}

/// A `$patch` directive found as an item of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListDirective {
    Replace,
    Merge,
    Delete,
}

/// The `$patch` directive of a list item, if it has one.
fn list_directive(item: &Map<String, Value>, path: &Path<'_>) -> Result<Option<ListDirective>> {
    match item.get(PATCH) {
        None => Ok(None),
        Some(Value::String(directive)) => match directive.as_str() {
            "replace" => Ok(Some(ListDirective::Replace)),
            "merge" => Ok(Some(ListDirective::Merge)),
            "delete" => Ok(Some(ListDirective::Delete)),
            _ => Err(invalid(path, PATCH, "must be \"replace\", \"merge\" or \"delete\"")),
        },
        Some(_) => Err(invalid(path, PATCH, "must be a string")),
    }
}

/// A list without a merge strategy: the patch's list, cleaned, replaces the
/// stored one. List directives here mean the client believes the list merges,
/// and obeying them as a replacement would lose data, so they are refused.
fn replace_list(
    original: Option<Vec<Value>>,
    patch: Option<&[Value]>,
    child: &TypeInfo,
    order: Option<&[Value]>,
    delete: Option<&[Value]>,
    path: &Path<'_>,
) -> Result<Vec<Value>> {
    const NOT_MERGED: &str = "this list is replaced as a whole, not merged";
    if order.is_some() {
        return Err(invalid(path, "$setElementOrder", NOT_MERGED));
    }
    if delete.is_some() {
        return Err(invalid(path, "$deleteFromPrimitiveList", NOT_MERGED));
    }
    let Some(patch) = patch else {
        return Ok(original.unwrap_or_default());
    };
    let mut out = Vec::with_capacity(patch.len());
    for (index, item) in patch.iter().enumerate() {
        let at = path.join(Step::Index(index));
        match item {
            Value::Object(fields) => match list_directive(fields, &at)? {
                Some(ListDirective::Replace) => {}
                Some(_) => return Err(invalid(&at, PATCH, NOT_MERGED)),
                None => out.push(Value::Object(merge_object(None, fields, child, &at)?)),
            },
            other => out.push(other.clone()),
        }
    }
    Ok(out)
}

/// An item of a merged list on its way to the result, with its position in
/// the stored list if it came from there.
#[derive(Debug)]
struct Entry {
    value: Value,
    stored_at: Option<usize>,
}

/// A list of primitives merged as a union.
fn merge_primitives(
    original: Option<Vec<Value>>,
    patch: Option<&[Value]>,
    order: Option<&[Value]>,
    delete: Option<&[Value]>,
    path: &Path<'_>,
) -> Result<Vec<Value>> {
    let mut replace = false;
    let mut added: Vec<&Value> = Vec::new();
    for (index, item) in patch.unwrap_or_default().iter().enumerate() {
        let at = path.join(Step::Index(index));
        match item {
            Value::Object(fields) => match list_directive(fields, &at)? {
                Some(ListDirective::Replace) => replace = true,
                Some(ListDirective::Merge) => {}
                Some(ListDirective::Delete) => {
                    return Err(invalid(&at, PATCH, "remove primitives with $deleteFromPrimitiveList"));
                }
                None => return Err(wrong_type(&at, "a primitive value", item)),
            },
            Value::Array(_) | Value::Null => return Err(wrong_type(&at, "a primitive value", item)),
            primitive => added.push(primitive),
        }
    }

    let mut entries: Vec<Entry> = Vec::new();
    if !replace {
        for (stored_at, value) in original.unwrap_or_default().into_iter().enumerate() {
            if !entries.iter().any(|entry| same(&entry.value, &value)) {
                entries.push(Entry {
                    value,
                    stored_at: Some(stored_at),
                });
            }
        }
    }
    for &value in &added {
        if !entries.iter().any(|entry| same(&entry.value, value)) {
            entries.push(Entry {
                value: value.clone(),
                stored_at: None,
            });
        }
    }

    let order: Vec<&Value> = match order {
        Some(order) => {
            if order
                .iter()
                .any(|item| item.is_object() || item.is_array() || item.is_null())
            {
                return Err(invalid(path, "$setElementOrder", "must list primitive values"));
            }
            let order: Vec<&Value> = order.iter().collect();
            check_order(&added, &order, path)?;
            order
        }
        None => added,
    };
    let mut out = arrange(entries, |value| order.iter().position(|ordered| same(ordered, value)));

    if let Some(delete) = delete {
        if delete.iter().any(|item| item.is_object() || item.is_array()) {
            return Err(invalid(path, "$deleteFromPrimitiveList", "must list primitive values"));
        }
        out.retain(|value| !delete.iter().any(|deleted| same(deleted, value)));
    }
    Ok(out)
}

/// A list of objects merged by `key`.
fn merge_by_key(
    original: Option<Vec<Value>>,
    patch: Option<&[Value]>,
    key: &'static str,
    child: &TypeInfo,
    order: Option<&[Value]>,
    delete: Option<&[Value]>,
    path: &Path<'_>,
) -> Result<Vec<Value>> {
    if delete.is_some() {
        return Err(invalid(
            path,
            "$deleteFromPrimitiveList",
            "this list holds objects: use \"$patch\": \"delete\"",
        ));
    }

    let mut replace = false;
    let mut removed: Vec<&Value> = Vec::new();
    let mut items: Vec<(&Map<String, Value>, &Value)> = Vec::new();
    for (index, item) in patch.unwrap_or_default().iter().enumerate() {
        let at = path.join(Step::Index(index));
        let Value::Object(fields) = item else {
            return Err(wrong_type(&at, "an object", item));
        };
        match list_directive(fields, &at)? {
            Some(ListDirective::Replace) => replace = true,
            Some(ListDirective::Merge) => {}
            Some(ListDirective::Delete) => removed.push(merge_key(fields, key, &at)?),
            None => items.push((fields, merge_key(fields, key, &at)?)),
        }
    }

    let mut entries: Vec<Entry> = Vec::new();
    if !replace {
        for (stored_at, value) in original.unwrap_or_default().into_iter().enumerate() {
            let gone = key_of(&value, key).is_some_and(|id| removed.iter().any(|removed| same(removed, id)));
            if !gone {
                entries.push(Entry {
                    value,
                    stored_at: Some(stored_at),
                });
            }
        }
    }
    for &(fields, id) in &items {
        let at = path.join(Step::Key(key, id));
        let found = entries
            .iter_mut()
            .find(|entry| key_of(&entry.value, key).is_some_and(|other| same(other, id)));
        match found {
            Some(entry) => {
                let stored = match entry.value.take() {
                    Value::Object(stored) => Some(stored),
                    _ => None,
                };
                entry.value = Value::Object(merge_object(stored, fields, child, &at)?);
            }
            None => {
                let value = Value::Object(merge_object(None, fields, child, &at)?);
                entries.push(Entry { value, stored_at: None });
            }
        }
    }

    let patched: Vec<&Value> = items.iter().map(|&(_, id)| id).collect();
    let order: Vec<&Value> = match order {
        Some(order) => {
            let mut ids = Vec::with_capacity(order.len());
            for (index, item) in order.iter().enumerate() {
                let Value::Object(fields) = item else {
                    return Err(invalid(
                        path,
                        "$setElementOrder",
                        "must list objects holding the merge key",
                    ));
                };
                let directive = path.join(Step::Field("$setElementOrder"));
                ids.push(merge_key(fields, key, &directive.join(Step::Index(index)))?);
            }
            check_order(&patched, &ids, path)?;
            ids
        }
        None => patched,
    };
    Ok(arrange(entries, |value| {
        key_of(value, key).and_then(|id| order.iter().position(|ordered| same(ordered, id)))
    }))
}

/// The value of the merge key of a patch item; a null counts as missing.
fn merge_key<'a>(item: &'a Map<String, Value>, key: &'static str, path: &Path<'_>) -> Result<&'a Value> {
    match item.get(key) {
        Some(value) if !value.is_null() => Ok(value),
        _ => Err(PatchError::MissingMergeKey {
            path: path.render(),
            key,
        }),
    }
}

/// The merge key of a stored item, if it is an object that has one.
fn key_of<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    item.get(key).filter(|value| !value.is_null())
}

/// Checks that the items of a patch list appear in its `$setElementOrder`
/// list, in the same relative order.
fn check_order(patched: &[&Value], order: &[&Value], path: &Path<'_>) -> Result<()> {
    let mut rest = order.iter();
    for id in patched {
        if !rest.any(|ordered| same(ordered, id)) {
            return Err(invalid(
                path,
                "$setElementOrder",
                "does not list the patch's items in the patch's order",
            ));
        }
    }
    Ok(())
}

/// Orders the items of a merged list. `rank` gives an item's position in the
/// patch's order, or `None` for an item only the stored list has.
///
/// Patch items are sorted by rank and stored-only items by stored position;
/// the two sequences are then interleaved, a stored-only item going first
/// only when both it and the next patch item come from the stored list and it
/// was stored before that item.
fn arrange(entries: Vec<Entry>, rank: impl Fn(&Value) -> Option<usize>) -> Vec<Value> {
    let total = entries.len();
    let mut patched: Vec<(usize, Entry)> = Vec::new();
    let mut stored_only: Vec<Entry> = Vec::new();
    for entry in entries {
        match rank(&entry.value) {
            Some(position) => patched.push((position, entry)),
            None => stored_only.push(entry),
        }
    }
    patched.sort_by_key(|&(position, _)| position);
    stored_only.sort_by_key(|entry| entry.stored_at);

    let mut left = stored_only.into_iter().peekable();
    let mut right = patched.into_iter().map(|(_, entry)| entry).peekable();
    let mut out = Vec::with_capacity(total);
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(stored), Some(patched)) => {
                matches!((stored.stored_at, patched.stored_at), (Some(a), Some(b)) if a < b)
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some(entry) = next {
            out.push(entry.value);
        }
    }
    out
}

/// JSON equality, except that numbers compare by value (`80` equals `80.0`),
/// as they do once Kubernetes has decoded both into `float64`.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(x), Some(y), _, _) => x == y,
            (_, _, Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

/// The JSON type of a value, for messages.
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

fn invalid(path: &Path<'_>, directive: &'static str, reason: &'static str) -> PatchError {
    PatchError::InvalidDirective {
        path: path.render(),
        directive,
        reason,
    }
}

fn wrong_type(path: &Path<'_>, expected: &'static str, found: &Value) -> PatchError {
    PatchError::WrongType {
        path: path.render(),
        expected,
        found: json_type(found),
    }
}

/// One step from an object to a value inside it.
#[derive(Clone, Copy, Debug)]
enum Step<'a> {
    /// A field of an object.
    Field(&'a str),
    /// The item of a merged list with this merge key value.
    Key(&'static str, &'a Value),
    /// The item of a list at this index (of the patch's list).
    Index(usize),
}

/// Where the engine is in the document, kept as a chain of borrowed steps on
/// the stack and rendered only when an error needs it.
#[derive(Clone, Copy, Debug)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    step: Option<Step<'a>>,
}

impl<'a> Path<'a> {
    fn root() -> Path<'static> {
        Path {
            parent: None,
            step: None,
        }
    }

    fn join(&'a self, step: Step<'a>) -> Path<'a> {
        Path {
            parent: Some(self),
            step: Some(step),
        }
    }

    /// The path as `.spec.containers[name=app].env[0]`; the root is `.`.
    fn render(&self) -> String {
        let mut steps = Vec::new();
        let mut at = Some(self);
        while let Some(path) = at {
            steps.extend(path.step);
            at = path.parent;
        }
        if steps.is_empty() {
            return ".".to_owned();
        }
        let mut out = String::new();
        for step in steps.iter().rev() {
            // Writing to a String cannot fail.
            let _ = match step {
                Step::Field(name) => write!(out, ".{name}"),
                Step::Key(key, Value::String(id)) => write!(out, "[{key}={id}]"),
                Step::Key(key, id) => write!(out, "[{key}={id}]"),
                Step::Index(index) => write!(out, "[{index}]"),
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::patch::schema::tests::root_type;

    fn deployment() -> &'static TypeInfo {
        root_type("apps", "Deployment").unwrap()
    }

    fn pod() -> &'static TypeInfo {
        root_type("", "Pod").unwrap()
    }

    fn node() -> &'static TypeInfo {
        root_type("", "Node").unwrap()
    }

    /// A successful case: `original` patched with `patch` gives `want`.
    struct Case {
        name: &'static str,
        root: fn() -> &'static TypeInfo,
        original: Value,
        patch: Value,
        want: Value,
    }

    fn run(cases: Vec<Case>) {
        for case in cases {
            let got = apply(&case.original, &case.patch, (case.root)())
                .unwrap_or_else(|error| panic!("{}: unexpected error: {error}", case.name));
            assert_eq!(
                got,
                case.want,
                "{}\n got: {}\nwant: {}",
                case.name,
                serde_json::to_string_pretty(&got).unwrap(),
                serde_json::to_string_pretty(&case.want).unwrap()
            );
        }
    }

    /// A pod spec with the given containers, each given as (name, extra fields).
    fn pod_with(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn maps_and_nulls() {
        run(vec![
            Case {
                name: "maps merge recursively and scalars are replaced",
                root: pod,
                original: json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}, "spec": {"nodeName": "n1"}}),
                patch: json!({"metadata": {"labels": {"b": "3", "c": "4"}}, "spec": {"nodeName": "n2"}}),
                want: json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "3", "c": "4"}}, "spec": {"nodeName": "n2"}}),
            },
            Case {
                name: "null deletes labels and annotations",
                root: pod,
                original: json!({"metadata": {"labels": {"a": "1", "b": "2"}, "annotations": {"x": "y"}}}),
                patch: json!({"metadata": {"labels": {"a": null}, "annotations": null}}),
                want: json!({"metadata": {"labels": {"b": "2"}}}),
            },
            Case {
                name: "null for an absent field leaves no trace",
                root: pod,
                original: json!({"metadata": {"name": "p"}}),
                patch: json!({"metadata": {"labels": {"gone": null}}, "spec": {"nodeName": null}}),
                want: json!({"metadata": {"name": "p", "labels": {}}, "spec": {}}),
            },
            Case {
                name: "nulls inside added values are dropped",
                root: pod,
                original: json!({}),
                patch: json!({"spec": {"containers": [{"name": "a", "image": null, "env": [{"name": "E", "value": null}]}]}}),
                want: json!({"spec": {"containers": [{"name": "a", "env": [{"name": "E"}]}]}}),
            },
            Case {
                name: "a value of another type replaces the stored one",
                root: pod,
                original: json!({"spec": {"nodeSelector": "oops"}}),
                patch: json!({"spec": {"nodeSelector": {"disk": "ssd"}}}),
                want: json!({"spec": {"nodeSelector": {"disk": "ssd"}}}),
            },
            Case {
                name: "an empty patch changes nothing",
                root: pod,
                original: json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}),
                patch: json!({}),
                want: json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}),
            },
        ]);
    }

    #[test]
    fn replaced_lists() {
        run(vec![
            Case {
                name: "a list without strategy is replaced",
                root: pod,
                original: json!({"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]}}),
                patch: json!({"spec": {"tolerations": [{"key": "c"}]}}),
                want: json!({"spec": {"tolerations": [{"key": "c"}]}}),
            },
            Case {
                name: "lists of unknown fields are replaced",
                root: pod,
                original: pod_with(json!([{"name": "a", "args": ["x", "y"]}])),
                patch: json!({"spec": {"containers": [{"name": "a", "args": ["z"]}]}}),
                want: pod_with(json!([{"name": "a", "args": ["z"]}])),
            },
            Case {
                name: "node taints are an atomic list",
                root: node,
                original: json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}}),
                patch: json!({"spec": {"taints": [{"key": "b", "effect": "NoSchedule"}]}}),
                want: json!({"spec": {"taints": [{"key": "b", "effect": "NoSchedule"}]}}),
            },
            Case {
                name: "a redundant $patch: replace item in a replaced list is dropped",
                root: pod,
                original: json!({"spec": {"tolerations": [{"key": "a"}]}}),
                patch: json!({"spec": {"tolerations": [{"key": "c"}, {"$patch": "replace"}]}}),
                want: json!({"spec": {"tolerations": [{"key": "c"}]}}),
            },
        ]);
    }

    #[test]
    fn merge_by_key() {
        run(vec![
            Case {
                name: "a matching item is merged into",
                root: pod,
                original: pod_with(
                    json!([{"name": "a", "image": "a:1", "ports": [{"containerPort": 80}]}, {"name": "b", "image": "b:1"}]),
                ),
                patch: json!({"spec": {"containers": [{"name": "a", "image": "a:2"}]}}),
                want: pod_with(
                    json!([{"name": "a", "image": "a:2", "ports": [{"containerPort": 80}]}, {"name": "b", "image": "b:1"}]),
                ),
            },
            Case {
                // Kubernetes places an item the patch does not order relative
                // to the stored ones first; $setElementOrder (which kubectl
                // apply sends) controls the position.
                name: "a new item without $setElementOrder goes first",
                root: pod,
                original: pod_with(json!([{"name": "a"}, {"name": "b"}])),
                patch: json!({"spec": {"containers": [{"name": "c", "image": "c:1"}]}}),
                want: pod_with(json!([{"name": "c", "image": "c:1"}, {"name": "a"}, {"name": "b"}])),
            },
            Case {
                name: "$patch: delete removes every item with the key",
                root: pod,
                original: pod_with(
                    json!([{"name": "a"}, {"name": "b", "env": [{"name": "X"}, {"name": "Y"}, {"name": "X"}]}]),
                ),
                patch: json!({"spec": {"containers": [
                    {"name": "a", "$patch": "delete"},
                    {"name": "b", "env": [{"name": "X", "$patch": "delete"}]},
                ]}}),
                want: pod_with(json!([{"name": "b", "env": [{"name": "Y"}]}])),
            },
            Case {
                name: "deleting an absent item is a no-op",
                root: pod,
                original: pod_with(json!([{"name": "a"}])),
                patch: json!({"spec": {"containers": [{"name": "zz", "$patch": "delete"}]}}),
                want: pod_with(json!([{"name": "a"}])),
            },
            Case {
                name: "add, modify and delete in one list keep patch order",
                root: pod,
                original: pod_with(
                    json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}, {"name": "c"}]),
                ),
                patch: json!({"spec": {"containers": [
                    {"name": "c", "image": "c:2"},
                    {"name": "a", "image": "a:2"},
                    {"name": "b", "$patch": "delete"},
                    {"name": "d"},
                ]}}),
                want: pod_with(json!([{"name": "c", "image": "c:2"}, {"name": "a", "image": "a:2"}, {"name": "d"}])),
            },
            Case {
                name: "stored-only items interleave by stored position",
                root: pod,
                original: pod_with(json!([{"name": "a"}, {"name": "b", "image": "b:1"}, {"name": "c"}])),
                patch: json!({"spec": {"containers": [{"name": "c", "image": "c:2"}, {"name": "a", "image": "a:2"}]}}),
                want: pod_with(
                    json!([{"name": "b", "image": "b:1"}, {"name": "c", "image": "c:2"}, {"name": "a", "image": "a:2"}]),
                ),
            },
            Case {
                name: "numeric merge keys match across integer and float spellings",
                root: pod,
                original: pod_with(json!([{"name": "a", "ports": [{"containerPort": 80, "protocol": "TCP"}]}])),
                patch: json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80.0, "name": "http"}]}]}}),
                want: pod_with(
                    json!([{"name": "a", "ports": [{"containerPort": 80.0, "protocol": "TCP", "name": "http"}]}]),
                ),
            },
            Case {
                name: "ownerReferences merge by uid",
                root: pod,
                original: json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "rs-a"}, {"uid": "2", "name": "rs-b"}]}}),
                patch: json!({"metadata": {"ownerReferences": [{"uid": "2", "controller": true}, {"uid": "1", "$patch": "delete"}]}}),
                want: json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "rs-b", "controller": true}]}}),
            },
            Case {
                name: "status conditions merge by type",
                root: pod,
                original: json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Scheduled", "status": "True"}]}}),
                patch: json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                want: json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Scheduled", "status": "True"}]}}),
            },
            Case {
                name: "a merged list is created when the field is absent",
                root: pod,
                original: json!({"spec": {}}),
                patch: json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
                want: json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
            },
            Case {
                name: "an empty patch list leaves a merged list alone",
                root: pod,
                original: pod_with(json!([{"name": "a"}])),
                patch: json!({"spec": {"containers": []}}),
                want: pod_with(json!([{"name": "a"}])),
            },
        ]);
    }

    #[test]
    fn merge_primitives() {
        run(vec![
            Case {
                name: "union without duplicates",
                root: pod,
                original: json!({"metadata": {"finalizers": ["a", "b"]}}),
                patch: json!({"metadata": {"finalizers": ["b", "c"]}}),
                want: json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            },
            Case {
                name: "patch order wins for the values it names",
                root: pod,
                original: json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
                patch: json!({"metadata": {"finalizers": ["c", "a"]}}),
                want: json!({"metadata": {"finalizers": ["b", "c", "a"]}}),
            },
            Case {
                name: "$deleteFromPrimitiveList removes values",
                root: pod,
                original: json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
                patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}}),
                want: json!({"metadata": {"finalizers": ["a", "c"]}}),
            },
            Case {
                name: "$deleteFromPrimitiveList beats an addition of the same value",
                root: pod,
                original: json!({"metadata": {"finalizers": ["a"]}}),
                patch: json!({"metadata": {"finalizers": ["b"], "$deleteFromPrimitiveList/finalizers": ["a", "b"]}}),
                want: json!({"metadata": {"finalizers": []}}),
            },
            Case {
                name: "$deleteFromPrimitiveList on an absent field is a no-op",
                root: pod,
                original: json!({"metadata": {"name": "p"}}),
                patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
                want: json!({"metadata": {"name": "p"}}),
            },
            Case {
                name: "node podCIDRs are a set",
                root: node,
                original: json!({"spec": {"podCIDRs": ["10.0.0.0/24"]}}),
                patch: json!({"spec": {"podCIDRs": ["fd00::/64"]}}),
                want: json!({"spec": {"podCIDRs": ["fd00::/64", "10.0.0.0/24"]}}),
            },
            Case {
                name: "$patch: replace item replaces a primitive list",
                root: pod,
                original: json!({"metadata": {"finalizers": ["a", "b"]}}),
                patch: json!({"metadata": {"finalizers": ["c", {"$patch": "replace"}]}}),
                want: json!({"metadata": {"finalizers": ["c"]}}),
            },
        ]);
    }

    #[test]
    fn patch_directive() {
        run(vec![
            Case {
                name: "$patch: replace on a map replaces it",
                root: pod,
                original: json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
                patch: json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
                want: json!({"metadata": {"labels": {"c": "3"}}}),
            },
            Case {
                name: "$patch: replace at the root replaces the whole object",
                root: pod,
                original: json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n"}}),
                patch: json!({"$patch": "replace", "metadata": {"name": "q"}}),
                want: json!({"metadata": {"name": "q"}}),
            },
            Case {
                name: "$patch: delete on a map empties it",
                root: pod,
                original: json!({"spec": {"nodeSelector": {"a": "1"}, "nodeName": "n"}}),
                patch: json!({"spec": {"nodeSelector": {"$patch": "delete"}}}),
                want: json!({"spec": {"nodeSelector": {}, "nodeName": "n"}}),
            },
            Case {
                name: "$patch: merge on a map is the default",
                root: pod,
                original: json!({"metadata": {"labels": {"a": "1"}}}),
                patch: json!({"metadata": {"labels": {"$patch": "merge", "b": "2"}}}),
                want: json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            },
            Case {
                name: "$patch: replace item replaces a merged list",
                root: pod,
                original: pod_with(json!([{"name": "a", "image": "a:1"}, {"name": "b"}])),
                patch: json!({"spec": {"containers": [{"name": "c"}, {"$patch": "replace"}, {"name": "a", "image": "a:2"}]}}),
                want: pod_with(json!([{"name": "c"}, {"name": "a", "image": "a:2"}])),
            },
            Case {
                name: "$patch: replace alone empties a merged list",
                root: pod,
                original: pod_with(json!([{"name": "a"}])),
                patch: json!({"spec": {"containers": [{"$patch": "replace"}]}}),
                want: pod_with(json!([])),
            },
            Case {
                name: "$patch: merge item in a merged list is a no-op",
                root: pod,
                original: pod_with(json!([{"name": "a"}])),
                patch: json!({"spec": {"containers": [{"$patch": "merge"}, {"name": "a", "image": "x"}]}}),
                want: pod_with(json!([{"name": "a", "image": "x"}])),
            },
            Case {
                name: "directives inside added items are applied, not stored",
                root: pod,
                original: json!({"spec": {}}),
                patch: json!({"spec": {"containers": [{
                    "name": "a",
                    "$setElementOrder/env": [{"name": "Y"}, {"name": "X"}],
                    "env": [{"name": "Y"}, {"name": "X"}],
                    "resources": {"$patch": "replace", "limits": {"cpu": "1"}},
                }]}}),
                want: json!({"spec": {"containers": [{"name": "a", "env": [{"name": "Y"}, {"name": "X"}], "resources": {"limits": {"cpu": "1"}}}]}}),
            },
        ]);
    }

    #[test]
    fn set_element_order() {
        run(vec![
            Case {
                name: "reorders a list of objects without changing it",
                root: pod,
                original: pod_with(json!([{"name": "b", "image": "b"}, {"name": "a", "image": "a"}])),
                patch: json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}]}}),
                want: pod_with(json!([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}])),
            },
            Case {
                name: "places a new item where the order says",
                root: pod,
                original: pod_with(json!([{"name": "a"}, {"name": "b"}])),
                patch: json!({"spec": {
                    "$setElementOrder/containers": [{"name": "a"}, {"name": "new"}, {"name": "b"}],
                    "containers": [{"name": "new"}],
                }}),
                want: pod_with(json!([{"name": "a"}, {"name": "new"}, {"name": "b"}])),
            },
            Case {
                name: "server-only items keep their place relative to stored neighbours",
                root: pod,
                original: pod_with(json!([{"name": "c"}, {"name": "b"}, {"name": "d"}, {"name": "a"}, {"name": "e"}])),
                patch: json!({"spec": {
                    "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                    "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}],
                }}),
                want: pod_with(json!([
                    {"name": "c"}, {"name": "d"}, {"name": "a", "image": "x"}, {"name": "b", "image": "y"}, {"name": "e"},
                ])),
            },
            Case {
                name: "an injected sidecar stays first",
                root: pod,
                original: pod_with(json!([{"name": "proxy"}, {"name": "app"}])),
                patch: json!({"spec": {
                    "$setElementOrder/containers": [{"name": "app"}, {"name": "log"}],
                    "containers": [{"name": "log"}],
                }}),
                want: pod_with(json!([{"name": "proxy"}, {"name": "app"}, {"name": "log"}])),
            },
            Case {
                name: "names of absent items are ignored",
                root: pod,
                original: pod_with(json!([{"name": "a"}, {"name": "c"}])),
                patch: json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}]}}),
                want: pod_with(json!([{"name": "c"}, {"name": "a"}])),
            },
            Case {
                name: "orders primitives, then deletions apply",
                root: pod,
                original: json!({"metadata": {"finalizers": ["b", "e", "a", "c", "d"]}}),
                patch: json!({"metadata": {
                    "$setElementOrder/finalizers": ["a", "b", "f"],
                    "finalizers": ["f"],
                    "$deleteFromPrimitiveList/finalizers": ["c"],
                }}),
                want: json!({"metadata": {"finalizers": ["e", "a", "b", "f", "d"]}}),
            },
            Case {
                name: "deleted items may be absent from the order",
                root: pod,
                original: pod_with(json!([{"name": "a"}, {"name": "b"}])),
                patch: json!({"spec": {
                    "$setElementOrder/containers": [{"name": "b"}],
                    "containers": [{"name": "a", "$patch": "delete"}],
                }}),
                want: pod_with(json!([{"name": "b"}])),
            },
        ]);
    }

    #[test]
    fn retain_keys() {
        run(vec![
            Case {
                name: "switching a deployment to Recreate drops rollingUpdate",
                root: deployment,
                original: json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
                patch: json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
                want: json!({"spec": {"strategy": {"type": "Recreate"}}}),
            },
            Case {
                name: "a volume changes its source",
                root: pod,
                original: json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "secret": {"secretName": "s"}}]}}),
                patch: json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}}]}}),
                want: json!({"spec": {"volumes": [{"name": "v", "configMap": {"name": "cm"}}, {"name": "w", "secret": {"secretName": "s"}}]}}),
            },
            Case {
                name: "without the directive a retainKeys map merges",
                root: deployment,
                original: json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
                patch: json!({"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": 0}}}}),
                want: json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}}),
            },
        ]);
    }

    /// What `kubectl apply` sends after a user changed one container's image,
    /// added an env var and removed a label from a Deployment's manifest.
    #[test]
    fn kubectl_apply_deployment() {
        let live = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "labels": {"app": "web", "tier": "frontend"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...old...}", "deployment.kubernetes.io/revision": "3"},
                "finalizers": ["example.com/keep"],
            },
            "spec": {
                "replicas": 3,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {"name": "mesh-proxy", "image": "proxy:1"},
                            {
                                "name": "app",
                                "image": "web:1.0",
                                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                "env": [{"name": "MODE", "value": "prod"}],
                                "terminationMessagePath": "/dev/termination-log",
                            },
                            {"name": "logs", "image": "fluent:2"},
                        ],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                    },
                },
            },
            "status": {"replicas": 3, "conditions": [{"type": "Available", "status": "True"}]},
        });
        let patch = json!({
            "metadata": {
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...new...}"},
                "labels": {"tier": null},
            },
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "app"}, {"name": "logs"}],
                        "containers": [{
                            "name": "app",
                            "image": "web:1.1",
                            "$setElementOrder/env": [{"name": "MODE"}, {"name": "LOG_LEVEL"}],
                            "env": [{"name": "LOG_LEVEL", "value": "debug"}],
                        }],
                    },
                },
            },
        });
        let want = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...new...}", "deployment.kubernetes.io/revision": "3"},
                "finalizers": ["example.com/keep"],
            },
            "spec": {
                "replicas": 3,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {"name": "mesh-proxy", "image": "proxy:1"},
                            {
                                "name": "app",
                                "image": "web:1.1",
                                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                "env": [{"name": "MODE", "value": "prod"}, {"name": "LOG_LEVEL", "value": "debug"}],
                                "terminationMessagePath": "/dev/termination-log",
                            },
                            {"name": "logs", "image": "fluent:2"},
                        ],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                    },
                },
            },
            "status": {"replicas": 3, "conditions": [{"type": "Available", "status": "True"}]},
        });
        run(vec![Case {
            name: "kubectl apply",
            root: deployment,
            original: live.clone(),
            patch: patch.clone(),
            want,
        }]);

        // Applying the same patch again changes nothing further.
        let once = apply(&live, &patch, deployment()).unwrap();
        let twice = apply(&once, &patch, deployment()).unwrap();
        assert_eq!(once, twice);
    }

    #[test]
    fn original_is_not_modified() {
        let original = pod_with(json!([{"name": "a", "image": "a:1"}]));
        let copy = original.clone();
        let _ = apply(
            &original,
            &json!({"spec": {"containers": [{"name": "a", "image": "a:2"}]}}),
            pod(),
        )
        .unwrap();
        assert_eq!(original, copy);
    }

    /// A failing case: the patch is rejected with an error of this shape.
    struct Bad {
        name: &'static str,
        original: Value,
        patch: Value,
        check: fn(&PatchError) -> bool,
        status: u16,
    }

    #[test]
    fn bad_patches() {
        let cases = vec![
            Bad {
                name: "patch is a list",
                original: json!({}),
                patch: json!([{"op": "add"}]),
                check: |e| matches!(e, PatchError::NotAnObject { found: "a list" }),
                status: 400,
            },
            Bad {
                name: "patch is a string",
                original: json!({}),
                patch: json!("x"),
                check: |e| matches!(e, PatchError::NotAnObject { found: "a string" }),
                status: 400,
            },
            Bad {
                name: "unknown $patch value",
                original: json!({}),
                patch: json!({"metadata": {"$patch": "explode"}}),
                check: |e| matches!(e, PatchError::InvalidDirective { directive: "$patch", path, .. } if path == ".metadata"),
                status: 400,
            },
            Bad {
                name: "$patch is not a string",
                original: json!({}),
                patch: json!({"$patch": true}),
                check: |e| matches!(e, PatchError::InvalidDirective { directive: "$patch", path, .. } if path == "."),
                status: 400,
            },
            Bad {
                name: "$retainKeys is not a list",
                original: json!({}),
                patch: json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
                check: |e| {
                    matches!(
                        e,
                        PatchError::InvalidDirective {
                            directive: "$retainKeys",
                            ..
                        }
                    )
                },
                status: 400,
            },
            Bad {
                name: "$retainKeys lists a non-string",
                original: json!({}),
                patch: json!({"spec": {"strategy": {"$retainKeys": [1]}}}),
                check: |e| {
                    matches!(
                        e,
                        PatchError::InvalidDirective {
                            directive: "$retainKeys",
                            ..
                        }
                    )
                },
                status: 400,
            },
            Bad {
                name: "patch sets a field $retainKeys leaves out",
                original: json!({}),
                patch: json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}}}}),
                check: |e| matches!(e, PatchError::NotRetained { field, path } if field == "rollingUpdate" && path == ".spec.strategy"),
                status: 422,
            },
            Bad {
                name: "$setElementOrder is not a list",
                original: json!({}),
                patch: json!({"spec": {"template": {"spec": {"$setElementOrder/containers": {"name": "a"}}}}}),
                check: |e| matches!(e, PatchError::InvalidDirective { directive: "$setElementOrder", path, .. } if path == ".spec.template.spec.containers"),
                status: 400,
            },
            Bad {
                name: "$setElementOrder with no field name",
                original: json!({}),
                patch: json!({"metadata": {"$setElementOrder/": []}}),
                check: |e| {
                    matches!(
                        e,
                        PatchError::InvalidDirective {
                            directive: "$setElementOrder",
                            ..
                        }
                    )
                },
                status: 400,
            },
            Bad {
                name: "$setElementOrder item lacks the merge key",
                original: json!({}),
                patch: json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"image": "x"}]}}}}),
                check: |e| matches!(e, PatchError::MissingMergeKey { key: "name", .. }),
                status: 422,
            },
            Bad {
                name: "$setElementOrder disagrees with the patch list",
                original: json!({}),
                patch: json!({"metadata": {"$setElementOrder/finalizers": ["a", "b"], "finalizers": ["b", "a"]}}),
                check: |e| {
                    matches!(
                        e,
                        PatchError::InvalidDirective {
                            directive: "$setElementOrder",
                            ..
                        }
                    )
                },
                status: 400,
            },
            Bad {
                name: "$setElementOrder omits a patched item",
                original: json!({}),
                patch: json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "a"}],
                    "containers": [{"name": "b"}],
                }}}}),
                check: |e| {
                    matches!(
                        e,
                        PatchError::InvalidDirective {
                            directive: "$setElementOrder",
                            ..
                        }
                    )
                },
                status: 400,
            },
            Bad {
                name: "$setElementOrder on a replaced list",
                original: json!({}),
                patch: json!({"spec": {"template": {"spec": {"$setElementOrder/tolerations": [{"key": "a"}]}}}}),
                check: |e| {
                    matches!(
                        e,
                        PatchError::InvalidDirective {
                            directive: "$setElementOrder",
                            ..
                        }
                    )
                },
                status: 400,
            },
            Bad {
                name: "$deleteFromPrimitiveList is not a list",
                original: json!({}),
                patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
                check: |e| {
                    matches!(
                        e,
                        PatchError::InvalidDirective {
                            directive: "$deleteFromPrimitiveList",
                            ..
                        }
                    )
                },
                status: 400,
            },
            Bad {
                name: "$deleteFromPrimitiveList on a list merged by key",
                original: json!({}),
                patch: json!({"metadata": {"$deleteFromPrimitiveList/ownerReferences": ["1"]}}),
                check: |e| {
                    matches!(
                        e,
                        PatchError::InvalidDirective {
                            directive: "$deleteFromPrimitiveList",
                            ..
                        }
                    )
                },
                status: 400,
            },
            Bad {
                name: "list directive beside a non-list value",
                original: json!({}),
                patch: json!({"metadata": {"$setElementOrder/finalizers": ["a"], "finalizers": "a"}}),
                check: |e| {
                    matches!(
                        e,
                        PatchError::WrongType {
                            expected: "a list",
                            found: "a string",
                            ..
                        }
                    )
                },
                status: 422,
            },
            Bad {
                name: "list item missing its merge key",
                original: json!({}),
                patch: json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"image": "nameless"}]}}}}),
                check: |e| matches!(e, PatchError::MissingMergeKey { key: "name", path } if path == ".spec.template.spec.containers[1]"),
                status: 422,
            },
            Bad {
                name: "nested list item missing its merge key",
                original: json!({}),
                patch: json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "ports": [{"name": "http"}]}]}}}}),
                check: |e| matches!(e, PatchError::MissingMergeKey { key: "containerPort", path } if path == ".spec.template.spec.containers[name=a].ports[0]"),
                status: 422,
            },
            Bad {
                name: "delete item missing its merge key",
                original: json!({}),
                patch: json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}}),
                check: |e| matches!(e, PatchError::MissingMergeKey { key: "name", .. }),
                status: 422,
            },
            Bad {
                name: "null merge key",
                original: json!({}),
                patch: json!({"spec": {"template": {"spec": {"containers": [{"name": null}]}}}}),
                check: |e| matches!(e, PatchError::MissingMergeKey { key: "name", .. }),
                status: 422,
            },
            Bad {
                name: "a string in a list merged by key",
                original: json!({}),
                patch: json!({"spec": {"template": {"spec": {"containers": ["app"]}}}}),
                check: |e| {
                    matches!(
                        e,
                        PatchError::WrongType {
                            expected: "an object",
                            found: "a string",
                            ..
                        }
                    )
                },
                status: 422,
            },
            Bad {
                name: "an object in a list of primitives",
                original: json!({}),
                patch: json!({"metadata": {"finalizers": [{"name": "a"}]}}),
                check: |e| {
                    matches!(
                        e,
                        PatchError::WrongType {
                            expected: "a primitive value",
                            found: "an object",
                            ..
                        }
                    )
                },
                status: 422,
            },
            Bad {
                name: "$patch: delete in a list of primitives",
                original: json!({}),
                patch: json!({"metadata": {"finalizers": [{"$patch": "delete"}]}}),
                check: |e| {
                    matches!(
                        e,
                        PatchError::InvalidDirective {
                            directive: "$patch",
                            ..
                        }
                    )
                },
                status: 400,
            },
            Bad {
                name: "$patch: delete in a replaced list",
                original: json!({}),
                patch: json!({"spec": {"template": {"spec": {"tolerations": [{"key": "a", "$patch": "delete"}]}}}}),
                check: |e| {
                    matches!(
                        e,
                        PatchError::InvalidDirective {
                            directive: "$patch",
                            ..
                        }
                    )
                },
                status: 400,
            },
            Bad {
                name: "unknown $patch value in a list item",
                original: json!({}),
                patch: json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "$patch": "upsert"}]}}}}),
                check: |e| {
                    matches!(
                        e,
                        PatchError::InvalidDirective {
                            directive: "$patch",
                            ..
                        }
                    )
                },
                status: 400,
            },
        ];
        for case in cases {
            let error = apply(&case.original, &case.patch, deployment())
                .err()
                .unwrap_or_else(|| panic!("{}: expected an error", case.name));
            assert!((case.check)(&error), "{}: unexpected error {error:?}", case.name);
            assert_eq!(error.status_code(), case.status, "{}", case.name);
            assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn error_messages_name_the_place() {
        let error = apply(
            &json!({}),
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "env": [{"value": "1"}]}]}}}}),
            deployment(),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "list item at .spec.template.spec.containers[name=app].env[0] has no merge key \"name\""
        );
    }
}
