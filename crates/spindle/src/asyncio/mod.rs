//! `asyncio`: coroutines for I/O-heavy work with many tasks, on tokio (feature `tokio`), and
//! the bridge between coroutines and spindle's thread and process executors.
//!
//! Rust already has the event loop (tokio); this module is the Python-shaped door to it: the
//! names a Python user looks for, with Python's line beside the Rust one, and what tokio
//! does not do by itself: awaiting a task that runs in a process pool and stopping it when
//! the awaiting coroutine gives up, awaiting a child process or a cross-process queue
//! without blocking the loop, handing coroutines to a loop from plain threads.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use spindle::asyncio::{self, gather};
//!
//! // async def download(i): await asyncio.sleep(0.05); return i
//! async fn download(i: u32) -> spindle::Result<u32> {
//!     asyncio::sleep(Duration::from_millis(50)).await;
//!     Ok(i)
//! }
//!
//! // asyncio.run(asyncio.gather(*(download(i) for i in range(1, 6))))
//! let start = Instant::now();
//! let got = asyncio::run(gather((1..=5).map(download)))??;
//! assert_eq!(got, [1, 2, 3, 4, 5]);
//! assert!(start.elapsed() < Duration::from_millis(250)); // together, not one after another
//! # Ok::<(), spindle::Error>(())
//! ```
//!
//! | Python (`asyncio`)                                 | spindle                                          |
//! |----------------------------------------------------|--------------------------------------------------|
//! | `asyncio.run(main())`                              | [`run(main())`](run) (current-thread loop)       |
//! | `asyncio.Runner()`, `runner.get_loop()`            | [`Runner`] (also multi-threaded: [`RunnerBuilder::multi_thread`]), [`Runner::get_loop`] |
//! | `await asyncio.sleep(d)`                           | [`sleep(d)`](sleep)`.await`                      |
//! | `asyncio.create_task(c)`, `t.cancel()`, `t.done()` | [`create_task(c)?`](create_task), [`Task::cancel`], [`Task::done`] |
//! | `await asyncio.gather(*cs)`                        | [`gather(cs)`](gather)`.await?`                   |
//! | `gather(*cs, return_exceptions=True)`              | [`gather(cs).return_exceptions()`](Gather::return_exceptions)`.await` |
//! | `await asyncio.wait_for(c, t)`                     | [`wait_for(c, t)`](wait_for)`.await?` ([`Error::Timeout`](crate::Error::Timeout)) |
//! | `async with asyncio.timeout(t):`                   | [`timeout(Some(t))`](timeout)`.scope(async { .. }).await?` |
//! | `await asyncio.wait(ts, timeout, return_when)`     | [`wait(ts, ReturnWhen::FirstCompleted, None)`](wait)`.await` |
//! | `for c in asyncio.as_completed(cs):`               | `let mut it = `[`as_completed(cs, None)`](as_completed)`; while let Some(v) = it.next().await` |
//! | `async with asyncio.TaskGroup() as tg:`            | [`TaskGroup`]: `tg.create_task(c)?; tg.join().await?` |
//! | `await asyncio.shield(c)`                          | [`shield(c)`](shield)`.await`                     |
//! | `asyncio.Queue`, `Lock`, `Event`, `Condition`, `Semaphore`, `BoundedSemaphore` | [`Queue`], [`Lock`], [`Event`], [`Condition`], [`Semaphore`], [`BoundedSemaphore`] |
//! | `await asyncio.to_thread(f)`                       | [`to_thread(f)`](to_thread)`.await?`              |
//! | `await loop.run_in_executor(ex, f, arg)`           | [`run_in_executor(&ex, f, arg)`](run_in_executor)`.await?` (thread or process pool) |
//! | `asyncio.wrap_future(cf)`                          | [`wrap_future(cf)`](wrap_future) (or `cf.await`)  |
//! | `asyncio.run_coroutine_threadsafe(c, loop)`        | [`run_coroutine_threadsafe(c, &loop)?`](run_coroutine_threadsafe) → a [`futures::Future`](crate::futures::Future) |
//! | `loop.call_soon_threadsafe(cb)`                    | [`EventLoop::call_soon_threadsafe`]              |
//! | `asyncio.get_running_loop()`                       | [`get_running_loop()?`](get_running_loop)       |
//! | `await loop.run_in_executor(None, p.join)`         | [`Process::join_async`](crate::multiprocessing::Process::join_async) |
//! | `await loop.run_in_executor(None, q.get)`          | [`Queue::get_async`](crate::multiprocessing::Queue::get_async), [`Connection::recv_async`](crate::multiprocessing::Connection::recv_async) |
//! | `asyncio.CancelledError`                           | [`TaskError::is_cancelled`](crate::TaskError::is_cancelled) |
//!
//! # What Rust cancellation does not do that Python's does
//!
//! Python cancels a task by raising `CancelledError` inside it, at the `await` where it is
//! suspended: the coroutine can catch it, run clean-up code (even `await` more), and even
//! refuse to stop. A Rust future is cancelled by being **dropped**: no code of the coroutine
//! runs at the cancelled `await`, nothing after it, no `finally`; only the `Drop`
//! implementations of what it holds run (files close, locks and permits are released,
//! child futures are dropped in turn). Put clean-up that must happen in a `Drop` guard.
//! And since a future is only polled by its owner, dropping any future that holds another
//! (`wait_for` on timeout, a `gather` that failed, a `select`) cancels the inner one at once,
//! where Python would schedule the cancellation for the task's next turn.
//!
//! What is not cancelled by a drop: a [`Task`] (dropping its handle detaches it, as in
//! Python; call [`Task::cancel`]), a [`shield`]ed coroutine, a plain
//! [`futures::Future`](crate::futures::Future) (dropping it detaches), and a task already
//! running on a thread (nothing can stop a thread safely). A task running in a
//! [`ProcessPoolExecutor`](crate::futures::ProcessPoolExecutor) is stopped when its
//! [`ExecutorFuture`] is dropped: its worker is signalled and replaced.
//!
//! # Choosing coroutines or threads
//!
//! Coroutines for many waits at once (sockets, timers, child processes, queues): 10,000
//! sleeping coroutines cost a few MiB and finish together; threads for blocking calls that
//! cannot be awaited ([`to_thread`]); processes for CPU-bound work
//! ([`run_in_executor`] on a [`ProcessPoolExecutor`](crate::futures::ProcessPoolExecutor)).
//!
//! # Panics
//!
//! A panic inside a coroutine is caught where the coroutine is awaited from: [`run`]'s main
//! coroutine, a [`Task`], a [`TaskGroup`] task, a coroutine handed over with
//! [`run_coroutine_threadsafe`], and a task of an executor, all give
//! [`Error::Task`](crate::Error::Task) with [`is_panic`](crate::TaskError::is_panic) and the
//! message. Inside [`gather`] and the other combinators, which poll futures in place, a
//! panic unwinds to the task that polls them.

mod event_loop;
mod executor_future;
mod gather;
mod in_place;
mod ipc;
mod locks;
mod queues;
pub(crate) mod readiness;
mod runner;
mod task;
mod task_group;
mod unwind;
mod waiting;

pub use self::event_loop::{get_running_loop, run_coroutine_threadsafe, EventLoop, Handle};
pub use self::executor_future::{
    run_in_executor, to_thread, wrap_future, ExecutorFuture, StopTask,
};
pub use self::gather::{gather, Gather, GatherAll};
pub use self::locks::{
    BoundedSemaphore, Condition, ConditionGuard, Event, Lock, LockGuard, Semaphore, SemaphoreGuard,
};
pub use self::queues::Queue;
pub use self::runner::{run, Runner, RunnerBuilder};
pub use self::task::{create_task, Task};
pub use self::task_group::{ExceptionGroup, TaskGroup};
pub use self::waiting::{
    as_completed, shield, sleep, timeout, timeout_at, wait, wait_for, AsCompleted, Shield, Sleep,
    Timeout, Waited,
};
pub use crate::futures::ReturnWhen;
