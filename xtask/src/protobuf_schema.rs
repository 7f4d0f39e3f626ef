//! `cargo xtask gen-protobuf-schema`: writes `api/src/protobuf/schema.rs`,
//! the table that drives the API server's protobuf decoder.
//!
//! Two sources, both generated upstream from the same Kubernetes Go types:
//! k8s-pb's prost structs give each message's tags and wire types, and
//! k8s-openapi's serde code gives each field's JSON name (prost's snake_case
//! loses it: `pod_ip` is `podIP`). A type is matched by its module and its
//! name without regard to case (prost writes `AwsElasticBlockStoreVolumeSource`
//! for `AWSElasticBlockStoreVolumeSource`), a field by its Rust name or else
//! by its letters. k8s-openapi's newest Kubernetes version wins, older ones
//! fill in fields since removed.
//!
//! The table holds every message reachable from the kinds clients send as
//! bodies: each type k8s-pb implements `Resource` for, and [`EXTRA_KINDS`].
//! Both crates are found through `cargo metadata`, at the versions the
//! workspace locks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Where the table goes, relative to the workspace root.
const OUTPUT: &str = "api/src/protobuf/schema.rs";

/// Request bodies that are not resources k8s-pb implements `Resource` for:
/// subresources, and DeleteOptions (found under any apiVersion).
const EXTRA_KINDS: &[(&str, &str, &str)] = &[
    (
        "authentication.k8s.io/v1",
        "TokenRequest",
        "io.k8s.api.authentication.v1.TokenRequest",
    ),
    ("autoscaling/v1", "Scale", "io.k8s.api.autoscaling.v1.Scale"),
    (
        "meta.k8s.io/v1",
        "DeleteOptions",
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    ),
    ("policy/v1", "Eviction", "io.k8s.api.policy.v1.Eviction"),
];

/// A type whose JSON is not an object of its fields.
struct SpecialForm {
    /// Compared without regard to case; a `*` matches any API group and version.
    pattern: &'static str,
    /// The decoder's `Form` variant.
    form: &'static str,
    /// The fields (tag, prost name) the decoder relies on.
    fields: &'static [(u32, &'static str)],
}

const FORMS: &[SpecialForm] = &[
    SpecialForm {
        pattern: "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
        form: "Time",
        fields: &[(1, "seconds"), (2, "nanos")],
    },
    SpecialForm {
        pattern: "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
        form: "MicroTime",
        fields: &[(1, "seconds"), (2, "nanos")],
    },
    SpecialForm {
        pattern: "io.k8s.apimachinery.pkg.api.resource.Quantity",
        form: "Quantity",
        fields: &[(1, "string")],
    },
    SpecialForm {
        pattern: "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        form: "IntOrString",
        fields: &[(1, "type"), (2, "int_val"), (3, "str_val")],
    },
    SpecialForm {
        pattern: "io.k8s.apimachinery.pkg.runtime.RawExtension",
        form: "RawJson",
        fields: &[(1, "raw")],
    },
    SpecialForm {
        pattern: "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
        form: "RawJson",
        fields: &[(1, "raw")],
    },
    SpecialForm {
        pattern: "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.*.JSON",
        form: "RawJson",
        fields: &[(1, "raw")],
    },
    SpecialForm {
        pattern: "io.k8s.apimachinery.pkg.apis.meta.v1.Verbs",
        form: "StringList",
        fields: &[(1, "items")],
    },
    SpecialForm {
        pattern: "io.k8s.api.*.ExtraValue",
        form: "StringList",
        fields: &[(1, "items")],
    },
    SpecialForm {
        pattern: "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.*.JSONSchemaPropsOrBool",
        form: "SchemaOrBool",
        fields: &[(1, "allows"), (2, "schema")],
    },
    SpecialForm {
        pattern: "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.*.JSONSchemaPropsOrArray",
        form: "SchemaOrArray",
        fields: &[(1, "schema"), (2, "j_son_schemas")],
    },
    SpecialForm {
        pattern: "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.*.JSONSchemaPropsOrStringArray",
        form: "SchemaOrStringArray",
        fields: &[(1, "schema"), (2, "property")],
    },
];

pub fn run() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent directory")?
        .to_path_buf();
    let sources = Sources::locate(&root)?;
    let pb = read_k8s_pb(&sources.k8s_pb.join("src"))?;
    let names = read_k8s_openapi(&sources.k8s_openapi.join("src"))?;
    let table = Table::build(&pb, &names)?;
    let out = root.join(OUTPUT);
    fs::write(&out, table.render(&sources)).with_context(|| format!("cannot write {}", out.display()))?;
    let status = Command::new("rustfmt")
        .args(["--edition", "2024"])
        .arg(&out)
        .status()
        .context("cannot run rustfmt")?;
    if !status.success() {
        bail!("rustfmt {} failed with {status}", out.display());
    }
    println!(
        "wrote {}: {} kinds, {} messages, {} fields",
        out.display(),
        table.kinds.len(),
        table.messages.len(),
        table.messages.iter().map(|m| m.fields.len()).sum::<usize>()
    );
    if !table.guessed.is_empty() {
        println!(
            "JSON names guessed (no k8s-openapi field): {}",
            table.guessed.join(", ")
        );
    }
    Ok(())
}

/// The source directories of the two crates, from `cargo metadata`.
struct Sources {
    k8s_pb: PathBuf,
    k8s_pb_version: String,
    k8s_openapi: PathBuf,
    k8s_openapi_version: String,
}

impl Sources {
    fn locate(root: &Path) -> Result<Self> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .args(["metadata", "--format-version", "1"])
            .current_dir(root)
            .output()
            .context("cannot run cargo metadata")?;
        if !output.status.success() {
            bail!("cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let metadata: serde_json::Value =
            serde_json::from_slice(&output.stdout).context("cargo metadata printed invalid JSON")?;
        let package = |name: &str| -> Result<(PathBuf, String)> {
            let packages = metadata["packages"]
                .as_array()
                .context("cargo metadata lists no packages")?;
            let mut found = packages.iter().filter(|p| p["name"] == name);
            let package = found
                .next()
                .with_context(|| format!("no package {name} in the workspace"))?;
            if found.next().is_some() {
                bail!("several versions of {name} in the workspace; which one?");
            }
            let manifest = package["manifest_path"]
                .as_str()
                .context("package without manifest_path")?;
            let dir = Path::new(manifest)
                .parent()
                .context("manifest_path without a directory")?;
            Ok((dir.to_path_buf(), package["version"].as_str().unwrap_or("?").to_owned()))
        };
        let (k8s_pb, k8s_pb_version) = package("k8s-pb")?;
        let (k8s_openapi, k8s_openapi_version) = package("k8s-openapi")?;
        Ok(Self {
            k8s_pb,
            k8s_pb_version,
            k8s_openapi,
            k8s_openapi_version,
        })
    }
}

/// A message as k8s-pb declares it.
#[derive(Debug)]
struct PbMessage {
    /// The prost struct name.
    name: String,
    fields: Vec<PbField>,
}

#[derive(Debug)]
struct PbField {
    tag: u32,
    /// The Rust field name without `r#`.
    name: String,
    card: &'static str,
    /// A scalar (`String`, `Int32`, …) or `Msg` with `message` set.
    ty: &'static str,
    /// For `Msg`: the message's (package, struct name).
    message: Option<(String, String)>,
}

#[derive(Debug, Default)]
struct Pb {
    messages: BTreeMap<(String, String), PbMessage>,
    /// (apiVersion, kind) → (package, struct name).
    kinds: BTreeMap<(String, String), (String, String)>,
}

/// Reads every `mod.rs` under k8s-pb's `src`.
fn read_k8s_pb(src: &Path) -> Result<Pb> {
    let mut pb = Pb::default();
    for file in rust_files(src)? {
        let Some(dir) = file.parent().and_then(|d| d.strip_prefix(src).ok()) else {
            continue;
        };
        if file.file_name().is_none_or(|n| n != "mod.rs") || dir.as_os_str().is_empty() {
            continue;
        }
        let module: Vec<String> = dir.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        let text = fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        parse_pb_module(&module, &text, &mut pb).with_context(|| format!("in {}", file.display()))?;
    }
    Ok(pb)
}

fn package_of(module: &[String]) -> String {
    let mut package = String::from("io.k8s");
    for (i, segment) in module.iter().enumerate() {
        package.push('.');
        // Go's module names: `apiextensions-apiserver`, `kube-aggregator`.
        package.push_str(&if i == 0 {
            segment.replace('_', "-")
        } else {
            segment.clone()
        });
    }
    package
}

fn parse_pb_module(module: &[String], text: &str, pb: &mut Pb) -> Result<()> {
    let package = package_of(module);
    let mut lines = text.lines();
    let mut current: Option<PbMessage> = None;
    let mut attribute: Option<String> = None;
    let mut resource: Option<(String, Option<String>, Option<String>)> = None;
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let name = rest.trim_end_matches(['{', '}', ' ']).to_owned();
            let message = PbMessage {
                name,
                fields: Vec::new(),
            };
            if rest.ends_with("{}") {
                pb.messages.insert((package.clone(), message.name.clone()), message);
            } else {
                current = Some(message);
            }
        } else if let Some(rest) = line.strip_prefix("impl crate::Resource for ") {
            resource = Some((rest.trim_end_matches([' ', '{']).to_owned(), None, None));
        } else if line == "}" {
            if let Some(message) = current.take() {
                pb.messages.insert((package.clone(), message.name.clone()), message);
            }
            if let Some((name, Some(api_version), Some(kind))) = resource.take() {
                pb.kinds.insert((api_version, kind), (package.clone(), name));
            }
        } else if let Some((_, api_version, kind)) = resource.as_mut() {
            if let Some(value) = const_str(trimmed, "API_VERSION") {
                *api_version = Some(value);
            } else if let Some(value) = const_str(trimmed, "KIND") {
                *kind = Some(value);
            }
        } else if let Some(message) = current.as_mut() {
            if trimmed.starts_with("#[prost(") {
                attribute = Some(trimmed.to_owned());
            } else if let (Some(attr), Some(declaration)) = (&attribute, trimmed.strip_prefix("pub ")) {
                // The declaration runs on until its type's brackets close.
                let mut declaration = declaration.to_owned();
                while !(declaration.ends_with(',') && balanced(&declaration)) {
                    let next = lines.next().context("file ends inside a field")?;
                    declaration.push_str(next.trim());
                }
                message.fields.push(parse_pb_field(module, attr, &declaration)?);
                attribute = None;
            }
        }
    }
    Ok(())
}

/// `const KIND: &'static str = "Pod";` → `Pod`.
fn const_str(line: &str, name: &str) -> Option<String> {
    let rest = line.strip_prefix("const ")?.strip_prefix(name)?.strip_prefix(':')?;
    let value = rest.split_once('=')?.1.trim().strip_suffix(';')?;
    Some(value.trim_matches('"').to_owned())
}

fn balanced(text: &str) -> bool {
    text.matches('<').count() == text.matches('>').count()
}

/// One field from its `#[prost(…)]` attribute and `name: Type,` declaration.
fn parse_pb_field(module: &[String], attribute: &str, declaration: &str) -> Result<PbField> {
    let inner = attribute
        .strip_prefix("#[prost(")
        .and_then(|a| a.strip_suffix(")]"))
        .with_context(|| format!("unexpected attribute {attribute}"))?;
    let (name, rust_type) = declaration
        .split_once(':')
        .with_context(|| format!("no type in {declaration}"))?;
    let name = name.trim().trim_start_matches("r#").to_owned();
    let rust_type: String = rust_type
        .trim_end_matches(',')
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let items = split_attribute(inner);
    let mut tag = None;
    let mut card = "One";
    let mut kind = None;
    for (key, value) in &items {
        match (key.as_str(), value.as_deref()) {
            ("tag", Some(value)) => tag = Some(value.parse::<u32>().context("tag is not a number")?),
            ("repeated", None) => card = "Repeated",
            ("btree_map" | "hash_map" | "map", Some(types)) => {
                card = "Map";
                let (key_type, value_type) = types.split_once(',').context("map without a value type")?;
                if key_type.trim() != "string" {
                    bail!("field {name}: map keys other than strings are not supported");
                }
                kind = Some(value_type.trim().to_owned());
            }
            ("optional" | "boxed" | "packed" | "required", _) => {}
            (other, _) if kind.is_none() => kind = Some(other.to_owned()),
            (other, _) => bail!("field {name}: unexpected prost attribute item {other}"),
        }
    }
    let tag = tag.with_context(|| format!("field {name} has no tag"))?;
    let kind = kind.with_context(|| format!("field {name} has no type"))?;
    let ty = match kind.as_str() {
        "string" => "String",
        "bytes" => "Bytes",
        "bool" => "Bool",
        "int32" => "Int32",
        "int64" => "Int64",
        "double" => "Double",
        "message" => "Msg",
        other => bail!("field {name}: protobuf type {other} is not supported; extend the decoder's Type"),
    };
    let message = if ty == "Msg" {
        let path = if card == "Map" {
            map_value_type(&rust_type)?
        } else {
            innermost_type(&rust_type)
        };
        Some(resolve(module, path)?)
    } else {
        None
    };
    Ok(PbField {
        tag,
        name,
        card,
        ty,
        message,
    })
}

/// `message, optional, tag = "1"` → [(message, None), (optional, None), (tag, Some(1))].
fn split_attribute(inner: &str) -> Vec<(String, Option<String>)> {
    let mut items = Vec::new();
    let mut item = String::new();
    let mut quoted = false;
    for c in inner.chars().chain([',']) {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                let (key, value) = match item.split_once('=') {
                    Some((key, value)) => (key.trim().to_owned(), Some(value.trim().to_owned())),
                    None => (item.trim().to_owned(), None),
                };
                if !key.is_empty() {
                    items.push((key, value));
                }
                item.clear();
            }
            c => item.push(c),
        }
    }
    items
}

/// `Option<Box<a::B>>` → `a::B`.
fn innermost_type(rust_type: &str) -> &str {
    let mut ty = rust_type;
    while let (Some(open), Some(close)) = (ty.find('<'), ty.rfind('>')) {
        if close < open {
            break;
        }
        ty = &ty[open + 1..close];
    }
    // rustfmt leaves a trailing comma where it wraps a generic argument.
    ty.trim_end_matches(',')
}

/// `BTreeMap<String, a::B>` → `a::B`.
fn map_value_type(rust_type: &str) -> Result<&str> {
    let open = rust_type.find('<').context("map type without <")?;
    let close = rust_type.rfind('>').context("map type without >")?;
    let args = rust_type.get(open + 1..close).context("malformed map type")?;
    let mut depth = 0usize;
    for (i, c) in args.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => return Ok(innermost_type(&args[i + 1..])),
            _ => {}
        }
    }
    bail!("map type {rust_type} has no value type")
}

/// A Rust path as written in `module` → (package, struct name).
fn resolve(module: &[String], path: &str) -> Result<(String, String)> {
    let mut segments: Vec<&str> = path.split("::").collect();
    let name = segments.pop().context("empty type path")?.to_owned();
    let mut base: Vec<String> = module.to_vec();
    let mut rest = segments.as_slice();
    if let Some(("crate", tail)) = rest.split_first().map(|(first, tail)| (*first, tail)) {
        base.clear();
        rest = tail;
    }
    while let Some(("super", tail)) = rest.split_first().map(|(first, tail)| (*first, tail)) {
        base.pop()
            .with_context(|| format!("{path} climbs above the crate root"))?;
        rest = tail;
    }
    if rest.first().is_some_and(|s| s.is_empty()) {
        bail!("{path} is not a k8s-pb type");
    }
    base.extend(rest.iter().map(|s| (*s).to_owned()));
    Ok((package_of(&base), name))
}

/// JSON names from k8s-openapi: definition (lowercase, e.g.
/// `io.k8s.api.core.v1.podip`) → (canonical definition name, Rust field → JSON name).
type OpenApiNames = BTreeMap<String, (String, BTreeMap<String, String>)>;

/// Reads every Kubernetes version directory (`v1_33`, …) of k8s-openapi, the
/// newest first.
fn read_k8s_openapi(src: &Path) -> Result<OpenApiNames> {
    let mut versions = Vec::new();
    for entry in fs::read_dir(src).with_context(|| format!("cannot list {}", src.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((major, minor)) = name.strip_prefix('v').and_then(|v| v.split_once('_')) else {
            continue;
        };
        if let (Ok(major), Ok(minor)) = (major.parse::<u32>(), minor.parse::<u32>()) {
            versions.push(((major, minor), path));
        }
    }
    if versions.is_empty() {
        bail!("no Kubernetes version directories in {}", src.display());
    }
    versions.sort();
    let mut names = OpenApiNames::new();
    for (_, dir) in versions.iter().rev() {
        for file in rust_files(dir)? {
            let text = fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let Some(definition) = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("// Generated from definition "))
            else {
                continue;
            };
            let definition = definition.trim();
            let (_, fields) = names
                .entry(definition.to_lowercase())
                .or_insert_with(|| (definition.to_owned(), BTreeMap::new()));
            for line in text.lines() {
                // `"podIP" => Field::Key_pod_ip,` in the Deserialize impl.
                let Some((json, rust)) = line.trim().split_once(" => Field::Key_") else {
                    continue;
                };
                let (Some(json), Some(rust)) = (
                    json.strip_prefix('"').and_then(|j| j.strip_suffix('"')),
                    rust.strip_suffix(','),
                ) else {
                    continue;
                };
                fields.entry(rust.to_owned()).or_insert_with(|| json.to_owned());
            }
        }
    }
    Ok(names)
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The table as written: messages sorted by name, referring to each other by
/// index.
struct Table {
    kinds: Vec<(String, String, usize)>,
    messages: Vec<Message>,
    guessed: Vec<String>,
}

struct Message {
    name: String,
    form: &'static str,
    fields: Vec<Field>,
}

struct Field {
    tag: u32,
    json: String,
    card: &'static str,
    ty: &'static str,
    message: Option<usize>,
}

impl Table {
    fn build(pb: &Pb, names: &OpenApiNames) -> Result<Self> {
        let mut roots: BTreeMap<(String, String), (String, String)> = pb.kinds.clone();
        for (api_version, kind, definition) in EXTRA_KINDS {
            let (package, name) = definition.rsplit_once('.').context("definition without a package")?;
            let key = pb
                .messages
                .keys()
                .find(|(p, n)| p == package && n.eq_ignore_ascii_case(name))
                .with_context(|| format!("k8s-pb has no {definition}"))?;
            roots.insert(((*api_version).to_owned(), (*kind).to_owned()), key.clone());
        }

        // Every message reachable from the roots.
        let mut reachable = BTreeSet::new();
        let mut queue: VecDeque<&(String, String)> = roots.values().collect();
        while let Some(key) = queue.pop_front() {
            if !reachable.insert(key.clone()) {
                continue;
            }
            let message = pb
                .messages
                .get(key)
                .with_context(|| format!("k8s-pb has no {}.{}", key.0, key.1))?;
            queue.extend(message.fields.iter().filter_map(|f| f.message.as_ref()));
        }

        let canonical = |(package, name): &(String, String)| -> String {
            let pb_name = format!("{package}.{name}");
            names
                .get(&pb_name.to_lowercase())
                .map_or(pb_name, |(definition, _)| definition.clone())
        };
        let mut order: Vec<(String, &(String, String))> = reachable.iter().map(|k| (canonical(k), k)).collect();
        order.sort();
        let index: BTreeMap<&(String, String), usize> = order.iter().enumerate().map(|(i, (_, k))| (*k, i)).collect();
        if order.len() > usize::from(u16::MAX) {
            bail!("{} messages do not fit the decoder's u16 indices", order.len());
        }

        // JSON names per message: its k8s-openapi definition's or, for a type
        // Go embeds inline (ProbeHandler in Probe), those of its embedder.
        // Protobuf gives an embedded struct a field of its own; JSON flattens
        // it into the embedder.
        let mut names_of: BTreeMap<&(String, String), &BTreeMap<String, String>> = order
            .iter()
            .filter_map(|(name, key)| Some((*key, &names.get(&name.to_lowercase())?.1)))
            .collect();
        let mut inline: BTreeSet<(&(String, String), u32)> = BTreeSet::new();
        loop {
            let mut found = Vec::new();
            for (key, names) in &names_of {
                let message = pb.messages.get(*key).context("message vanished")?;
                for field in &message.fields {
                    let Some(child) = &field.message else { continue };
                    if json_name(names, &field.name).is_none()
                        && !inline.contains(&(*key, field.tag))
                        && flattens_into(pb, child, names, 0)
                    {
                        found.push((*key, field.tag, child, *names));
                    }
                }
            }
            if found.is_empty() {
                break;
            }
            for (key, tag, child, names) in found {
                inline.insert((key, tag));
                names_of.entry(child).or_insert(names);
            }
        }

        let mut guessed = Vec::new();
        let mut messages = Vec::new();
        for (name, key) in &order {
            let pb_message = pb.messages.get(*key).context("message vanished")?;
            let form = form_of(name, pb_message)?;
            let json_names = names_of.get(*key);
            let mut fields = Vec::new();
            for field in &pb_message.fields {
                let card = if inline.contains(&(*key, field.tag)) {
                    "Inline"
                } else {
                    field.card
                };
                let json = match json_names.and_then(|names| json_name(names, &field.name)) {
                    _ if card == "Inline" => String::new(),
                    Some(json) => json,
                    None => {
                        if form == "Object" {
                            guessed.push(format!("{name}.{}", field.name));
                        }
                        lower_camel(&field.name)
                    }
                };
                let message = match &field.message {
                    Some(key) => Some(*index.get(key).context("unindexed message")?),
                    None => None,
                };
                fields.push(Field {
                    tag: field.tag,
                    json,
                    card,
                    ty: field.ty,
                    message,
                });
            }
            fields.sort_by_key(|f| f.tag);
            if fields.windows(2).any(|w| w[0].tag == w[1].tag) {
                bail!("{name} has two fields with one tag");
            }
            messages.push(Message {
                name: name.clone(),
                form,
                fields,
            });
        }
        let kinds = roots
            .iter()
            .map(|((api_version, kind), key)| {
                Ok((
                    api_version.clone(),
                    kind.clone(),
                    *index.get(key).context("unindexed kind")?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            kinds,
            messages,
            guessed,
        })
    }

    fn render(&self, sources: &Sources) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "// @generated by `cargo xtask gen-protobuf-schema` from k8s-pb and k8s-openapi; do not edit.\n\
             //! The protobuf schema of the Kubernetes kinds skiff decodes, from k8s-pb {} (tags, wire types)\n\
             //! and k8s-openapi {} (JSON names). See the parent module for how it is read.\n\n\
             use super::{{Field as F, Form::*, Message as M, Type as T}};\n",
            sources.k8s_pb_version, sources.k8s_openapi_version
        );
        let _ = writeln!(out, "/// (apiVersion, kind, message index), sorted.");
        let _ = writeln!(out, "pub(super) static KINDS: &[(&str, &str, u16)] = &[");
        for (api_version, kind, index) in &self.kinds {
            let _ = writeln!(out, "({api_version:?}, {kind:?}, {index}),");
        }
        let _ = writeln!(out, "];\n\n/// Every message reachable from [`KINDS`], sorted by name.");
        let _ = writeln!(out, "pub(super) static MESSAGES: &[M] = &[");
        for (i, message) in self.messages.iter().enumerate() {
            let _ = writeln!(
                out,
                "// {i}\nM {{ name: {:?}, form: {}, fields: &[",
                message.name, message.form
            );
            for field in &message.fields {
                let constructor = match field.card {
                    "Repeated" => "rep",
                    "Map" => "map",
                    "Inline" => "inline",
                    _ => "one",
                };
                let _ = match field.message {
                    Some(index) if field.card == "Inline" => {
                        let short = self.messages[index].name.rsplit('.').next().unwrap_or_default();
                        writeln!(out, "F::inline({}, T::Msg({index})), // {short}", field.tag)
                    }
                    Some(index) => {
                        let short = self.messages[index].name.rsplit('.').next().unwrap_or_default();
                        writeln!(
                            out,
                            "F::{constructor}({}, {:?}, T::Msg({index})), // {short}",
                            field.tag, field.json
                        )
                    }
                    None => writeln!(
                        out,
                        "F::{constructor}({}, {:?}, T::{}),",
                        field.tag, field.json, field.ty
                    ),
                };
            }
            let _ = writeln!(out, "] }},");
        }
        let _ = writeln!(out, "];");
        out
    }
}

/// The decoder's `Form` for a message, checked against the fields it
/// expects.
fn form_of(name: &str, message: &PbMessage) -> Result<&'static str> {
    let Some(SpecialForm {
        form, fields: expected, ..
    }) = FORMS.iter().find(|f| matches_pattern(f.pattern, name))
    else {
        return Ok("Object");
    };
    for (tag, field_name) in *expected {
        if !message.fields.iter().any(|f| f.tag == *tag && f.name == *field_name) {
            bail!("{name}: expected field {field_name} = {tag}; the decoder's Form::{form} needs updating");
        }
    }
    Ok(form)
}

/// Whether every field of `message` (or of the messages it embeds in turn)
/// has a JSON name in `names`: whether `message` is embedded inline in the
/// type `names` belongs to.
fn flattens_into(pb: &Pb, message: &(String, String), names: &BTreeMap<String, String>, depth: usize) -> bool {
    let Some(message) = pb.messages.get(message) else {
        return false;
    };
    depth < 8
        && !message.fields.is_empty()
        && message.fields.iter().all(|field| {
            json_name(names, &field.name).is_some()
                || field
                    .message
                    .as_ref()
                    .is_some_and(|child| flattens_into(pb, child, names, depth + 1))
        })
}

/// `a.*.B` matches `a.x.y.B`: `*` stands for one or more segments.
fn matches_pattern(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.to_lowercase(), name.to_lowercase());
    match pattern.split_once('*') {
        None => pattern == name,
        Some((prefix, suffix)) => {
            name.len() > prefix.len() + suffix.len() && name.starts_with(prefix) && name.ends_with(suffix)
        }
    }
}

/// The JSON name of a prost field: k8s-openapi's field of the same Rust
/// name, else the one whose JSON name has the same letters (`$ref` for
/// `r#ref`, `x-kubernetes-list-type` for `x_kubernetes_list_type`).
fn json_name(names: &BTreeMap<String, String>, field: &str) -> Option<String> {
    if let Some(json) = names.get(field) {
        return Some(json.clone());
    }
    let letters = |s: &str| {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect::<String>()
    };
    let wanted = letters(field);
    let mut candidates = names.values().filter(|json| letters(json) == wanted);
    let json = candidates.next()?;
    candidates.next().is_none().then(|| json.clone())
}

/// `pod_ip` → `podIp`: only for fields k8s-openapi does not know.
fn lower_camel(field: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}
