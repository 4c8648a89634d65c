//! `ThreadPoolExecutor::map` when the iterating thread runs chunks itself: every item still
//! runs exactly once, results stay in order, panics stay per item, and the rules on when the
//! caller may not help (an initializer, a deadline, a cancelling shutdown) hold.

mod common;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, ThreadId};
use std::time::Duration;

use common::watchdog;
use spindle::futures::ThreadPoolExecutor;
use spindle::{Error, Result};

fn pool(n: usize) -> ThreadPoolExecutor {
    ThreadPoolExecutor::builder()
        .max_workers(n)
        .build()
        .unwrap()
}

const N: usize = 100_000;

/// Maps over `0..N` on `pool`, counting the calls of each item and those made on the
/// iterating thread; returns the results and the number of calls made by the caller.
fn counted_map(pool: &ThreadPoolExecutor) -> (Vec<Result<usize>>, Arc<Vec<AtomicU8>>, usize) {
    let calls: Arc<Vec<AtomicU8>> = Arc::new((0..N).map(|_| AtomicU8::new(0)).collect());
    let on_caller = Arc::new(AtomicUsize::new(0));
    let me: ThreadId = thread::current().id();
    let (c, oc) = (Arc::clone(&calls), Arc::clone(&on_caller));
    let results: Vec<Result<usize>> = pool
        .map(
            move |i: usize| {
                c[i].fetch_add(1, Ordering::Relaxed);
                if thread::current().id() == me {
                    oc.fetch_add(1, Ordering::Relaxed);
                }
                i * 3
            },
            0..N,
        )
        .unwrap()
        .collect();
    let on_caller = on_caller.load(Ordering::Relaxed);
    (results, calls, on_caller)
}

#[test]
fn every_item_runs_exactly_once_in_order_whoever_runs_it() {
    watchdog(|| {
        for workers in [1, 2, 4] {
            let pool = pool(workers);
            let (results, calls, on_caller) = counted_map(&pool);
            assert_eq!(results.len(), N);
            for (i, r) in results.into_iter().enumerate() {
                assert_eq!(r.unwrap(), i * 3);
            }
            for (i, c) in calls.iter().enumerate() {
                assert_eq!(
                    c.load(Ordering::Relaxed),
                    1,
                    "item {i} with {workers} workers"
                );
            }
            // Some chunks are always kept for the caller to time, so it took part.
            assert!(
                on_caller > 0,
                "the caller ran nothing with {workers} workers"
            );
            assert!(on_caller <= N);
        }
    });
}

#[test]
fn panics_stay_per_item_when_the_caller_runs_the_chunk() {
    watchdog(|| {
        let pool = pool(2);
        let me = thread::current().id();
        let panicked_here = Arc::new(AtomicUsize::new(0));
        let ph = Arc::clone(&panicked_here);
        let results: Vec<Result<usize>> = pool
            .map(
                move |i: usize| {
                    if i % 1000 == 7 {
                        if thread::current().id() == me {
                            ph.fetch_add(1, Ordering::Relaxed);
                        }
                        panic!("bad {i}");
                    }
                    i
                },
                0..N,
            )
            .unwrap()
            .collect();
        assert_eq!(results.len(), N);
        for (i, r) in results.into_iter().enumerate() {
            if i % 1000 == 7 {
                let e = r.unwrap_err();
                let task = e.as_task().unwrap();
                assert_eq!(task.panic_message(), Some(format!("bad {i}").as_str()));
            } else {
                assert_eq!(r.unwrap(), i);
            }
        }
        // The panics the caller met were caught like the workers' ones (the test thread
        // survived to get here); at least one happened on it (chunks are kept for it).
        assert!(panicked_here.load(Ordering::Relaxed) > 0);
    });
}

thread_local! {
    static INITIALIZED: Cell<bool> = const { Cell::new(false) };
}

#[test]
fn with_an_initializer_items_run_only_on_initialized_workers() {
    watchdog(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(2)
            .initializer(|| INITIALIZED.with(|i| i.set(true)))
            .build()
            .unwrap();
        let uninitialized = pool
            .map(|_: usize| INITIALIZED.with(Cell::get), 0..N)
            .unwrap()
            .filter(|r| !r.as_ref().unwrap())
            .count();
        assert_eq!(uninitialized, 0);
    });
}

#[test]
fn with_a_deadline_items_run_only_on_workers() {
    watchdog(|| {
        let pool = pool(2);
        let me = thread::current().id();
        let on_caller = pool
            .map_timeout(
                move |_: usize| thread::current().id() == me,
                0..N,
                Duration::from_secs(25),
            )
            .unwrap()
            .filter(|r| *r.as_ref().unwrap())
            .count();
        assert_eq!(on_caller, 0);
    });
}

#[test]
fn a_cancelling_shutdown_stops_the_chunks_kept_for_the_caller_too() {
    watchdog(|| {
        let pool = pool(1);
        let shut = Arc::new(AtomicBool::new(false));
        let ran_after = Arc::new(AtomicUsize::new(0));
        let (s, ra) = (Arc::clone(&shut), Arc::clone(&ran_after));
        let mut m = pool
            .map(
                move |x: u64| {
                    if s.load(Ordering::SeqCst) {
                        ra.fetch_add(1, Ordering::SeqCst);
                    }
                    x
                },
                0..1_000_000u64,
            )
            .unwrap();
        // Far enough for big chunks to be in flight (some may be kept for the caller; the
        // unit tests of `pending` pin the cancellation of those down deterministically).
        const SEEN: u64 = 50_000;
        for i in 0..SEEN {
            assert_eq!(m.next().unwrap().unwrap(), i);
        }
        // With `wait`, no worker runs anything once this returns.
        pool.shutdown(true, true);
        shut.store(true, Ordering::SeqCst);
        let (mut ok, mut cancelled, mut shutdown) = (SEEN, 0u64, 0u64);
        let mut next = SEEN;
        for r in m {
            match r {
                Ok(v) => {
                    assert_eq!(v, next);
                    ok += 1;
                }
                Err(Error::Task(t)) if t.is_cancelled() => cancelled += 1,
                Err(Error::Shutdown) => shutdown += 1,
                Err(e) => panic!("unexpected {e:?}"),
            }
            next += 1;
        }
        assert_eq!(
            ran_after.load(Ordering::SeqCst),
            0,
            "items ran after the shutdown"
        );
        assert!(ok < 1_000_000);
        assert_eq!(shutdown, 1);
        assert_eq!(ok + cancelled + shutdown, next);
    });
}
