//! skiff's task runner. Every task installs what it needs first (as root,
//! through apt-get and rustup) or says exactly what is missing.
//!
//! | task                    | what it does                                                  |
//! |-------------------------|---------------------------------------------------------------|
//! | `cargo xtask up`        | build skiff, the samples and the example plugins, import the sample images, start a one-node skiff in `./skiff-data` |
//! | `cargo xtask test`      | the test suite (what CI runs)                                 |
//! | `cargo xtask verify`    | read-only: `cargo fmt --check`, clippy with warnings denied, tests |
//! | `cargo xtask fix`       | `cargo fmt` and `cargo clippy --fix`                          |
//! | `cargo xtask bench store` | store throughput/latency, skiff vs etcd, JSON in `bench/results/` |
//! | `cargo xtask bench api` | the Kubernetes API over TLS: create/get/list, fixed-rate creates, watch fan-out |
//! | `cargo xtask bench scheduler` | scheduler pods/s with simulated nodes vs the raw API bind path; 100-replica Wasm Deployment to Ready |
//! | `cargo xtask bench node` | Wasm instantiation, create→Running Wasm vs runc, gateway vs `wasmtime serve`, an HTTP pod's rate beside a CPU-limited spinning pod, idle Wasm pods per node |
//! | `cargo xtask bench net` | requests/s and p50/p99 with `wrk` into a Wasm and a container backend: direct, through a ClusterIP, through the Ingress; and calls out of pods: Wasm → Wasm in-process and over loopback, runc → runc, Wasm and native clients to a loopback server |
//! | `cargo xtask bench autoscale` | API get/create and Wasm gateway/Service req/s with request metrics on vs off (same run); HPA reaction to a load step; first-request latency from zero replicas; JSON and SVG plots in `bench/results/` |
//! | `cargo xtask bench plugins` | per-call latency of each example plugin; the scheduling cycle at 5,000 nodes with a Wasm Filter + Score pair vs the same logic built in |
//! | `cargo xtask build-wasm` | add the wasm32-wasip2 target if missing, build test-programs/ and sample-apps/ (release) |
//! | `cargo xtask build-samples` | `build-wasm`, plus the OCI sample image (busybox-httpd) as a layout |
//! | `cargo xtask build-plugins` | install the plugin toolchains (Rust, C, Python, JavaScript), build `plugins/` into `$CARGO_TARGET_DIR/plugins/<name>.wasm` |
//! | `cargo xtask gen-protobuf-schema` | regenerate `api/src/protobuf/schema.rs` from k8s-pb and k8s-openapi |
//! | `cargo xtask gen-patch-schema` | regenerate `api/src/patch/schema/generated.rs` (patch metadata) from the same sources; `--check` fails if it is stale (`verify` runs the check) |
//!
//! Builds go to `$CARGO_TARGET_DIR`, by default `~/.cache/skiff/target`, so
//! fresh clones reuse one build cache; tools installed from crates.io and
//! npm go next to it, in `~/.cache/skiff/tools`.

mod k8s_types;
mod patch_schema;
mod plugins;
mod protobuf_schema;
mod samples;
mod wasm;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("up") => up(&args[1..]),
        Some("test") => test(),
        Some("verify") => verify(),
        Some("fix") => fix(),
        Some("bench") => bench(&args[1..]),
        Some("build-wasm") => wasm::build(),
        Some("build-samples") => samples::build(),
        Some("build-plugins") => plugins::build(),
        Some("gen-protobuf-schema") => protobuf_schema::run().map_err(|e| format!("{e:#}")),
        Some("gen-patch-schema") if args.get(1).is_some_and(|a| a == "--check") => {
            patch_schema::check().map_err(|e| format!("{e:#}"))
        }
        Some("gen-patch-schema") => patch_schema::run().map_err(|e| format!("{e:#}")),
        _ => {
            eprintln!(
                "usage: cargo xtask <up|test|verify|fix|bench store|bench api|bench scheduler|bench node|bench plugins|bench net|bench autoscale|build-wasm|build-samples|build-plugins|gen-protobuf-schema|gen-patch-schema [--check]> [args]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::from(1)
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn target_dir() -> PathBuf {
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let home = env::var_os("HOME").map(PathBuf::from).unwrap_or_else(env::temp_dir);
    home.join(".cache/skiff/target")
}

/// Where tools installed from crates.io and npm go: `tools` next to the
/// target directory (`~/.cache/skiff/tools` by default).
fn tools_dir() -> PathBuf {
    target_dir()
        .parent()
        .map(|p| p.join("tools"))
        .unwrap_or_else(|| target_dir().join("tools"))
}

fn cargo(args: &[&str]) -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args).current_dir(root()).env("CARGO_TARGET_DIR", target_dir());
    cmd
}

fn run(mut cmd: Command) -> Result {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed with {status}"))
    }
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A Debian package the build or tests need, and how to tell it is there.
struct Package {
    name: &'static str,
    present: fn() -> bool,
}

/// Whether dpkg reports `package` as installed.
fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// libclang itself (not libclang-cpp, which Debian images often carry
/// without it), as bindgen loads it.
fn libclang_present() -> bool {
    if dpkg_installed("libclang-dev") {
        return true;
    }
    ["/usr/lib/llvm-14/lib", "/usr/lib/llvm-15/lib", "/usr/lib/llvm-16/lib"]
        .iter()
        .any(|dir| Path::new(dir).join("libclang.so").exists())
}

/// clang: libclang for RocksDB's bindings, and the C plugin's compiler.
const CLANG: Package = Package {
    name: "clang",
    present: || have("clang"),
};

const BUILD_PACKAGES: &[Package] = &[
    CLANG,
    Package {
        name: "libclang-dev",
        present: libclang_present,
    },
    // The benchmark's etcd client compiles etcd's protobuf definitions.
    Package {
        name: "protobuf-compiler",
        present: || have("protoc"),
    },
];

/// What the end-to-end tests run besides skiff: Python for the
/// `kubernetes` client (installed from PyPI into a virtualenv); runc for
/// OCI containers and nft for their pods' network, umoci and
/// busybox-static to build their images, skopeo and docker-registry for
/// the loopback registry; prometheus to scrape a running server.
const TEST_PACKAGES: &[Package] = &[
    Package {
        name: "runc",
        present: || have("runc"),
    },
    NFTABLES,
    Package {
        name: "umoci",
        present: || have("umoci"),
    },
    Package {
        name: "busybox-static",
        present: || Path::new("/bin/busybox").exists(),
    },
    Package {
        name: "skopeo",
        present: || have("skopeo"),
    },
    Package {
        name: "docker-registry",
        present: || have("docker-registry"),
    },
    Package {
        name: "python3",
        present: || have("python3"),
    },
    PYTHON_VENV,
    // The Service and Ingress tests send their requests with it.
    CURL,
    Package {
        name: "prometheus",
        present: || have("prometheus"),
    },
];

const CURL: Package = Package {
    name: "curl",
    present: || have("curl"),
};

/// Python's `venv` (with pip), for the virtualenvs of the Python client
/// and of componentize-py.
const PYTHON_VENV: Package = Package {
    name: "python3-venv",
    present: || {
        Command::new("python3")
            .args(["-c", "import venv, ensurepip"])
            .output()
            .is_ok_and(|o| o.status.success())
    },
};

/// The virtualenv next to the build cache (`~/.cache/skiff/venv`) that
/// the Python tools live in, created if missing.
fn ensure_venv() -> Result<PathBuf> {
    let venv = target_dir()
        .parent()
        .map(|p| p.join("venv"))
        .unwrap_or_else(|| PathBuf::from("venv"));
    if !venv.join("bin/pip").exists() {
        let mut create = Command::new("python3");
        create.args(["-m", "venv"]).arg(&venv);
        run(create)?;
    }
    Ok(venv)
}

/// The Python `kubernetes` client, in that virtualenv; returns its
/// interpreter.
fn ensure_python_client() -> Result<PathBuf> {
    let venv = ensure_venv()?;
    let python = venv.join("bin/python");
    let ready = || {
        Command::new(&python)
            .args(["-c", "import kubernetes"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready() {
        return Ok(python);
    }
    eprintln!("xtask: installing the Python kubernetes client into {}", venv.display());
    let mut install = Command::new(venv.join("bin/pip"));
    install.args(["install", "--quiet", "kubernetes>=31,<40"]);
    run(install)?;
    if ready() {
        Ok(python)
    } else {
        Err(format!("{} still cannot import kubernetes", python.display()))
    }
}

/// What OCI pods need: runc, and nft for the node's rules of their
/// network (the agent loads them).
const RUNC_PACKAGES: &[Package] = &[
    Package {
        name: "runc",
        present: || have("runc"),
    },
    NFTABLES,
];

const NFTABLES: Package = Package {
    name: "nftables",
    present: || have("nft"),
};

const BENCH_PACKAGES: &[Package] = &[Package {
    name: "etcd-server",
    present: || have("etcd"),
}];

/// The load generator of `bench net`, and curl for its readiness checks.
const NET_BENCH_PACKAGES: &[Package] = &[
    Package {
        name: "wrk",
        present: || have("wrk"),
    },
    CURL,
];

/// Installs the missing packages with apt-get when root; otherwise names them.
fn ensure_packages(packages: &[Package]) -> Result {
    let missing: Vec<&str> = packages.iter().filter(|p| !(p.present)()).map(|p| p.name).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() || !have("apt-get") {
        return Err(format!(
            "missing system packages: {}. Install them with: sudo apt-get install -y {}",
            missing.join(", "),
            missing.join(" ")
        ));
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    run(update)?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "-qq"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run(install)
}

/// Builds skiff and the samples, imports the sample images into the
/// local node's image store, and runs `skiff server` in `./skiff-data`
/// with the samples' manifests applied.
fn up(extra: &[String]) -> Result {
    ensure_packages(BUILD_PACKAGES)?;
    wasm::build()?;
    plugins::build()?;
    // The OCI sample needs umoci and busybox-static (installed as root);
    // without them skiff still starts, with the Wasm samples only.
    let oci = samples::busybox_httpd()
        .map_err(|e| eprintln!("xtask: no OCI sample image ({e})"))
        .ok();
    // The same build as the tests' (features unify differently for one
    // package alone, which would rebuild RocksDB), so `up` and `test`
    // share one build cache.
    run(cargo(&["build", "--workspace", "--tests"]))?;
    let skiff = target_dir().join("debug/skiff");
    let wasm = target_dir().join("wasm-samples/wasm32-wasip2/release");
    let mut images = vec![
        (wasm.join("hello_http.wasm"), "hello-http"),
        (wasm.join("worker.wasm"), "worker"),
    ];
    images.extend(oci.clone().map(|layout| (layout, "busybox-httpd")));
    for (file, name) in images {
        let mut import = Command::new(&skiff);
        import
            .args(["image", "import"])
            .arg(&file)
            .args(["--name", name, "--data-dir", "skiff-data/agent"])
            .current_dir(root());
        run(import)?;
    }
    // The samples' manifests are applied once the node is up.
    let mut manifests = vec!["sample-apps/hello-http/deploy.yaml", "sample-apps/worker/job.yaml"];
    if oci.is_some() {
        manifests.push("sample-apps/busybox-httpd/deploy.yaml");
    }
    let mut cmd = Command::new(&skiff);
    cmd.args(["server", "--data-dir", "skiff-data"]);
    // Ingress takes ports 80 and 443, which need root.
    if !is_root() && !extra.iter().any(|a| a.starts_with("--ingress-")) {
        cmd.args(["--ingress-http-port", "8080", "--ingress-https-port", "8443"]);
    }
    for manifest in manifests {
        cmd.args(["--apply", manifest]);
    }
    cmd.args(extra).current_dir(root());
    run(cmd)
}

fn test() -> Result {
    ensure_packages(BUILD_PACKAGES)?;
    ensure_packages(TEST_PACKAGES)?;
    let python = ensure_python_client()?;
    // The Wasm guests the tests run need the wasm32-wasip2 target.
    wasm::build()?;
    // The example plugins, which the plugin tests load from
    // `$CARGO_TARGET_DIR/plugins`.
    plugins::build()?;
    plugins::test_rust()?;
    if !Path::new("/usr/bin/kubectl").exists() {
        return Err("the end-to-end tests drive /usr/bin/kubectl, which is not installed".into());
    }
    // nextest runs every test binary in parallel and closes with one
    // summary line; plain `cargo test` is the fallback.
    if cargo(&["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let mut cmd = cargo(&["nextest", "run", "--workspace", "--no-fail-fast"]);
        cmd.env("SKIFF_PYTHON", &python);
        run(cmd)
    } else {
        let mut cmd = cargo(&["test", "--workspace", "--no-fail-fast"]);
        cmd.env("SKIFF_PYTHON", &python);
        run(cmd)
    }
}

fn verify() -> Result {
    ensure_packages(BUILD_PACKAGES)?;
    run(cargo(&["fmt", "--all", "--", "--check"]))?;
    patch_schema::check().map_err(|e| format!("{e:#}"))?;
    run(cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    test()
}

fn fix() -> Result {
    run(cargo(&["fmt", "--all"]))?;
    run(cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--fix",
        "--allow-dirty",
        "--allow-staged",
    ]))
}

/// The version of the `wasmtime` CLI `bench node` runs as its peer: the
/// wasmtime skiff embeds.
const WASMTIME_CLI_VERSION: &str = "48.0.8";

/// The `wasmtime` CLI, installed from crates.io into the build cache the
/// first time (only what `wasmtime serve` needs, to keep the build short).
fn wasmtime_cli() -> Result<PathBuf> {
    let tools = tools_dir();
    let bin = tools.join("bin/wasmtime");
    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if version.contains(WASMTIME_CLI_VERSION) {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing wasmtime-cli {WASMTIME_CLI_VERSION} into {}",
        tools.display()
    );
    let mut install = cargo(&[
        "install",
        "wasmtime-cli",
        "--version",
        WASMTIME_CLI_VERSION,
        "--locked",
        "--no-default-features",
        "--features",
        "run,serve,component-model-async,cranelift,pooling-allocator,parallel-compilation,cache",
    ]);
    install.arg("--root").arg(&tools);
    // Its own target directory: the workspace's feature set is not this.
    install.env("CARGO_TARGET_DIR", tools.join("target"));
    run(install)?;
    Ok(bin)
}

fn bench(args: &[String]) -> Result {
    let which = match args.first().map(String::as_str) {
        Some(which @ ("store" | "api" | "scheduler" | "node" | "plugins" | "net" | "autoscale")) => which,
        _ => {
            return Err(
                "usage: cargo xtask bench <store|api|scheduler|node|plugins|net|autoscale> [--out FILE] [bench flags]"
                    .into(),
            );
        }
    };
    ensure_packages(BUILD_PACKAGES)?;
    // Flags only some benchmarks take, for what they need installed.
    let mut extra: Vec<std::ffi::OsString> = Vec::new();
    match which {
        "store" => ensure_packages(BENCH_PACKAGES)?,
        // Its Deployment phase runs a Wasm guest.
        "scheduler" => wasm::build()?,
        // Every part runs Wasm Deployments of the test component.
        "autoscale" => wasm::build()?,
        // It calls the example plugins.
        "plugins" => {
            plugins::build()?;
            extra.extend(["--plugins-dir".into(), target_dir().join("plugins").into()]);
        }
        "node" => {
            wasm::build()?;
            extra.extend(["--wasmtime-bin".into(), wasmtime_cli()?.into()]);
            // The runc pods need root and the busybox layout.
            if is_root() {
                ensure_packages(RUNC_PACKAGES)?;
                extra.extend(["--oci-layout".into(), samples::busybox_httpd()?.into()]);
            } else {
                eprintln!("xtask: not root, so the benchmark runs no runc pods");
            }
        }
        "net" => {
            ensure_packages(NET_BENCH_PACKAGES)?;
            wasm::build()?;
            if is_root() {
                ensure_packages(RUNC_PACKAGES)?;
                extra.extend(["--oci-layout".into(), samples::busybox_httpd()?.into()]);
            } else {
                eprintln!("xtask: not root, so the benchmark measures no container backend");
            }
        }
        _ => {}
    }
    run(cargo(&[
        "build",
        "--release",
        "--package",
        "skiff",
        "--package",
        "skiff-bench",
    ]))?;
    let release = target_dir().join("release");
    if which == "net" {
        // The native peer of the Wasm calls, as a process and in runc.
        extra.extend(["--call-peer".into(), release.join("call-peer").into()]);
        if is_root() {
            let layout = samples::native_program("call-peer", &release.join("call-peer"))?;
            extra.extend(["--call-peer-layout".into(), layout.into()]);
        }
    }
    let mut cmd = Command::new(release.join(format!("{which}-bench")));
    if which != "plugins" {
        cmd.arg("--skiff-bin").arg(release.join("skiff"));
    }
    // The figures go to bench/results unless the caller says `--out`.
    if !args[1..].iter().any(|a| a == "--out" || a.starts_with("--out=")) {
        cmd.arg("--out").arg(root().join(format!("bench/results/{which}.json")));
    }
    cmd.args(extra).args(&args[1..]);
    run(cmd)
}
