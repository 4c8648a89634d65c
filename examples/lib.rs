//! The seed notes' examples, one file each.
//!
//! Every file is both a runnable example (`cargo run -p spindle-examples --example NAME`) and a
//! module of this library, so that `spindle tour` runs exactly the code a reader sees
//! (docs/decisions.md, D2). Each has `pub fn run(pause: Duration)`: `pause` is what the notes'
//! `time.sleep(2)` lasts.

use std::time::Duration;

// Lets the examples name this library as `spindle_examples::...` both when they are compiled
// as Cargo examples and when they are compiled as modules of this library.
extern crate self as spindle_examples;

#[path = "asyncio_downloads.rs"]
pub mod asyncio_downloads;
#[path = "downloads.rs"]
pub mod downloads;
#[path = "pipe.rs"]
pub mod pipe;
#[path = "pool.rs"]
pub mod pool;
#[path = "processes.rs"]
pub mod processes;
#[path = "queue.rs"]
pub mod queue;
#[path = "shared_array.rs"]
pub mod shared_array;
#[path = "thread_pool_executor.rs"]
pub mod thread_pool_executor;
#[path = "threads.rs"]
pub mod threads;

/// The notes' `time.sleep(seconds)`: `seconds` long, or a tenth of it when the environment
/// variable `SPINDLE_QUICK` is set (CI runs every example that way).
///
/// ```
/// let d = spindle_examples::seconds(2.0);
/// assert!(d == std::time::Duration::from_secs(2) || d == std::time::Duration::from_millis(200));
/// ```
pub fn seconds(seconds: f64) -> Duration {
    let scale = if std::env::var_os("SPINDLE_QUICK").is_some() {
        0.1
    } else {
        1.0
    };
    Duration::from_secs_f64(seconds * scale)
}
