//! The memory of a 2-worker process pool (issue #12, row h): a fresh process's resident size
//! plus each worker's private memory, per start method, beside CPython's.

use std::time::Duration;

use spindle::multiprocessing::{bench, get_context, Pool, StartMethod};

use crate::harness::{Measurement, Unit};
use crate::peers::cpython_pool;
use crate::scoreboard::{Contender, Group, NotMeasured, Options};
use crate::workloads::failed;

fn pid_of(_: u64) -> u32 {
    std::process::id()
}

/// In a fresh copy of this program (a spawned child): builds a pool of 2 workers with
/// `method` (by its name), makes sure both run, and returns this process's resident size plus
/// the workers' private memory, in bytes.
fn pool_memory(method: String) -> Result<u64, String> {
    let method: StartMethod = method.parse().map_err(|e: spindle::Error| e.to_string())?;
    let pool = Pool::builder()
        .processes(2)
        .start_method(method)
        .build()
        .map_err(|e| e.to_string())?;
    pool.call()
        .chunksize(1)
        .map(pid_of, 0..8)
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(50));
    let statm = std::fs::read_to_string("/proc/self/statm").map_err(|e| e.to_string())?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or("malformed statm")?;
    let mut total = pages * 4096;
    for pid in pool.pids() {
        total += bench::private_rss(pid).map_err(|e| e.to_string())?;
    }
    Ok(total)
}

/// Row h.
pub(crate) fn group(opts: &Options) -> Group {
    let samples = opts.size(2, 3) as usize;
    let mut g = Group::new("pool-memory", "a 2-worker process pool's total memory")
        .unit(Unit::Bytes)
        .note(
            "In a fresh process (spindle: a spawned copy of this benchmark binary; CPython: a new \
             `python3`), a pool of 2 workers is built and runs 8 tiny tasks; then its resident \
             size (statm) plus each worker's private memory (Private_Clean + Private_Dirty of \
             smaps_rollup). The aim: at most a third of CPython's with the same start method.",
        );
    for method in [
        StartMethod::Fork,
        StartMethod::Forkserver,
        StartMethod::Spawn,
    ] {
        let subject = format!("spindle Pool(2) ({method})");
        let python = opts.python.clone();
        g = g
            .contender(Contender::subject(&subject, move |_| {
                let mut sizes = Vec::new();
                for _ in 0..samples {
                    let child = get_context(StartMethod::Spawn)
                        .process()
                        .target(pool_memory, (method.to_string(),));
                    child.start().map_err(failed)?;
                    sizes.push(child.join().map_err(failed)?.map_err(NotMeasured::Failed)?);
                }
                Ok::<_, NotMeasured>(Measurement::bytes(1, sizes))
            }))
            .contender(
                Contender::peer(&format!("CPython Pool(2) ({method})"), move |_| {
                    cpython_pool::memory(&python, method.as_str())
                })
                .versus(&subject)
                .aim(
                    3.0,
                    "at most a third of CPython's with the same start method",
                ),
            );
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::with_processes;

    #[test]
    fn a_fork_pool_measures_its_memory_in_a_fresh_process() {
        let bytes = with_processes(|| {
            let child = get_context(StartMethod::Spawn)
                .process()
                .target(pool_memory, ("fork".to_string(),));
            child.start().unwrap();
            child.join().unwrap().unwrap()
        });
        assert!(bytes > 1 << 20, "{bytes}");
    }
}
