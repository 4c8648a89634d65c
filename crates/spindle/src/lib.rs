//! # spindle
//!
//! Python's concurrency system — `threading`, `multiprocessing`, `concurrent.futures` — in
//! Rust, with the names a Python user expects and the types and errors a Rust user expects.
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
//! | `concurrent.futures.wait` / `as_completed` | [`futures::wait`] / [`futures::as_completed`] |
//!
//! Rust conventions win where they clash with Python spelling: builders instead of keyword
//! arguments, [`Result`] instead of exceptions, [`std::time::Duration`] for timeouts, `Drop`
//! instead of context managers. Every blocking call that Python gives a `timeout=` has a
//! `_timeout(Duration)` twin.
//!
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod latch;
pub mod panic;
#[allow(unsafe_code)]
mod sys;

pub mod futures;
pub mod multiprocessing;
pub mod threading;

pub use error::{Error, Result, TaskError};
