//! `map` over many tiny tasks (square a u64), every result delivered in order to the caller.
//!
//! Fairness: every contender but one hands all `n` results, in input order, to the calling
//! thread, which sums them: spindle's `map` iterator; rayon collecting into a `Vec`; the bare
//! crossbeam pool, whose tasks send `(index, value)` back and whose caller places them in a
//! `Vec`; CPython's `executor.map`. rayon's `sum()` skips the ordered delivery (each worker
//! folds its own part) and is shown for reference, without an aim.
//!
//! spindle keeps its bound here too: never more than `max_workers` items run at once, the
//! caller's own work included (it computes tiny items itself, in a free seat:
//! docs/decisions.md, D40 and D44; the gauge tests are in
//! `crates/spindle/tests/futures_bound.rs`).

use crossbeam_channel::unbounded;
use rayon::prelude::*;

use crate::harness::{Measurement, Plan};
use crate::peers::cpython;
use crate::peers::crossbeam_pool::BarePool;
use crate::report::thousands;
use crate::scoreboard::{Contender, Group, NotMeasured, Options, Progress};
use crate::workloads::{check_sum, failed, repeat, square};

/// The map group.
pub(crate) fn group(opts: &Options) -> Group {
    let n = opts.size(100_000, 1_000_000);
    let py_n = opts.size(20_000, 100_000);
    let plan = opts.plan();
    let py_plan = Plan::fixed(plan.warmup, plan.reps.min(5));
    let workers = opts.workers;
    let python = opts.python.clone();
    Group::new("map", &format!("map over {} tiny tasks", thousands(n)))
        .note(format!(
            "`map(square, 0..n)` on a pool of {workers} workers with n = {}, every result \
             delivered in input order to the caller, which sums them; figures are per task. \
             CPython runs n = {} (its `map` does about 10⁵ tasks/s, so 10⁶ would take many \
             seconds a repetition); its time per task is comparable since the work is linear in n.",
            thousands(n),
            thousands(py_n)
        ))
        .note(
            "crossbeam pool: one boxed closure per task sending `(i, square(i))` back on a \
             channel; the caller puts each value at its index, then sums. rayon collect: \
             `(0..n).into_par_iter().map(square).collect::<Vec<_>>()`, then the caller sums. \
             rayon sum: `.sum()` inside the pool, with no ordered delivery: for reference.",
        )
        .contender(Contender::subject("spindle ThreadPoolExecutor", move |p| {
            spindle_map(workers, n, plan, p)
        }))
        .contender(
            Contender::peer("rayon collect", move |p| rayon_collect(workers, n, plan, p))
                .aim(0.8, "at least 0.8× rayon's collect, within max_workers"),
        )
        .contender(Contender::peer("rayon sum", move |p| {
            rayon_sum(workers, n, plan, p)
        }))
        .contender(Contender::peer("crossbeam pool", move |p| {
            crossbeam(workers, n, plan, p)
        }))
        .contender(
            Contender::peer("CPython ThreadPoolExecutor", move |_| {
                cpython::measure(&python, "map", py_n, py_plan, workers)
            })
            .aim(100.0, "at least 100× CPython's ThreadPoolExecutor.map"),
        )
}

fn spindle_map(
    workers: usize,
    n: u64,
    plan: Plan,
    p: Progress,
) -> Result<Measurement, NotMeasured> {
    use spindle::futures::ThreadPoolExecutor;
    let pool = ThreadPoolExecutor::builder()
        .max_workers(workers)
        .build()
        .map_err(failed)?;
    repeat(plan, n, &p, || {
        let mut sum = 0u64;
        for v in pool.map(square, 0..n).map_err(|e| e.to_string())? {
            sum = sum.wrapping_add(v.map_err(|e| e.to_string())?);
        }
        check_sum(sum, n)
    })
}

fn rayon_pool(workers: usize) -> Result<rayon::ThreadPool, NotMeasured> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .map_err(failed)
}

fn rayon_collect(
    workers: usize,
    n: u64,
    plan: Plan,
    p: Progress,
) -> Result<Measurement, NotMeasured> {
    let pool = rayon_pool(workers)?;
    let len = usize::try_from(n).map_err(failed)?;
    repeat(plan, n, &p, || {
        // A `usize` range is an indexed parallel iterator, so `collect` writes straight into
        // the Vec (a `u64` range is not, and would collect through linked lists).
        let out: Vec<u64> =
            pool.install(|| (0..len).into_par_iter().map(|i| square(i as u64)).collect());
        check_sum(out.iter().fold(0u64, |a, &v| a.wrapping_add(v)), n)
    })
}

fn rayon_sum(workers: usize, n: u64, plan: Plan, p: Progress) -> Result<Measurement, NotMeasured> {
    let pool = rayon_pool(workers)?;
    let len = usize::try_from(n).map_err(failed)?;
    repeat(plan, n, &p, || {
        let sum: u64 = pool.install(|| (0..len).into_par_iter().map(|i| square(i as u64)).sum());
        check_sum(sum, n)
    })
}

fn crossbeam(workers: usize, n: u64, plan: Plan, p: Progress) -> Result<Measurement, NotMeasured> {
    let pool = BarePool::new(workers).map_err(failed)?;
    let len = usize::try_from(n).map_err(failed)?;
    repeat(plan, n, &p, || {
        let (tx, rx) = unbounded::<(usize, u64)>();
        for i in 0..len {
            let tx = tx.clone();
            pool.execute(Box::new(move || {
                let _ = tx.send((i, square(i as u64)));
            }));
        }
        let mut out = vec![0u64; len];
        for _ in 0..len {
            let (i, v) = rx.recv().map_err(|e| e.to_string())?;
            out[i] = v;
        }
        check_sum(out.iter().fold(0u64, |a, &v| a.wrapping_add(v)), n)
    })
}
