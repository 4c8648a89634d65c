//! The measurement harness: warm-up, repetitions, one wall time per repetition.

use std::time::{Duration, Instant};

use crate::stats::Summary;

/// How many times to run a workload.
///
/// ```
/// use spindle_bench::Plan;
/// let plan = Plan { warmup: 1, reps: 5 };
/// assert_eq!(plan.reps, 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Untimed repetitions run first (threads started, caches and allocator warm).
    pub warmup: usize,
    /// Timed repetitions; each gives one wall time.
    pub reps: usize,
}

/// The wall times of one contender's repetitions, each of `ops` operations.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Operations (tasks, round trips) per repetition.
    pub ops: u64,
    /// One wall time per timed repetition.
    pub times: Vec<Duration>,
}

impl Measurement {
    /// Statistics of the time per operation, in seconds; `None` when nothing was timed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use spindle_bench::Measurement;
    /// let m = Measurement { ops: 1000, times: vec![Duration::from_millis(2); 3] };
    /// let per_op = m.per_op().unwrap();
    /// assert!((per_op.median - 2e-6).abs() < 1e-15);
    /// ```
    pub fn per_op(&self) -> Option<Summary> {
        if self.ops == 0 {
            return None;
        }
        let secs: Vec<f64> = self.times.iter().map(Duration::as_secs_f64).collect();
        Summary::of(&secs).map(|s| s.scaled(1.0 / self.ops as f64))
    }
}

/// Runs `rep` `plan.warmup` times untimed, then `plan.reps` times timed.
///
/// `rep` performs `ops` operations and returns an error message when one fails; the first
/// failure stops the measurement. `progress` is called after each timed repetition with its
/// index (from 1) and its time.
///
/// ```
/// use spindle_bench::{measure, Plan};
/// let mut calls = 0;
/// let m = measure(Plan { warmup: 2, reps: 3 }, 10, |_, _| {}, || {
///     calls += 1;
///     Ok(())
/// })
/// .unwrap();
/// assert_eq!(calls, 5);
/// assert_eq!((m.ops, m.times.len()), (10, 3));
/// ```
pub fn measure<F, P>(
    plan: Plan,
    ops: u64,
    mut progress: P,
    mut rep: F,
) -> Result<Measurement, String>
where
    F: FnMut() -> Result<(), String>,
    P: FnMut(usize, Duration),
{
    for _ in 0..plan.warmup {
        rep()?;
    }
    let mut times = Vec::with_capacity(plan.reps);
    for i in 0..plan.reps {
        let start = Instant::now();
        rep()?;
        let took = start.elapsed();
        times.push(took);
        progress(i + 1, took);
    }
    Ok(Measurement { ops, times })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_repetition_stops_the_measurement() {
        let mut calls = 0;
        let out = measure(
            Plan { warmup: 1, reps: 5 },
            1,
            |_, _| {},
            || {
                calls += 1;
                if calls == 3 {
                    Err("boom".to_string())
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(out, Err("boom".to_string()));
        assert_eq!(calls, 3);
    }

    #[test]
    fn progress_sees_every_timed_repetition_in_order() {
        let mut seen = Vec::new();
        measure(
            Plan { warmup: 3, reps: 4 },
            1,
            |i, _| seen.push(i),
            || Ok(()),
        )
        .unwrap();
        assert_eq!(seen, vec![1, 2, 3, 4]);
    }

    #[test]
    fn zero_ops_has_no_per_op_summary() {
        let m = Measurement {
            ops: 0,
            times: vec![Duration::from_millis(1)],
        };
        assert_eq!(m.per_op(), None);
    }
}
