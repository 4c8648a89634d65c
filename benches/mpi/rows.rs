//! spindle's rows, run by rank 0 of a `mpiexec -n 3` job with an `MpiPoolExecutor`, and the
//! raw pool's, with the same tiny task (`square`, opaque to the optimiser) and sizes.

use std::hint::black_box;
use std::time::{Duration, Instant};

use spindle::futures::{MapOptions, MpiPoolExecutor};

/// Items of the map rows and submits of the submit row.
pub(crate) const N: u64 = 100_000;
/// Round trips timed per repetition.
pub(crate) const TRIPS: u32 = 2_000;

fn square(n: u64) -> u64 {
    black_box(n) * n
}

fn expected(n: u64) -> u64 {
    (0..n).map(|x| x * x).sum()
}

/// Prints `ROW name ns-per-op` for `ops` operations that took `took`.
pub(crate) fn row(name: &str, took: Duration, ops: u64) {
    println!("ROW {name} {:.2}", took.as_secs_f64() * 1e9 / ops as f64);
}

/// spindle's rows, `reps` repetitions each.
pub(crate) fn spindle(ex: &MpiPoolExecutor, reps: usize) {
    // Warm-up: both ranks serving, the sizer primed.
    let _: u64 = ex.map(square, 0..N).expect("map").map(Result::unwrap).sum();
    for _ in 0..reps {
        let started = Instant::now();
        let fs: Vec<_> = (0..N)
            .map(|i| ex.submit(square, i).expect("submit"))
            .collect();
        let sum: u64 = fs.into_iter().map(|f| f.result().expect("result")).sum();
        assert_eq!(sum, expected(N));
        row("spindle.submit", started.elapsed(), N);

        for (name, chunk) in [
            ("spindle.map.c1", Some(1)),
            ("spindle.map.c1000", Some(1000)),
            ("spindle.map.adaptive", None),
        ] {
            let options = chunk.map_or(MapOptions::new(), |c| MapOptions::new().chunksize(c));
            let started = Instant::now();
            let sum: u64 = ex
                .map_with(square, 0..N, options)
                .expect("map")
                .map(Result::unwrap)
                .sum();
            assert_eq!(sum, expected(N));
            row(name, started.elapsed(), N);
        }

        let started = Instant::now();
        for i in 0..TRIPS {
            let v = ex
                .submit(square, u64::from(i))
                .expect("submit")
                .result()
                .expect("result");
            assert_eq!(v, u64::from(i) * u64::from(i));
        }
        row("spindle.round_trip", started.elapsed(), u64::from(TRIPS));
    }
}
