//! Process pool latencies (issue #12, rows c, d and g): one task's round trip beside the
//! socket round trip to a child; a pool's build to its first result, per start method; and
//! the time from a worker's `SIGKILL` to its task's error.

use std::time::{Duration, Instant};

use spindle::futures::ProcessPoolExecutor;
use spindle::multiprocessing::{Pool, StartMethod};

use crate::harness::{Measurement, Plan};
use crate::peers::cpython_pool;
use crate::report::thousands;
use crate::scoreboard::{Contender, Group, NotMeasured, Options, Progress, Rule};
use crate::workloads::process_start::socket_round_trips;
use crate::workloads::{check_sum, failed, repeat, square};

const APPLY: &str = "spindle Pool.apply";
const RESULT: &str = "spindle ProcessPoolExecutor.submit().result()";

/// Row c: one task's round trip.
pub(crate) fn round_trip_group(opts: &Options) -> Group {
    let ops = opts.size(500, 2_000);
    let plan = opts.plan();
    let w = opts.workers;
    let py = Plan::fixed(1, plan.reps.min(5));
    let python = opts.python.clone();
    let p2 = python.clone();
    Group::new("pool-round-trip", "process pool: one task's round trip")
        .note(format!(
            "`pool.apply(square, (i,))` and `executor.submit(square, i).result()`, {} times per \
             repetition, on {w} fork workers; figures are per round trip. The socket round trip \
             is one byte each way over a Unix stream socket to a forked child, the floor of any \
             process pool's round trip. CPython: `pool.apply(square, (i,))`, \
             `ex.submit(square, i).result()`.",
            thousands(ops)
        ))
        .contender(Contender::subject(APPLY, move |p| apply(w, ops, plan, p)))
        .contender(Contender::subject(RESULT, move |p| result(w, ops, plan, p)))
        .contender(
            Contender::peer("socket round trip to a child", move |p| {
                socket_round_trips(ops, plan, p)
            })
            .versus(APPLY)
            .aim(1.0 / 1.5, "at most 1.5× the socket round trip to a child"),
        )
        .contender(
            Contender::peer("CPython Pool.apply", move |_| {
                cpython_pool::times(
                    &python,
                    "apply",
                    "fork",
                    &[ops, py.reps as u64, 1, w as u64],
                    py.reps,
                    ops,
                )
            })
            .versus(APPLY),
        )
        .contender(
            Contender::peer("CPython ProcessPoolExecutor.submit().result()", move |_| {
                cpython_pool::times(
                    &p2,
                    "result",
                    "fork",
                    &[ops, py.reps as u64, 1, w as u64],
                    py.reps,
                    ops,
                )
            })
            .versus(RESULT),
        )
}

fn apply(w: usize, ops: u64, plan: Plan, p: Progress) -> Result<Measurement, NotMeasured> {
    let pool = Pool::builder()
        .processes(w)
        .start_method(StartMethod::Fork)
        .build()
        .map_err(failed)?;
    repeat(plan, ops, &p, || {
        let mut sum = 0u64;
        for i in 0..ops {
            sum = sum.wrapping_add(pool.apply(square, (i,)).map_err(|e| e.to_string())?);
        }
        check_sum(sum, ops)
    })
}

fn result(w: usize, ops: u64, plan: Plan, p: Progress) -> Result<Measurement, NotMeasured> {
    let ex = ProcessPoolExecutor::builder()
        .max_workers(w)
        .start_method(StartMethod::Fork)
        .build()
        .map_err(failed)?;
    repeat(plan, ops, &p, || {
        let mut sum = 0u64;
        for i in 0..ops {
            let f = ex.submit(square, i).map_err(|e| e.to_string())?;
            sum = sum.wrapping_add(f.result().map_err(|e| e.to_string())?);
        }
        check_sum(sum, ops)
    })
}

/// Row d: a pool's build to its first result, per start method.
pub(crate) fn first_result_group(opts: &Options) -> Group {
    let plan = opts.plan();
    let py_fast = opts.size(5, 20);
    let py_spawn = opts.size(3, 8);
    let python = opts.python.clone();
    let mut g = Group::new("pool-first-result", "process pool: build to first result").note(
        "One repetition: `Pool::builder().processes(2).start_method(METHOD).build()`, then \
             `apply(square, (3,))`, timed together, then the pool is dropped (not timed). \
             CPython: `ctx.Pool(2)` then `pool.apply(square, (3,))`, then `terminate()`; its \
             fork server is up after the warm-up repetition, as spindle's is.",
    );
    for method in [
        StartMethod::Fork,
        StartMethod::Forkserver,
        StartMethod::Spawn,
    ] {
        let subject = format!("spindle Pool first result ({method})");
        let reps = if method == StartMethod::Spawn {
            py_spawn
        } else {
            py_fast
        };
        let py = python.clone();
        g = g
            .contender(
                Contender::subject(&subject, move |p| first_result(method, plan, p))
                    .on_board_thread(),
            )
            .contender(
                Contender::peer(
                    &format!("CPython Pool first result ({method})"),
                    move |_| {
                        cpython_pool::times(
                            &py,
                            "first",
                            method.as_str(),
                            &[reps],
                            reps as usize,
                            1,
                        )
                    },
                )
                .versus(&subject)
                .aim(
                    10.0,
                    "at least 10× faster than CPython with the same start method",
                ),
            );
    }
    g
}

fn first_result(method: StartMethod, plan: Plan, p: Progress) -> Result<Measurement, NotMeasured> {
    // Timed by hand: the pool's drop (killing and reaping its workers) is not part of it.
    let mut times = Vec::new();
    for i in 0..plan.warmup + plan.reps.max(10) {
        let t0 = Instant::now();
        let pool = Pool::builder()
            .processes(2)
            .start_method(method)
            .build()
            .map_err(failed)?;
        let v = pool.apply(square, (3,)).map_err(failed)?;
        let took = t0.elapsed();
        drop(pool);
        if v != 9 {
            return Err(failed(format!("square(3) = {v}")));
        }
        if i >= plan.warmup {
            times.push(took);
            p.rep(times.len(), took);
        }
    }
    Ok(Measurement::times(1, times))
}

/// Row g: from a worker's `SIGKILL` to its task's error.
pub(crate) fn kill_group(opts: &Options) -> Group {
    let reps = opts.size(20, 50) as usize;
    let py_reps = opts.size(3, 5) as usize;
    let python = opts.python.clone();
    Group::new(
        "pool-kill",
        "process pool: a worker's SIGKILL to its task's error",
    )
    .note(format!(
        "A pool of one fork worker runs a task that sleeps; the board sends the worker \
             `SIGKILL` and times until the task's result is an error ({reps} kills, one per \
             sample; the pool replaces the worker between them). spindle sees the death on \
             the worker's pidfd in its event loop. CPython's `Pool` never reports it (the map \
             hangs); its `ProcessPoolExecutor` breaks the whole pool and fails every pending \
             future with `BrokenProcessPool`: that is its row."
    ))
    .contender(
        Contender::subject("spindle Pool, SIGKILL to WorkerDied", move |_| {
            kill_to_error(reps)
        })
        .aim_rule(Rule::AtMost(0.010), "at most 10 ms"),
    )
    .contender(Contender::peer(
        "CPython ProcessPoolExecutor, SIGKILL to BrokenProcessPool",
        move |_| cpython_pool::times(&python, "kill", "fork", &[py_reps as u64], py_reps, 1),
    ))
}

fn sleep_long(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn kill_to_error(reps: usize) -> Result<Measurement, NotMeasured> {
    let pool = Pool::builder()
        .processes(1)
        .start_method(StartMethod::Fork)
        .build()
        .map_err(failed)?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        // The worker is up and idle once it answered.
        pool.apply(square, (1,)).map_err(failed)?;
        let pid = *pool.pids().first().ok_or_else(|| failed("no worker"))?;
        let r = pool.apply_async(sleep_long, (60_000,)).map_err(failed)?;
        std::thread::sleep(Duration::from_millis(5));
        let t0 = Instant::now();
        // SAFETY: kill() of the pool's own worker pid with SIGKILL; no memory is touched.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let e = r
            .get()
            .err()
            .ok_or_else(|| failed("the task did not fail"))?;
        times.push(t0.elapsed());
        if !e.as_task().is_some_and(|t| t.is_worker_died()) {
            return Err(failed(format!("not a dead worker's error: {e}")));
        }
    }
    Ok(Measurement::times(1, times))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::with_processes;

    #[test]
    fn the_latency_contenders_run() {
        with_processes(|| {
            let plan = Plan::fixed(0, 1);
            apply(2, 10, plan, Progress::quiet()).unwrap();
            result(2, 10, plan, Progress::quiet()).unwrap();
            first_result(StartMethod::Fork, plan, Progress::quiet()).unwrap();
            let m = kill_to_error(2).unwrap();
            assert_eq!(m.samples.len(), 2);
        });
    }
}
