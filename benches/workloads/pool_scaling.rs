//! Process and thread pools on long tasks (issue #12, rows e and f): a CPU-bound task of about
//! 100 ms run 8 times on 2 workers, against one after another; and the notes' I/O case, 50
//! tasks sleeping 0.2 s on 10 workers with the default chunking (ideal: 1.0 s).

use std::time::{Duration, Instant};

use spindle::multiprocessing::{dummy, Pool, StartMethod};

use crate::harness::{Measurement, Plan};
use crate::peers::cpython_pool;
use crate::scoreboard::{Contender, Group, NotMeasured, Options, Progress, Rule};
use crate::workloads::{failed, repeat};

const PROCESSES: &str = "spindle Pool (processes)";
const THREADS: &str = "spindle dummy::Pool (threads)";

/// The primes below `limit`, by trial division: CPU work with nothing to share.
fn count_primes(limit: u64) -> u64 {
    (2..limit)
        .filter(|&n| (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .count() as u64
}

/// The limit for which `count_primes` takes about 100 ms here, found once per run and shared
/// by every row of the group (rows calibrated apart would not run the same work).
fn shared_limit() -> u64 {
    static LIMIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| calibrate(Duration::from_millis(100)))
}

/// The limit for which `count_primes` takes about `target` here.
fn calibrate(target: Duration) -> u64 {
    let mut limit = 10_000u64;
    loop {
        let t0 = Instant::now();
        std::hint::black_box(count_primes(std::hint::black_box(limit)));
        let took = t0.elapsed();
        if took >= target / 4 {
            // Trial division grows a little faster than linearly; scale and stop.
            return (limit as f64 * target.as_secs_f64() / took.as_secs_f64()) as u64;
        }
        limit *= 2;
    }
}

/// Row e: 8 CPU-bound tasks of about 100 ms on 2 workers.
pub(crate) fn cpu_group(opts: &Options) -> Group {
    let tasks = 8u64;
    let w = opts.workers;
    let reps = opts.size(2, 5) as usize;
    let plan = Plan::fixed(1, reps);
    Group::new(
        "pool-cpu",
        &format!("pools on {tasks} CPU-bound tasks of about 100 ms, {w} workers"),
    )
    .note(format!(
        "Each task counts the primes below a limit calibrated to take about 100 ms here; \
         {tasks} tasks per repetition, figures per task (the limit is found once per run and \
         shared by every row). \"One after another\" runs them on the caller's thread. The aim is a speed-up of at least 1.9× on {w} workers, for threads \
         (no GIL in Rust) and for processes alike."
    ))
    .contender(Contender::subject(PROCESSES, move |p| {
        let limit = shared_limit();
        let pool = Pool::builder()
            .processes(w)
            .start_method(StartMethod::Fork)
            .build()
            .map_err(failed)?;
        run(plan, tasks, limit, p, |l| {
            pool.call().chunksize(1).map(count_primes, l)
        })
    }))
    .contender(Contender::subject(THREADS, move |p| {
        let limit = shared_limit();
        let pool = dummy::Pool::new(w).map_err(failed)?;
        run(plan, tasks, limit, p, |l| {
            pool.call().chunksize(1).map(count_primes, l)
        })
    }))
    .contender(
        Contender::peer("one after another (vs processes)", move |p| {
            let limit = shared_limit();
            run(plan, tasks, limit, p, |l| {
                Ok(l.into_iter().map(count_primes).collect())
            })
        })
        .versus(PROCESSES)
        .aim(1.9, "processes at least 1.9× faster than one after another"),
    )
    .contender(
        Contender::peer("one after another (vs threads)", move |p| {
            let limit = shared_limit();
            run(plan, tasks, limit, p, |l| {
                Ok(l.into_iter().map(count_primes).collect())
            })
        })
        .versus(THREADS)
        .aim(1.9, "threads at least 1.9× faster than one after another"),
    )
}

fn run(
    plan: Plan,
    tasks: u64,
    limit: u64,
    p: Progress,
    mut f: impl FnMut(Vec<u64>) -> spindle::Result<Vec<u64>>,
) -> Result<Measurement, NotMeasured> {
    let want = count_primes(limit);
    repeat(plan, tasks, &p, || {
        let got = f(vec![limit; tasks as usize]).map_err(|e| e.to_string())?;
        if got.iter().all(|v| *v == want) && got.len() == tasks as usize {
            Ok(())
        } else {
            Err(format!("wrong counts {got:?}, expected {want} each"))
        }
    })
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Row f: the notes' I/O case.
pub(crate) fn io_group(opts: &Options) -> Group {
    let reps = opts.size(2, 5) as usize;
    let plan = Plan::fixed(1, reps);
    let python = opts.python.clone();
    Group::new(
        "pool-io",
        "the notes' I/O case: 50 tasks sleeping 0.2 s on 10 workers",
    )
    .note(
        "`Pool(10).map(sleep 0.2 s, 50 items)` with each pool's default chunking; one figure per \
         whole map (ideal 1.0 s: 5 rounds). spindle's adaptive chunks send slow items alone; \
         CPython's rule makes chunks of ceil(50 / 40) = 2, which leaves three rounds of 0.4 s. \
         Fork workers in both.",
    )
    .contender(
        Contender::subject("spindle Pool.map, adaptive chunks", move |p| {
            let pool = Pool::builder()
                .processes(10)
                .start_method(StartMethod::Fork)
                .build()
                .map_err(failed)?;
            repeat(plan, 1, &p, || {
                let v = pool.map(nap, vec![200u64; 50]).map_err(|e| e.to_string())?;
                (v.len() == 50)
                    .then_some(())
                    .ok_or_else(|| "lost items".to_string())
            })
        })
        .aim_rule(Rule::AtMost(1.02), "within 2% of 1.0 s"),
    )
    .contender(Contender::peer(
        "CPython Pool.map, default chunksize",
        move |_| cpython_pool::times(&python, "io", "fork", &[reps as u64], reps, 1),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_and_counting() {
        assert_eq!(count_primes(30), 10);
        let limit = calibrate(Duration::from_millis(5));
        assert!(limit > 1000, "{limit}");
    }
}
