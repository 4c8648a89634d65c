//! Process pools on many tiny tasks (issue #12, rows a and b): `Pool.map(square)` over
//! 100,000 integers with spindle's adaptive chunks, Python's chunk size and chunks of 1,
//! beside a raw fork pool and CPython's `Pool` / `ProcessPoolExecutor`; and 100,000 single
//! `submit`s then a wait for all.

use spindle::futures::ProcessPoolExecutor;
use spindle::multiprocessing::pool::Chunking;
use spindle::multiprocessing::{Pool, StartMethod};

use crate::harness::{Measurement, Plan};
use crate::peers::cpython_pool;
use crate::peers::raw_pool::RawPool;
use crate::report::thousands;
use crate::scoreboard::{Contender, Group, NotMeasured, Options, Progress, Rule};
use crate::workloads::{check_sum, failed, repeat, square};

const ADAPTIVE: &str = "spindle Pool.map, adaptive chunks";
const PYTHON: &str = "spindle Pool.map, Python's chunk size";
const ONE: &str = "spindle Pool.map, chunksize 1";

/// Row a: `map(square)` over 100,000 integers.
pub(crate) fn map_group(opts: &Options) -> Group {
    let n: u64 = 100_000;
    let n1 = opts.size(5_000, 20_000);
    let w = opts.workers;
    let chunk = Chunking::python(n as usize, w);
    let plan = opts.plan();
    let py = Plan::fixed(1, plan.reps.min(5));
    let py1 = Plan::fixed(0, opts.size(1, 3) as usize);
    let python = opts.python.clone();
    let (p1, p2, p3) = (python.clone(), python.clone(), python);
    Group::new(
        "pool-map",
        &format!("process pool: map over {} tiny tasks", thousands(n)),
    )
    .note(format!(
        "`Pool::builder().processes({w}).start_method(Fork)`, then `map(square, 0..n)` with \
         n = {}; every value is delivered in order to the caller, which sums them; figures are \
         per task. Python's chunk size for this map is ceil(n / (4 × {w})) = {}. The chunks-of-1 \
         rows (spindle's and CPython's) run n = {} (CPython's chunksize 1 does a few 10⁴ \
         tasks/s); per-task figures are comparable.",
        thousands(n),
        thousands(chunk as u64),
        thousands(n1)
    ))
    .note(format!(
        "raw fork pool: {w} workers forked once, a socket pair each; the parent writes chunks of \
         {} u64s as raw bytes (a length, then the values) and reads the squares back the same \
         way, one parent thread per worker: the limit of the data path (benches/peers/raw_pool.rs). \
         CPython: `multiprocessing.get_context(\"fork\").Pool({w}).map(square, range(n))` with \
         its default chunk size (the same {}) or chunksize=1, and \
         `ProcessPoolExecutor({w}).map(square, range(n))` (chunksize 1, its default).",
        thousands(chunk as u64),
        thousands(chunk as u64)
    ))
    .contender(
        Contender::subject(ADAPTIVE, move |p| spindle_map(w, n, Chunking::Adaptive, plan, p))
            .aim_rule(
                Rule::AtMostSumOf(vec![PYTHON.to_string()]),
                "spindle's default chunking no slower than Python's chunk size",
            ),
    )
    .contender(Contender::subject(PYTHON, move |p| {
        spindle_map(w, n, Chunking::Python, plan, p)
    }))
    .contender(Contender::subject(ONE, move |p| {
        spindle_map(w, n1, Chunking::Fixed(1), plan, p)
    }))
    .contender(
        Contender::peer(
            &format!("raw fork pool, chunks of {}", thousands(chunk as u64)),
            move |p| raw(w, n, chunk, plan, p),
        )
        .versus(PYTHON)
        .aim(0.7, "with Python's chunk size at least 0.7× the raw fork pool"),
    )
    .contender(
        Contender::peer("CPython Pool.map, default chunksize", move |_| {
            cpython_pool::times(&p1, "map", "fork", &[n, 0, py.reps as u64, 1, w as u64], py.reps, n)
        })
        .versus(PYTHON)
        .aim(10.0, "with Python's chunk size at least 10× CPython's Pool.map"),
    )
    .contender(
        Contender::peer("CPython Pool.map, chunksize 1", move |_| {
            cpython_pool::times(&p2, "map", "fork", &[n1, 1, py1.reps as u64, 0, w as u64], py1.reps, n1)
        })
        .versus(ONE),
    )
    .contender(
        Contender::peer("CPython ProcessPoolExecutor.map", move |_| {
            cpython_pool::times(&p3, "ppe-map", "fork", &[n1, 1, py1.reps as u64, 0, w as u64], py1.reps, n1)
        })
        .versus(ONE),
    )
}

fn spindle_map(
    workers: usize,
    n: u64,
    chunking: Chunking,
    plan: Plan,
    p: Progress,
) -> Result<Measurement, NotMeasured> {
    let pool = Pool::builder()
        .processes(workers)
        .start_method(StartMethod::Fork)
        .chunking(chunking)
        .build()
        .map_err(failed)?;
    repeat(plan, n, &p, || {
        let v = pool.map(square, 0..n).map_err(|e| e.to_string())?;
        check_sum(v.iter().fold(0u64, |a, &x| a.wrapping_add(x)), n)
    })
}

fn raw(
    workers: usize,
    n: u64,
    chunk: usize,
    plan: Plan,
    p: Progress,
) -> Result<Measurement, NotMeasured> {
    let mut pool = RawPool::new(workers).map_err(failed)?;
    repeat(plan, n, &p, || {
        let v = pool.map(n, chunk).map_err(|e| e.to_string())?;
        check_sum(v.iter().fold(0u64, |a, &x| a.wrapping_add(x)), n)
    })
}

/// Row b: 100,000 single submits, then a wait for all.
pub(crate) fn submit_group(opts: &Options) -> Group {
    let n = opts.size(20_000, 100_000);
    let py_n = opts.size(2_000, 20_000);
    let w = opts.workers;
    let plan = opts.plan();
    let py = Plan::fixed(0, opts.size(1, 3) as usize);
    let python = opts.python.clone();
    Group::new(
        "pool-submit",
        &format!(
            "process pool: {} single submits, then wait for all",
            thousands(n)
        ),
    )
    .note(format!(
        "`ProcessPoolExecutor::builder().max_workers({w}).start_method(Fork)`: `submit(square, i)` \
         for i in 0..{} (a future each), then every future's `result()`, summed; figures are \
         per task. spindle's single submits of one function share one call, and tasks of a \
         function it has timed travel packed in shared messages (docs/decisions.md, D81, \
         D162). CPython: `[ex.submit(square, i) for i in range(n)]`, then \
         `wait(fs)`, with n = {} (about 13,000 a second).",
        thousands(n),
        thousands(py_n)
    ))
    .contender(Contender::subject(
        "spindle ProcessPoolExecutor.submit",
        move |p| spindle_submits(w, n, plan, p),
    ))
    .contender(
        Contender::peer("CPython ProcessPoolExecutor.submit", move |_| {
            cpython_pool::times(
                &python,
                "submit",
                "fork",
                &[py_n, py.reps as u64, 0, w as u64],
                py.reps,
                py_n,
            )
        })
        .aim(50.0, "at least 50× ProcessPoolExecutor's per-task rate"),
    )
}

fn spindle_submits(
    workers: usize,
    n: u64,
    plan: Plan,
    p: Progress,
) -> Result<Measurement, NotMeasured> {
    let ex = ProcessPoolExecutor::builder()
        .max_workers(workers)
        .start_method(StartMethod::Fork)
        .build()
        .map_err(failed)?;
    repeat(plan, n, &p, || {
        let fs = (0..n)
            .map(|i| ex.submit(square, i))
            .collect::<spindle::Result<Vec<_>>>()
            .map_err(|e| e.to_string())?;
        let mut sum = 0u64;
        for f in fs {
            sum = sum.wrapping_add(f.result().map_err(|e| e.to_string())?);
        }
        check_sum(sum, n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::with_processes;

    #[test]
    fn the_map_contenders_agree_on_a_small_input() {
        with_processes(|| {
            let plan = Plan::fixed(0, 1);
            for chunking in [Chunking::Adaptive, Chunking::Python, Chunking::Fixed(1)] {
                spindle_map(2, 1000, chunking, plan, Progress::quiet()).unwrap();
            }
            raw(2, 1000, 125, plan, Progress::quiet()).unwrap();
            spindle_submits(2, 500, plan, Progress::quiet()).unwrap();
        });
    }
}
