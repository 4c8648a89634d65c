//! CPython's `Lib/test/test_concurrent_futures/` (3.13's package: `test_future.py`,
//! `test_wait.py`, `test_as_completed.py`, `test_shutdown.py`, `test_thread_pool.py`,
//! `test_init.py`, `executor.py`), ported to `spindle::futures` with the thread pool. The
//! process pool's half is `cpython_concurrent_futures_process.rs`.
//!
//! Ported (CPython test -> Rust test):
//!
//! * `FutureTests.test_done_callback_with_result` / `_with_exception` / `_with_cancel` ->
//!   `done_callback_with_result_exception_cancel`
//! * `FutureTests.test_done_callback_raises` -> `done_callback_raises_others_still_run`
//! * `FutureTests.test_done_callback_already_successful` / `_failed` / `_cancelled`,
//!   `test_done_callback_raises_already_succeeded` -> `done_callback_on_a_finished_future`
//! * `FutureTests.test_repr` -> `future_debug_shows_state`
//! * `FutureTests.test_cancel`, `test_cancelled`, `test_done`, `test_running` -> `future_states`
//! * `FutureTests.test_result_with_timeout`, `test_exception_with_timeout` -> `result_and_exception_with_timeout`
//! * `FutureTests.test_result_with_success`, `test_exception_with_success` -> `result_set_while_waiting`
//! * `FutureTests.test_result_with_cancel` -> `result_cancelled_while_waiting`
//! * `FutureTests.test_multiple_set_result` / `_exception` -> `set_after_done_is_invalid_state`
//! * `ExecutorTest.test_submit`, `test_submit_keyword` -> `submit`
//! * `ExecutorTest.test_map` -> `map_keeps_input_order`
//! * `ExecutorTest.test_map_exception` -> `map_exception_at_its_position`
//! * `ExecutorTest.test_map_timeout` -> `map_timeout`
//! * `ExecutorTest.test_shutdown_race_issue12456` -> `shutdown_right_after_map`
//! * `ExecutorTest.test_no_stale_references` -> `no_stale_references`
//! * `ExecutorTest.test_max_workers_negative` -> `max_workers_zero`
//! * `AsCompletedTests.test_no_timeout` -> `as_completed_no_timeout`
//! * `AsCompletedTests.test_future_times_out` -> `as_completed_times_out`
//! * `AsCompletedTests.test_correct_timeout_exception_msg` -> `as_completed_timeout_message`
//! * `WaitTests.test_first_completed` (+ `_some_already_completed`) -> `wait_first_completed`
//! * `WaitTests.test_first_exception` (+ `_some_already_complete`, `_one_already_failed`) -> `wait_first_exception`
//! * `WaitTests.test_all_completed` -> `wait_all_completed`
//! * `WaitTests.test_timeout` -> `wait_timeout`
//! * `ThreadPoolWaitTests.test_pending_calls_race` -> `wait_pending_calls_race`
//! * `ExecutorShutdownTest.test_run_after_shutdown` -> `submit_after_shutdown`
//! * `ExecutorShutdownTest.test_hang_issue12364` -> `shutdown_waits_for_queued_tasks`
//! * `ExecutorShutdownTest.test_cancel_futures` -> `shutdown_cancel_futures`
//! * `ExecutorShutdownTest.test_hang_gh94440` -> `shutdown_after_a_cancel_does_not_hang`
//! * `ThreadPoolShutdownTest.test_context_manager_shutdown`, `test_del_shutdown`,
//!   `test_shutdown_no_wait` -> `drop_and_shutdown_no_wait`
//! * `ThreadPoolShutdownTest.test_thread_names_assigned`, `test_thread_names_default` -> `thread_names`
//! * `ThreadPoolShutdownTest.test_cancel_futures_wait_false` -> `shutdown_no_wait_cancel_futures`
//! * `ThreadPoolExecutorTest.test_map_submits_without_iteration` -> `map_without_iteration_is_lazy`
//! * `ThreadPoolExecutorTest.test_default_workers` -> `default_workers`
//! * `ThreadPoolExecutorTest.test_saturation` -> `saturation`
//! * `ThreadPoolExecutorTest.test_executor_map_current_future_cancel` -> `map_timeout_cancels_the_rest`
//! * `InitializerMixin.test_initializer` -> `initializer_runs_in_every_worker`
//! * `FailingInitializerMixin.test_initializer` -> `failing_initializer_breaks_the_pool`
//!
//! Deliberate differences, tested as documented: a `Future` has one owner (no duplicates can
//! be passed to `wait` / `as_completed`: CPython's `test_20369` and `test_duplicate_futures`
//! are type errors here); `exception()` of a cancelled future returns the cancellation
//! instead of raising it; `map` is lazy (a `Map` never iterated runs only its first window,
//! and items not yet submitted at shutdown come back as `Error::Shutdown`). Not ported:
//! `test_idle_thread_reuse` (racy in CPython too, and the pool's threads are not visible),
//! interpreter-shutdown tests (Rust has no interpreter exit: dropping the executor is it).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spindle::futures::{
    as_completed, promise, wait, Future, Promise, ReturnWhen, ThreadPoolExecutor,
};
use spindle::threading::{Event, Semaphore};
use spindle::{Error, TaskError};

mod common;
use common::{eventually, watchdog};

const LONG: Duration = Duration::from_secs(20);

/// CPython's `create_future` states.
fn pending() -> (Promise<u32>, Future<u32>) {
    promise()
}

fn running() -> (Promise<u32>, Future<u32>) {
    let (p, f) = promise();
    assert!(p.set_running_or_notify_cancel());
    (p, f)
}

fn cancelled() -> Future<u32> {
    let (p, f) = promise();
    assert!(f.cancel());
    assert!(!p.set_running_or_notify_cancel());
    f
}

fn failed() -> Future<u32> {
    let (p, f) = promise();
    p.set_exception(TaskError::failed("OSError")).unwrap();
    f
}

fn successful() -> Future<u32> {
    let (p, f) = promise();
    p.set_result(42).unwrap();
    f
}

fn pool(n: usize) -> ThreadPoolExecutor {
    ThreadPoolExecutor::builder()
        .max_workers(n)
        .build()
        .unwrap()
}

fn is_cancelled(r: &spindle::Result<impl std::fmt::Debug>) -> bool {
    matches!(r, Err(Error::Task(t)) if t.is_cancelled())
}

// ---------------------------------------------------------------------------- the future

#[test]
fn done_callback_with_result_exception_cancel() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (p, f) = pending();
    let s = Arc::clone(&seen);
    f.add_done_callback(move |r| s.lock().unwrap().push(format!("{:?}", r.copied())));
    p.set_result(5).unwrap();
    let (p, f) = pending();
    let s = Arc::clone(&seen);
    f.add_done_callback(move |r| {
        s.lock()
            .unwrap()
            .push(r.err().map(ToString::to_string).unwrap_or_default())
    });
    p.set_exception(TaskError::failed("test")).unwrap();
    let (_p, f) = pending();
    let s = Arc::clone(&seen);
    f.add_done_callback(move |r| {
        s.lock().unwrap().push(format!(
            "cancelled={}",
            r.is_err_and(TaskError::is_cancelled)
        ))
    });
    assert!(f.cancel());
    assert_eq!(
        *seen.lock().unwrap(),
        ["Ok(5)", "task failed: test", "cancelled=true"]
    );
}

#[test]
fn done_callback_raises_others_still_run() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (p, f) = pending();
    let c = Arc::clone(&calls);
    f.add_done_callback(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        panic!("doh!");
    });
    let c = Arc::clone(&calls);
    f.add_done_callback(move |_| {
        c.fetch_add(10, Ordering::SeqCst);
    });
    p.set_result(5).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 11);
    assert_eq!(
        f.result().unwrap(),
        5,
        "a panicking callback does not touch the future"
    );
}

#[test]
fn done_callback_on_a_finished_future() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    for f in [successful(), failed(), cancelled()] {
        let s = Arc::clone(&seen);
        let me = std::thread::current().id();
        f.add_done_callback(move |r| {
            assert_eq!(std::thread::current().id(), me, "runs at once, here");
            s.lock().unwrap().push(match r {
                Ok(v) => format!("ok {v}"),
                Err(e) if e.is_cancelled() => "cancelled".into(),
                Err(e) => e.to_string(),
            });
        });
    }
    assert_eq!(
        *seen.lock().unwrap(),
        ["ok 42", "task failed: OSError", "cancelled"]
    );
    // A callback that panics at once is caught too.
    successful().add_done_callback(|_| panic!("doh!"));
}

#[test]
fn future_debug_shows_state() {
    let show = |f: &Future<u32>| format!("{f:?}").to_lowercase();
    assert!(show(&pending().1).contains("pending"));
    let (_p, r) = running();
    assert!(show(&r).contains("running"));
    assert!(show(&cancelled()).contains("cancel"));
    assert!(show(&failed()).contains("finished"));
    assert!(show(&successful()).contains("finished"));
}

#[test]
fn future_states() {
    let (_p1, f1) = pending();
    let (_p2, f2) = running();
    let f3 = cancelled();
    let f5 = failed();
    let f6 = successful();
    assert!(!f1.done() && !f1.running() && !f1.cancelled());
    assert!(!f2.done() && f2.running() && !f2.cancelled());
    assert!(f3.done() && !f3.running() && f3.cancelled());
    assert!(f5.done() && !f5.running() && !f5.cancelled());
    assert!(f6.done() && !f6.running() && !f6.cancelled());

    assert!(f1.cancel());
    assert!(f1.cancelled() && f1.done());
    assert!(!f2.cancel(), "a running future cannot be cancelled");
    assert!(f2.running());
    assert!(f3.cancel(), "cancelling twice says true");
    assert!(!f5.cancel());
    assert!(!f6.cancel());
    assert!(f5.done() && !f5.cancelled());
}

#[test]
fn result_and_exception_with_timeout() {
    let (_p, mut f) = pending();
    assert!(matches!(
        f.result_timeout(Duration::ZERO),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        f.exception_timeout(Duration::ZERO),
        Err(Error::Timeout)
    ));
    let (_p, mut f) = running();
    assert!(matches!(
        f.result_timeout(Duration::ZERO),
        Err(Error::Timeout)
    ));
    let mut f = cancelled();
    assert!(f
        .exception_timeout(Duration::ZERO)
        .unwrap()
        .unwrap()
        .is_cancelled());
    assert!(is_cancelled(&f.result_timeout(Duration::ZERO)));
    let mut f = failed();
    assert_eq!(
        f.exception_timeout(Duration::ZERO)
            .unwrap()
            .map(|e| e.to_string()),
        Some("task failed: OSError".into())
    );
    assert!(matches!(
        f.result_timeout(Duration::ZERO),
        Err(Error::Task(_))
    ));
    let mut f = successful();
    assert!(f.exception_timeout(Duration::ZERO).unwrap().is_none());
    assert_eq!(f.result_timeout(Duration::ZERO).unwrap(), 42);
}

#[test]
fn result_set_while_waiting() {
    watchdog(|| {
        let (p, mut f) = pending();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            p.set_result(42).unwrap();
        });
        assert_eq!(f.result_timeout(LONG).unwrap(), 42);
        t.join().unwrap();
        let (p, f) = pending();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            p.set_exception(TaskError::failed("OSError")).unwrap();
        });
        assert!(f.exception_timeout(LONG).unwrap().is_some());
        t.join().unwrap();
    });
}

#[test]
fn result_cancelled_while_waiting() {
    watchdog(|| {
        // A future is `Sync`: one thread waits on it while another cancels it.
        let (_p, f) = pending();
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            g.cancel()
        });
        assert!(f.wait_timeout(LONG));
        assert!(canceller.join().unwrap());
        let f = Arc::try_unwrap(f).expect("the only owner left");
        assert!(is_cancelled(&f.result()));
    });
}

#[test]
fn set_after_done_is_invalid_state() {
    // `set_result` takes the promise by value: a second call does not compile. What remains
    // is a promise whose future was cancelled meanwhile.
    let (p, f) = pending();
    assert!(f.cancel());
    assert!(matches!(p.set_result(2), Err(Error::InvalidState(_))));
    assert!(is_cancelled(&f.result()));
    let (p, f) = pending();
    f.cancel();
    assert!(matches!(
        p.set_exception(TaskError::failed("x")),
        Err(Error::InvalidState(_))
    ));
    // A dropped promise never leaves its future pending for ever.
    let (p, f) = pending();
    drop(p);
    assert!(f.done());
    assert!(f.result().is_err());
}

// ---------------------------------------------------------------------------- executors

#[test]
fn submit() {
    watchdog(|| {
        let ex = pool(5);
        assert_eq!(
            ex.submit(|(b, e): (u64, u32)| b.pow(e), (2, 8))
                .unwrap()
                .result()
                .unwrap(),
            256
        );
        assert_eq!(
            ex.submit(|(x, y): (u32, u32)| x * y, (2, 8))
                .unwrap()
                .result()
                .unwrap(),
            16
        );
        assert_eq!(ex.spawn(|| "no args").unwrap().result().unwrap(), "no args");
    });
}

#[test]
fn map_keeps_input_order() {
    watchdog(|| {
        let ex = pool(5);
        let want: Vec<u64> = (0..10u64).map(|i| i.pow(i as u32)).collect();
        let got: Vec<u64> = ex
            .map(|i: u64| i.pow(i as u32), 0..10)
            .unwrap()
            .collect::<spindle::Result<_>>()
            .unwrap();
        assert_eq!(got, want);
    });
}

#[test]
fn map_exception_at_its_position() {
    watchdog(|| {
        let ex = pool(5);
        let mut it = ex
            .map(
                |(a, b): (u32, u32)| (a / b, a % b),
                [(1, 2), (1, 3), (1, 0), (1, 5)],
            )
            .unwrap();
        assert_eq!(it.next().unwrap().unwrap(), (0, 1));
        assert_eq!(it.next().unwrap().unwrap(), (0, 1));
        let e = it.next().unwrap().unwrap_err();
        assert!(e.as_task().is_some_and(TaskError::is_panic), "{e}");
        // spindle goes on where Python's generator stops: the next item is there.
        assert_eq!(it.next().unwrap().unwrap(), (0, 1));
        assert!(it.next().is_none());
    });
}

#[test]
fn map_timeout() {
    watchdog(|| {
        let ex = pool(5);
        let gate = Arc::new(Event::new());
        let g = Arc::clone(&gate);
        let t0 = Instant::now();
        let it = ex
            .map_timeout(
                move |block: bool| {
                    if block {
                        g.wait_timeout(LONG);
                    }
                },
                [false, false, true],
                Duration::from_millis(100),
            )
            .unwrap();
        let got: Vec<spindle::Result<()>> = it.collect();
        gate.set();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].is_ok() && got[1].is_ok());
        assert!(matches!(got[2], Err(Error::Timeout)));
        assert!(t0.elapsed() >= Duration::from_millis(100));
    });
}

#[test]
fn shutdown_right_after_map() {
    watchdog(|| {
        let ex = pool(2);
        let m = ex.map(|x: u32| x.to_string(), [2; 3]).unwrap();
        ex.shutdown(true, false);
        for r in m {
            assert!(
                matches!(r.as_deref(), Ok("2") | Err(Error::Shutdown)),
                "{r:?}"
            );
        }
    });
}

#[test]
fn no_stale_references() {
    watchdog(|| {
        let ex = pool(2);
        let obj = Arc::new(7u8);
        let o = Arc::clone(&obj);
        // The future is dropped at once.
        drop(ex.spawn(move || *o).unwrap());
        assert!(
            eventually(LONG, || Arc::strong_count(&obj) == 1),
            "the executor let go of the task"
        );
    });
}

#[test]
fn max_workers_zero() {
    let e = ThreadPoolExecutor::builder()
        .max_workers(0)
        .build()
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("max_workers must be greater than 0"))
    );
}

// ----------------------------------------------------------------- wait and as_completed

#[test]
fn as_completed_no_timeout() {
    watchdog(|| {
        let ex = pool(2);
        let fs = vec![
            cancelled(),
            failed(),
            successful(),
            ex.spawn(|| 2 * 21).unwrap(),
            ex.spawn(|| 7 * 6).unwrap(),
        ];
        let mut states = Vec::new();
        for f in as_completed(fs, None) {
            let f = f.unwrap();
            states.push(match f.result() {
                Ok(v) => v.to_string(),
                Err(e) if e.as_task().is_some_and(TaskError::is_cancelled) => "cancelled".into(),
                Err(_) => "failed".into(),
            });
        }
        states.sort();
        assert_eq!(states, ["42", "42", "42", "cancelled", "failed"]);
    });
}

#[test]
fn as_completed_times_out() {
    watchdog(|| {
        let ex = pool(2);
        let gate = Arc::new(Event::new());
        for timeout in [Duration::ZERO, Duration::from_millis(100)] {
            let g = Arc::clone(&gate);
            let slow = ex
                .spawn(move || {
                    g.wait_timeout(LONG);
                    0u32
                })
                .unwrap();
            let t0 = Instant::now();
            let mut it = as_completed([cancelled(), failed(), successful(), slow], Some(timeout));
            let mut yielded = 0;
            let err = loop {
                match it.next().expect("an error before the end") {
                    Ok(f) => {
                        assert!(f.done());
                        yielded += 1;
                    }
                    Err(e) => break e,
                }
            };
            assert_eq!(yielded, 3, "only the futures already completed");
            assert!(err.is_timeout());
            assert!(t0.elapsed() >= timeout);
            assert!(it.next().is_none());
            let left = it.remaining();
            assert_eq!(left.len(), 1);
            assert!(!left[0].done());
        }
        gate.set();
    });
}

#[test]
fn as_completed_timeout_message() {
    let (_p1, f1) = pending();
    let (_p2, f2) = running();
    let e = as_completed([cancelled(), f1, f2, successful()], Some(Duration::ZERO))
        .find_map(Result::err)
        .unwrap();
    assert_eq!(e.to_string(), "2 (of 4) futures unfinished");
    assert!(matches!(
        e,
        Error::Unfinished {
            unfinished: 2,
            total: 4
        }
    ));
}

/// Which of the futures `wait` reported done, by the tag each one returns (or `c` for
/// cancelled, `x` for failed).
fn tags(fs: Vec<Future<u32>>) -> Vec<String> {
    let mut v: Vec<String> = fs
        .into_iter()
        .map(|f| {
            if f.cancelled() {
                "c".to_string()
            } else if !f.done() {
                "pending".to_string()
            } else {
                match f.result() {
                    Ok(v) => v.to_string(),
                    Err(_) => "x".to_string(),
                }
            }
        })
        .collect();
    v.sort();
    v
}

#[test]
fn wait_first_completed() {
    watchdog(|| {
        let ex = pool(2);
        let gate = Arc::new(Event::new());
        let g = Arc::clone(&gate);
        let slow = ex
            .spawn(move || {
                g.wait_timeout(LONG);
                2
            })
            .unwrap();
        let (keep, pending_cancelled) = promise::<u32>();
        let fast = ex.spawn(|| 21 * 2).unwrap();
        // CPython's CANCELLED_FUTURE (cancelled, not yet notified) is still "not done".
        let r = wait(
            [pending_cancelled, fast, slow],
            ReturnWhen::FirstCompleted,
            None,
        );
        assert_eq!(tags(r.done), ["42"]);
        assert_eq!(r.not_done.len(), 2);
        // Some already completed: they are returned at once.
        let r = wait(
            [cancelled(), successful()].into_iter().chain(r.not_done),
            ReturnWhen::FirstCompleted,
            None,
        );
        assert_eq!(tags(r.done), ["42", "c"]);
        assert_eq!(r.not_done.len(), 2);
        gate.set();
        drop(keep);
    });
}

#[test]
fn wait_first_exception() {
    watchdog(|| {
        let ex = pool(3);
        let gate = Arc::new(Event::new());
        let (g1, g2) = (Arc::clone(&gate), Arc::clone(&gate));
        let f1 = ex.spawn(|| 2 * 21).unwrap();
        let f2 = ex
            .spawn(move || -> u32 {
                std::thread::sleep(Duration::from_millis(20));
                let _ = &g1;
                panic!("this is an exception")
            })
            .unwrap();
        let f3 = ex
            .spawn(move || {
                g2.wait_timeout(LONG);
                3
            })
            .unwrap();
        f1.wait();
        let r = wait([f1, f2, f3], ReturnWhen::FirstException, None);
        assert_eq!(tags(r.done), ["42", "x"]);
        assert_eq!(r.not_done.len(), 1);
        // Some already complete, one of them failed: a cancellation is no exception.
        let div = ex
            .spawn(|| -> u32 { 21 / std::hint::black_box(0) })
            .unwrap();
        div.wait();
        let r = wait(
            [successful(), cancelled(), div]
                .into_iter()
                .chain(r.not_done),
            ReturnWhen::FirstException,
            None,
        );
        assert_eq!(tags(r.done), ["42", "c", "x"]);
        assert_eq!(r.not_done.len(), 1);
        // One already failed.
        let r = wait(
            [failed()].into_iter().chain(r.not_done),
            ReturnWhen::FirstException,
            None,
        );
        assert_eq!(tags(r.done), ["x"]);
        assert_eq!(r.not_done.len(), 1);
        gate.set();
        // None fails: it returns when all are done.
        let r = wait(r.not_done, ReturnWhen::FirstException, None);
        assert_eq!(tags(r.done), ["3"]);
    });
}

#[test]
fn wait_all_completed() {
    watchdog(|| {
        let ex = pool(2);
        let f1 = ex.spawn(|| -> u32 { 2 / std::hint::black_box(0) }).unwrap();
        let f2 = ex.spawn(|| 2 * 21).unwrap();
        let r = wait(
            [successful(), cancelled(), failed(), f1, f2],
            ReturnWhen::AllCompleted,
            None,
        );
        assert_eq!(tags(r.done), ["42", "42", "c", "x", "x"]);
        assert!(r.not_done.is_empty());
        // No future at all: returns at once.
        let r = wait(Vec::<Future<u32>>::new(), ReturnWhen::FirstCompleted, None);
        assert!(r.done.is_empty() && r.not_done.is_empty());
    });
}

#[test]
fn wait_timeout() {
    watchdog(|| {
        let ex = pool(2);
        let gate = Arc::new(Event::new());
        let g = Arc::clone(&gate);
        let slow = ex
            .spawn(move || {
                g.wait_timeout(LONG);
                9
            })
            .unwrap();
        let t0 = Instant::now();
        let r = wait(
            [cancelled(), failed(), successful(), slow],
            ReturnWhen::AllCompleted,
            Some(Duration::from_millis(50)),
        );
        assert!(t0.elapsed() >= Duration::from_millis(50));
        assert_eq!(tags(r.done), ["42", "c", "x"]);
        assert_eq!(r.not_done.len(), 1);
        gate.set();
    });
}

#[test]
fn wait_pending_calls_race() {
    watchdog(|| {
        let ex = pool(8);
        let event = Arc::new(Event::new());
        let fs: Vec<Future<()>> = (0..100)
            .map(|_| {
                let e = Arc::clone(&event);
                ex.spawn(move || e.wait()).unwrap()
            })
            .collect();
        event.set();
        let r = wait(fs, ReturnWhen::AllCompleted, None);
        assert_eq!(r.done.len(), 100);
    });
}

// ----------------------------------------------------------------------------- shutdown

#[test]
fn submit_after_shutdown() {
    let ex = pool(2);
    ex.shutdown(true, false);
    assert!(matches!(ex.submit(|x: u32| x, 5), Err(Error::Shutdown)));
    ex.shutdown(true, true); // idempotent
}

#[test]
fn shutdown_waits_for_queued_tasks() {
    watchdog(|| {
        let ex = pool(5);
        let fs: Vec<Future<()>> = (0..50)
            .map(|_| {
                ex.spawn(|| std::thread::sleep(Duration::from_millis(1)))
                    .unwrap()
            })
            .collect();
        ex.shutdown(true, false);
        for f in fs {
            assert!(f.done());
            f.result().unwrap();
        }
    });
}

#[test]
fn shutdown_cancel_futures() {
    watchdog(|| {
        let ex = pool(5);
        let gate = Arc::new(Event::new());
        let fs: Vec<Future<()>> = (0..50)
            .map(|_| {
                let g = Arc::clone(&gate);
                ex.spawn(move || {
                    g.wait_timeout(LONG);
                })
                .unwrap()
            })
            .collect();
        // Let the workers take their first tasks, then cancel the rest.
        assert!(eventually(LONG, || fs
            .iter()
            .filter(|f| f.running())
            .count()
            == 5));
        let opener = {
            let g = Arc::clone(&gate);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                g.set();
            })
        };
        ex.shutdown(true, true);
        opener.join().unwrap();
        let cancelled = fs.iter().filter(|f| f.cancelled()).count();
        assert_eq!(cancelled, 45, "every task not started was cancelled");
        for f in fs.into_iter().filter(|f| !f.cancelled()) {
            assert!(f.done());
            assert!(f.exception().is_none());
        }
    });
}

#[test]
fn shutdown_after_a_cancel_does_not_hang() {
    watchdog(|| {
        let ex = pool(1);
        ex.spawn(|| 0).unwrap().result().unwrap();
        ex.spawn(|| 0).unwrap().cancel();
        ex.shutdown(true, false);
    });
}

#[test]
fn drop_and_shutdown_no_wait() {
    watchdog(|| {
        // `with ThreadPoolExecutor(max_workers=5) as e:` is a scope.
        {
            let ex = pool(5);
            let got: Vec<i32> = ex
                .map(|x: i32| x.abs(), -5..5)
                .unwrap()
                .collect::<spindle::Result<_>>()
                .unwrap();
            assert_eq!(got, [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]);
        }
        // The executor goes away (or stops waiting) while a map is not iterated yet: what
        // was submitted completes; what was not comes back as Shutdown, then the map ends.
        for how in ["drop", "shutdown(wait=False)"] {
            let ex = pool(5);
            let res = ex.map(|x: i32| x.abs(), -5..5).unwrap();
            if how == "drop" {
                drop(ex);
            } else {
                ex.shutdown(false, false);
            }
            let mut expect = (-5..5).map(i32::abs);
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
    });
}

#[test]
fn thread_names() {
    watchdog(|| {
        let ex = ThreadPoolExecutor::builder()
            .max_workers(5)
            .thread_name_prefix("SpecialPool")
            .build()
            .unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(5));
        let names: Vec<Future<String>> = (0..5)
            .map(|_| {
                let b = Arc::clone(&barrier);
                ex.spawn(move || {
                    b.wait(); // five tasks at once: five threads
                    std::thread::current().name().unwrap().to_owned()
                })
                .unwrap()
            })
            .collect();
        let mut names: Vec<String> = names.into_iter().map(|f| f.result().unwrap()).collect();
        names.sort();
        assert_eq!(
            names,
            (0..5)
                .map(|i| format!("SpecialPool_{i}"))
                .collect::<Vec<_>>()
        );
        let ex = pool(5);
        let name = ex
            .spawn(|| std::thread::current().name().unwrap().to_owned())
            .unwrap()
            .result()
            .unwrap();
        let (prefix, n) = name.rsplit_once('_').unwrap();
        assert!(n.parse::<usize>().unwrap() < 5);
        let pool_no = prefix.strip_prefix("ThreadPoolExecutor-").unwrap();
        assert!(pool_no.parse::<u64>().is_ok(), "{name}");
    });
}

#[test]
fn shutdown_no_wait_cancel_futures() {
    watchdog(|| {
        let ex = pool(2);
        let ran = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&ran);
        let f = ex
            .spawn(move || {
                std::thread::sleep(Duration::from_millis(10));
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        ex.shutdown(false, true);
        // Either it had started (and finishes) or it was cancelled; never lost.
        f.wait();
        assert!(f.cancelled() || ran.load(Ordering::SeqCst) == 1);
    });
}

#[test]
fn map_without_iteration_is_lazy() {
    watchdog(|| {
        let ex = pool(2);
        let finished = Arc::new(Mutex::new(Vec::new()));
        let f = Arc::clone(&finished);
        let m = ex
            .map(move |n: u32| f.lock().unwrap().push(n), 0..1000)
            .unwrap();
        ex.shutdown(true, false);
        let ran = finished.lock().unwrap().clone();
        let ran_set: HashSet<u32> = ran.iter().copied().collect();
        assert_eq!(ran.len(), ran_set.len(), "no item ran twice");
        // Documented difference: the input is pulled as the map is iterated, so after the
        // shutdown only what was submitted yields a value.
        let mut oks = 0;
        for r in m {
            match r {
                Ok(()) => oks += 1,
                Err(Error::Shutdown) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(oks, ran.len());
        assert!(
            ran.len() < 1000,
            "lazy: not every item ran without iteration"
        );
    });
}

#[test]
fn default_workers() {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(
        ThreadPoolExecutor::new().unwrap().max_workers(),
        32.min(cpus + 4)
    );
}

#[test]
fn saturation() {
    watchdog(|| {
        let ex = pool(4);
        let sem = Arc::new(Semaphore::new(0));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let names = Arc::new(Mutex::new(HashSet::new()));
        let fs: Vec<Future<()>> = (0..60)
            .map(|_| {
                let (s, r, m, n) = (
                    Arc::clone(&sem),
                    Arc::clone(&running),
                    Arc::clone(&most),
                    Arc::clone(&names),
                );
                ex.spawn(move || {
                    let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    n.lock()
                        .unwrap()
                        .insert(std::thread::current().name().unwrap().to_owned());
                    s.acquire();
                    r.fetch_sub(1, Ordering::SeqCst);
                })
                .unwrap()
            })
            .collect();
        assert!(eventually(LONG, || running.load(Ordering::SeqCst) == 4));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(running.load(Ordering::SeqCst), 4, "never a fifth at once");
        sem.release_n(60).unwrap();
        for f in fs {
            f.result().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 4);
        assert_eq!(names.lock().unwrap().len(), 4, "four threads, reused");
    });
}

#[test]
fn map_timeout_cancels_the_rest() {
    watchdog(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(Event::new());
        {
            let ex = pool(1);
            let (l, s) = (Arc::clone(&log), Arc::clone(&stop));
            let log_n_wait = move |ident: &'static str| {
                l.lock().unwrap().push(format!("{ident} started"));
                s.wait_timeout(LONG);
                l.lock().unwrap().push(format!("{ident} stopped"));
            };
            let first = {
                let f = log_n_wait.clone();
                ex.spawn(move || f("first")).unwrap()
            };
            let mut gen = ex
                .map_timeout(log_n_wait, ["second", "third"], Duration::ZERO)
                .unwrap();
            assert!(matches!(gen.next(), Some(Err(Error::Timeout))));
            assert!(gen.next().is_none());
            drop(gen);
            stop.set();
            first.result().unwrap();
        }
        assert_eq!(*log.lock().unwrap(), ["first started", "first stopped"]);
    });
}

// -------------------------------------------------------------------------- initializers

thread_local! {
    static INIT_STATUS: std::cell::RefCell<&'static str> = const { std::cell::RefCell::new("uninitialized") };
}

#[test]
fn initializer_runs_in_every_worker() {
    watchdog(|| {
        let ex = ThreadPoolExecutor::builder()
            .max_workers(2)
            .initializer(|| INIT_STATUS.with(|s| *s.borrow_mut() = "initialized"))
            .build()
            .unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let fs: Vec<Future<&'static str>> = (0..2)
            .map(|_| {
                let b = Arc::clone(&barrier);
                ex.spawn(move || {
                    b.wait(); // both workers, not one twice
                    INIT_STATUS.with(|s| *s.borrow())
                })
                .unwrap()
            })
            .collect();
        for f in fs {
            assert_eq!(f.result().unwrap(), "initialized");
        }
    });
}

#[test]
fn failing_initializer_breaks_the_pool() {
    watchdog(|| {
        let ex = ThreadPoolExecutor::builder()
            .max_workers(2)
            .initializer(|| {
                std::thread::sleep(Duration::from_millis(10));
                panic!("error in initializer");
            })
            .build()
            .unwrap();
        // Either submit already fails, or the future does.
        match ex.spawn(|| INIT_STATUS.with(|s| *s.borrow())) {
            Err(e) => assert!(e.as_task().is_some(), "{e}"),
            Ok(f) => {
                let e = f.result().unwrap_err();
                assert!(e.to_string().contains("error in initializer"), "{e}");
            }
        }
        // From then on, submit fails: the pool is broken.
        let e = ex.spawn(|| 0).unwrap_err();
        assert!(e.to_string().contains("broken"), "{e}");
        assert!(e.to_string().contains("error in initializer"), "{e}");
    });
}
