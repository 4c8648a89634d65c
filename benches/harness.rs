//! The measurement harness: warm-up, repetitions, one wall time per repetition.

use std::time::{Duration, Instant};

use crate::stats::Summary;

/// How many times to run a workload.
///
/// At least `reps` timed repetitions run; while their total is below `min_time`, more run, up
/// to `max_reps`. A contender whose repetition takes microseconds thus gets enough samples
/// for a stable median, and a slow one is not repeated past `reps`.
///
/// ```
/// use std::time::Duration;
/// use spindle_bench::Plan;
/// let plan = Plan::fixed(1, 5);
/// assert_eq!((plan.reps, plan.max_reps, plan.min_time), (5, 5, Duration::ZERO));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Untimed repetitions run first (threads started, caches and allocator warm).
    pub warmup: usize,
    /// The fewest timed repetitions; each gives one wall time.
    pub reps: usize,
    /// Keep repeating until the timed repetitions add up to this much...
    pub min_time: Duration,
    /// ...but never run more than this many timed repetitions.
    pub max_reps: usize,
}

impl Plan {
    /// Exactly `warmup` untimed and `reps` timed repetitions.
    pub fn fixed(warmup: usize, reps: usize) -> Plan {
        Plan {
            warmup,
            reps,
            min_time: Duration::ZERO,
            max_reps: reps,
        }
    }
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

/// Runs `rep` `plan.warmup` times untimed, then at least `plan.reps` times timed (more while
/// the timed total is under `plan.min_time`, up to `plan.max_reps`).
///
/// `rep` performs `ops` operations and returns an error message when one fails; the first
/// failure stops the measurement. `progress` is called after each timed repetition with its
/// index (from 1) and its time.
///
/// ```
/// use spindle_bench::{measure, Plan};
/// let mut calls = 0;
/// let m = measure(Plan::fixed(2, 3), 10, |_, _| {}, || {
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
    let mut total = Duration::ZERO;
    while times.len() < plan.reps || (total < plan.min_time && times.len() < plan.max_reps) {
        let start = Instant::now();
        rep()?;
        let took = start.elapsed();
        total += took;
        times.push(took);
        progress(times.len(), took);
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
            Plan::fixed(1, 5),
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
        measure(Plan::fixed(3, 4), 1, |i, _| seen.push(i), || Ok(())).unwrap();
        assert_eq!(seen, vec![1, 2, 3, 4]);
    }

    #[test]
    fn short_repetitions_repeat_until_min_time_or_max_reps() {
        let plan = Plan {
            warmup: 0,
            reps: 2,
            min_time: Duration::from_secs(3600),
            max_reps: 7,
        };
        let m = measure(plan, 1, |_, _| {}, || Ok(())).unwrap();
        assert_eq!(m.times.len(), 7);
        let plan = Plan {
            warmup: 0,
            reps: 2,
            min_time: Duration::from_millis(5),
            max_reps: 1000,
        };
        let m = measure(
            plan,
            1,
            |_, _| {},
            || {
                std::thread::sleep(Duration::from_millis(2));
                Ok(())
            },
        )
        .unwrap();
        // 2 ms each: the third repetition passes 5 ms (a slow machine may stop sooner, never later).
        assert!((2..=3).contains(&m.times.len()), "{}", m.times.len());
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
