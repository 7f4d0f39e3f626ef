//! Calls out of an instance: `wasi:http/outgoing-handler` requests go to
//! the [`Outgoing`] the instance's [`Environment`](crate::Environment)
//! names, or are refused (`HTTP-request-denied`) when it names none.
//!
//! This crate knows nothing of pods, Services or policies: whoever builds
//! the environment (the node agent) decides where a request goes, how it
//! is bounded and whether it is allowed. The trait is that seam.

use std::fmt::Debug;
use std::pin::Pin;
use std::sync::Arc;

use wasmtime_wasi_http::WasiHttpHooks;
pub use wasmtime_wasi_http::{Error as OutgoingError, RequestOptions, WasiBody};

/// A response on its way, or why there is none. The error becomes the
/// `wasi:http/types.error-code` the guest sees.
pub type Sending = Pin<Box<dyn Future<Output = Result<http::Response<WasiBody>, OutgoingError>> + Send>>;

/// Where an instance's outgoing HTTP requests go.
///
/// `request` carries an absolute URI (scheme and authority as the guest
/// set them) and a `host` header; `options` holds the timeouts the guest
/// asked for, each `None` when it asked for none.
pub trait Outgoing: Send + Sync + Debug {
    fn send(&self, request: http::Request<WasiBody>, options: RequestOptions) -> Sending;
}

/// The hooks of an instance's `wasi:http` context.
#[derive(Debug, Default)]
pub(crate) struct Hooks(pub(crate) Option<Arc<dyn Outgoing>>);

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), OutgoingError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), OutgoingError>> + Send>,
                    ),
                    OutgoingError,
                >,
            > + Send,
    > {
        let sending = self
            .0
            .as_ref()
            .map(|outgoing| outgoing.send(request, options.unwrap_or_default()));
        Box::new(async move {
            let Some(sending) = sending else {
                return Err(OutgoingError::HttpRequestDenied);
            };
            let response = sending.await?;
            // The connection, if any, is driven by whoever sent the
            // request; nothing is left for the guest to wait on.
            let done: Box<dyn Future<Output = Result<(), OutgoingError>> + Send> = Box::new(std::future::ready(Ok(())));
            Ok((response, done))
        })
    }
}
