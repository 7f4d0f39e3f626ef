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
//!
//! Which servers there are can follow the cluster
//! ([`Balancer::follow_endpoints`]): the `default/kubernetes` Endpoints
//! list the servers alive now, as the k3s agent's balancer learns them,
//! so an agent given one server finds the others before it needs them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Endpoints;
use kube::runtime::{WatchStreamExt, watcher};
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
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
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
    fn order(&self, now: Instant) -> Vec<String> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        let n = state.servers.len();
        let turn = (0..n).map(|i| (state.preferred + i) % n);
        let (up, down): (Vec<usize>, Vec<usize>) =
            turn.partition(|&i| state.servers[i].1.is_none_or(|until| until <= now));
        up.into_iter().chain(down).map(|i| state.servers[i].0.clone()).collect()
    }

    fn connected(&self, addr: &str) {
        if let Ok(mut state) = self.state.lock()
            && let Some(index) = state.servers.iter().position(|s| s.0 == addr)
        {
            state.servers[index].1 = None;
            if state.preferred != index {
                tracing::info!(server = %addr, "API connections now go to this server");
                state.preferred = index;
            }
        }
    }

    fn failed(&self, addr: &str, now: Instant) {
        if let Ok(mut state) = self.state.lock()
            && let Some(server) = state.servers.iter_mut().find(|s| s.0 == addr)
        {
            server.1 = Some(now + DOWN_FOR);
        }
    }

    /// Makes `servers` the servers; the preferred one stays preferred
    /// while it is listed, and those that stay keep their marks. Returns
    /// whether anything changed.
    fn replace(&self, servers: Vec<String>) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        if servers.is_empty() || state.servers.iter().map(|s| &s.0).eq(servers.iter()) {
            return false;
        }
        let preferred = state.servers.get(state.preferred).map(|s| s.0.clone());
        let next: Vec<(String, Option<Instant>)> = servers
            .into_iter()
            .map(|addr| {
                let mark = state.servers.iter().find(|s| s.0 == addr).and_then(|s| s.1);
                (addr, mark)
            })
            .collect();
        state.preferred = next.iter().position(|s| Some(&s.0) == preferred.as_ref()).unwrap_or(0);
        state.servers = next;
        true
    }

    fn list(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|state| state.servers.iter().map(|s| s.0.clone()).collect())
            .unwrap_or_default()
    }
}

/// The servers an Endpoints object lists: each subset's addresses at its
/// `https` port (or its only port), as `host:port`.
pub fn endpoint_servers(endpoints: &Endpoints) -> Vec<String> {
    let mut servers = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ports = subset.ports.as_deref().unwrap_or_default();
        let port = ports
            .iter()
            .find(|p| p.name.as_deref() == Some("https"))
            .or_else(|| (ports.len() == 1).then(|| &ports[0]))
            .map(|p| p.port);
        let Some(port) = port else { continue };
        for address in subset.addresses.iter().flatten() {
            let server = match address.ip.parse::<std::net::IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, u16::try_from(port).unwrap_or(443)).to_string(),
                Err(_) => continue,
            };
            if !servers.contains(&server) {
                servers.push(server);
            }
        }
    }
    servers
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
        Ok(Balancer {
            addr,
            servers,
            tasks: vec![task],
        })
    }

    /// From now on, the servers are those the `default/kubernetes`
    /// Endpoints list (read with `client`, which may dial through this
    /// balancer), followed by those given at the start that they do not
    /// list (a load balancer's address, say); `changed` hears each new
    /// list. Until the Endpoints are read, or while they list none, the
    /// servers stay as they are.
    pub fn follow_endpoints(&mut self, client: kube::Client, changed: impl Fn(&[String]) + Send + 'static) {
        let given = self.servers.list();
        let servers = self.servers.clone();
        let api = kube::Api::<Endpoints>::namespaced(client, "default");
        let config = watcher::Config::default().fields("metadata.name=kubernetes");
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
            while let Some(event) = events.next().await {
                let endpoints = match event {
                    Ok(endpoints) => endpoints,
                    Err(error) => {
                        tracing::debug!(%error, "cannot follow the API servers' Endpoints; retrying");
                        continue;
                    }
                };
                let mut next = endpoint_servers(&endpoints);
                if next.is_empty() {
                    continue;
                }
                for server in &given {
                    if !next.contains(server) {
                        next.push(server.clone());
                    }
                }
                if servers.replace(next.clone()) {
                    changed(&next);
                }
            }
        });
        self.tasks.push(task);
    }

    /// The servers connections may go to, in the order they are tried.
    pub fn servers(&self) -> Vec<String> {
        self.servers.list()
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
    for addr in servers.order(Instant::now()) {
        match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                servers.connected(&addr);
                return Some(stream);
            }
            Ok(Err(error)) => tracing::debug!(server = %addr, %error, "API server refused a connection"),
            Err(_) => tracing::debug!(server = %addr, "API server did not accept a connection in time"),
        }
        servers.failed(&addr, Instant::now());
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

    #[test]
    fn the_endpoints_replace_the_servers_and_the_preferred_one_stays() {
        let endpoints: Endpoints = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kubernetes"},
            "subsets": [
                {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                 "ports": [{"name": "https", "port": 6443}]},
                {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 7443}]},
                {"addresses": [{"ip": "not an address"}], "ports": [{"name": "https", "port": 1}]},
            ],
        }))
        .unwrap();
        let listed = endpoint_servers(&endpoints);
        assert_eq!(listed, ["10.0.0.1:6443", "10.0.0.2:6443", "127.0.0.1:7443"]);

        let servers = Servers {
            state: Mutex::new(State {
                servers: vec![("10.0.0.2:6443".into(), None), ("10.0.0.9:6443".into(), None)],
                preferred: 0,
            }),
        };
        let now = Instant::now();
        servers.failed("10.0.0.1:6443", now);
        assert!(servers.replace(listed.clone()));
        assert!(!servers.replace(listed.clone()), "the same list changes nothing");
        assert!(!servers.replace(Vec::new()), "an empty list changes nothing");
        // The preferred server (10.0.0.2) is still tried first.
        assert_eq!(servers.order(now)[0], "10.0.0.2:6443");
        assert_eq!(servers.list(), listed);
    }
}
