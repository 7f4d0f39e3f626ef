//! hello-http: a `wasi:http/proxy` component that answers every request
//! with a greeting and the path it was asked for.
//!
//! The greeting is the `GREETING` environment variable (set it in the
//! Deployment's `env`), or `Hello` when unset:
//!
//! ```text
//! Hello from hello-http on skiff
//! path: /some/path
//! GREETING: (unset)
//! ```
//!
//! The host gives each request a fresh instance, so nothing here survives
//! from one request to the next.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct HelloHttp;

impl Guest for HelloHttp {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_else(|| "/".to_string());
        let path = target.split('?').next().unwrap_or("/");
        let env = std::env::var("GREETING").ok();
        let greeting = env.as_deref().unwrap_or("Hello");
        let body = format!(
            "{greeting} from hello-http on skiff\npath: {path}\nGREETING: {}\n",
            env.as_deref().unwrap_or("(unset)")
        );
        send(response_out, &body);
    }
}

/// Sends `body` as a 200 `text/plain` response, in the chunks a WASI output
/// stream accepts (at most 4 KiB per blocking write).
fn send(response_out: ResponseOutparam, body: &str) {
    let headers = Fields::new();
    let _ = headers.append("content-type", b"text/plain; charset=utf-8");
    let response = OutgoingResponse::new(headers);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(response_out, Ok(response));
    if let Ok(stream) = outgoing.write() {
        for chunk in body.as_bytes().chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
        // The stream belongs to the body and has to be dropped first.
        drop(stream);
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

wasi::http::proxy::export!(HelloHttp);
