//! CPU for Wasm containers: a limit over all instances of a container
//! together, a request that weights it against other containers when they
//! compete for the node's worker threads, and the CPU time it used.
//!
//! # What is enforced
//!
//! * **Limit** (`resources.limits.cpu`). A container's [`CpuBudget`] is
//!   shared by all its instances (an HTTP service has one per request, so
//!   a hundred requests in flight draw on one budget). The budget refills
//!   continuously at the limit's rate (100m: 10 ms of CPU per 100 ms of
//!   wall time) and banks at most one [`PERIOD`]'s quota, as CFS grants
//!   `quota` per `period`; run time past it is debt. At each epoch tick a
//!   running instance is charged what it ran since it was last charged; if
//!   the budget is in debt, the instance sleeps off its worker thread until
//!   the debt is paid, then runs on. An instance also waits for the debt
//!   to be paid before it is instantiated and again before its call,
//!   which is what holds requests shorter than a tick to the limit. Several
//!   instances running at once may overrun by up to a tick each; the debt
//!   makes the next periods pay it back, so over any few periods the
//!   container gets its limit. Limits under 10m are raised to 10m (1 ms
//!   per period, the smallest quota the runc backend gives too).
//! * **Request** (`resources.requests.cpu`; the node agent passes the limit
//!   when only a limit is set, as the scheduler counts it). It sets the
//!   slice an instance runs before it yields its worker thread to the
//!   runtime's queue: 10 ms per 100m (rounded up), at least 10 ms (also
//!   without a request) and at most 100 ms (a core or more); it yields at
//!   the tick nearest the end of its slice. When instances wait for a
//!   worker, the queue serves them in turn, so CPU-bound instances share
//!   the workers roughly in proportion to their requests, as CFS weights
//!   cgroups by their shares; when none waits, a yield costs one re-poll.
//!   Instances that finish or wait for I/O within their slice are not
//!   affected at all.
//! * A container without a limit is never throttled.
//!
//! The per-instance bounds that are not about CPU share go through the
//! same tick: the instance's time limit ([`Limits::timeout`]) and, for
//! commands, the stop flag interrupt it there.
//!
//! # What is counted
//!
//! [`CpuBudget::used`]: the time the container's instances ran on a
//! worker thread (instantiation, guest code, and the host code the guest
//! called), measured around each poll of the instance with the monotonic
//! clock. Time an instance waits (for I/O, sleeping off debt, in the run
//! queue) is not counted; time the OS took the thread away from it mid-poll
//! is, as it is wall time, not thread CPU time (which would cost a system
//! call per poll).
//!
//! # How
//!
//! Every store gets the epoch deadline one tick ahead and `at_epoch` as
//! its callback. An instance's guest code is only ever run through
//! `Run::drive`, which marks the instance as running on the polling
//! thread (a thread-local slot holding its `Run`) for the length of each
//! poll: wasmtime runs the guest on a fiber inside that poll, and the epoch
//! callback runs on that fiber, so it finds the instance in the slot. This
//! keeps the callback stateless (no allocation per store) and lets the
//! poll measure exactly the time the instance ran.
//!
//! ```text
//!  Run::drive ─ poll ─► [slot: Run, since] ─► guest … epoch tick ─► at_epoch: charge, then
//!        Interrupt (deadline, stop) │ YieldCustom(sleep off debt) │ Yield (slice used) │ Continue
//!             ◄─ poll returns: charge the rest; the slot is emptied
//! ```
//!
//! [`Limits::timeout`]: crate::Limits::timeout

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wasmtime::{StoreContextMut, UpdateDeadline};

use super::command::StopHandle;
use super::engine::EPOCH_TICK;

/// The span a limit's quota is granted for, and the most of it a budget
/// banks: CFS's default `cpu.cfs_period_us`, and the period the runc
/// backend sets.
pub const PERIOD: Duration = Duration::from_millis(100);

/// The smallest limit enforced, in millicores: 1 ms per [`PERIOD`].
const MIN_LIMIT_MILLIS: u64 = 10;

/// The slice of an instance whose container requests this much CPU.
fn slice_for(request_millis: Option<u64>) -> Duration {
    let tenths = request_millis.unwrap_or(0).div_ceil(100).clamp(1, 10);
    EPOCH_TICK * u32::try_from(tenths).unwrap_or(1)
}

/// One container's CPU: its limit and request, and the CPU time its
/// instances used. Shared by all of them ([`Environment::cpu`]); the host
/// keeps a handle to read [`CpuBudget::used`].
///
/// [`Environment::cpu`]: crate::Environment::cpu
#[derive(Debug)]
pub struct CpuBudget {
    limit_millis: Option<u64>,
    request_millis: Option<u64>,
    slice: Duration,
    /// The limit's quota; `None` without a limit.
    bucket: Option<Mutex<Bucket>>,
    used_nanos: AtomicU64,
}

impl CpuBudget {
    /// A budget for a container limited to `limit_millis` millicores (not
    /// throttled when `None`) that requests `request_millis`.
    pub fn new(limit_millis: Option<u64>, request_millis: Option<u64>) -> CpuBudget {
        CpuBudget {
            limit_millis,
            request_millis,
            slice: slice_for(request_millis),
            bucket: limit_millis.map(|millis| Mutex::new(Bucket::new(millis, Instant::now()))),
            used_nanos: AtomicU64::new(0),
        }
    }

    pub fn limit_millis(&self) -> Option<u64> {
        self.limit_millis
    }

    pub fn request_millis(&self) -> Option<u64> {
        self.request_millis
    }

    /// How long an instance runs before it yields its worker thread.
    pub fn slice(&self) -> Duration {
        self.slice
    }

    /// The CPU time all instances of the container used so far.
    pub fn used(&self) -> Duration {
        Duration::from_nanos(self.used_nanos.load(Ordering::Relaxed))
    }

    /// Counts `ran` and takes it from the quota; whether the container is
    /// now in debt (never without a limit).
    fn charge(&self, now: Instant, ran: Duration) -> bool {
        let nanos = u64::try_from(ran.as_nanos()).unwrap_or(u64::MAX);
        self.used_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.bucket
            .as_ref()
            .is_some_and(|bucket| bucket.lock().unwrap_or_else(PoisonError::into_inner).charge(now, ran))
    }

    fn limited(&self) -> bool {
        self.bucket.is_some()
    }

    /// How long until the container's debt is paid; `None` when it has none.
    fn debt(&self, now: Instant) -> Option<Duration> {
        let bucket = self.bucket.as_ref()?;
        bucket.lock().unwrap_or_else(PoisonError::into_inner).debt(now)
    }
}

/// A limit's quota as a token bucket, in nanoseconds of CPU; time is a
/// parameter, so it is plain arithmetic.
#[derive(Debug)]
struct Bucket {
    millis: u64,
    /// What may still run before the container is throttled; negative is
    /// debt.
    balance: i128,
    /// When the balance was last refilled.
    at: Instant,
}

impl Bucket {
    /// A full bucket for `millis` millicores.
    fn new(millis: u64, now: Instant) -> Bucket {
        let millis = millis.max(MIN_LIMIT_MILLIS);
        let mut bucket = Bucket {
            millis,
            balance: 0,
            at: now,
        };
        bucket.balance = bucket.quota();
        bucket
    }

    /// CPU nanoseconds granted per [`PERIOD`], the most the bucket holds.
    fn quota(&self) -> i128 {
        self.cpu_in(PERIOD.as_nanos())
    }

    /// CPU nanoseconds granted over `wall` nanoseconds.
    fn cpu_in(&self, wall: u128) -> i128 {
        i128::try_from(wall.saturating_mul(u128::from(self.millis)) / 1000).unwrap_or(i128::MAX)
    }

    fn refill(&mut self, now: Instant) {
        let wall = now.saturating_duration_since(self.at).as_nanos();
        self.balance = self.balance.saturating_add(self.cpu_in(wall)).min(self.quota());
        self.at = self.at.max(now);
    }

    /// Takes `ran` from the balance; whether it is now in debt.
    fn charge(&mut self, now: Instant, ran: Duration) -> bool {
        self.refill(now);
        self.balance = self
            .balance
            .saturating_sub(i128::try_from(ran.as_nanos()).unwrap_or(i128::MAX));
        self.balance < 0
    }

    /// The wall time the refill needs to pay the debt; `None` without debt.
    fn debt(&mut self, now: Instant) -> Option<Duration> {
        self.refill(now);
        if self.balance >= 0 {
            return None;
        }
        let wall = self
            .balance
            .unsigned_abs()
            .saturating_mul(1000)
            .div_ceil(u128::from(self.millis));
        Some(Duration::from_nanos(u64::try_from(wall).unwrap_or(u64::MAX)))
    }
}

/// What bounds one instance's run, and how much of its slice it used.
/// Made per request (HTTP) or per run (command); guest code of the
/// instance runs only inside [`Run::drive`].
#[derive(Debug, Default)]
pub(crate) struct Run {
    budget: Option<Arc<CpuBudget>>,
    deadline: Option<Instant>,
    stop: Option<StopHandle>,
    /// Run time since the instance last gave up its worker thread.
    in_slice: Duration,
}

impl Run {
    pub(crate) fn new(budget: Option<Arc<CpuBudget>>, timeout: Option<Duration>, stop: Option<StopHandle>) -> Run {
        Run {
            budget,
            deadline: timeout.map(|t| Instant::now() + t),
            stop,
            in_slice: Duration::ZERO,
        }
    }

    /// Runs `future`, which drives the instance's guest code, with this
    /// run's bounds applied at each epoch tick and its time charged. While
    /// the container is in debt it starts nothing: requests shorter than a
    /// tick, which no tick interrupts, are held to the limit here.
    pub(crate) async fn drive<F: Future>(&mut self, future: F) -> F::Output {
        if let Some(budget) = self.budget.as_ref().filter(|budget| budget.limited())
            && budget.debt(Instant::now()).is_some()
        {
            pay_off(budget.clone(), self.deadline, self.stop.clone()).await;
        }
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| self.poll_running(future.as_mut(), cx)).await
    }

    fn poll_running<F: Future>(&mut self, future: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let slot = Slot {
            run: std::mem::take(self),
            since: Instant::now(),
        };
        let restore = Restore(RUNNING.replace(Some(slot)));
        let poll = future.poll(cx);
        let ours = RUNNING.take();
        drop(restore);
        if let Some(slot) = ours {
            *self = slot.run;
            let now = Instant::now();
            self.charge(now, now.saturating_duration_since(slot.since));
            if poll.is_pending() {
                // It gave its worker thread up: a new slice next time.
                self.in_slice = Duration::ZERO;
            }
        }
        poll
    }

    /// Counts `ran` against the slice and the budget; whether the budget is
    /// in debt.
    fn charge(&mut self, now: Instant, ran: Duration) -> bool {
        self.in_slice = self.in_slice.saturating_add(ran);
        self.budget.as_ref().is_some_and(|budget| budget.charge(now, ran))
    }

    fn slice(&self) -> Duration {
        self.budget.as_ref().map_or_else(|| slice_for(None), |b| b.slice())
    }

    /// What the instance does at an epoch tick, having run `ran` since it
    /// was last charged.
    fn at_tick(&mut self, now: Instant, ran: Duration) -> UpdateDeadline {
        let in_debt = self.charge(now, ran);
        let stopped = self.stop.as_ref().is_some_and(StopHandle::stopped);
        if stopped || self.deadline.is_some_and(|deadline| now >= deadline) {
            return UpdateDeadline::Interrupt;
        }
        if in_debt && let Some(budget) = &self.budget {
            self.in_slice = Duration::ZERO;
            // Delta 0: once the debt is paid the callback runs again at
            // once, to see the stop flag and deadline before the guest does.
            let sleep = pay_off(budget.clone(), self.deadline, self.stop.clone());
            return UpdateDeadline::YieldCustom(0, Box::pin(sleep));
        }
        // Ticks are EPOCH_TICK apart and the first comes at any point of
        // one: yield at the tick nearest the end of the slice.
        if self.in_slice + EPOCH_TICK / 2 >= self.slice() {
            self.in_slice = Duration::ZERO;
            return UpdateDeadline::Yield(1);
        }
        UpdateDeadline::Continue(1)
    }
}

/// Sleeps until `budget` is out of debt (which other instances may add
/// to meanwhile), or the run is past its deadline or stopped; a run with a
/// stop flag looks at it at least once a [`PERIOD`].
async fn pay_off(budget: Arc<CpuBudget>, deadline: Option<Instant>, stop: Option<StopHandle>) {
    loop {
        let now = Instant::now();
        let Some(debt) = budget.debt(now) else { return };
        if stop.as_ref().is_some_and(StopHandle::stopped) || deadline.is_some_and(|d| now >= d) {
            return;
        }
        let step = if stop.is_some() { debt.min(PERIOD) } else { debt };
        let mut until = now + step;
        if let Some(deadline) = deadline {
            until = until.min(deadline);
        }
        tokio::time::sleep_until(until.into()).await;
    }
}

/// The instance running on this thread, for the epoch callback.
#[derive(Debug)]
struct Slot {
    run: Run,
    /// Since when it ran without being charged.
    since: Instant,
}

thread_local! {
    static RUNNING: Cell<Option<Slot>> = const { Cell::new(None) };
}

/// Puts back what the thread ran before a poll, even if the poll panics.
struct Restore(Option<Slot>);

impl Drop for Restore {
    fn drop(&mut self) {
        RUNNING.set(self.0.take());
    }
}

/// The epoch callback of every store ([`Store::epoch_deadline_callback`]):
/// charges the instance running on this thread and applies its bounds.
///
/// [`Store::epoch_deadline_callback`]: wasmtime::Store::epoch_deadline_callback
pub(crate) fn at_epoch<T>(_: StoreContextMut<'_, T>) -> wasmtime::Result<UpdateDeadline> {
    let Some(mut slot) = RUNNING.take() else {
        // Guest code run outside a `Run` (none is): nothing to charge or
        // bound, but it does not keep its thread.
        return Ok(UpdateDeadline::Yield(1));
    };
    let now = Instant::now();
    let ran = now.saturating_duration_since(slot.since);
    slot.since = now;
    let update = slot.run.at_tick(now, ran);
    RUNNING.set(Some(slot));
    Ok(update)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_bucket_grants_its_limit_per_period_and_carries_debt() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(100, t0);
        // Full: one period's quota, 10 ms for 100m.
        assert!(!bucket.charge(t0, 10 * MS));
        assert_eq!(bucket.debt(t0), None);
        // A tick more is debt, paid back at the limit's rate: 1 ms of CPU
        // per 10 ms of wall time.
        assert!(bucket.charge(t0, 10 * MS));
        assert_eq!(bucket.debt(t0), Some(100 * MS));
        assert_eq!(bucket.debt(t0 + 50 * MS), Some(50 * MS));
        assert_eq!(bucket.debt(t0 + 100 * MS), None);
        // Idle time banks one period's quota at most.
        let later = t0 + Duration::from_secs(10);
        assert!(!bucket.charge(later, 10 * MS));
        assert!(bucket.charge(later, MS));
    }

    #[test]
    fn a_spinning_container_gets_its_limit_over_time() {
        // Two instances, each charged a tick whenever the budget has no
        // debt, for ten seconds of wall time.
        let t0 = Instant::now();
        let mut bucket = Bucket::new(250, t0);
        let mut ran = Duration::ZERO;
        let mut now = t0;
        while now < t0 + Duration::from_secs(10) {
            if bucket.debt(now).is_none() {
                bucket.charge(now, 10 * MS);
                bucket.charge(now, 10 * MS);
                ran += 20 * MS;
            }
            now += MS;
        }
        let share = ran.as_secs_f64() / 10.0;
        assert!((0.24..=0.26).contains(&share), "{share}");
    }

    #[test]
    fn tiny_limits_get_the_smallest_quota() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(0, t0);
        assert!(!bucket.charge(t0, MS));
        assert!(bucket.charge(t0, MS));
        assert_eq!(bucket.debt(t0), Some(100 * MS));
    }

    #[test]
    fn requests_set_the_slice() {
        assert_eq!(slice_for(None), 10 * MS);
        assert_eq!(slice_for(Some(0)), 10 * MS);
        assert_eq!(slice_for(Some(100)), 10 * MS);
        assert_eq!(slice_for(Some(250)), 30 * MS);
        assert_eq!(slice_for(Some(1000)), 100 * MS);
        assert_eq!(slice_for(Some(4000)), 100 * MS);
    }

    fn kind(update: &UpdateDeadline) -> &'static str {
        match update {
            UpdateDeadline::Interrupt => "interrupt",
            UpdateDeadline::Continue(_) => "continue",
            UpdateDeadline::Yield(_) => "yield",
            UpdateDeadline::YieldCustom(..) => "sleep",
            _ => "other",
        }
    }

    #[test]
    fn a_tick_charges_then_interrupts_sleeps_yields_or_continues() {
        let t0 = Instant::now();
        let budget = Arc::new(CpuBudget::new(Some(100), Some(200)));
        let stop = StopHandle::default();
        let mut run = Run::new(Some(budget.clone()), Some(Duration::from_secs(1)), Some(stop.clone()));
        // 20 ms slice for 200m; 10 ms banked for 100m.
        assert_eq!(kind(&run.at_tick(t0, 5 * MS)), "continue");
        assert_eq!(kind(&run.at_tick(t0, 4 * MS)), "continue");
        assert_eq!(kind(&run.at_tick(t0, 2 * MS)), "sleep");
        assert_eq!(budget.used(), 11 * MS);
        // Paid off (and more): runs on until the tick nearest the end of
        // its slice.
        let t1 = t0 + 300 * MS;
        assert_eq!(kind(&run.at_tick(t1, 10 * MS)), "continue");
        assert_eq!(kind(&run.at_tick(t1 + 100 * MS, 6 * MS)), "yield");
        let mut unlimited = Run::new(Some(Arc::new(CpuBudget::new(None, None))), None, None);
        assert_eq!(kind(&unlimited.at_tick(t0, 4 * MS)), "continue");
        assert_eq!(kind(&unlimited.at_tick(t0, MS)), "yield");
        assert_eq!(kind(&unlimited.at_tick(t0, Duration::from_secs(100))), "yield");
        // Past the deadline, or stopped.
        assert_eq!(kind(&run.at_tick(t0 + Duration::from_secs(2), MS)), "interrupt");
        let mut run = Run::new(None, None, Some(stop.clone()));
        assert_eq!(kind(&run.at_tick(t0, MS)), "continue");
        stop.stop();
        assert_eq!(kind(&run.at_tick(t0, MS)), "interrupt");
    }
}
