//! The sockets frontends listen on, bound and closed as the table
//! changes.
//!
//! Each is bound with `SO_REUSEPORT`, so several nodes' proxies on one
//! machine (a test cluster, or agents sharing a host) can all serve the
//! same ClusterIP: the kernel spreads connections among them, and any of
//! them routes to every endpoint. Closing a listener leaves the
//! connections it accepted running.
//!
//! An address that cannot be bound (another process holds the port
//! without `SO_REUSEPORT`) is tried again on its own with back-off
//! ([`crate::retry`]) until it binds or leaves the table. Its first
//! failure is logged and recorded as a Warning Event, [`FAILED_TO_LISTEN`],
//! on the Service.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use skiff_client::events::{Kind, Recorder};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

use crate::Shared;
use crate::forward;
use crate::retry::{self, Backoff, FAILED_TO_LISTEN};
use crate::table::Frontend;

/// Pending connections per listener.
const BACKLOG: u32 = 1024;

/// One task per frontend address: serving it, or trying to bind it.
pub(crate) struct Listeners {
    tasks: HashMap<SocketAddr, JoinHandle<()>>,
    recorder: Recorder,
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for task in self.tasks.values() {
            task.abort();
        }
    }
}

pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

impl Listeners {
    /// Listeners whose Events `recorder` writes.
    pub(crate) fn new(recorder: Recorder) -> Listeners {
        Listeners {
            tasks: HashMap::new(),
            recorder,
        }
    }

    /// Listens on exactly the addresses of `wanted`, the table's
    /// frontends.
    pub(crate) fn reconcile(&mut self, wanted: &HashMap<SocketAddr, Arc<Frontend>>, shared: &Arc<Shared>) {
        self.tasks.retain(|addr, task| {
            let keep = wanted.contains_key(addr);
            if !keep {
                task.abort();
            }
            keep
        });
        for (addr, frontend) in wanted {
            if self.tasks.contains_key(addr) {
                continue;
            }
            let (addr, recorder, frontend) = (*addr, self.recorder.clone(), frontend.clone());
            let report = move |error: &std::io::Error| {
                recorder.record(
                    &frontend.object,
                    Kind::Warning,
                    FAILED_TO_LISTEN,
                    "Listen",
                    format!(
                        "cannot listen on {addr} for Service port {}: {error}; retrying with back-off",
                        frontend.service
                    ),
                );
            };
            let shared = shared.clone();
            let task = tokio::spawn(async move {
                let listener = retry::until_bound(addr, "a Service", Backoff::default(), bind, report).await;
                accept(listener, addr, shared).await;
            });
            self.tasks.insert(addr, task);
        }
    }

    /// How many addresses are served or being bound.
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }
}

async fn accept(listener: TcpListener, addr: SocketAddr, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(forward::connection(stream, addr, shared.clone()));
            }
            Err(error) => {
                tracing::debug!(%error, %addr, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
