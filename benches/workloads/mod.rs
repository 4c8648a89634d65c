//! The workloads on the board. Each file builds one [`Group`] of contenders; a later issue adds
//! its workload (`multiprocessing.Pool.map`, ...) as a new file and one line in [`all`].

use crate::harness::{measure, Measurement, Plan};
use crate::scoreboard::{Group, NotMeasured, Options, Progress};

mod asyncio;
mod ipc_lock;
mod ipc_pingpong;
mod ipc_shared_memory;
mod ipc_stream;
mod map;
mod pool_latency;
mod pool_map;
mod pool_memory;
mod pool_scaling;
mod process_memory;
pub(crate) mod process_start;
mod round_trip;

/// Every workload, in the order the board runs them. The process workloads go first: a fork
/// copies the parent's page tables, so its cost grows with the parent's memory, and the `map`
/// workload leaves the heap larger (a 1M-element run made both spindle's fork and the raw
/// fork ~1.1 ms instead of ~0.25 ms).
pub(crate) fn all(opts: &Options) -> Vec<Group> {
    let mut groups = vec![
        process_start::group(opts),
        process_memory::group(opts),
        pool_memory::group(opts),
        pool_latency::first_result_group(opts),
        pool_latency::round_trip_group(opts),
        pool_latency::kill_group(opts),
        pool_map::map_group(opts),
        pool_map::submit_group(opts),
        pool_scaling::cpu_group(opts),
        pool_scaling::io_group(opts),
    ];
    groups.extend(ipc_stream::groups(opts));
    groups.push(ipc_pingpong::group(opts));
    groups.push(ipc_shared_memory::group(opts));
    groups.push(ipc_lock::group(opts));
    groups.push(round_trip::group(opts));
    groups.push(map::group(opts));
    groups.extend(asyncio::groups(opts));
    groups
}

/// A contender that could not be set up, as a failed row.
pub(crate) fn failed(e: impl std::fmt::Display) -> NotMeasured {
    NotMeasured::Failed(e.to_string())
}

/// Measures one repetition `rep` of `ops` operations under `plan`, with progress dots; a
/// failing repetition makes a failed row.
pub(crate) fn repeat(
    plan: Plan,
    ops: u64,
    p: &Progress,
    rep: impl FnMut() -> Result<(), String>,
) -> Result<Measurement, NotMeasured> {
    measure(plan, ops, |i, t| p.rep(i, t), rep).map_err(NotMeasured::Failed)
}

/// Like [`repeat`], for a repetition that times itself (it returns the time of the part that
/// counts: an exchange between processes, not the forks that set it up). Runs `plan.warmup`
/// untimed, then at least `plan.reps` and, while their total is under `plan.min_time`, more
/// (at most `plan.max_reps`).
pub(crate) fn repeat_timed(
    plan: Plan,
    ops: u64,
    p: &Progress,
    mut rep: impl FnMut() -> Result<std::time::Duration, String>,
) -> Result<Measurement, NotMeasured> {
    for _ in 0..plan.warmup {
        rep().map_err(NotMeasured::Failed)?;
    }
    let mut times = Vec::new();
    let mut total = std::time::Duration::ZERO;
    while times.len() < plan.reps || (total < plan.min_time && times.len() < plan.max_reps) {
        let t = rep().map_err(NotMeasured::Failed)?;
        total += t;
        times.push(t);
        p.rep(times.len(), t);
    }
    Ok(Measurement::times(ops, times))
}

/// The empty task of the process workloads (Python's `def empty(): pass`).
pub(crate) fn empty() {}

/// For tests that start processes: one at a time (they measure starts and memory, which
/// other tests' children would disturb), under a watchdog that fails the test instead of
/// letting it hang. Fork safety itself is the library's business: a fork start installs the
/// panic hook and holds spindle's locks across `fork()` (docs/decisions.md, D18).
#[cfg(test)]
pub(crate) fn with_processes<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    use std::sync::Mutex;
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (tx, rx) = crossbeam_channel::bounded(1);
    let runner = std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(out) => out,
        // The body panicked (its sender went away unused): fail with its message.
        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(runner.join().expect_err("the body did not send"))
        }
        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
            panic!("watchdog: a process test did not finish within 60 s")
        }
    }
}

/// The tiny task every thread-pool workload runs.
///
/// Its input goes through [`std::hint::black_box`], so that no contender's loop over it is
/// vectorised or folded into a closed form by the compiler: a task is opaque work, and the
/// board measures what it costs a pool to run one, not what LLVM can do with a multiply.
pub(crate) fn square(x: u64) -> u64 {
    let x = std::hint::black_box(x);
    x.wrapping_mul(x)
}

/// The sum of `square(i)` for `i` in `0..n`, wrapping like the contenders' sums; each
/// repetition checks its result against it, so no contender can skip work.
pub(crate) fn expected_sum(n: u64) -> u64 {
    let n = u128::from(n);
    let exact = n.saturating_sub(1) * n * (2 * n).saturating_sub(1) / 6;
    exact as u64
}

/// The error of a repetition whose sum is wrong.
pub(crate) fn check_sum(got: u64, n: u64) -> Result<(), String> {
    let want = expected_sum(n);
    if got == want {
        Ok(())
    } else {
        Err(format!("wrong sum of squares: {got}, expected {want}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoreboard::{Role, Rule};

    #[test]
    fn expected_sum_matches_a_loop() {
        for n in [0u64, 1, 2, 3, 10, 1000, 100_000] {
            let looped = (0..n).fold(0u64, |acc, i| acc.wrapping_add(square(i)));
            assert_eq!(expected_sum(n), looped, "n = {n}");
        }
    }

    #[test]
    fn check_sum_rejects_a_wrong_sum() {
        assert!(check_sum(expected_sum(10), 10).is_ok());
        assert!(check_sum(expected_sum(10) + 1, 10).is_err());
    }

    #[test]
    fn every_workload_starts_with_a_subject_and_its_aims_name_rows_it_has() {
        for quick in [true, false] {
            let opts = Options {
                quick,
                progress: false,
                ..Options::default()
            };
            let groups = all(&opts);
            assert!(!groups.is_empty());
            for g in &groups {
                assert_eq!(g.contenders[0].role(), Role::Subject, "{}", g.id);
                let subjects: Vec<&str> = g
                    .contenders
                    .iter()
                    .filter(|c| c.role() == Role::Subject)
                    .map(|c| c.name())
                    .collect();
                let mut names: Vec<&str> = g.contenders.iter().map(|c| c.name()).collect();
                for c in &g.contenders {
                    // With several subjects, each peer names the one it is compared with.
                    match (c.role(), c.versus_name()) {
                        (Role::Peer, Some(s)) => assert!(subjects.contains(&s), "{}", c.name()),
                        (Role::Peer, None) => assert_eq!(subjects.len(), 1, "{}", c.name()),
                        (_, v) => assert_eq!(v, None, "{}", c.name()),
                    }
                    match c.aim_of().map(|a| &a.rule) {
                        Some(Rule::MinSpeedup(_)) => assert_eq!(c.role(), Role::Peer),
                        Some(Rule::AtMostSumOf(parts)) => {
                            for part in parts {
                                assert!(names.contains(&part.as_str()), "{part}");
                            }
                        }
                        Some(Rule::AtMost(_)) | None => {}
                    }
                }
                names.sort_unstable();
                names.dedup();
                assert_eq!(names.len(), g.contenders.len(), "{}", g.id);
            }
        }
    }

    #[test]
    fn the_process_workloads_are_on_the_board_with_their_aims() {
        let groups = all(&Options::default());
        let starts = groups.iter().find(|g| g.id == "process-start").unwrap();
        let aimed: Vec<&str> = starts
            .contenders
            .iter()
            .filter(|c| c.aim_of().is_some())
            .map(|c| c.name())
            .collect();
        assert_eq!(
            aimed,
            [
                "raw fork+waitpid",
                "CPython fork",
                "raw posix_spawn+waitpid",
                "CPython spawn",
                "spindle forkserver",
                "CPython forkserver",
                "spindle forkserver, spare ready"
            ]
        );
        let memory = groups.iter().find(|g| g.id == "process-memory").unwrap();
        assert_eq!(memory.unit, crate::harness::Unit::Bytes);
    }

    #[test]
    fn the_ipc_workloads_are_on_the_board_with_their_aims() {
        let groups = all(&Options::default());
        let aims = |id: &str| -> Vec<String> {
            let g = groups.iter().find(|g| g.id == id).unwrap();
            g.contenders
                .iter()
                .filter(|c| c.aim_of().is_some())
                .map(|c| c.name().to_string())
                .collect()
        };
        assert_eq!(aims("ipc-stream-64B"), ["CPython Queue 1→1"]);
        assert_eq!(aims("ipc-stream-1MiB"), ["raw socketpair 1→1"]);
        assert_eq!(
            aims("ipc-pingpong"),
            ["futex handshake (raw)", "CPython Pipe"]
        );
        assert_eq!(aims("ipc-shared-memory"), ["memcpy (faulted)"]);
        assert_eq!(
            aims("ipc-lock"),
            ["robust pthread mutex (raw)", "CPython Value under its lock"]
        );
    }

    #[test]
    fn the_raw_ipc_limits_run_and_check_themselves() {
        with_processes(|| {
            use crate::peers::raw_ipc;
            assert!(raw_ipc::socketpair_stream(64, 1000).is_ok());
            assert!(raw_ipc::socketpair_pingpong(100).is_ok());
            assert!(raw_ipc::futex_pingpong(100).is_ok());
            assert!(raw_ipc::robust_mutex_counter(1000).is_ok());
            let (mut dst, src) = (vec![0u8; 4096], vec![3u8; 4096]);
            raw_ipc::memcpy(&mut dst, &src);
            assert_eq!(dst, src);
        });
    }
}
