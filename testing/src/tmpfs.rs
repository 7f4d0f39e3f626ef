//! A small tmpfs a test mounts on a temporary directory (it needs root),
//! unmounted when dropped: a disk the test can fill or make read-only.

use std::path::Path;
use std::process::Command;

/// A mounted tmpfs; dropping it unmounts it (lazily, in case a process
/// still holds a file there).
#[derive(Debug)]
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount`'s syntax: `48m`) named `name`.
    pub fn mount(name: &str, size: &str) -> anyhow::Result<Tmpfs> {
        let dir = tempfile::tempdir()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), name])
            .arg(dir.path())
            .status()?;
        anyhow::ensure!(
            status.success(),
            "cannot mount a tmpfs on {} (it needs root)",
            dir.path().display()
        );
        Ok(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts it `ro` or `rw` (which fails while files are open for
    /// writing on it).
    pub fn remount(&self, mode: &str) -> anyhow::Result<()> {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.dir.path())
            .status()?;
        anyhow::ensure!(status.success(), "cannot remount {} {mode}", self.dir.path().display());
        Ok(())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("--lazy").arg(self.dir.path()).status();
    }
}
