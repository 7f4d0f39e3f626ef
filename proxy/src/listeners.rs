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
//! without `SO_REUSEPORT`) is tried again on its own, after 200 ms, then
//! twice as long each time up to 10 s ([`Backoff`]), until it binds or
//! leaves the table. Its first failure is logged and recorded as a
//! Warning Event, [`FAILED_TO_LISTEN`], on the Service.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use skiff_client::events::{Kind, Recorder};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

use crate::Shared;
use crate::forward;
use crate::table::Frontend;

/// Pending connections per listener.
const BACKLOG: u32 = 1024;
/// The first wait before binding a refused address again.
const RETRY_FIRST: Duration = Duration::from_millis(200);
/// The longest wait between two attempts.
const RETRY_MAX: Duration = Duration::from_secs(10);
/// The reason of the Event saying a Service's address cannot be bound.
pub(crate) const FAILED_TO_LISTEN: &str = "FailedToListen";

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

/// The waits between attempts: from `first`, doubling, at most `max`.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            next: first.min(max),
            max,
        }
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    /// The wait before the next attempt; never ends.
    fn next(&mut self) -> Option<Duration> {
        let wait = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        Some(wait)
    }
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
            let task = match bind(*addr) {
                Ok(listener) => tokio::spawn(accept(listener, *addr, shared.clone())),
                Err(error) => {
                    tracing::warn!(%error, %addr, "cannot listen for a Service; retrying with back-off");
                    self.recorder.record(
                        &frontend.object,
                        Kind::Warning,
                        FAILED_TO_LISTEN,
                        "Listen",
                        format!(
                            "cannot listen on {addr} for Service port {}: {error}; retrying with back-off",
                            frontend.service
                        ),
                    );
                    tokio::spawn(retry(*addr, shared.clone()))
                }
            };
            self.tasks.insert(*addr, task);
        }
    }

    /// How many addresses are served or being bound.
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }
}

/// Binds `addr` again and again, waiting longer each time, then serves it.
async fn retry(addr: SocketAddr, shared: Arc<Shared>) {
    let mut waits = Backoff::new(RETRY_FIRST, RETRY_MAX);
    let listener = loop {
        tokio::time::sleep(waits.next().unwrap_or(RETRY_MAX)).await;
        match bind(addr) {
            Ok(listener) => break listener,
            Err(error) => tracing::debug!(%error, %addr, "still cannot listen for a Service"),
        }
    };
    tracing::info!(%addr, "listening for a Service after retrying");
    accept(listener, addr, shared).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_wait_up_to_the_cap() {
        let ms = Duration::from_millis;
        let waits: Vec<Duration> = Backoff::new(RETRY_FIRST, RETRY_MAX).take(9).collect();
        assert_eq!(
            waits,
            [
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(3200),
                ms(6400),
                RETRY_MAX,
                RETRY_MAX,
                RETRY_MAX
            ]
        );
        assert_eq!(Backoff::new(ms(50), ms(20)).next(), Some(ms(20)), "never past the cap");
    }
}
