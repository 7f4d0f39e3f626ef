//! A fault drill on three servers: the raft leader is killed (SIGKILL)
//! in the middle of a burst of writes through the API.
//!
//! The client retries every write through a balancer over the three API
//! servers, as the node agent does. The history it recorded must show:
//! no acknowledged write lost, acknowledged resourceVersions only
//! increasing, and writes resuming after the kill. A node agent given
//! only the leader learns the other two from the kubernetes Endpoints and
//! keeps its node's Lease renewed through another server. The killed server, started again, catches up to the
//! same revision as the others; then all three are killed at once and
//! started again, and agree on one state holding every acknowledged write.
//! Last, the leader is stopped (SIGSTOP) past an election timeout: the
//! majority takes writes, and once the old leader runs again a read
//! through it is never stale.
//!
//! A watch through the same balancer, resumed from its last
//! resourceVersion whenever its server goes away, must deliver every
//! acknowledged write once, in order, with nothing repeated or older than
//! what it saw already (etcd's watch guarantees).
//!
//! Three more clients read and write one register (a ConfigMap's value)
//! across the kill, each preferring another server; their history must
//! be linearizable (the Wing–Gong–Lowe checker of `todc-utils`, as
//! porcupine checks etcd's).
//!
//! The time from the kill to the first acknowledged write is printed, not
//! asserted: it is a figure (`cargo xtask bench store` measures it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Cluster, free_addr, until};

/// A server that joined the first, killed on drop.
struct Server {
    child: Child,
    id: u64,
    url: String,
    listen: String,
    peer: String,
    token: String,
    join: String,
    data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Server {
    fn join(first: &Cluster, id: u64) -> Server {
        let token = std::fs::read_to_string(first.data.path().join("token")).unwrap();
        let listen = free_addr();
        let mut server = Server {
            child: Command::new("true").spawn().unwrap(),
            id,
            url: format!("https://{listen}"),
            listen,
            peer: free_addr(),
            token: token.trim().to_string(),
            join: first.peer_addr().to_string(),
            data: tempfile::tempdir().unwrap(),
        };
        server.start();
        server
    }

    fn start(&mut self) {
        self.child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["server", "--node-id", &self.id.to_string(), "--join", &self.join])
            .args(["--token", &self.token, "--no-agent"])
            .args(["--listen", &self.listen, "--peer-listen", &self.peer])
            .arg("--data-dir")
            .arg(self.data.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A member's view of the cluster (`/cluster/status` on its peer port),
/// asked with the first server's peer certificate.
fn status(first: &Cluster, peer: &str) -> Option<serde_json::Value> {
    let pki = first.data.path().join("pki");
    let output = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "5", "--cacert"])
        .arg(pki.join("peer-ca.crt"))
        .arg("--cert")
        .arg(pki.join("peer.crt"))
        .arg("--key")
        .arg(pki.join("peer.key"))
        .arg(format!("https://{peer}/cluster/status"))
        .output()
        .ok()?;
    serde_json::from_slice(&output.stdout).ok()
}

/// kubectl against the server at `url`, as the admin; its stdout.
fn on(first: &Cluster, url: &str, args: &[&str]) -> String {
    let output = first.kubectl(&[&["--server", url][..], args].concat());
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// When the node `drill` last renewed its Lease, as `url` serves it.
fn renew(first: &Cluster, url: &str) -> String {
    let out = first.kubectl(&[
        "--server",
        url,
        "get",
        "lease",
        "-n",
        "kube-node-lease",
        "drill",
        "-o",
        "jsonpath={.spec.renewTime}",
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One acknowledged write: its sequence number and resourceVersion.
#[derive(Clone, Copy, Debug)]
struct Ack {
    seq: usize,
    rv: u64,
    at: Instant,
}

/// Creates ConfigMaps `w-0`, `w-1`, … one after another through `url`,
/// retrying each until it is acknowledged, until `stop` or `limit`.
fn writer(
    kubeconfig: std::path::PathBuf,
    url: String,
    acks: Arc<Mutex<Vec<Ack>>>,
    stop: Arc<AtomicBool>,
    limit: Duration,
) -> std::thread::JoinHandle<usize> {
    on_own_thread(kubeconfig, url, move |api| async move {
        {
            let deadline = Instant::now() + limit;
            let mut seq = 0;
            let mut retries = 0;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let name = format!("w-{seq}");
                let object: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": name},
                    "data": {"seq": seq.to_string()},
                }))
                .unwrap();
                let created = match api.create(&Default::default(), &object).await {
                    Ok(created) => Some(created),
                    // An earlier attempt was applied but its answer lost.
                    Err(kube::Error::Api(status)) if status.code == 409 => api.get(&name).await.ok(),
                    Err(_) => None,
                };
                let Some(created) = created else {
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let rv = created.metadata.resource_version.unwrap().parse().unwrap();
                acks.lock().unwrap().push(Ack {
                    seq,
                    rv,
                    at: Instant::now(),
                });
                seq += 1;
            }
            retries
        }
    })
}

/// The register the linearizability check is about: ConfigMap
/// `register`'s `data.v`, written blind (a merge patch) and read with GET,
/// a linearizable read.
const REGISTER: &str = "register";
const REGISTER_INITIAL: &str = "initial";

/// An operation on the register: as called (a read's value unknown) or
/// as answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Register {
    Read(Option<String>),
    Write(String),
}

/// One operation a client recorded: when it was called and answered, and
/// its answer; a write whose outcome is unknown has none and may have
/// taken effect at any time after its call. Every failed write counts as
/// unknown: across a leader's death a blind patch can be answered 409
/// although its first attempt was committed (the store retries a
/// forwarded transaction whose answer was lost; its compare then fails
/// and the update loop gives up), so a 409 does not prove it was not
/// applied.
#[derive(Clone, Debug)]
struct Recorded {
    process: usize,
    call: Register,
    answer: Option<Register>,
    start: Instant,
    end: Instant,
}

/// A register's sequential behaviour, for the Wing–Gong–Lowe checker.
struct RegisterSpec;

impl todc_utils::Specification for RegisterSpec {
    type State = Option<String>;
    type Operation = Register;

    fn init() -> Self::State {
        Some(REGISTER_INITIAL.into())
    }

    fn apply(operation: &Register, state: &Self::State) -> (bool, Self::State) {
        match operation {
            Register::Read(value) => (value == state, state.clone()),
            Register::Write(value) => (true, Some(value.clone())),
        }
    }
}

/// Whether `history` is linearizable as one register. Unknown outcomes
/// are answered after everything else, as porcupine and Jepsen treat
/// them; failed reads were dropped when recorded.
fn linearizable(history: &[Recorded]) -> bool {
    use todc_utils::Action::{Call, Response};
    let last = history.iter().map(|r| r.end).max().unwrap_or_else(Instant::now);
    let mut actions = Vec::with_capacity(history.len() * 2);
    for r in history {
        actions.push((r.start, 0, r.process, Call(r.call.clone())));
        match &r.answer {
            Some(answer) => actions.push((r.end, 1, r.process, Response(answer.clone()))),
            None => actions.push((last, 2, r.process, Response(r.call.clone()))),
        }
    }
    actions.sort_by_key(|(at, order, _, _)| (*at, *order));
    let actions = actions
        .into_iter()
        .map(|(_, _, process, action)| (process, action))
        .collect();
    todc_utils::WGLChecker::<RegisterSpec>::is_linearizable(todc_utils::History::from_actions(actions))
}

#[test]
fn the_register_checker_refuses_a_stale_read_and_allows_an_unknown_write() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let op = |process, call, answer, start, end| Recorded {
        process,
        call,
        answer,
        start: at(start),
        end: at(end),
    };
    let write = |v: &str| Register::Write(v.into());
    let read = |v: &str| Register::Read(Some(v.into()));
    // A write completes, then a read returns the old value: stale.
    let stale = [
        op(0, write("a"), Some(write("a")), 0, 10),
        op(1, Register::Read(None), Some(read(REGISTER_INITIAL)), 20, 30),
    ];
    assert!(!linearizable(&stale));
    // The same read, overlapping the write: fine.
    let overlapping = [
        op(0, write("a"), Some(write("a")), 0, 25),
        op(1, Register::Read(None), Some(read(REGISTER_INITIAL)), 20, 30),
    ];
    assert!(linearizable(&overlapping));
    // A write whose answer was lost may show up in a later read.
    let unknown = [
        op(0, write("a"), None, 0, 5),
        op(3, Register::Read(None), Some(read("a")), 50, 60),
    ];
    assert!(linearizable(&unknown));
}

/// A client of the register that prefers server `first` of `servers`
/// (its own balancer over them, the others after): reads and writes in
/// turn, one at a time, until `stop` (or 300 operations). After an
/// operation whose outcome it cannot know it carries on as a new process
/// (`clients` apart), as a crashed client would be replaced.
fn register_client(
    kubeconfig: std::path::PathBuf,
    servers: Vec<String>,
    first: usize,
    clients: usize,
    history: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut order = servers.clone();
            order.rotate_left(first);
            let balancer = skiff_client::balancer::Balancer::start(order).await.unwrap();
            let api = configmaps(&kubeconfig, &balancer.url()).await;
            let mut process = first;
            let mut done = 0;
            for seq in 0..300 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let start = Instant::now();
                let (call, answer) = if seq % 3 == 0 {
                    let value = format!("c{first}-{seq}");
                    let patch = serde_json::json!({"data": {"v": value}});
                    let written = api
                        .patch(REGISTER, &Default::default(), &kube::api::Patch::Merge(&patch))
                        .await;
                    match written {
                        Ok(_) => (Register::Write(value.clone()), Some(Register::Write(value))),
                        // Whatever the error, the write may have been
                        // applied: a 409 included (see the note on
                        // `Recorded`).
                        Err(error) => {
                            eprintln!("register write {value} failed: {error}");
                            (Register::Write(value), None)
                        }
                    }
                } else {
                    match api.get(REGISTER).await {
                        Ok(found) => {
                            let value = found.data.and_then(|d| d.get("v").cloned());
                            (Register::Read(None), Some(Register::Read(value)))
                        }
                        // A failed read tells nothing.
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    }
                };
                let unknown = answer.is_none();
                history.lock().unwrap().push(Recorded {
                    process,
                    call,
                    answer,
                    start,
                    end: Instant::now(),
                });
                done += 1;
                if unknown {
                    process += clients;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            done
        })
    })
}

/// What a watch delivered: each event's type, object name and
/// resourceVersion, in order, across every reconnection.
type Seen = Arc<Mutex<Vec<(&'static str, String, u64)>>>;

/// Watches ConfigMaps in `default` through `url` from `from`, resuming
/// from the last resourceVersion it saw whenever the stream ends or
/// breaks (a server died), until `stop`.
fn watcher(
    kubeconfig: std::path::PathBuf,
    url: String,
    from: u64,
    seen: Seen,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    on_own_thread(kubeconfig, url, move |api| async move {
        use futures::StreamExt;
        {
            let mut last = from;
            let mut resumes = 0;
            let deadline = Instant::now() + Duration::from_secs(240);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let params = kube::api::WatchParams::default().timeout(5);
                let Ok(stream) = api.watch(&params, &last.to_string()).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                resumes += 1;
                let mut stream = std::pin::pin!(stream);
                while let Some(Ok(event)) = stream.next().await {
                    let (kind, name, rv) = match event {
                        kube::api::WatchEvent::Added(o) => ("ADDED", o.metadata.name, o.metadata.resource_version),
                        kube::api::WatchEvent::Modified(o) => {
                            ("MODIFIED", o.metadata.name, o.metadata.resource_version)
                        }
                        kube::api::WatchEvent::Deleted(o) => ("DELETED", o.metadata.name, o.metadata.resource_version),
                        kube::api::WatchEvent::Bookmark(b) => ("BOOKMARK", None, Some(b.metadata.resource_version)),
                        kube::api::WatchEvent::Error(status) => panic!("the watch from {last} failed: {status:?}"),
                    };
                    let rv: u64 = rv.unwrap().parse().unwrap();
                    seen.lock().unwrap().push((kind, name.unwrap_or_default(), rv));
                    last = rv;
                }
            }
            resumes
        }
    })
}

/// Runs `work` on a thread of its own, with its own runtime, given the
/// ConfigMaps of `default` through `url`; its count back on join.
fn on_own_thread<F, Fut>(kubeconfig: std::path::PathBuf, url: String, work: F) -> std::thread::JoinHandle<usize>
where
    F: FnOnce(kube::Api<k8s_openapi::api::core::v1::ConfigMap>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = usize>,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move { work(configmaps(&kubeconfig, &url).await).await })
    })
}

/// The ConfigMaps of `default` as the admin, through `url`.
async fn configmaps(kubeconfig: &std::path::Path, url: &str) -> kube::Api<k8s_openapi::api::core::v1::ConfigMap> {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.cluster_url = url.parse().unwrap();
    config.read_timeout = Some(Duration::from_secs(10));
    config.connect_timeout = Some(Duration::from_secs(2));
    kube::Api::namespaced(kube::Client::try_from(config).unwrap(), "default")
}

/// The watch properties etcd's robustness tests check, over what one
/// watch saw across its reconnections: events ordered and unique (each
/// resourceVersion above the last, bookmarks never behind), and every
/// acknowledged write delivered exactly once, with its resourceVersion.
fn check_watch(seen: &[(&'static str, String, u64)], acks: &[Ack]) {
    for pair in seen.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let ordered = if b.0 == "BOOKMARK" { b.2 >= a.2 } else { b.2 > a.2 };
        assert!(ordered, "the watch went back or repeated itself: {a:?} then {b:?}");
    }
    for ack in acks {
        let name = format!("w-{}", ack.seq);
        let delivered: Vec<_> = seen
            .iter()
            .filter(|(kind, n, _)| *kind == "ADDED" && *n == name)
            .collect();
        assert_eq!(delivered.len(), 1, "{name}: {delivered:?}");
        assert_eq!(delivered[0].2, ack.rv, "{name}");
    }
}

#[test]
fn killing_the_leader_under_writes_loses_no_acknowledged_write() {
    let mut first = Cluster::start_with(&["--no-agent"]);
    let mut joined = [Server::join(&first, 2), Server::join(&first, 3)];
    until(Duration::from_secs(90), "three voters", || {
        let view = status(&first, first.peer_addr())?;
        (view["voters"].as_array()?.len() == 3).then_some(())
    });
    let urls = [first.url.clone(), joined[0].url.clone(), joined[1].url.clone()];
    let peers = [
        first.peer_addr().to_string(),
        joined[0].peer.clone(),
        joined[1].peer.clone(),
    ];
    for url in &urls {
        until(Duration::from_secs(60), "every server to serve", || {
            first
                .kubectl(&["--server", url, "get", "--raw", "/readyz"])
                .status
                .success()
                .then_some(())
        });
    }
    let leader = status(&first, first.peer_addr()).unwrap()["leader"].as_u64().unwrap();
    let leader_url = urls[usize::try_from(leader).unwrap() - 1].clone();
    let survivor = urls.iter().find(|u| **u != leader_url).unwrap().clone();

    // A node agent given only the leader, which learns the other two
    // from the kubernetes Endpoints (it prints the servers it follows).
    let token = support::skiff_token(&first, &["create", "--ttl", "1h"]);
    let token_file = first.data.path().join("join.token");
    std::fs::write(&token_file, token.trim()).unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let mut agent = support::Guard {
        child: Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["agent", "--server", &leader_url, "--name", "drill"])
            .args(["--pod-cidr", "127.78.0.0", "--heartbeat-interval", "1"])
            .args(["--shutdown-grace-period", "2"])
            .arg("--ca-file")
            .arg(first.data.path().join("pki/ca.crt"))
            .arg("--token-file")
            .arg(&token_file)
            .arg("--data-dir")
            .arg(agent_dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
        data_dir: agent_dir.path().to_path_buf(),
    };
    let followed = following(agent.child.stdout.take().unwrap());
    until(Duration::from_secs(60), "the agent to follow the three servers", || {
        let servers = followed.lock().unwrap().clone();
        urls.iter()
            .all(|u| servers.contains(&u.trim_start_matches("https://").to_string()))
            .then_some(())
    });
    until(Duration::from_secs(60), "the agent's node to be Ready", || {
        let out = first.kubectl(&[
            "--server",
            &survivor,
            "get",
            "node",
            "drill",
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        ]);
        (String::from_utf8_lossy(&out.stdout) == "True").then_some(())
    });

    // The writer, through a balancer over the three servers.
    let balancer_runtime = tokio::runtime::Runtime::new().unwrap();
    let balancer = balancer_runtime
        .block_on(skiff_client::balancer::Balancer::start(
            urls.iter()
                .map(|u| u.trim_start_matches("https://").to_string())
                .collect(),
        ))
        .unwrap();
    let acks = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    // A watch from before the first write, through the same balancer.
    let list: serde_json::Value = serde_json::from_str(&on(
        &first,
        &survivor,
        &["get", "--raw", "/api/v1/namespaces/default/configmaps"],
    ))
    .unwrap();
    let from: u64 = list["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    let seen: Seen = Arc::default();
    let stop_watch = Arc::new(AtomicBool::new(false));
    let watching = watcher(
        first.kubeconfig.clone(),
        balancer.url(),
        from,
        seen.clone(),
        stop_watch.clone(),
    );
    let handle = writer(
        first.kubeconfig.clone(),
        balancer.url(),
        acks.clone(),
        stop.clone(),
        Duration::from_secs(120),
    );
    // Three register clients, each preferring another server.
    on(
        &first,
        &survivor,
        &[
            "create",
            "configmap",
            REGISTER,
            &format!("--from-literal=v={REGISTER_INITIAL}"),
        ],
    );
    let register: Arc<Mutex<Vec<Recorded>>> = Arc::default();
    let addresses: Vec<String> = urls
        .iter()
        .map(|u| u.trim_start_matches("https://").to_string())
        .collect();
    let register_clients: Vec<_> = (0..3)
        .map(|i| {
            register_client(
                first.kubeconfig.clone(),
                addresses.clone(),
                i,
                3,
                register.clone(),
                stop.clone(),
            )
        })
        .collect();
    let acked = || acks.lock().unwrap().len();
    until(Duration::from_secs(60), "50 writes before the kill", || {
        (acked() >= 50).then_some(())
    });

    // SIGKILL the leader.
    let killed_at = Instant::now();
    let before_kill = acked();
    match leader {
        1 => first.kill(),
        id => joined[usize::try_from(id).unwrap() - 2].kill(),
    }
    let renewed_before = renew(&first, &survivor);
    let resumed_after = AtomicUsize::new(0);
    until(Duration::from_secs(60), "50 writes after the kill", || {
        let acks = acks.lock().unwrap();
        if let Some(first_after) = acks.iter().find(|a| a.at > killed_at) {
            resumed_after.store(
                usize::try_from(first_after.at.duration_since(killed_at).as_millis()).unwrap(),
                Ordering::Relaxed,
            );
        }
        (acks.len() >= before_kill + 50).then_some(())
    });
    eprintln!(
        "failover drill: killed leader {leader}; first acknowledged write {} ms after the kill",
        resumed_after.load(Ordering::Relaxed)
    );
    // The agent's heartbeats reach the cluster through another server.
    until(
        Duration::from_secs(30),
        "the node's Lease to be renewed after the kill",
        || (renew(&first, &survivor) != renewed_before).then_some(()),
    );
    stop.store(true, Ordering::Relaxed);
    let retries = handle.join().unwrap();
    let register_ops: usize = register_clients.into_iter().map(|c| c.join().unwrap()).sum();
    let register = register.lock().unwrap().clone();
    let unknown = register.iter().filter(|r| r.answer.is_none()).count();
    eprintln!("failover drill: {register_ops} register operations by 3 clients, {unknown} of unknown outcome");
    assert!(
        register.iter().any(|r| r.start < killed_at) && register.iter().any(|r| r.start > killed_at),
        "the register clients ran across the kill"
    );
    if !linearizable(&register) {
        let mut listing = register.clone();
        listing.sort_by_key(|r| r.start);
        for r in &listing {
            eprintln!(
                "p{} {:?} -> {:?} [{}..{} ms after the kill]",
                r.process,
                r.call,
                r.answer,
                r.start.saturating_duration_since(killed_at).as_millis() as i64
                    - killed_at.saturating_duration_since(r.start).as_millis() as i64,
                r.end.saturating_duration_since(killed_at).as_millis() as i64
                    - killed_at.saturating_duration_since(r.end).as_millis() as i64,
            );
        }
        panic!("the register's history (above) is not linearizable");
    }
    let history = acks.lock().unwrap().clone();
    let last_rv = history.last().unwrap().rv;
    until(Duration::from_secs(30), "the watch to deliver the last write", || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(_, _, rv)| *rv >= last_rv)
            .then_some(())
    });
    stop_watch.store(true, Ordering::Relaxed);
    let resumes = watching.join().unwrap();
    eprintln!(
        "failover drill: {} writes acknowledged, {retries} attempts retried; the watch connected {resumes} times",
        history.len()
    );
    check_watch(&seen.lock().unwrap(), &history);

    // The history: sequence numbers in order, revisions increasing, and
    // every acknowledged write present with its value.
    for pair in history.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "{pair:?}");
        assert!(pair[1].rv > pair[0].rv, "resourceVersions went back: {pair:?}");
    }
    let listed = on(&first, &survivor, &["get", "configmaps", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let stored: std::collections::BTreeMap<String, (String, u64)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| {
            let name = item["metadata"]["name"].as_str()?.to_string();
            let seq = item["data"]["seq"].as_str()?.to_string();
            let rv = item["metadata"]["resourceVersion"].as_str()?.parse().ok()?;
            Some((name, (seq, rv)))
        })
        .collect();
    for ack in &history {
        let (seq, rv) = stored
            .get(&format!("w-{}", ack.seq))
            .unwrap_or_else(|| panic!("acknowledged write w-{} was lost", ack.seq));
        assert_eq!(
            (seq.as_str(), *rv),
            (ack.seq.to_string().as_str(), ack.rv),
            "w-{}",
            ack.seq
        );
    }

    // The killed server, started again, catches up: every member at one
    // revision (the agent's heartbeats keep writing, so asked until the
    // three answers agree).
    match leader {
        1 => first.restart(),
        id => joined[usize::try_from(id).unwrap() - 2].start(),
    }
    until(Duration::from_secs(60), "the restarted server to catch up", || {
        converged(&first, &peers).then_some(())
    });
    let restarted = &urls[usize::try_from(leader).unwrap() - 1];
    let count = |first: &Cluster, url: &str| {
        on(first, url, &["get", "configmaps", "-o", "name"])
            .lines()
            .filter(|l| l.contains("/w-"))
            .count()
    };
    assert_eq!(count(&first, restarted), history.len());
    assert_eq!(count(&first, &survivor), history.len());

    // All three killed at once and started again: one state on each, with
    // every acknowledged write.
    first.kill();
    for server in &mut joined {
        server.kill();
    }
    for server in &mut joined {
        server.start();
    }
    first.restart();
    until(Duration::from_secs(60), "the restarted cluster to agree", || {
        converged(&first, &peers).then_some(())
    });
    for url in &urls {
        assert_eq!(count(&first, url), history.len(), "{url}");
    }

    // The leader cut off (SIGSTOP, far longer than an election timeout):
    // the others elect a leader and take writes; once it runs again, a
    // read through it sees those writes, never its stale state.
    let leader = until(Duration::from_secs(30), "a leader", || {
        status(&first, &peers[0])?["leader"].as_u64()
    });
    let index = usize::try_from(leader).unwrap() - 1;
    let pid = match index {
        0 => first.pid(),
        i => joined[i - 1].child.id(),
    };
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    let signal = |signal| rustix::process::kill_process(pid, signal).unwrap();
    let other = urls[(index + 1) % 3].clone();
    signal(rustix::process::Signal::STOP);
    until(Duration::from_secs(30), "a write while the leader is stopped", || {
        let output = first.kubectl(&[
            "--server",
            &other,
            "--request-timeout=3s",
            "create",
            "configmap",
            "while-paused",
            "--from-literal=k=new",
        ]);
        let text = String::from_utf8_lossy(&output.stderr);
        (output.status.success() || text.contains("AlreadyExists")).then_some(())
    });
    signal(rustix::process::Signal::CONT);
    let read = first.kubectl(&[
        "--server",
        &urls[index],
        "--request-timeout=10s",
        "get",
        "configmap",
        "while-paused",
        "-o",
        "jsonpath={.data.k}",
    ]);
    if read.status.success() {
        assert_eq!(String::from_utf8_lossy(&read.stdout), "new", "a stale read: {read:?}");
    } else {
        assert!(
            !String::from_utf8_lossy(&read.stderr).contains("NotFound"),
            "a stale read through the old leader: {read:?}"
        );
    }
    until(Duration::from_secs(60), "the cluster to heal", || {
        converged(&first, &peers).then_some(())
    });
    drop(balancer);
}

/// The servers an agent last said it follows (its `skiff: API servers`
/// lines), read from its stdout on a thread of their own, which keeps
/// draining it.
fn following(stdout: std::process::ChildStdout) -> Arc<Mutex<Vec<String>>> {
    let servers: Arc<Mutex<Vec<String>>> = Arc::default();
    let last = servers.clone();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if let Some(list) = line.strip_prefix("skiff: API servers ") {
                *last.lock().unwrap() = list.split(", ").map(String::from).collect();
            }
        }
    });
    servers
}

/// Whether the three members report one revision (asked one after the
/// other; the agent's heartbeats keep writing, so callers ask again).
fn converged(first: &Cluster, peers: &[String]) -> bool {
    let revisions: Vec<u64> = peers
        .iter()
        .filter_map(|peer| status(first, peer)?["revision"].as_u64())
        .collect();
    revisions.len() == 3 && revisions.windows(2).all(|w| w[0] == w[1])
}
