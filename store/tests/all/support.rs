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
    serve(id, dir, listener, tune).await
}

/// Opens a node in `dir` and serves its peer router on `listener`.
pub async fn serve(id: u64, dir: &Path, listener: TcpListener, tune: impl FnOnce(&mut StoreConfig)) -> Node {
    open_unserved(id, dir, listener, tune).await.serve()
}

/// A node whose store is open and whose peer port is bound, but whose
/// peer router is not served yet: peers' calls to it wait, queued on the
/// port, until [`Unserved::serve`].
pub struct Unserved {
    pub store: Store,
    pub addr: String,
    listener: TcpListener,
}

pub async fn open_unserved(
    id: u64,
    dir: &Path,
    listener: TcpListener,
    tune: impl FnOnce(&mut StoreConfig),
) -> Unserved {
    let addr = listener.local_addr().expect("local addr").to_string();
    let mut config = StoreConfig::new(id, dir, addr.clone());
    quick(&mut config);
    tune(&mut config);
    let store = Store::open(config).await.expect("open store");
    Unserved { store, addr, listener }
}

impl Unserved {
    pub fn serve(self) -> Node {
        let Unserved { store, addr, listener } = self;
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

/// The settings a child-process node ([`ProcessNode`]) is started with,
/// passed to it in its environment.
#[derive(Clone, Debug)]
pub struct ProcessSettings {
    pub snapshot_every: u64,
    pub keep_logs: u64,
}

impl ProcessSettings {
    /// The same settings for an in-process node.
    pub fn tune(&self, config: &mut StoreConfig) {
        config.snapshot_every = self.snapshot_every;
        config.keep_logs = self.keep_logs;
    }
}

/// A store node in a child process, so that a test can SIGKILL it: this
/// test binary run again with only [`store_node_process`] selected. It
/// serves its peer router on `addr` and, when started with `join`, joins
/// the cluster there; it stops cleanly when its standard input closes,
/// so it never outlives the test. `SKIFF_CHILD_LOG` (a `RUST_LOG`
/// filter) turns its logging on, to its standard error.
pub struct ProcessNode {
    child: std::process::Child,
    pub id: u64,
    pub addr: String,
    pub dir: std::path::PathBuf,
    settings: ProcessSettings,
}

const CHILD_ENV: &str = "SKIFF_STORE_TEST_CHILD";

impl ProcessNode {
    pub fn spawn(id: u64, dir: &Path, addr: &str, join: Option<&str>, settings: &ProcessSettings) -> ProcessNode {
        let mut node = ProcessNode {
            child: std::process::Command::new("true").spawn().expect("spawn true"),
            id,
            addr: addr.to_string(),
            dir: dir.to_path_buf(),
            settings: settings.clone(),
        };
        let _ = node.child.wait();
        node.start(join);
        node
    }

    fn start(&mut self, join: Option<&str>) {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut command = std::process::Command::new(exe);
        command
            .args([
                "support::store_node_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--quiet",
            ])
            .env(CHILD_ENV, "1")
            .env("SKIFF_NODE_ID", self.id.to_string())
            .env("SKIFF_NODE_DIR", &self.dir)
            .env("SKIFF_NODE_ADDR", &self.addr)
            .env("SKIFF_NODE_SNAPSHOT_EVERY", self.settings.snapshot_every.to_string())
            .env("SKIFF_NODE_KEEP_LOGS", self.settings.keep_logs.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit());
        if let Some(join) = join {
            command.env("SKIFF_NODE_JOIN", join);
        }
        self.child = command.spawn().expect("start the child node");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the node again on its data directory and address.
    pub fn restart(&mut self) {
        self.kill();
        self.start(None);
    }

    /// Asks the node to stop cleanly (closes its standard input) and
    /// waits for it, killing it if it has not exited within [`LIMIT`].
    pub fn stop(mut self) {
        drop(self.child.stdin.take());
        let deadline = std::time::Instant::now() + LIMIT;
        while std::time::Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

impl Drop for ProcessNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a [`ProcessNode`] when this binary is started as one; does nothing
/// otherwise (it is ignored unless asked for, and then needs the
/// environment `ProcessNode` sets).
#[test]
#[ignore = "the body of a child-process store node, started by ProcessNode"]
fn store_node_process() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
    let number = |name: &str| {
        var(name)
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("{name} is a number"))
    };
    let settings = ProcessSettings {
        snapshot_every: number("SKIFF_NODE_SNAPSHOT_EVERY"),
        keep_logs: number("SKIFF_NODE_KEEP_LOGS"),
    };
    let (id, dir, addr) = (number("SKIFF_NODE_ID"), var("SKIFF_NODE_DIR"), var("SKIFF_NODE_ADDR"));
    let join = std::env::var("SKIFF_NODE_JOIN").ok();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("SKIFF_CHILD_LOG"))
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        // The address was free when the parent chose it, and is this
        // node's again after a kill: binding may need a moment.
        let listener = skiff_testing::eventually(LIMIT, "the node's peer address to bind", || async {
            TcpListener::bind(&addr).await.ok()
        })
        .await
        .unwrap();
        let node = serve(id, Path::new(&dir), listener, |c| settings.tune(c)).await;
        if let Some(join) = join {
            node.store.join(&join).await.expect("join the cluster");
        }
        // Until the parent closes standard input (or is gone).
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        })
        .await
        .unwrap();
        node.stop().await;
    });
}

/// One acknowledged write: the key, the value written and the revision
/// the store answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub key: String,
    pub value: String,
    pub revision: u64,
}

/// A writer task doing acknowledged puts one after another through a
/// [`Client`](skiff_store::Client), each to a new key under its prefix,
/// recording every acknowledgement. A failed put is counted and not
/// retried (it may or may not have been applied); the next one takes the
/// next key. It stops when asked, after `MAX_WRITES`, or at its deadline.
pub struct Writer {
    acks: std::sync::Arc<std::sync::Mutex<Vec<Ack>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: JoinHandle<u64>,
}

const MAX_WRITES: u64 = 1_000_000;

impl Writer {
    pub fn start(client: skiff_store::Client, prefix: &str, limit: Duration) -> Writer {
        use std::sync::atomic::Ordering;
        let acks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn({
            let (acks, stop, prefix) = (acks.clone(), stop.clone(), prefix.to_string());
            async move {
                let deadline = std::time::Instant::now() + limit;
                let mut failures = 0;
                for seq in 0..MAX_WRITES {
                    if stop.load(Ordering::Relaxed) || std::time::Instant::now() >= deadline {
                        break;
                    }
                    let (key, value) = (format!("{prefix}{seq:07}"), format!("v{seq}"));
                    let txn = skiff_store::Txn::new().and_then([skiff_store::TxnOp::put(key.clone(), value.clone())]);
                    match client.txn(txn).await {
                        Ok(response) => acks.lock().unwrap().push(Ack {
                            key,
                            value,
                            revision: response.revision,
                        }),
                        Err(error) => {
                            eprintln!("writer: put {seq} failed: {error}");
                            failures += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                failures
            }
        });
        Writer { acks, stop, task }
    }

    pub fn acked(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    /// The writes acknowledged so far.
    pub fn acks(&self) -> Vec<Ack> {
        self.acks.lock().unwrap().clone()
    }

    /// Waits until `more` writes beyond those acknowledged so far are.
    pub async fn wait_for_more(&self, more: usize, what: &str) {
        let target = self.acked() + more;
        skiff_testing::eventually(LIMIT, what, || async { (self.acked() >= target).then_some(()) })
            .await
            .unwrap();
    }

    /// Stops the writer; every acknowledged write, in order, and the
    /// number of puts that failed.
    pub async fn stop(self) -> (Vec<Ack>, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let failures = tokio::time::timeout(LIMIT, self.task)
            .await
            .expect("the writer stops")
            .expect("the writer does not panic");
        let acks = self.acks.lock().unwrap().clone();
        (acks, failures)
    }
}

/// Asserts that `store` holds every write in `acks` with its value and
/// revision, reading at `consistency`.
pub async fn assert_holds(store: &Store, prefix: &str, acks: &[Ack], consistency: skiff_store::ReadConsistency) {
    let all = store
        .range(
            skiff_store::RangeRequest::new(skiff_store::KeyRange::prefix(prefix)),
            consistency,
        )
        .await
        .unwrap();
    let missing = missing(&all.kvs, acks, u64::MAX);
    assert!(
        missing.is_empty(),
        "acknowledged writes missing or changed on node {}: {missing:?}",
        store.node_id()
    );
}

/// The writes of `acks` at or below `revision` that `kvs` does not hold
/// with their value and revision.
pub fn missing(kvs: &[skiff_store::KeyValue], acks: &[Ack], revision: u64) -> Vec<Ack> {
    let have: BTreeMap<&[u8], &skiff_store::KeyValue> = kvs.iter().map(|kv| (kv.key.as_slice(), kv)).collect();
    acks.iter()
        .filter(|ack| ack.revision <= revision)
        .filter(|ack| {
            have.get(ack.key.as_bytes())
                .is_none_or(|kv| kv.value != ack.value.as_bytes() || kv.mod_revision != ack.revision)
        })
        .cloned()
        .collect()
}
