//! # spindle
//!
//! Python's concurrency system — `threading`, `multiprocessing`, `concurrent.futures` — in
//! Rust, with the names a Python user expects and the types and errors a Rust user expects.
//!
//! ```
//! use spindle::futures::ThreadPoolExecutor;
//! use spindle::multiprocessing::{get_context, StartMethod};
//!
//! fn square(n: u64) -> u64 { n * n }
//!
//! // concurrent.futures: `with ThreadPoolExecutor(max_workers=3) as ex: ex.map(square, ...)`
//! let pool = ThreadPoolExecutor::builder().max_workers(3).build()?;
//! let squares: Vec<u64> = pool.map(square, 1..=5)?.collect::<spindle::Result<_>>()?;
//! assert_eq!(squares, [1, 4, 9, 16, 25]);
//!
//! // multiprocessing: `Process(target=square, args=(7,))`, in a fresh copy of this binary
//! let p = get_context(StartMethod::Spawn).process().target(square, (7,));
//! p.start()?;
//! assert_eq!(p.join()?, 49);
//! # Ok::<(), spindle::Error>(())
//! ```
//!
//! | Python                                   | spindle                                      |
//! |------------------------------------------|----------------------------------------------|
//! | `threading.Thread`                       | [`threading::Thread`]                        |
//! | `threading.Lock` / `RLock`               | [`threading::Lock`] / [`threading::RLock`]   |
//! | `threading.Condition`                    | [`threading::Condition`]                     |
//! | `threading.Semaphore` / `BoundedSemaphore` | [`threading::Semaphore`] / [`threading::BoundedSemaphore`] |
//! | `threading.Event` / `Barrier` / `Timer`  | [`threading::Event`] / [`threading::Barrier`] / [`threading::Timer`] |
//! | `concurrent.futures.Future`              | [`futures::Future`]                          |
//! | `concurrent.futures.Executor`            | [`futures::Executor`]                        |
//! | `concurrent.futures.ThreadPoolExecutor`  | [`futures::ThreadPoolExecutor`]              |
//! | `concurrent.futures.ProcessPoolExecutor` | [`futures::ProcessPoolExecutor`]             |
//! | `concurrent.futures.wait` / `as_completed` | [`futures::wait`] / [`futures::as_completed`] |
//! | `multiprocessing.Process`                | [`multiprocessing::Process`]                 |
//! | `multiprocessing.get_context` / `set_start_method` | [`multiprocessing::get_context`] / [`multiprocessing::set_start_method`] |
//! | `multiprocessing.current_process` / `active_children` | [`multiprocessing::current_process`] / [`multiprocessing::active_children`] |
//! | `multiprocessing.Pipe` / `Queue` / `SimpleQueue` / `JoinableQueue` | [`multiprocessing::pipe`] / [`multiprocessing::Queue`] / [`multiprocessing::SimpleQueue`] / [`multiprocessing::JoinableQueue`] |
//! | `multiprocessing.connection.wait` / `Listener` / `Client` | [`multiprocessing::connection::wait`] / [`multiprocessing::connection::Listener`] / [`multiprocessing::connection::client`] |
//! | `multiprocessing.Lock` / `RLock` / `Semaphore` / `Event` / `Condition` / `Barrier` | [`multiprocessing::synchronize`] (robust to dead holders, waiters, parties) |
//! | `multiprocessing.Value` / `Array` / `shared_memory.SharedMemory` | [`multiprocessing::Value`] / [`multiprocessing::Array`] / [`multiprocessing::shared_memory::SharedMemory`] |
//! | `multiprocessing.Pool` (`map`, `imap`, `apply_async`, ...) | [`multiprocessing::Pool`] |
//! | `multiprocessing.dummy.Pool` / `multiprocessing.pool.ThreadPool` | [`multiprocessing::dummy::Pool`] |
//! | `asyncio` (`run`, `gather`, `TaskGroup`, `to_thread`, `run_in_executor`, ...) | `asyncio` (feature `tokio`; see its module docs) |
//!
//! Rust conventions win where they clash with Python spelling: builders instead of keyword
//! arguments, [`Result`] instead of exceptions, [`std::time::Duration`] for timeouts, `Drop`
//! instead of context managers. Every blocking call that Python gives a `timeout=` has a
//! `_timeout(Duration)` twin. A task's failure is one opaque [`TaskError`] with predicates
//! (`is_panic`, `is_cancelled`, `is_timeout`, `is_worker_died`).
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod latch;
pub mod panic;
mod sync;
#[allow(unsafe_code)]
mod sys;

#[cfg(feature = "tokio")]
pub mod asyncio;
pub mod futures;
pub mod multiprocessing;
pub mod threading;

pub use error::{Error, Result, TaskError};

// The README's examples run as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
