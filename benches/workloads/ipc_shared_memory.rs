//! Shared memory: two worker processes filling and summing halves of a shared `Array<u64>`
//! (the seed's "workers summing slices"), beside `memcpy` and CPython's `SharedMemory`
//! (issue #13's scoreboard). First-touch page faults are measured apart from the bandwidth.

use std::time::Instant;

use spindle::multiprocessing::sharedctypes::Array;
use spindle::multiprocessing::synchronize::{Event, Semaphore};
use spindle::multiprocessing::Builder;

use crate::harness::{Measurement, Plan};
use crate::peers::{cpython, raw_ipc};
use crate::scoreboard::{Contender, Group, NotMeasured, Options, Progress};
use crate::workloads::repeat_timed;

const FILL_SUM: &str = "spindle Array, 2 workers: fill + sum";
const FIRST: &str = "spindle Array: first touch (fill of a fresh segment)";

/// The shared-memory group.
pub(crate) fn group(opts: &Options) -> Group {
    let mib = opts.size(64, 256);
    let py_mib = opts.size(16, 64);
    let plan = Plan {
        warmup: 1,
        reps: opts.size(3, 5) as usize,
        min_time: std::time::Duration::ZERO,
        max_reps: opts.size(3, 5) as usize,
    };
    let py_reps = opts.size(2, 3) as usize;
    let python = opts.python.clone();
    let cpy = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let (c1, c2) = (cpy.clone(), cpy);
    let (py1, py2) = (python.clone(), python);
    Group::new("ipc-shared-memory", "shared-memory fill-and-sum bandwidth")
        .note(format!(
            "An `Array<u64>` of {mib} MiB; figures are per MiB (MB/s = 1.05 / the figure in \
             µs). fill + sum: two forked workers, already running, each write their half and \
             then sum it, timed in each worker from the start signal to its sum (the slower \
             worker's time counts), pages already faulted (the array is filled once before, and each \
             worker calls `Array::populate` before the clock starts: a forked child shares the \
             pages but must fault its own page-table entries). first \
             touch: one process fills a fresh array (every page a fault), apart from the \
             bandwidth. memcpy: one thread copies {mib} MiB between two private, faulted \
             buffers (a read and a write per byte, as fill + sum). CPython: \
             `shared_memory.SharedMemory` of {py_mib} MiB filled by 1 MiB slice assignments \
             and summed with `sum(buf.cast(\"Q\"))`, one process."
        ))
        .contender(Contender::subject(FILL_SUM, move |p| fill_sum(mib, plan, p)))
        .contender(Contender::subject(FIRST, move |p| first_touch(mib, plan, p)))
        .contender(
            Contender::peer("memcpy (faulted)", move |p| memcpy(mib, plan, p))
                .versus(FILL_SUM)
                .aim(0.8, "fill-and-sum within 0.8× of memcpy bandwidth"),
        )
        .contender(
            Contender::peer("CPython SharedMemory fill + sum", move |_| {
                cpython_shm(&py1, py_mib, py_reps, &c1, &["fill_s", "sum_s"])
            })
            .versus(FILL_SUM),
        )
        .contender(
            Contender::peer("CPython SharedMemory first touch", move |_| {
                cpython_shm(&py2, py_mib, py_reps, &c2, &["first_touch_s"])
            })
            .versus(FIRST),
        )
}

/// Runs the CPython script once (shared by both CPython rows) and adds up `keys`.
fn cpython_shm(
    python: &str,
    mib: u64,
    reps: usize,
    cache: &std::sync::Mutex<Option<String>>,
    keys: &[&str],
) -> Result<Measurement, NotMeasured> {
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if cache.is_none() {
        let args = vec!["shm".to_string(), mib.to_string(), reps.to_string()];
        *cache = Some(cpython::ipc_raw(python, &args)?);
    }
    let out = cache.as_deref().unwrap_or("");
    let mut total: Option<Vec<std::time::Duration>> = None;
    for key in keys {
        let m = cpython::ipc_times(out, key, reps, mib)?;
        let crate::harness::Samples::Times(t) = m.samples else {
            return Err(NotMeasured::Failed("not times".into()));
        };
        total = Some(match total {
            None => t,
            Some(acc) => acc.iter().zip(t).map(|(a, b)| *a + b).collect(),
        });
    }
    Ok(Measurement::times(mib, total.unwrap_or_default()))
}

fn fill_sum(mib: u64, plan: Plan, p: Progress) -> Result<Measurement, NotMeasured> {
    let n = (mib << 20) as usize / 8;
    let mut arr = Array::<u64>::zeroed(n).map_err(crate::workloads::failed)?;
    arr.as_mut_slice().fill(1);
    let mut round = 0u64;
    repeat_timed(plan, mib, &p, || {
        round += 1;
        let go = Event::new().map_err(|e| e.to_string())?;
        let ready = Semaphore::new(0).map_err(|e| e.to_string())?;
        let mut workers = Vec::new();
        for half in 0..2 {
            let (mut mine, go, ready) = (
                arr.share().map_err(|e| e.to_string())?,
                go.clone(),
                ready.clone(),
            );
            let value = round;
            let w = Builder::new().fork_target(move || {
                // Page faults are measured apart (first touch): fault this process's view in
                // before the clock starts.
                let _ = mine.populate();
                let _ = ready.release();
                go.wait();
                let t0 = Instant::now();
                let slice = &mut mine.as_mut_slice()[half * n / 2..(half + 1) * n / 2];
                slice.fill(value);
                let sum = slice.iter().fold(0u64, |a, b| a.wrapping_add(*b));
                (sum, t0.elapsed())
            });
            w.start().map_err(|e| e.to_string())?;
            workers.push(w);
        }
        for _ in 0..2 {
            ready.acquire();
        }
        go.set();
        let mut sum = 0u64;
        let mut took = std::time::Duration::ZERO;
        for w in workers {
            let (s, t) = w.join().map_err(|e| e.to_string())?;
            sum = sum.wrapping_add(s);
            took = took.max(t);
        }
        if sum != (n as u64).wrapping_mul(round) {
            return Err(format!("the workers summed {sum}"));
        }
        Ok(took)
    })
}

fn first_touch(mib: u64, plan: Plan, p: Progress) -> Result<Measurement, NotMeasured> {
    let n = (mib << 20) as usize / 8;
    repeat_timed(plan, mib, &p, || {
        let mut arr = Array::<u64>::zeroed(n).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        arr.as_mut_slice().fill(3);
        let took = t0.elapsed();
        if arr.as_slice()[n - 1] != 3 {
            return Err("fill lost".into());
        }
        Ok(took)
    })
}

fn memcpy(mib: u64, plan: Plan, p: Progress) -> Result<Measurement, NotMeasured> {
    let len = (mib << 20) as usize;
    let src = vec![5u8; len];
    let mut dst = vec![0u8; len];
    dst.fill(1);
    repeat_timed(plan, mib, &p, || {
        let took = raw_ipc::memcpy(&mut dst, &src);
        if dst[len - 1] != 5 {
            return Err("memcpy lost".into());
        }
        Ok(took)
    })
}
