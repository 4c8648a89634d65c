//! `concurrent.futures`: futures, executors, `wait` and `as_completed`.
//!
//! | Python (`concurrent.futures`)              | spindle                                     |
//! |--------------------------------------------|---------------------------------------------|
//! | `Future`                                   | [`Future`] (and [`Promise`], its producer side) |
//! | `Future.set_result` / `set_exception` / `set_running_or_notify_cancel` | [`Promise`] |
//! | `Executor`                                 | [`Executor`] (trait)                        |
//! | `ThreadPoolExecutor(max_workers, thread_name_prefix, initializer)` | [`ThreadPoolExecutor::builder`] |
//! | `ProcessPoolExecutor(max_workers, mp_context, initializer, max_tasks_per_child)`, `terminate_workers()`, `kill_workers()` | [`ProcessPoolExecutor::builder`], [`terminate_workers`](ProcessPoolExecutor::terminate_workers), [`kill_workers`](ProcessPoolExecutor::kill_workers); [`stop`](ProcessPoolExecutor::stop) ends a running task |
//! | `executor.submit(fn, arg)`                 | [`ThreadPoolExecutor::submit`], [`Executor::submit`] |
//! | `executor.map(fn, it, timeout=t)`          | [`ThreadPoolExecutor::map`] / [`map_timeout`](ThreadPoolExecutor::map_timeout) → [`Map`] |
//! | `executor.shutdown(wait, cancel_futures=)` | [`ThreadPoolExecutor::shutdown`]            |
//! | `wait(fs, timeout, return_when)`           | [`wait`] with [`ReturnWhen`] → [`DoneAndNotDone`] |
//! | `FIRST_COMPLETED` / `FIRST_EXCEPTION` / `ALL_COMPLETED` | [`ReturnWhen::FirstCompleted`] / [`FirstException`](ReturnWhen::FirstException) / [`AllCompleted`](ReturnWhen::AllCompleted) |
//! | `as_completed(fs, timeout)`                | [`as_completed`] → [`AsCompleted`]          |
//! | `CancelledError`                           | [`TaskError::is_cancelled`](crate::TaskError::is_cancelled) |
//! | `TimeoutError`                             | [`Error::Timeout`](crate::Error::Timeout); from `as_completed`, [`Error::Unfinished`](crate::Error::Unfinished) ("2 (of 4) futures unfinished") |
//! | `BrokenThreadPool`                         | a failed [`TaskError`](crate::TaskError) from `submit` and the queued futures |
//! | `RuntimeError` (submit after shutdown)     | [`Error::Shutdown`](crate::Error::Shutdown) |
//! | `mpi4py.futures.MPICommExecutor`, `MPIPoolExecutor` (`submit`, `map`, `starmap`, `initializer`) | `MpiPoolExecutor` (feature `mpi`): `if let Some(ex) = MpiPoolExecutor::start()? { ... }` |
//!
//! Differences worth knowing:
//!
//! * A [`Future`] has one owner (it is not `Clone`); [`wait`] and [`as_completed`] take the
//!   futures and hand them back.
//! * [`Future`] implements [`std::future::Future`]: any async runtime can `.await` it.
//! * `map` is lazy and batched: the inputs are consumed on the iterating thread, a few chunks
//!   per worker ahead; a panic in one item is that item's error, the others go on.
//! * `max_workers` bounds what runs at once, whoever runs it: the iterating thread may help
//!   with a `map`, but only in the seat of an idle worker.
//! * The [`Executor`] trait takes nameable functions with serde arguments and results (what a
//!   process pool can run too); [`ThreadPoolExecutor`]'s inherent methods take any closure.
//!
//! ```
//! use spindle::futures::{as_completed, ThreadPoolExecutor};
//!
//! let pool = ThreadPoolExecutor::builder().max_workers(4).build()?;
//! let futures: Vec<_> = (1..=4u64).map(|n| pool.submit(|n| n * n, n)).collect::<Result<_, _>>()?;
//! let mut squares: Vec<u64> = Vec::new();
//! for f in as_completed(futures, None) {
//!     squares.push(f?.result()?);
//! }
//! squares.sort();
//! assert_eq!(squares, [1, 4, 9, 16]);
//! # Ok::<(), spindle::Error>(())
//! ```

mod executor;
mod future;
mod map;
#[cfg(feature = "mpi")]
mod mpi;
mod process_pool;
mod promise;
mod thread_pool;
mod wait;

pub use executor::Executor;
pub use future::Future;
pub use map::Map;
#[cfg(feature = "mpi")]
pub use mpi::{MpiPoolBuilder, MpiPoolExecutor, RankInfo};
pub use process_pool::{MapOptions, ProcessPoolBuilder, ProcessPoolExecutor, STOP_GRACE};
pub use promise::{promise, Promise};
pub use thread_pool::{ThreadPoolBuilder, ThreadPoolExecutor};
pub use wait::{as_completed, wait, AsCompleted, DoneAndNotDone, ReturnWhen};
