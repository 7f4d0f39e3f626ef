//! The audit layer and what it learns about one request as the request
//! goes through the server.
//!
//! [`layer`] wraps the whole router. For each request it fixes the audit
//! ID (the client's `Audit-ID` header, or a new UUID), the verb, the
//! object reference (both from the path, as kube-apiserver's request info
//! has them), the source addresses and the user agent, and puts a
//! [`Recorder`] in the request's extensions. The parts of the server that
//! learn more tell the recorder:
//!
//! * authentication: the user ([`Recorder::authenticated`], which decides
//!   the level and writes the `RequestReceived` event), then whom the user
//!   impersonates ([`Recorder::impersonating`]);
//! * authorization: allowed or forbidden ([`Recorder::authorized`]);
//! * a resource handler: the request's body ([`Recorder::request_body`]).
//!
//! When the handler has answered, the layer adds the `Audit-ID` header and
//! records the status (an error's `metav1.Status` travels in the
//! response's extensions). A long-running request (a watch, a log
//! stream, exec) gets its `ResponseStarted` event then. The body is
//! wrapped, and `ResponseComplete` is written when it has been sent or
//! dropped (a watch ends when its client goes away), with the response
//! body (at `RequestResponse`, JSON, at most [`MAX_RESPONSE_BYTES`]).
//! A handler that panics leaves a `Panic` event; a request abandoned by
//! its client before the answer, a `ResponseComplete` without a status,
//! annotated `skiff.dev/audit-incomplete`.
//!
//! A request whose authentication failed never reaches a recorder's
//! user: it gets one event, at `ResponseStarted`, without a user, as
//! kube-apiserver records failed authentication.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use serde_json::Value;
use skiff_auth::{Target, UserInfo};

use super::event::{self, Event, ObjectRef, ResponseStatus, User};
use super::policy::{Decision, Level, Stage, Subject};
use super::{Audit, sensitive};
use crate::status::Status;

/// The header that carries a request's audit ID both ways.
pub const AUDIT_ID: HeaderName = HeaderName::from_static("audit-id");

/// Response bodies larger than this are not recorded.
pub const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;

const DECISION: &str = "authorization.k8s.io/decision";
const INCOMPLETE: &str = "skiff.dev/audit-incomplete";

/// What is known about one request so far; in the request's extensions
/// for the parts of the server that know more.
#[derive(Clone, Debug)]
pub struct Recorder(Arc<Mutex<Draft>>);

#[derive(Debug)]
struct Draft {
    audit: Audit,
    /// The fields every stage shares, filled in as they become known.
    event: Event,
    target: Target,
    /// Made once the user is known (or known to be missing).
    decision: Option<Decision>,
    /// `ResponseComplete` (or `Panic`) written: nothing more to do.
    finished: bool,
}

/// The middleware; only in the router when auditing is on.
pub async fn layer(State(audit): State<Audit>, mut request: Request, next: Next) -> Response {
    let received = jiff::Timestamp::now();
    let id = audit_id(request.headers());
    let (target, api_version, verb) = describe(request.method(), request.uri());
    let uri = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_string(), |p| p.as_str().to_string());
    let mut draft = Event::new(id.clone(), uri, verb, received);
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    draft.source_ips = event::source_ips(request.headers(), peer);
    draft.user_agent = header_text(request.headers(), header::USER_AGENT);
    draft.object_ref = ObjectRef::of(&target, &api_version);
    let long_running =
        crate::server::inflight::long_running(request.method(), request.uri().path(), request.uri().query());
    let recorder = Recorder(Arc::new(Mutex::new(Draft {
        audit,
        event: draft,
        target,
        decision: None,
        finished: false,
    })));
    request.extensions_mut().insert(recorder.clone());

    let mut pending = Pending(Some(recorder));
    let mut response = next.run(request).await;
    let Some(recorder) = pending.0.take() else {
        return response;
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(AUDIT_ID, value);
    }
    let capture = recorder.responded(&response, long_running);
    response.map(|body| {
        Body::new(Audited {
            inner: body,
            recorder: Some(recorder),
            captured: capture.then(Vec::new),
        })
    })
}

/// The client's audit ID, if it sent a sensible one (kube-apiserver keeps
/// the client's), or a new one.
fn audit_id(headers: &HeaderMap) -> String {
    headers
        .get(AUDIT_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// The target, API version and verb of a request, from its method and
/// path alone: a resource's Kubernetes verb, or a non-resource URL's
/// lower-cased method.
fn describe(method: &Method, uri: &Uri) -> (Target, String, String) {
    let watch = crate::server::Query::parse(uri.query()).watch();
    match crate::request::parse(method, uri.path(), watch) {
        Some(request) => (
            Target::Resource(crate::auth::resource_attributes(&request)),
            request.version.clone(),
            request.verb.as_str().to_string(),
        ),
        None => (
            Target::NonResource(uri.path().to_string()),
            String::new(),
            method.as_str().to_ascii_lowercase(),
        ),
    }
}

fn header_text(headers: &HeaderMap, name: HeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

impl Recorder {
    fn draft(&self) -> MutexGuard<'_, Draft> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The request was authenticated as `user`: decides the level, and
    /// writes the `RequestReceived` event.
    pub fn authenticated(&self, user: &UserInfo) {
        let mut draft = self.draft();
        draft.event.user = User::from(user);
        let decision = draft.audit.policy.decide(&Subject {
            user: Some(user),
            verb: &draft.event.verb,
            target: &draft.target,
        });
        draft.decision = Some(decision);
        draft.emit(Stage::RequestReceived);
    }

    /// The request runs as `user`, whom the authenticated user
    /// impersonates.
    pub fn impersonating(&self, user: &UserInfo) {
        self.draft().event.impersonated_user = Some(User::from(user));
    }

    /// The authorizer allowed the request, or not.
    pub fn authorized(&self, allowed: bool) {
        let decision = if allowed { "allow" } else { "forbid" };
        self.draft().event.annotations.insert(DECISION.into(), decision.into());
    }

    /// The body of a resource request, as sent. Kept when the level is
    /// `Request` or more and the verb writes; a create's object also
    /// names the object reference. A body that is a Secret lowers the
    /// event to `Metadata` ([`sensitive`]).
    pub fn request_body(&self, content_type: Option<&str>, body: &[u8]) {
        let mut draft = self.draft();
        let Some(level) = draft.decision.as_ref().map(|d| d.level) else {
            return;
        };
        let verb = draft.event.verb.as_str();
        if level == Level::None
            || body.is_empty()
            || !matches!(verb, "create" | "update" | "patch" | "delete" | "deletecollection")
        {
            return;
        }
        let unnamed = verb == "create" && draft.event.object_ref.as_ref().is_some_and(|r| r.name.is_empty());
        if level < Level::Request && !unnamed {
            return;
        }
        let decoded = match crate::body::patch_type(content_type) {
            Ok(patch_type) if verb == "patch" => crate::body::parse_patch(patch_type, body),
            _ => crate::body::decode_object(content_type, body),
        };
        let Ok(mut object) = decoded else {
            return;
        };
        if unnamed
            && let Some(name) = object.pointer("/metadata/name").and_then(Value::as_str)
            && let Some(reference) = draft.event.object_ref.as_mut()
        {
            reference.name = name.to_string();
        }
        if sensitive::carries_secret(&object) {
            draft.lower_to_metadata();
            return;
        }
        if level >= Level::Request {
            if draft.decision.as_ref().is_some_and(|d| d.omit_managed_fields) {
                event::omit_managed_fields(&mut object);
            }
            draft.event.request_object = Some(object);
        }
    }

    /// The handler answered with `response`: records its status, writes
    /// `ResponseStarted` for a long-running request; whether to keep the
    /// body for `ResponseComplete`.
    fn responded(&self, response: &Response, long_running: bool) -> bool {
        let mut draft = self.draft();
        let code = response.status().as_u16();
        draft.event.response_status = Some(ResponseStatus::of(code, response.extensions().get::<Status>()));
        if draft.decision.is_none() {
            // Authentication failed: one event, as kube-apiserver writes it.
            draft.decide_without_user();
            draft.emit(Stage::ResponseStarted);
            draft.finished = true;
            return false;
        }
        if long_running {
            draft.emit(Stage::ResponseStarted);
            return false;
        }
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/json"));
        is_json
            && draft
                .decision
                .as_ref()
                .is_some_and(|d| d.level == Level::RequestResponse)
    }

    /// The response body has been sent (or dropped): writes
    /// `ResponseComplete`, with the body if it was kept whole.
    fn completed(&self, body: Option<Vec<u8>>) {
        let mut draft = self.draft();
        if draft.finished {
            return;
        }
        draft.finished = true;
        if let Some(mut object) = body.and_then(|b| serde_json::from_slice::<Value>(&b).ok()) {
            if sensitive::carries_secret(&object) {
                draft.lower_to_metadata();
            } else {
                if draft.decision.as_ref().is_some_and(|d| d.omit_managed_fields) {
                    event::omit_managed_fields(&mut object);
                }
                draft.event.response_object = Some(object);
            }
        }
        draft.emit(Stage::ResponseComplete);
    }

    /// The request ended without a response: the handler panicked, or the
    /// client went away first.
    fn abandoned(&self, panicked: bool) {
        let mut draft = self.draft();
        if draft.finished {
            return;
        }
        draft.finished = true;
        if draft.decision.is_none() {
            draft.decide_without_user();
        }
        if panicked {
            draft.event.response_status = Some(ResponseStatus {
                status: "Failure",
                reason: "InternalError",
                message: "the API server panicked while serving the request".into(),
                code: 500,
                ..Default::default()
            });
            draft.emit(Stage::Panic);
        } else {
            draft
                .event
                .annotations
                .insert(INCOMPLETE.into(), "the client went away before the response".into());
            draft.emit(Stage::ResponseComplete);
        }
    }
}

impl Draft {
    fn decide_without_user(&mut self) {
        self.decision = Some(self.audit.policy.decide(&Subject {
            user: None,
            verb: &self.event.verb,
            target: &self.target,
        }));
    }

    /// A body turned out to hold a Secret: `Metadata` at most, no bodies.
    fn lower_to_metadata(&mut self) {
        if let Some(decision) = self.decision.as_mut() {
            decision.level = decision.level.min(Level::Metadata);
        }
        self.event.request_object = None;
        self.event.response_object = None;
    }

    /// Writes the event for `stage`, if the policy records it.
    fn emit(&mut self, stage: Stage) {
        let Some(decision) = &self.decision else {
            return;
        };
        if !decision.records(stage) {
            return;
        }
        let level = decision.level;
        let event = &mut self.event;
        event.level = level;
        event.stage = stage;
        event.stage_timestamp = event::micro_time(jiff::Timestamp::now());
        let line = if stage == Stage::RequestReceived {
            // Nothing has been answered (or read) yet.
            let status = event.response_status.take();
            let line = event.line();
            event.response_status = status;
            line
        } else {
            if level < Level::Request {
                event.request_object = None;
            }
            if level < Level::RequestResponse {
                event.response_object = None;
            }
            event.line()
        };
        self.audit.sink.send(line);
    }
}

/// Writes `Panic` (or an abandoned request's event) if the request never
/// gets its response.
struct Pending(Option<Recorder>);

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(recorder) = self.0.take() {
            recorder.abandoned(std::thread::panicking());
        }
    }
}

/// A response body that writes `ResponseComplete` when it has been sent
/// or dropped, keeping a copy of itself when asked to.
struct Audited {
    inner: Body,
    recorder: Option<Recorder>,
    captured: Option<Vec<u8>>,
}

impl Audited {
    fn finish(&mut self) {
        if let Some(recorder) = self.recorder.take() {
            recorder.completed(self.captured.take());
        }
    }
}

impl HttpBody for Audited {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(kept), Some(data)) = (this.captured.as_mut(), frame.data_ref()) {
                    if kept.len() + data.len() <= MAX_RESPONSE_BYTES {
                        kept.extend_from_slice(data);
                    } else {
                        this.captured = None;
                    }
                }
            }
            Poll::Ready(None | Some(Err(_))) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Audited {
    fn drop(&mut self) {
        self.finish();
    }
}
