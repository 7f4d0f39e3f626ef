//! `cargo xtask gen-protobuf-schema`: writes `api/src/protobuf/schema.rs`,
//! the table that drives the API server's protobuf decoder.
//!
//! Two sources, read by [`crate::k8s_types`]: k8s-pb's prost structs give
//! each message's tags and wire types, and k8s-openapi's serde code gives
//! each field's JSON name.
//!
//! The table holds every message reachable from the kinds clients send as
//! bodies: each type k8s-pb implements `Resource` for, and [`EXTRA_KINDS`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::k8s_types::{JsonName, Model, OpenApiNames, Pb, PbMessage, Sources, read_k8s_openapi, read_k8s_pb};

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
        let model = Model::new(pb, names, roots.values())?;
        if model.order.len() > usize::from(u16::MAX) {
            bail!("{} messages do not fit the decoder's u16 indices", model.order.len());
        }

        let mut guessed = Vec::new();
        let mut messages = Vec::new();
        for (name, key) in &model.order {
            let pb_message = pb.messages.get(key).context("message vanished")?;
            let form = form_of(name, pb_message)?;
            let mut fields = Vec::new();
            for field in &pb_message.fields {
                let (card, json) = match model.json_name(key, field) {
                    JsonName::Inline => ("Inline", String::new()),
                    JsonName::Known(json) => (field.card, json),
                    JsonName::Guessed(json) => {
                        if form == "Object" {
                            guessed.push(format!("{name}.{}", field.name));
                        }
                        (field.card, json)
                    }
                };
                let message = match &field.message {
                    Some(key) => Some(model.index_of(key)?),
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
            .map(|((api_version, kind), key)| Ok((api_version.clone(), kind.clone(), model.index_of(key)?)))
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
