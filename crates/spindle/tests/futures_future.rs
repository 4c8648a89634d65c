//! `Future` and `Promise`, black-box: every state transition, results, errors, callbacks and
//! the `std::future::Future` impl. Behaviours follow CPython's `test_concurrent_futures`
//! (`FutureTests`), rewritten for spindle's types.

mod common;

use std::cell::Cell;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::futures::block_on;
use common::watchdog;
use spindle::futures::{promise, Future, Promise, ThreadPoolExecutor};
use spindle::{Error, TaskError};

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>() {}

#[test]
fn public_types_are_send_and_sync() {
    // `Future<T>` needs only `T: Send` to be shared between threads.
    assert_send_sync::<Future<Cell<u8>>>();
    assert_send_sync::<Promise<Cell<u8>>>();
    assert_send_sync::<ThreadPoolExecutor>();
    assert_send::<spindle::futures::Map<Cell<u8>>>();
    assert_send::<spindle::futures::AsCompleted<Cell<u8>>>();
}

#[test]
fn pending_running_finished() {
    watchdog(|| {
        let (p, f) = promise::<u32>();
        assert!(
            !f.done() && !f.running() && !f.cancelled(),
            "pending: {f:?}"
        );
        assert!(p.set_running_or_notify_cancel());
        assert!(f.running() && !f.done() && !f.cancelled(), "running: {f:?}");
        // A running task cannot be cancelled.
        assert!(!f.cancel());
        assert!(f.running());
        p.set_result(7).unwrap();
        assert!(
            f.done() && !f.running() && !f.cancelled(),
            "finished: {f:?}"
        );
        // Nor a finished one.
        assert!(!f.cancel());
        assert_eq!(f.exception(), None);
        assert_eq!(f.result().unwrap(), 7);
    });
}

#[test]
fn pending_cancelled() {
    watchdog(|| {
        let (p, f) = promise::<u32>();
        assert!(f.cancel());
        assert!(f.cancelled() && f.done() && !f.running());
        // Cancelling again still reports "cancelled".
        assert!(f.cancel());
        assert!(p.cancelled());
        // The executor learns it must skip the task, and cannot complete it any more.
        assert!(!p.set_running_or_notify_cancel());
        assert!(matches!(p.set_result(1), Err(Error::InvalidState(_))));
        assert!(f.exception().unwrap().is_cancelled());
        let err = f.result().unwrap_err();
        assert!(err.as_task().unwrap().is_cancelled(), "{err:?}");
    });
}

#[test]
fn a_finished_promise_cannot_be_finished_again_or_cancelled() {
    watchdog(|| {
        let (p, f) = promise::<u32>();
        assert!(p.set_running_or_notify_cancel());
        // Setting a result from pending (without running) is allowed too, as in Python.
        let (p2, f2) = promise::<u32>();
        p2.set_result(2).unwrap();
        assert_eq!(f2.result().unwrap(), 2);
        p.set_exception(TaskError::failed("nope")).unwrap();
        assert!(!f.cancel());
        assert!(!f.cancelled());
        let e = f.exception().unwrap();
        assert_eq!(e.to_string(), "task failed: nope");
        assert!(matches!(f.result(), Err(Error::Task(t)) if t == e));
    });
}

#[test]
fn result_timeout_times_out_then_succeeds_then_reports_taken() {
    watchdog(|| {
        let (p, mut f) = promise::<String>();
        assert!(matches!(
            f.result_timeout(Duration::from_millis(10)),
            Err(Error::Timeout)
        ));
        // The timeout left the future intact.
        assert!(!f.done());
        let t = thread::spawn(move || p.set_result("late".to_owned()).unwrap());
        assert_eq!(f.result_timeout(Duration::from_secs(20)).unwrap(), "late");
        t.join().unwrap();
        assert!(matches!(
            f.result_timeout(Duration::ZERO),
            Err(Error::InvalidState("result already taken"))
        ));
        assert!(f.done());
        assert_eq!(f.exception(), None);
    });
}

#[test]
fn an_error_is_handed_out_once_too() {
    watchdog(|| {
        let (p, mut f) = promise::<u8>();
        p.set_exception(TaskError::failed("bad")).unwrap();
        assert!(matches!(
            f.result_timeout(Duration::ZERO),
            Err(Error::Task(_))
        ));
        assert!(matches!(
            f.result_timeout(Duration::ZERO),
            Err(Error::InvalidState(_))
        ));
        // `exception` still tells what happened.
        assert_eq!(f.exception().unwrap().to_string(), "task failed: bad");
    });
}

#[test]
fn exception_timeout_and_wait_timeout() {
    watchdog(|| {
        let (p, f) = promise::<u8>();
        assert!(matches!(
            f.exception_timeout(Duration::from_millis(5)),
            Err(Error::Timeout)
        ));
        assert!(!f.wait_timeout(Duration::from_millis(5)));
        assert!(!f.wait_timeout(Duration::ZERO));
        let f = Arc::new(f);
        let waiter = {
            let f = Arc::clone(&f);
            thread::spawn(move || {
                f.wait();
                f.exception()
            })
        };
        p.set_exception(TaskError::failed("x")).unwrap();
        assert_eq!(
            waiter.join().unwrap().unwrap().to_string(),
            "task failed: x"
        );
        assert!(f.wait_timeout(Duration::ZERO));
        assert!(f.wait_timeout(Duration::MAX));
        assert!(f.exception_timeout(Duration::ZERO).unwrap().is_some());
    });
}

#[test]
fn dropping_an_unfulfilled_promise_fails_the_future() {
    watchdog(|| {
        let (p, f) = promise::<u8>();
        assert!(p.set_running_or_notify_cancel());
        drop(p);
        assert!(f.done());
        let err = f.result().unwrap_err();
        let task = err.as_task().expect("a task error");
        assert!(!task.is_cancelled() && !task.is_panic());
        assert!(
            task.to_string().contains("dropped without a result"),
            "{task}"
        );

        // A pending one, too.
        let (p, f) = promise::<u8>();
        drop(p);
        assert!(f.exception().is_some());
    });
}

#[test]
fn callbacks_added_before_completion_run_on_the_completing_thread_in_order() {
    watchdog(|| {
        let (p, f) = promise::<u32>();
        let (tx, rx) = mpsc::channel();
        for i in 0..3 {
            let tx = tx.clone();
            f.add_done_callback(move |r| {
                tx.send((i, *r.unwrap(), thread::current().name().map(str::to_owned)))
                    .unwrap();
            });
        }
        assert!(
            rx.try_recv().is_err(),
            "no callback may run before completion"
        );
        thread::Builder::new()
            .name("completer".into())
            .spawn(move || p.set_result(41).unwrap())
            .unwrap()
            .join()
            .unwrap();
        // `set_result` returned: the callbacks have run, in order, on the completer.
        let got: Vec<_> = rx.try_iter().collect();
        let want: Vec<_> = (0..3)
            .map(|i| (i, 41, Some("completer".to_owned())))
            .collect();
        assert_eq!(got, want);
        assert_eq!(f.result().unwrap(), 41);
    });
}

#[test]
fn a_callback_added_after_completion_runs_at_once_on_the_caller() {
    watchdog(|| {
        let (p, f) = promise::<u32>();
        p.set_result(5).unwrap();
        let seen = Arc::new(Mutex::new(None));
        let me = thread::current().id();
        {
            let seen = Arc::clone(&seen);
            f.add_done_callback(move |r| {
                *seen.lock().unwrap() = Some((*r.unwrap(), thread::current().id()));
            });
        }
        // It already ran, before `add_done_callback` returned, on this thread.
        assert_eq!(*seen.lock().unwrap(), Some((5, me)));
    });
}

#[test]
fn callbacks_see_errors_and_cancellation() {
    watchdog(|| {
        let (p, f) = promise::<u32>();
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        f.add_done_callback(move |r| tx2.send(r.unwrap_err().is_cancelled()).unwrap());
        assert!(f.cancel());
        assert_eq!(rx.try_recv(), Ok(true));
        // Late callback on a cancelled future.
        f.add_done_callback(move |r| tx.send(r.unwrap_err().is_cancelled()).unwrap());
        assert_eq!(rx.try_recv(), Ok(true));
        drop(p);
    });
}

#[test]
fn a_panicking_callback_breaks_nothing() {
    watchdog(|| {
        let (p, f) = promise::<u32>();
        let (tx, rx) = mpsc::channel();
        f.add_done_callback(|_| panic!("callback boom"));
        let tx2 = tx.clone();
        f.add_done_callback(move |r| tx2.send(*r.unwrap()).unwrap());
        p.set_result(9).unwrap();
        assert_eq!(rx.try_recv(), Ok(9));
        // And after completion too.
        f.add_done_callback(|_| panic!("late callback boom"));
        f.add_done_callback(move |r| tx.send(*r.unwrap() + 1).unwrap());
        assert_eq!(rx.try_recv(), Ok(10));
        assert!(f.done());
        assert_eq!(f.result().unwrap(), 9);
    });
}

#[test]
fn a_callback_may_add_another_callback_while_completing() {
    watchdog(|| {
        let (p, f) = promise::<u32>();
        let f = Arc::new(f);
        let (tx, rx) = mpsc::channel();
        {
            let f2 = Arc::clone(&f);
            f.add_done_callback(move |_| {
                // Runs on the completing thread, outside the future's lock.
                assert!(f2.running());
                f2.add_done_callback(move |r| tx.send(*r.unwrap()).unwrap());
            });
        }
        p.set_result(3).unwrap();
        assert_eq!(rx.try_recv(), Ok(3));
    });
}

#[test]
fn a_pool_task_panic_reaches_the_callback() {
    watchdog(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(1)
            .build()
            .unwrap();
        let f = pool.spawn(|| -> u8 { panic!("in the task") }).unwrap();
        f.wait();
        let (tx, rx) = mpsc::channel();
        f.add_done_callback(move |r| {
            tx.send(r.unwrap_err().panic_message().map(str::to_owned))
                .unwrap();
        });
        assert_eq!(rx.try_recv(), Ok(Some("in the task".to_owned())));
    });
}

#[test]
fn awaited_by_a_hand_written_block_on() {
    watchdog(|| {
        let (p, f) = promise::<u64>();
        let (tx, rx) = mpsc::channel::<()>();
        // The producer completes only after the first poll returned `Pending`, so the value
        // can only arrive through the waker.
        let producer = thread::spawn(move || {
            rx.recv().unwrap();
            p.set_result(99).unwrap();
        });
        let mut told = false;
        let (out, wakes) = block_on(f, || {
            if !told {
                told = true;
                tx.send(()).unwrap();
            }
        });
        assert_eq!(out.unwrap(), 99);
        assert!(told, "the first poll must have been pending");
        assert!(wakes >= 1, "the waker must have been woken");
        producer.join().unwrap();
    });
}

#[test]
fn awaited_on_another_thread_and_inside_an_async_block() {
    watchdog(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(2)
            .build()
            .unwrap();
        let gate = common::futures::Gate::new();
        let g = gate.clone();
        let a = pool.spawn(move || {
            g.wait();
            20u64
        });
        let b = pool.submit(|x: u64| x + 1, 21).unwrap();
        let a = a.unwrap();
        let consumer = thread::spawn(move || {
            block_on(async move { Ok::<u64, Error>(a.await? + b.await?) }, || {}).0
        });
        gate.open();
        assert_eq!(consumer.join().unwrap().unwrap(), 42);
    });
}

#[test]
fn polling_after_ready_reports_taken() {
    watchdog(|| {
        let (p, mut f) = promise::<u8>();
        p.set_result(1).unwrap();
        assert_eq!(block_on(&mut f, || {}).0.unwrap(), 1);
        assert!(matches!(
            block_on(&mut f, || {}).0,
            Err(Error::InvalidState(_))
        ));
    });
}

#[test]
fn future_pending_is_promise() {
    watchdog(|| {
        let (p, f): (Promise<&str>, Future<&str>) = Future::pending();
        assert!(p.set_running_or_notify_cancel());
        p.set_result("ok").unwrap();
        assert_eq!(f.result().unwrap(), "ok");
    });
}

#[test]
fn cancel_races_with_set_running_one_wins() {
    watchdog(|| {
        for _ in 0..200 {
            let (p, f) = promise::<u32>();
            let runner = thread::spawn(move || {
                if p.set_running_or_notify_cancel() {
                    p.set_result(1).unwrap();
                    true
                } else {
                    false
                }
            });
            let cancelled = f.cancel();
            let ran = runner.join().unwrap();
            assert_ne!(cancelled, ran, "exactly one of cancel and run must win");
            assert_eq!(f.cancelled(), cancelled);
            assert_eq!(f.result().is_ok(), ran);
        }
    });
}
