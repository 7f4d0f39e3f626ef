//! Container logs: written as the kubelet writes them, read back for
//! `pods/log`.
//!
//! # Writing
//!
//! Each line goes into the container's log file in the CRI format, one
//! line per record: `<RFC 3339 nanos> <stdout|stderr> <F|P> <text>` (`P`
//! for a piece of a line longer than [`MAX_LINE`], or an unfinished last
//! line). How the lines get there is the runtime's choice
//! ([`LogWiring`]); [`PodLogDir::open`] wires a run's log accordingly:
//!
//! * [`LogWiring::Fifos`] (runc): containers write to two FIFOs in the
//!   log directory (the way containerd hands stdio to a shim). A
//!   [`LogWriter`] holds the read ends and copies them into the file, one
//!   thread per stream; [`LogWriter::close`] lets go of the write ends it
//!   keeps open, and the copy ends once the container's last writer
//!   closes.
//! * [`LogWiring::Direct`] (wasmtime): instances run in this process, so
//!   their output needs no pipe: a [`DirectLog`] hands each instance a
//!   writer that keeps the instance's unfinished line and appends whole
//!   records to the file, which is open only while some instance is
//!   writing: between requests a Wasm pod holds no thread or descriptor
//!   for its logs.
//!
//! # Layout
//!
//! ```text
//! <root>/<namespace>_<pod>_<uid>/<container>/<restart>.log     current
//! <root>/<namespace>_<pod>_<uid>/<container>/<restart>.log.1   rotated once
//! ```
//!
//! A file that grows past [`LogLimits::max_bytes`] is rotated to `.1`
//! (replacing an older `.1`), so one run's log takes at most twice that on
//! disk. A container keeps the logs of its current and its previous run
//! (what `previous` reads): when a run starts, the one before the previous
//! loses its log.
//!
//! # Reading
//!
//! [`read`] parses a log back into lines, honouring `tailLines`,
//! `sinceSeconds`/`sinceTime`, `timestamps` and `limitBytes`; the caller
//! follows a live log by reading again from the byte offset it returned.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use skiff_wasm::Output;

use super::runtime::{LogWiring, Stdio};

/// Longest line written as one record; longer ones are split.
pub const MAX_LINE: usize = 16 * 1024;

/// Size bound of a log file before rotation.
#[derive(Clone, Copy, Debug)]
pub struct LogLimits {
    pub max_bytes: u64,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_bytes: 10 * 1024 * 1024,
        }
    }
}

/// Where one pod's container logs live.
#[derive(Clone, Debug)]
pub struct PodLogDir {
    dir: PathBuf,
}

impl PodLogDir {
    pub fn new(root: &Path, namespace: &str, pod: &str, uid: &str) -> PodLogDir {
        PodLogDir {
            dir: root.join(format!("{namespace}_{pod}_{uid}")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The log file of a container's `restart`th run.
    pub fn file(&self, container: &str, restart: u32) -> PathBuf {
        self.dir.join(container).join(format!("{restart}.log"))
    }

    /// Removes the log of a container's `restart`th run, rotated part
    /// included.
    pub fn remove_run(&self, container: &str, restart: u32) {
        let log = self.file(container, restart);
        let mut rotated = log.clone().into_os_string();
        rotated.push(".1");
        for path in [log, PathBuf::from(rotated)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(error) => tracing::warn!(path = %path.display(), %error, "cannot remove an old container log"),
            }
        }
    }

    /// Opens the log of a container's `restart`th run, wired as its
    /// runtime asks: the log to close once the run is over, and the stdio
    /// to start the container with.
    pub fn open(
        &self,
        container: &str,
        restart: u32,
        wiring: LogWiring,
        limits: LogLimits,
        console: Console,
    ) -> io::Result<(ContainerLog, Stdio)> {
        let file = self.file(container, restart);
        match wiring {
            LogWiring::Direct => {
                let log = DirectLog::open(&file, limits)?;
                let stdio = Stdio::Direct {
                    stdout: log.output("stdout"),
                    stderr: log.output("stderr"),
                };
                Ok((ContainerLog::Direct(log), stdio))
            }
            LogWiring::Fifos => {
                let (stdout, stderr) = self.fifos(container, restart);
                let stdin = self.dir.join(container).join(format!("{restart}.stdin"));
                let (writer, stdin, terminal) =
                    LogWriter::start(&file, stdout.clone(), stderr.clone(), limits, console, stdin, false)?;
                let stdio = Stdio::Fifos {
                    stdout,
                    stderr,
                    stdin,
                    terminal,
                };
                Ok((ContainerLog::Fifos(writer), stdio))
            }
        }
    }

    /// Goes on copying the output of a container's `restart`th run that an
    /// earlier agent started, from the FIFOs it still writes, appending to
    /// its log. (Containers with a stdin or a terminal are not adopted:
    /// those ended with the agent that held them.)
    pub fn reopen(&self, container: &str, restart: u32, limits: LogLimits) -> io::Result<ContainerLog> {
        let file = self.file(container, restart);
        let (stdout, stderr) = self.fifos(container, restart);
        let stdin = self.dir.join(container).join(format!("{restart}.stdin"));
        let (writer, _, _) = LogWriter::start(&file, stdout, stderr, limits, Console::default(), stdin, true)?;
        Ok(ContainerLog::Fifos(writer))
    }

    /// The stdio FIFOs of a container's `restart`th run.
    pub fn fifos(&self, container: &str, restart: u32) -> (PathBuf, PathBuf) {
        let dir = self.dir.join(container);
        (
            dir.join(format!("{restart}.stdout")),
            dir.join(format!("{restart}.stderr")),
        )
    }
}

/// What a container's `stdin`, `stdinOnce` and `tty` ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Console {
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
}

/// Which output a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// A container's stdin, as the agent holds it for `kubectl attach`: the
/// write end of its stdin FIFO, or its terminal's master. Closing it
/// (`stdinOnce`) gives the container end of file.
#[derive(Debug, Default)]
pub struct Stdin(std::sync::Mutex<Option<std::os::fd::OwnedFd>>);

impl Stdin {
    fn set(&self, fd: std::os::fd::OwnedFd) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(fd);
    }

    /// A descriptor of its own for a writer; `None` once closed.
    pub fn duplicate(&self) -> Option<std::os::fd::OwnedFd> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()?
            .try_clone()
            .ok()
    }

    pub fn close(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// A running container's stdio as `kubectl attach` sees it: its output
/// from the moment one subscribes, whether it has ended, and its stdin.
#[derive(Clone, Debug)]
pub struct Attach {
    pub output: tokio::sync::broadcast::Sender<(OutputStream, bytes::Bytes)>,
    /// Turns `true` once all output is out (the container has exited).
    pub ended: tokio::sync::watch::Receiver<bool>,
    /// `None` when the container has no stdin (`stdin: false`).
    pub stdin: Option<Arc<Stdin>>,
    pub console: Console,
}

/// Chunks of output kept for a slow attached client before it misses
/// some.
const ATTACH_BUFFER: usize = 256;

/// Copies a container's stdout and stderr FIFOs (or its terminal) into its
/// log file, and to attached clients.
#[derive(Debug)]
pub struct LogWriter {
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    stdin_fifo: Option<PathBuf>,
    keep_open: Vec<File>,
    threads: Vec<std::thread::JoinHandle<()>>,
    attach: Attach,
    ended: tokio::sync::watch::Sender<bool>,
}

impl LogWriter {
    /// Makes the FIFOs (or, when `existing`, opens those a running
    /// container already writes) and starts copying them into `log`. With `stdin`
    /// (and no terminal), also a stdin FIFO at `stdin_fifo`, returned for
    /// the container to read; with a terminal, the sender its master is
    /// to be handed to once the runtime has it.
    #[allow(clippy::type_complexity)]
    pub fn start(
        log: &Path,
        stdout: PathBuf,
        stderr: PathBuf,
        limits: LogLimits,
        console: Console,
        stdin_fifo: PathBuf,
        existing: bool,
    ) -> io::Result<(
        LogWriter,
        Option<PathBuf>,
        Option<std::sync::mpsc::Sender<std::os::fd::OwnedFd>>,
    )> {
        if let Some(parent) = log.parent() {
            fs::create_dir_all(parent)?;
        }
        let sink = Arc::new(Sink::open(log, limits, true)?);
        let (output, _) = tokio::sync::broadcast::channel(ATTACH_BUFFER);
        let (ended, ended_rx) = tokio::sync::watch::channel(false);
        let stdin = (console.stdin || console.tty).then(|| Arc::new(Stdin::default()));
        let mut keep_open = Vec::new();
        let mut threads = Vec::new();
        let mut terminal = None;
        let mut stdin_path = None;
        if console.tty {
            // The container's stdio is its terminal: the master carries
            // its output (one stream, as stdout) and takes its input.
            let (tx, rx) = std::sync::mpsc::channel::<std::os::fd::OwnedFd>();
            let (sink, output, stdin) = (sink.clone(), output.clone(), stdin.clone());
            threads.push(std::thread::Builder::new().name("log-terminal".into()).spawn(move || {
                let Ok(master) = rx.recv() else { return };
                if let (Some(stdin), Ok(writer)) = (&stdin, master.try_clone()) {
                    stdin.set(writer);
                }
                copy_output(File::from(master), "stdout", OutputStream::Stdout, &sink, &output);
            })?);
            terminal = Some(tx);
        } else if console.stdin {
            let _ = fs::remove_file(&stdin_fifo);
            rustix::fs::mkfifoat(
                rustix::fs::CWD,
                stdin_fifo.as_path(),
                rustix::fs::Mode::from_raw_mode(0o600),
            )?;
            // Read-write, so that the open does not wait for a reader and
            // the container reads no end of file until this is closed.
            let holder = OpenOptions::new().read(true).write(true).open(&stdin_fifo)?;
            if let Some(stdin) = &stdin {
                stdin.set(holder.into());
            }
            stdin_path = Some(stdin_fifo.clone());
        }
        for (path, stream) in [(&stdout, "stdout"), (&stderr, "stderr")] {
            if !(existing && path.exists()) {
                let _ = fs::remove_file(path);
                rustix::fs::mkfifoat(rustix::fs::CWD, path.as_path(), rustix::fs::Mode::from_raw_mode(0o600))?;
            }
            // Non-blocking so the open does not wait for a writer; the
            // reads themselves block.
            let reader = OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(path)?;
            let flags = rustix::fs::fcntl_getfl(&reader)?;
            rustix::fs::fcntl_setfl(&reader, flags - rustix::fs::OFlags::NONBLOCK)?;
            keep_open.push(OpenOptions::new().write(true).open(path)?);
            let (sink, output) = (sink.clone(), output.clone());
            let which = if stream == "stdout" {
                OutputStream::Stdout
            } else {
                OutputStream::Stderr
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("log-{stream}"))
                    .spawn(move || copy_output(reader, stream, which, &sink, &output))?,
            );
        }
        let attach = Attach {
            output,
            ended: ended_rx,
            stdin,
            console,
        };
        let writer = LogWriter {
            stdout,
            stderr,
            stdin_fifo: stdin_path.clone(),
            keep_open,
            threads,
            attach,
            ended,
        };
        Ok((writer, stdin_path, terminal))
    }

    /// What `kubectl attach` reaches.
    pub fn attach(&self) -> Attach {
        self.attach.clone()
    }

    /// Stops holding the FIFOs open: the copy ends when the container's
    /// last writer closes them. Returns once everything is in the file;
    /// attached clients are then told the output has ended.
    pub fn close(mut self) {
        self.keep_open.clear();
        if let Some(stdin) = &self.attach.stdin {
            stdin.close();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        let _ = fs::remove_file(&self.stdout);
        let _ = fs::remove_file(&self.stderr);
        if let Some(fifo) = &self.stdin_fifo {
            let _ = fs::remove_file(fifo);
        }
        self.ended.send_replace(true);
    }
}

/// A Wasm container's log, written from this process.
#[derive(Clone, Debug)]
pub struct DirectLog {
    sink: Arc<Sink>,
}

impl DirectLog {
    pub fn open(log: &Path, limits: LogLimits) -> io::Result<DirectLog> {
        if let Some(parent) = log.parent() {
            fs::create_dir_all(parent)?;
        }
        Ok(DirectLog {
            sink: Arc::new(Sink::open(log, limits, false)?),
        })
    }

    /// One of the container's streams, `stdout` or `stderr`, for its
    /// instances to write.
    pub fn output(&self, stream: &'static str) -> Arc<dyn Output> {
        Arc::new(StreamOutput {
            sink: self.sink.clone(),
            stream,
        })
    }
}

#[derive(Debug)]
struct StreamOutput {
    sink: Arc<Sink>,
    stream: &'static str,
}

impl Output for StreamOutput {
    fn writer(&self) -> Box<dyn Write + Send + Sync> {
        self.sink.hold();
        Box::new(LineWriter {
            sink: self.sink.clone(),
            stream: self.stream,
            line: Vec::new(),
        })
    }
}

/// One instance's stream: bytes up to a newline are kept, then written as
/// one record; a line reaching [`MAX_LINE`] is written in pieces, and what
/// is left when the instance ends is written as a piece.
struct LineWriter {
    sink: Arc<Sink>,
    stream: &'static str,
    line: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            let room = MAX_LINE - self.line.len();
            let window = &rest[..room.min(rest.len())];
            match window.iter().position(|b| *b == b'\n') {
                Some(end) => {
                    self.line.extend_from_slice(&window[..end]);
                    self.sink.write_record(self.stream, false, &self.line);
                    self.line.clear();
                    rest = &rest[end + 1..];
                }
                None => {
                    self.line.extend_from_slice(window);
                    rest = &rest[window.len()..];
                    if self.line.len() == MAX_LINE {
                        self.sink.write_record(self.stream, true, &self.line);
                        self.line.clear();
                    }
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.sink.write_record(self.stream, true, &self.line);
        }
        self.sink.release();
    }
}

/// How a container's output reaches its log file; dropping or closing it
/// ends the log.
#[derive(Debug)]
pub enum ContainerLog {
    Fifos(LogWriter),
    Direct(DirectLog),
}

impl ContainerLog {
    /// What `kubectl attach` reaches: a runc container's stdio; `None`
    /// for Wasm components.
    pub fn attach(&self) -> Option<Attach> {
        match self {
            ContainerLog::Fifos(writer) => Some(writer.attach()),
            ContainerLog::Direct(_) => None,
        }
    }

    /// Returns once everything written so far is in the file (for FIFOs,
    /// once the container's writers have closed them).
    pub fn close(self) {
        match self {
            ContainerLog::Fifos(writer) => writer.close(),
            ContainerLog::Direct(_) => {}
        }
    }
}

/// The log file, shared by the writers of both streams.
#[derive(Debug)]
struct Sink {
    path: PathBuf,
    limits: LogLimits,
    state: std::sync::Mutex<SinkState>,
    failed: AtomicBool,
}

#[derive(Debug)]
struct SinkState {
    /// Open while someone may write: always for the FIFO copiers, only
    /// while an instance is writing for in-process logs, so an idle Wasm
    /// pod holds no descriptor for its log.
    file: Option<File>,
    size: u64,
    /// In-process writers alive; the file closes when the last one ends.
    writers: usize,
    keep_open: bool,
}

impl Sink {
    fn open(path: &Path, limits: LogLimits, keep_open: bool) -> io::Result<Sink> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Sink {
            path: path.to_path_buf(),
            limits,
            state: std::sync::Mutex::new(SinkState {
                file: keep_open.then_some(file),
                size,
                writers: 0,
                keep_open,
            }),
            failed: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hold(&self) {
        self.lock().writers += 1;
    }

    fn release(&self) {
        let mut state = self.lock();
        state.writers = state.writers.saturating_sub(1);
        if state.writers == 0 && !state.keep_open {
            state.file = None;
        }
    }

    fn write_record(&self, stream: &str, partial: bool, text: &[u8]) {
        let mut record = Vec::with_capacity(text.len() + 48);
        record.extend_from_slice(timestamp_now().as_bytes());
        record.push(b' ');
        record.extend_from_slice(stream.as_bytes());
        record.extend_from_slice(if partial { b" P " } else { b" F " });
        record.extend_from_slice(text);
        record.push(b'\n');
        let mut state = self.lock();
        if state.size + record.len() as u64 > self.limits.max_bytes && state.size > 0 {
            match self.rotate() {
                Ok(file) => {
                    state.file = Some(file);
                    state.size = 0;
                }
                Err(error) => self.report(&error),
            }
        }
        if state.file.is_none() {
            match OpenOptions::new().create(true).append(true).open(&self.path) {
                Ok(file) => state.file = Some(file),
                Err(error) => return self.report(&error),
            }
        }
        let Some(file) = state.file.as_mut() else { return };
        match file.write_all(&record) {
            Ok(()) => state.size += record.len() as u64,
            Err(error) => self.report(&error),
        }
    }

    fn rotate(&self) -> io::Result<File> {
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(".1");
        fs::rename(&self.path, &rotated)?;
        OpenOptions::new().create(true).append(true).open(&self.path)
    }

    fn report(&self, error: &io::Error) {
        if !self.failed.swap(true, Ordering::Relaxed) {
            tracing::warn!(path = %self.path.display(), %error, "cannot write container log");
        }
    }
}

fn timestamp_now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// Copies one output into the log, a record per line (a line reaching
/// [`MAX_LINE`], or left unfinished at the end, as a piece), and each
/// chunk as read to attached clients.
fn copy_output(
    mut reader: File,
    stream: &str,
    which: OutputStream,
    sink: &Sink,
    attached: &tokio::sync::broadcast::Sender<(OutputStream, bytes::Bytes)>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut line = Vec::new();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            // A terminal's master is shared with attached clients, which
            // make it non-blocking: wait for it to be readable.
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                let mut ready = [rustix::event::PollFd::new(&reader, rustix::event::PollFlags::IN)];
                let _ = rustix::event::poll(&mut ready, None);
                continue;
            }
            // A terminal whose container has gone reads EIO: its end.
            Err(error) if error.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => break,
            Err(error) => {
                sink.report(&error);
                break;
            }
        };
        if attached.receiver_count() > 0 {
            let _ = attached.send((which, bytes::Bytes::copy_from_slice(&buf[..n])));
        }
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let room = MAX_LINE - line.len();
            let window = &rest[..room.min(rest.len())];
            match window.iter().position(|b| *b == b'\n') {
                Some(end) => {
                    line.extend_from_slice(&window[..end]);
                    sink.write_record(stream, false, &line);
                    line.clear();
                    rest = &rest[end + 1..];
                }
                None => {
                    line.extend_from_slice(window);
                    rest = &rest[window.len()..];
                    if line.len() == MAX_LINE {
                        sink.write_record(stream, true, &line);
                        line.clear();
                    }
                }
            }
        }
    }
    if !line.is_empty() {
        sink.write_record(stream, true, &line);
    }
}

/// What `pods/log` asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub tail_lines: Option<usize>,
    /// Only records at or after this instant.
    pub since: Option<jiff::Timestamp>,
    pub timestamps: bool,
    pub limit_bytes: Option<usize>,
}

/// One parsed record.
#[derive(Debug, PartialEq, Eq)]
struct Record<'a> {
    timestamp: &'a str,
    partial: bool,
    text: &'a [u8],
}

fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let timestamp = std::str::from_utf8(parts.next()?).ok()?;
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or_default();
    Some(Record {
        timestamp,
        partial: tag == b"P",
        text,
    })
}

/// Renders the records of `bytes` (whole lines only) as `kubectl logs`
/// shows them: partial records joined, a timestamp in front when asked.
fn render(bytes: &[u8], query: &LogQuery, out: &mut Vec<u8>) {
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let Some(record) = parse_record(line) else {
            continue;
        };
        if let Some(since) = query.since
            && record.timestamp.parse::<jiff::Timestamp>().is_ok_and(|t| t < since)
        {
            continue;
        }
        if query.timestamps && !ends_partial(out) {
            out.extend_from_slice(record.timestamp.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(record.text);
        if !record.partial {
            out.push(b'\n');
        }
    }
}

fn ends_partial(out: &[u8]) -> bool {
    !out.is_empty() && out.last() != Some(&b'\n')
}

/// The length of `bytes` up to and including its last newline: only whole
/// records are read; one being written is left for the next read.
fn whole_lines(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
}

/// The rendered logs of one container run (its rotated file first), and
/// the byte offset in the current file up to which they were read.
pub fn read(path: &Path, query: &LogQuery) -> io::Result<(Vec<u8>, u64)> {
    let mut raw = Vec::new();
    let mut rotated = path.as_os_str().to_owned();
    rotated.push(".1");
    match fs::read(&rotated) {
        Ok(bytes) => raw.extend_from_slice(&bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let current = fs::read(path)?;
    let whole = whole_lines(&current);
    raw.extend_from_slice(&current[..whole]);
    let mut out = Vec::new();
    render(&raw, query, &mut out);
    if let Some(n) = query.tail_lines {
        out = tail(&out, n).to_vec();
    }
    if let Some(limit) = query.limit_bytes {
        out.truncate(limit);
    }
    Ok((out, whole as u64))
}

/// What has been appended to `path` since `offset`, rendered, and the new
/// offset. A file that shrank (rotated) is read from its start.
pub fn read_from(path: &Path, offset: u64, query: &LogQuery) -> io::Result<(Vec<u8>, u64)> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = if len < offset { 0 } else { offset };
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let whole = whole_lines(&bytes);
    let mut out = Vec::new();
    let query = LogQuery {
        tail_lines: None,
        limit_bytes: None,
        ..query.clone()
    };
    render(&bytes[..whole], &query, &mut out);
    Ok((out, start + whole as u64))
}

/// The last `n` lines of rendered text.
fn tail(text: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &text[i + 1..];
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> LogQuery {
        LogQuery::default()
    }

    #[test]
    fn records_round_trip_with_and_without_timestamps() {
        let raw = b"2026-01-01T00:00:00.000000001Z stdout F hello\n\
                    2026-01-01T00:00:01.000000000Z stderr P par\n\
                    2026-01-01T00:00:01.000000001Z stderr F tial\n";
        let mut out = Vec::new();
        render(raw, &query(), &mut out);
        assert_eq!(out, b"hello\npartial\n");
        let mut out = Vec::new();
        render(
            raw,
            &LogQuery {
                timestamps: true,
                ..query()
            },
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-01-01T00:00:00.000000001Z hello\n2026-01-01T00:00:01.000000000Z partial\n"
        );
        let mut out = Vec::new();
        let since = "2026-01-01T00:00:00.5Z".parse().ok();
        render(raw, &LogQuery { since, ..query() }, &mut out);
        assert_eq!(out, b"partial\n");
    }

    #[test]
    fn tail_takes_the_last_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc\n", 5), b"a\nb\nc\n");
        assert_eq!(tail(b"a\nb\nc\n", 0), b"");
    }

    #[test]
    fn direct_writers_keep_their_own_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c/0.log");
        let direct = DirectLog::open(&log, LogLimits::default()).unwrap();
        let out = direct.output("stdout");
        let mut a = out.writer();
        let mut b = out.writer();
        // Two instances writing at once: neither splits the other's line.
        a.write_all(b"first ").unwrap();
        b.write_all(b"other\nsecond ").unwrap();
        a.write_all(b"half\n").unwrap();
        a.write_all(&vec![b'x'; MAX_LINE + 3]).unwrap();
        a.write_all(b"\nunfinished").unwrap();
        drop(a);
        b.write_all(b"half\n").unwrap();
        drop(b);
        let (text, _) = read(&log, &query()).unwrap();
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        assert_eq!(lines[0], "other\n");
        assert_eq!(lines[1], "first half\n");
        assert_eq!(
            lines[2],
            format!("{}\n", "x".repeat(MAX_LINE + 3)),
            "long line rejoined"
        );
        assert_eq!(
            lines[3], "unfinishedsecond half\n",
            "a piece, then the other instance's line"
        );
        let raw = fs::read_to_string(&log).unwrap();
        assert_eq!(raw.lines().filter(|l| l.contains(" stdout P ")).count(), 2, "{raw}");
        assert!(direct.sink.lock().file.is_none(), "closed once no instance writes");
    }

    #[test]
    fn fifos_are_copied_rotated_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let pod = PodLogDir::new(dir.path(), "ns", "p", "u");
        let log = pod.file("c", 0);
        let (out, err) = pod.fifos("c", 0);
        let (writer, stdin, terminal) = LogWriter::start(
            &log,
            out.clone(),
            err.clone(),
            LogLimits { max_bytes: 200 },
            Console::default(),
            pod.path().join("stdin"),
            false,
        )
        .unwrap();
        assert!(stdin.is_none() && terminal.is_none(), "no stdin was asked for");
        let attach = writer.attach();
        let mut attached = attach.output.subscribe();
        {
            let mut stdout = OpenOptions::new().append(true).open(&out).unwrap();
            for i in 0..10 {
                writeln!(stdout, "line {i}").unwrap();
            }
            // One stream only: records of two streams may interleave.
            stdout.write_all(&vec![b'x'; MAX_LINE + 3]).unwrap();
            stdout.write_all(b"\n").unwrap();
        }
        writer.close();
        assert!(*attach.ended.borrow(), "attached clients learn the output ended");
        // Chunks are as the reads cut them; a slow client may miss the
        // oldest, never the newest.
        let mut seen = Vec::new();
        loop {
            match attached.try_recv() {
                Ok((stream, chunk)) => {
                    assert_eq!(stream, OutputStream::Stdout);
                    seen.extend_from_slice(&chunk);
                }
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        assert!(seen.ends_with(b"xxx\n"), "attached clients see the output");
        let mut rotated = log.clone().into_os_string();
        rotated.push(".1");
        assert!(Path::new(&rotated).exists(), "the log was rotated");
        let (text, _) = read(&log, &query()).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.ends_with(&format!("{}\n", "x".repeat(MAX_LINE + 3))),
            "long line rejoined: {:?}",
            &text[..text.len().min(300)]
        );
        let (tailed, _) = read(
            &log,
            &LogQuery {
                tail_lines: Some(1),
                ..query()
            },
        )
        .unwrap();
        assert_eq!(tailed.len(), MAX_LINE + 4);
        assert!(!out.exists() && !err.exists(), "FIFOs removed");
    }
}
