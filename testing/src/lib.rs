//! Test support shared by skiff's crates.
//!
//! [`TestApi::start`] runs what `skiff server --no-agent` runs, minus the
//! command line: a one-node store on disk in a temporary directory, the
//! API server over it (bootstrapped, so the system namespaces and
//! RuntimeClasses exist), served over TLS on an ephemeral loopback port,
//! and a kube-rs [`kube::Client`] configured from the kubeconfig the
//! server's credentials produce. Components under test (scheduler,
//! controllers, node agents) are handed that client, exactly as in
//! production; nothing is mocked.
//!
//! [`registry::Registry`] runs an OCI registry on loopback and pushes
//! Wasm artifacts to it. [`tmpfs::Tmpfs`] is a small disk a test can
//! fill or make read-only.
//!
//! [`eventually`] is the one polling helper tests use to wait for the
//! cluster to converge, always with a bound; [`eventually_blocking`] is
//! the same for tests without an async runtime. Tests wait on a
//! condition, never on a fixed sleep; a check that something did *not*
//! happen first waits for an observable sign that the system has
//! processed the input in question (a status with the new
//! observedGeneration, a later event), so that it can fail.

pub mod registry;
pub mod tmpfs;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use skiff_api::ApiServer;
pub use skiff_api::pki::Credential;
use skiff_api::pki::Pki;
use skiff_store::{Store, StoreConfig};

/// A served API server on a fresh store, and a client for it.
///
/// [`TestApi::stop`] tears it down deterministically: the endpoint and its
/// connections end, the store shuts down and its database is closed when
/// it returns. Dropping it instead only signals the endpoint to stop and
/// leaves the rest to the test runtime's end.
pub struct TestApi {
    /// An admin client of the served API.
    pub client: kube::Client,
    /// The `https://127.0.0.1:PORT` the API is served at.
    pub url: String,
    /// The store under the API.
    pub store: Store,
    /// The API server itself (its admission chain, its catalog).
    pub server: Arc<ApiServer>,
    /// The cluster CA (PEM) and admin bearer token, for clients in other
    /// processes.
    pub ca_pem: String,
    pub admin_token: String,
    /// The server's credentials: the CA that signs client certificates.
    pub pki: Pki,
    dir: tempfile::TempDir,
    shutdown: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for TestApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApi")
            .field("url", &self.url)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl TestApi {
    /// Starts an API server over a store in a new temporary directory.
    pub async fn start() -> anyhow::Result<TestApi> {
        let dir = tempfile::tempdir().context("temporary directory")?;
        let mut config = StoreConfig::new(1, dir.path().join("store"), "127.0.0.1:1");
        config.heartbeat_interval = Duration::from_millis(50);
        config.election_timeout = (Duration::from_millis(150), Duration::from_millis(300));
        config.compaction.enabled = false;
        let store = Store::open(config).await.context("open the store")?;
        store.initialize_single().await.context("bootstrap the store")?;
        store.wait_for_leader(Duration::from_secs(10)).await?;

        let pki = Pki::load_or_create(&dir.path().join("pki"), &["127.0.0.1".into()]).context("credentials")?;
        let authn = pki
            .authentication(skiff_api::auth::DEFAULT_ISSUER)
            .context("ServiceAccount signing key")?;
        let settings = skiff_api::server::Settings {
            root_ca: Some(pki.ca_pem.clone()),
            ..Default::default()
        };
        let server = ApiServer::with_settings(store.clone(), authn, settings);
        server.bootstrap().await.context("bootstrap the API objects")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("https://{}", listener.local_addr()?);
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(skiff_api::serve_tls(
            listener,
            pki.server_config().context("TLS configuration")?,
            server.router(),
            async move {
                let _ = stopped.await;
            },
        ));
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&pki.kubeconfig(&url))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        let client = kube::Client::try_from(config)?;
        Ok(TestApi {
            client,
            url,
            store,
            server,
            ca_pem: pki.ca_pem.clone(),
            admin_token: pki.admin_token.clone(),
            pki,
            dir,
            shutdown,
            serving,
        })
    }

    /// A client that acts as `user` in `groups`: the admin, impersonating
    /// them (`kubectl --as … --as-group …`), so RBAC and admission see
    /// that user.
    pub async fn impersonating(&self, user: &str, groups: &[&str]) -> anyhow::Result<kube::Client> {
        let yaml = skiff_api::pki::kubeconfig(
            &self.url,
            &self.ca_pem,
            "admin",
            &skiff_api::pki::Credential::Token(&self.admin_token),
        );
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml)?;
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        config.auth_info.impersonate = Some(user.to_string());
        if !groups.is_empty() {
            config.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
        }
        Ok(kube::Client::try_from(config)?)
    }

    /// A client that authenticates with `credential` alone (a token, a
    /// client certificate), as a client in another process would.
    pub async fn client_with(&self, credential: &Credential<'_>) -> anyhow::Result<kube::Client> {
        let yaml = skiff_api::pki::kubeconfig(&self.url, &self.ca_pem, "user", credential);
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Stops the endpoint (waiting for its connections to end), shuts the
    /// store down and returns once its database is closed, so nothing of
    /// the store is left on another thread when the test process exits.
    /// Handles the test cloned (of the store, the server or the client)
    /// must be dropped first.
    pub async fn stop(self) -> anyhow::Result<()> {
        let TestApi {
            client,
            store,
            server,
            dir,
            shutdown,
            serving,
            ..
        } = self;
        drop(client);
        let _ = shutdown.send(());
        tokio::time::timeout(STOP_LIMIT, serving)
            .await
            .context("the API endpoint did not close its connections")?
            .context("the API endpoint task failed")?
            .context("the API endpoint failed")?;
        drop(server);
        store.shutdown().await.context("shut the store down")?;
        let closed = store.closed();
        drop(store);
        tokio::time::timeout(STOP_LIMIT, closed)
            .await
            .context("the store's database is still open: a handle to the store outlived the test")?;
        drop(dir);
        Ok(())
    }

    /// The temporary directory everything lives in; tests may put their
    /// own state (agent data directories) under it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `dir()/name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// How long [`TestApi::stop`] waits for each step of the teardown.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// How often [`eventually`] and [`eventually_blocking`] look again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

fn timed_out(limit: Duration, what: &str) -> anyhow::Error {
    anyhow::anyhow!("timed out after {limit:?} waiting for {what}")
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `limit`;
/// the error names `what` was awaited.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = f().await {
            return Ok(value);
        }
        if start.elapsed() >= limit {
            return Err(timed_out(limit, what));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`eventually`] for synchronous tests (those driving other processes
/// with `std::process`): polls `f` every 50 ms until it returns `Some`,
/// for at most `limit`, blocking the thread in between; the error names
/// `what` was awaited.
pub fn eventually_blocking<T, F>(limit: Duration, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Option<T>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = f() {
            return Ok(value);
        }
        if start.elapsed() >= limit {
            return Err(timed_out(limit, what));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// A loopback port for a child process to listen on.
///
/// Asking the kernel for port 0 and handing the number on races: between
/// the probe closing and the child binding, the kernel may give the same
/// port to any outgoing connection on the machine (tests run in parallel
/// processes, and make many). So the port is drawn at random from below
/// the kernel's ephemeral range, which outgoing connections never use,
/// and checked free; a process never hands out the same one twice.
/// Another test process may still draw the same number, rarely; callers
/// that start servers retry on "address in use" (see `skiff`'s test
/// support).
pub fn free_port() -> anyhow::Result<u16> {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, RandomState};
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(10_001));
    let state = RandomState::new();
    let mut given = GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for attempt in 0u64..10_000 {
        let draw = state.hash_one((std::process::id(), attempt, Instant::now()));
        let port = low + (draw % u64::from(high - low)) as u16;
        if given.contains(&port) || std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        given.insert(port);
        return Ok(port);
    }
    anyhow::bail!("no free loopback port between {low} and {high}")
}

/// `127.0.0.1:<port>` with a [`free_port`].
pub fn free_addr() -> anyhow::Result<String> {
    Ok(format!("127.0.0.1:{}", free_port()?))
}

/// Builds an OCI image layout in `dir/layout` holding busybox-static
/// (from `/bin/busybox`) with the applets named, tagged `latest`, using
/// umoci; fails with what to install when a tool is missing.
pub fn busybox_layout(dir: &Path, applets: &[&str]) -> anyhow::Result<PathBuf> {
    busybox_layout_with(dir, applets, &[])
}

/// [`busybox_layout`] with the host's `programs` (absolute paths) copied
/// in at the same paths, with the shared libraries `ldd` lists for them:
/// a client such as curl, run in a container as it runs on the host.
pub fn busybox_layout_with(dir: &Path, applets: &[&str], programs: &[&str]) -> anyhow::Result<PathBuf> {
    use std::process::Command;
    let have = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("umoci") || !Path::new("/bin/busybox").exists() {
        anyhow::bail!("umoci and busybox-static are needed: apt-get install -y umoci busybox-static");
    }
    let layout = dir.join("layout");
    let bundle = dir.join("bundle");
    let image = format!("{}:latest", layout.display());
    let umoci = |args: &[&str]| -> anyhow::Result<()> {
        let out = Command::new("umoci").args(args).output()?;
        anyhow::ensure!(
            out.status.success(),
            "umoci {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    let path = |p: &Path| p.to_string_lossy().into_owned();
    umoci(&["init", "--layout", &path(&layout)])?;
    umoci(&["new", "--image", &image])?;
    umoci(&["unpack", "--image", &image, &path(&bundle)])?;
    let bin = bundle.join("rootfs/bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy("/bin/busybox", bin.join("busybox"))?;
    for applet in applets {
        std::os::unix::fs::symlink("busybox", bin.join(applet))?;
    }
    let rootfs = bundle.join("rootfs");
    for program in programs {
        let out = Command::new("ldd").arg(program).output()?;
        anyhow::ensure!(
            out.status.success(),
            "ldd {program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let libraries = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                let file = line.split_once("=>").map_or(line, |(_, resolved)| resolved.trim());
                file.split_whitespace()
                    .next()
                    .filter(|f| f.starts_with('/'))
                    .map(String::from)
            })
            .collect::<Vec<_>>();
        for file in libraries.iter().map(String::as_str).chain([*program]) {
            let target = rootfs.join(file.trim_start_matches('/'));
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(file, &target).with_context(|| format!("copy {file} into the image"))?;
        }
    }
    umoci(&["repack", "--image", &image, &path(&bundle)])?;
    Ok(layout)
}
