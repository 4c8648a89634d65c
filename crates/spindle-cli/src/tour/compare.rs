//! The notes' "Multiprocessing vs Multithreading" table, measured: the same CPU-bound work
//! one task after another, on two threads and in two processes.
//!
//! The notes' table says threads run "on a single core (GIL bound)". That is CPython's GIL;
//! Rust has none, so threads run CPU-bound work in parallel too, and the choice between
//! threads and processes comes down to isolation and start-up cost.

use spindle::futures::ThreadPoolExecutor;
use spindle::multiprocessing::{self, StartMethod};

use super::{timed, Pace, Section, Timing};

pub(super) fn sections() -> Vec<Section> {
    vec![Section {
        title: "Multiprocessing vs Multithreading",
        claim: "Threads: single core (GIL bound), for I/O. Processes: multiple cores, for CPU-bound work. \
                Rust has no GIL: here both use every core.",
        source: Some("crates/spindle-cli/src/tour/compare.rs"),
        names: &[
            ("ThreadPoolExecutor(2).map(count_primes, ...)", "ThreadPoolExecutor::map"),
            ("Process(target=count_primes, args=(n,))", "Process::new(count_primes, (n,))"),
        ],
        run: cpu_bound,
    }]
}

/// The primes below `limit`, by trial division: pure CPU work with nothing to share.
fn count_primes(limit: u64) -> u64 {
    (2..limit)
        .filter(|&n| (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .count() as u64
}

fn cpu_bound(pace: &Pace) -> spindle::Result<Vec<Timing>> {
    // About 0.15 s of work per task in a release build (a tenth with --quick).
    let limit = pace.work(1_000_000.0);
    let tasks = 2;
    println!("{tasks} tasks, each counting the primes below {limit}:");

    let (expected, sequential) =
        timed(|| Ok((0..tasks).map(|_| count_primes(limit)).collect::<Vec<_>>()))?;
    println!("  {:<20}{expected:?}", "one after another:");

    let pool = ThreadPoolExecutor::builder().max_workers(tasks).build()?;
    let (on_threads, threads) = timed(|| {
        pool.map(count_primes, vec![limit; tasks])?
            .collect::<spindle::Result<Vec<_>>>()
    })?;
    println!("  {:<20}{on_threads:?}", format!("on {tasks} threads:"));

    let (in_processes, processes) = timed(|| {
        let ctx = multiprocessing::get_context(StartMethod::Forkserver);
        let children: Vec<_> = (0..tasks)
            .map(|_| ctx.process().target(count_primes, (limit,)))
            .collect();
        for p in &children {
            p.start()?;
        }
        children
            .iter()
            .map(|p| p.join())
            .collect::<spindle::Result<Vec<_>>>()
    })?;
    println!("  {:<20}{in_processes:?}", format!("in {tasks} processes:"));
    if on_threads != expected || in_processes != expected {
        return Err(spindle::Error::Protocol(
            "the parallel runs disagree with the sequential one".into(),
        ));
    }
    Ok(vec![
        Timing {
            label: format!("{tasks} threads"),
            measured: threads,
            compare: vec![("one after another", sequential)],
        },
        Timing {
            label: format!("{tasks} processes (forkserver)"),
            measured: processes,
            compare: vec![("one after another", sequential)],
        },
    ])
}
