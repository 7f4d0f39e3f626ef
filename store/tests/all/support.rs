//! Starting nodes and clusters on loopback for tests.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use skiff_store::{Store, StoreConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running node: its store, peer server task and data directory.
pub struct Node {
    pub store: Store,
    pub addr: String,
    server: JoinHandle<()>,
    stop_serving: oneshot::Sender<()>,
}

impl Node {
    /// Stops the node as a crash would look to its peers: raft stops and
    /// the peer endpoint goes away. Returns once the node's database is
    /// closed, so its directory can be reopened (or the test process exit)
    /// at once.
    pub async fn stop(self) {
        let Node {
            store,
            server,
            stop_serving,
            ..
        } = self;
        let _ = store.shutdown().await;
        let _ = stop_serving.send(());
        tokio::time::timeout(LIMIT, server)
            .await
            .expect("the peer endpoint closes its connections")
            .expect("the peer endpoint task ends");
        let closed = store.closed();
        drop(store);
        tokio::time::timeout(LIMIT, closed)
            .await
            .expect("the database closes once the node is stopped");
    }
}

/// How long a test waits for a cluster to converge.
pub const LIMIT: Duration = Duration::from_secs(10);

pub fn quick(config: &mut StoreConfig) {
    config.heartbeat_interval = Duration::from_millis(50);
    config.election_timeout = (Duration::from_millis(200), Duration::from_millis(400));
    config.compaction.enabled = false;
}

/// Opens a node in `dir`, listening on `ip` (any free port, or `addr` when given).
pub async fn start_node(
    id: u64,
    dir: &Path,
    ip: &str,
    addr: Option<&str>,
    tune: impl FnOnce(&mut StoreConfig),
) -> Node {
    let listener = TcpListener::bind(addr.unwrap_or(&format!("{ip}:0")))
        .await
        .expect("bind peer port");
    let addr = listener.local_addr().expect("local addr").to_string();
    let mut config = StoreConfig::new(id, dir, addr.clone());
    quick(&mut config);
    tune(&mut config);
    let store = Store::open(config).await.expect("open store");
    let (stop_serving, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn({
        let store = store.clone();
        async move {
            let stopped = async move {
                let _ = stopped.await;
            };
            let _ = skiff_store::http::serve_peers_until(listener, store, stopped).await;
        }
    });
    Node {
        store,
        addr,
        server,
        stop_serving,
    }
}

/// One node that has bootstrapped itself.
pub async fn single(dir: &Path) -> Node {
    single_with(dir, |_| {}).await
}

pub async fn single_with(dir: &Path, tune: impl FnOnce(&mut StoreConfig)) -> Node {
    let node = start_node(1, dir, "127.0.0.1", None, tune).await;
    node.store.initialize_single().await.expect("initialize");
    node.store
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("leader");
    node
}

/// `n` nodes on 127.0.0.1..=n, formed into one cluster.
pub async fn cluster(root: &Path, n: u64, tune: impl Fn(&mut StoreConfig)) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in 1..=n {
        let node = start_node(id, &root.join(format!("n{id}")), &format!("127.0.0.{id}"), None, &tune).await;
        nodes.push(node);
    }
    let members: BTreeMap<u64, String> = nodes.iter().map(|n| (n.store.node_id(), n.addr.clone())).collect();
    for node in &nodes {
        node.store.initialize(members.clone()).await.expect("initialize");
    }
    for node in &nodes {
        node.store
            .wait_for_leader(Duration::from_secs(10))
            .await
            .expect("leader");
    }
    nodes
}

/// The index in `nodes` of the current leader, as `nodes[0]` sees it.
///
/// A node reports no leader while an election runs, and on a loaded
/// machine an election can start right after the cluster formed, so this
/// waits for one instead of reading the metrics once.
pub async fn leader_index(nodes: &[Node]) -> usize {
    skiff_testing::eventually(LIMIT, "a leader among the nodes", || async {
        let leader = nodes[0].store.status().leader?;
        nodes.iter().position(|n| n.store.node_id() == leader)
    })
    .await
    .unwrap()
}
