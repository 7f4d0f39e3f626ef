//! Receiving the terminal of a process runc starts with `--console-socket`.
//!
//! With `terminal: true`, runc makes a pseudo-terminal inside the
//! container and sends its master over a Unix socket named by
//! `--console-socket`, as a descriptor in an `SCM_RIGHTS` message; the
//! caller keeps the master and is the process's terminal from then on
//! (containerd's shim does the same).
//!
//! The socket is in the abstract namespace (runc, written in Go, dials a
//! name starting with `@` there), so that no path length limit or stale
//! file gets in the way; a connection is accepted only from this
//! process's own user. runc connects and sends before it exits, and the
//! kernel queues both until we accept, so [`ConsoleSocket::receive`] is
//! called after runc has returned and never waits.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

/// A listening console socket, unique to this process.
#[derive(Debug)]
pub struct ConsoleSocket {
    listener: UnixListener,
    name: String,
}

impl ConsoleSocket {
    pub fn bind() -> io::Result<ConsoleSocket> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "skiff-console-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let listener = UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)?;
        listener.set_nonblocking(true)?;
        Ok(ConsoleSocket { listener, name })
    }

    /// The `--console-socket` argument.
    pub fn argument(&self) -> String {
        format!("@{}", self.name)
    }

    /// The terminal master runc sent.
    pub fn receive(&self) -> io::Result<OwnedFd> {
        let (stream, _) = self.listener.accept().map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => io::Error::other("runc did not send the terminal"),
            _ => e,
        })?;
        stream.set_nonblocking(false)?;
        let peer = rustix::net::sockopt::socket_peercred(&stream)?;
        if peer.uid != rustix::process::getuid() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the console socket was reached by another user",
            ));
        }
        let mut data = [0u8; 4096];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        rustix::net::recvmsg(
            &stream,
            &mut [io::IoSliceMut::new(&mut data)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        let received = control.drain().find_map(|message| match message {
            RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
            _ => None,
        });
        received.ok_or_else(|| io::Error::other("runc's message held no terminal"))
    }
}
