//! The notes' "asyncio → coroutines (I/O-heavy, many tasks)": the five downloads done with
//! coroutines on one thread, then 10,000 concurrent sleeping tasks as coroutines and as
//! threads, time and memory side by side, and when to pick which.

use std::time::{Duration, Instant};

use spindle::asyncio;
use spindle_examples::asyncio_downloads;

use super::{timed, Pace, Section, Timing};
use crate::style;

pub(super) fn sections() -> Vec<Section> {
    vec![
        Section {
            title: "asyncio: the downloads as coroutines",
            claim: "asyncio → coroutines (I/O-heavy, many tasks): 5 downloads that wait 2 s each, on one thread, take ~2 s, not 10.",
            source: Some("examples/asyncio_downloads.rs"),
            names: &[
                ("asyncio.run(main())", "spindle::asyncio::run(main())"),
                ("await asyncio.gather(*coros)", "asyncio::gather(coros).await"),
                ("await asyncio.sleep(2)", "asyncio::sleep(d).await"),
            ],
            run: |pace| {
                let (ids, measured) = timed(|| asyncio_downloads::run(pace.sleep(2.0)))?;
                if ids != [1, 2, 3, 4, 5] {
                    return Err(spindle::Error::Protocol(format!("wrong downloads {ids:?}")));
                }
                Ok(vec![Timing {
                    label: "measured (one thread)".into(),
                    measured,
                    compare: vec![
                        ("the notes say ~", pace.sleep(2.0)),
                        ("one after another", pace.sleep(10.0)),
                    ],
                }])
            },
        },
        Section {
            title: "asyncio: 10,000 sleeping tasks, coroutines vs threads",
            claim: "Coroutines for I/O-heavy work with many tasks; threads for a few blocking calls.",
            source: Some("crates/spindle-cli/src/tour/asyncio.rs"),
            names: &[
                ("asyncio.create_task(asyncio.sleep(0.1))", "asyncio::create_task(asyncio::sleep(d))?"),
                ("threading.Thread(target=time.sleep, args=(0.1,))", "std::thread::spawn(move || sleep(d))"),
            ],
            run: coroutines_vs_threads,
        },
    ]
}

const TASKS: usize = 10_000;

/// The peak resident memory `f` adds to this process: VmHWM after, reset to VmRSS just
/// before (`5 > /proc/self/clear_refs`). `None` where `/proc` does not say.
fn added_peak<T>(f: impl FnOnce() -> spindle::Result<T>) -> spindle::Result<(T, Option<u64>)> {
    let before = status_kib("VmRSS");
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let out = f()?;
    let added = match (before, status_kib("VmHWM"), reset) {
        (Some(b), Some(peak), true) => Some(peak.saturating_sub(b) * 1024),
        _ => None,
    };
    Ok((out, added))
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("n/a".into(), |b| {
        format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
    })
}

fn coroutines_vs_threads(pace: &Pace) -> spindle::Result<Vec<Timing>> {
    let nap = pace.sleep(0.1);
    // Coroutines: one loop thread, a tokio task each.
    let runner = asyncio::Runner::new()?;
    let ((), coro_mem) = added_peak(|| {
        runner.run(async {
            let tasks = (0..TASKS)
                .map(|_| asyncio::create_task(asyncio::sleep(nap)))
                .collect::<spindle::Result<Vec<_>>>()?;
            asyncio::gather(tasks).await.map(drop)
        })?
    })?;
    let start = Instant::now();
    runner.run(async {
        let tasks = (0..TASKS)
            .map(|_| asyncio::create_task(asyncio::sleep(nap)))
            .collect::<spindle::Result<Vec<_>>>()?;
        asyncio::gather(tasks).await.map(drop)
    })??;
    let coro_time = start.elapsed();

    // Threads: an OS thread each, as `threading.Thread` would start.
    let ((thread_time, started), thread_mem) = added_peak(|| Ok(sleeping_threads(nap)))?;
    println!("each task sleeps {}", style::secs(nap).trim());
    println!(
        "{TASKS} coroutines on one thread: {}, adding {} of memory at the peak",
        style::secs(coro_time).trim(),
        mib(coro_mem)
    );
    println!(
        "{started} threads: {}, adding {} of memory at the peak",
        style::secs(thread_time).trim(),
        mib(thread_mem)
    );
    println!(
        "{}",
        style::dim(
            "pick coroutines for many waits at once (sockets, timers, child processes), threads \
             for a few blocking calls that cannot be awaited (asyncio::to_thread), processes for \
             CPU-bound work (asyncio::run_in_executor on a ProcessPoolExecutor)"
        )
    );
    Ok(vec![
        Timing {
            label: format!("{TASKS} coroutines"),
            measured: coro_time,
            compare: vec![("one after another", nap * TASKS as u32)],
        },
        Timing {
            label: format!("{started} threads"),
            measured: thread_time,
            compare: vec![("one after another", nap * TASKS as u32)],
        },
    ])
}

/// Starts up to [`TASKS`] threads that each sleep `nap`, joins them, and returns the wall time
/// and how many started (a system limit may refuse some: then fewer ran, and it is said).
fn sleeping_threads(nap: Duration) -> (Duration, usize) {
    let start = Instant::now();
    let mut handles = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        match std::thread::Builder::new().spawn(move || std::thread::sleep(nap)) {
            Ok(h) => handles.push(h),
            Err(e) => {
                println!("  the system refused thread {}: {e}", handles.len() + 1);
                break;
            }
        }
    }
    let started = handles.len();
    for h in handles {
        let _ = h.join();
    }
    (start.elapsed(), started)
}
