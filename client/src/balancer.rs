//! A client-side balancer over several API servers, as the k3s agent
//! keeps one: a TCP listener on loopback that a component's kube client
//! dials instead of a server, and that passes each connection to a live
//! server.
//!
//! TLS is not touched: the client's handshake goes through to the
//! server, whose certificate must cover the balancer's address
//! (`127.0.0.1`; skiff's serving certificates always do). So a client's
//! credentials, watches and streams work as if it dialled the server.
//!
//! One server is preferred at a time, so that a client's connections stay
//! on one server while it lives. When a connection to it cannot be made,
//! the balancer marks it down for a while and dials the next; connections
//! already open end when their server dies, and the client's next one
//! (kube-runtime's watchers reconnect on their own) goes to a live
//! server. A server that accepts connections but cannot serve is not
//! detected here: a skiff server whose store has lost its quorum still
//! answers, with errors, and the client retries.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

/// How long a server that refused a connection is passed over.
const DOWN_FOR: Duration = Duration::from_secs(5);

/// How long one dial may take before the next server is tried.
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);

/// A running balancer; it stops when dropped.
#[derive(Debug)]
pub struct Balancer {
    addr: SocketAddr,
    servers: Arc<Servers>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The servers, in the order they were given, and which one is preferred.
#[derive(Debug)]
struct Servers {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// `host:port` of each server, and until when it is passed over.
    servers: Vec<(String, Option<Instant>)>,
    preferred: usize,
}

impl Servers {
    /// The order to dial in: the preferred server first, then the others
    /// in turn; servers marked down go last, in case all are.
    fn order(&self, now: Instant) -> Vec<(usize, String)> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        let n = state.servers.len();
        let turn = (0..n).map(|i| (state.preferred + i) % n);
        let (up, down): (Vec<usize>, Vec<usize>) =
            turn.partition(|&i| state.servers[i].1.is_none_or(|until| until <= now));
        up.into_iter()
            .chain(down)
            .map(|i| (i, state.servers[i].0.clone()))
            .collect()
    }

    fn connected(&self, index: usize) {
        if let Ok(mut state) = self.state.lock()
            && let Some(server) = state.servers.get_mut(index)
        {
            server.1 = None;
            if state.preferred != index {
                tracing::info!(server = %state.servers[index].0, "API connections now go to this server");
                state.preferred = index;
            }
        }
    }

    fn failed(&self, index: usize, now: Instant) {
        if let Ok(mut state) = self.state.lock()
            && let Some(server) = state.servers.get_mut(index)
        {
            server.1 = Some(now + DOWN_FOR);
        }
    }
}

impl Balancer {
    /// Starts a balancer over `servers` (`host:port` each, at least one)
    /// on an ephemeral loopback port.
    pub async fn start(servers: Vec<String>) -> std::io::Result<Balancer> {
        if servers.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a balancer needs at least one server",
            ));
        }
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let servers = Arc::new(Servers {
            state: Mutex::new(State {
                servers: servers.into_iter().map(|s| (s, None)).collect(),
                preferred: 0,
            }),
        });
        let task = tokio::spawn(accept(listener, servers.clone()));
        Ok(Balancer { addr, servers, task })
    }

    /// Where clients dial: `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`, the URL a kube client is given.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The server connections go to now.
    pub fn preferred(&self) -> Option<String> {
        let state = self.servers.state.lock().ok()?;
        state.servers.get(state.preferred).map(|s| s.0.clone())
    }
}

async fn accept(listener: TcpListener, servers: Arc<Servers>) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(error) => {
                tracing::warn!(%error, "balancer accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let servers = servers.clone();
        tokio::spawn(async move {
            let Some(mut server) = dial(&servers).await else {
                // Every server refused: the client sees its connection end
                // and retries, as it would against one dead server.
                return;
            };
            let mut client = client;
            let _ = client.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}

/// A connection to the first server that takes one.
async fn dial(servers: &Servers) -> Option<TcpStream> {
    for (index, addr) in servers.order(Instant::now()) {
        match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                servers.connected(index);
                return Some(stream);
            }
            Ok(Err(error)) => tracing::debug!(server = %addr, %error, "API server refused a connection"),
            Err(_) => tracing::debug!(server = %addr, "API server did not accept a connection in time"),
        }
        servers.failed(index, Instant::now());
    }
    tracing::warn!("no API server takes connections");
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server that answers each connection with its name, then closes.
    async fn named(name: &'static str) -> (String, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(name.as_bytes()).await;
            }
        });
        (addr, task)
    }

    async fn ask(balancer: &Balancer) -> String {
        let mut stream = TcpStream::connect(balancer.addr()).await.unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer).await;
        answer
    }

    #[tokio::test]
    async fn connections_stay_on_one_server_and_move_when_it_dies() {
        let (a, a_task) = named("a").await;
        let (b, _b_task) = named("b").await;
        // A port nobody listens on, first in the list.
        let dead = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let balancer = Balancer::start(vec![dead, a.clone(), b.clone()]).await.unwrap();
        assert_eq!(ask(&balancer).await, "a");
        assert_eq!(ask(&balancer).await, "a", "the live server is kept");
        assert_eq!(balancer.preferred(), Some(a));
        a_task.abort();
        let _ = a_task.await;
        assert_eq!(ask(&balancer).await, "b");
        assert_eq!(balancer.preferred(), Some(b));
    }

    #[tokio::test]
    async fn no_server_at_all_ends_the_connection() {
        let dead = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let balancer = Balancer::start(vec![dead]).await.unwrap();
        assert_eq!(ask(&balancer).await, "");
        assert!(Balancer::start(Vec::new()).await.is_err());
    }
}
