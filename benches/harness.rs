//! The measurement harness: warm-up, repetitions, one wall time per repetition; and what a
//! contender's samples are (times or bytes).

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

/// What a contender's samples measure, which decides how the report prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Wall time per operation: lower is faster.
    Time,
    /// Memory in bytes per operation (per child, say): lower is smaller.
    Bytes,
}

/// One sample per timed repetition: wall times or memory sizes.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    /// The wall time of each repetition.
    Times(Vec<Duration>),
    /// A size in bytes per repetition (for example one idle child's private memory).
    Bytes(Vec<u64>),
}

impl Samples {
    /// The number of samples.
    pub fn len(&self) -> usize {
        match self {
            Samples::Times(t) => t.len(),
            Samples::Bytes(b) => b.len(),
        }
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the samples measure.
    pub fn unit(&self) -> Unit {
        match self {
            Samples::Times(_) => Unit::Time,
            Samples::Bytes(_) => Unit::Bytes,
        }
    }

    /// The samples as numbers: seconds or bytes.
    fn values(&self) -> Vec<f64> {
        match self {
            Samples::Times(t) => t.iter().map(Duration::as_secs_f64).collect(),
            Samples::Bytes(b) => b.iter().map(|&v| v as f64).collect(),
        }
    }
}

/// One contender's samples, each covering `ops` operations.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Operations (tasks, round trips, children) per repetition.
    pub ops: u64,
    /// One sample per timed repetition.
    pub samples: Samples,
}

impl Measurement {
    /// Wall times of repetitions of `ops` operations each.
    pub fn times(ops: u64, times: Vec<Duration>) -> Measurement {
        Measurement {
            ops,
            samples: Samples::Times(times),
        }
    }

    /// Sizes in bytes, one per repetition of `ops` operations (usually 1: one child each).
    ///
    /// ```
    /// use spindle_bench::{Measurement, Unit};
    /// let m = Measurement::bytes(1, vec![1024, 2048, 3072]);
    /// assert_eq!(m.samples.unit(), Unit::Bytes);
    /// assert_eq!(m.per_op().unwrap().median, 2048.0);
    /// ```
    pub fn bytes(ops: u64, bytes: Vec<u64>) -> Measurement {
        Measurement {
            ops,
            samples: Samples::Bytes(bytes),
        }
    }

    /// What the samples measure.
    pub fn unit(&self) -> Unit {
        self.samples.unit()
    }

    /// Statistics per operation, in seconds or bytes; `None` when nothing was sampled.
    ///
    /// ```
    /// use std::time::Duration;
    /// use spindle_bench::Measurement;
    /// let m = Measurement::times(1000, vec![Duration::from_millis(2); 3]);
    /// let per_op = m.per_op().unwrap();
    /// assert!((per_op.median - 2e-6).abs() < 1e-15);
    /// ```
    pub fn per_op(&self) -> Option<Summary> {
        if self.ops == 0 {
            return None;
        }
        Summary::of(&self.samples.values()).map(|s| s.scaled(1.0 / self.ops as f64))
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
/// assert_eq!((m.ops, m.samples.len()), (10, 3));
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
    Ok(Measurement::times(ops, times))
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
        assert_eq!(m.samples.len(), 7);
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
        assert!((2..=3).contains(&m.samples.len()), "{}", m.samples.len());
    }

    #[test]
    fn zero_ops_has_no_per_op_summary() {
        let m = Measurement::times(0, vec![Duration::from_millis(1)]);
        assert_eq!(m.per_op(), None);
        assert_eq!(Measurement::bytes(1, Vec::new()).per_op(), None);
    }
}
