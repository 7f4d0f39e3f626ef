//! CertificateSigningRequests (`certificates.k8s.io/v1`): a client asks a
//! signer for a certificate, someone approves or denies, the signer
//! issues. Node agents join this way (see `skiff agent`).
//!
//! As kube-apiserver's CSR strategy:
//!
//! * On create, `spec.username`, `uid`, `groups` and `extra` are set from
//!   the user creating the request, whatever the client sent, and `status`
//!   starts empty (no one creates a request already approved).
//! * `spec` never changes after create; a write of the object itself
//!   changes metadata only.
//! * `/status` writes `status` but the Approved and Denied conditions,
//!   which it keeps as stored; `/approval` writes `status.conditions` only.
//!   Both fill in the conditions' missing timestamps.
//! * Validation: `spec.request` a PEM `CERTIFICATE REQUEST` whose
//!   signature verifies, `signerName` a `domain/path`, `usages` given,
//!   known and without duplicates, `expirationSeconds` at least 600;
//!   Approved, Denied and Failed conditions only `True`, Approved and
//!   Denied exclusive, no condition type twice, none of the three removed
//!   once present; `status.certificate` PEM certificates, set once.
//!
//! Who may approve and who may issue is admission's business
//! (`crate::auth::builtin`): `approve` or `sign` on the signer.
//!
//! One deviation: a `/status` write that adds or removes an Approved or
//! Denied condition has that change dropped, where Kubernetes 1.19 and
//! later answer 422. The registry writes an approval as a status write
//! (see [`WriteOptions::approval`]), and validation cannot tell the two
//! apart.

use serde_json::{Value, json};
use skiff_auth::csr;

use super::{BuiltinKind, KindOps, Printer, Typed};
use crate::error::Cause;
use crate::meta::NameRule;
use crate::options::{Part, WriteOptions};
use crate::patch::schema;
use crate::printer::{AGE, Column, NAME, NANOS, age, col, human_duration, list_at, name, str_at};

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::certificates::v1::CertificateSigningRequest>(),
    ops: KindOps {
        // Kubernetes does not care what requests are called.
        name_rule: NameRule::PathSegment,
        create_keeps_status: false,
        prepare_for_create,
        prepare_for_update,
        defaults: super::no_defaults,
        validate,
        deletion_grace: super::no_deletion_grace,
        spec_finalizers: false,
        delete_returns_object: false,
        unnamed_propagation: super::Unnamed::Background,
        printer: Printer {
            columns: COLUMNS,
            row,
            conditions: super::no_row_conditions,
        },
        field_label,
        patch: Some(&schema::CERTIFICATES_V1_CERTIFICATE_SIGNING_REQUEST),
    },
};

const APPROVED: &str = "Approved";
const DENIED: &str = "Denied";
const FAILED: &str = "Failed";

/// The requesting user goes into the spec; the status starts empty.
fn prepare_for_create(object: &mut Value, options: &WriteOptions) {
    let user = &options.user;
    let Some(map) = object.as_object_mut() else { return };
    let spec = map.entry("spec").or_insert_with(|| json!({}));
    if let Some(spec) = spec.as_object_mut() {
        for field in ["username", "uid", "groups", "extra"] {
            spec.remove(field);
        }
        spec.insert("username".into(), json!(user.name));
        if !user.uid.is_empty() {
            spec.insert("uid".into(), json!(user.uid));
        }
        if !user.groups.is_empty() {
            spec.insert("groups".into(), json!(user.groups));
        }
        if !user.extra.is_empty() {
            spec.insert("extra".into(), json!(user.extra));
        }
    }
    map.insert("status".into(), json!({}));
}

fn prepare_for_update(next: &mut Value, old: &Value, part: Part, options: &WriteOptions) {
    let Some(map) = next.as_object_mut() else { return };
    match old.get("spec") {
        Some(spec) => map.insert("spec".into(), spec.clone()),
        None => map.remove("spec"),
    };
    if part != Part::Status {
        return;
    }
    let mut conditions = conditions_of(next);
    let stored = conditions_of(old);
    if !options.approval {
        for kind in [APPROVED, DENIED] {
            keep_stored(&mut conditions, &stored, kind);
        }
    }
    fill_timestamps(&mut conditions, &stored, &crate::meta::now_rfc3339());
    let mut status = if options.approval {
        old.get("status").cloned().unwrap_or_else(|| json!({}))
    } else {
        next.get("status").cloned().unwrap_or_else(|| json!({}))
    };
    if let Some(status) = status.as_object_mut() {
        if conditions.is_empty() {
            status.remove("conditions");
        } else {
            status.insert("conditions".into(), Value::Array(conditions));
        }
    }
    if let Some(map) = next.as_object_mut() {
        map.insert("status".into(), status);
    }
}

fn conditions_of(object: &Value) -> Vec<Value> {
    list_at(object, &["status", "conditions"]).to_vec()
}

fn type_of(condition: &Value) -> &str {
    str_at(condition, &["type"]).unwrap_or_default()
}

/// Puts the stored conditions of type `kind` back in `conditions`: in
/// place when there are as many as stored, else at the end instead of
/// whatever the write had.
fn keep_stored(conditions: &mut Vec<Value>, stored: &[Value], kind: &str) {
    let kept: Vec<&Value> = stored.iter().filter(|c| type_of(c) == kind).collect();
    let slots: Vec<usize> = (0..conditions.len())
        .filter(|i| type_of(&conditions[*i]) == kind)
        .collect();
    if slots.len() == kept.len() {
        for (slot, condition) in slots.into_iter().zip(kept) {
            conditions[slot] = condition.clone();
        }
        return;
    }
    conditions.retain(|c| type_of(c) != kind);
    conditions.extend(kept.into_iter().cloned());
}

/// Conditions get `lastUpdateTime` now when they have none, and
/// `lastTransitionTime` from the stored condition of the same type and
/// status, or now.
fn fill_timestamps(conditions: &mut [Value], stored: &[Value], now: &str) {
    for condition in conditions.iter_mut() {
        let transition = stored
            .iter()
            .find(|s| {
                type_of(s) == type_of(condition)
                    && s.get("status") == condition.get("status")
                    && s.get("lastTransitionTime").is_some_and(|t| !t.is_null())
            })
            .and_then(|s| s.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now));
        let Some(map) = condition.as_object_mut() else { continue };
        if map.get("lastUpdateTime").is_none_or(Value::is_null) {
            map.insert("lastUpdateTime".into(), json!(now));
        }
        if map.get("lastTransitionTime").is_none_or(Value::is_null) {
            map.insert("lastTransitionTime".into(), transition);
        }
    }
}

/// `spec.request` decoded from base64: the PEM the client sent.
pub fn request_pem(object: &Value) -> Option<Vec<u8>> {
    use base64::Engine;
    let text = str_at(object, &["spec", "request"])?;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

fn validate(object: &Value, old: Option<(&Value, Part)>, causes: &mut Vec<Cause>) {
    match old {
        // The spec is the stored one, checked when it was created.
        Some(_) => {}
        None => validate_spec(object, causes),
    }
    let stored = old.map(|(old, _)| conditions_of(old)).unwrap_or_default();
    validate_conditions(&conditions_of(object), &stored, causes);
    if let Some((old, _)) = old {
        for kind in [APPROVED, DENIED, FAILED] {
            let count = |list: &[Value]| list.iter().filter(|c| type_of(c) == kind).count();
            if count(&conditions_of(object)) < count(&stored) {
                causes.push(Cause::forbidden(
                    "status.conditions",
                    format!("updates may not remove a condition of type \"{kind}\""),
                ));
            }
        }
        let certificate = |o: &Value| str_at(o, &["status", "certificate"]).unwrap_or_default().to_string();
        if certificate(object) != certificate(old) {
            if !certificate(old).is_empty() {
                causes.push(Cause::forbidden(
                    "status.certificate",
                    "updates may not modify existing certificate content",
                ));
            }
            validate_certificate(object, causes);
        }
    } else {
        validate_certificate(object, causes);
    }
}

fn validate_spec(object: &Value, causes: &mut Vec<Cause>) {
    match request_pem(object) {
        None if str_at(object, &["spec", "request"]).is_some_and(|r| !r.is_empty()) => {
            causes.push(Cause::invalid("spec.request", "<request data>", "not base64"));
        }
        None => causes.push(Cause::required("spec.request")),
        Some(pem) if pem.is_empty() => causes.push(Cause::required("spec.request")),
        Some(pem) => {
            if let Err(error) = csr::Request::parse_pem(&pem) {
                causes.push(Cause::invalid("spec.request", "<request data>", error.to_string()));
            }
        }
    }
    let usages = list_at(object, &["spec", "usages"]);
    if usages.is_empty() {
        causes.push(Cause::required("spec.usages"));
    }
    let mut seen = Vec::new();
    for (i, usage) in usages.iter().enumerate() {
        let usage = usage.as_str().unwrap_or_default();
        let field = format!("spec.usages[{i}]");
        if !csr::KNOWN_USAGES.contains(&usage) {
            causes.push(Cause::not_supported(&field, usage, csr::KNOWN_USAGES));
        }
        if seen.contains(&usage) {
            causes.push(Cause {
                reason: "FieldValueDuplicate",
                message: format!("Duplicate value: \"{usage}\""),
                field,
            });
        }
        seen.push(usage);
    }
    validate_signer_name(str_at(object, &["spec", "signerName"]).unwrap_or_default(), causes);
    if let Some(seconds) = object.pointer("/spec/expirationSeconds").and_then(Value::as_i64)
        && seconds < 600
    {
        causes.push(Cause::invalid(
            "spec.expirationSeconds",
            seconds,
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
}

/// `example.com/signer-name`: a domain of at least two DNS labels, one
/// `/`, and a path that is a DNS subdomain.
fn validate_signer_name(signer: &str, causes: &mut Vec<Cause>) {
    const FIELD: &str = "spec.signerName";
    if signer.is_empty() {
        causes.push(Cause::required(FIELD));
        return;
    }
    let Some((domain, path)) = signer.split_once('/').filter(|(_, path)| !path.contains('/')) else {
        causes.push(Cause::invalid(
            FIELD,
            signer,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
        return;
    };
    if let Some(reason) = domain
        .split('.')
        .find_map(|label| NameRule::Dns1123Label.check(label).map(|r| (label, r)))
        .map(|(label, reason)| format!("validating label \"{label}\": {reason}"))
    {
        causes.push(Cause::invalid(FIELD, domain, reason));
    }
    if !domain.contains('.') {
        causes.push(Cause::invalid(
            FIELD,
            domain,
            "should be a domain with at least two segments separated by dots",
        ));
    }
    if let Some(reason) = NameRule::Dns1123Subdomain.check(path) {
        causes.push(Cause::invalid(FIELD, path, format!("validating path: {reason}")));
    }
}

fn validate_conditions(conditions: &[Value], stored: &[Value], causes: &mut Vec<Cause>) {
    const FIELD: &str = "status.conditions";
    let has = |list: &[Value], kind: &str| list.iter().any(|c| type_of(c) == kind);
    // Compatibility with what is stored, as Kubernetes tolerates it.
    let both_stored = has(stored, APPROVED) && has(stored, DENIED);
    let duplicates_stored = (0..stored.len()).any(|i| stored[..i].iter().any(|c| type_of(c) == type_of(&stored[i])));
    let (mut approved, mut denied) = (false, false);
    let mut seen: Vec<&str> = Vec::new();
    for (i, condition) in conditions.iter().enumerate() {
        let kind = type_of(condition);
        if kind.is_empty() {
            causes.push(Cause::required(format!("{FIELD}[{i}].type")));
        }
        let status = str_at(condition, &["status"]).unwrap_or_default();
        let allowed: &[&str] = if [APPROVED, DENIED, FAILED].contains(&kind) {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        if status.is_empty() {
            causes.push(Cause::required(format!("{FIELD}[{i}].status")));
        } else if !allowed.contains(&status) {
            causes.push(Cause::not_supported(format!("{FIELD}[{i}].status"), status, allowed));
        }
        if !both_stored {
            approved |= kind == APPROVED;
            denied |= kind == DENIED;
            if approved && denied && (kind == APPROVED || kind == DENIED) {
                causes.push(Cause::invalid(
                    FIELD,
                    kind,
                    "Approved and Denied conditions are mutually exclusive",
                ));
            }
        }
        if !duplicates_stored && seen.contains(&kind) {
            causes.push(Cause {
                reason: "FieldValueDuplicate",
                message: format!("Duplicate value: \"{kind}\""),
                field: format!("{FIELD}[{i}].type"),
            });
        }
        seen.push(kind);
    }
}

fn validate_certificate(object: &Value, causes: &mut Vec<Cause>) {
    use base64::Engine;
    let Some(text) = str_at(object, &["status", "certificate"]) else {
        return;
    };
    let checked = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| "not base64".to_string())
        .and_then(|pem| csr::check_certificates_pem(&pem));
    if let Err(reason) = checked {
        causes.push(Cause::invalid("status.certificate", "<certificate data>", reason));
    }
}

const COLUMNS: &[Column] = &[
    NAME,
    AGE,
    col("SignerName", "string", "The signer the request is for."),
    col("Requestor", "string", "The user who created the request."),
    col("RequestedDuration", "string", "The validity the request asks for."),
    col("Condition", "string", "Approval and issuance of the request."),
];

fn row(object: &Value, now: i128) -> Vec<Value> {
    let signer = str_at(object, &["spec", "signerName"])
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>");
    let duration = object
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .map_or_else(|| "<none>".to_string(), |s| human_duration(i128::from(s) * NANOS));
    vec![
        name(object),
        age(object, now),
        json!(signer),
        json!(str_at(object, &["spec", "username"]).unwrap_or_default()),
        json!(duration),
        json!(condition(object)),
    ]
}

/// `Pending`, `Approved` or `Denied`, then `,Failed` and `,Issued` as they
/// apply: kubectl's CONDITION column.
pub fn condition(object: &Value) -> String {
    let conditions = conditions_of(object);
    let has = |kind: &str| conditions.iter().any(|c| type_of(c) == kind);
    let mut text = if has(DENIED) {
        "Denied"
    } else if has(APPROVED) {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if has(FAILED) {
        text.push_str(",Failed");
    }
    if str_at(object, &["status", "certificate"]).is_some_and(|c| !c.is_empty()) {
        text.push_str(",Issued");
    }
    text
}

/// `spec.signerName`, besides the object metadata fields.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    match field {
        "spec.signerName" => Some(super::fields::string_at(object, &["spec", "signerName"])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use base64::Engine;

    fn request(common_name: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        base64::engine::general_purpose::STANDARD.encode(pem)
    }

    fn csr() -> Value {
        json!({
            "metadata": {"name": "c"},
            "spec": {
                "request": request("jane"),
                "signerName": "example.com/signer",
                "usages": ["client auth"],
                "username": "someone-else",
                "groups": ["system:masters"],
            },
            "status": {"conditions": [{"type": "Approved", "status": "True"}]},
        })
    }

    fn causes(object: &Value, old: Option<(&Value, Part)>) -> Vec<String> {
        let mut causes = Vec::new();
        validate(object, old, &mut causes);
        causes
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn the_requester_is_who_created_it_and_nothing_starts_approved() {
        let mut object = csr();
        let options = WriteOptions {
            user: UserInfo::new("system:bootstrap:abcdef", ["system:bootstrappers"]),
            ..WriteOptions::default()
        };
        prepare_for_create(&mut object, &options);
        assert_eq!(object["spec"]["username"], "system:bootstrap:abcdef");
        assert_eq!(object["spec"]["groups"], json!(["system:bootstrappers"]));
        assert_eq!(object["status"], json!({}));
        assert_eq!(causes(&object, None), Vec::<String>::new());
    }

    #[test]
    fn bad_specs_are_invalid() {
        let mut object = csr();
        object["spec"]["request"] = json!(base64::engine::general_purpose::STANDARD.encode("hello"));
        object["spec"]["signerName"] = json!("no-slash");
        object["spec"]["usages"] = json!(["client auth", "flying", "client auth"]);
        object["spec"]["expirationSeconds"] = json!(60);
        object["status"] = json!({});
        let found = causes(&object, None);
        for expected in [
            "spec.request: Invalid value: \"<request data>\": PEM block type must be CERTIFICATE REQUEST",
            "spec.signerName: Invalid value: \"no-slash\"",
            "spec.usages[1]: Unsupported value: \"flying\"",
            "spec.usages[2]: Duplicate value: \"client auth\"",
            "spec.expirationSeconds: Invalid value: \"60\"",
        ] {
            assert!(
                found.iter().any(|c| c.starts_with(expected)),
                "{expected} in {found:#?}"
            );
        }
        let mut empty = json!({"metadata": {"name": "c"}, "spec": {"request": "", "signerName": "", "usages": []}});
        prepare_for_create(&mut empty, &WriteOptions::default());
        let found = causes(&empty, None);
        for expected in [
            "spec.request: Required",
            "spec.usages: Required",
            "spec.signerName: Required",
        ] {
            assert!(
                found.iter().any(|c| c.starts_with(expected)),
                "{expected} in {found:#?}"
            );
        }
    }

    #[test]
    fn approval_writes_conditions_and_status_keeps_them() {
        let mut stored = csr();
        prepare_for_create(&mut stored, &WriteOptions::default());
        // The approval: only the conditions count.
        let mut approved = stored.clone();
        approved["spec"]["signerName"] = json!("example.com/other");
        approved["status"] = json!({
            "conditions": [{"type": "Approved", "status": "True", "reason": "Ok"}],
            "certificate": "c2VjcmV0",
        });
        let approval = WriteOptions {
            approval: true,
            ..WriteOptions::default()
        };
        prepare_for_update(&mut approved, &stored, Part::Status, &approval);
        assert_eq!(approved["spec"], stored["spec"]);
        assert!(approved["status"].get("certificate").is_none());
        let first = &approved["status"]["conditions"][0];
        assert_eq!(first["type"], "Approved");
        assert!(first["lastUpdateTime"].is_string() && first["lastTransitionTime"].is_string());
        assert_eq!(causes(&approved, Some((&stored, Part::Status))), Vec::<String>::new());
        assert_eq!(condition(&approved), "Approved");

        // A status write cannot approve, deny, or take approval away.
        let mut sneaky = stored.clone();
        sneaky["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}]});
        prepare_for_update(&mut sneaky, &stored, Part::Status, &WriteOptions::default());
        assert!(sneaky["status"].get("conditions").is_none(), "{sneaky}");
        let mut revoked = approved.clone();
        revoked["status"] = json!({"conditions": [{"type": "Denied", "status": "True"}]});
        prepare_for_update(&mut revoked, &approved, Part::Status, &WriteOptions::default());
        assert_eq!(revoked["status"]["conditions"], approved["status"]["conditions"]);

        // An approval may not take a condition away, nor both approve and
        // deny.
        let mut withdrawn = approved.clone();
        withdrawn["status"] = json!({"conditions": []});
        prepare_for_update(&mut withdrawn, &approved, Part::Status, &approval);
        let found = causes(&withdrawn, Some((&approved, Part::Status)));
        assert!(
            found
                .iter()
                .any(|c| c.contains("may not remove a condition of type \"Approved\"")),
            "{found:?}"
        );
        let mut both = approved.clone();
        both["status"]["conditions"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "Denied", "status": "True"}));
        prepare_for_update(&mut both, &approved, Part::Status, &approval);
        let found = causes(&both, Some((&approved, Part::Status)));
        assert!(found.iter().any(|c| c.contains("mutually exclusive")), "{found:?}");
    }

    #[test]
    fn the_certificate_is_a_pem_certificate_set_once() {
        let mut stored = csr();
        prepare_for_create(&mut stored, &WriteOptions::default());
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(vec!["a.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&certificate);
        let mut issued = stored.clone();
        issued["status"] = json!({"certificate": encoded});
        prepare_for_update(&mut issued, &stored, Part::Status, &WriteOptions::default());
        assert_eq!(causes(&issued, Some((&stored, Part::Status))), Vec::<String>::new());
        assert_eq!(condition(&issued), "Pending,Issued");
        let mut again = issued.clone();
        again["status"]["certificate"] = json!(base64::engine::general_purpose::STANDARD.encode(certificate + "\n"));
        let found = causes(&again, Some((&issued, Part::Status)));
        assert!(
            found.iter().any(|c| c.contains("may not modify existing certificate")),
            "{found:?}"
        );
        let mut junk = stored.clone();
        junk["status"] = json!({"certificate": base64::engine::general_purpose::STANDARD.encode("junk")});
        assert!(!causes(&junk, Some((&stored, Part::Status))).is_empty());
    }

    #[test]
    fn rows_read_as_kubectl_prints_them() {
        let mut object = csr();
        object["metadata"]["creationTimestamp"] = json!("2024-05-01T12:00:00Z");
        object["spec"]["expirationSeconds"] = json!(3600);
        object["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}], "certificate": "eA=="});
        let cells = row(&object, 0);
        assert_eq!(cells[2], "example.com/signer");
        assert_eq!(cells[3], "someone-else");
        assert_eq!(cells[4], "60m");
        assert_eq!(cells[5], "Approved,Issued");
    }
}
