//! [`Future`]: the consumer side of one task's outcome, and the state it shares with its
//! [`Promise`](super::Promise).
//!
//! The shared state is one allocation: an atomic state word (read without locking by
//! [`Future::done`] and friends, and by the fast path of every wait), a mutex around the
//! outcome and the lists of things to notify, and one condition variable for blocked threads.
//!
//! States, as in CPython's `concurrent.futures._base`:
//!
//! ```text
//! PENDING ──set_running──▶ RUNNING ──set_result/set_exception──▶ FINISHING ──▶ FINISHED
//!    │                                                           (callbacks run)
//!    └──cancel──▶ CANCELLING ──▶ CANCELLED
//!                 (callbacks run)
//! ```
//!
//! `FINISHING` and `CANCELLING` last while the callbacks registered before completion run
//! (outside the lock, on the completing thread); waiters are released once they are over.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::wait::{Ending, Watch};
use crate::latch::{deadline, wait_until};
use crate::sync::atomic::{AtomicU8, Ordering};
use crate::sync::lock;
use crate::sync::{Condvar, Mutex};
use crate::{Error, Result, TaskError};

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const FINISHING: u8 = 2;
const CANCELLING: u8 = 3;
const FINISHED: u8 = 4;
const CANCELLED: u8 = 5;

/// What a done callback receives: the value, or the task's error.
type Callback<T> = Box<dyn FnOnce(std::result::Result<&T, &TaskError>) + Send>;

const TAKEN: &str = "result already taken";

/// The state shared by a [`Future`] and its [`Promise`](super::Promise).
pub(crate) struct Shared<T> {
    state: AtomicU8,
    slot: Mutex<Slot<T>>,
    cv: Condvar,
}

struct Slot<T> {
    outcome: Outcome<T>,
    callbacks: Vec<Callback<T>>,
    watchers: Vec<(Arc<Watch>, usize)>,
    waker: Option<Waker>,
    sleepers: usize,
}

enum Outcome<T> {
    Empty,
    Value(T),
    Error(TaskError),
    TakenValue,
    TakenError(TaskError),
}

impl<T> Outcome<T> {
    fn ending(&self) -> Ending {
        match self {
            Outcome::Error(e) | Outcome::TakenError(e) if e.is_cancelled() => Ending::Cancelled,
            Outcome::Error(_) | Outcome::TakenError(_) => Ending::Error,
            _ => Ending::Value,
        }
    }
}

impl<T> Shared<T> {
    pub(crate) fn new() -> Self {
        Shared {
            state: AtomicU8::new(PENDING),
            slot: Mutex::new(Slot {
                outcome: Outcome::Empty,
                callbacks: Vec::new(),
                watchers: Vec::new(),
                waker: None,
                sleepers: 0,
            }),
            cv: Condvar::new(),
        }
    }

    fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    pub(crate) fn is_final(&self) -> bool {
        self.state() >= FINISHED
    }

    pub(crate) fn is_running(&self) -> bool {
        matches!(self.state(), RUNNING | FINISHING)
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        matches!(self.state(), CANCELLING | CANCELLED)
    }

    pub(crate) fn state_name(&self) -> &'static str {
        match self.state() {
            PENDING => "pending",
            RUNNING | FINISHING => "running",
            CANCELLING | CANCELLED => "cancelled",
            _ => "finished",
        }
    }

    /// PENDING → RUNNING. True when the task may run (it is, or already was, running).
    pub(crate) fn set_running(&self) -> bool {
        match self
            .state
            .compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(s) => s == RUNNING,
        }
    }

    /// PENDING → CANCELLED, running the callbacks. True when the future is cancelled now
    /// or was before; false when it is running or finished.
    pub(crate) fn cancel(&self) -> bool {
        match self
            .state
            .compare_exchange(PENDING, CANCELLING, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                self.settle(Err(TaskError::cancelled()), CANCELLED);
                true
            }
            Err(s) => matches!(s, CANCELLING | CANCELLED),
        }
    }

    /// PENDING or RUNNING → FINISHED with `outcome`. False (and `outcome` dropped) when the
    /// future was already cancelled or finished.
    pub(crate) fn finish(&self, outcome: std::result::Result<T, TaskError>) -> bool {
        let mut s = self.state();
        loop {
            if s != PENDING && s != RUNNING {
                return false;
            }
            match self.state.compare_exchange_weak(
                s,
                FINISHING,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        self.settle(outcome, FINISHED);
        true
    }

    /// Runs the callbacks registered so far (outside the lock), stores the outcome, publishes
    /// the final state and wakes everything that waits. Only the thread that won the
    /// transition into FINISHING/CANCELLING calls this.
    fn settle(&self, outcome: std::result::Result<T, TaskError>, last: u8) {
        let mut slot = lock(&self.slot);
        while !slot.callbacks.is_empty() {
            let callbacks = std::mem::take(&mut slot.callbacks);
            drop(slot);
            for cb in callbacks {
                run_callback(cb, outcome.as_ref());
            }
            slot = lock(&self.slot);
        }
        slot.outcome = match outcome {
            Ok(v) => Outcome::Value(v),
            Err(e) => Outcome::Error(e),
        };
        let ending = slot.outcome.ending();
        self.state.store(last, Ordering::Release);
        let sleepers = slot.sleepers > 0;
        let waker = slot.waker.take();
        let watchers = std::mem::take(&mut slot.watchers);
        drop(slot);
        if sleepers {
            self.cv.notify_all();
        }
        if let Some(w) = waker {
            w.wake();
        }
        for (watch, index) in watchers {
            watch.notify(index, ending);
        }
    }

    /// Blocks until the final state or `deadline`; returns whether the final state came.
    pub(crate) fn wait_deadline(&self, deadline: Option<Instant>) -> bool {
        if self.is_final() {
            return true;
        }
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return false;
        }
        if self.spin_until_final() {
            return true;
        }
        let mut slot = lock(&self.slot);
        slot.sleepers += 1;
        let (mut slot, done) = wait_until(&self.cv, slot, deadline, |_| self.is_final());
        slot.sleepers -= 1;
        done
    }

    /// A short spin before a wait sleeps: a task that is about to finish is cheaper to watch
    /// than to sleep for (the same back-off crossbeam's channels use before parking).
    /// Returns whether the final state came meanwhile.
    #[cfg(not(loom))]
    fn spin_until_final(&self) -> bool {
        for step in 0..10u32 {
            if step < 6 {
                for _ in 0..(1u32 << step) {
                    std::hint::spin_loop();
                }
            } else {
                std::thread::yield_now();
            }
            if self.is_final() {
                return true;
            }
        }
        false
    }

    /// Under loom the spin is left out: it changes no outcome, only multiplies the
    /// interleavings to explore.
    #[cfg(loom)]
    fn spin_until_final(&self) -> bool {
        false
    }

    /// Moves the outcome out. The caller has seen the final state.
    fn take(&self) -> Result<T> {
        let mut slot = lock(&self.slot);
        match std::mem::replace(&mut slot.outcome, Outcome::TakenValue) {
            Outcome::Value(v) => Ok(v),
            Outcome::Error(e) => {
                slot.outcome = Outcome::TakenError(e.clone());
                Err(Error::Task(e))
            }
            Outcome::TakenError(e) => {
                slot.outcome = Outcome::TakenError(e);
                Err(Error::InvalidState(TAKEN))
            }
            Outcome::TakenValue => Err(Error::InvalidState(TAKEN)),
            Outcome::Empty => {
                slot.outcome = Outcome::Empty;
                Err(Error::InvalidState("future is not done"))
            }
        }
    }

    fn exception(&self) -> Option<TaskError> {
        match &lock(&self.slot).outcome {
            Outcome::Error(e) | Outcome::TakenError(e) => Some(e.clone()),
            _ => None,
        }
    }

    fn add_callback(&self, cb: Callback<T>) {
        let slot = lock(&self.slot);
        if !self.is_final() {
            let mut slot = slot;
            slot.callbacks.push(cb);
            return;
        }
        // Already done: run it now, on this thread. The lock is held so that the outcome
        // cannot be taken meanwhile.
        let taken;
        let arg = match &slot.outcome {
            Outcome::Value(v) => Ok(v),
            Outcome::Error(e) | Outcome::TakenError(e) => Err(e),
            Outcome::TakenValue | Outcome::Empty => {
                taken = TaskError::failed(TAKEN);
                Err(&taken)
            }
        };
        run_callback(cb, arg);
    }

    /// Registers `watch` to hear (once) when this future reaches its final state; when it
    /// already has, `watch` hears it at once.
    pub(crate) fn watch(&self, watch: &Arc<Watch>, index: usize) {
        let mut slot = lock(&self.slot);
        if self.is_final() {
            let ending = slot.outcome.ending();
            drop(slot);
            watch.notify(index, ending);
        } else {
            slot.watchers.push((Arc::clone(watch), index));
        }
    }

    /// Forgets `watch` (a `wait` that returned, an `as_completed` that was dropped).
    pub(crate) fn unwatch(&self, watch: &Arc<Watch>) {
        lock(&self.slot)
            .watchers
            .retain(|(w, _)| !Arc::ptr_eq(w, watch));
    }

    /// How many watches are registered (for tests of `wait`).
    #[cfg(test)]
    pub(crate) fn watchers(&self) -> usize {
        lock(&self.slot).watchers.len()
    }
}

fn run_callback<T>(cb: Callback<T>, arg: std::result::Result<&T, &TaskError>) {
    if let Err(report) = crate::panic::catch(move || cb(arg)) {
        // Python logs "exception calling callback for <Future>" and goes on; so do we.
        eprintln!("spindle: a future's done callback panicked: {report}");
    }
}

/// The outcome of a task that may not have finished yet: `concurrent.futures.Future`.
///
/// A `Future` is created together with its [`Promise`](super::Promise) (the producer side)
/// by an executor's `submit`, or by [`promise`](super::promise) / [`Future::pending`] for a
/// hand-made one. It is not `Clone`: exactly one owner receives the value. It is `Send` and
/// `Sync` when `T` is `Send`, so it can be shared by reference (for example in an `Arc`) to
/// poll [`done`](Future::done), [`wait`](Future::wait) or [`cancel`](Future::cancel) from
/// several threads.
///
/// | Python                         | spindle                                          |
/// |--------------------------------|--------------------------------------------------|
/// | `f.done()` / `f.running()` / `f.cancelled()` | [`done`](Future::done) / [`running`](Future::running) / [`cancelled`](Future::cancelled) |
/// | `f.cancel()`                   | [`cancel`](Future::cancel)                       |
/// | `f.result()` / `f.result(timeout)` | [`result`](Future::result) / [`result_timeout`](Future::result_timeout) |
/// | `f.exception()` / `f.exception(timeout)` | [`exception`](Future::exception) / [`exception_timeout`](Future::exception_timeout) |
/// | `f.add_done_callback(fn)`      | [`add_done_callback`](Future::add_done_callback) |
/// | `concurrent.futures.wait([f])` | [`wait`](Future::wait) / [`wait_timeout`](Future::wait_timeout) |
/// | `await asyncio.wrap_future(f)` | `f.await` (it is a [`std::future::Future`])      |
///
/// A task's failure (panic, cancellation, ...) comes back as
/// [`Error::Task`](crate::Error::Task) from [`result`](Future::result).
///
/// A future has one owner; it cannot be cloned:
///
/// ```compile_fail
/// let (_promise, future) = spindle::futures::promise::<u8>();
/// let copy = future.clone();
/// ```
///
/// ```
/// use spindle::futures::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::new()?;
/// let f = pool.submit(|x: u64| x * x, 12)?;
/// assert_eq!(f.result()?, 144);
/// # Ok::<(), spindle::Error>(())
/// ```
pub struct Future<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Future<T> {
    pub(crate) fn from_shared(shared: Arc<Shared<T>>) -> Self {
        Future { shared }
    }

    pub(crate) fn shared(&self) -> &Shared<T> {
        &self.shared
    }

    /// A new pending future and the [`Promise`](super::Promise) that completes it; the same
    /// as [`promise`](super::promise).
    ///
    /// ```
    /// let (promise, future) = spindle::futures::Future::pending();
    /// promise.set_result("ready")?;
    /// assert_eq!(future.result()?, "ready");
    /// # Ok::<(), spindle::Error>(())
    /// ```
    pub fn pending() -> (super::Promise<T>, Future<T>) {
        super::promise()
    }

    /// Whether the task finished or was cancelled (Python's `done()`).
    ///
    /// It turns true once the callbacks registered before completion have run.
    pub fn done(&self) -> bool {
        self.shared.is_final()
    }

    /// Whether the task is running now (Python's `running()`).
    pub fn running(&self) -> bool {
        self.shared.is_running()
    }

    /// Whether the task was cancelled (Python's `cancelled()`).
    pub fn cancelled(&self) -> bool {
        self.shared.is_cancelled()
    }

    /// Cancels the task if it has not started (Python's `cancel()`).
    ///
    /// Returns `false` when the task is running or finished (it cannot be stopped), `true`
    /// when it is cancelled, now or earlier. A cancelled future is done, its callbacks run
    /// (on this thread) and [`result`](Future::result) returns a [`TaskError`] for which
    /// [`TaskError::is_cancelled`] holds.
    ///
    /// ```
    /// let (promise, future) = spindle::futures::promise::<u8>();
    /// assert!(future.cancel());
    /// assert!(future.cancelled() && future.done());
    /// assert!(!promise.set_running_or_notify_cancel()); // the executor skips it
    /// assert!(future.result().unwrap_err().as_task().unwrap().is_cancelled());
    /// ```
    pub fn cancel(&self) -> bool {
        self.shared.cancel()
    }

    /// Blocks until the future is done.
    pub fn wait(&self) {
        self.shared.wait_deadline(None);
    }

    /// Blocks until the future is done or `timeout` passes; returns whether it is done.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.shared.wait_deadline(deadline(timeout))
    }

    /// Blocks until the task ends and returns its value (Python's `result()`).
    ///
    /// # Errors
    ///
    /// [`Error::Task`](crate::Error::Task) when the task panicked (with the panic message),
    /// was cancelled or otherwise failed; [`Error::InvalidState`](crate::Error::InvalidState)
    /// when the value was already taken by [`result_timeout`](Future::result_timeout) or by
    /// `.await`.
    pub fn result(self) -> Result<T> {
        self.wait();
        self.shared.take()
    }

    /// Like [`result`](Future::result), but gives up after `timeout`.
    ///
    /// A timeout leaves the future as it was, so it can be waited on again. Once the outcome
    /// has been handed out (value or error), later calls return
    /// [`Error::InvalidState`](crate::Error::InvalidState)`("result already taken")`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`](crate::Error::Timeout), and those of [`result`](Future::result).
    ///
    /// ```
    /// use std::time::Duration;
    /// let (promise, mut future) = spindle::futures::promise::<u8>();
    /// assert!(future.result_timeout(Duration::from_millis(1)).unwrap_err().is_timeout());
    /// promise.set_result(5)?;
    /// assert_eq!(future.result_timeout(Duration::from_millis(1))?, 5);
    /// assert!(future.result_timeout(Duration::ZERO).is_err()); // already taken
    /// # Ok::<(), spindle::Error>(())
    /// ```
    pub fn result_timeout(&mut self, timeout: Duration) -> Result<T> {
        if !self.wait_timeout(timeout) {
            return Err(Error::Timeout);
        }
        self.shared.take()
    }

    /// Blocks until the task ends and returns its error, or `None` when it succeeded
    /// (Python's `exception()`; a cancelled future gives a cancelled [`TaskError`]).
    pub fn exception(&self) -> Option<TaskError> {
        self.wait();
        self.shared.exception()
    }

    /// Like [`exception`](Future::exception), but gives up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`](crate::Error::Timeout) when the task is not done in time.
    pub fn exception_timeout(&self, timeout: Duration) -> Result<Option<TaskError>> {
        if !self.wait_timeout(timeout) {
            return Err(Error::Timeout);
        }
        Ok(self.shared.exception())
    }

    /// Calls `f` with the outcome once the task ends (Python's `add_done_callback`).
    ///
    /// Callbacks added before the end run on the thread that ends the task (a worker, or the
    /// thread that cancels), in the order they were added, before the waiters are released.
    /// A callback added when the future is already done runs at once, on the calling thread.
    /// A panicking callback is caught (and reported on stderr): the future, the other
    /// callbacks and the executor are not affected.
    ///
    /// When the value was already taken out by [`result_timeout`](Future::result_timeout),
    /// a late callback receives a failed [`TaskError`] saying so.
    ///
    /// # Deadlocks
    ///
    /// A callback that runs at once holds this future's internal lock: it must not call
    /// this same future's `exception*`, `result_timeout` or `add_done_callback`
    /// (`done`, `running`, `cancelled` and the waits are fine: the future is done).
    ///
    /// ```
    /// use std::sync::mpsc;
    /// let (promise, future) = spindle::futures::promise::<u32>();
    /// let (tx, rx) = mpsc::channel();
    /// future.add_done_callback(move |r| tx.send(*r.unwrap()).unwrap());
    /// promise.set_result(3)?;
    /// assert_eq!(rx.recv().unwrap(), 3);
    /// # Ok::<(), spindle::Error>(())
    /// ```
    pub fn add_done_callback<F>(&self, f: F)
    where
        F: FnOnce(std::result::Result<&T, &TaskError>) + Send + 'static,
    {
        self.shared.add_callback(Box::new(f));
    }
}

impl<T> std::future::Future for Future<T> {
    type Output = Result<T>;

    /// Resolves to the same thing [`Future::result`] returns. Any runtime can await it: the
    /// latest waker is woken by the thread that ends the task.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let shared = &self.get_mut().shared;
        if !shared.is_final() {
            let mut slot = lock(&shared.slot);
            if !shared.is_final() {
                match &slot.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => slot.waker = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
        }
        Poll::Ready(shared.take())
    }
}

impl<T> fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Future")
            .field("state", &self.shared.state_name())
            .finish()
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
