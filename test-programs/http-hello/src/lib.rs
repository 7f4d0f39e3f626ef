//! `http-hello`: the well-behaved `wasi:http/proxy` guest of skiff's tests.
//!
//! | request            | reply (status 200, `text/plain`)                                  |
//! |--------------------|-------------------------------------------------------------------|
//! | `GET /sleep?ms=N`  | waits N ms on a `wasi:clocks` pollable, then `slept N ms`         |
//! | `GET /count`       | this instance's request count: always `1` when the host creates a fresh instance per request |
//! | anything else      | `hello from skiff`, `path: <path>`, then `greeting: <$GREETING>` if that env var is set and `config: <contents>` if `/config/greeting` is readable |
//!
//! A missing or malformed `ms` gets a 400.

use std::sync::atomic::{AtomicU64, Ordering};

use wasi::clocks::monotonic_clock;
use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

/// Requests this instance has handled.
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// Largest chunk `blocking-write-and-flush` accepts in one call.
const WRITE_CHUNK: usize = 4096;

struct HttpHello;

impl Guest for HttpHello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let count = REQUESTS.fetch_add(1, Ordering::Relaxed) + 1;
        let target = request.path_with_query().unwrap_or_else(|| "/".to_string());
        let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
        let (status, body) = match path {
            "/sleep" => sleep(query),
            "/count" => (200, format!("{count}\n")),
            _ => (200, hello(path)),
        };
        respond(response_out, status, &body);
    }
}

fn hello(path: &str) -> String {
    let mut body = format!("hello from skiff\npath: {path}\n");
    if let Ok(greeting) = std::env::var("GREETING") {
        body.push_str(&format!("greeting: {greeting}\n"));
    }
    if let Ok(config) = std::fs::read_to_string("/config/greeting") {
        body.push_str(&format!("config: {}\n", config.trim_end()));
    }
    body
}

fn sleep(query: &str) -> (u16, String) {
    let ms = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))
        .and_then(|value| value.parse::<u64>().ok());
    match ms {
        Some(ms) => {
            monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
            (200, format!("slept {ms} ms\n"))
        }
        None => (400, "usage: GET /sleep?ms=N\n".to_string()),
    }
}

/// Sends `body` with `status`; if the host refuses the body there is no one
/// left to tell, so the instance just ends.
fn respond(response_out: ResponseOutparam, status: u16, body: &str) {
    let headers = Fields::new();
    // Header names and values here are constants the host accepts.
    let _ = headers.append("content-type", b"text/plain; charset=utf-8");
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(response_out, Ok(response));
    if let Ok(stream) = outgoing.write() {
        for chunk in body.as_bytes().chunks(WRITE_CHUNK) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
        // The stream is a child of the body and must go first.
        drop(stream);
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

wasi::http::proxy::export!(HttpHello);
