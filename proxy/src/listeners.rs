//! The sockets frontends listen on, bound and closed as the table
//! changes.
//!
//! Each is bound with `SO_REUSEPORT`, so several nodes' proxies on one
//! machine (a test cluster, or agents sharing a host) can all serve the
//! same ClusterIP: the kernel spreads connections among them, and any of
//! them routes to every endpoint. Closing a listener leaves the
//! connections it accepted running.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

use crate::Shared;
use crate::forward;

/// Pending connections per listener.
const BACKLOG: u32 = 1024;

#[derive(Default)]
pub(crate) struct Listeners {
    bound: HashMap<SocketAddr, JoinHandle<()>>,
    /// Addresses that could not be bound, reported once each.
    failed: HashSet<SocketAddr>,
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for task in self.bound.values() {
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
    /// Listens on exactly the addresses in `wanted`.
    pub(crate) fn reconcile(&mut self, wanted: &HashSet<SocketAddr>, shared: &Arc<Shared>) {
        self.bound.retain(|addr, task| {
            let keep = wanted.contains(addr);
            if !keep {
                task.abort();
            }
            keep
        });
        self.failed.retain(|addr| wanted.contains(addr));
        for addr in wanted {
            if self.bound.contains_key(addr) {
                continue;
            }
            match bind(*addr) {
                Ok(listener) => {
                    self.failed.remove(addr);
                    self.bound
                        .insert(*addr, tokio::spawn(accept(listener, *addr, shared.clone())));
                }
                Err(error) => {
                    if self.failed.insert(*addr) {
                        tracing::warn!(%error, %addr, "cannot listen for a Service; retrying when Services change");
                    }
                }
            }
        }
    }

    pub(crate) fn addresses(&self) -> impl Iterator<Item = &SocketAddr> {
        self.bound.keys()
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
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}
