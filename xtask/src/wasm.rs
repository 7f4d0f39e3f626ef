//! `cargo xtask build-wasm`: the Wasm guests, built for `wasm32-wasip2` in
//! release. Adds the Rust target first when it is missing.
//!
//! | workspace        | output                                               |
//! |------------------|------------------------------------------------------|
//! | `test-programs/` | `$CARGO_TARGET_DIR/wasm-guests/wasm32-wasip2/release` (the folder `skiff-test-programs`' build script uses too) |
//! | `sample-apps/`   | `$CARGO_TARGET_DIR/wasm-samples/wasm32-wasip2/release` |

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::{cargo, have, root, run, target_dir};

pub(crate) const TARGET: &str = "wasm32-wasip2";

/// Host-only settings a user may have in the environment that must not
/// reach a Wasm build (e.g. `-C target-cpu=native` in `RUSTFLAGS`).
pub(crate) const HOST_ONLY_VARS: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_BUILD_TARGET",
    "RUSTC_WORKSPACE_WRAPPER",
];

/// Adds `wasm32-wasip2` if needed, then builds `test-programs/` and
/// `sample-apps/` and lists what they produced.
pub fn build() -> Result<(), String> {
    ensure_target()?;
    for (workspace, out) in [("test-programs", "wasm-guests"), ("sample-apps", "wasm-samples")] {
        let target_dir = target_dir().join(out);
        let manifest = root().join(workspace).join("Cargo.toml");
        let mut cmd = cargo(&["build", "--release", "--target", TARGET, "--manifest-path"]);
        cmd.arg(&manifest).arg("--target-dir").arg(&target_dir);
        for var in HOST_ONLY_VARS {
            cmd.env_remove(var);
        }
        run(cmd)?;
        list_components(&target_dir.join(TARGET).join("release"));
    }
    Ok(())
}

/// Whether the active toolchain has the standard library for `wasm32-wasip2`.
fn target_installed() -> bool {
    Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .is_some_and(|sysroot| Path::new(&sysroot).join("lib/rustlib").join(TARGET).is_dir())
}

/// Adds `wasm32-wasip2` with rustup unless the toolchain has it.
pub(crate) fn ensure_target() -> Result<(), String> {
    if target_installed() {
        return Ok(());
    }
    if !have("rustup") {
        return Err(format!(
            "the Rust target {TARGET} is missing and rustup is not installed; \
             install the target for your toolchain (with rustup: `rustup target add {TARGET}`)"
        ));
    }
    eprintln!("xtask: adding the Rust target {TARGET}");
    let mut add = Command::new("rustup");
    add.args(["target", "add", TARGET]).current_dir(root());
    run(add)?;
    if target_installed() {
        Ok(())
    } else {
        Err(format!(
            "`rustup target add {TARGET}` succeeded but rustc still lacks it"
        ))
    }
}

fn list_components(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut wasm: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    wasm.sort();
    for path in wasm {
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        eprintln!("xtask: {:>8} bytes  {}", size, path.display());
    }
}
