//! `call-peer`: the native peer of the Wasm calls benchmark
//! (`cargo xtask bench net`), run as a process or in a runc container.
//!
//! * `call-peer serve ADDR` answers every request with a short text, as
//!   the Wasm test component does.
//! * `call-peer proxy ADDR` forwards `/proxy/<rest>` to `$TARGET_URL<rest>`
//!   over a pooled keep-alive client and passes the answer on, as the
//!   Wasm component it is compared with (wstd's `http_server_proxy`
//!   example) does; other paths are 404.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Body = BoxBody<Bytes, hyper::Error>;

fn text(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
}

async fn proxy(request: Request<Incoming>, target: &str, client: &Client<HttpConnector, Incoming>) -> Response<Body> {
    let Some(rest) = request
        .uri()
        .path_and_query()
        .and_then(|p| p.as_str().strip_prefix("/proxy/"))
    else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    let Ok(uri) = format!("{target}{rest}").parse::<hyper::Uri>() else {
        return text(StatusCode::BAD_REQUEST, "bad target\n");
    };
    let (mut parts, body) = request.into_parts();
    parts.uri = uri;
    parts.headers.remove(hyper::header::HOST);
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => response.map(|b| b.boxed()),
        Err(_) => text(StatusCode::BAD_GATEWAY, "the target did not answer\n"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mode, addr) = match (args.next(), args.next()) {
        (Some(mode), Some(addr)) => (mode, addr),
        _ => anyhow::bail!("usage: call-peer serve|proxy ADDR"),
    };
    let addr: SocketAddr = addr.parse().context("ADDR is ip:port")?;
    let target = match mode.as_str() {
        "serve" => None,
        "proxy" => Some(std::env::var("TARGET_URL").context("proxy needs TARGET_URL")?),
        other => anyhow::bail!("unknown mode {other}"),
    };
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new()).build(connector);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (client, target) = (client.clone(), target.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (client, target) = (client.clone(), target.clone());
                async move {
                    Ok::<_, Infallible>(match &target {
                        None => text(StatusCode::OK, "hello from a native peer\n"),
                        Some(target) => proxy(request, target, &client).await,
                    })
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
