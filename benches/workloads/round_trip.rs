//! Submit-and-wait round trip: one tiny task submitted, then the caller blocks on its result.
//!
//! This is the latency of a pool's whole path: queue the task, wake a worker, run it, publish
//! the result, wake the caller. Every contender runs the same `square(i)` for `i` in
//! `0..ops`, and each repetition checks the sum of the results.

use crossbeam_channel::bounded;

use crate::harness::{Measurement, Plan};
use crate::peers::cpython;
use crate::peers::crossbeam_pool::BarePool;
use crate::report::thousands;
use crate::scoreboard::{Contender, Group, NotMeasured, Options, Progress};
use crate::workloads::{check_sum, failed, repeat, square};

/// The round-trip group.
pub(crate) fn group(opts: &Options) -> Group {
    let ops = opts.size(5_000, 20_000);
    let plan = opts.plan();
    let py_plan = Plan::fixed(plan.warmup, plan.reps.min(5));
    let workers = opts.workers;
    let python = opts.python.clone();
    Group::new("round-trip", "submit-and-wait round trip")
        .note(format!(
            "The caller submits one tiny task (square a u64) to a pool of {workers} workers and \
             blocks on its result, {} times per repetition; figures are per round trip.",
            thousands(ops)
        ))
        .note(
            "crossbeam pool: boxed closures on a crossbeam channel, the reply on a `bounded(1)` \
             channel per task. rayon: `ThreadPool::install(|| square(i))`, rayon's own \
             blocking call from a thread outside the pool. CPython: \
             `executor.submit(square, i).result()`.",
        )
        .contender(Contender::subject("spindle ThreadPoolExecutor", move |p| {
            spindle_submit(workers, ops, plan, p)
        }))
        .contender(
            Contender::peer("crossbeam pool", move |p| crossbeam(workers, ops, plan, p))
                .aim(1.0, "never slower than the bare crossbeam pool"),
        )
        .contender(Contender::peer("rayon install", move |p| {
            rayon_install(workers, ops, plan, p)
        }))
        .contender(Contender::peer("CPython ThreadPoolExecutor", move |_| {
            cpython::measure(&python, "round-trip", ops, py_plan, workers)
        }))
}

fn spindle_submit(
    workers: usize,
    ops: u64,
    plan: Plan,
    p: Progress,
) -> Result<Measurement, NotMeasured> {
    use spindle::futures::ThreadPoolExecutor;
    let pool = ThreadPoolExecutor::builder()
        .max_workers(workers)
        .build()
        .map_err(failed)?;
    repeat(plan, ops, &p, || {
        let mut sum = 0u64;
        for i in 0..ops {
            let v = pool
                .submit(square, i)
                .map_err(|e| e.to_string())?
                .result()
                .map_err(|e| e.to_string())?;
            sum = sum.wrapping_add(v);
        }
        check_sum(sum, ops)
    })
}

fn crossbeam(
    workers: usize,
    ops: u64,
    plan: Plan,
    p: Progress,
) -> Result<Measurement, NotMeasured> {
    let pool = BarePool::new(workers).map_err(failed)?;
    repeat(plan, ops, &p, || {
        let mut sum = 0u64;
        for i in 0..ops {
            let (tx, rx) = bounded(1);
            pool.execute(Box::new(move || {
                let _ = tx.send(square(i));
            }));
            sum = sum.wrapping_add(rx.recv().map_err(|e| e.to_string())?);
        }
        check_sum(sum, ops)
    })
}

fn rayon_install(
    workers: usize,
    ops: u64,
    plan: Plan,
    p: Progress,
) -> Result<Measurement, NotMeasured> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .map_err(failed)?;
    repeat(plan, ops, &p, || {
        let mut sum = 0u64;
        for i in 0..ops {
            sum = sum.wrapping_add(pool.install(|| square(std::hint::black_box(i))));
        }
        check_sum(sum, ops)
    })
}
