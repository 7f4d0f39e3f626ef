//! Watch fan-out.
//!
//! The state machine publishes each applied batch's events to the
//! [`WatchHub`] after they are durable in RocksDB. A watcher that starts at
//! a past revision first replays the `changes` log from RocksDB, then
//! registers with the hub at exactly the revision its replay reached; the
//! registration and every publish take the same lock, so no event is missed
//! or seen twice. Each watcher has a bounded queue: one that falls behind is
//! dropped and told so, rather than buffering without bound.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::kv::{Event, KeyRange, Revision};

pub(crate) type WatchMsg = Result<Vec<Event>>;

/// The live watchers of one node.
#[derive(Debug)]
pub(crate) struct WatchHub {
    state: Mutex<HubState>,
}

#[derive(Debug)]
struct HubState {
    /// The revision of the last published batch.
    revision: Revision,
    watchers: Vec<Slot>,
    /// Set when the store shuts down: no watcher is kept any more.
    closed: bool,
}

#[derive(Debug)]
pub(crate) struct Slot {
    range: KeyRange,
    /// Events below this revision are not for this watcher (it asked to
    /// start in the future).
    from: Revision,
    tx: mpsc::Sender<WatchMsg>,
    lagged: Arc<AtomicBool>,
}

impl WatchHub {
    pub(crate) fn new(revision: Revision) -> Self {
        WatchHub {
            state: Mutex::new(HubState {
                revision,
                watchers: Vec::new(),
                closed: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        // A poisoned lock only means a publisher panicked mid-fan-out; the
        // watcher list itself is still consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The revision of the last published batch.
    pub(crate) fn revision(&self) -> Revision {
        self.lock().revision
    }

    /// Delivers a batch of events that made the store reach `revision`.
    pub(crate) fn publish(&self, revision: Revision, events: &[Event]) {
        let mut state = self.lock();
        state.revision = revision;
        if state.watchers.is_empty() {
            return;
        }
        state.watchers.retain(|slot| {
            if slot.tx.is_closed() {
                return false;
            }
            let mine: Vec<Event> = events
                .iter()
                .filter(|e| e.kv.mod_revision >= slot.from && slot.range.contains(&e.kv.key))
                .cloned()
                .collect();
            if mine.is_empty() {
                return true;
            }
            match slot.tx.try_send(Ok(mine)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slot.lagged.store(true, Ordering::Release);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Registers `slot` to receive events from revision `from` on, if the
    /// hub has not published `from` yet; otherwise hands the slot back so
    /// the caller replays up to the hub's revision first.
    pub(crate) fn register_from(&self, from: Revision, mut slot: Slot) -> std::result::Result<(), (Slot, Revision)> {
        let mut state = self.lock();
        if state.revision >= from {
            let current = state.revision;
            return Err((slot, current));
        }
        slot.from = from;
        // After `close`, the slot is dropped and its watcher ends at once.
        if !state.closed {
            state.watchers.push(slot);
        }
        Ok(())
    }

    /// Ends every watcher cleanly, now and from now on: the store is
    /// shutting down.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.watchers.clear();
    }

    /// Cuts every watcher off (after a snapshot replaced the state under
    /// them) and moves to `revision`.
    pub(crate) fn reset(&self, revision: Revision) {
        let mut state = self.lock();
        for slot in state.watchers.drain(..) {
            slot.lagged.store(true, Ordering::Release);
        }
        state.revision = revision;
    }
}

/// A stream of event batches for one watch. Ends with an error if the
/// watcher was cut off; ends cleanly only when the store shuts down.
#[derive(Debug)]
pub struct Watcher {
    rx: mpsc::Receiver<WatchMsg>,
    lagged: Arc<AtomicBool>,
    capacity: usize,
    done: bool,
    /// Opens the events' values (see [`crate::ValueTransformer`]).
    transformer: Option<Arc<dyn crate::ValueTransformer>>,
}

impl Watcher {
    pub(crate) fn new(range: KeyRange, capacity: usize) -> (Watcher, Slot) {
        let (tx, rx) = mpsc::channel(capacity);
        let lagged = Arc::new(AtomicBool::new(false));
        let slot = Slot {
            range,
            from: 0,
            tx,
            lagged: lagged.clone(),
        };
        (
            Watcher {
                rx,
                lagged,
                capacity,
                done: false,
                transformer: None,
            },
            slot,
        )
    }

    /// The next batch of events, in revision order.
    /// Opens the values of every event with `transformer` from now on.
    pub(crate) fn open_with(&mut self, transformer: Arc<dyn crate::ValueTransformer>) {
        self.transformer = Some(transformer);
    }

    pub async fn next(&mut self) -> Option<Result<Vec<Event>>> {
        futures::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Slot {
    pub(crate) fn range(&self) -> &KeyRange {
        &self.range
    }

    /// Sends during replay, waiting for room; false if the watcher is gone.
    pub(crate) async fn send(&self, msg: WatchMsg) -> bool {
        self.tx.send(msg).await.is_ok()
    }
}

impl Stream for Watcher {
    type Item = Result<Vec<Event>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(mut msg)) => {
                if let (Ok(events), Some(transformer)) = (&mut msg, &self.transformer)
                    && let Err(error) = crate::transform::open_events(transformer.as_ref(), events)
                {
                    msg = Err(error);
                }
                if msg.is_err() {
                    self.done = true;
                }
                Poll::Ready(Some(msg))
            }
            Poll::Ready(None) => {
                self.done = true;
                if self.lagged.load(Ordering::Acquire) {
                    Poll::Ready(Some(Err(Error::WatchLagged {
                        buffered: self.capacity,
                    })))
                } else {
                    Poll::Ready(None)
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
