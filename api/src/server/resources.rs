//! Resource requests: one function per verb (and per subresource that
//! behaves differently), each turning HTTP into registry calls.

use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::negotiate::{self, Output};
use super::query::{self, Query};
use super::{ApiServer, stream_body};
use crate::auth::UserInfo;
use crate::body::{self, MAX_BODY_BYTES};
use crate::catalog::{Resource, Serving};
use crate::error::{ApiError, Result, Subject};
use crate::kinds::Unnamed;
use crate::meta;
use crate::options::{FieldValidation, Part, WriteOptions};
use crate::patch::apply::{ApplyError, ApplyRequest, Scope};
use crate::patch::{self, PatchError, PatchType};
use crate::registry::Deleted;
use crate::request::{self, ResourceRequest, Verb};
use crate::status::{Details, Status};
use crate::watch::{self, WatchOptions};

/// Everything about one resource request, parsed.
pub(super) struct Call {
    pub(super) server: Arc<ApiServer>,
    pub(super) user: UserInfo,
    user_agent: Option<String>,
    pub(super) request: ResourceRequest,
    pub(super) resource: Arc<Resource>,
    pub(super) query: Query,
    accept: Option<String>,
    pub(super) content_type: Option<String>,
    pub(super) body: Bytes,
}

impl Call {
    pub(super) fn namespace(&self) -> Option<&str> {
        self.request.namespace.as_deref()
    }

    pub(super) fn name(&self) -> &str {
        self.request.name.as_deref().unwrap_or_default()
    }

    fn write_options(&self) -> Result<WriteOptions> {
        let mut options = self.query.write_options()?;
        options.user = self.user.clone();
        // `certificatesigningrequests/approval` is written as status, of
        // which it changes the conditions only.
        options.approval = self.request.subresource.as_deref() == Some("approval");
        options.scale = self.request.subresource.as_deref() == Some("scale");
        if options.field_manager.is_none() {
            // As Kubernetes does: the client program's name.
            options.field_manager = self
                .user_agent
                .as_deref()
                .and_then(|ua| ua.split('/').next())
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(|m| m.chars().take(128).collect());
        }
        Ok(options)
    }

    fn delete_options(&self) -> Result<crate::options::DeleteOptions> {
        let mut options = self.query.delete_options()?;
        options.user = self.user.clone();
        Ok(options)
    }

    pub(super) fn output(&self) -> Result<Output> {
        negotiate::output(self.accept.as_deref(), self.query.get("includeObject"))
    }
}

pub(super) async fn handle(server: Arc<ApiServer>, request: Request) -> Result<Response> {
    let (parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query());
    let Some(info) = request::parse(&parts.method, parts.uri.path(), query.watch()) else {
        return Err(
            if matches!(
                parts.method,
                http::Method::GET | http::Method::POST | http::Method::PUT | http::Method::PATCH | http::Method::DELETE
            ) {
                ApiError::NoSuchRoute
            } else {
                ApiError::MethodNotSupported
            },
        );
    };
    let resource = server
        .catalog
        .lookup(&info.group, &info.version, &info.resource)
        .ok_or(ApiError::NoSuchRoute)?;
    if info.namespace.is_some() && !resource.namespaced {
        return Err(ApiError::NoSuchRoute);
    }
    let user = parts
        .extensions
        .get::<UserInfo>()
        .cloned()
        .unwrap_or_else(UserInfo::anonymous);
    let recorder = parts.extensions.get::<crate::audit::Recorder>().cloned();
    let authorized = |checked: Result<()>| {
        if let Some(recorder) = &recorder {
            recorder.authorized(checked.is_ok());
        }
        checked
    };
    if super::connect::serves(&info) {
        let mut asked = info.clone();
        asked.verb = Verb::Create;
        authorized(server.check_resource(&crate::auth::attributes(&user, &asked)).await)?;
        return super::connect::handle(server, info, parts, query).await;
    }
    authorized(server.check_resource(&crate::auth::attributes(&user, &info)).await)?;
    let header = |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(String::from);
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::TooLarge { limit: MAX_BODY_BYTES })?;
    if let Some(recorder) = &recorder {
        recorder.request_body(header(header::CONTENT_TYPE).as_deref(), &body);
    }
    let call = Call {
        server,
        user,
        user_agent: header(header::USER_AGENT),
        resource,
        query,
        accept: header(header::ACCEPT),
        content_type: header(header::CONTENT_TYPE),
        body,
        request: info,
    };
    let sub = call.request.subresource.clone();
    if let Some(sub) = &sub {
        let s = &call.resource.subresources;
        let served =
            call.resource.serving == Serving::CustomMetrics && crate::usage::CUSTOM_METRICS.contains(&sub.as_str());
        let served = served
            || match sub.as_str() {
                "status" => s.status,
                "scale" => s.scale.is_some(),
                "binding" => s.binding,
                "log" => s.log,
                "eviction" => s.eviction,
                "finalize" => s.finalize,
                "token" => s.token,
                "approval" => s.approval,
                _ => false,
            };
        if !served {
            return Err(ApiError::NoSuchRoute);
        }
    }
    if call.request.verb == Verb::Watch && sub.is_none() && call.resource.serving == Serving::Stored {
        return watch(call).await;
    }
    if call.resource.group == "rbac.authorization.k8s.io" && !matches!(call.request.verb, Verb::Get | Verb::List) {
        let response = dispatch(&call, sub.as_deref()).await;
        call.server.authorizer.sync_rbac(call.server.registry.store()).await;
        return response;
    }
    dispatch(&call, sub.as_deref()).await
}

/// Runs the verb a request asks for.
async fn dispatch(call: &Call, sub: Option<&str>) -> Result<Response> {
    match call.resource.serving {
        Serving::Stored => {}
        Serving::Review => {
            return match (call.request.verb, sub, &call.request.name) {
                (Verb::Create, None, None) => super::reviews::review(call).await,
                _ => Err(ApiError::MethodNotSupported),
            };
        }
        Serving::ResourceMetrics => return super::resource_metrics::dispatch(call, sub).await,
        Serving::CustomMetrics => return super::custom_metrics::dispatch(call, sub).await,
    }
    match (call.request.verb, sub) {
        (Verb::Get, None | Some("status" | "approval")) => get(call).await,
        (Verb::Create, Some("token")) => super::reviews::token_request(call).await,
        (Verb::Get, Some("scale")) => get_scale(call).await,
        (Verb::Get, Some("log")) => log(call).await,
        (Verb::List, None) => list(call).await,
        (Verb::Create, None) if call.request.name.is_none() => create(call).await,
        (Verb::Create, Some("binding")) => bind(call).await,
        (Verb::Create, Some("eviction")) => evict(call).await,
        (Verb::Update, None) => update(call, Part::Main).await,
        (Verb::Update, Some("status" | "approval")) => update(call, Part::Status).await,
        (Verb::Update, Some("finalize")) => finalize(call).await,
        (Verb::Update | Verb::Patch, Some("scale")) => scale(call).await,
        (Verb::Patch, None) => patch(call, Part::Main).await,
        (Verb::Patch, Some("status" | "approval")) => patch(call, Part::Status).await,
        (Verb::Delete, None) => delete(call).await,
        (Verb::DeleteCollection, None) => delete_collection(call).await,
        _ => Err(ApiError::MethodNotSupported),
    }
}

async fn get(call: &Call) -> Result<Response> {
    let output = call.output()?;
    let current = call
        .server
        .registry
        .get(&call.resource, call.namespace(), call.name())
        .await?;
    Ok(negotiate::object(
        StatusCode::OK,
        output,
        &call.resource,
        &current.object,
    ))
}

async fn list(call: &Call) -> Result<Response> {
    let output = call.output()?;
    let options = call.query.list_options()?;
    let page = call
        .server
        .registry
        .list(&call.resource, call.namespace(), &options)
        .await?;
    Ok(negotiate::list(
        output,
        &call.resource,
        page.items,
        page.revision,
        page.continue_token,
    ))
}

async fn watch(call: Call) -> Result<Response> {
    use futures::StreamExt;
    let output = call.output()?;
    let mut list = call.query.list_options()?;
    // `GET …/<name>?watch=true` (the legacy single-object watch) watches
    // the collection narrowed to that name.
    if let Some(name) = call.request.name.as_deref() {
        let selector = list.field_selector.take().unwrap_or_default();
        list.field_selector = Some(selector.and_equals("metadata.name", name));
    }
    let options = WatchOptions {
        list,
        allow_bookmarks: call.query.allow_bookmarks(),
        bookmark_interval: None,
        timeout: call.query.timeout()?,
    };
    let resource = call.resource.clone();
    let events = watch::start(
        call.server.registry.clone(),
        resource.clone(),
        call.request.namespace.clone(),
        options,
    )
    .await?;
    let sent = call.server.metrics.watch(&resource);
    let lines = tokio_stream::wrappers::ReceiverStream::new(events)
        .enumerate()
        .map(move |(i, event)| {
            let line = negotiate::watch_line(output, &resource, &event, i == 0);
            sent.sent(line.len());
            line
        });
    let mut response = Response::new(stream_body(lines));
    let content_type = match output {
        Output::Table(_) => "application/json;as=Table;v=v1;g=meta.k8s.io",
        _ => "application/json",
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// An object reply with `Warning` headers for what `fieldValidation=Warn`
/// found.
pub(super) fn written(
    code: StatusCode,
    output: Output,
    resource: &Resource,
    object: &Value,
    warnings: &[String],
) -> Response {
    with_warnings(negotiate::object(code, output, resource, object), warnings)
}

/// `response` with a `Warning: 299` header per warning.
fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - \"{}\"", warning.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

async fn create(call: &Call) -> Result<Response> {
    let output = call.output()?;
    let raw = body::decode_object(call.content_type.as_deref(), &call.body)?;
    let (object, warnings) = body::canonicalize(&call.resource, raw, call.query.field_validation()?)?;
    let options = call.write_options()?;
    let created = call
        .server
        .registry
        .create(&call.resource, call.namespace(), object, &options)
        .await?;
    Ok(written(
        StatusCode::CREATED,
        output,
        &call.resource,
        &created,
        &warnings,
    ))
}

async fn update(call: &Call, part: Part) -> Result<Response> {
    let output = call.output()?;
    let raw = body::decode_object(call.content_type.as_deref(), &call.body)?;
    let (desired, warnings) = body::canonicalize(&call.resource, raw, call.query.field_validation()?)?;
    let options = call.write_options()?;
    let updated = call
        .server
        .registry
        .update(&call.resource, call.namespace(), call.name(), part, &options, |_| {
            Ok(desired.clone())
        })
        .await?;
    Ok(written(StatusCode::OK, output, &call.resource, &updated, &warnings))
}

async fn patch(call: &Call, part: Part) -> Result<Response> {
    let output = call.output()?;
    let patch_type = body::patch_type(call.content_type.as_deref())?;
    let body = body::parse_patch(patch_type, &call.body)?;
    let validation = call.query.field_validation()?;
    let mut options = call.write_options()?;
    if patch_type == PatchType::Apply {
        // An apply names its manager; the user agent does not count.
        options.field_manager = call.query.write_options()?.field_manager;
        options.applying = true;
        return server_side_apply(call, part, &body, validation, &options).await;
    }
    let mut warnings = Vec::new();
    let resource = call.resource.clone();
    let updated = call
        .server
        .registry
        .update(
            &call.resource,
            call.namespace(),
            call.name(),
            part,
            &options,
            |current| {
                let patched = apply_patch(patch_type, &resource, call.name(), current, &body)?;
                let (canonical, found) = body::canonicalize(&resource, patched, validation)?;
                warnings = found;
                Ok(canonical)
            },
        )
        .await?;
    Ok(written(StatusCode::OK, output, &call.resource, &updated, &warnings))
}

/// `application/apply-patch+yaml`: server-side apply with field ownership
/// (`patch::apply`), creating the object when it does not exist.
async fn server_side_apply(
    call: &Call,
    part: Part,
    applied: &Value,
    validation: FieldValidation,
    options: &WriteOptions,
) -> Result<Response> {
    let output = call.output()?;
    let Some(manager) = options.field_manager.as_deref() else {
        return Err(ApiError::BadRequest(
            "PATCH requests of type apply must specify a field manager (fieldManager)".into(),
        ));
    };
    let force = match call.query.get("force") {
        None | Some("" | "false") => false,
        Some("true") => true,
        Some(other) => return Err(ApiError::BadRequest(format!("invalid value for force: {other:?}"))),
    };
    let resource = call.resource.clone();
    let root = resource.ops.patch;
    let scope = match part {
        Part::Status => Scope::Status,
        _ if resource.has_status() => Scope::Main,
        _ => Scope::Object,
    };
    let name = call.name();
    let run = |current: Option<&Value>| {
        let now = meta::now_rfc3339();
        let request = ApplyRequest {
            manager,
            force,
            applied,
            now: &now,
            scope,
        };
        patch::apply::apply(current, &request, root).map_err(|error| apply_error(&resource, name, error))
    };
    let exists = call
        .server
        .registry
        .find(&call.resource, call.namespace(), name)
        .await?
        .is_some();
    if !exists && part == Part::Main {
        let mut object = run(None)?;
        meta::metadata_mut(&mut object)
            .entry("name")
            .or_insert_with(|| Value::String(name.to_string()));
        let (object, warnings) = body::canonicalize(&call.resource, object, validation)?;
        let created = call
            .server
            .registry
            .create(&call.resource, call.namespace(), object, options)
            .await?;
        return Ok(written(
            StatusCode::CREATED,
            output,
            &call.resource,
            &created,
            &warnings,
        ));
    }
    let mut warnings = Vec::new();
    let updated = call
        .server
        .registry
        .update(&call.resource, call.namespace(), name, part, options, |current| {
            let mut base = current.clone();
            // The configuration names a resourceVersion only to make it a precondition.
            meta::metadata_mut(&mut base).remove("resourceVersion");
            let (canonical, found) = body::canonicalize(&resource, run(Some(&base))?, validation)?;
            warnings = found;
            Ok(canonical)
        })
        .await?;
    Ok(written(StatusCode::OK, output, &call.resource, &updated, &warnings))
}

/// An apply failure as the API reports it: 409 for conflicts (reason
/// Conflict, which kubectl's `--force-conflicts` hint looks for), 400 or 422
/// otherwise.
fn apply_error(resource: &Resource, name: &str, error: ApplyError) -> ApiError {
    match error {
        ApplyError::Conflicts(ref conflicts) => ApiError::ApplyConflict {
            subject: Subject::new(&resource.group, &resource.plural, name),
            causes: conflicts
                .iter()
                .map(|c| crate::error::Cause {
                    reason: "FieldManagerConflict",
                    message: format!("conflict with {}", c.owner()),
                    field: c.field.clone(),
                })
                .collect(),
            message: error.message(),
        },
        ApplyError::BadRequest(message) => ApiError::BadRequest(message),
        ApplyError::Invalid(message) => ApiError::invalid(
            &resource.group,
            &resource.kind,
            name,
            vec![crate::error::Cause {
                reason: "FieldValueInvalid",
                message,
                field: String::new(),
            }],
        ),
    }
}

async fn delete(call: &Call) -> Result<Response> {
    let output = call.output()?;
    let mut options = call.delete_options()?;
    if !call.body.is_empty() {
        let body = body::parse_json(&call.body)?;
        options = query::merge_delete_body(options, &body)?;
    }
    let warnings: Vec<String> = match call.resource.ops.unnamed_propagation {
        Unnamed::Orphan { warning: Some(warning) } if options.propagation.is_none() => vec![warning.into()],
        _ => Vec::new(),
    };
    let outcome = call
        .server
        .registry
        .delete(&call.resource, call.namespace(), call.name(), &options)
        .await?;
    if !options.dry_run {
        // Tokens bound to the object are refused from this answer on.
        call.server
            .authentication
            .deleted(&crate::stored::key(&call.resource, call.namespace(), call.name()))
            .await;
    }
    let response = match outcome {
        Deleted::Marked(object) => negotiate::object(StatusCode::OK, output, &call.resource, &object),
        Deleted::Gone(object) if call.resource.ops.delete_returns_object => {
            negotiate::object(StatusCode::OK, output, &call.resource, &object)
        }
        Deleted::Gone(object) => negotiate::status(
            StatusCode::OK,
            output,
            &Status::success(
                0,
                Some(Details {
                    name: call.name().to_string(),
                    group: call.resource.group.clone(),
                    kind: call.resource.plural.clone(),
                    uid: meta::uid(&object).unwrap_or_default().to_string(),
                    ..Details::default()
                }),
            ),
        ),
    };
    Ok(with_warnings(response, &warnings))
}

async fn delete_collection(call: &Call) -> Result<Response> {
    let output = call.output()?;
    let mut options = call.delete_options()?;
    if !call.body.is_empty() {
        let body = body::parse_json(&call.body)?;
        options = query::merge_delete_body(options, &body)?;
    }
    let mut list = call.query.list_options()?;
    list.limit = None;
    list.continue_token = None;
    let page = call
        .server
        .registry
        .list(&call.resource, call.namespace(), &list)
        .await?;
    let mut deleted = Vec::new();
    for object in page.items {
        let name = meta::name(&object).unwrap_or_default().to_string();
        let namespace = meta::namespace(&object).map(String::from);
        match call
            .server
            .registry
            .delete(&call.resource, namespace.as_deref(), &name, &options)
            .await
        {
            Ok(Deleted::Gone(object) | Deleted::Marked(object)) => deleted.push(object),
            Err(ApiError::NotFound(_)) => {}
            Err(other) => return Err(other),
        }
    }
    Ok(negotiate::list(
        output,
        &call.resource,
        deleted,
        call.server.registry.store().revision(),
        None,
    ))
}

/// `autoscaling/v1 Scale` for an object with a scale subresource.
fn scale_of(resource: &Resource, object: &Value) -> Result<Value> {
    let paths = resource.subresources.scale.as_ref().ok_or(ApiError::NoSuchRoute)?;
    let at = |path: &str| object.pointer(&format!("/{}", path.replace('.', "/"))).cloned();
    let selector = paths
        .label_selector
        .as_deref()
        .and_then(at)
        .map(|s| match s {
            Value::String(s) => s,
            // A ReplicationController's equality selector, a plain label map.
            Value::Object(labels)
                if !labels.contains_key("matchLabels") && !labels.contains_key("matchExpressions") =>
            {
                crate::selector::LabelSelector::from_json(&json!({"matchLabels": labels}))
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            }
            selector => crate::selector::LabelSelector::from_json(&selector)
                .map(|s| s.to_string())
                .unwrap_or_default(),
        })
        .unwrap_or_default();
    let metadata = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let keep = ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"];
    let metadata: serde_json::Map<String, Value> = metadata
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| keep.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": at(&paths.spec_replicas).and_then(|v| v.as_i64()).unwrap_or(0)},
        "status": {
            "replicas": at(&paths.status_replicas).and_then(|v| v.as_i64()).unwrap_or(0),
            "selector": selector,
        },
    }))
}

async fn get_scale(call: &Call) -> Result<Response> {
    let current = call
        .server
        .registry
        .get(&call.resource, call.namespace(), call.name())
        .await?;
    Ok(negotiate::value(
        StatusCode::OK,
        call.output()?,
        &scale_of(&call.resource, &current.object)?,
    ))
}

/// PUT or PATCH of `/scale`: the new replica count lands in the parent.
async fn scale(call: &Call) -> Result<Response> {
    let output = call.output()?;
    let request = if call.request.verb == Verb::Patch {
        let patch_type = body::patch_type(call.content_type.as_deref())?;
        Some((patch_type, body::parse_patch(patch_type, &call.body)?))
    } else {
        None
    };
    let put = match &request {
        None => Some(body::decode_object(call.content_type.as_deref(), &call.body)?),
        Some(_) => None,
    };
    let resource = call.resource.clone();
    let Some(paths) = resource.subresources.scale.clone() else {
        return Err(ApiError::NoSuchRoute);
    };
    let options = call.write_options()?;
    let updated = call
        .server
        .registry
        .update(
            &call.resource,
            call.namespace(),
            call.name(),
            Part::Main,
            &options,
            |current| {
                let scale = scale_of(&resource, current)?;
                let desired = match (&request, &put) {
                    (Some((patch_type, body)), _) => apply_patch(*patch_type, &resource, call.name(), &scale, body)?,
                    (None, Some(body)) => body.clone(),
                    (None, None) => scale,
                };
                let replicas = desired.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
                if replicas < 0 {
                    return Err(ApiError::invalid(
                        "autoscaling",
                        "Scale",
                        meta::name(current).unwrap_or_default(),
                        vec![crate::error::Cause::invalid(
                            "spec.replicas",
                            replicas,
                            "must be greater than or equal to 0",
                        )],
                    ));
                }
                let mut next = current.clone();
                meta::metadata_mut(&mut next).remove("resourceVersion");
                if let Some(rv) = meta::resource_version(&desired) {
                    meta::metadata_mut(&mut next).insert("resourceVersion".into(), json!(rv));
                }
                let pointer = format!("/{}", paths.spec_replicas.replace('.', "/"));
                match next.pointer_mut(&pointer) {
                    Some(slot) => *slot = json!(replicas),
                    None => {
                        if let Some((parent, field)) = paths.spec_replicas.rsplit_once('.') {
                            let parent_ptr = format!("/{}", parent.replace('.', "/"));
                            if let Some(map) = next.pointer_mut(&parent_ptr).and_then(Value::as_object_mut) {
                                map.insert(field.into(), json!(replicas));
                            }
                        }
                    }
                }
                Ok(next)
            },
        )
        .await?;
    Ok(negotiate::value(
        StatusCode::OK,
        output,
        &scale_of(&call.resource, &updated)?,
    ))
}

/// `pods/<name>/binding`: assigns an unscheduled pod to a node.
async fn bind(call: &Call) -> Result<Response> {
    let binding = body::decode_object(call.content_type.as_deref(), &call.body)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "",
                "Binding",
                call.name(),
                vec![crate::error::Cause::required("target.name")],
            )
        })?
        .to_string();
    let name = call.name().to_string();
    let options = WriteOptions {
        dry_run: call.query.dry_run()?,
        user: call.user.clone(),
        ..WriteOptions::default()
    };
    call.server
        .registry
        .update(
            &call.resource,
            call.namespace(),
            &name,
            Part::Binding,
            &options,
            |current| {
                if meta::is_deleting(current) {
                    return Err(ApiError::Conflict {
                        subject: Subject::new("", "pods", &name),
                        message: "pod is being deleted, cannot be assigned to a host".into(),
                    });
                }
                if let Some(existing) = meta::str_field(current, &["spec", "nodeName"]).filter(|n| !n.is_empty()) {
                    return Err(ApiError::Conflict {
                        subject: Subject::new("", "pods", &name),
                        message: format!("pod {name} is already assigned to node \"{existing}\""),
                    });
                }
                let mut next = current.clone();
                meta::metadata_mut(&mut next).remove("resourceVersion");
                next["spec"]["nodeName"] = json!(node);
                Ok(next)
            },
        )
        .await?;
    // The PodScheduled condition is status: a second, status-only write.
    let now = meta::now_rfc3339();
    call.server
        .registry
        .update(&call.resource, call.namespace(), &name, Part::Status, &options, |current| {
            let mut next = current.clone();
            meta::metadata_mut(&mut next).remove("resourceVersion");
            let conditions = meta::object_mut(&mut next["status"])
                .entry("conditions")
                .or_insert_with(|| json!([]));
            if let Some(list) = conditions.as_array_mut() {
                list.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
                list.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
            }
            Ok(next)
        })
        .await?;
    Ok(success(StatusCode::CREATED))
}

fn success(code: StatusCode) -> Response {
    negotiate::status(code, Output::Json, &Status::success(code.as_u16(), None))
}

/// `pods/<name>/eviction`: a delete that disruption budgets may refuse
/// (none are enforced yet).
async fn evict(call: &Call) -> Result<Response> {
    let eviction = body::decode_object(call.content_type.as_deref(), &call.body)?;
    let mut options = call.delete_options()?;
    if let Some(delete_options) = eviction.get("deleteOptions") {
        options = query::merge_delete_body(options, delete_options)?;
    }
    call.server
        .registry
        .delete(&call.resource, call.namespace(), call.name(), &options)
        .await?;
    Ok(success(StatusCode::CREATED))
}

/// `namespaces/<name>/finalize`: replaces `spec.finalizers`; a terminating
/// namespace with none left is removed.
async fn finalize(call: &Call) -> Result<Response> {
    let output = call.output()?;
    let desired = body::decode_object(call.content_type.as_deref(), &call.body)?;
    let finalizers = desired
        .pointer("/spec/finalizers")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let options = call.write_options()?;
    let updated = call
        .server
        .registry
        .update(&call.resource, None, call.name(), Part::Main, &options, |current| {
            let mut next = current.clone();
            meta::metadata_mut(&mut next).remove("resourceVersion");
            if let Some(rv) = meta::resource_version(&desired) {
                meta::metadata_mut(&mut next).insert("resourceVersion".into(), json!(rv));
            }
            next["spec"]["finalizers"] = finalizers.clone();
            Ok(next)
        })
        .await?;
    Ok(negotiate::object(StatusCode::OK, output, &call.resource, &updated))
}

/// The `pods/log` query parameters the node understands.
const LOG_PARAMS: &[&str] = &[
    "follow",
    "previous",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "limitBytes",
];

/// `pods/<name>/log`: proxied to the endpoint of the node agent running
/// the pod (the Node's InternalIP and `daemonEndpoints.kubeletEndpoint`),
/// streamed back as text.
async fn log(call: &Call) -> Result<Response> {
    let current = call
        .server
        .registry
        .get(&call.resource, call.namespace(), call.name())
        .await?;
    let pod = &current.object;
    let container = super::connect::container(pod, call.name(), call.query.get("container"))?;
    let node = meta::str_field(pod, &["spec", "nodeName"]).unwrap_or_default();
    if node.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "container \"{container}\" in pod \"{}\" is waiting to start: ContainerCreating",
            call.name()
        )));
    }
    let endpoint = super::connect::node_endpoint(&call.server, node, call.name()).await?;
    // (A block: the serializer is not Send, and must be gone by the await.)
    let query = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for name in LOG_PARAMS {
            if let Some(value) = call.query.get(name) {
                query.append_pair(name, value);
            }
        }
        query.finish()
    };
    let uri = format!(
        "/containerLogs/{}/{}/{container}?{}",
        call.namespace().unwrap_or_default(),
        call.name(),
        query
    );
    let answer = call.server.node_client.get(&endpoint, &uri).await.map_err(|error| {
        tracing::warn!(%error, %endpoint, "cannot reach the node for logs");
        ApiError::BadRequest(format!("cannot reach node \"{node}\" for the logs: {error}"))
    })?;
    let (status, body) = (answer.status(), answer.into_body());
    if status != StatusCode::OK {
        let message = super::node_client::text(body).await;
        return Err(ApiError::BadRequest(message.trim().to_string()));
    }
    let mut response = axum::body::Body::new(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Applies a patch to `current`, the object `name` of `resource` as a GET
/// returns it (so a JSON patch may `test` its resourceVersion), a refusal
/// rendered as the Status kube-apiserver answers with.
///
/// A patch names a resourceVersion only to make it a precondition: when the
/// patched object still carries the version it was read at, the version is
/// dropped, and a write that races is retried on a fresh read with the
/// patch applied again, as kube-apiserver's patcher does.
fn apply_patch(patch_type: PatchType, resource: &Resource, name: &str, current: &Value, body: &Value) -> Result<Value> {
    let mut patched = patch::apply(patch_type, resource.ops.patch, current, body).map_err(|error| match error {
        PatchError::Invalid(message) => ApiError::invalid(
            &resource.group,
            &resource.kind,
            name,
            vec![crate::error::Cause {
                reason: "FieldValueInvalid",
                message,
                field: String::new(),
            }],
        ),
        PatchError::Malformed(message) => ApiError::BadRequest(message),
        PatchError::StrategicUnsupported => ApiError::UnsupportedMediaType(
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
        ),
    })?;
    if meta::resource_version(&patched).is_some() && meta::resource_version(&patched) == meta::resource_version(current)
    {
        meta::metadata_mut(&mut patched).remove("resourceVersion");
    }
    Ok(patched)
}
