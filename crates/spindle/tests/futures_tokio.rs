//! A spindle `Future` is a `std::future::Future`: a real async runtime (tokio, multi-threaded
//! and current-thread) awaits it, wakes on completion, and can race it against its own timers.

// tokio is not built under `--cfg loom` (it reads that cfg itself); see crates/spindle/Cargo.toml.
#![cfg(not(loom))]

mod common;

use std::time::Duration;

use common::futures::Gate;
use common::watchdog;
use spindle::futures::ThreadPoolExecutor;

#[test]
fn tokio_awaits_futures_completed_on_pool_threads() {
    watchdog(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        let pool = ThreadPoolExecutor::builder()
            .max_workers(2)
            .build()
            .unwrap();
        let gate = Gate::new();
        let opened = gate.clone();
        // The task can only finish after the runtime has polled the future once and parked:
        // the value must arrive through the waker.
        let blocked = pool
            .spawn(move || {
                opened.wait();
                21_u64
            })
            .unwrap();
        let quick = pool.spawn(|| 2_u64).unwrap();
        let sum = rt.block_on(async move {
            let opener = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                gate.open();
            });
            let v = blocked.await.unwrap() * quick.await.unwrap();
            opener.await.unwrap();
            v
        });
        assert_eq!(sum, 42);
    });
}

#[test]
fn tokio_select_races_a_spindle_future_against_a_timer() {
    watchdog(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let pool = ThreadPoolExecutor::builder()
            .max_workers(1)
            .build()
            .unwrap();
        let gate = Gate::new();
        let opened = gate.clone();
        let fut = pool.spawn(move || opened.wait()).unwrap();
        let timed_out = rt.block_on(async move {
            let mut fut = fut;
            let first = tokio::select! {
                _ = &mut fut => false,
                _ = tokio::time::sleep(Duration::from_millis(10)) => true,
            };
            // The future is still usable after losing the race, and finishes once released.
            gate.open();
            fut.await.unwrap();
            first
        });
        assert!(
            timed_out,
            "a task blocked on a closed gate cannot win the race"
        );
    });
}

#[test]
fn a_panicking_task_is_an_error_when_awaited() {
    watchdog(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let pool = ThreadPoolExecutor::builder()
            .max_workers(1)
            .build()
            .unwrap();
        let fut = pool.spawn(|| -> u8 { panic!("awaited boom") }).unwrap();
        let err = rt.block_on(fut).unwrap_err();
        let task = err.as_task().expect("a task error");
        assert!(task.is_panic());
        assert_eq!(task.panic_message(), Some("awaited boom"));
    });
}
