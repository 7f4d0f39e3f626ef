//! `wasi:http/proxy` components: a fresh instance per request, from a
//! pre-instantiated [`ProxyPre`], so a Wasm service holds no instance
//! between requests. All instances of a service share its
//! [`CpuBudget`](crate::CpuBudget); each request is bounded by its own
//! time limit ([`cpu`] applies both at epoch ticks). A service whose
//! environment names [`ServiceMetrics`] counts its requests there
//! ([`crate::metrics`]). The calls an instance makes carry the W3C trace
//! context of the request it serves ([`crate::outgoing`]).

use std::sync::Arc;
use std::time::Instant;

use wasmtime::Store;
use wasmtime::component::Component;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
pub use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::cpu::{self, Run};
use super::metrics::ServiceMetrics;
use super::state::{Environment, State};
use super::{Termination, WasmError, classify};

/// The HTTP status a request whose instance failed is answered with: 503
/// when the instance ran out of time or memory, 400 for a request
/// wasi:http cannot represent, 500 otherwise.
pub fn failure_status(error: &WasmError) -> http::StatusCode {
    match error {
        WasmError::Trap {
            termination: Termination::DeadlineExceeded | Termination::OomKilled,
            ..
        } => http::StatusCode::SERVICE_UNAVAILABLE,
        WasmError::Request(_) => http::StatusCode::BAD_REQUEST,
        _ => http::StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A component ready to serve requests.
#[derive(Clone)]
pub struct HttpService {
    pre: ProxyPre<State>,
    env: Arc<Environment>,
    digest: String,
}

impl std::fmt::Debug for HttpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpService")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl HttpService {
    pub(crate) fn new(
        linker: &wasmtime::component::Linker<State>,
        component: &Component,
        digest: String,
        env: Environment,
    ) -> Result<HttpService, WasmError> {
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| WasmError::Link(format!("{e:#}")))?;
        let pre = ProxyPre::new(pre).map_err(|e| WasmError::Link(format!("{e:#}")))?;
        Ok(HttpService {
            pre,
            env: Arc::new(env),
            digest,
        })
    }

    pub fn digest(&self) -> &str {
        &self.digest
    }

    fn store(&self) -> Result<Store<State>, WasmError> {
        let engine = self.pre.instance_pre().engine();
        let mut store = Store::new(engine, State::new(&self.env)?);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(cpu::at_epoch);
        Ok(store)
    }

    /// The bounds of one request's instance.
    fn run(&self) -> Run {
        Run::new(self.env.cpu.clone(), self.env.limits.timeout, None)
    }

    /// Makes an instance and drops it without serving anything: what each
    /// request costs before the guest's handler runs.
    pub async fn instantiate(&self) -> Result<(), WasmError> {
        let mut store = self.store()?;
        let mut run = self.run();
        run.drive(self.pre.instantiate_async(&mut store))
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }

    /// Serves one request in a new instance. The response body may still
    /// be streaming from the instance when this returns; the instance lives
    /// until it is done.
    ///
    /// The guest runs on the caller's task until it answers: handing it to
    /// a task of its own would cost a wake-up of another worker thread and
    /// another to hand the answer back, which on a small machine is more
    /// than the instance itself. Only a guest still writing its body when
    /// it has answered gets a task, to finish in the background.
    pub async fn handle<B>(&self, request: hyper::Request<B>) -> Result<hyper::Response<HyperOutgoingBody>, WasmError>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let Some(metrics) = &self.env.metrics else {
            return self.serve(request, None).await;
        };
        let in_flight = metrics.arrived();
        let served = self.serve(request, Some(metrics)).await;
        let code = match &served {
            Ok(response) => response.status(),
            Err(error) => failure_status(error),
        };
        in_flight.answered(code.as_u16());
        served
    }

    async fn serve<B>(
        &self,
        request: hyper::Request<B>,
        metrics: Option<&ServiceMetrics>,
    ) -> Result<hyper::Response<HyperOutgoingBody>, WasmError>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let begun = metrics.map(|_| Instant::now());
        let mut store = self.store()?;
        store.data_mut().continue_trace(request.headers());
        let (sender, mut receiver) = tokio::sync::oneshot::channel();
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(wasmtime_wasi_http::p2::bindings::http::types::Scheme::Http, request)
            .map_err(|e| WasmError::Request(e.to_string()))?;
        let outparam = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(|e| WasmError::Request(e.to_string()))?;
        let mut run = self.run();
        let proxy = run
            .drive(self.pre.instantiate_async(&mut store))
            .await
            .map_err(|e| classify(&e))?;
        if let (Some(metrics), Some(begun)) = (metrics, begun) {
            metrics.instantiated(begun.elapsed());
        }
        let mut guest = Box::pin(async move {
            let handler = proxy.wasi_http_incoming_handler();
            run.drive(handler.call_handle(&mut store, request, outparam)).await
        });
        let answered = tokio::select! {
            biased;
            answered = &mut receiver => answered,
            returned = &mut guest => {
                // It returned (or trapped): its answer, if it gave one, is
                // waiting.
                return match receiver.try_recv() {
                    Ok(answer) => answer_of(answer),
                    Err(_) => Err(match returned {
                        Err(error) => classify(&error),
                        Ok(()) => WasmError::Guest("the component returned without a response".into()),
                    }),
                };
            }
        };
        match answered {
            Ok(answer) => {
                // It answered and may still be writing its body.
                let running = std::future::poll_fn(|cx| std::task::Poll::Ready(guest.as_mut().poll(cx).is_pending()));
                if running.await {
                    tokio::spawn(guest);
                }
                answer_of(answer)
            }
            // It dropped its response unset: why, once it ends.
            Err(_) => Err(match guest.await {
                Err(error) => classify(&error),
                Ok(()) => WasmError::Guest("the component returned without a response".into()),
            }),
        }
    }
}

/// The response a guest set, or the error code it set instead.
fn answer_of(
    answer: Result<hyper::Response<HyperOutgoingBody>, wasmtime_wasi_http::p2::bindings::http::types::ErrorCode>,
) -> Result<hyper::Response<HyperOutgoingBody>, WasmError> {
    answer.map_err(|code| WasmError::Guest(format!("the component answered with an error: {code:?}")))
}
