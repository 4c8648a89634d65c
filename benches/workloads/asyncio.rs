//! Issue #14's rows (`asyncio-*`): 10,000 sleeping coroutines (wall time and added peak
//! memory) as spawned tasks and as plain futures under `gather`, beside CPython's asyncio and
//! a 100-thread `ThreadPoolExecutor`; `gather` of 100,000 trivial tasks; the round trip of one
//! `run_in_executor` call on the thread pool and on the process pool.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use spindle::asyncio::{self, create_task, gather, run_in_executor, Runner};
use spindle::futures::{ProcessPoolExecutor, ThreadPoolExecutor};
use spindle::multiprocessing::{get_context, StartMethod};

use crate::harness::{Measurement, Plan, Unit};
use crate::peers::cpython_asyncio as py;
use crate::report::thousands;
use crate::scoreboard::{Contender, Group, NotMeasured, Options, Progress, Rule};
use crate::workloads::{check_sum, failed, repeat_timed, square};

/// How many sleepers, and how long each sleeps.
const SLEEPERS: u64 = 10_000;
const NAP_MS: u64 = 100;

const TASKS: &str = "spindle asyncio: 10,000 tasks";
const FUTURES: &str = "spindle asyncio: gather of 10,000 futures";

/// Every asyncio group.
pub(crate) fn groups(opts: &Options) -> Vec<Group> {
    vec![
        sleepers_time(opts),
        sleepers_memory(opts),
        gather_trivial(opts),
        executor_round_trip(opts),
    ]
}

/// How the sleepers are run: one task each, or polled in place by `gather`.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Tasks,
    Futures,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Tasks => "tasks",
            Mode::Futures => "futures",
        }
    }
}

/// `n` sleepers of `nap` at once on `runner`'s loop.
async fn sleepers(mode: Mode, n: u64, nap: Duration) -> Result<(), String> {
    match mode {
        Mode::Tasks => {
            let tasks = (0..n)
                .map(|_| create_task(asyncio::sleep(nap)))
                .collect::<spindle::Result<Vec<_>>>()
                .map_err(|e| e.to_string())?;
            let done = gather(tasks).await.map_err(|e| e.to_string())?;
            check_len(done.len(), n)
        }
        Mode::Futures => {
            let coros = (0..n).map(|_| async move {
                asyncio::sleep(nap).await;
                Ok::<(), Infallible>(())
            });
            let done = gather(coros)
                .await
                .map_err(|e: Infallible| -> String { match e {} })?;
            check_len(done.len(), n)
        }
    }
}

fn check_len(got: usize, n: u64) -> Result<(), String> {
    if got as u64 == n {
        Ok(())
    } else {
        Err(format!("{got} of {n} sleepers came back"))
    }
}

fn sleepers_time(opts: &Options) -> Group {
    let plan = opts.plan();
    let py_plan = Plan::fixed(1, plan.reps.min(5));
    let python = opts.python.clone();
    let python2 = opts.python.clone();
    let aim = Rule::AtMost(1.2 * NAP_MS as f64 / 1000.0);
    let mut g = Group::new(
        "asyncio-sleepers",
        "10,000 concurrent tasks each sleeping 100 ms: wall time",
    )
    .note(
        "One repetition starts 10,000 sleeps of 100 ms at once and waits for all of them; the \
         figure is its wall time. spindle: a current-thread loop (`asyncio::run`), the sleeps \
         as tasks (`create_task` each, then `gather`) or as plain futures polled in place by \
         `gather`. CPython: `asyncio.gather` of 10,000 `create_task(asyncio.sleep(0.1))`, and \
         a `ThreadPoolExecutor(100)` mapping `time.sleep(0.1)` over 10,000 items (100 at a \
         time: one run, about 10 s). The aim: within 1.2× of one sleep (0.12 s).",
    );
    for (name, mode) in [(TASKS, Mode::Tasks), (FUTURES, Mode::Futures)] {
        g = g.contender(
            Contender::subject(name, move |p| spindle_sleepers(mode, plan, &p))
                .aim_rule(aim.clone(), "within 1.2× of one sleep"),
        );
    }
    g.contender(
        Contender::peer("CPython asyncio: 10,000 tasks", move |_| {
            py::times(&python, &sleep_args(py_plan, "tasks"), py_plan.reps, 1)
        })
        .versus(TASKS),
    )
    .contender(
        Contender::peer("CPython ThreadPoolExecutor(100)", move |_| {
            let once = Plan::fixed(0, 1);
            py::times(&python2, &sleep_args(once, "threads100"), 1, 1)
        })
        .versus(TASKS),
    )
}

fn sleep_args(plan: Plan, mode: &str) -> Vec<String> {
    vec![
        "sleepers-time".into(),
        SLEEPERS.to_string(),
        NAP_MS.to_string(),
        plan.reps.to_string(),
        plan.warmup.to_string(),
        mode.into(),
    ]
}

fn spindle_sleepers(mode: Mode, plan: Plan, p: &Progress) -> Result<Measurement, NotMeasured> {
    let runner = Runner::new().map_err(failed)?;
    let nap = Duration::from_millis(NAP_MS);
    repeat_timed(plan, 1, p, || {
        let start = Instant::now();
        runner
            .run(sleepers(mode, SLEEPERS, nap))
            .map_err(|e| e.to_string())??;
        Ok(start.elapsed())
    })
}

/// In a fresh copy of this program (a spawned child): the peak resident memory that `n`
/// sleepers of `ms` add, in bytes (VmHWM after, reset to VmRSS just before). The loop exists
/// before the measure starts, as CPython's does in its peer.
fn added_peak(mode: String, n: u64, ms: u64) -> Result<u64, String> {
    let mode = match mode.as_str() {
        "tasks" => Mode::Tasks,
        "futures" => Mode::Futures,
        other => return Err(format!("unknown mode {other}")),
    };
    let runner = Runner::new().map_err(|e| e.to_string())?;
    runner
        .run(async move {
            let before = status_kib("VmRSS")?;
            std::fs::write("/proc/self/clear_refs", "5").map_err(|e| e.to_string())?;
            sleepers(mode, n, Duration::from_millis(ms)).await?;
            let peak = status_kib("VmHWM")?;
            Ok(peak.saturating_sub(before) * 1024)
        })
        .map_err(|e| e.to_string())?
}

fn status_kib(field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/self/status"))
}

fn spindle_memory(mode: Mode, samples: usize) -> Result<Measurement, NotMeasured> {
    let mut sizes = Vec::new();
    for _ in 0..samples {
        let child = get_context(StartMethod::Spawn)
            .process()
            .target(added_peak, (mode.name().to_string(), SLEEPERS, NAP_MS));
        child.start().map_err(failed)?;
        sizes.push(child.join().map_err(failed)?.map_err(NotMeasured::Failed)?);
    }
    Ok(Measurement::bytes(1, sizes))
}

fn sleepers_memory(opts: &Options) -> Group {
    let samples = opts.size(3, 5) as usize;
    let (py1, py2, py3) = (
        opts.python.clone(),
        opts.python.clone(),
        opts.python.clone(),
    );
    Group::new(
        "asyncio-memory",
        "10,000 concurrent tasks each sleeping 100 ms: added peak memory",
    )
    .unit(Unit::Bytes)
    .note(
        "In a fresh process (spindle: a spawned copy of this benchmark binary; CPython: a new \
         `python3`), with its loop running: VmRSS, then the peak is reset (`5 > \
         /proc/self/clear_refs`), 10,000 sleeps of 100 ms run at once, and the figure is VmHWM \
         minus that VmRSS. The aims: at most half of CPython's as tasks, at most a fifth of it \
         as plain futures under `gather` (polled in place, no task each). A tokio task for a \
         100 ms sleep costs about 450 bytes by itself (the issue's reference).",
    )
    .contender(Contender::subject(TASKS, move |_| {
        spindle_memory(Mode::Tasks, samples)
    }))
    .contender(Contender::subject(FUTURES, move |_| {
        spindle_memory(Mode::Futures, samples)
    }))
    .contender(
        Contender::peer("CPython asyncio: 10,000 tasks", move |_| {
            py::memory(&py1, SLEEPERS, NAP_MS, "tasks", samples)
        })
        .versus(TASKS)
        .aim(2.0, "at most half of CPython's"),
    )
    .contender(
        Contender::peer("CPython asyncio (vs plain futures)", move |_| {
            py::memory(&py2, SLEEPERS, NAP_MS, "tasks", samples)
        })
        .versus(FUTURES)
        .aim(5.0, "at most a fifth of CPython's"),
    )
    .contender(
        Contender::peer("CPython ThreadPoolExecutor(100)", move |_| {
            py::memory(&py3, SLEEPERS, NAP_MS, "threads100", 1)
        })
        .versus(TASKS),
    )
}

const GATHER_TASKS: &str = "spindle gather of tasks";
const GATHER_FUTURES: &str = "spindle gather of plain futures";

fn gather_trivial(opts: &Options) -> Group {
    let n: u64 = 100_000;
    let plan = opts.plan();
    let py_plan = Plan::fixed(1, plan.reps.min(5));
    let (python, python2) = (opts.python.clone(), opts.python.clone());
    Group::new("asyncio-gather", "gather of 100,000 trivial tasks")
        .note(format!(
            "One repetition gathers {} coroutines that each return their index, and checks the \
             sum; figures are per task. spindle: `create_task` each then `gather` (a tokio task \
             each), or the coroutines polled in place by `gather`. CPython: \
             `asyncio.gather(*(trivial(i) for i in range(n)))` (a task each). For reference, \
             tokio alone: `tokio::spawn` each on a current-thread runtime, then every \
             `JoinHandle` awaited in order (no spindle code). The aim: at least 20× CPython's \
             rate, with tasks.",
            thousands(n)
        ))
        .contender(Contender::subject(GATHER_TASKS, move |p| {
            spindle_gather(true, n, plan, &p)
        }))
        .contender(Contender::subject(GATHER_FUTURES, move |p| {
            spindle_gather(false, n, plan, &p)
        }))
        .contender(Contender::reference(
            "raw tokio::spawn, each JoinHandle awaited",
            move |p| raw_tokio(n, plan, &p),
        ))
        .contender(
            Contender::peer("CPython asyncio.gather", move |_| {
                let args = [
                    "gather".to_string(),
                    n.to_string(),
                    py_plan.reps.to_string(),
                    py_plan.warmup.to_string(),
                ];
                py::times(&python, &args, py_plan.reps, n)
            })
            .versus(GATHER_TASKS)
            .aim(20.0, "at least 20× CPython's rate"),
        )
        .contender(
            Contender::peer("CPython asyncio.gather (vs plain futures)", move |_| {
                let args = [
                    "gather".to_string(),
                    n.to_string(),
                    py_plan.reps.to_string(),
                    py_plan.warmup.to_string(),
                ];
                py::times(&python2, &args, py_plan.reps, n)
            })
            .versus(GATHER_FUTURES),
        )
}

fn spindle_gather(
    tasks: bool,
    n: u64,
    plan: Plan,
    p: &Progress,
) -> Result<Measurement, NotMeasured> {
    let runner = Runner::new().map_err(failed)?;
    let want = n * (n - 1) / 2;
    repeat_timed(plan, n, p, || {
        let (sum, took) = runner
            .run(async move {
                let start = Instant::now();
                let values: Vec<u64> = if tasks {
                    let ts = (0..n)
                        .map(|i| create_task(async move { i }))
                        .collect::<spindle::Result<Vec<_>>>()
                        .map_err(|e| e.to_string())?;
                    gather(ts).await.map_err(|e| e.to_string())?
                } else {
                    let coros = (0..n).map(|i| async move { Ok::<u64, Infallible>(i) });
                    gather(coros)
                        .await
                        .map_err(|e: Infallible| -> String { match e {} })?
                };
                Ok::<_, String>((values.iter().sum::<u64>(), start.elapsed()))
            })
            .map_err(|e| e.to_string())??;
        if sum != want {
            return Err(format!("wrong sum {sum}, expected {want}"));
        }
        Ok(took)
    })
}

/// tokio's own cost of a task, without spindle: spawn each, await each handle in order.
fn raw_tokio(n: u64, plan: Plan, p: &Progress) -> Result<Measurement, NotMeasured> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(failed)?;
    let want = n * (n - 1) / 2;
    repeat_timed(plan, n, p, || {
        let (sum, took) = rt.block_on(async move {
            let start = Instant::now();
            let handles: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
            let mut sum = 0u64;
            for h in handles {
                sum += h.await.map_err(|e| e.to_string())?;
            }
            Ok::<_, String>((sum, start.elapsed()))
        })?;
        if sum != want {
            return Err(format!("wrong sum {sum}, expected {want}"));
        }
        Ok(took)
    })
}

const RIE_THREADS: &str = "spindle run_in_executor (thread pool)";
const RIE_PROCS: &str = "spindle run_in_executor (process pool)";

fn executor_round_trip(opts: &Options) -> Group {
    let ops = opts.size(2_000, 10_000);
    let py_ops = opts.size(1_000, 2_000);
    let plan = opts.plan();
    let py_plan = Plan::fixed(1, plan.reps.min(5));
    let workers = opts.workers;
    let (py1, py2) = (opts.python.clone(), opts.python.clone());
    let py_args = move |kind: &str| {
        vec![
            "run-in-executor".to_string(),
            py_ops.to_string(),
            py_plan.reps.to_string(),
            py_plan.warmup.to_string(),
            workers.to_string(),
            kind.to_string(),
        ]
    };
    let (thread_args, process_args) = (py_args("thread"), py_args("process"));
    Group::new(
        "asyncio-run-in-executor",
        "one run_in_executor call's round trip",
    )
    .note(format!(
        "A coroutine awaits `run_in_executor(&pool, square, i)` {} times one after another \
             (CPython: `await loop.run_in_executor(pool, square, i)`, {} times), on a pool of \
             {workers} threads or {workers} fork worker processes; figures are per call. Beside \
             them, the pools' own round trip from a plain thread (`submit(square, i).result()`). \
             The aim: on the thread pool, at most 1.5× the pool's own round trip.",
        thousands(ops),
        thousands(py_ops)
    ))
    .contender(Contender::subject(RIE_THREADS, move |p| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(workers)
            .build()
            .map_err(failed)?;
        rie(&pool, ops, plan, &p)
    }))
    .contender(Contender::subject(RIE_PROCS, move |p| {
        let pool = process_pool(workers)?;
        rie(&pool, ops, plan, &p)
    }))
    .contender(
        Contender::peer("spindle ThreadPoolExecutor submit().result()", move |p| {
            let pool = ThreadPoolExecutor::builder()
                .max_workers(workers)
                .build()
                .map_err(failed)?;
            blocking(ops, plan, &p, |i| pool.submit(square, i)?.result())
        })
        .versus(RIE_THREADS)
        .aim(1.0 / 1.5, "at most 1.5× the thread pool's own round trip"),
    )
    .contender(
        Contender::peer("spindle ProcessPoolExecutor submit().result()", move |p| {
            let pool = process_pool(workers)?;
            blocking(ops, plan, &p, |i| pool.submit(square, i)?.result())
        })
        .versus(RIE_PROCS),
    )
    .contender(
        Contender::peer("CPython run_in_executor (ThreadPoolExecutor)", move |_| {
            py::times(&py1, &thread_args, py_plan.reps, py_ops)
        })
        .versus(RIE_THREADS),
    )
    .contender(
        Contender::peer("CPython run_in_executor (ProcessPoolExecutor)", move |_| {
            py::times(&py2, &process_args, py_plan.reps, py_ops)
        })
        .versus(RIE_PROCS),
    )
}

fn process_pool(workers: usize) -> Result<ProcessPoolExecutor, NotMeasured> {
    ProcessPoolExecutor::builder()
        .max_workers(workers)
        .start_method(StartMethod::Fork)
        .build()
        .map_err(failed)
}

fn rie<E>(pool: &E, ops: u64, plan: Plan, p: &Progress) -> Result<Measurement, NotMeasured>
where
    E: asyncio::StopTask + Sync,
{
    let runner = Runner::new().map_err(failed)?;
    repeat_timed(plan, ops, p, || {
        let start = Instant::now();
        let sum = runner
            .run(async {
                let mut sum = 0u64;
                for i in 0..ops {
                    sum = sum.wrapping_add(run_in_executor(pool, square, i).await?);
                }
                Ok::<_, spindle::Error>(sum)
            })
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let took = start.elapsed();
        check_sum(sum, ops)?;
        Ok(took)
    })
}

fn blocking(
    ops: u64,
    plan: Plan,
    p: &Progress,
    call: impl Fn(u64) -> spindle::Result<u64>,
) -> Result<Measurement, NotMeasured> {
    repeat_timed(plan, ops, p, || {
        let start = Instant::now();
        let mut sum = 0u64;
        for i in 0..ops {
            sum = sum.wrapping_add(call(i).map_err(|e| e.to_string())?);
        }
        let took = start.elapsed();
        check_sum(sum, ops)?;
        Ok(took)
    })
}
