//! Builds the guest workspace in `test-programs/` for `wasm32-wasip2`, then
//! the examples of the published `wstd` package that workspace pins, and
//! writes `$OUT_DIR/artifacts.rs`: one `pub const NAME: &str = "/abs/path.wasm";`
//! per guest and per example (`WSTD_` and its name), plus `NOT_A_COMPONENT`,
//! a core module written here.

use std::collections::BTreeMap;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

const TARGET: &str = "wasm32-wasip2";

/// The guest workspace member whose (optional, never enabled) dependency
/// pins the `wstd` package, and the feature that names that dependency.
const WSTD_PIN_FEATURE: &str = "wstd-examples/wstd";

/// Variables the outer build sets (or the user set for it) that must not
/// reach the nested guest build: host flags, the host target, the outer
/// target dir, and wrappers such as clippy-driver.
const LEAKY_VARS: &[&str] = &[
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
];

/// Prefixes of the same: `CARGO_BUILD_TARGET`, `CARGO_BUILD_RUSTFLAGS`,
/// `CARGO_TARGET_DIR`, `CARGO_TARGET_<triple>_*`, `CARGO_PROFILE_*`, and
/// what cargo sets for this build script (`CARGO_CFG_*`, `CARGO_FEATURE_*`,
/// `CARGO_PKG_*`, `CARGO_MANIFEST_*`, …).
const LEAKY_PREFIXES: &[&str] = &[
    "CARGO_BUILD_",
    "CARGO_TARGET_",
    "CARGO_PROFILE_",
    "CARGO_CFG_",
    "CARGO_FEATURE_",
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
    "CARGO_CRATE_",
    "CARGO_PRIMARY_",
];

/// The smallest useful core module: one type `() -> ()`, one function with
/// an empty body, exported as `_start`. What a WASI preview 1 build looks
/// like to a host that expects a component.
const CORE_MODULE: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1 (core)
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: func () -> ()
    0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
    0x07, 0x0a, 0x01, 0x06, b'_', b's', b't', b'a', b'r', b't', 0x00, 0x00, // export "_start"
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code section: no locals, `end`
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(var("OUT_DIR")?);
    let guests = manifest_dir
        .parent()
        .ok_or("the artifacts crate has no parent folder")?
        .to_path_buf();
    watch_sources(&guests)?;
    check_target()?;

    let target_dir = match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("wasm-guests"),
        None => out_dir.join("wasm-guests"),
    };
    let mut artifacts = build_guests(&guests, &target_dir)?;
    artifacts.extend(build_wstd_examples(&guests, &target_dir.join("wstd"))?);

    let core_module = out_dir.join("not-a-component.wasm");
    fs::write(&core_module, CORE_MODULE).map_err(|e| format!("cannot write {}: {e}", core_module.display()))?;
    artifacts.insert("NOT_A_COMPONENT".to_string(), core_module);

    // No `rerun-if-changed` on the artifacts themselves: they are written
    // during this run, so cargo would find them newer than the run and
    // rerun it (and rebuild every dependent test) once more.
    let mut code = String::new();
    for (name, path) in &artifacts {
        let path = path
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", path.display()))?;
        let _ = writeln!(code, "/// Absolute path of `{}`.", file_name(path));
        let _ = writeln!(code, "pub const {name}: &str = {path:?};");
    }
    let generated = out_dir.join("artifacts.rs");
    fs::write(&generated, code).map_err(|e| format!("cannot write {}: {e}", generated.display()))
}

fn var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name}"))
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Reruns this script when the guest workspace changes: its manifest, its
/// lock file and every member folder (not `artifacts/`, nor a stray
/// `target/` from building the guests in place).
///
/// The paths are relative to this crate: cargo gives a workspace member
/// the same build directory whichever clone it is built from, so absolute
/// paths would have a build from another clone (sharing the target
/// directory) watch that clone's sources instead of this one's.
fn watch_sources(guests: &Path) -> Result<(), String> {
    println!("cargo:rerun-if-changed=../Cargo.toml");
    println!("cargo:rerun-if-changed=../Cargo.lock");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    let entries = fs::read_dir(guests).map_err(|e| format!("cannot list {}: {e}", guests.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let skip = matches!(name, "artifacts" | "target");
        if !skip && entry.path().join("Cargo.toml").is_file() {
            println!("cargo:rerun-if-changed=../{name}");
        }
    }
    Ok(())
}

/// Fails with the command to run when the toolchain lacks `wasm32-wasip2`.
fn check_target() -> Result<(), String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run `{rustc} --print sysroot`: {e}"))?;
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let std_dir = Path::new(&sysroot).join("lib/rustlib").join(TARGET);
    if std_dir.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "the Rust target {TARGET} is not installed (no {}); the Wasm test \
             programs need it. Install it with:\n\n    rustup target add {TARGET}\n\n\
             (or run `cargo xtask build-wasm`, which does it)",
            std_dir.display()
        ))
    }
}

/// Builds every guest and returns its constant name and `.wasm` path.
fn build_guests(guests: &Path, target_dir: &Path) -> Result<BTreeMap<String, PathBuf>, String> {
    let mut cmd = nested_cargo();
    cmd.args(["build", "--release", "--target", TARGET])
        .arg("--manifest-path")
        .arg(guests.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    wasm_artifacts(cmd, "")
}

/// Builds the examples of the `wstd` package the guest workspace's lock file
/// pins, exactly as published: with the package's own manifest and its own
/// `Cargo.lock` (`--locked`), from where cargo unpacked it. Returns
/// `WSTD_<EXAMPLE>` and its `.wasm` path for each example.
///
/// The nested cargo runs in the guest workspace, not in the package: rustup
/// and cargo look for `rust-toolchain.toml` and `.cargo/config.toml` from
/// the current directory (not from `--manifest-path`), so the package's own
/// (toolchain channel `stable`; a `wasmtime run` runner) are not used, and
/// the toolchain stays the one building this crate (`RUSTUP_TOOLCHAIN`,
/// which rustup sets for the outer build, is left in place).
fn build_wstd_examples(guests: &Path, target_dir: &Path) -> Result<BTreeMap<String, PathBuf>, String> {
    let manifest = wstd_manifest(guests)?;
    let mut cmd = nested_cargo();
    cmd.args(["build", "--release", "--examples", "--locked", "--target", TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(guests);
    wasm_artifacts(cmd, "WSTD_")
}

/// The `Cargo.toml` of the `wstd` package the guest workspace resolves to,
/// as `cargo metadata` reports it (downloading and unpacking the package,
/// checked against the lock file's checksum, if it is not there yet).
fn wstd_manifest(guests: &Path) -> Result<PathBuf, String> {
    let mut cmd = nested_cargo();
    cmd.args(["metadata", "--format-version", "1", "--features", WSTD_PIN_FEATURE])
        .arg("--manifest-path")
        .arg(guests.join("Cargo.toml"))
        .current_dir(guests)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let shown = format!("{cmd:?}");
    let output = cmd.output().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{shown} failed with {}", output.status));
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("{shown} printed no metadata: {e}"))?;
    let manifests: Vec<&str> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|package| package["name"] == "wstd")
        .filter_map(|package| package["manifest_path"].as_str())
        .collect();
    match manifests[..] {
        [manifest] => Ok(PathBuf::from(manifest)),
        _ => Err(format!(
            "{shown} lists {} `wstd` packages, not one (the guest workspace's \
             `wstd-examples` pins one)",
            manifests.len()
        )),
    }
}

/// `cargo`, as the outer build runs it, without the variables in
/// `LEAKY_VARS` and `LEAKY_PREFIXES`.
fn nested_cargo() -> Command {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if LEAKY_VARS.contains(&key) || LEAKY_PREFIXES.iter().any(|p| key.starts_with(p)) {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs a `cargo build` and returns, for each `.wasm` file it produced, the
/// constant name (`prefix`, then the target's name upper-cased with `-` as
/// `_`) and the file's path.
fn wasm_artifacts(mut cmd: Command, prefix: &str) -> Result<BTreeMap<String, PathBuf>, String> {
    cmd.arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let shown = format!("{cmd:?}");
    let output = cmd.output().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{shown} failed with {}", output.status));
    }

    let mut artifacts = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(name) = message["target"]["name"].as_str() else {
            continue;
        };
        let wasm = message["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_str)
            .find(|f| f.ends_with(".wasm"));
        if let Some(wasm) = wasm {
            let name = format!("{prefix}{}", name.to_uppercase().replace('-', "_"));
            artifacts.insert(name, PathBuf::from(wasm));
        }
    }
    if artifacts.is_empty() {
        return Err(format!("{shown} produced no .wasm files"));
    }
    Ok(artifacts)
}
