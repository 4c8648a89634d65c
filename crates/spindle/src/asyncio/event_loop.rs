//! [`EventLoop`]: a handle on a running loop that plain threads can use
//! ([`call_soon_threadsafe`](EventLoop::call_soon_threadsafe),
//! [`run_coroutine_threadsafe`]), and [`get_running_loop`].

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::runner::{self, LoopShared};
use super::task::no_running_loop;
use super::unwind::{failed, CatchUnwind};
use crate::futures::{self, Promise};
use crate::latch::lock;
use crate::{Error, Result, TaskError};

/// A handle on an event loop (Python's `asyncio.AbstractEventLoop`, the thread-safe part):
/// cheap to clone, `Send` and `Sync`, so a plain thread can hand work to the loop.
///
/// Get one inside a coroutine with [`get_running_loop`], or from a [`Runner`](super::Runner)
/// with [`get_loop`](super::Runner::get_loop).
#[derive(Clone)]
pub struct EventLoop {
    shared: Arc<LoopShared>,
}

/// The loop running the current coroutine (Python's `asyncio.get_running_loop()`).
///
/// Inside a tokio runtime that spindle did not build (`#[tokio::main]`), the handle is on
/// that runtime, and its default executor is one process-wide thread pool.
///
/// # Errors
///
/// [`Error::InvalidState`]`("no running event loop")` outside a loop.
pub fn get_running_loop() -> Result<EventLoop> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| no_running_loop())?;
    let shared = runner::current().unwrap_or_else(|| LoopShared::foreign(handle));
    Ok(EventLoop { shared })
}

/// Submits `coro` to the loop `event_loop` from any thread and returns a
/// [`spindle::futures::Future`](crate::futures::Future) of its value (Python's
/// `asyncio.run_coroutine_threadsafe(coro, loop)`).
///
/// The future is a plain one: block on it with [`result`](crate::futures::Future::result),
/// mix it with [`futures::wait`](crate::futures::wait), await it from another loop.
/// [`cancel`](crate::futures::Future::cancel)ling it cancels the coroutine (dropped at its
/// next suspension point), as in Python; a panic in the coroutine is its
/// [`TaskError::is_panic`] error; a loop closed before the coroutine ends cancels it.
///
/// ```
/// use spindle::asyncio::{self, run_coroutine_threadsafe, Runner};
///
/// let runner = Runner::new()?;
/// let event_loop = runner.get_loop();
/// let from_thread = std::thread::spawn(move || {
///     let f = run_coroutine_threadsafe(async { 6 * 7 }, &event_loop)?;
///     f.result()
/// });
/// // The loop runs the coroutine while `main` waits for the thread without blocking it.
/// let v = runner.run(async move {
///     asyncio::to_thread(move || from_thread.join().unwrap()).await
/// })???;
/// assert_eq!(v, 42);
/// # Ok::<(), spindle::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Shutdown`] when the loop is closed.
pub fn run_coroutine_threadsafe<F>(
    coro: F,
    event_loop: &EventLoop,
) -> Result<futures::Future<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    event_loop.run_coroutine_threadsafe(coro)
}

/// A callback scheduled with [`EventLoop::call_soon_threadsafe`] (Python's
/// `asyncio.Handle`).
pub struct Handle {
    abort: tokio::task::AbortHandle,
}

impl Handle {
    /// Cancels the callback if it has not run yet (Python's `Handle.cancel()`).
    pub fn cancel(&self) {
        self.abort.abort();
    }

    /// Whether the callback has run (or been cancelled).
    pub fn done(&self) -> bool {
        self.abort.is_finished()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("done", &self.done())
            .finish()
    }
}

/// A promise that cancels its future when dropped unfulfilled: a coroutine dropped by a
/// closing loop ends its future as cancelled, as Python's does.
struct CancelOnDrop<T>(Mutex<Option<Promise<T>>>);

impl<T> CancelOnDrop<T> {
    fn take(&self) -> Option<Promise<T>> {
        lock(&self.0).take()
    }
}

impl<T> Drop for CancelOnDrop<T> {
    fn drop(&mut self) {
        if let Some(p) = self.take() {
            p.cancel();
        }
    }
}

impl EventLoop {
    pub(crate) fn from_shared(shared: Arc<LoopShared>) -> Self {
        EventLoop { shared }
    }

    pub(crate) fn shared(&self) -> &LoopShared {
        &self.shared
    }

    fn handle(&self) -> Result<&tokio::runtime::Handle> {
        if self.is_closed() {
            return Err(Error::Shutdown);
        }
        self.shared.handle.get().ok_or(Error::Shutdown)
    }

    /// Whether the loop was closed (Python's `is_closed()`).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Schedules `callback` to run on the loop, from any thread (Python's
    /// `loop.call_soon_threadsafe(callback)`). A panic in it is reported on standard error
    /// and the loop goes on, as Python logs the exception of a callback.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use spindle::asyncio::{self, Runner};
    ///
    /// let runner = Runner::new()?;
    /// let event_loop = runner.get_loop();
    /// let (tx, rx) = mpsc::channel();
    /// std::thread::spawn(move || event_loop.call_soon_threadsafe(move || tx.send(7).unwrap()))
    ///     .join()
    ///     .unwrap()?;
    /// // The callback runs when the loop does.
    /// runner.run(asyncio::sleep(std::time::Duration::from_millis(5)))?;
    /// assert_eq!(rx.try_recv().unwrap(), 7);
    /// # Ok::<(), spindle::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] when the loop is closed (Python's `RuntimeError('Event loop is
    /// closed')`).
    pub fn call_soon_threadsafe<F>(&self, callback: F) -> Result<Handle>
    where
        F: FnOnce() + Send + 'static,
    {
        let task = self.handle()?.spawn(async move {
            if let Err(report) = crate::panic::catch(callback) {
                eprintln!("spindle: a callback scheduled on the event loop panicked: {report}");
            }
        });
        Ok(Handle {
            abort: task.abort_handle(),
        })
    }

    /// [`run_coroutine_threadsafe`] on this loop.
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] when the loop is closed.
    pub fn run_coroutine_threadsafe<F>(&self, coro: F) -> Result<futures::Future<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = self.handle()?;
        // The promise is never marked running: the future stays cancellable while the
        // coroutine runs, and cancelling it cancels the coroutine.
        let (promise, future) = futures::promise();
        let promise = CancelOnDrop(Mutex::new(Some(promise)));
        let task = handle.spawn(async move {
            let outcome = CatchUnwind::new(coro).await;
            if let Some(p) = promise.take() {
                let _ = match outcome {
                    Ok(v) => p.set_result(v),
                    Err(failure) => match failed(failure) {
                        Error::Task(e) => p.set_exception(e),
                        other => p.set_exception(TaskError::failed(other.to_string())),
                    },
                };
            }
        });
        let abort = task.abort_handle();
        future.add_done_callback(move |outcome| {
            if outcome.is_err_and(TaskError::is_cancelled) {
                abort.abort();
            }
        });
        Ok(future)
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("closed", &self.is_closed())
            .finish()
    }
}
