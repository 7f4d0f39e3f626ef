//! Network namespaces pinned to a file, as `ip netns add` pins them: the
//! namespace's nsfs inode is bind-mounted on an empty file, so it lives
//! on after the thread that made it, and runc joins it by path
//! (`linux.namespaces[].path`). It goes away once the file is unmounted
//! and no process is left in it.
//!
//! Entering a namespace changes the calling *thread*, for good; so the
//! work that must happen inside one runs on a thread made for it, which
//! then ends. Sockets keep the namespace they were opened in, so a
//! netlink socket opened there can be used from anywhere afterwards.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::{UnmountFlags, mount_bind, unmount};
#[allow(deprecated)] // see `pin_new`
use rustix::thread::{UnshareFlags, unshare};

/// Makes a new network namespace pinned at `path`, then runs `inside`
/// in it (on the thread that made it) and returns what it returns. On
/// any error nothing is left at `path`.
pub(crate) async fn create<T, F>(path: PathBuf, inside: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("netns".into()).spawn(move || {
        let made = pin_new(&path).and_then(|()| inside());
        if made.is_err() {
            remove(&path);
        }
        let _ = tx.send(made);
    })?;
    rx.await
        .unwrap_or_else(|_| Err(io::Error::other("the namespace thread ended early")))
}

/// Runs `inside` in the existing namespace pinned at `path`, on a thread
/// made for it, and returns what it returns.
pub(crate) async fn enter<T, F>(path: PathBuf, inside: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("netns".into()).spawn(move || {
        let entered = fs::File::open(&path).and_then(|file| {
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&file),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(io::Error::from)
        });
        let _ = tx.send(entered.and_then(|()| inside()));
    })?;
    rx.await
        .unwrap_or_else(|_| Err(io::Error::other("the namespace thread ended early")))
}

/// On the calling thread, which it moves there for good: unshares a new
/// network namespace and pins it at `path`.
fn pin_new(path: &Path) -> io::Result<()> {
    fs::File::create(path)?;
    // rustix deprecates its safe `unshare` because some flags (CLONE_FILES,
    // CLONE_FS) can change what descriptors other code holds refer to;
    // CLONE_NEWNET changes only this thread's network namespace.
    #[allow(deprecated)]
    unshare(UnshareFlags::NEWNET)?;
    mount_bind("/proc/thread-self/ns/net", path)?;
    Ok(())
}

/// Unpins the namespace at `path` and removes the file; the namespace
/// ends when its last process does. Nothing there is not an error.
pub(crate) fn remove(path: &Path) {
    match unmount(path, UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => {}
        Err(error) => tracing::warn!(%error, path = %path.display(), "cannot unpin a network namespace"),
    }
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => tracing::warn!(%error, path = %path.display(), "cannot remove a network namespace's file"),
    }
}

/// Writes a sysctl of the calling thread's network namespace
/// (`net.ipv4.…` as `net/ipv4/…`).
pub(crate) fn sysctl(key: &str, value: &str) -> io::Result<()> {
    let path = Path::new("/proc/sys").join(key);
    fs::write(&path, value).map_err(|e| io::Error::new(e.kind(), format!("cannot set {}: {e}", path.display())))
}
