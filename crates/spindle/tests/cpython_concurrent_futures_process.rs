//! CPython's `Lib/test/test_concurrent_futures/` (3.13: `test_process_pool.py`,
//! `test_deadlock.py`, `test_shutdown.py`'s `ProcessPoolShutdownTest`, `test_init.py`,
//! `executor.py`), ported to `spindle::futures::ProcessPoolExecutor`. Its own binary: these
//! tests fork and kill processes. They run under the fork start method (the cheapest; the
//! suites of `pool_executor.rs` cover spawn and forkserver), one at a time.
//!
//! Ported (CPython test -> Rust test):
//!
//! * `ExecutorTest.test_submit`, `test_map`, `ProcessPoolExecutorTest.test_map_chunksize`
//!   -> `submit_map_and_chunksize`
//! * `ExecutorTest.test_map_exception` -> `map_exception_at_its_position`
//! * `ExecutorTest.test_map_timeout` -> `map_timeout`
//! * `ExecutorTest.test_max_workers_negative` -> `max_workers_zero`
//! * `ProcessPoolExecutorTest.test_killed_child` -> `killed_child_fails_only_its_task`
//!   (deliberate difference: CPython breaks the whole pool)
//! * `ProcessPoolExecutorTest.test_traceback` -> `traceback_reaches_the_caller`
//! * `ProcessPoolExecutorTest.test_saturation` -> `saturation`
//! * `ProcessPoolExecutorTest.test_max_tasks_per_child` -> `max_tasks_per_child`
//! * `ProcessPoolExecutorTest.test_max_tasks_early_shutdown` -> `max_tasks_early_shutdown`
//! * `ExecutorShutdownTest.test_run_after_shutdown`, `test_hang_issue12364` -> `shutdown_waits_then_refuses`
//! * `ExecutorShutdownTest.test_cancel_futures` -> `shutdown_cancel_futures`
//! * `ProcessPoolShutdownTest.test_processes_terminate` -> `processes_terminate_at_shutdown`
//! * `ProcessPoolShutdownTest.test_context_manager_shutdown`, `test_del_shutdown`,
//!   `test_shutdown_no_wait` -> `drop_and_shutdown_no_wait`
//! * `ExecutorDeadlockTest.test_error_at_task_pickle` -> `deadlock_error_at_task_pickle`
//! * `ExecutorDeadlockTest.test_exit_at_task_unpickle`, `test_crash_at_task_unpickle`,
//!   `test_error_at_task_unpickle` -> `deadlock_faults_at_task_unpickle`
//! * `ExecutorDeadlockTest.test_crash_during_func_exec_on_worker`,
//!   `test_exit_during_func_exec_on_worker`, `test_error_during_func_exec_on_worker` ->
//!   `deadlock_faults_during_func_exec`
//! * `ExecutorDeadlockTest.test_crash_during_result_pickle_on_worker`,
//!   `test_exit_during_result_pickle_on_worker`, `test_error_during_result_pickle_on_worker`,
//!   `test_error_during_result_unpickle_in_result_handler` -> `deadlock_faults_around_the_result`
//! * `ExecutorDeadlockTest.test_shutdown_deadlock` -> `deadlock_crash_after_shutdown`
//! * `ExecutorDeadlockTest.test_crash_big_data` -> `deadlock_crash_with_big_data`
//! * `InitializerMixin.test_initializer` -> `initializer_runs_in_every_worker`
//! * `FailingInitializerMixin.test_initializer` -> `failing_initializer_fails_every_task`
//!
//! Not ported: the `Manager`-based and GC tests (no managers, no GC), the interpreter-exit
//! tests, `test_max_tasks_per_child_defaults_to_spawn_context` (spindle keeps the chosen
//! start method: its fork workers are replaced safely, decisions D84).

use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use spindle::futures::{as_completed, MapOptions, ProcessPoolExecutor};
use spindle::multiprocessing::StartMethod;
use spindle::{Error, TaskError};

mod common;
use common::{eventually, running, serial_watchdog};

#[path = "common/pool.rs"]
#[macro_use]
mod pool_common;
use pool_common::Scratch;

const LONG: Duration = Duration::from_secs(20);

fn ex(n: usize) -> ProcessPoolExecutor {
    ProcessPoolExecutor::builder()
        .max_workers(n)
        .start_method(StartMethod::Fork)
        .build()
        .unwrap()
}

fn pow((b, e): (u64, u32)) -> u64 {
    b.pow(e)
}

fn divmod((a, b): (u32, u32)) -> (u32, u32) {
    (a / b, a % b)
}

fn my_pid(_: u64) -> u32 {
    std::process::id()
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Waits (at most 20 s) until the file `path` exists; an empty path returns at once.
fn wait_for_file(path: String) -> bool {
    path.is_empty() || eventually(LONG, || std::path::Path::new(&path).exists())
}

fn mul((a, b): (u64, u64)) -> u64 {
    a * b
}

fn raise_runtime_error(_: ()) -> u32 {
    panic!("RuntimeError(123)") // some comment
}

fn abort(_: ()) -> u32 {
    std::process::abort()
}

fn exit_with(code: i32) -> u32 {
    std::process::exit(code)
}

fn crash_after(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::abort()
}

fn crash_with_data(data: String) -> usize {
    if data.len() > 1 {
        std::process::abort();
    }
    data.len()
}

/// A value whose encoding or decoding fails on purpose, in the process that does it:
/// `Serialize` for a task's argument runs in the caller, for its result in the worker;
/// `Deserialize` the other way round.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bomb {
    /// Harmless.
    Fine,
    /// `Serialize` returns an error.
    ErrorAtPickle,
    /// `Serialize` aborts the process.
    CrashAtPickle,
    /// `Serialize` exits the process.
    ExitAtPickle,
    /// `Deserialize` returns an error.
    ErrorAtUnpickle,
    /// `Deserialize` aborts the process.
    CrashAtUnpickle,
    /// `Deserialize` exits the process.
    ExitAtUnpickle,
}

impl Serialize for Bomb {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Bomb::ErrorAtPickle => Err(serde::ser::Error::custom("error at pickle")),
            Bomb::CrashAtPickle => std::process::abort(),
            Bomb::ExitAtPickle => std::process::exit(7),
            other => s.serialize_u8(*other as u8),
        }
    }
}

impl<'de> Deserialize<'de> for Bomb {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bomb, D::Error> {
        match u8::deserialize(d)? {
            0 => Ok(Bomb::Fine),
            4 => Err(serde::de::Error::custom("error at unpickle")),
            5 => std::process::abort(),
            6 => std::process::exit(7),
            n => Err(serde::de::Error::custom(format!("unknown bomb {n}"))),
        }
    }
}

fn id(b: Bomb) -> u32 {
    let _ = b;
    0
}

/// Bombs of a kind that `Deserialize` sees (the unit variants encode as their index).
fn bomb_from_index(i: u8) -> Bomb {
    [
        Bomb::Fine,
        Bomb::ErrorAtPickle,
        Bomb::CrashAtPickle,
        Bomb::ExitAtPickle,
        Bomb::ErrorAtUnpickle,
        Bomb::CrashAtUnpickle,
        Bomb::ExitAtUnpickle,
    ][i as usize]
}

fn task_error(r: spindle::Result<impl std::fmt::Debug>) -> TaskError {
    match r {
        Err(Error::Task(t)) => t,
        other => panic!("expected a task error, got {other:?}"),
    }
}

#[test]
fn submit_map_and_chunksize() {
    serial_watchdog(|| {
        let e = ex(2);
        assert_eq!(e.submit(pow, (2, 8)).unwrap().result().unwrap(), 256);
        assert_eq!(e.submit(mul, (2, 8)).unwrap().result().unwrap(), 16);
        let args: Vec<(u64, u32)> = (0..40).map(|i| (i, i as u32 % 5)).collect();
        let want: Vec<u64> = args.iter().map(|&a| pow(a)).collect();
        let got: Vec<u64> = e
            .map(pow, args.clone())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, want);
        for chunk in [6, 50, 40] {
            let got: Vec<u64> = e
                .map_with(pow, args.clone(), MapOptions::new().chunksize(chunk))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(got, want, "chunksize {chunk}");
        }
        assert!(matches!(
            e.map_with(pow, args, MapOptions::new().chunksize(0)),
            Err(Error::InvalidArgument(_))
        ));
    });
}

#[test]
fn map_exception_at_its_position() {
    serial_watchdog(|| {
        let e = ex(2);
        let mut it = e.map(divmod, [(1, 2), (1, 3), (1, 0), (1, 5)]).unwrap();
        assert_eq!(it.next().unwrap().unwrap(), (0, 1));
        assert_eq!(it.next().unwrap().unwrap(), (0, 1));
        assert!(task_error(it.next().unwrap()).is_panic());
        assert_eq!(it.next().unwrap().unwrap(), (0, 1));
        assert!(it.next().is_none());
    });
}

#[test]
fn map_timeout() {
    serial_watchdog(|| {
        let dir = Scratch::new("cf-timeout");
        let e = ex(2);
        let never = format!("{}/go", dir.path());
        let t0 = Instant::now();
        let got: Vec<spindle::Result<bool>> = e
            .map_with(
                wait_for_file,
                [String::new(), String::new(), never.clone()],
                MapOptions::new()
                    .chunksize(1)
                    .timeout(Duration::from_millis(200)),
            )
            .unwrap()
            .collect();
        assert!(t0.elapsed() >= Duration::from_millis(200));
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(matches!(got[0], Ok(true)) && matches!(got[1], Ok(true)));
        assert!(matches!(got[2], Err(Error::Timeout)));
        // The item still runs (a running task is not stopped); let it end before the
        // executor's drop waits for it.
        std::fs::write(&never, b"").unwrap();
        drop(e);
    });
}

#[test]
fn max_workers_zero() {
    let e = ProcessPoolExecutor::builder()
        .max_workers(0)
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
}

#[test]
fn killed_child_fails_only_its_task() {
    serial_watchdog(|| {
        let e = ex(1);
        let pid = e.submit(my_pid, 0).unwrap().result().unwrap();
        let f = e.submit(sleep_ms, 10_000).unwrap();
        assert!(eventually(LONG, || f.running()));
        // `p.terminate()`.
        unsafe_free_kill(pid, "TERM");
        let err = task_error(f.result());
        assert!(err.is_worker_died(), "{err}");
        assert_eq!(err.exitcode(), Some(-15));
        // Unlike CPython (BrokenProcessPool), the pool serves the next task.
        assert_eq!(e.submit(pow, (2, 8)).unwrap().result().unwrap(), 256);
    });
}

/// Sends a signal with the `kill` program, so this test file needs no `unsafe`.
fn unsafe_free_kill(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn traceback_reaches_the_caller() {
    serial_watchdog(|| {
        let e = ex(1);
        let err = task_error(e.submit(raise_runtime_error, ()).unwrap().result());
        assert!(err.is_panic());
        assert_eq!(err.panic_message(), Some("RuntimeError(123)"));
        let report = err.panic().unwrap();
        assert!(
            report
                .location()
                .is_some_and(|l| l.contains("cpython_concurrent_futures_process.rs")),
            "{report:?}"
        );
        assert!(err.pid().is_some_and(|p| p != std::process::id()));
    });
}

#[test]
fn saturation() {
    serial_watchdog(|| {
        let e = ex(2);
        let fs: Vec<_> = (0..30).map(|_| e.submit(my_pid, 0).unwrap()).collect();
        let mut pids: Vec<u32> = fs.into_iter().map(|f| f.result().unwrap()).collect();
        pids.sort();
        pids.dedup();
        assert!(pids.len() <= 2, "{pids:?}");
        assert_eq!(e.pids().len(), 2);
    });
}

#[test]
fn max_tasks_per_child() {
    serial_watchdog(|| {
        let e = ProcessPoolExecutor::builder()
            .max_workers(1)
            .start_method(StartMethod::Fork)
            .max_tasks_per_child(3)
            .build()
            .unwrap();
        let original = e.submit(my_pid, 0).unwrap().result().unwrap();
        assert_eq!(e.submit(my_pid, 0).unwrap().result().unwrap(), original);
        assert_eq!(e.pids().len(), 1);
        assert_eq!(e.submit(my_pid, 0).unwrap().result().unwrap(), original);
        let new = e.submit(my_pid, 0).unwrap().result().unwrap();
        assert_ne!(new, original, "a fresh worker after three tasks");
        // The replacement may start while the old worker is still exiting.
        assert!(eventually(LONG, || e.pids() == [new]), "{:?}", e.pids());
        assert!(
            eventually(LONG, || !running(original)),
            "the old worker was reaped"
        );
    });
}

#[test]
fn max_tasks_early_shutdown() {
    serial_watchdog(|| {
        let e = ProcessPoolExecutor::builder()
            .max_workers(3)
            .start_method(StartMethod::Fork)
            .max_tasks_per_child(1)
            .build()
            .unwrap();
        let fs: Vec<_> = (0..6u64).map(|i| e.submit(mul, (i, i)).unwrap()).collect();
        e.shutdown(true, false);
        for (i, f) in (0..6u64).zip(fs) {
            assert_eq!(f.result().unwrap(), i * i);
        }
    });
}

#[test]
fn shutdown_waits_then_refuses() {
    serial_watchdog(|| {
        let e = ex(2);
        let fs: Vec<_> = (0..50).map(|_| e.submit(sleep_ms, 1).unwrap()).collect();
        e.shutdown(true, false);
        for f in fs {
            assert!(f.done());
            assert_eq!(f.result().unwrap(), 1);
        }
        assert!(matches!(e.submit(pow, (2, 5)), Err(Error::Shutdown)));
        e.shutdown(true, true); // idempotent
    });
}

#[test]
fn shutdown_cancel_futures() {
    serial_watchdog(|| {
        let e = ex(2);
        let fs: Vec<_> = (0..50).map(|_| e.submit(sleep_ms, 20).unwrap()).collect();
        // CPython's own queue has started some tasks by now; here, wait until one runs.
        assert!(eventually(LONG, || fs.iter().any(|f| f.running())));
        e.shutdown(true, true);
        let cancelled = fs.iter().filter(|f| f.cancelled()).count();
        assert!(cancelled > 20, "{cancelled} cancelled");
        let others: Vec<_> = fs.into_iter().filter(|f| !f.cancelled()).collect();
        assert!(!others.is_empty(), "the running ones finish");
        for f in others {
            assert!(f.done());
            assert!(f.exception().is_none());
        }
    });
}

#[test]
fn processes_terminate_at_shutdown() {
    serial_watchdog(|| {
        let e = ex(3);
        let fs: Vec<_> = (0..3).map(|_| e.submit(sleep_ms, 10).unwrap()).collect();
        let pids = e.pids();
        assert_eq!(pids.len(), 3);
        e.shutdown(true, false);
        for f in fs {
            f.result().unwrap();
        }
        for pid in pids {
            assert!(
                !running(pid),
                "worker {pid} is gone after shutdown(wait=True)"
            );
        }
    });
}

#[test]
fn context_manager_shutdown() {
    serial_watchdog(|| {
        let pids;
        {
            let e = ex(5);
            pids = e.pids();
            let got: Vec<i64> = e
                .map(i64::abs, -5..5)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(got, [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]);
        }
        for pid in pids {
            assert!(!running(pid), "worker {pid} reaped at the end of the scope");
        }
    });
}

/// What a map not iterated yet yields once its executor stopped: the values of what was
/// submitted, in order, then at most one `Error::Shutdown`, then the end.
fn check_map_after_shutdown(how: &str, res: spindle::futures::Map<i64>) {
    let mut expect = (-5..5i64).map(i64::abs);
    let mut stopped = false;
    for r in res {
        assert!(!stopped, "{how}: nothing after the Shutdown item");
        match r {
            Ok(v) => assert_eq!(Some(v), expect.next(), "{how}"),
            Err(Error::Shutdown) => stopped = true,
            Err(e) => panic!("{how}: {e}"),
        }
    }
}

#[test]
fn shutdown_no_wait_with_a_map_pending() {
    serial_watchdog(|| {
        let e = ex(5);
        let res = e.map(i64::abs, -5..5).unwrap();
        e.shutdown(false, false);
        check_map_after_shutdown("shutdown(wait=False)", res);
    });
}

#[test]
fn del_shutdown_with_a_map_pending() {
    serial_watchdog(|| {
        let e = ex(5);
        let pids = e.pids();
        let res = e.map(i64::abs, -5..5).unwrap();
        drop(e);
        for pid in pids {
            assert!(!running(pid), "worker {pid} reaped");
        }
        check_map_after_shutdown("del", res);
    });
}

#[test]
fn kill_workers_with_a_map_pending_ends_the_map() {
    serial_watchdog(|| {
        let e = ex(2);
        let pids = e.pids();
        let res = e.map(i64::abs, -5..5).unwrap();
        e.kill_workers();
        for pid in pids {
            assert!(!running(pid), "worker {pid} reaped");
        }
        // Every item pulled before the kill ends with its value or a cancellation, then
        // at most one `Shutdown` ends the map: it never waits for a consumer.
        let mut expect = (-5..5i64).map(i64::abs);
        let mut seen = 0;
        let mut stopped = false;
        for r in res {
            assert!(!stopped, "nothing after the Shutdown item");
            match r {
                Ok(v) => assert_eq!(Some(v), expect.next()),
                Err(Error::Task(t)) => {
                    assert!(t.is_cancelled() || t.is_worker_died(), "{t}");
                    expect.next();
                }
                Err(Error::Shutdown) => stopped = true,
                Err(other) => panic!("{other}"),
            }
            seen += 1;
        }
        assert!(seen <= 11, "{seen} outcomes for 10 items");
    });
}

#[test]
fn deadlock_error_at_task_pickle() {
    serial_watchdog(|| {
        let e = ex(2);
        let err = task_error(e.submit(id, Bomb::ErrorAtPickle).unwrap().result());
        assert!(err.to_string().contains("cannot be encoded"), "{err}");
        assert!(
            err.to_string().contains("error at pickle"),
            "the serializer's own message: {err}"
        );
        assert!(!err.is_worker_died());
        assert_eq!(e.submit(id, Bomb::Fine).unwrap().result().unwrap(), 0);
    });
}

#[test]
fn deadlock_faults_at_task_unpickle() {
    serial_watchdog(|| {
        let e = ex(2);
        // The argument is decoded in the worker: an error fails the task, a crash or an
        // exit kills the worker. Either way the task ends and the pool goes on.
        let err = task_error(e.submit(id, Bomb::ErrorAtUnpickle).unwrap().result());
        assert!(!err.is_worker_died(), "{err}");
        assert!(err.to_string().contains("cannot decode"), "{err}");
        let err = task_error(e.submit(id, Bomb::CrashAtUnpickle).unwrap().result());
        assert!(err.is_worker_died() && err.signal() == Some(6), "{err}");
        let err = task_error(e.submit(id, Bomb::ExitAtUnpickle).unwrap().result());
        assert!(err.is_worker_died() && err.exitcode() == Some(7), "{err}");
        assert_eq!(e.submit(id, Bomb::Fine).unwrap().result().unwrap(), 0);
    });
}

#[test]
fn deadlock_faults_during_func_exec() {
    serial_watchdog(|| {
        let e = ex(2);
        let err = task_error(e.submit(abort, ()).unwrap().result());
        assert!(err.is_worker_died() && err.signal() == Some(6), "{err}");
        let err = task_error(e.submit(exit_with, 3).unwrap().result());
        assert!(err.is_worker_died() && err.exitcode() == Some(3), "{err}");
        let err = task_error(e.submit(raise_runtime_error, ()).unwrap().result());
        assert!(err.is_panic(), "{err}");
        assert_eq!(e.submit(pow, (3, 3)).unwrap().result().unwrap(), 27);
    });
}

#[test]
fn deadlock_faults_around_the_result() {
    serial_watchdog(|| {
        let e = ex(2);
        // Encoding the result happens in the worker (the bomb is built there: its own
        // `Serialize` would abort this process if it were sent as an argument).
        let err = task_error(e.submit(return_instance_of, 2).unwrap().result());
        assert!(err.is_worker_died() && err.signal() == Some(6), "{err}");
        let err = task_error(e.submit(return_instance_of, 3).unwrap().result());
        assert!(err.is_worker_died() && err.exitcode() == Some(7), "{err}");
        let err = task_error(e.submit(return_instance_of, 1).unwrap().result());
        assert!(!err.is_worker_died(), "{err}");
        assert!(err.to_string().contains("cannot be encoded"), "{err}");
        // Decoding the result happens here.
        let err = task_error(e.submit(return_instance_of, 4).unwrap().result());
        assert!(!err.is_worker_died(), "{err}");
        assert!(err.to_string().contains("cannot decode"), "{err}");
        assert_eq!(
            e.submit(return_instance_of, 0).unwrap().result().unwrap(),
            Bomb::Fine
        );
    });
}

/// Returns the bomb of index `i`, built in the worker (so its `Serialize` runs there).
fn return_instance_of(i: u8) -> Bomb {
    bomb_from_index(i)
}

#[test]
fn deadlock_crash_after_shutdown() {
    serial_watchdog(|| {
        let e = ex(2);
        let f = e.submit(crash_after, 100).unwrap();
        e.shutdown(true, false);
        let err = task_error(f.result());
        assert!(err.is_worker_died(), "{err}");
    });
}

#[test]
fn deadlock_crash_with_big_data() {
    serial_watchdog(|| {
        let e = ex(2);
        let data = "a".repeat(1 << 20);
        let got: Vec<spindle::Result<usize>> =
            e.map(crash_with_data, vec![data; 10]).unwrap().collect();
        assert_eq!(got.len(), 10);
        for r in got {
            let err = task_error(r);
            assert!(err.is_worker_died(), "{err}");
        }
        assert_eq!(
            e.submit(crash_with_data, "a".into())
                .unwrap()
                .result()
                .unwrap(),
            1
        );
    });
}

static INIT_STATUS: std::sync::Mutex<&str> = std::sync::Mutex::new("uninitialized");

fn init(status: String) {
    *INIT_STATUS.lock().unwrap() = status.leak();
}

fn get_init_status(_: ()) -> String {
    (*INIT_STATUS.lock().unwrap()).to_owned()
}

fn init_fail() -> Result<(), String> {
    std::thread::sleep(Duration::from_millis(10));
    Err("error in initializer".into())
}

#[test]
fn initializer_runs_in_every_worker() {
    serial_watchdog(|| {
        let e = ProcessPoolExecutor::builder()
            .max_workers(2)
            .start_method(StartMethod::Fork)
            .initializer(init, ("initialized".to_string(),))
            .build()
            .unwrap();
        let fs: Vec<_> = (0..4)
            .map(|_| e.submit(get_init_status, ()).unwrap())
            .collect();
        for f in as_completed(fs, None) {
            assert_eq!(f.unwrap().result().unwrap(), "initialized");
        }
        assert_eq!(
            *INIT_STATUS.lock().unwrap(),
            "uninitialized",
            "not in this process"
        );
    });
}

#[test]
fn failing_initializer_fails_every_task() {
    serial_watchdog(|| {
        let e = ProcessPoolExecutor::builder()
            .max_workers(2)
            .start_method(StartMethod::Fork)
            .initializer(init_fail, ())
            .build()
            .unwrap();
        for _ in 0..3 {
            match e.submit(get_init_status, ()) {
                Err(err) => assert!(err.to_string().contains("error in initializer"), "{err}"),
                Ok(f) => {
                    let err = task_error(f.result());
                    assert!(err.is_initializer_failed(), "{err}");
                    assert!(err.to_string().contains("error in initializer"), "{err}");
                }
            }
        }
    });
}
