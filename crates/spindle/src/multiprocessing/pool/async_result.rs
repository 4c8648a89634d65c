//! [`AsyncResult`]: what `apply_async`, `map_async` and `starmap_async` return (Python's
//! `AsyncResult`), filled by a call's [`Outcomes`](super::result::Outcomes) when its last item
//! is in.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::latch::{deadline, lock, wait_until_std as wait_until};
use crate::panic::PanicReport;

/// A callback of an [`AsyncResult`] on success.
pub(crate) type OnSuccess<T> = Box<dyn FnOnce(&T) + Send>;
/// A callback of an [`AsyncResult`] on failure.
pub(crate) type OnError = Box<dyn FnOnce(&Error) + Send>;

/// The result of an `apply_async`, `map_async` or `starmap_async` call, filled when every
/// item has ended (Python's `AsyncResult`).
///
/// [`get`](AsyncResult::get) hands the value out once (as `Future::result` does:
/// docs/decisions.md, D4); [`get_timeout`](AsyncResult::get_timeout) leaves it in place when
/// the time runs out.
///
/// ```
/// use spindle::multiprocessing::{Pool, StartMethod};
/// fn square(x: u64) -> u64 { x * x }
/// let pool = Pool::builder().processes(2).start_method(StartMethod::Fork).build()?;
/// let r = pool.map_async(square, 1..=4)?;
/// r.wait();
/// assert!(r.ready() && r.successful()?);
/// assert_eq!(r.get()?, [1, 4, 9, 16]);
/// # Ok::<(), spindle::Error>(())
/// ```
pub struct AsyncResult<T> {
    shared: Arc<AsyncShared<T>>,
}

pub(crate) struct AsyncShared<T> {
    slot: Mutex<Slot<T>>,
    cv: Condvar,
}

struct Slot<T> {
    outcome: Option<Result<T>>,
    done: bool,
    /// The call ended well; kept once `get` has taken the value (Python's `successful()`
    /// stays true after `get()`).
    succeeded: bool,
    on_success: Vec<OnSuccess<T>>,
    on_error: Vec<OnError>,
}

impl<T: Send + 'static> AsyncShared<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(AsyncShared {
            slot: Mutex::new(Slot {
                outcome: None,
                done: false,
                succeeded: false,
                on_success: Vec::new(),
                on_error: Vec::new(),
            }),
            cv: Condvar::new(),
        })
    }

    /// Stores the outcome: the callbacks run first, on this thread (a panicking callback is
    /// reported on standard error), then the waiters are released.
    pub(crate) fn complete(&self, outcome: Result<T>) {
        loop {
            let (ok, err) = {
                let mut s = lock(&self.slot);
                if s.on_success.is_empty() && s.on_error.is_empty() {
                    s.succeeded = outcome.is_ok();
                    s.outcome = Some(outcome);
                    s.done = true;
                    break;
                }
                (
                    std::mem::take(&mut s.on_success),
                    std::mem::take(&mut s.on_error),
                )
            };
            match &outcome {
                Ok(v) => ok
                    .into_iter()
                    .for_each(|cb| report_panic(crate::panic::catch(|| cb(v)))),
                Err(e) => err
                    .into_iter()
                    .for_each(|cb| report_panic(crate::panic::catch(|| cb(e)))),
            }
        }
        self.cv.notify_all();
    }
}

fn report_panic(r: std::result::Result<(), PanicReport>) {
    if let Err(p) = r {
        eprintln!("spindle: a pool callback panicked: {p}");
    }
}

impl<T: Send + 'static> AsyncResult<T> {
    pub(crate) fn from_shared(shared: Arc<AsyncShared<T>>) -> Self {
        AsyncResult { shared }
    }

    /// Calls `f` with the value once the call has ended well (Python's `callback=`): on the
    /// thread that ends the call (the pool's supervisor or worker thread), or at once on
    /// this thread if it has ended already. Keep it short: it delays that thread's other work.
    /// A panicking callback is reported on standard error.
    pub fn on_success(&self, f: impl FnOnce(&T) + Send + 'static) {
        let mut s = lock(&self.shared.slot);
        if !s.done {
            s.on_success.push(Box::new(f));
            return;
        }
        if let Some(Ok(v)) = &s.outcome {
            report_panic(crate::panic::catch(|| f(v)));
        }
    }

    /// Calls `f` with the error once the call has failed (Python's `error_callback=`); as
    /// [`on_success`](AsyncResult::on_success) otherwise.
    pub fn on_error(&self, f: impl FnOnce(&Error) + Send + 'static) {
        let mut s = lock(&self.shared.slot);
        if !s.done {
            s.on_error.push(Box::new(f));
            return;
        }
        if let Some(Err(e)) = &s.outcome {
            report_panic(crate::panic::catch(|| f(e)));
        }
    }

    /// Whether the call has ended (Python's `ready()`).
    pub fn ready(&self) -> bool {
        lock(&self.shared.slot).done
    }

    /// Whether the call ended without an error (Python's `successful()`), also after
    /// [`get_timeout`](AsyncResult::get_timeout) took the value.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] before it has ended (Python raises `ValueError`).
    pub fn successful(&self) -> Result<bool> {
        let s = lock(&self.shared.slot);
        if !s.done {
            return Err(Error::InvalidState("the result is not ready"));
        }
        Ok(s.succeeded)
    }

    /// Blocks until the call has ended (Python's `wait()`).
    pub fn wait(&self) {
        let s = lock(&self.shared.slot);
        let _ = wait_until(&self.shared.cv, s, None, |s| s.done);
    }

    /// Blocks until the call has ended or `timeout` passes; returns whether it has ended
    /// (Python's `wait(timeout)` plus the answer).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let s = lock(&self.shared.slot);
        wait_until(&self.shared.cv, s, deadline(timeout), |s| s.done).1
    }

    /// Waits for the call to end and returns its value (Python's `get()`).
    ///
    /// # Errors
    ///
    /// The call's error: for `map_async` the first failed item by position
    /// ([`TaskError::task`](crate::TaskError::task) names it), for `apply_async` the task's. A pool terminated or
    /// dropped first ends the call with a cancelled [`TaskError`](crate::TaskError).
    pub fn get(self) -> Result<T> {
        self.wait();
        self.take()
    }

    /// Like [`get`](AsyncResult::get), for at most `timeout`: [`Error::Timeout`] leaves the
    /// result in place; once handed out, later calls return [`Error::InvalidState`].
    pub fn get_timeout(&mut self, timeout: Duration) -> Result<T> {
        if !self.wait_timeout(timeout) {
            return Err(Error::Timeout);
        }
        self.take()
    }

    fn take(&self) -> Result<T> {
        lock(&self.shared.slot)
            .outcome
            .take()
            .unwrap_or(Err(Error::InvalidState("the result was already taken")))
    }
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.shared.slot);
        f.debug_struct("AsyncResult")
            .field("ready", &s.done)
            .finish()
    }
}
