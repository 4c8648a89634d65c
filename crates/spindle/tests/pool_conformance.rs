//! One conformance suite for `multiprocessing::Pool`, instantiated for every start method
//! (spawn and forkserver behind the switch in `tests/common/pool.rs`): every method's values
//! and order, chunking edge cases, lazy bounded input, real concurrency, worker state,
//! callbacks, close/join/terminate. Behaviours ported from CPython's
//! `Lib/test/_test_multiprocessing.py` (`_TestPool`: test_map, test_map_async,
//! test_imap, test_imap_unordered, test_starmap, test_apply, test_empty_iterable,
//! test_async_timeout, test_terminate, test_context) are marked "CPython".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use spindle::multiprocessing::pool::{Chunking, IMap};
use spindle::multiprocessing::{Pool, StartMethod};
use spindle::Error;

mod common;
use common::watchdog;

#[path = "common/pool.rs"]
#[macro_use]
mod pool_common;
use pool_common::{arrive_and_wait, Scratch};

fn square(x: u64) -> u64 {
    x * x
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn pid_of(_: u64) -> u32 {
    std::process::id()
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Arrives at the barrier in `dir` and waits for `n` arrivals (at most 10 s).
fn meet(dir: String, n: u64, i: u64) -> bool {
    arrive_and_wait(&dir, &format!("{i}"), n as usize, Duration::from_secs(10))
}

fn counter() -> u64 {
    0
}

fn count_up(c: &mut u64, _: u64) -> u64 {
    *c += 1;
    *c
}

fn mark_start(dir: String) -> Result<(), String> {
    std::fs::write(format!("{dir}/{}", std::process::id()), b"").map_err(|e| e.to_string())
}

macro_rules! conformance {
    ($name:ident, $method:ident, [$($attr:meta)?]) => {
        mod $name {
            use super::*;

            const METHOD: StartMethod = StartMethod::$method;

            fn pool(n: usize) -> Pool {
                Pool::builder().processes(n).start_method(METHOD).build().unwrap()
            }

            #[test]
            $(#[$attr])?
            fn map_returns_values_in_input_order() {
                watchdog(|| {
                    let p = pool(3);
                    assert_eq!(p.start_method(), METHOD);
                    // CPython test_map: map(sqr, range(10)) and map(sqr, range(100), chunksize=20)
                    let want: Vec<u64> = (0..100).map(|x| x * x).collect();
                    assert_eq!(p.map(square, 0..100).unwrap(), want);
                    assert_eq!(p.call().chunksize(20).map(square, 0..100).unwrap(), want);
                    assert_eq!(p.call().chunksize(1).map(square, 0..100).unwrap(), want);
                    assert_eq!(
                        p.call().chunking(Chunking::Python).map(square, (0..100).filter(|_| true)).unwrap(),
                        want
                    );
                    assert_eq!(p.starmap(add, (0..10).map(|i| (i, 10 * i))).unwrap(),
                        (0..10).map(|i| 11 * i).collect::<Vec<_>>());
                });
            }

            #[test]
            $(#[$attr])?
            fn edge_cases_empty_one_item_and_more_workers_than_items() {
                watchdog(|| {
                    let p = pool(4);
                    // CPython test_empty_iterable
                    assert_eq!(p.map(square, Vec::<u64>::new()).unwrap(), Vec::<u64>::new());
                    assert_eq!(p.imap(square, Vec::<u64>::new()).unwrap().count(), 0);
                    assert_eq!(p.imap_unordered(square, Vec::<u64>::new()).unwrap().count(), 0);
                    assert_eq!(p.map_async(square, Vec::<u64>::new()).unwrap().get().unwrap(), Vec::<u64>::new());
                    assert_eq!(p.starmap(add, Vec::<(u64, u64)>::new()).unwrap(), Vec::<u64>::new());
                    assert_eq!(p.map(square, [7]).unwrap(), [49]);
                    assert_eq!(p.map(square, [1, 2]).unwrap(), [1, 4]);
                    assert_eq!(p.call().chunksize(1000).map(square, 0..3).unwrap(), [0, 1, 4]);
                });
            }

            #[test]
            $(#[$attr])?
            fn async_results_and_callbacks() {
                watchdog(|| {
                    let p = pool(2);
                    // CPython test_map_async, test_apply, test_async
                    let r = p.map_async(square, 0..10).unwrap();
                    let seen = Arc::new(AtomicU64::new(0));
                    let s2 = Arc::clone(&seen);
                    r.on_success(move |v| s2.store(v.iter().sum(), Ordering::SeqCst));
                    assert_eq!(r.get().unwrap(), (0..10).map(|x| x * x).collect::<Vec<_>>());
                    assert_eq!(seen.load(Ordering::SeqCst), 285);
                    assert_eq!(p.apply(add, (2, 3)).unwrap(), 5);
                    let mut a = p.apply_async(sleep_ms, (300,)).unwrap();
                    assert!(!a.ready());
                    assert!(matches!(a.successful(), Err(Error::InvalidState(_))));
                    // CPython test_async_timeout
                    assert!(matches!(a.get_timeout(Duration::from_millis(10)), Err(Error::Timeout)));
                    assert!(a.wait_timeout(Duration::from_secs(10)));
                    assert!(a.successful().unwrap());
                    assert_eq!(a.get_timeout(Duration::ZERO).unwrap(), 300);
                    assert!(matches!(a.get_timeout(Duration::ZERO), Err(Error::InvalidState(_))));
                    let s = p.starmap_async(add, [(1, 1), (2, 2)]).unwrap();
                    assert_eq!(s.get().unwrap(), [2, 4]);
                    // A callback added after the end runs at once.
                    let late = p.apply_async(square, (9,)).unwrap();
                    late.wait();
                    let s3 = Arc::clone(&seen);
                    late.on_success(move |v| s3.store(*v, Ordering::SeqCst));
                    assert_eq!(seen.load(Ordering::SeqCst), 81);
                });
            }

            #[test]
            $(#[$attr])?
            fn imap_is_ordered_and_imap_unordered_has_every_value() {
                watchdog(|| {
                    let p = pool(3);
                    // CPython test_imap, test_imap_unordered
                    let it = p.imap(square, 0..50).unwrap();
                    let got: Vec<u64> = it.map(Result::unwrap).collect();
                    assert_eq!(got, (0..50).map(|x| x * x).collect::<Vec<_>>());
                    let it = p.call().chunksize(7).imap(square, 0..50).unwrap();
                    assert_eq!(it.map(Result::unwrap).collect::<Vec<_>>(), (0..50).map(|x| x * x).collect::<Vec<_>>());
                    let mut got: Vec<u64> = p.imap_unordered(square, 0..50).unwrap().map(Result::unwrap).collect();
                    got.sort_unstable();
                    assert_eq!(got, (0..50).map(|x| x * x).collect::<Vec<_>>());
                    // next with a timeout
                    let mut it = p.imap(sleep_ms, [300, 0]).unwrap();
                    assert!(matches!(it.next_timeout(Duration::from_millis(5)), Some(Err(Error::Timeout))));
                    assert_eq!(it.next().unwrap().unwrap(), 300);
                    assert_eq!(it.next().unwrap().unwrap(), 0);
                    assert!(it.next().is_none());
                });
            }

            #[test]
            $(#[$attr])?
            fn imap_over_an_endless_input_pulls_a_bounded_window() {
                watchdog(|| {
                    let p = pool(2);
                    let pulled = Arc::new(AtomicU64::new(0));
                    let counted = Arc::clone(&pulled);
                    let endless = (0u64..).inspect(move |_| {
                        counted.fetch_add(1, Ordering::SeqCst);
                    });
                    let mut it: IMap<u64> = p.imap(square, endless).unwrap();
                    for i in 0..2000u64 {
                        assert_eq!(it.next().unwrap().unwrap(), i * i);
                    }
                    let n = pulled.load(Ordering::SeqCst);
                    assert_eq!(it.pulled(), n);
                    // The window: never more than 65,536 items ahead of the consumer.
                    assert!((2000..=2000 + 65_536).contains(&n), "pulled {n}");
                    drop(it);
                    let after = pulled.load(Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    assert_eq!(pulled.load(Ordering::SeqCst), after, "dropping stops pulling");
                    // buffersize bounds it tighter.
                    let pulled = Arc::new(AtomicU64::new(0));
                    let counted = Arc::clone(&pulled);
                    let endless = (0u64..).inspect(move |_| {
                        counted.fetch_add(1, Ordering::SeqCst);
                    });
                    let mut it = p.call().buffersize(10).imap(square, endless).unwrap();
                    for _ in 0..100 {
                        it.next().unwrap().unwrap();
                    }
                    let n = pulled.load(Ordering::SeqCst);
                    assert!((100..=110).contains(&n), "pulled {n} with buffersize 10");
                    // The pool still serves calls after an abandoned iterator.
                    drop(it);
                    assert_eq!(p.map(square, [3]).unwrap(), [9]);
                });
            }

            #[test]
            $(#[$attr])?
            fn n_workers_run_n_tasks_at_once() {
                watchdog(|| {
                    // Only tasks that run at the same time can all pass the barrier.
                    for n in [2u64, 3] {
                        let p = pool(n as usize);
                        let dir = Scratch::new("meet");
                        let passed = p
                            .call()
                            .chunksize(1)
                            .starmap(meet, (0..n).map(|i| (dir.path(), n, i)))
                            .unwrap();
                        assert_eq!(passed, vec![true; n as usize], "{n} workers");
                        let pids: std::collections::HashSet<u32> =
                            p.call().chunksize(1).map(pid_of, 0..n).unwrap().into_iter().collect();
                        assert!(!pids.contains(&std::process::id()));
                    }
                });
            }

            #[test]
            $(#[$attr])?
            fn worker_state_and_initializer_run_once_per_worker() {
                watchdog(|| {
                    let dir = Scratch::new("init");
                    let p = Pool::builder()
                        .processes(2)
                        .start_method(METHOD)
                        .initializer(mark_start, (dir.path(),))
                        .worker_state(counter, ())
                        .build()
                        .unwrap();
                    let counts = p.call().chunksize(1).map_with_state(count_up, 0..20).unwrap();
                    // Each worker counts its own items with the state it keeps between tasks:
                    // the counts are 1..=k1 and 1..=k2 with k1 + k2 = 20.
                    let k1 = *counts.iter().max().unwrap();
                    let k2 = 20 - k1;
                    let mut want: Vec<u64> = (1..=k1).chain(1..=k2).collect();
                    want.sort_unstable();
                    let mut got = counts.clone();
                    got.sort_unstable();
                    assert_eq!(got, want, "{counts:?}");
                    assert_eq!(dir.count(), 2, "one initializer run per worker");
                    let one = p.apply_async_with_state(count_up, 0).unwrap().get().unwrap();
                    assert!(one == k1 + 1 || one == k2 + 1, "{one} after {k1} and {k2}");
                });
            }

            #[test]
            $(#[$attr])?
            fn close_then_join_finishes_the_work_and_refuses_more() {
                watchdog(|| {
                    let p = pool(2);
                    let r = p.map_async(sleep_ms, [50, 50, 50]).unwrap();
                    assert!(matches!(p.join(), Err(Error::InvalidState(_))), "join before close");
                    p.close();
                    assert!(matches!(p.map(square, [1]), Err(Error::Shutdown)));
                    p.join().unwrap();
                    assert_eq!(r.get().unwrap(), [50, 50, 50]);
                    assert!(p.pids().is_empty(), "every worker exited");
                });
            }

            #[test]
            $(#[$attr])?
            fn terminate_ends_pending_results_at_once() {
                watchdog(|| {
                    let p = pool(2);
                    // CPython test_terminate: a long map_async, then terminate
                    let r = p.call().chunksize(1).map_async(sleep_ms, vec![10_000; 20]).unwrap();
                    let a = p.apply_async(sleep_ms, (10_000,)).unwrap();
                    let mut it = p.imap(sleep_ms, vec![10_000; 5]).unwrap();
                    std::thread::sleep(Duration::from_millis(50));
                    p.terminate();
                    let e = r.get().unwrap_err();
                    assert!(e.as_task().unwrap().is_cancelled(), "{e}");
                    assert!(a.get().unwrap_err().as_task().unwrap().is_cancelled());
                    let first = it.next().unwrap().unwrap_err();
                    assert!(first.as_task().unwrap().is_cancelled(), "{first}");
                    p.join().unwrap();
                    assert!(p.pids().is_empty());
                });
            }
        }
    };
}

per_start_method!(conformance);

#[test]
fn a_pool_inside_cargo_test_with_the_default_builder() {
    watchdog(|| {
        let p = Pool::builder()
            .start_method(StartMethod::Fork)
            .build()
            .unwrap();
        assert_eq!(p.processes(), spindle::multiprocessing::cpu_count());
        assert_eq!(p.map(square, 1..=5).unwrap(), [1, 4, 9, 16, 25]);
    });
}

#[test]
fn bad_settings_are_typed_errors() {
    assert!(matches!(
        Pool::builder().processes(0).build(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Pool::builder()
            .processes(1)
            .maxtasksperchild(0)
            .start_method(StartMethod::Fork)
            .build(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Pool::builder()
            .processes(1)
            .start_method(StartMethod::Spawn)
            .fork_initializer(|| ())
            .build(),
        Err(Error::InvalidArgument(_))
    ));
    let p = Pool::builder()
        .processes(1)
        .start_method(StartMethod::Fork)
        .build()
        .unwrap();
    assert!(matches!(
        p.call().chunksize(0).map(square, [1]),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn the_public_pool_types_are_send_and_sync_where_they_should_be() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Pool>();
    send_sync::<spindle::multiprocessing::dummy::Pool>();
    send_sync::<spindle::futures::ProcessPoolExecutor>();
    send_sync::<spindle::multiprocessing::pool::AsyncResult<Vec<u64>>>();
    send::<IMap<u64>>();
    send::<spindle::multiprocessing::pool::IMapUnordered<String>>();
}
