//! [`Promise`]: the producer side of a [`Future`], for whoever runs the task (an executor).

use std::fmt;
use std::sync::Arc;

use super::future::{Future, Shared};
use crate::{Error, Result, TaskError};

/// A new pending [`Future`] and the [`Promise`] that completes it.
///
/// This is what an executor does in `submit`: keep the promise with the task, hand the future
/// to the caller.
///
/// ```
/// use spindle::futures::promise;
///
/// let (promise, future) = promise::<String>();
/// let worker = std::thread::spawn(move || {
///     if promise.set_running_or_notify_cancel() {
///         promise.set_result("hello".to_owned()).unwrap();
///     }
/// });
/// assert_eq!(future.result()?, "hello");
/// worker.join().unwrap();
/// # Ok::<(), spindle::Error>(())
/// ```
pub fn promise<T>() -> (Promise<T>, Future<T>) {
    let shared = Arc::new(Shared::new());
    (
        Promise {
            shared: Arc::clone(&shared),
        },
        Future::from_shared(shared),
    )
}

/// The producer side of a [`Future`]: the methods Python reserves for executors
/// (`set_running_or_notify_cancel`, `set_result`, `set_exception`).
///
/// Nothing is lost silently: dropping a promise that neither finished nor was cancelled ends
/// its future with a failed [`TaskError`] ("the promise was dropped without a result").
pub struct Promise<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Promise<T> {
    /// Marks the task as running, unless it was cancelled (Python's
    /// `set_running_or_notify_cancel`).
    ///
    /// Returns `true` when the task should run (the future is now running, or already was),
    /// `false` when it was cancelled (or already finished): the executor must then skip the
    /// task. Once running, the future can no longer be cancelled.
    pub fn set_running_or_notify_cancel(&self) -> bool {
        self.shared.set_running()
    }

    /// Ends the task with `value` (Python's `set_result`).
    ///
    /// The callbacks registered so far run on this thread, then waiters are released.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] when the future was already cancelled or finished (the value
    /// is dropped).
    pub fn set_result(self, value: T) -> Result<()> {
        self.end(Ok(value))
    }

    /// Ends the task with `error` (Python's `set_exception`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] when the future was already cancelled or finished.
    pub fn set_exception(self, error: TaskError) -> Result<()> {
        self.end(Err(error))
    }

    /// Cancels the future if the task has not started, with the semantics of
    /// [`Future::cancel`]; executors use it to drop queued work at shutdown.
    pub fn cancel(&self) -> bool {
        self.shared.cancel()
    }

    /// Whether the future was cancelled.
    pub fn cancelled(&self) -> bool {
        self.shared.is_cancelled()
    }

    fn end(self, outcome: std::result::Result<T, TaskError>) -> Result<()> {
        if self.shared.finish(outcome) {
            Ok(())
        } else {
            Err(Error::InvalidState("future is already done"))
        }
    }
}

impl<T> Drop for Promise<T> {
    fn drop(&mut self) {
        if !self.shared.is_final() {
            self.shared.finish(Err(TaskError::failed(
                "the promise was dropped without a result",
            )));
        }
    }
}

impl<T> fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Promise")
            .field("state", &self.shared.state_name())
            .finish()
    }
}
