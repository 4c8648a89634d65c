//! The notes' "Example: Pool" on MPI ranks instead of local processes: `square` sleeps a second
//! and squares, mapped over 1..=5 by an `MpiPoolExecutor` (`mpi4py.futures`' shape).
//!
//! ```text
//! cargo build -p spindle-examples --features mpi --example mpi_map
//! mpiexec -n 3 target/debug/examples/mpi_map       # rank 0 + 2 worker ranks
//! [1, 4, 9, 16, 25]
//! ```
//!
//! Every rank runs this `main`. On rank 0, `start` returns the executor; the other ranks serve
//! the tasks until it is dropped, then `start` returns `None` there and they exit. The notes'
//! `time.sleep(1)` is a tenth of it with `SPINDLE_QUICK` set, handed to the workers by an
//! initializer (Python's `initializer=`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use spindle::futures::MpiPoolExecutor;

/// The notes' `time.sleep(1)`, in microseconds, as each worker rank was told.
static PAUSE_US: AtomicU64 = AtomicU64::new(1_000_000);

fn set_pause(us: u64) {
    PAUSE_US.store(us, Ordering::Relaxed);
}

fn square(n: u64) -> u64 {
    std::thread::sleep(Duration::from_micros(PAUSE_US.load(Ordering::Relaxed)));
    n * n
}

fn main() -> spindle::Result<()> {
    let pause = spindle_examples::seconds(1.0).as_micros() as u64;
    let started = MpiPoolExecutor::builder()
        .initializer(set_pause, (pause,))
        .start()?;
    if let Some(ex) = started {
        let numbers = [1, 2, 3, 4, 5];
        let results: Vec<u64> = ex.map(square, numbers)?.collect::<spindle::Result<_>>()?;
        println!("{results:?}");
    }
    Ok(())
}
