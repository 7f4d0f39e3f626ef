//! Starting nodes and clusters on loopback for tests.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use skiff_store::{Store, StoreConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running node: its store, peer server task and data directory.
pub struct Node {
    pub store: Store,
    pub addr: String,
    server: JoinHandle<()>,
}

impl Node {
    /// Stops the node as a crash would look to its peers: the peer
    /// endpoint goes away and raft stops.
    pub async fn stop(self) {
        self.server.abort();
        let _ = self.store.shutdown().await;
    }
}

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
    let server = tokio::spawn({
        let store = store.clone();
        async move {
            let _ = skiff_store::http::serve_peers(listener, store).await;
        }
    });
    Node { store, addr, server }
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
/// waits (up to ten seconds) for one instead of reading the metrics once.
pub async fn leader_index(nodes: &[Node]) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(leader) = nodes[0].store.status().leader
            && let Some(index) = nodes.iter().position(|n| n.store.node_id() == leader)
        {
            return index;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader among the nodes within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
