//! `cargo xtask build-samples`: the Wasm samples (as `build-wasm` builds
//! them) and the OCI sample `busybox-httpd`, an image layout made on this
//! machine from Debian's `busybox-static` with `umoci`, under
//! `$CARGO_TARGET_DIR/oci-samples/busybox-httpd`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Package, ensure_packages, have, run, target_dir};

const SAMPLE_PACKAGES: &[Package] = &[
    Package {
        name: "umoci",
        present: || have("umoci"),
    },
    Package {
        name: "busybox-static",
        present: || Path::new("/bin/busybox").exists(),
    },
];

/// The applets the sample's image links to busybox.
const APPLETS: &[&str] = &["sh", "httpd", "echo", "cat", "ls", "sleep", "tar"];

const INDEX_HTML: &str =
    "<!doctype html>\n<title>skiff</title>\n<p>hello from busybox-httpd, an OCI container run by runc on skiff</p>\n";

pub fn build() -> Result<(), String> {
    crate::wasm::build()?;
    let layout = busybox_httpd()?;
    eprintln!("xtask: OCI layout {}", layout.display());
    Ok(())
}

/// Builds (or rebuilds) the layout `$CARGO_TARGET_DIR/oci-samples/NAME`:
/// an empty image whose root filesystem `fill` writes, with `cmd` as its
/// command when given; returns its path.
fn layout(name: &str, cmd: &[&str], fill: impl FnOnce(&Path) -> Result<(), String>) -> Result<PathBuf, String> {
    ensure_packages(SAMPLE_PACKAGES)?;
    let out = target_dir().join("oci-samples");
    let layout = out.join(name);
    let bundle = out.join(format!("{name}.bundle"));
    for dir in [&layout, &bundle] {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
        }
    }
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let image = format!("{}:latest", layout.display());
    let umoci = |args: &[&str]| {
        let mut cmd = Command::new("umoci");
        cmd.args(args);
        run(cmd)
    };
    umoci(&["init", "--layout", &layout.display().to_string()])?;
    umoci(&["new", "--image", &image])?;
    umoci(&["unpack", "--rootless", "--image", &image, &bundle.display().to_string()])?;
    fill(&bundle.join("rootfs"))?;
    umoci(&["repack", "--image", &image, &bundle.display().to_string()])?;
    if !cmd.is_empty() {
        let mut args = vec!["config", "--image", &image];
        for arg in cmd {
            args.extend(["--config.cmd", arg]);
        }
        umoci(&args)?;
    }
    let _ = fs::remove_dir_all(&bundle);
    Ok(layout)
}

fn io(what: &str, e: std::io::Error) -> String {
    format!("{what}: {e}")
}

/// Builds (or rebuilds) the busybox-httpd layout; returns its path.
pub fn busybox_httpd() -> Result<PathBuf, String> {
    layout("busybox-httpd", &["httpd", "-f", "-p", "80", "-h", "/www"], |rootfs| {
        let bin = rootfs.join("bin");
        fs::create_dir_all(&bin).map_err(|e| io("bin", e))?;
        fs::copy("/bin/busybox", bin.join("busybox")).map_err(|e| io("copy /bin/busybox", e))?;
        for applet in APPLETS {
            symlink("busybox", bin.join(applet)).map_err(|e| io(applet, e))?;
        }
        let www = rootfs.join("www");
        fs::create_dir_all(&www).map_err(|e| io("www", e))?;
        fs::write(www.join("index.html"), INDEX_HTML).map_err(|e| io("index.html", e))
    })
}

/// Builds (or rebuilds) a layout whose image runs `binary` (a native
/// program of this machine: the benchmark's `call-peer`) with the shared
/// libraries `ldd` lists for it, under `$CARGO_TARGET_DIR/oci-samples/NAME`;
/// returns its path.
pub fn native_program(name: &str, binary: &Path) -> Result<PathBuf, String> {
    layout(name, &[], |rootfs| {
        let bin = rootfs.join("bin");
        fs::create_dir_all(&bin).map_err(|e| io("bin", e))?;
        let file_name = binary.file_name().ok_or("the program has no file name")?;
        fs::copy(binary, bin.join(file_name)).map_err(|e| io(&format!("copy {}", binary.display()), e))?;
        // The dynamic loader and libraries, at the paths the program names.
        let ldd = Command::new("ldd")
            .arg(binary)
            .output()
            .map_err(|e| format!("cannot run ldd: {e}"))?;
        for library in String::from_utf8_lossy(&ldd.stdout)
            .split_whitespace()
            .filter(|word| word.starts_with('/'))
        {
            let target = rootfs.join(library.trim_start_matches('/'));
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| io("library folder", e))?;
            }
            fs::copy(library, &target).map_err(|e| io(&format!("copy {library}"), e))?;
        }
        Ok(())
    })
}
