//! An exec session, whichever protocol carries it: the client's input
//! ([`In`]) goes to the process, the process's output ([`Out`]) to the
//! client, and its exit becomes the `metav1.Status` the error stream
//! carries (`NonZeroExitCode` with an `ExitCode` cause, as the kubelet
//! writes it, which is where kubectl and the Python client read the exit
//! code from).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::agent::runtime::Process;

/// How long output may still arrive once the process has exited (a child
/// it left behind may hold its stdout open).
const DRAIN: Duration = Duration::from_secs(2);

/// What the client sends.
#[derive(Debug)]
pub enum In {
    Stdin(Bytes),
    /// No more stdin: the process reads end-of-file.
    StdinClosed,
    /// The client's terminal has a new size.
    Resize {
        width: u16,
        height: u16,
    },
}

/// What goes to the client.
#[derive(Debug)]
pub enum Out {
    Stdout(Bytes),
    Stderr(Bytes),
    /// The session's outcome; nothing follows.
    Done(Value),
}

/// A non-blocking descriptor driven by the runtime's reactor.
#[derive(Debug)]
pub struct Fd(AsyncFd<OwnedFd>);

impl Fd {
    pub fn new(fd: OwnedFd) -> io::Result<Fd> {
        let flags = rustix::fs::fcntl_getfl(&fd)?;
        rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)?;
        // tokio deprecates the safe constructor because an arbitrary
        // `AsRawFd` may close or swap its descriptor while registered; an
        // `OwnedFd` owned by the `AsyncFd` cannot, which is what its
        // unsafe replacement asks the caller to promise.
        #[allow(deprecated)]
        let registered = AsyncFd::new(fd)?;
        Ok(Fd(registered))
    }

    /// Reads some bytes; 0 at end of file (a terminal whose other side
    /// is closed reports EIO, which is its end of file).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut ready = self.0.readable().await?;
            match ready.try_io(|fd| rustix::io::read(fd.get_ref(), &mut *buf).map_err(io::Error::from)) {
                Ok(Err(e)) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => return Ok(0),
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let mut ready = self.0.writable().await?;
            match ready.try_io(|fd| rustix::io::write(fd.get_ref(), buf).map_err(io::Error::from)) {
                Ok(Ok(n)) => buf = &buf[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.get_ref().as_fd()
    }
}

/// The Status an exit code becomes.
pub fn exit_status(code: Option<i32>) -> Value {
    match code {
        Some(0) => json!({"metadata": {}, "status": "Success"}),
        Some(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        None => failure("the process's exit status was lost"),
    }
}

/// The Status of a session that could not run, worded as the kubelet's
/// `InternalError`.
pub fn failure(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
}

/// Takes the client's input until it ends: stdin into `stdin` (dropped,
/// so the reader sees its end, when the client closes it; a terminal
/// stays open, as its input is its output too, and `stdin_once`'s
/// holder is closed with it), resizes onto the terminal.
async fn feed(
    mut input: mpsc::Receiver<In>,
    mut stdin: Option<Fd>,
    terminal: bool,
    stdin_once: Option<std::sync::Arc<crate::agent::logs::Stdin>>,
) {
    while let Some(message) = input.recv().await {
        match message {
            In::Stdin(data) => {
                if let Some(fd) = &stdin
                    && fd.write_all(&data).await.is_err()
                {
                    stdin = None;
                }
            }
            In::StdinClosed if !terminal => {
                stdin = None;
                if let Some(holder) = &stdin_once {
                    holder.close();
                }
            }
            In::StdinClosed => {}
            In::Resize { width, height } => {
                if let (true, Some(fd)) = (terminal, &stdin) {
                    let size = rustix::termios::Winsize {
                        ws_row: height,
                        ws_col: width,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    let _ = rustix::termios::tcsetwinsize(fd.as_fd(), size);
                }
            }
        }
    }
}

/// Copies one output of the process to the client until its end.
async fn pump(fd: Fd, wrap: fn(Bytes) -> Out, output: mpsc::Sender<Out>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match fd.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if output.send(wrap(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Runs the session until the process exits and its output is out, then
/// sends [`Out::Done`]. Input that ends (the client went away) closes
/// the process's stdin.
pub async fn run(process: Process, input: mpsc::Receiver<In>, output: mpsc::Sender<Out>) {
    let Process {
        stdin,
        stdout,
        stderr,
        terminal,
        wait,
    } = process;
    let wrap_fd = |fd: OwnedFd| Fd::new(fd);
    let (stdin, stdout, stderr) = match (wrap_fd(stdin), wrap_fd(stdout), stderr.map(wrap_fd).transpose()) {
        (Ok(i), Ok(o), Ok(e)) => (i, o, e),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            let _ = output
                .send(Out::Done(failure(&format!("cannot wire the process's stdio: {e}"))))
                .await;
            return;
        }
    };
    let mut pumps = tokio::task::JoinSet::new();
    pumps.spawn(pump(stdout, Out::Stdout, output.clone()));
    if let Some(stderr) = stderr {
        pumps.spawn(pump(stderr, Out::Stderr, output.clone()));
    }
    let feeder = tokio::spawn(feed(input, Some(stdin), terminal, None));
    let code = tokio::task::spawn_blocking(wait).await.unwrap_or(None);
    let drained = tokio::time::timeout(DRAIN, async { while pumps.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        pumps.abort_all();
    }
    feeder.abort();
    let _ = output.send(Out::Done(exit_status(code))).await;
}

/// Attaches the client to a container's own stdio: its output from now
/// until it ends (the container exits) or the client goes; with
/// `stdin`, the client's input to the container's stdin, which a
/// `stdinOnce` container then sees closed.
pub async fn attach(
    stdio: crate::agent::logs::Attach,
    stdin: bool,
    input: mpsc::Receiver<In>,
    output: mpsc::Sender<Out>,
) {
    use crate::agent::logs::OutputStream;
    use tokio::sync::broadcast::error::RecvError;

    let mut subscription = stdio.output.subscribe();
    let mut ended = stdio.ended.clone();
    if *ended.borrow() {
        let _ = output
            .send(Out::Done(failure("the container is no longer running")))
            .await;
        return;
    }
    let writer = stdin
        .then(|| stdio.stdin.as_ref().and_then(|s| s.duplicate()))
        .flatten()
        .and_then(|fd| Fd::new(fd).ok());
    let terminal = stdio.console.tty;
    // A `stdinOnce` container's stdin closes when this client's does.
    let once = (stdin && stdio.console.stdin_once)
        .then(|| stdio.stdin.clone())
        .flatten();
    let (client_gone, mut gone) = tokio::sync::oneshot::channel::<()>();
    let closing = once.clone();
    let feeder = tokio::spawn(async move {
        feed(input, writer, terminal, closing).await;
        let _ = client_gone.send(());
    });
    let forward = |stream, data| match stream {
        OutputStream::Stdout => Out::Stdout(data),
        OutputStream::Stderr => Out::Stderr(data),
    };
    loop {
        tokio::select! {
            received = subscription.recv() => match received {
                Ok((stream, data)) => {
                    if output.send(forward(stream, data)).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            _ = ended.changed() => {
                while let Ok((stream, data)) = subscription.try_recv() {
                    let _ = output.send(forward(stream, data)).await;
                }
                break;
            }
            _ = &mut gone => break,
        }
    }
    feeder.abort();
    if let Some(holder) = once {
        holder.close();
    }
    let _ = output.send(Out::Done(exit_status(Some(0)))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_become_statuses_clients_read() {
        assert_eq!(exit_status(Some(0))["status"], "Success");
        let failed = exit_status(Some(3));
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(
            failed["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
        assert_eq!(exit_status(None)["reason"], "InternalError");
    }
}
