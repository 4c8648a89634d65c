//! `threading.Timer`: a thread that runs a function after an interval, unless cancelled.

use std::fmt;
use std::sync::Arc;

use crate::sync::{Condvar, Mutex};
use std::time::Duration;

use super::thread::{Thread, ThreadInfo};
use crate::error::Result;
use crate::latch::{deadline, wait_until, Latch};
use crate::sync::lock;

/// Runs a function once, `interval` after [`Timer::start`], unless [`Timer::cancel`]led first:
/// Python's `threading.Timer(interval, function)`.
///
/// A `Timer` is a [`Thread`] underneath (named `Thread-N`, non-daemon unless started from a
/// daemon thread). [`Timer::join`] returns `Some(value)` when the function ran and `None` when
/// the timer was cancelled, so a cancelled function is known never to have run. Like a
/// `Thread`, dropping the handle of a started, non-daemon timer joins it: cancel it first if
/// it should not run.
///
/// ```
/// use spindle::threading::Timer;
/// use std::time::Duration;
///
/// let mut fires = Timer::new(Duration::from_millis(10), || "fired");
/// let mut never = Timer::new(Duration::from_secs(3600), || "fired");
/// fires.start()?;
/// never.start()?;
/// assert!(never.cancel()); // wakes the timer thread at once
/// assert_eq!(fires.join()?, Some("fired"));
/// assert_eq!(never.join()?, None);
/// # Ok::<(), spindle::Error>(())
/// ```
pub struct Timer<R = ()> {
    thread: Thread<Option<R>>,
    shared: Arc<Shared>,
    interval: Duration,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
    /// Set once the function has returned (or panicked) or the timer was cancelled.
    finished: Latch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Fired,
    Cancelled,
}

/// Sets the latch when dropped, so that a panicking function still finishes the timer.
struct SetOnDrop<'a>(&'a Latch);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.set();
    }
}

impl<R: Send + 'static> Timer<R> {
    /// An unstarted timer that will call `function` `interval` after [`Timer::start`].
    pub fn new<F>(interval: Duration, function: F) -> Timer<R>
    where
        F: FnOnce() -> R + Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::Pending),
            cv: Condvar::new(),
            finished: Latch::new(),
        });
        let s = Arc::clone(&shared);
        let thread = Thread::new(move || {
            let _finish = SetOnDrop(&s.finished);
            let (mut state, cancelled) =
                wait_until(&s.cv, lock(&s.state), deadline(interval), |st| {
                    *st == State::Cancelled
                });
            if cancelled {
                return None;
            }
            *state = State::Fired;
            drop(state);
            Some(function())
        });
        Timer {
            thread,
            shared,
            interval,
        }
    }

    /// Starts the timer's thread; the interval counts from now.
    ///
    /// # Errors
    ///
    /// As [`Thread::start`]: [`Error::InvalidState`](crate::Error::InvalidState) when started
    /// before.
    pub fn start(&mut self) -> Result<()> {
        self.thread.start()
    }

    /// Waits for the timer to fire or be cancelled: `Some(value)` when the function ran,
    /// `None` when it was cancelled.
    ///
    /// # Errors
    ///
    /// As [`Thread::join`]: [`Error::Task`](crate::Error::Task) when the function panicked.
    pub fn join(&mut self) -> Result<Option<R>> {
        self.thread.join()
    }

    /// Like [`Timer::join`], waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Thread::join_timeout`]: [`Error::Timeout`](crate::Error::Timeout) when the timer
    /// has not finished in time (it stays joinable).
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<Option<R>> {
        self.thread.join_timeout(timeout)
    }
}

impl<R> Timer<R> {
    /// Stops the timer if it has not fired yet: Python's `cancel()`. Returns whether this call
    /// stopped the function from running (`false` when it already fired or was cancelled).
    ///
    /// Works before [`Timer::start`] too: the timer thread then ends at once.
    pub fn cancel(&self) -> bool {
        let mut state = lock(&self.shared.state);
        if *state != State::Pending {
            return false;
        }
        *state = State::Cancelled;
        drop(state);
        self.shared.cv.notify_all();
        self.shared.finished.set();
        true
    }

    /// Whether the timer is done: the function has returned (or panicked), or the timer was
    /// cancelled. Python's `finished.is_set()`.
    pub fn finished(&self) -> bool {
        self.shared.finished.is_set()
    }

    /// Whether the timer's thread is running (waiting for the interval or calling the
    /// function).
    pub fn is_alive(&self) -> bool {
        self.thread.is_alive()
    }

    /// The interval given to [`Timer::new`].
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The timer thread's name.
    pub fn name(&self) -> &str {
        self.thread.name()
    }

    /// The timer thread's ident, `None` before [`Timer::start`].
    pub fn ident(&self) -> Option<u64> {
        self.thread.ident()
    }

    /// A shared view of the timer's thread.
    pub fn info(&self) -> ThreadInfo {
        self.thread.info()
    }
}

impl<R> fmt::Debug for Timer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer")
            .field("interval", &self.interval)
            .field("state", &*lock(&self.shared.state))
            .field("thread", &self.thread)
            .finish()
    }
}
