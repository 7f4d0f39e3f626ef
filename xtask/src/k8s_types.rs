//! The Kubernetes API types as two crates generated upstream from the same
//! Go types declare them, read for the xtask generators
//! ([`crate::protobuf_schema`], [`crate::patch_schema`]).
//!
//! k8s-pb's prost structs give each message's fields, tags and wire types,
//! and keep the Go comment markers (`+patchStrategy=merge`,
//! `+listType=map`, `+structType=atomic`, …) in their doc comments;
//! k8s-openapi's serde code gives each field's JSON name (prost's
//! snake_case loses it: `pod_ip` is `podIP`). A type is matched by its module
//! and its name without regard to case (prost writes
//! `AwsElasticBlockStoreVolumeSource` for `AWSElasticBlockStoreVolumeSource`),
//! a field by its Rust name or else by its letters. k8s-openapi's newest
//! Kubernetes version wins, older ones fill in fields since removed. Both
//! crates are found through `cargo metadata`, at the versions the workspace
//! locks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The source directories of the two crates, from `cargo metadata`.
pub struct Sources {
    pub k8s_pb: PathBuf,
    pub k8s_pb_version: String,
    pub k8s_openapi: PathBuf,
    pub k8s_openapi_version: String,
}

impl Sources {
    pub fn locate(root: &Path) -> Result<Self> {
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
pub struct PbMessage {
    /// The prost struct name.
    pub name: String,
    pub fields: Vec<PbField>,
    /// The Go comment markers of the type, without their `+`
    /// (`structType=atomic`).
    pub markers: Vec<String>,
}

#[derive(Debug)]
pub struct PbField {
    pub tag: u32,
    /// The Rust field name without `r#`.
    pub name: String,
    /// `One`, `Repeated` or `Map` (of strings to `ty`).
    pub card: &'static str,
    /// A scalar (`String`, `Int32`, …) or `Msg` with `message` set.
    pub ty: &'static str,
    /// For `Msg`: the message's (package, struct name).
    pub message: Option<(String, String)>,
    /// The Go comment markers of the field, without their `+`, in order
    /// (`patchMergeKey=type`, `listMapKey=name`).
    pub markers: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Pb {
    pub messages: BTreeMap<(String, String), PbMessage>,
    /// (apiVersion, kind) → (package, struct name).
    pub kinds: BTreeMap<(String, String), (String, String)>,
}

/// Reads every `mod.rs` under k8s-pb's `src`.
pub fn read_k8s_pb(src: &Path) -> Result<Pb> {
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
    // The markers of the doc comment above the current line.
    let mut markers: Vec<String> = Vec::new();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if let Some(doc) = trimmed.strip_prefix("///") {
            if let Some(marker) = doc.trim().strip_prefix('+') {
                markers.push(marker.trim().to_owned());
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let name = rest.trim_end_matches(['{', '}', ' ']).to_owned();
            let message = PbMessage {
                name,
                fields: Vec::new(),
                markers: std::mem::take(&mut markers),
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
                let mut field = parse_pb_field(module, attr, &declaration)?;
                field.markers = std::mem::take(&mut markers);
                message.fields.push(field);
                attribute = None;
            }
        }
        // Markers belong to the item right below them, past its attributes.
        if !trimmed.starts_with("#[") {
            markers.clear();
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
        markers: Vec::new(),
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
pub type OpenApiNames = BTreeMap<String, (String, BTreeMap<String, String>)>;

/// Reads every Kubernetes version directory (`v1_33`, …) of k8s-openapi, the
/// newest first.
pub fn read_k8s_openapi(src: &Path) -> Result<OpenApiNames> {
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

/// The messages reachable from some roots, with their definition names and
/// their fields' JSON names.
pub struct Model<'a> {
    pb: &'a Pb,
    /// (canonical definition name, message), sorted by name: k8s-openapi's
    /// spelling of the definition, else k8s-pb's package and struct name.
    pub order: Vec<(String, (String, String))>,
    index: BTreeMap<(String, String), usize>,
    /// Rust field → JSON name, per message: its k8s-openapi definition's or,
    /// for a type Go embeds inline, those of its embedder.
    names_of: BTreeMap<(String, String), &'a BTreeMap<String, String>>,
    /// (message, tag) of the fields that embed another message inline.
    inline: BTreeSet<((String, String), u32)>,
}

/// What a field of a message is called in JSON.
pub enum JsonName {
    /// k8s-openapi's name.
    Known(String),
    /// No JSON name of its own: Go embeds the message inline, and JSON
    /// flattens its fields into the embedder's (ProbeHandler in Probe).
    Inline,
    /// Not in k8s-openapi: the prost name in lower camel case.
    Guessed(String),
}

impl<'a> Model<'a> {
    /// Every message reachable from `roots`.
    pub fn new<'r>(
        pb: &'a Pb,
        names: &'a OpenApiNames,
        roots: impl IntoIterator<Item = &'r (String, String)>,
    ) -> Result<Self> {
        let mut reachable = BTreeSet::new();
        let mut queue: VecDeque<&(String, String)> = roots.into_iter().collect();
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
        let mut order: Vec<(String, (String, String))> = reachable.into_iter().map(|k| (canonical(&k), k)).collect();
        order.sort();
        let index = order.iter().enumerate().map(|(i, (_, k))| (k.clone(), i)).collect();

        // Protobuf gives an embedded struct a field of its own; JSON flattens
        // it into the embedder.
        let mut names_of: BTreeMap<(String, String), &BTreeMap<String, String>> = order
            .iter()
            .filter_map(|(name, key)| Some((key.clone(), &names.get(&name.to_lowercase())?.1)))
            .collect();
        let mut inline: BTreeSet<((String, String), u32)> = BTreeSet::new();
        loop {
            let mut found = Vec::new();
            for (key, names) in &names_of {
                let message = pb.messages.get(key).context("message vanished")?;
                for field in &message.fields {
                    let Some(child) = &field.message else { continue };
                    if json_name(names, &field.name).is_none()
                        && !inline.contains(&(key.clone(), field.tag))
                        && flattens_into(pb, child, names, 0)
                    {
                        found.push((key.clone(), field.tag, child.clone(), *names));
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
        Ok(Self {
            pb,
            order,
            index,
            names_of,
            inline,
        })
    }

    /// The position of `key` in [`Model::order`].
    pub fn index_of(&self, key: &(String, String)) -> Result<usize> {
        self.index
            .get(key)
            .copied()
            .with_context(|| format!("{}.{} is not reachable", key.0, key.1))
    }

    /// The message k8s-pb declares for `key`.
    pub fn message(&self, key: &(String, String)) -> Result<&'a PbMessage> {
        self.pb
            .messages
            .get(key)
            .with_context(|| format!("k8s-pb has no {}.{}", key.0, key.1))
    }

    /// Whether k8s-openapi knows the JSON names of `key`'s fields.
    pub fn has_names(&self, key: &(String, String)) -> bool {
        self.names_of.contains_key(key)
    }

    /// The JSON name of `field` of the message `key`.
    pub fn json_name(&self, key: &(String, String), field: &PbField) -> JsonName {
        if self.inline.contains(&(key.clone(), field.tag)) {
            return JsonName::Inline;
        }
        match self.names_of.get(key).and_then(|names| json_name(names, &field.name)) {
            Some(json) => JsonName::Known(json),
            None => JsonName::Guessed(lower_camel(&field.name)),
        }
    }
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
