//! The [`Executor`] trait: what every executor (threads now, processes later) can do.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Future, Map};
use crate::latch::deadline;
use crate::Result;

/// The common contract of executors (Python's abstract `concurrent.futures.Executor`).
///
/// The task is a *nameable* function — a `fn` item or a non-capturing closure (`Copy`,
/// `'static`) — applied to one argument, with serde input and output: such a task can run
/// anywhere, in a thread or in another process. Code generic over `E: Executor` therefore
/// works with every executor. Each executor adds inherent methods for what only it can do;
/// [`ThreadPoolExecutor`](super::ThreadPoolExecutor), for instance, runs any `FnOnce` closure
/// under the same method names.
///
/// ```
/// use spindle::futures::{Executor, ThreadPoolExecutor};
///
/// fn double(x: u32) -> u32 {
///     x * 2
/// }
///
/// fn total<E: Executor>(ex: &E) -> spindle::Result<u32> {
///     let f = ex.submit(double, 20)?;
///     let rest: u32 = ex.map(double, 1..=3)?.sum::<spindle::Result<u32>>()?;
///     Ok(f.result()? + rest)
/// }
///
/// assert_eq!(total(&ThreadPoolExecutor::new()?)?, 52);
/// # Ok::<(), spindle::Error>(())
/// ```
///
/// A closure that captures an owned value is not a nameable function (it is not `Copy`), so
/// the trait refuses it; the thread pool's inherent `submit` takes it:
///
/// ```compile_fail
/// use spindle::futures::{Executor, ThreadPoolExecutor};
/// let pool = ThreadPoolExecutor::new().unwrap();
/// let name = String::from("spindle");
/// let f = Executor::submit(&pool, move |n: usize| name.len() + n, 1);
/// ```
pub trait Executor {
    /// Schedules `f(arg)` and returns its [`Future`] (Python's `submit(fn, arg)`).
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`](crate::Error::Shutdown) after [`shutdown`](Executor::shutdown);
    /// an executor may also report that it could not start a worker.
    fn submit<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static;

    /// Applies `f` to every item of `args`; the results come in input order (Python's
    /// `map(fn, iterable)`).
    ///
    /// The default implementation submits every item at once, one task each, as Python
    /// does; executors override it to batch.
    ///
    /// # Errors
    ///
    /// Those of [`submit`](Executor::submit), for the first item that cannot be submitted
    /// (the items submitted before are cancelled).
    fn map<F, A, R, I>(&self, f: F, args: I) -> Result<Map<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        map_each(self, f, args, None)
    }

    /// Like [`map`](Executor::map), with a deadline `timeout` from now for the whole
    /// iteration: a result not ready by then yields `Err(Error::Timeout)` once, the rest is
    /// cancelled and the iterator ends (Python's `map(fn, iterable, timeout=...)`).
    ///
    /// # Errors
    ///
    /// Those of [`map`](Executor::map).
    fn map_timeout<F, A, R, I>(&self, f: F, args: I, timeout: Duration) -> Result<Map<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        map_each(self, f, args, Some(timeout))
    }

    /// Stops accepting work (Python's `shutdown(wait, cancel_futures=...)`).
    ///
    /// With `cancel_futures`, the tasks not started yet are cancelled; the running ones
    /// finish. With `wait`, returns once every task has ended and every worker is gone.
    /// Calling it again is harmless; dropping the executor calls `shutdown(true, false)`.
    fn shutdown(&self, wait: bool, cancel_futures: bool);
}

/// The default `map`: one `submit` per item, all at once.
fn map_each<E, F, A, R, I>(ex: &E, f: F, args: I, timeout: Option<Duration>) -> Result<Map<R>>
where
    E: Executor + ?Sized,
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
    I: IntoIterator<Item = A>,
{
    let until = timeout.and_then(deadline);
    let mut fs = Vec::new();
    for arg in args {
        match ex.submit(f, arg) {
            Ok(fut) => fs.push(fut),
            Err(e) => {
                for fut in &fs {
                    fut.cancel();
                }
                return Err(e);
            }
        }
    }
    Ok(Map::from_futures(fs, until))
}
