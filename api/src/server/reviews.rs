//! Questions clients create objects to ask, answered in the object's
//! `status` and never stored: who am I (SelfSubjectReview), whose token is
//! this (TokenReview), may I or may they (SelfSubjectAccessReview,
//! SubjectAccessReview, LocalSubjectAccessReview), what may I
//! (SelfSubjectRulesReview); and TokenRequest, which signs a
//! ServiceAccount token (`serviceaccounts/<name>/token`).

use axum::response::Response;
use http::StatusCode;
use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::{Value, json};
use skiff_auth::token::{Claims, KubernetesClaim, Reference};
use skiff_auth::user::service_account_user;
use skiff_auth::{Attributes, Decision, ResourceAttributes, UserInfo};

use super::resources::{Call, written};
use crate::body;
use crate::error::{ApiError, Cause, Result};

/// The shortest and longest lifetimes a TokenRequest may ask for.
const MIN_EXPIRATION_SECONDS: i64 = 600;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// Answers a review: the posted object, with its `status` filled in.
pub(super) async fn review(call: &Call) -> Result<Response> {
    let output = call.output()?;
    let raw = body::decode_object(call.content_type.as_deref(), &call.body)?;
    let (mut object, warnings) = body::canonicalize(&call.resource, raw, call.query.field_validation()?)?;
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = match call.resource.kind.as_str() {
        "SelfSubjectReview" => json!({"userInfo": user_info(&call.user)}),
        "TokenReview" => token_review(call, &spec).await?,
        "SelfSubjectAccessReview" => access_review(call, call.user.clone(), &spec, None)?,
        "SubjectAccessReview" => access_review(call, subject(&spec)?, &spec, None)?,
        "LocalSubjectAccessReview" => access_review(call, subject(&spec)?, &spec, call.namespace())?,
        "SelfSubjectRulesReview" => rules_review(call, &spec),
        other => {
            tracing::error!(kind = other, "no answer for this review kind");
            return Err(ApiError::Internal);
        }
    };
    object["status"] = status;
    let metadata = object.get_mut("metadata").and_then(Value::as_object_mut);
    if let Some(metadata) = metadata {
        metadata.entry("creationTimestamp").or_insert(Value::Null);
    }
    Ok(written(StatusCode::CREATED, output, &call.resource, &object, &warnings))
}

fn user_info(user: &UserInfo) -> Value {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    info
}

async fn token_review(call: &Call, spec: &Value) -> Result<Value> {
    let token = spec.get("token").and_then(Value::as_str).unwrap_or_default();
    let authentication = &call.server.authentication;
    let audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| authentication.audiences().to_vec());
    if token.is_empty() {
        return Ok(json!({"authenticated": false, "error": "token is empty"}));
    }
    Ok(
        match authentication
            .authenticate_token(call.server.registry.store(), token, &audiences)
            .await
        {
            Ok(user) => json!({"authenticated": true, "user": user_info(&user), "audiences": audiences}),
            Err(error) => json!({"authenticated": false, "error": error}),
        },
    )
}

/// The user a SubjectAccessReview asks about.
fn subject(spec: &Value) -> Result<UserInfo> {
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
            .unwrap_or_default()
    };
    let name = spec.get("user").and_then(Value::as_str).unwrap_or_default();
    let groups = strings(spec.get("groups"));
    if name.is_empty() && groups.is_empty() {
        return Err(invalid("spec.user", "at least one of user or group must be specified"));
    }
    let extra = spec
        .get("extra")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), strings(Some(v)))).collect())
        .unwrap_or_default();
    Ok(UserInfo {
        name: name.into(),
        uid: spec.get("uid").and_then(Value::as_str).unwrap_or_default().into(),
        groups,
        extra,
    })
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::invalid(
        "authorization.k8s.io",
        "SubjectAccessReview",
        "",
        vec![Cause {
            reason: "FieldValueRequired",
            message: message.into(),
            field: field.into(),
        }],
    )
}

/// Whether `user` may do what `spec` describes; `namespace` is a
/// LocalSubjectAccessReview's, which the spec must not contradict.
fn access_review(call: &Call, user: UserInfo, spec: &Value, namespace: Option<&str>) -> Result<Value> {
    let text = |v: &Value, field: &str| v.get(field).and_then(Value::as_str).unwrap_or_default().to_string();
    let attributes = if let Some(r) = spec.get("resourceAttributes") {
        let mut resource = ResourceAttributes {
            namespace: text(r, "namespace"),
            group: text(r, "group"),
            resource: text(r, "resource"),
            subresource: text(r, "subresource"),
            name: text(r, "name"),
        };
        if let Some(ns) = namespace {
            if !resource.namespace.is_empty() && resource.namespace != ns {
                return Err(ApiError::BadRequest(format!(
                    "spec.resourceAttributes.namespace must match namespace: {ns}"
                )));
            }
            resource.namespace = ns.into();
        }
        Attributes::resource(user, text(r, "verb"), resource)
    } else if let Some(n) = spec.get("nonResourceAttributes") {
        if namespace.is_some() {
            return Err(ApiError::BadRequest(
                "a LocalSubjectAccessReview asks about resources only".into(),
            ));
        }
        Attributes::non_resource(user, text(n, "verb"), text(n, "path"))
    } else {
        return Err(invalid(
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    };
    Ok(match call.server.authorizer.authorize(&attributes) {
        Decision::Allow => json!({"allowed": true, "reason": "allowed"}),
        Decision::NoOpinion(reason) => json!({"allowed": false, "reason": reason}),
        Decision::Deny(reason) => json!({"allowed": false, "denied": true, "reason": reason}),
    })
}

/// What the user may do in `spec.namespace`, as RBAC grants it.
fn rules_review(call: &Call, spec: &Value) -> Value {
    let namespace = spec.get("namespace").and_then(Value::as_str).unwrap_or_default();
    let rules = call.server.authorizer.rules_for(&call.user, namespace);
    let list = |v: &Option<Vec<String>>| v.clone().unwrap_or_default();
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for PolicyRule {
        verbs,
        api_groups,
        resources,
        resource_names,
        non_resource_urls,
    } in rules
    {
        if non_resource_urls.as_ref().is_some_and(|u| !u.is_empty()) {
            non_resource_rules.push(json!({"verbs": verbs, "nonResourceURLs": list(&non_resource_urls)}));
        }
        if resources.as_ref().is_some_and(|r| !r.is_empty()) {
            let mut rule = json!({"verbs": verbs, "apiGroups": list(&api_groups), "resources": list(&resources)});
            if resource_names.as_ref().is_some_and(|n| !n.is_empty()) {
                rule["resourceNames"] = json!(list(&resource_names));
            }
            resource_rules.push(rule);
        }
    }
    json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        // A node's reads through the Node authorizer are not rules.
        "incomplete": call.user.node_name().is_some(),
    })
}

/// `POST …/serviceaccounts/<name>/token`: a token for the ServiceAccount,
/// bound to a Pod, Secret or Node if the request names one.
pub(super) async fn token_request(call: &Call) -> Result<Response> {
    let output = call.output()?;
    let server = &call.server;
    let keys = server
        .authentication
        .service_account_keys()
        .ok_or_else(|| ApiError::BadRequest("this server has no ServiceAccount signing key configured".into()))?;
    let namespace = call.namespace().unwrap_or_default();
    let account = server
        .registry
        .get(&call.resource, Some(namespace), call.name())
        .await?
        .object;
    let raw = body::decode_object(call.content_type.as_deref(), &call.body)?;
    let mut request = token_request_body(raw)?;
    let spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
    let seconds = spec
        .get("expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    if seconds < MIN_EXPIRATION_SECONDS {
        return Err(token_invalid(
            "spec.expirationSeconds",
            "may not specify a duration less than 10 minutes",
        ));
    }
    if seconds > MAX_EXPIRATION_SECONDS {
        return Err(token_invalid(
            "spec.expirationSeconds",
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let mut audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences = server.authentication.audiences().to_vec();
    }
    let uid = |o: &Value| crate::meta::uid(o).unwrap_or_default().to_string();
    let mut claim = KubernetesClaim {
        namespace: namespace.into(),
        serviceaccount: Reference {
            name: call.name().into(),
            uid: uid(&account),
        },
        ..Default::default()
    };
    if let Some(bound) = spec.get("boundObjectRef").filter(|b| !b.is_null()) {
        bind(call, bound, namespace, &mut claim).await?;
    }
    let now = jiff::Timestamp::now();
    let issued = now.as_second().max(0).unsigned_abs();
    let expires = issued + seconds.unsigned_abs();
    let claims = Claims {
        sub: service_account_user(namespace, call.name()),
        aud: audiences.clone(),
        exp: expires,
        iat: issued,
        nbf: issued,
        jti: uuid::Uuid::new_v4().to_string(),
        kubernetes: claim,
        ..Default::default()
    };
    let token = keys.sign(&claims).map_err(|error| {
        tracing::error!(%error, "cannot sign a ServiceAccount token");
        ApiError::Internal
    })?;
    let expiration = jiff::Timestamp::from_second(i64::try_from(expires).unwrap_or(i64::MAX))
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    request["metadata"] = json!({
        "name": call.name(),
        "namespace": namespace,
        "creationTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    });
    request["spec"]["audiences"] = json!(audiences);
    request["spec"]["expirationSeconds"] = json!(seconds);
    request["status"] = json!({"token": token, "expirationTimestamp": expiration});
    Ok(written(StatusCode::CREATED, output, &call.resource, &request, &[]))
}

/// A TokenRequest body: its `spec` is checked against its type (not the
/// ServiceAccount's, whose URL it is posted to); clients send an empty
/// `status`, which is dropped.
fn token_request_body(raw: Value) -> Result<Value> {
    let Value::Object(mut request) = raw else {
        return Err(ApiError::BadRequest("the body is not a TokenRequest".into()));
    };
    request.remove("status");
    let spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
    let spec: k8s_openapi::api::authentication::v1::TokenRequestSpec = serde_json::from_value(spec)
        .map_err(|e| ApiError::BadRequest(format!("the body is not a TokenRequest: spec: {e}")))?;
    request.insert(
        "spec".into(),
        serde_json::to_value(spec).map_err(|_| ApiError::Internal)?,
    );
    request.insert("kind".into(), json!("TokenRequest"));
    request.insert("apiVersion".into(), json!("authentication.k8s.io/v1"));
    Ok(Value::Object(request))
}

fn token_invalid(field: &str, message: &str) -> ApiError {
    ApiError::invalid(
        "authentication.k8s.io",
        "TokenRequest",
        "",
        vec![Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {message}"),
            field: field.into(),
        }],
    )
}

/// Fills the claim of the object a token is bound to, which must exist
/// (with the UID the request names, if any).
async fn bind(call: &Call, bound: &Value, namespace: &str, claim: &mut KubernetesClaim) -> Result<()> {
    let text = |field: &str| bound.get(field).and_then(Value::as_str).unwrap_or_default();
    let (kind, name, wanted_uid) = (text("kind"), text("name"), text("uid"));
    let plural = match kind {
        "Pod" => "pods",
        "Secret" => "secrets",
        "Node" => "nodes",
        _ => {
            return Err(token_invalid(
                "spec.boundObjectRef.kind",
                &format!("{kind:?}: supported values: \"Pod\", \"Secret\", \"Node\""),
            ));
        }
    };
    let registry = &call.server.registry;
    let resource = call.server.catalog.lookup("", "v1", plural).ok_or(ApiError::Internal)?;
    let scope = (kind != "Node").then_some(namespace);
    let object = registry.get(&resource, scope, name).await?.object;
    let uid = crate::meta::uid(&object).unwrap_or_default().to_string();
    if !wanted_uid.is_empty() && wanted_uid != uid {
        return Err(ApiError::Conflict {
            subject: crate::error::Subject {
                group: String::new(),
                kind: plural.into(),
                name: name.into(),
            },
            message: format!(
                "the UID in the bound object reference ({wanted_uid}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        });
    }
    let reference = Reference { name: name.into(), uid };
    match kind {
        "Pod" => {
            // The node a pod runs on is named too, as kube-apiserver does.
            if let Some(node) = object.pointer("/spec/nodeName").and_then(Value::as_str)
                && let Some(nodes) = call.server.catalog.lookup("", "v1", "nodes")
                && let Ok(found) = registry.get(&nodes, None, node).await
            {
                claim.node = Some(Reference {
                    name: node.into(),
                    uid: crate::meta::uid(&found.object).unwrap_or_default().to_string(),
                });
            }
            claim.pod = Some(reference);
        }
        "Secret" => claim.secret = Some(reference),
        _ => claim.node = Some(reference),
    }
    Ok(())
}
