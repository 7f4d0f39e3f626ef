//! `cargo xtask build-plugins`: the example plugins in `plugins/`, one Wasm
//! component each, copied to `$CARGO_TARGET_DIR/plugins/<name>.wasm`.
//! Installs every toolchain they need first, at pinned versions:
//!
//! | language   | toolchain (where it goes)                                             | plugins |
//! |------------|-----------------------------------------------------------------------|---------|
//! | Rust       | rustup target `wasm32-wasip2`                                         | `require-node-label`, `prefer-cached-image`, `require-team-label`, `wasm-default-limits`, `deny-users` |
//! | C          | Debian's clang, lld, wasi-libc, libclang-rt-14-dev-wasm32, make; `wit-bindgen-cli` and `wasm-tools` from crates.io (`~/.cache/skiff/tools`) | `memory-headroom` |
//! | Python     | `componentize-py` from PyPI (`~/.cache/skiff/venv`)                   | `registry-allowlist` |
//! | JavaScript | Node.js and npm (Debian); `@bytecodealliance/componentize-js` and `preview2-shim` from npm (`~/.cache/skiff/tools/node`) | `max-replicas` |
//!
//! Cargo and make rebuild only what changed; the Python and JavaScript
//! plugins are rebuilt only when a source, the WIT or the tool is newer
//! than the component. Each component's exports are checked against its
//! world with `wasm-tools component wit`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

use crate::{
    CLANG, PYTHON_VENV, Package, dpkg_installed, ensure_packages, ensure_venv, have, root, run, target_dir, tools_dir,
    wasm,
};

/// The pinned tool versions; `plugins/README.md` names the same.
const WIT_BINDGEN_CLI_VERSION: &str = "0.57.1";
const WASM_TOOLS_VERSION: &str = "1.263.0";
const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
const COMPONENTIZE_JS_VERSION: &str = "0.23.0";
/// componentize-js imports `@bytecodealliance/preview2-shim` at run time
/// but declares it only as a development dependency; npm then finds
/// another package's copy, or none. 0.26 breaks its WIT path lookup; the
/// 0.17 line is the one it is developed against.
const PREVIEW2_SHIM_VERSION: &str = "0.17.9";

/// What a plugin is written in, which says how it is built.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Language {
    Rust,
    C,
    Python,
    JavaScript,
}

/// One example plugin: `plugins/<name>/`.
struct Plugin {
    name: &'static str,
    language: Language,
    /// The `skiff:plugins` world it targets, and that world's own export
    /// (besides `init`).
    world: &'static str,
    export: &'static str,
}

const PLUGINS: &[Plugin] = &[
    Plugin {
        name: "require-node-label",
        language: Language::Rust,
        world: "scheduler-filter",
        export: "filter",
    },
    Plugin {
        name: "prefer-cached-image",
        language: Language::Rust,
        world: "scheduler-score",
        export: "score",
    },
    Plugin {
        name: "require-team-label",
        language: Language::Rust,
        world: "admission-validate",
        export: "validate",
    },
    Plugin {
        name: "wasm-default-limits",
        language: Language::Rust,
        world: "admission-mutate",
        export: "mutate",
    },
    Plugin {
        name: "deny-users",
        language: Language::Rust,
        world: "admission-validate",
        export: "validate",
    },
    Plugin {
        name: "memory-headroom",
        language: Language::C,
        world: "scheduler-filter",
        export: "filter",
    },
    Plugin {
        name: "registry-allowlist",
        language: Language::Python,
        world: "admission-validate",
        export: "validate",
    },
    Plugin {
        name: "max-replicas",
        language: Language::JavaScript,
        world: "admission-validate",
        export: "validate",
    },
];

/// The Debian packages the C and JavaScript plugins need.
const PLUGIN_PACKAGES: &[Package] = &[
    CLANG,
    Package {
        name: "lld",
        present: || have("wasm-ld"),
    },
    Package {
        name: "wasi-libc",
        present: || dpkg_installed("wasi-libc"),
    },
    Package {
        name: "libclang-rt-14-dev-wasm32",
        present: || dpkg_installed("libclang-rt-14-dev-wasm32"),
    },
    Package {
        name: "make",
        present: || have("make"),
    },
    Package {
        name: "nodejs",
        present: || have("node"),
    },
    Package {
        name: "npm",
        present: || have("npm"),
    },
    PYTHON_VENV,
];

/// Where the tools went.
struct Tools {
    wit_bindgen: PathBuf,
    wasm_tools: PathBuf,
    componentize_py: PathBuf,
    /// The npm prefix holding `node_modules/@bytecodealliance/componentize-js`.
    node_prefix: PathBuf,
}

/// Installs what is missing, builds every plugin, checks each component's
/// world and lists them.
pub fn build() -> Result<(), String> {
    let tools = ensure_tools()?;
    let out = target_dir().join("plugins");
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;

    timed("Rust plugins", || build_rust(&out))?;
    for plugin in PLUGINS.iter().filter(|p| p.language != Language::Rust) {
        let artifact = out.join(format!("{}.wasm", plugin.name));
        timed(plugin.name, || match plugin.language {
            Language::C => build_c(plugin, &tools, &out),
            Language::Python => build_python(plugin, &tools, &artifact),
            Language::JavaScript => build_javascript(plugin, &tools, &artifact),
            Language::Rust => Ok(()),
        })?;
    }

    for plugin in PLUGINS {
        let artifact = out.join(format!("{}.wasm", plugin.name));
        check_world(&tools, plugin, &artifact)?;
        let size = fs::metadata(&artifact).map(|m| m.len()).unwrap_or(0);
        eprintln!("xtask: {size:>9} bytes  {}  ({})", artifact.display(), plugin.world);
    }
    Ok(())
}

/// Runs `step`, then says how long it took.
fn timed(what: &str, step: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let start = Instant::now();
    step()?;
    eprintln!("xtask: {what}: {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

fn ensure_tools() -> Result<Tools, String> {
    ensure_packages(PLUGIN_PACKAGES)?;
    wasm::ensure_target()?;
    let tools = tools_dir();
    let wit_bindgen = timed_install("wit-bindgen-cli", || {
        cargo_tool(&tools, "wit-bindgen-cli", "wit-bindgen", WIT_BINDGEN_CLI_VERSION, "c")
    })?;
    let wasm_tools = timed_install("wasm-tools", || {
        cargo_tool(
            &tools,
            "wasm-tools",
            "wasm-tools",
            WASM_TOOLS_VERSION,
            "component,print,validate,parse,strip,metadata",
        )
    })?;
    let componentize_py = timed_install("componentize-py", componentize_py)?;
    let node_prefix = tools.join("node");
    timed_install("componentize-js", || componentize_js(&node_prefix))?;
    Ok(Tools {
        wit_bindgen,
        wasm_tools,
        componentize_py,
        node_prefix,
    })
}

/// Runs an install step, saying how long it took when it had work to do.
fn timed_install<T>(what: &str, step: impl FnOnce() -> Result<(T, bool), String>) -> Result<T, String> {
    let start = Instant::now();
    let (value, installed) = step()?;
    if installed {
        eprintln!("xtask: installed {what} in {:.1} s", start.elapsed().as_secs_f64());
    }
    Ok(value)
}

/// The first line of `program --version`, or empty.
fn version_of(program: &Path) -> String {
    Command::new(program)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}

/// `binary` of crate `krate` at `version` (only `features`) in
/// `tools/bin`, installed with `cargo install --locked` unless it is there
/// already; also says whether it installed.
fn cargo_tool(
    tools: &Path,
    krate: &str,
    binary: &str,
    version: &str,
    features: &str,
) -> Result<(PathBuf, bool), String> {
    let bin = tools.join("bin").join(binary);
    if version_of(&bin).split_whitespace().any(|word| word == version) {
        return Ok((bin, false));
    }
    eprintln!("xtask: installing {krate} {version} into {}", tools.display());
    let mut install = crate::cargo(&[
        "install",
        krate,
        "--version",
        version,
        "--locked",
        "--no-default-features",
        "--features",
        features,
    ]);
    install.arg("--root").arg(tools);
    // Its own target directory: none of the workspace's settings apply.
    install.env("CARGO_TARGET_DIR", tools.join("target"));
    for var in wasm::HOST_ONLY_VARS {
        install.env_remove(var);
    }
    run(install)?;
    Ok((bin, true))
}

/// `componentize-py` in the virtualenv next to the build cache (the one
/// the tests' Python client uses), created if missing.
fn componentize_py() -> Result<(PathBuf, bool), String> {
    let venv = ensure_venv()?;
    let bin = venv.join("bin/componentize-py");
    if version_of(&bin)
        .split_whitespace()
        .any(|word| word == COMPONENTIZE_PY_VERSION)
    {
        return Ok((bin, false));
    }
    eprintln!(
        "xtask: installing componentize-py {COMPONENTIZE_PY_VERSION} into {}",
        venv.display()
    );
    let mut install = Command::new(venv.join("bin/pip"));
    install
        .args(["install", "--quiet"])
        .arg(format!("componentize-py=={COMPONENTIZE_PY_VERSION}"));
    run(install)?;
    Ok((bin, true))
}

/// The version of the npm package `name` under the npm prefix `prefix`.
fn npm_version(prefix: &Path, name: &str) -> Option<String> {
    let manifest = prefix.join("node_modules").join(name).join("package.json");
    let text = fs::read_to_string(manifest).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["version"].as_str().map(str::to_string)
}

/// `@bytecodealliance/componentize-js`, and the `preview2-shim` it needs,
/// under the npm prefix `prefix`.
fn componentize_js(prefix: &Path) -> Result<((), bool), String> {
    let packages = [
        ("@bytecodealliance/componentize-js", COMPONENTIZE_JS_VERSION),
        ("@bytecodealliance/preview2-shim", PREVIEW2_SHIM_VERSION),
    ];
    if packages
        .iter()
        .all(|(name, version)| npm_version(prefix, name).as_deref() == Some(*version))
    {
        return Ok(((), false));
    }
    let specs: Vec<String> = packages
        .iter()
        .map(|(name, version)| format!("{name}@{version}"))
        .collect();
    eprintln!("xtask: installing {} into {}", specs.join(" "), prefix.display());
    fs::create_dir_all(prefix).map_err(|e| format!("cannot create {}: {e}", prefix.display()))?;
    let mut install = Command::new("npm");
    install
        .args(["install", "--no-audit", "--no-fund", "--save-exact", "--prefix"])
        .arg(prefix)
        .args(&specs);
    run(install)?;
    Ok(((), true))
}

/// The Rust plugins: one cargo build of the `plugins/` workspace.
fn build_rust(out: &Path) -> Result<(), String> {
    let target_dir = target_dir().join("wasm-plugins");
    let mut cmd = crate::cargo(&["build", "--release", "--target", wasm::TARGET, "--manifest-path"]);
    cmd.arg(root().join("plugins/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for var in wasm::HOST_ONLY_VARS {
        cmd.env_remove(var);
    }
    run(cmd)?;
    let release = target_dir.join(wasm::TARGET).join("release");
    for plugin in PLUGINS.iter().filter(|p| p.language == Language::Rust) {
        let built = release.join(format!("{}.wasm", plugin.name.replace('-', "_")));
        copy_if_changed(&built, &out.join(format!("{}.wasm", plugin.name)))?;
    }
    Ok(())
}

/// The Rust plugins' own unit tests (their decisions as plain functions),
/// run on the host.
pub fn test_rust() -> Result<(), String> {
    let mut cmd = crate::cargo(&["test", "--manifest-path"]);
    cmd.arg(root().join("plugins/Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir().join("wasm-plugins-host"));
    run(cmd)
}

/// The C plugin: its Makefile, with the tools and folders given here.
fn build_c(plugin: &Plugin, tools: &Tools, out: &Path) -> Result<(), String> {
    let mut make = Command::new("make");
    make.arg("-C")
        .arg(plugin_dir(plugin))
        .arg(format!("WIT_BINDGEN={}", tools.wit_bindgen.display()))
        .arg(format!("WASM_TOOLS={}", tools.wasm_tools.display()))
        .arg(format!("OUT_DIR={}", out.display()))
        .arg(format!(
            "BUILD_DIR={}",
            target_dir().join("plugins-build").join(plugin.name).display()
        ));
    run(make)
}

/// The Python plugin: `componentize-py` run in its folder, as the README
/// says, unless the component is newer than its inputs.
fn build_python(plugin: &Plugin, tools: &Tools, artifact: &Path) -> Result<(), String> {
    let dir = plugin_dir(plugin);
    let mut inputs = sources(&dir, "py")?;
    inputs.push(tools.componentize_py.clone());
    if up_to_date(artifact, &inputs) {
        return Ok(());
    }
    let mut cmd = Command::new(&tools.componentize_py);
    cmd.arg("-d")
        .arg(root().join("wit"))
        .args(["-w", plugin.world, "componentize", "app", "-o"])
        .arg(artifact)
        .current_dir(&dir);
    run(cmd)
}

/// The JavaScript plugin: its `build.mjs`, unless the component is newer
/// than its inputs.
fn build_javascript(plugin: &Plugin, tools: &Tools, artifact: &Path) -> Result<(), String> {
    let dir = plugin_dir(plugin);
    let mut inputs = sources(&dir, "js")?;
    inputs.extend(sources(&dir, "mjs")?);
    inputs.push(
        tools
            .node_prefix
            .join("node_modules/@bytecodealliance/componentize-js/package.json"),
    );
    if up_to_date(artifact, &inputs) {
        return Ok(());
    }
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("build.mjs"))
        .arg(artifact)
        .env("SKIFF_NODE_TOOLS", &tools.node_prefix)
        .current_dir(&dir);
    run(cmd)
}

fn plugin_dir(plugin: &Plugin) -> PathBuf {
    root().join("plugins").join(plugin.name)
}

/// The files in `dir` ending in `.ext`, plus the WIT every plugin reads.
fn sources(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.push(root().join("wit/plugins.wit"));
    Ok(files)
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Whether `artifact` exists and is newer than every input that exists.
fn up_to_date(artifact: &Path, inputs: &[PathBuf]) -> bool {
    let Some(built) = modified(artifact) else {
        return false;
    };
    inputs.iter().filter_map(|i| modified(i)).all(|m| m <= built)
}

/// Copies `from` to `to` unless `to` is already as new, so that the copy's
/// time says when the plugin last changed.
fn copy_if_changed(from: &Path, to: &Path) -> Result<(), String> {
    if up_to_date(to, &[from.to_path_buf()]) {
        return Ok(());
    }
    fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

/// Fails unless `wasm-tools component wit` shows the component exporting
/// `init` and the world's own function.
fn check_world(tools: &Tools, plugin: &Plugin, artifact: &Path) -> Result<(), String> {
    let output = Command::new(&tools.wasm_tools)
        .args(["component", "wit"])
        .arg(artifact)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", tools.wasm_tools.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} is not a valid component: {}",
            artifact.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let wit = String::from_utf8_lossy(&output.stdout);
    for export in ["init", plugin.export] {
        if !wit.contains(&format!("export {export}: func(")) {
            return Err(format!(
                "{} does not export `{export}` of skiff:plugins/{}:\n{wit}",
                artifact.display(),
                plugin.world
            ));
        }
    }
    Ok(())
}
