//! Where events go: a bounded queue and one writer thread, so that
//! request handling never waits on the disk.
//!
//! A request hands its serialized event to the queue and goes on. The
//! writer thread takes events off in order, writes each as one line (one
//! `write` call, so the rotating file rotates between events) and flushes
//! once the queue is empty.
//!
//! **When the queue is full.** kube-apiserver's log backend blocks the
//! request by default until its event is written. skiff does not: the
//! event is dropped, counted ([`Stats::dropped`]) and reported as an
//! error in the server's log (on the 1st, 2nd, 4th, 8th… drop, so a
//! stalled disk cannot flood it). The queue holds 10,000 events (the size
//! of kube-apiserver's batch buffer) or 64 MiB, whichever comes first, so
//! only a disk stalled for a long while loses events, and a stalled disk
//! never stalls the API. Events are dropped from the point the queue is
//! full on, in the order they come, never silently.
//!
//! **When writing fails** (disk full, file removed with its directory):
//! the event is lost, counted ([`Stats::write_errors`]) and reported the
//! same way; the server goes on and the next event tries again. Events
//! still queued when the process exits are lost with it.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

/// Events the queue holds at most.
pub const QUEUE_EVENTS: usize = 10_000;

/// Bytes the queue holds at most.
pub const QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// The sending end; the writer thread ends when the last one is dropped.
#[derive(Debug)]
pub struct Sink {
    queue: SyncSender<Vec<u8>>,
    counters: Arc<Counters>,
    byte_limit: usize,
}

/// What became of the events so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Written to the log.
    pub written: u64,
    /// Dropped because the queue was full.
    pub dropped: u64,
    /// Lost because writing failed.
    pub write_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
    write_errors: AtomicU64,
    queued_bytes: AtomicUsize,
}

impl Sink {
    /// Starts the writer thread over `writer`.
    pub fn start(writer: Box<dyn Write + Send>) -> std::io::Result<Sink> {
        Sink::with_limits(writer, QUEUE_EVENTS, QUEUE_BYTES)
    }

    /// The same with other queue limits (for tests).
    pub fn with_limits(writer: Box<dyn Write + Send>, events: usize, bytes: usize) -> std::io::Result<Sink> {
        let (queue, lines) = std::sync::mpsc::sync_channel(events);
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_lines(writer, lines, &shared))?;
        Ok(Sink {
            queue,
            counters,
            byte_limit: bytes,
        })
    }

    /// Queues `line` (one event and its newline), or drops it if the
    /// queue is full. Never blocks.
    pub fn send(&self, line: Vec<u8>) {
        let len = line.len();
        let queued = self.counters.queued_bytes.fetch_add(len, Ordering::SeqCst);
        let refused = if queued.saturating_add(len) > self.byte_limit && queued > 0 {
            true
        } else {
            match self.queue.try_send(line) {
                Ok(()) => false,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => true,
            }
        };
        if refused {
            self.counters.queued_bytes.fetch_sub(len, Ordering::SeqCst);
            let dropped = self.counters.dropped.fetch_add(1, Ordering::SeqCst) + 1;
            if dropped.is_power_of_two() {
                tracing::error!(dropped, "the audit log is not keeping up: events dropped");
            }
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            written: self.counters.written.load(Ordering::SeqCst),
            dropped: self.counters.dropped.load(Ordering::SeqCst),
            write_errors: self.counters.write_errors.load(Ordering::SeqCst),
        }
    }
}

/// The writer thread: until every sender is gone.
fn write_lines(mut writer: Box<dyn Write + Send>, lines: Receiver<Vec<u8>>, counters: &Counters) {
    let write = |line: Vec<u8>, writer: &mut Box<dyn Write + Send>| {
        let result = writer.write_all(&line);
        counters.queued_bytes.fetch_sub(line.len(), Ordering::SeqCst);
        match result {
            Ok(()) => {
                counters.written.fetch_add(1, Ordering::SeqCst);
            }
            Err(error) => {
                let errors = counters.write_errors.fetch_add(1, Ordering::SeqCst) + 1;
                if errors.is_power_of_two() {
                    tracing::error!(%error, errors, "cannot write to the audit log: events lost");
                }
            }
        }
    };
    while let Ok(line) = lines.recv() {
        write(line, &mut writer);
        while let Ok(line) = lines.try_recv() {
            write(line, &mut writer);
        }
        if let Err(error) = writer.flush() {
            let errors = counters.write_errors.fetch_add(1, Ordering::SeqCst) + 1;
            if errors.is_power_of_two() {
                tracing::error!(%error, errors, "cannot flush the audit log");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io;
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    use super::*;

    /// Whether writes may go on, and what was written.
    type Shared = (Mutex<(bool, Vec<u8>)>, Condvar);

    /// A writer that holds every write until released, then fails the
    /// ones that say `fail`.
    #[derive(Clone, Default)]
    struct Gate {
        state: Arc<Shared>,
    }

    impl Gate {
        fn open(&self) {
            let (lock, cond) = &*self.state;
            lock.lock().unwrap().0 = true;
            cond.notify_all();
        }
        fn text(&self) -> String {
            String::from_utf8(self.state.0.lock().unwrap().1.clone()).unwrap()
        }
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (lock, cond) = &*self.state;
            let mut state = cond.wait_while(lock.lock().unwrap(), |s| !s.0).unwrap();
            if buf.starts_with(b"fail") {
                return Err(io::Error::other("disk full"));
            }
            state.1.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn eventually(what: &str, f: impl FnMut() -> Option<()>) {
        skiff_testing::eventually_blocking(Duration::from_secs(10), what, f).unwrap();
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_never_blocks() {
        let gate = Gate::default();
        let sink = Sink::with_limits(Box::new(gate.clone()), 2, 1 << 20).unwrap();
        // One line is taken by the (held) writer, two wait in the queue;
        // the rest find it full. None of these calls blocks.
        for i in 0..10 {
            sink.send(format!("line {i}\n").into_bytes());
        }
        let dropped = sink.stats().dropped;
        assert!((7..=8).contains(&dropped), "{:?}", sink.stats());
        gate.open();
        eventually("the queued lines to be written", || {
            (sink.stats().written + sink.stats().dropped == 10).then_some(())
        });
        assert!(gate.text().starts_with("line 0\nline 1\n"), "{}", gate.text());
    }

    #[test]
    fn the_byte_budget_bounds_the_queue_too() {
        let gate = Gate::default();
        let sink = Sink::with_limits(Box::new(gate.clone()), 100, 10).unwrap();
        sink.send(b"first line\n".to_vec()); // alone, it may exceed the budget
        sink.send(b"second\n".to_vec());
        sink.send(b"third\n".to_vec());
        assert!(sink.stats().dropped >= 1, "{:?}", sink.stats());
        gate.open();
        eventually("the queue to drain", || {
            (sink.stats().written + sink.stats().dropped == 3).then_some(())
        });
    }

    #[test]
    fn write_errors_are_counted_and_writing_goes_on() {
        let gate = Gate::default();
        gate.open();
        let sink = Sink::start(Box::new(gate.clone())).unwrap();
        sink.send(b"fail\n".to_vec());
        sink.send(b"ok\n".to_vec());
        eventually("both lines to be handled", || {
            let stats = sink.stats();
            (stats.write_errors == 1 && stats.written == 1).then_some(())
        });
        assert_eq!(gate.text(), "ok\n");
    }
}
