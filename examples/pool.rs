//! The notes' "Example: Pool": `square` sleeps a second and squares; `Pool(processes=3)`
//! maps it over 1..=5. Five tasks on three workers take two rounds, about 2 s instead of 5 s.
//!
//! ```python
//! def square(n):
//!     time.sleep(1)
//!     return n * n
//!
//! with Pool(processes=3) as pool:
//!     results = pool.map(square, [1, 2, 3, 4, 5])
//! print(results)
//! ```
//!
//! The one thing added: the notes' `time.sleep(1)` is handed to the workers by an
//! initializer (Python's `initializer=`), so that `--quick` runs can shorten it. The start
//! method is the default (forkserver) or the first argument:
//! `cargo run -p spindle-examples --example pool -- fork`.
#![allow(unreachable_pub, dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use spindle::multiprocessing::{self, Pool, StartMethod};

/// The notes' `time.sleep(1)`, in microseconds, as each worker was told.
static PAUSE_US: AtomicU64 = AtomicU64::new(1_000_000);

fn set_pause(us: u64) {
    PAUSE_US.store(us, Ordering::Relaxed);
}

fn square(n: u64) -> u64 {
    std::thread::sleep(Duration::from_micros(PAUSE_US.load(Ordering::Relaxed)));
    n * n
}

/// Runs the example with start method `method`; `pause` is the notes' `time.sleep(1)`.
pub fn run(method: StartMethod, pause: Duration) -> spindle::Result<Vec<u64>> {
    let numbers = [1, 2, 3, 4, 5];
    let pool = Pool::builder()
        .processes(3)
        .start_method(method)
        .initializer(set_pause, (pause.as_micros() as u64,))
        .build()?;
    let results = pool.map(square, numbers)?;
    println!("{results:?}");
    Ok(results)
}

fn main() -> spindle::Result<()> {
    let method = match std::env::args().nth(1) {
        Some(name) => name.parse()?,
        None => multiprocessing::get_start_method(),
    };
    let pause = spindle_examples::seconds(1.0);
    match run(method, pause) {
        // A build whose spawn and forkserver workers cannot receive their channel yet
        // (docs/decisions.md, D92): say so, and show the example with fork.
        Err(e) if method != StartMethod::Fork => {
            eprintln!("{method} pools are not available in this build ({e}); using fork");
            run(StartMethod::Fork, pause).map(drop)
        }
        other => other.map(drop),
    }
}
