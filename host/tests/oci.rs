//! End-to-end tests of `skiff_image` and `skiff_host::oci` with real
//! parts: images built by umoci from busybox-static, containers run by
//! runc, a docker-registry on loopback fed by skopeo and oci-client.
//!
//! Needs root and `runc umoci busybox-static skopeo docker-registry`, which
//! `cargo xtask test` installs (as root, with apt-get).
//! Run with `cargo test -p skiff-host --test oci -- --test-threads=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use skiff_host::oci::{ContainerSpec, ContainerState, RuncRuntime, rootfs, runc};
use skiff_image::{Image, ImageKind, ImageStore, PullOptions, store};
use skiff_testing::eventually;
use skiff_testing::registry::Registry;

const APT: &str = "apt-get install -y runc umoci busybox-static skopeo docker-registry";
const TOOLS: &[&str] = &["runc", "umoci", "skopeo", "docker-registry"];

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Checks the tools are there (and that this is root).
fn require_tools() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let missing = |tool: &str| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let any_missing = TOOLS.iter().any(|t| missing(t)) || !Path::new("/bin/busybox").exists();
        // `cargo xtask test` installs them; the tests do not, as test
        // binaries run in parallel and would race for the dpkg lock.
        assert!(!any_missing, "missing tools; run `cargo xtask test` as root, or: {APT}");
        assert!(is_root(), "runc containers need root; rerun as root");
    });
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An OCI layout `<dir>/layout` with tag `latest`: busybox-static with its
/// applet links, cmd `sh`.
fn busybox_layout() -> &'static Path {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        require_tools();
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let layout = dir.join("layout");
        let bundle = dir.join("bundle");
        let image = format!("{}:latest", layout.display());
        run(Command::new("umoci").args(["init", "--layout"]).arg(&layout));
        run(Command::new("umoci").args(["new", "--image", &image]));
        run(Command::new("umoci").args(["unpack", "--image", &image]).arg(&bundle));
        let bin = bundle.join("rootfs/bin");
        fs::create_dir_all(&bin).expect("mkdir bin");
        fs::copy("/bin/busybox", bin.join("busybox")).expect("copy busybox");
        for applet in ["sh", "echo", "sleep", "cat", "ls", "test"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink");
        }
        fs::create_dir_all(bundle.join("rootfs/tmp")).expect("mkdir tmp");
        run(Command::new("umoci").args(["repack", "--image", &image]).arg(&bundle));
        run(Command::new("umoci").args([
            "config",
            "--image",
            &image,
            "--config.cmd",
            "sh",
            "--config.env",
            "PATH=/bin",
            "--config.env",
            "FROM_IMAGE=yes",
        ]));
        layout
    })
}

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    store: ImageStore,
    runtime: RuncRuntime,
}

fn env() -> Env {
    require_tools();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let store = ImageStore::open(dir.join("store")).expect("open store");
    let runtime = RuncRuntime::new(dir.join("state"), "runc").expect("runc runtime");
    Env {
        _tmp: tmp,
        dir,
        store,
        runtime,
    }
}

fn spec(env: &Env, id: &str, image: &Image, command: &[&str]) -> ContainerSpec {
    ContainerSpec {
        id: id.to_owned(),
        hostname: "box".to_owned(),
        image: image.clone(),
        command: command.iter().map(|s| s.to_string()).collect(),
        args: Vec::new(),
        env: vec![("FROM_SPEC".to_owned(), "1".to_owned())],
        working_dir: None,
        pod: "default/box".into(),
        container: id.to_owned(),
        security: Default::default(),
        mounts: Vec::new(),
        memory_limit_bytes: None,
        cpu_millis: None,
        netns: None,
        stdout: env.dir.join("logs").join(format!("{id}.log")),
        stderr: env.dir.join("logs").join(format!("{id}.log")),
        stdin: None,
        terminal: false,
    }
}

async fn wait_for(runtime: &RuncRuntime, id: &str, what: impl Fn(&ContainerState) -> bool) -> ContainerState {
    eventually(Duration::from_secs(20), &format!("{id} to change state"), || async {
        let state = runtime.state(id).expect("state");
        what(&state).then_some(state)
    })
    .await
    .unwrap()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn runs_busybox_with_logs_and_exit_code() {
    let env = env();
    let image = env
        .store
        .import_layout(busybox_layout(), "busybox:latest")
        .expect("import");
    assert_eq!(image.kind, ImageKind::Container);
    assert!(image.wasm_component_path().is_none());
    assert_eq!(
        env.store.get("busybox:latest").expect("get").map(|i| i.manifest_digest),
        Some(image.manifest_digest.clone())
    );
    assert!(env.store.get("nothing:here").expect("get").is_none());

    let id = unique("exit");
    let mut spec = spec(
        &env,
        &id,
        &image,
        &[
            "sh",
            "-c",
            "echo out; echo err >&2; echo $FROM_IMAGE$FROM_SPEC; pwd; cat /proc/sys/kernel/hostname; exit 3",
        ],
    );
    spec.working_dir = Some("/tmp".to_owned());
    env.runtime.create(&spec).expect("create");
    assert_eq!(env.runtime.state(&id).expect("state"), ContainerState::Created);
    env.runtime.start(&id).expect("start");
    let state = wait_for(&env.runtime, &id, |s| matches!(s, ContainerState::Stopped { .. })).await;
    assert_eq!(state, ContainerState::Stopped { exit_code: Some(3) });
    let log = fs::read_to_string(&spec.stdout).expect("log");
    for line in ["out", "err", "yes1", "/tmp", "box"] {
        assert!(log.lines().any(|l| l == line), "{line:?} missing from log {log:?}");
    }
    env.runtime.delete(&id, false).expect("delete");
    assert!(!env.runtime.bundle_dir(&id).exists());
    assert!(matches!(env.runtime.state(&id), Err(runc::Error::NotFound { .. })));
    // The image's cmd (`sh`, reading an empty stdin) runs when neither
    // command nor args is given.
    let id = unique("cmd");
    let spec = self::spec(&env, &id, &image, &[]);
    env.runtime.create(&spec).expect("create");
    env.runtime.start(&id).expect("start");
    let state = wait_for(&env.runtime, &id, |s| matches!(s, ContainerState::Stopped { .. })).await;
    assert_eq!(state, ContainerState::Stopped { exit_code: Some(0) });
    env.runtime.delete(&id, false).expect("delete");
    // Args alone replace the image's cmd, as in Kubernetes; the exit code
    // comes through.
    let id = unique("args");
    let mut spec = self::spec(&env, &id, &image, &["sh"]);
    spec.args = vec!["-c".into(), "exit 7".into()];
    env.runtime.create(&spec).expect("create");
    env.runtime.start(&id).expect("start");
    let state = wait_for(&env.runtime, &id, |s| matches!(s, ContainerState::Stopped { .. })).await;
    assert_eq!(state, ContainerState::Stopped { exit_code: Some(7) });
    env.runtime.delete(&id, false).expect("delete");
}

#[tokio::test]
async fn long_sleep_is_killed_on_delete_and_signals_map_to_128_plus() {
    let env = env();
    let image = env
        .store
        .import_layout(busybox_layout(), "busybox:latest")
        .expect("import");
    let id = unique("sleep");
    env.runtime
        .create(&spec(&env, &id, &image, &["sleep", "1000"]))
        .expect("create");
    env.runtime.start(&id).expect("start");
    let ContainerState::Running { pid } =
        wait_for(&env.runtime, &id, |s| matches!(s, ContainerState::Running { .. })).await
    else {
        unreachable!()
    };
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    env.runtime.delete(&id, true).expect("force delete");
    eventually(
        Duration::from_secs(5),
        &format!("pid {pid} to go with its container"),
        || async { (!Path::new(&format!("/proc/{pid}")).exists()).then_some(()) },
    )
    .await
    .unwrap();
    assert!(!env.runtime.bundle_dir(&id).exists());

    // kill: SIGKILL reported as 137.
    let id = unique("kill");
    env.runtime
        .create(&spec(&env, &id, &image, &["sleep", "1000"]))
        .expect("create");
    env.runtime.start(&id).expect("start");
    env.runtime.kill(&id, "KILL").expect("kill");
    let state = wait_for(&env.runtime, &id, |s| matches!(s, ContainerState::Stopped { .. })).await;
    assert_eq!(state, ContainerState::Stopped { exit_code: Some(137) });
    env.runtime.delete(&id, false).expect("delete");
}

#[tokio::test]
async fn memory_and_cpu_limits_reach_the_cgroup() {
    let env = env();
    let image = env
        .store
        .import_layout(busybox_layout(), "busybox:latest")
        .expect("import");
    let id = unique("limits");
    let mut spec = spec(
        &env,
        &id,
        &image,
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; sleep 1000",
        ],
    );
    spec.memory_limit_bytes = Some(64 * 1024 * 1024);
    spec.cpu_millis = Some(500);
    let shared = env.dir.join("shared");
    fs::create_dir_all(&shared).expect("mkdir");
    fs::write(shared.join("hello"), "from host").expect("write");
    spec.mounts.push(skiff_host::oci::Mount {
        source: shared.clone(),
        destination: "/data".into(),
        read_only: true,
    });
    spec.command = vec![
        "sh".into(),
        "-c".into(),
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; cat /data/hello; echo; \
         touch /data/x 2>/dev/null || echo read-only; sleep 1000"
            .into(),
    ];
    env.runtime.create(&spec).expect("create");
    env.runtime.start(&id).expect("start");
    wait_for(&env.runtime, &id, |s| matches!(s, ContainerState::Running { .. })).await;
    let cgroup = |controller: &str, file: &str| {
        fs::read_to_string(format!("/sys/fs/cgroup/{controller}/skiff/{id}/{file}"))
            .unwrap_or_else(|e| panic!("{controller}/{file}: {e}"))
            .trim()
            .to_owned()
    };
    assert_eq!(cgroup("memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(cgroup("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(cgroup("cpu", "cpu.shares"), "512");
    // The container sees its own limit and the read-only bind mount.
    let log = eventually(Duration::from_secs(10), "the container's output", || async {
        let log = fs::read_to_string(&spec.stdout).unwrap_or_default();
        log.contains("read-only").then_some(log)
    })
    .await
    .unwrap();
    assert!(log.contains("67108864"), "{log}");
    assert!(log.contains("from host"), "{log}");
    assert!(!shared.join("x").exists());
    env.runtime.delete(&id, true).expect("delete");
    assert!(!Path::new(&format!("/sys/fs/cgroup/memory/skiff/{id}")).exists());
}

/// Copies a layout directory.
fn copy_dir(from: &Path, to: &Path) {
    run(Command::new("cp").arg("-a").arg(from).arg(to));
}

fn layer_blobs(layout: &Path) -> Vec<PathBuf> {
    // The biggest blob of the busybox layout is its layer.
    let mut blobs: Vec<PathBuf> = fs::read_dir(layout.join("blobs/sha256"))
        .expect("blobs")
        .map(|e| e.expect("entry").path())
        .collect();
    blobs.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).expect("meta").len()));
    blobs
}

#[test]
fn corrupt_layers_are_refused() {
    let env = env();
    // A flipped byte: the digest check refuses the import.
    let layout = env.dir.join("corrupt");
    copy_dir(busybox_layout(), &layout);
    let layer = layer_blobs(&layout).remove(0);
    let mut bytes = fs::read(&layer).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&layer, bytes).expect("write");
    let err = env
        .store
        .import_layout(&layout, "corrupt:latest")
        .expect_err("corrupt layer accepted");
    assert!(matches!(err, store::Error::DigestMismatch { .. }), "{err}");
    assert_eq!(err.waiting_reason(), "ErrImagePull");
    assert!(env.store.get("corrupt:latest").expect("get").is_none());

    // A layer with a correct digest that is not an archive: refused at create.
    let garbage = b"\x1f\x8b this is not gzip at all".to_vec();
    let layout = write_layout(&env.dir.join("garbage"), &[garbage], None);
    let image = env.store.import_layout(&layout, "garbage").expect("import");
    let id = unique("garbage");
    let err = env
        .runtime
        .create(&spec(&env, &id, &image, &["sh"]))
        .expect_err("garbage layer unpacked");
    assert!(
        matches!(
            &err,
            runc::Error::Rootfs {
                source: rootfs::Error::CorruptArchive { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!env.runtime.bundle_dir(&id).exists());

    // A tar whose entry climbs out of the root.
    let layout = write_layout(&env.dir.join("escape"), &[tar_with_raw_path("../evil")], None);
    let image = env.store.import_layout(&layout, "escape").expect("import");
    let err = env
        .runtime
        .create(&spec(&env, &unique("escape"), &image, &["sh"]))
        .expect_err("traversal accepted");
    assert!(
        matches!(
            &err,
            runc::Error::Rootfs {
                source: rootfs::Error::PathTraversal { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!env.dir.join("store/layers/evil").exists());

    // A diff id that does not match the content.
    let layer = tar(&[("a", b"a".as_slice())]);
    let wrong = format!("sha256:{}", "0".repeat(64));
    let layout = write_layout(&env.dir.join("diffid"), &[layer], Some(vec![wrong]));
    let image = env.store.import_layout(&layout, "diffid").expect("import");
    let err = rootfs::unpack_layers(&image).expect_err("wrong diff id accepted");
    assert!(matches!(err, rootfs::Error::CorruptDiffId { .. }), "{err}");
}

#[test]
fn whiteouts_and_compression() {
    let env = env();
    let base = tar(&[
        ("etc/", b"".as_slice()),
        ("etc/keep", b"k"),
        ("etc/gone", b"g"),
        ("dir/", b""),
        ("dir/old", b"o"),
    ]);
    let top = tar(&[
        ("etc/.wh.gone", b"".as_slice()),
        ("dir/.wh..wh..opq", b""),
        ("dir/new", b"n"),
    ]);
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&base).expect("gzip");
        e.finish().expect("gzip")
    };
    let layout = write_layout(
        &env.dir.join("wh"),
        &[gz, top.clone()],
        Some(vec![sha256(&base), sha256(&top)]),
    );
    let image = env.store.import_layout(&layout, "wh").expect("import");
    let layers = rootfs::unpack_layers(&image).expect("unpack");
    assert_eq!(layers.len(), 2);
    assert!(layers[0].ends_with(&sha256(&base)["sha256:".len()..]));
    let container = env.dir.join("c1");
    fs::create_dir_all(&container).expect("mkdir");
    let fs_ = rootfs::assemble(&layers, &container).expect("assemble");
    let root = &fs_.path;
    assert_eq!(fs::read_to_string(root.join("etc/keep")).expect("keep"), "k");
    assert!(!root.join("etc/gone").exists());
    assert!(!root.join("dir/old").exists());
    assert_eq!(fs::read_to_string(root.join("dir/new")).expect("new"), "n");
    eprintln!("rootfs assembled as {:?}", fs_.kind);
    rootfs::teardown(&container).expect("teardown");
    assert!(!container.exists());
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// A tar of `(path, content)`; paths ending in `/` are directories.
fn tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        if path.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
        } else {
            header.set_mode(0o644);
            header.set_size(content.len() as u64);
        }
        builder.append_data(&mut header, path, *content).expect("append");
    }
    builder.into_inner().expect("tar")
}

/// A one-file tar whose name is written raw (the tar crate refuses `..`).
fn tar_with_raw_path(path: &str) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(4);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(b"evil");
    out.resize(out.len() + 508, 0);
    out.resize(out.len() + 1024, 0);
    out
}

/// Writes an OCI layout with these layer blobs and returns it.
fn write_layout(dir: &Path, layers: &[Vec<u8>], diff_ids: Option<Vec<String>>) -> PathBuf {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("mkdir");
    let put = |bytes: &[u8]| {
        let digest = sha256(bytes);
        fs::write(blobs.join(&digest["sha256:".len()..]), bytes).expect("blob");
        serde_json::json!({"digest": digest, "size": bytes.len()})
    };
    let diff_ids = diff_ids.unwrap_or_else(|| layers.iter().map(|l| sha256(l)).collect());
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let mut config_desc = put(config.to_string().as_bytes());
    config_desc["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let layer_descs: Vec<_> = layers
        .iter()
        .map(|l| {
            let mut d = put(l);
            d["mediaType"] = "application/vnd.oci.image.layer.v1.tar".into();
            d
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": layer_descs,
    });
    let mut manifest_desc = put(manifest.to_string().as_bytes());
    manifest_desc["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [manifest_desc]});
    fs::write(dir.join("index.json"), index.to_string()).expect("index");
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("marker");
    dir.to_path_buf()
}

#[test]
fn imports_a_layout_tar() {
    let env = env();
    let tarball = env.dir.join("busybox.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(busybox_layout())
        .arg("-cf")
        .arg(&tarball)
        .arg("."));
    let image = env.store.import_layout(&tarball, "busybox:latest").expect("import tar");
    assert_eq!(image.kind, ImageKind::Container);
    assert_eq!(image.layers.len(), 1);
    let err = env
        .store
        .import_layout(busybox_layout(), "busybox:other")
        .map(|i| i.reference);
    // A single-entry layout is imported whatever the tag asked for.
    assert_eq!(err.ok().as_deref(), Some("busybox:other"));
}

fn start_registry(dir: &Path) -> Registry {
    require_tools();
    Registry::start(dir).expect("registry")
}

#[tokio::test]
async fn pulls_busybox_and_a_wasm_artifact_from_a_loopback_registry() {
    let env = env();
    let registry = start_registry(&env.dir);
    let layout = busybox_layout();
    run(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{}/busybox:latest", registry.addr),
    ]));
    let reference = format!("{}/busybox:latest", registry.addr);
    let plain = PullOptions {
        plain_http: true,
        ..PullOptions::default()
    };
    let image = env.store.pull(&reference, &plain).await.expect("pull busybox");
    assert_eq!(image.kind, ImageKind::Container);
    assert_eq!(
        env.store.get(&reference).expect("get").map(|i| i.manifest_digest),
        Some(image.manifest_digest.clone())
    );
    // Pulled images run.
    let id = unique("pulled");
    let pulled = spec(&env, &id, &image, &["sh", "-c", "echo pulled"]);
    let runtime = env.runtime.clone();
    runtime.create(&pulled).expect("create");
    runtime.start(&pulled.id).expect("start");
    let state = wait_for(&runtime, &pulled.id, |s| matches!(s, ContainerState::Stopped { .. })).await;
    assert_eq!(fs::read_to_string(&pulled.stdout).expect("log"), "pulled\n");
    runtime.delete(&pulled.id, false).expect("delete");
    assert_eq!(state, ContainerState::Stopped { exit_code: Some(0) });

    // A Wasm component artifact pushed with oci-client.
    let component = b"\0asm\x0d\0\x01\0 not really a component".to_vec();
    let wasm_ref = registry
        .push_wasm("hello-wasm:v1", &component)
        .await
        .expect("push wasm");
    let wasm = env.store.pull(&wasm_ref, &plain).await.expect("pull wasm");
    assert_eq!(wasm.kind, ImageKind::Wasm);
    let path = wasm.wasm_component_path().expect("component path");
    assert_eq!(fs::read(path).expect("component"), component);
    assert!(!env.dir.join("store/layers").read_dir().expect("layers").any(|e| {
        e.expect("entry")
            .file_name()
            .to_string_lossy()
            .contains(&sha256(&component)[7..])
    }));
    let id = unique("wasm");
    let err = env
        .runtime
        .create(&spec(&env, &id, &wasm, &["x"]))
        .expect_err("runc must refuse a Wasm image");
    assert!(matches!(err, runc::Error::NotAContainerImage { .. }));

    // Missing images and plain HTTP to a non-loopback registry.
    let missing = format!("{}/nothing:here", registry.addr);
    let err = env.store.pull(&missing, &plain).await.expect_err("missing");
    assert!(matches!(err, store::Error::ImageNotFound { .. }), "{err:?}");
    let err = env
        .store
        .pull("10.1.2.3:5000/busybox:latest", &plain)
        .await
        .expect_err("plain http to non-loopback");
    assert!(matches!(err, store::Error::PlainHttpRefused { .. }), "{err}");
    drop(registry);
}

#[test]
fn missing_runc_is_reported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = RuncRuntime::new(tmp.path(), "/nonexistent/runc").expect_err("runc found?");
    assert!(matches!(err, runc::Error::RuncMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("apt-get install -y runc"), "{err}");
}
