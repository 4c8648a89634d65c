//! The notes' "Example: Pool", run live per start method, and their table "Multiprocessing
//! vs Multithreading" with every cell measured on this machine beside the notes' words.
//!
//! The cells: on CPU-bound work, how many cores threads and processes keep busy (CPU time of
//! the workers over wall time, from `/proc/PID/task/*/schedstat`); on I/O-bound work,
//! how long ten 0.2 s waits take on ten threads and on ten processes; the memory one more
//! thread adds to a process against the private memory of one more worker process; and what
//! starting a thread costs against starting a process.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use spindle::multiprocessing::{self, bench, dummy, Pool, StartMethod};
use spindle_examples::pool as example;

use super::{timed, Pace, Section, Timing};
use crate::style;

pub(super) fn sections() -> Vec<Section> {
    vec![
        Section {
            title: "Example: Pool",
            claim: "5 tasks handled by 3 workers → finishes faster (two rounds of 1 s: about 2 s, not 5 s).",
            source: Some("examples/pool.rs"),
            names: &[
                ("multiprocessing.Pool(processes=3)", "Pool::builder().processes(3).build()"),
                ("pool.map(square, numbers)", "pool.map(square, numbers)"),
                ("multiprocessing.dummy.Pool", "spindle::multiprocessing::dummy::Pool"),
            ],
            run: example_pool,
        },
        Section {
            title: "Multiprocessing vs Multithreading",
            claim: "Threads: single core (GIL bound), I/O-bound tasks, shared memory, low overhead. \
                    Processes: multiple cores, CPU-bound tasks, separate memory, higher overhead.",
            source: Some("crates/spindle-cli/src/tour/pool.rs"),
            names: &[
                ("multiprocessing.dummy.Pool(n).map(f, ...)", "dummy::Pool::new(n)?.map(f, ...)"),
                ("multiprocessing.Pool(n).map(f, ...)", "Pool::new(n)?.map(f, ...)"),
            ],
            run: table,
        },
    ]
}

fn example_pool(pace: &Pace) -> spindle::Result<Vec<Timing>> {
    let pause = pace.sleep(1.0);
    let mut timings = Vec::new();
    for method in StartMethod::ALL {
        println!("{}", style::dim(&format!("  [start method: {method}]")));
        match timed(|| example::run(method, pause)) {
            Ok((squares, took)) => {
                if squares != [1, 4, 9, 16, 25] {
                    return Err(spindle::Error::Protocol(format!(
                        "wrong squares {squares:?}"
                    )));
                }
                timings.push(Timing {
                    label: format!("measured ({method})"),
                    measured: took,
                    compare: vec![
                        ("2 rounds of the sleep", pace.sleep(2.0)),
                        ("one after another", pace.sleep(5.0)),
                    ],
                });
            }
            Err(e) => println!("  not available in this build: {e}"),
        }
    }
    Ok(timings)
}

/// The primes below `limit`, by trial division: CPU work with nothing to share.
fn count_primes(limit: u64) -> u64 {
    (2..limit)
        .filter(|&n| (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .count() as u64
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn empty() {}

/// The CPU time of every thread of a process (or of this one), in seconds: the first field of
/// each `/proc/PID/task/TID/schedstat`, in nanoseconds. (The clock ticks of `/proc/PID/stat`
/// count in hundredths of a second, too coarse for the few milliseconds of `--quick`.)
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let dir = match pid {
        Some(p) => format!("/proc/{p}/task"),
        None => "/proc/self/task".to_string(),
    };
    let Ok(tasks) = std::fs::read_dir(dir) else {
        return 0.0;
    };
    let ns: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

/// This process's private memory (Private_Clean + Private_Dirty).
fn own_private() -> u64 {
    bench::private_rss(std::process::id()).unwrap_or(0)
}

fn table(pace: &Pace) -> spindle::Result<Vec<Timing>> {
    let n = multiprocessing::cpu_count().max(2);
    // CPU-bound: n tasks of about 0.15 s each (a tenth with --quick).
    let limit = pace.work(1_000_000.0).max(20_000);
    let (_, sequential) = timed(|| Ok((0..n).map(|_| count_primes(limit)).collect::<Vec<_>>()))?;
    let threads = dummy::Pool::new(n)?;
    let before = cpu_seconds(None);
    let (_, on_threads) = timed(|| {
        threads
            .call()
            .chunksize(1)
            .map(count_primes, vec![limit; n])
    })?;
    let thread_cores = (cpu_seconds(None) - before) / on_threads.as_secs_f64();
    drop(threads);
    let procs = Pool::builder()
        .processes(n)
        .start_method(StartMethod::Fork)
        .build()?;
    procs.map(empty_u64, 0..n as u64)?;
    let pids = procs.pids();
    let before: f64 = pids.iter().map(|p| cpu_seconds(Some(*p))).sum();
    let (_, in_procs) = timed(|| procs.call().chunksize(1).map(count_primes, vec![limit; n]))?;
    let proc_cores =
        (pids.iter().map(|p| cpu_seconds(Some(*p))).sum::<f64>() - before) / in_procs.as_secs_f64();
    drop(procs);

    // I/O-bound: ten waits of 0.2 s.
    let wait_ms = pace.sleep(0.2).as_millis() as u64;
    let threads = dummy::Pool::new(10)?;
    let (_, io_threads) = timed(|| threads.call().chunksize(1).map(sleep_ms, vec![wait_ms; 10]))?;
    drop(threads);
    let ten = Pool::builder()
        .processes(10)
        .start_method(StartMethod::Fork)
        .build()?;
    let (_, io_procs) = timed(|| ten.call().chunksize(1).map(sleep_ms, vec![wait_ms; 10]))?;
    let ten_pids = ten.pids();

    // Memory: one more thread (16 idle threads, averaged) against one more worker process.
    let base = own_private();
    let gate = Arc::new(Barrier::new(17));
    let idle: Vec<_> = (0..16)
        .map(|_| {
            let g = Arc::clone(&gate);
            std::thread::spawn(move || {
                g.wait();
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let per_thread = own_private().saturating_sub(base) / 16;
    gate.wait();
    idle.into_iter().for_each(|t| {
        let _ = t.join();
    });
    let per_worker = ten_pids
        .iter()
        .filter_map(|p| bench::private_rss(*p).ok())
        .sum::<u64>()
        / ten_pids.len().max(1) as u64;
    drop(ten);

    // Overhead: starting (and joining) a thread against a process.
    let (_, t) = timed(|| {
        for _ in 0..200 {
            let _ = std::thread::spawn(empty).join();
        }
        Ok(())
    })?;
    let thread_start = t / 200;
    let mut starts = Vec::new();
    for method in StartMethod::ALL {
        let ctx = multiprocessing::get_context(method);
        let warm = ctx.process().target(empty, ());
        warm.start()?;
        warm.join()?;
        let (_, t) = timed(|| {
            for _ in 0..20 {
                let p = ctx.process().target(empty, ());
                p.start()?;
                p.join()?;
            }
            Ok(())
        })?;
        starts.push(format!("{} ({method})", micros(t / 20)));
    }

    let kib = |b: u64| format!("{} KiB", b / 1024);
    let rows = [
        (
            "Runs on",
            "Single core (GIL bound)",
            format!("{thread_cores:.2} of {n} cores busy"),
            "Multiple cores",
            format!("{proc_cores:.2} of {n} cores busy"),
        ),
        (
            "Best for",
            "I/O-bound tasks",
            format!("10 waits of {wait_ms} ms: {}", secs(io_threads)),
            "CPU-bound tasks",
            format!("10 waits of {wait_ms} ms: {}", secs(io_procs)),
        ),
        (
            "Memory",
            "Shared",
            format!("+{} per thread", kib(per_thread)),
            "Separate per process",
            format!("+{} per worker (fork)", kib(per_worker)),
        ),
        (
            "Overhead",
            "Low",
            format!("{} per thread start", micros(thread_start)),
            "Higher (process start cost)",
            starts.join(", "),
        ),
    ];
    println!(
        "  {:<9} {:<24} {:<28} {:<28} measured: processes",
        "", "notes: threads", "measured: threads", "notes: processes"
    );
    for (feature, nt, mt, np, mp) in &rows {
        println!(
            "  {feature:<9} {nt:<24} {:<28} {np:<28} {}",
            style::good(mt),
            style::good(mp)
        );
    }
    println!();
    println!(
        "  {} threads kept {thread_cores:.2} cores busy on CPU-bound work: the notes' \
         \"single core (GIL bound)\" is CPython's GIL, not a property of threads. Rust threads \
         run in parallel; processes add isolation (a crash stays in its worker), not speed.",
        style::note("the notes are wrong here:")
    );
    Ok(vec![
        Timing {
            label: format!("CPU-bound on {n} threads"),
            measured: on_threads,
            compare: vec![("one after another", sequential)],
        },
        Timing {
            label: format!("CPU-bound in {n} processes"),
            measured: in_procs,
            compare: vec![("one after another", sequential)],
        },
        Timing {
            label: "I/O-bound on 10 threads".into(),
            measured: io_threads,
            compare: vec![
                ("one wait", pace.sleep(0.2)),
                ("one after another", pace.sleep(2.0)),
            ],
        },
        Timing {
            label: "I/O-bound in 10 processes".into(),
            measured: io_procs,
            compare: vec![
                ("one wait", pace.sleep(0.2)),
                ("one after another", pace.sleep(2.0)),
            ],
        },
    ])
}

fn empty_u64(x: u64) -> u64 {
    x
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}
