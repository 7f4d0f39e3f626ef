//! `cargo xtask gen-patch-schema`: writes `api/src/patch/schema/generated.rs`,
//! the strategic-merge-patch and server-side-apply metadata of the Kubernetes
//! types (see `api/src/patch/schema.rs` for the data model).
//!
//! The facts are the Go comment markers of `k8s.io/api` and apimachinery,
//! which k8s-pb keeps in its doc comments and from which upstream generates
//! both the Go struct tags the strategic merge patch reads and the OpenAPI
//! extensions server-side apply reads:
//!
//! | marker | OpenAPI extension | becomes |
//! |---|---|---|
//! | `+patchStrategy=merge` with `+patchMergeKey=k` | `x-kubernetes-patch-strategy`, `-merge-key` | [`MergeByKey(k)`], or `MergePrimitives` without a key |
//! | `+patchStrategy=retainKeys` | `x-kubernetes-patch-strategy` | `retain_keys` |
//! | `+listType=atomic\|set\|map`, `+listMapKey=k` (one per key) | `x-kubernetes-list-type`, `-list-map-keys` | the apply list type |
//! | `+default=v` on a list-map key field | `default` | the key's default (`protocol: TCP`) |
//! | `+mapType=atomic` on a map, `+structType=atomic` on a type | `x-kubernetes-map-type` | `atomic` |
//!
//! A list without `+listType` gets the list type kube-openapi's schema
//! conversion gives it: a map list keyed by its merge key when merged by key,
//! a set when merged without a key, else atomic. JSON names come from
//! k8s-openapi, through [`crate::k8s_types`], as for the protobuf schema;
//! a type Go embeds inline (VolumeSource in Volume) lends its fields to its
//! embedder.
//!
//! The tables cover every type reachable from the kinds k8s-pb implements
//! `Resource` for and k8s-openapi knows, listing a type only when it has a
//! field that matters, and a field only when it matters: a marker above, or
//! a value of a type that is listed.
//!
//! [`MergeByKey(k)`]: https://github.com/kubernetes/community/blob/master/contributors/devel/sig-api-machinery/strategic-merge-patch.md

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::k8s_types::{JsonName, Model, PbField, Sources, read_k8s_openapi, read_k8s_pb};

/// Where the tables go, relative to the workspace root.
const OUTPUT: &str = "api/src/patch/schema/generated.rs";

type Key = (String, String);

pub fn run() -> Result<()> {
    let (root, tables, sources, kinds) = build()?;
    let out = root.join(OUTPUT);
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::write(&out, format(&root, &tables.render(&sources))?)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let (roots, left_out) = kinds;
    println!(
        "wrote {}: {} types, {} fields, from {} kinds ({} left out: unknown to k8s-openapi)",
        out.display(),
        tables.types.len(),
        tables.types.iter().map(|t| t.fields.len()).sum::<usize>(),
        roots,
        left_out,
    );
    for note in &tables.notes {
        println!("note: {note}");
    }
    Ok(())
}

/// Fails when the committed tables differ from what the sources give now
/// (a crate update, or a hand edit), naming the command that refreshes them.
pub fn check() -> Result<()> {
    let (root, tables, sources, _) = build()?;
    let out = root.join(OUTPUT);
    let committed = fs::read_to_string(&out).with_context(|| format!("cannot read {}", out.display()))?;
    if committed != format(&root, &tables.render(&sources))? {
        bail!("{OUTPUT} is not what its sources give; run `cargo xtask gen-patch-schema`");
    }
    Ok(())
}

/// The workspace root, the tables, their sources, and how many kinds were
/// covered and left out.
fn build() -> Result<(std::path::PathBuf, Tables, Sources, (usize, usize))> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent directory")?
        .to_path_buf();
    let sources = Sources::locate(&root)?;
    let pb = read_k8s_pb(&sources.k8s_pb.join("src"))?;
    let names = read_k8s_openapi(&sources.k8s_openapi.join("src"))?;
    // Kinds k8s-openapi does not know (alpha APIs) would have guessed JSON
    // names, so they are left out.
    let all = Model::new(&pb, &names, pb.kinds.values())?;
    let roots: Vec<&Key> = pb.kinds.values().filter(|k| all.has_names(k)).collect();
    let model = Model::new(&pb, &names, roots.iter().copied())?;
    let tables = Tables::build(&model)?;
    let counts = (roots.len(), pb.kinds.len() - roots.len());
    Ok((root, tables, sources, counts))
}

/// Rust source as rustfmt lays it out, with the workspace's settings.
fn format(root: &Path, source: &str) -> Result<String> {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2024", "--emit", "stdout"])
        .current_dir(root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run rustfmt")?;
    let mut stdin = child.stdin.take().context("rustfmt has no stdin")?;
    let input = source.to_owned();
    // Written from another thread, so a full stdout pipe cannot stall it.
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, input.as_bytes()));
    let output = child.wait_with_output().context("rustfmt failed")?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writing to rustfmt panicked"))?
        .context("cannot write to rustfmt")?;
    if !output.status.success() {
        bail!("rustfmt failed with {}", output.status);
    }
    String::from_utf8(output.stdout).context("rustfmt wrote no UTF-8")
}

#[derive(Clone, Debug, PartialEq)]
enum Strategy {
    Replace,
    MergeByKey(String),
    MergePrimitives,
}

#[derive(Clone, Debug, PartialEq)]
enum List {
    Atomic,
    Set,
    /// Key fields with their defaults.
    Map(Vec<(String, Option<String>)>),
}

/// One field's metadata, before it is known whether its type is listed.
#[derive(Debug)]
struct Fact {
    json: String,
    strategy: Strategy,
    retain_keys: bool,
    /// `None` for a value that is not a list, or a list without a list type.
    list: Option<List>,
    atomic: bool,
    /// The message type of the value, or of each item of a list.
    child: Option<Key>,
    /// The message type of the values of a map.
    map_of: Option<Key>,
}

impl Fact {
    /// Whether the field matters whatever its type.
    fn marked(&self) -> bool {
        self.strategy != Strategy::Replace || self.retain_keys || self.list.is_some() || self.atomic
    }
}

struct Type {
    definition: String,
    short: String,
    ident: String,
    fields: Vec<Fact>,
}

struct Tables {
    types: Vec<Type>,
    /// The static of each listed type.
    ident_of: BTreeMap<Key, String>,
    notes: Vec<String>,
}

/// The value of marker `name` (`patchMergeKey=type` → `type`), each time it
/// appears.
fn marker<'m>(markers: &'m [String], name: &str) -> impl Iterator<Item = &'m str> {
    markers.iter().filter_map(move |m| {
        let (key, value) = m.split_once('=')?;
        (key.trim() == name).then(|| value.trim())
    })
}

impl Tables {
    fn build(model: &Model<'_>) -> Result<Self> {
        let mut notes = Vec::new();
        let mut facts: BTreeMap<Key, Vec<Fact>> = BTreeMap::new();
        for (definition, key) in &model.order {
            let mut list = Vec::new();
            for (field, json) in json_fields(model, key, 0)? {
                list.push(fact(model, definition, field, json, &mut notes)?);
            }
            facts.insert(key.clone(), list);
        }

        // A type is listed when one of its fields matters: marked, or of a
        // listed type. Recursive types (JSONSchemaProps) settle by iteration.
        let mut listed: BTreeSet<Key> = BTreeSet::new();
        loop {
            let before = listed.len();
            for (key, fields) in &facts {
                if fields
                    .iter()
                    .any(|f| f.marked() || f.child.as_ref().is_some_and(|c| listed.contains(c)))
                {
                    listed.insert(key.clone());
                }
            }
            if listed.len() == before {
                break;
            }
        }

        // The tables describe a value or a list's items, not a map's values.
        for (definition, key) in &model.order {
            for field in facts.get(key).into_iter().flatten() {
                if let Some(value) = field.map_of.as_ref().filter(|v| listed.contains(*v)) {
                    notes.push(format!(
                        "{definition}.{}: a map of {}, whose metadata the tables cannot attach",
                        field.json, value.1
                    ));
                }
            }
        }

        let mut idents: BTreeMap<String, String> = BTreeMap::new();
        let mut ident_of: BTreeMap<Key, String> = BTreeMap::new();
        for (definition, key) in &model.order {
            if !listed.contains(key) {
                continue;
            }
            let ident = static_name(definition);
            if let Some(other) = idents.insert(ident.clone(), definition.clone()) {
                bail!("{definition} and {other} would both be called {ident}");
            }
            ident_of.insert(key.clone(), ident);
        }

        let mut types = Vec::new();
        for (definition, key) in &model.order {
            let Some(ident) = ident_of.get(key) else { continue };
            let mut fields = facts.remove(key).context("facts vanished")?;
            for field in &mut fields {
                field.child = field.child.take().filter(|c| listed.contains(c));
            }
            fields.retain(|f| f.marked() || f.child.is_some());
            types.push(Type {
                definition: definition.clone(),
                short: definition.rsplit('.').next().unwrap_or(definition).to_owned(),
                ident: ident.clone(),
                fields,
            });
        }
        Ok(Self { types, ident_of, notes })
    }

    fn render(&self, sources: &Sources) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "// @generated by `cargo xtask gen-patch-schema` from k8s-pb {pb} and k8s-openapi {openapi}; do not edit.\n\
             //! The patch metadata of the Kubernetes types, from the Go markers k8s-pb {pb} keeps\n\
             //! (`+patchStrategy`, `+patchMergeKey`, `+listType`, `+listMapKey`, `+mapType`,\n\
             //! `+structType`, `+default`) and the JSON names of k8s-openapi {openapi}. One static\n\
             //! per type that has a field a patch treats specially, named after its API group,\n\
             //! version and type. See the parent module for what the fields mean.\n\n\
             use super::{{FieldInfo as F, TypeInfo as T, key, key_or}};\n",
            pb = sources.k8s_pb_version,
            openapi = sources.k8s_openapi_version
        );
        for ty in &self.types {
            let _ = writeln!(
                out,
                "/// `{}`\npub static {}: T = T {{ name: {:?}, fields: &[",
                ty.definition, ty.ident, ty.short
            );
            for field in &ty.fields {
                let mut line = format!("F::new({:?})", field.json);
                match &field.strategy {
                    Strategy::Replace => {}
                    Strategy::MergeByKey(key) => {
                        let _ = write!(line, ".merge_key({key:?})");
                    }
                    Strategy::MergePrimitives => line.push_str(".merge_primitives()"),
                }
                if field.retain_keys {
                    line.push_str(".retaining()");
                }
                match &field.list {
                    None | Some(List::Atomic) => {}
                    Some(List::Set) => line.push_str(".set()"),
                    Some(List::Map(keys)) => {
                        let keys: Vec<String> = keys
                            .iter()
                            .map(|(name, default)| match default {
                                Some(default) => format!("key_or({name:?}, {default:?})"),
                                None => format!("key({name:?})"),
                            })
                            .collect();
                        let _ = write!(line, ".map(&[{}])", keys.join(", "));
                    }
                }
                if field.atomic {
                    line.push_str(".atomic()");
                }
                if let Some(ident) = field.child.as_ref().and_then(|c| self.ident_of.get(c)) {
                    let _ = write!(line, ".with_child(&{ident})");
                }
                let _ = writeln!(out, "{line},");
            }
            let _ = writeln!(out, "] }};\n");
        }
        out
    }
}

/// The fields of `key` with their JSON names, those of inline-embedded
/// messages in their place.
fn json_fields<'m>(model: &Model<'m>, key: &Key, depth: usize) -> Result<Vec<(&'m PbField, String)>> {
    if depth > 8 {
        bail!("{}.{} embeds messages too deep", key.0, key.1);
    }
    let mut fields = Vec::new();
    for field in &model.message(key)?.fields {
        match model.json_name(key, field) {
            JsonName::Known(json) | JsonName::Guessed(json) => fields.push((field, json)),
            JsonName::Inline => {
                let child = field.message.as_ref().context("inline field without a message")?;
                fields.extend(json_fields(model, child, depth + 1)?);
            }
        }
    }
    Ok(fields)
}

/// The metadata of one field from its markers and those of its type.
fn fact(model: &Model<'_>, definition: &str, field: &PbField, json: String, notes: &mut Vec<String>) -> Result<Fact> {
    let markers = &field.markers;
    let at = || format!("{definition}.{json}");
    let strategies: Vec<&str> = marker(markers, "patchStrategy").flat_map(|s| s.split(',')).collect();
    let merge_key = marker(markers, "patchMergeKey").next();
    let repeated = field.card == "Repeated";
    let mut strategy = Strategy::Replace;
    for s in &strategies {
        match (*s, merge_key) {
            ("merge", Some(key)) => strategy = Strategy::MergeByKey(key.to_owned()),
            ("merge", None) if field.message.is_none() => strategy = Strategy::MergePrimitives,
            ("merge", None) => bail!("{}: objects merged without a key", at()),
            ("retainKeys", _) => {}
            ("replace", _) => notes.push(format!(
                "{}: patchStrategy=replace (the strategic merge patch replaces the whole value) \
                 has no place in the data model; it merges as a map",
                at()
            )),
            (other, _) => bail!("{}: unknown patchStrategy {other}", at()),
        }
    }
    if !repeated && matches!(strategy, Strategy::MergeByKey(_) | Strategy::MergePrimitives) {
        bail!("{}: a merge strategy on a value that is not a list", at());
    }
    let retain_keys = strategies.contains(&"retainKeys");

    let child = match (&field.message, field.card) {
        (Some(child), "One" | "Repeated") => Some(child.clone()),
        _ => None,
    };
    let list = if repeated {
        match marker(markers, "listType").next() {
            Some("atomic") => Some(List::Atomic),
            Some("set") => Some(List::Set),
            Some("map") => {
                let names: Vec<&str> = marker(markers, "listMapKey").collect();
                if names.is_empty() {
                    bail!("{}: listType=map without listMapKey", at());
                }
                Some(List::Map(keys_with_defaults(model, &child, &names, &at())?))
            }
            Some(other) => bail!("{}: unknown listType {other}", at()),
            // kube-openapi's schemaconv: a merged list is associative.
            None => match &strategy {
                Strategy::MergeByKey(key) => Some(List::Map(keys_with_defaults(model, &child, &[key], &at())?)),
                Strategy::MergePrimitives => Some(List::Set),
                Strategy::Replace => None,
            },
        }
    } else {
        None
    };

    let struct_atomic = match &child {
        Some(child) => marker(&model.message(child)?.markers, "structType").any(|v| v == "atomic"),
        None => false,
    };
    let atomic = struct_atomic
        || marker(markers, "mapType").any(|v| v == "atomic")
        || marker(markers, "structType").any(|v| v == "atomic");
    let map_of = match (&field.message, field.card) {
        (Some(value), "Map") => Some(value.clone()),
        _ => None,
    };
    Ok(Fact {
        json,
        strategy,
        retain_keys,
        list,
        atomic,
        child,
        map_of,
    })
}

/// The key fields of a map list, each with the default its `+default`
/// marker gives (the OpenAPI `default` server-side apply fills in for a
/// missing key).
fn keys_with_defaults(
    model: &Model<'_>,
    item: &Option<Key>,
    names: &[&str],
    at: &str,
) -> Result<Vec<(String, Option<String>)>> {
    let item = item.as_ref().with_context(|| format!("{at}: a map list of scalars"))?;
    let fields = json_fields(model, item, 0)?;
    names
        .iter()
        .map(|name| {
            let (field, _) = fields
                .iter()
                .find(|(_, json)| json == name)
                .with_context(|| format!("{at}: no key field {name} in {}.{}", item.0, item.1))?;
            let default = match marker(&field.markers, "default").next() {
                None => None,
                Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
                    Ok(serde_json::Value::String(s)) => Some(s),
                    _ => bail!("{at}: key {name} defaults to {text}, which is not a string"),
                },
            };
            Ok(((*name).to_owned(), default))
        })
        .collect()
}

/// `io.k8s.api.core.v1.PodSpec` → `CORE_V1_POD_SPEC`: the group's last
/// segment, the version, and the type in upper snake case.
fn static_name(definition: &str) -> String {
    let segments: Vec<&str> = definition.split('.').collect();
    let n = segments.len();
    let mut out = String::new();
    for segment in &segments[n.saturating_sub(3)..n.saturating_sub(1)] {
        out.push_str(&segment.replace('-', "_").to_uppercase());
        out.push('_');
    }
    let name: Vec<char> = segments[n - 1].chars().collect();
    for (i, &c) in name.iter().enumerate() {
        let boundary = i > 0
            && c.is_ascii_uppercase()
            && (!name[i - 1].is_ascii_uppercase() || name.get(i + 1).is_some_and(char::is_ascii_lowercase));
        if boundary {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}
