//! The notes' "Shared memory → share state safely": worker processes sum slices of a shared
//! `Array`, and add their part to a shared `Value` under its lock.
//!
//! ```python
//! def worker(arr, lo, hi, total):
//!     s = sum(arr[lo:hi])
//!     with total.get_lock():
//!         total.value += s
//!
//! arr = multiprocessing.Array("q", range(n), lock=False)
//! total = multiprocessing.Value("q", 0)
//! workers = [Process(target=worker, args=(arr, k * n // 4, (k + 1) * n // 4, total))
//!            for k in range(4)]
//! ```
#![allow(unreachable_pub, dead_code)]

use spindle::multiprocessing::sharedctypes::{Array, Value};
use spindle::multiprocessing::Builder;

/// Fills a shared array with `0..n`, lets `workers` processes each sum a slice of it into a
/// shared total under its lock, and returns the total.
pub fn run(n: usize, workers: usize) -> spindle::Result<u64> {
    let mut arr = Array::<u64>::zeroed(n)?; // no lock needed: the workers only read it
    for (i, x) in arr.as_mut_slice().iter_mut().enumerate() {
        *x = i as u64;
    }
    let total = Value::new(0u64)?; // with its own process-shared lock, as Python's default

    let mut children = Vec::new();
    for k in 0..workers {
        let (mine, total) = (arr.share()?, total.clone());
        let (lo, hi) = (k * n / workers, (k + 1) * n / workers);
        let child = Builder::new().fork_target(move || {
            let part: u64 = mine.as_slice()[lo..hi].iter().sum();
            let lock = total.get_lock().expect("Value::new has a lock");
            let _held = lock.lock().expect("no holder died");
            total.set(total.get() + part);
            part
        });
        child.start()?;
        children.push(child);
    }
    for (k, child) in children.into_iter().enumerate() {
        println!("worker {k} summed its slice: {}", child.join()?);
    }
    println!("total: {}", total.get());
    Ok(total.get())
}

fn main() -> spindle::Result<()> {
    let n = if std::env::var_os("SPINDLE_QUICK").is_some() {
        1_000_000
    } else {
        10_000_000
    };
    let total = run(n, 4)?;
    assert_eq!(total, (n as u64) * (n as u64 - 1) / 2);
    Ok(())
}
