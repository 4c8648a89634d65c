//! The bridge from coroutines to the executors: `run_in_executor` on the thread and process
//! pools, `to_thread`, `wrap_future`: the loop keeps ticking while a process task runs,
//! dropping the handle cancels a queued task and stops a running process task, dropping a
//! plain `Future` does not, and a panic in an executor task is an error.
//!
//! Its own binary: these tests fork pool workers and kill them.
#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::futures::Gate;
use common::{eventually, running, watchdog_for};
use spindle::asyncio::{self, run_in_executor, to_thread, wrap_future};
use spindle::futures::{ProcessPoolExecutor, ThreadPoolExecutor};
use spindle::multiprocessing::StartMethod;

const LIMIT: Duration = Duration::from_secs(60);

/// Process task: sleeps `ms`, returns its pid.
fn nap(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// Process task: creates the file `path` (evidence that it ran).
fn touch(path: String) -> bool {
    std::fs::write(path, b"ran").is_ok()
}

/// Process task: panics.
fn broken(n: u32) -> u32 {
    if n > 0 {
        panic!("process task broke on {n}");
    }
    n
}

fn square(n: u64) -> u64 {
    n * n
}

fn pool(workers: usize) -> ProcessPoolExecutor {
    ProcessPoolExecutor::builder()
        .max_workers(workers)
        .start_method(StartMethod::Fork)
        .build()
        .unwrap()
}

/// A path no other test (or run) uses.
fn scratch(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("spindle-asyncio-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// Counts the turns a ticker coroutine takes on the loop until `stop` is set.
async fn ticker(stop: Arc<AtomicBool>, ticks: Arc<AtomicUsize>) {
    while !stop.load(Ordering::SeqCst) {
        ticks.fetch_add(1, Ordering::SeqCst);
        asyncio::sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn the_loop_ticks_while_a_process_task_is_awaited() {
    watchdog_for(LIMIT, || {
        let ex = pool(1);
        let (ticks, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (t, s) = (Arc::clone(&ticks), Arc::clone(&stop));
        let (pid, during) = asyncio::run(async {
            let tick = asyncio::create_task(ticker(s, t))?;
            // One thread runs the loop: these ticks happen only if awaiting does not block it.
            let pid = run_in_executor(&ex, nap, 300).await?;
            let during = ticks.load(Ordering::SeqCst);
            stop.store(true, Ordering::SeqCst);
            tick.await?;
            Ok::<_, spindle::Error>((pid, during))
        })
        .unwrap()
        .unwrap();
        assert_ne!(pid, std::process::id(), "ran in a worker process");
        assert!(
            during >= 10,
            "only {during} ticks while the process task ran"
        );
    });
}

#[test]
fn the_loop_ticks_while_a_thread_task_is_awaited() {
    watchdog_for(LIMIT, || {
        let gate = Gate::new();
        let opener = gate.clone();
        let (ticks, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (t, s) = (Arc::clone(&ticks), Arc::clone(&stop));
        let v = asyncio::run(async move {
            let tick = asyncio::create_task(ticker(s, t))?;
            let blocked = to_thread(move || {
                gate.wait();
                std::thread::current().name().map(str::to_owned)
            });
            // The thread task can only end after the loop has ticked 20 times.
            let open = asyncio::create_task(async move {
                while ticks.load(Ordering::SeqCst) < 20 {
                    asyncio::sleep(Duration::from_millis(1)).await;
                }
                opener.open();
            })?;
            let name = blocked.await?;
            stop.store(true, Ordering::SeqCst);
            open.await?;
            tick.await?;
            Ok::<_, spindle::Error>(name)
        })
        .unwrap()
        .unwrap();
        assert!(
            v.unwrap().starts_with("asyncio"),
            "ran on the default executor"
        );
    });
}

#[test]
fn dropping_the_handle_cancels_a_queued_thread_task() {
    static RAN: AtomicUsize = AtomicUsize::new(0);
    fn mark(x: u32) -> u32 {
        RAN.fetch_add(1, Ordering::SeqCst);
        x
    }
    watchdog_for(LIMIT, || {
        let ex = ThreadPoolExecutor::builder()
            .max_workers(1)
            .build()
            .unwrap();
        let gate = Gate::new();
        let opener = gate.clone();
        let blocker = ex.spawn(move || gate.wait()).unwrap();
        asyncio::run(async {
            let queued = run_in_executor(&ex, mark, 1);
            assert!(!queued.running());
            drop(queued);
            opener.open();
            blocker.await?;
            // Anything queued after it has run once this one has.
            run_in_executor(&ex, |x: u32| x, 0).await?;
            Ok::<_, spindle::Error>(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            RAN.load(Ordering::SeqCst),
            0,
            "the cancelled task never ran"
        );
    });
}

#[test]
fn dropping_the_handle_cancels_a_queued_process_task() {
    watchdog_for(LIMIT, || {
        let ex = pool(1);
        let path = scratch("queued");
        let p = path.to_string_lossy().into_owned();
        asyncio::run(async {
            let busy = run_in_executor(&ex, nap, 300);
            while !busy.running() {
                asyncio::sleep(Duration::from_millis(1)).await;
            }
            let queued = run_in_executor(&ex, touch, p);
            assert!(
                !queued.running(),
                "one worker, busy: the task waits in the pool"
            );
            drop(queued);
            busy.await?;
            run_in_executor(&ex, square, 2).await?;
            Ok::<_, spindle::Error>(())
        })
        .unwrap()
        .unwrap();
        assert!(!path.exists(), "the cancelled process task never ran");
    });
}

#[test]
fn dropping_the_handle_stops_a_running_process_task_and_the_pool_goes_on() {
    watchdog_for(LIMIT, || {
        let ex = pool(1);
        let victim = asyncio::run(async {
            let long = run_in_executor(&ex, nap, 3_600_000);
            while !long.running() {
                asyncio::sleep(Duration::from_millis(1)).await;
            }
            let pids = ex.pids();
            assert_eq!(pids.len(), 1);
            drop(long); // the awaiting coroutine gave up
            pids[0]
        })
        .unwrap();
        assert!(
            eventually(Duration::from_secs(20), || !running(victim)),
            "worker {victim} still runs"
        );
        // The pool replaced its worker and serves the next task.
        let v = asyncio::run(async { run_in_executor(&ex, square, 12).await })
            .unwrap()
            .unwrap();
        assert_eq!(v, 144);
        assert!(!ex.pids().contains(&victim));
    });
}

#[test]
fn cancel_on_the_handle_stops_a_running_process_task_with_a_cancelled_error() {
    watchdog_for(LIMIT, || {
        let ex = pool(1);
        asyncio::run(async {
            let mut long = run_in_executor(&ex, nap, 3_600_000);
            while !long.running() {
                asyncio::sleep(Duration::from_millis(1)).await;
            }
            assert!(long.cancel());
            let err = (&mut long).await.unwrap_err();
            assert!(err.as_task().unwrap().is_cancelled(), "{err}");
        })
        .unwrap();
    });
}

#[test]
fn a_running_thread_task_cannot_be_stopped_and_runs_to_its_end() {
    watchdog_for(LIMIT, || {
        let ex = ThreadPoolExecutor::builder()
            .max_workers(1)
            .build()
            .unwrap();
        let finished = Arc::new(AtomicBool::new(false));
        let f = Arc::clone(&finished);
        let gate = Gate::new();
        let opener = gate.clone();
        let started = Gate::new();
        let s = started.clone();
        let fut = ex
            .spawn(move || {
                s.open();
                gate.wait();
                f.store(true, Ordering::SeqCst);
            })
            .unwrap();
        started.wait();
        let handle = wrap_future(fut);
        assert!(!handle.cancel(), "a running thread cannot be stopped");
        drop(handle);
        opener.open();
        assert!(eventually(Duration::from_secs(20), || finished.load(Ordering::SeqCst)));
    });
}

#[test]
fn dropping_a_plain_future_does_not_cancel_its_task() {
    watchdog_for(LIMIT, || {
        let ex = pool(1);
        let path = scratch("detached");
        let p = path.to_string_lossy().into_owned();
        asyncio::run(async {
            let busy = run_in_executor(&ex, nap, 100);
            // Queued behind `busy`, then its future dropped: it still runs.
            drop(ex.submit(touch, p).unwrap());
            busy.await?;
            Ok::<_, spindle::Error>(())
        })
        .unwrap()
        .unwrap();
        assert!(eventually(Duration::from_secs(20), || path.exists()));
        let _ = std::fs::remove_file(&path);

        // The same through `detach`: the handle gives its future up, dropping that detaches.
        let path = scratch("detach");
        let p = path.to_string_lossy().into_owned();
        asyncio::run(async {
            let f = run_in_executor(&ex, touch, p).detach()?;
            drop(f);
            Ok::<_, spindle::Error>(())
        })
        .unwrap()
        .unwrap();
        assert!(eventually(Duration::from_secs(20), || path.exists()));
        let _ = std::fs::remove_file(&path);
    });
}

#[test]
fn a_panic_in_an_executor_task_comes_back_as_an_error() {
    watchdog_for(LIMIT, || {
        let procs = pool(1);
        let threads = ThreadPoolExecutor::builder()
            .max_workers(1)
            .build()
            .unwrap();
        asyncio::run(async {
            let err = run_in_executor(&procs, broken, 3).await.unwrap_err();
            let task = err.as_task().unwrap();
            assert!(task.is_panic());
            assert_eq!(task.panic_message(), Some("process task broke on 3"));
            let err = run_in_executor(&threads, broken, 4).await.unwrap_err();
            assert_eq!(
                err.as_task().unwrap().panic_message(),
                Some("process task broke on 4")
            );
            let err = to_thread(|| -> u8 { panic!("to_thread broke") })
                .await
                .unwrap_err();
            assert_eq!(
                err.as_task().unwrap().panic_message(),
                Some("to_thread broke")
            );
            // The pools go on.
            assert_eq!(run_in_executor(&procs, square, 3).await.unwrap(), 9);
        })
        .unwrap();
    });
}

#[test]
fn to_thread_runs_as_many_calls_at_once_as_python_default_executor() {
    watchdog_for(LIMIT, || {
        // Python's default: min(32, cpus + 4) threads. A barrier of that many parties is
        // passed only if they all run at once.
        let n = 32.min(spindle::multiprocessing::cpu_count() + 4);
        let barrier = Arc::new(spindle::threading::Barrier::new(n).unwrap());
        let passed = asyncio::run(async move {
            let calls = (0..n).map(|_| {
                let b = Arc::clone(&barrier);
                to_thread(move || b.wait_timeout(Duration::from_secs(20)).is_ok())
            });
            asyncio::gather(calls).await
        })
        .unwrap()
        .unwrap();
        assert!(passed.iter().all(|p| *p), "{passed:?}");
    });
}

#[test]
fn a_closed_executor_is_an_error_when_awaited() {
    watchdog_for(LIMIT, || {
        let ex = ThreadPoolExecutor::new().unwrap();
        ex.shutdown(true, false);
        let r = asyncio::run(async { run_in_executor(&ex, square, 2).await }).unwrap();
        assert!(matches!(r, Err(spindle::Error::Shutdown)), "{r:?}");
    });
}
