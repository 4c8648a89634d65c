//! [`create_task`] and [`Task`]: a coroutine scheduled on the running loop (Python's
//! `asyncio.create_task`), a tokio task underneath.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::JoinHandle;

use super::unwind::{failed, CatchUnwind, Failure};
use crate::panic::{payload_message, PanicReport};
use crate::{Error, Result, TaskError};

/// A coroutine running on the loop (Python's `asyncio.Task`); awaiting it gives its value.
///
/// | Python                      | spindle                              |
/// |-----------------------------|--------------------------------------|
/// | `t = asyncio.create_task(c)` | `let t = create_task(c)?;`          |
/// | `await t`                   | `t.await?`                           |
/// | `t.cancel()`                | [`t.cancel()`](Task::cancel)         |
/// | `t.done()`                  | [`t.done()`](Task::done)             |
///
/// Dropping a `Task` does not stop it: it runs on, detached, as an unreferenced Python task
/// does (and as `tokio::task::JoinHandle`). A panic inside the coroutine comes back, when
/// the task is awaited, as [`Error::Task`] with [`TaskError::is_panic`] and the message; a
/// cancelled task gives [`TaskError::is_cancelled`].
///
/// # Cancellation is a drop
///
/// Python's `cancel()` raises `CancelledError` inside the coroutine at the `await` where it
/// waits, and the coroutine may catch it, clean up, even refuse. A Rust coroutine cannot:
/// [`cancel`](Task::cancel) drops it at its next suspension point, so only its `Drop`
/// implementations run (close files, release locks, stop child futures), never code written
/// after the `await`. Clean-up that must happen goes in a `Drop` guard.
pub struct Task<T> {
    handle: JoinHandle<std::result::Result<T, Failure>>,
}

/// Schedules `coro` on the running loop and returns its [`Task`] (Python's
/// `asyncio.create_task(coro)`). It starts at the loop's next turn, even if the task is
/// never awaited.
///
/// ```
/// use spindle::asyncio::{self, create_task};
///
/// let v = asyncio::run(async {
///     let a = create_task(async { 20 })?;
///     let b = create_task(async { 22 })?;
///     Ok::<_, spindle::Error>(a.await? + b.await?)
/// })??;
/// assert_eq!(v, 42);
/// # Ok::<(), spindle::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidState`]`("no running event loop")` outside a loop (Python's
/// `RuntimeError`).
pub fn create_task<F>(coro: F) -> Result<Task<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // `tokio::spawn` finds the runtime through its own thread-local without cloning a
    // handle; outside a runtime it panics, which is caught (silently) and becomes the error.
    let coro = CatchUnwind::new(coro);
    match crate::panic::catch(move || tokio::spawn(coro)) {
        Ok(handle) => Ok(Task { handle }),
        Err(_) => Err(no_running_loop()),
    }
}

/// Python's `RuntimeError('no running event loop')`.
pub(crate) fn no_running_loop() -> Error {
    Error::InvalidState("no running event loop")
}

impl<T> Task<T> {
    pub(crate) fn from_handle(handle: JoinHandle<std::result::Result<T, Failure>>) -> Self {
        Task { handle }
    }

    /// Asks the task to stop (Python's `cancel()`): it is dropped at its next suspension point
    /// (at once if it has not started), and awaiting it gives a cancelled [`TaskError`].
    /// Returns `false` when the task had already finished.
    pub fn cancel(&self) -> bool {
        if self.handle.is_finished() {
            return false;
        }
        self.handle.abort();
        true
    }

    /// Whether the task has ended: returned, panicked or been cancelled (Python's `done()`).
    pub fn done(&self) -> bool {
        self.handle.is_finished()
    }
}

impl<T> Future for Task<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        Pin::new(&mut self.handle).poll(cx).map(task_outcome)
    }
}

/// What awaiting a task gives, from what tokio hands back.
pub(crate) fn task_outcome<T>(
    joined: std::result::Result<std::result::Result<T, Failure>, tokio::task::JoinError>,
) -> Result<T> {
    match joined {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(failure)) => Err(failed(failure)),
        Err(e) if e.is_cancelled() => Err(Error::Task(TaskError::cancelled())),
        // Every poll is caught, so tokio sees no panic; kept for completeness.
        Err(e) => Err(Error::Task(TaskError::panicked(PanicReport::new(
            e.try_into_panic()
                .map(|p| payload_message(&*p))
                .unwrap_or_else(|e| e.to_string()),
            None,
            None,
        )))),
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("done", &self.handle.is_finished())
            .finish()
    }
}
