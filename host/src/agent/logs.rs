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
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
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
                let writer = LogWriter::start(&file, stdout.clone(), stderr.clone(), limits)?;
                Ok((ContainerLog::Fifos(writer), Stdio::Fifos { stdout, stderr }))
            }
        }
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

/// Copies a container's stdout and stderr FIFOs into its log file.
#[derive(Debug)]
pub struct LogWriter {
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    keep_open: Vec<File>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl LogWriter {
    /// Makes the FIFOs and starts copying them into `log`.
    pub fn start(log: &Path, stdout: PathBuf, stderr: PathBuf, limits: LogLimits) -> io::Result<LogWriter> {
        if let Some(parent) = log.parent() {
            fs::create_dir_all(parent)?;
        }
        let sink = Arc::new(Sink::open(log, limits, true)?);
        let mut keep_open = Vec::new();
        let mut threads = Vec::new();
        for (path, stream) in [(&stdout, "stdout"), (&stderr, "stderr")] {
            let _ = fs::remove_file(path);
            rustix::fs::mkfifoat(rustix::fs::CWD, path.as_path(), rustix::fs::Mode::from_raw_mode(0o600))?;
            // Non-blocking so the open does not wait for a writer; the
            // reads themselves block.
            let reader = OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(path)?;
            let flags = rustix::fs::fcntl_getfl(&reader)?;
            rustix::fs::fcntl_setfl(&reader, flags - rustix::fs::OFlags::NONBLOCK)?;
            keep_open.push(OpenOptions::new().write(true).open(path)?);
            let sink = sink.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("log-{stream}"))
                    .spawn(move || copy_lines(reader, stream, &sink))?,
            );
        }
        Ok(LogWriter {
            stdout,
            stderr,
            keep_open,
            threads,
        })
    }

    /// Stops holding the FIFOs open: the copy ends when the container's
    /// last writer closes them. Returns once everything is in the file.
    pub fn close(mut self) {
        self.keep_open.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        let _ = fs::remove_file(&self.stdout);
        let _ = fs::remove_file(&self.stderr);
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

fn copy_lines(reader: File, stream: &str, sink: &Sink) {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Read at most one record's worth, so a line without an end
        // cannot grow without bound.
        match (&mut reader).take(MAX_LINE as u64).read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                let complete = line.last() == Some(&b'\n');
                if complete {
                    line.pop();
                }
                sink.write_record(stream, !complete, &line);
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                sink.report(&error);
                return;
            }
        }
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
        let writer = LogWriter::start(&log, out.clone(), err.clone(), LogLimits { max_bytes: 200 }).unwrap();
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
