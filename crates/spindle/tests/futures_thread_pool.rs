//! `ThreadPoolExecutor`, black-box: concurrency, cancellation, shutdown, panics, settings and
//! `map`. Behaviours follow CPython's `test_concurrent_futures` (`ThreadPoolExecutorTest`,
//! `ExecutorShutdownTest`, `ExecutorTest.test_map*`), rewritten for spindle's types.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use common::futures::Gate;
use common::watchdog;
use spindle::futures::{Executor, Future, ThreadPoolExecutor};
use spindle::{Error, Result};

fn pool(n: usize) -> ThreadPoolExecutor {
    ThreadPoolExecutor::builder()
        .max_workers(n)
        .build()
        .unwrap()
}

/// Submits a task that signals `started` and then blocks until `gate` opens.
fn blocker(pool: &ThreadPoolExecutor, gate: &Gate) -> Future<&'static str> {
    let (tx, rx) = mpsc::channel();
    let g = gate.clone();
    let f = pool
        .spawn(move || {
            tx.send(()).unwrap();
            g.wait();
            "unblocked"
        })
        .unwrap();
    rx.recv().unwrap();
    f
}

#[test]
fn tasks_overlap_up_to_max_workers() {
    watchdog(|| {
        const WORKERS: usize = 4;
        let pool = pool(WORKERS);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        // Each round of WORKERS tasks can only pass the barrier if all of them run at once.
        let barrier = Arc::new(Barrier::new(WORKERS));
        let fs: Vec<_> = (0..3 * WORKERS)
            .map(|i| {
                let (running, most, barrier) = (
                    Arc::clone(&running),
                    Arc::clone(&most),
                    Arc::clone(&barrier),
                );
                pool.spawn(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    barrier.wait();
                    running.fetch_sub(1, Ordering::SeqCst);
                    i
                })
                .unwrap()
            })
            .collect();
        let got: Vec<usize> = fs.into_iter().map(|f| f.result().unwrap()).collect();
        assert_eq!(got, (0..3 * WORKERS).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), WORKERS);
        assert_eq!(pool.max_workers(), WORKERS);
    });
}

#[test]
fn default_and_invalid_max_workers() {
    watchdog(|| {
        let cpus = thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(
            ThreadPoolExecutor::new().unwrap().max_workers(),
            32.min(cpus + 4)
        );
        let err = ThreadPoolExecutor::builder()
            .max_workers(0)
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    });
}

#[test]
fn queued_tasks_can_be_cancelled_running_ones_cannot() {
    watchdog(|| {
        let pool = pool(1);
        let gate = Gate::new();
        let first = blocker(&pool, &gate);
        let ran = Arc::new(AtomicUsize::new(0));
        let queued: Vec<_> = (0..3)
            .map(|i| {
                let ran = Arc::clone(&ran);
                pool.spawn(move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                    i
                })
                .unwrap()
            })
            .collect();
        assert!(first.running());
        assert!(!first.cancel(), "a running task cannot be cancelled");
        assert!(!queued[1].running() && !queued[1].done());
        assert!(queued[1].cancel());
        assert!(queued[1].cancelled() && queued[1].done());
        gate.open();
        assert_eq!(first.result().unwrap(), "unblocked");
        let results: Vec<_> = queued.into_iter().map(Future::result).collect();
        assert_eq!(results[0].as_ref().unwrap(), &0);
        assert!(results[1]
            .as_ref()
            .unwrap_err()
            .as_task()
            .unwrap()
            .is_cancelled());
        assert_eq!(results[2].as_ref().unwrap(), &2);
        // The cancelled task never ran.
        assert_eq!(ran.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn shutdown_with_cancel_futures_cancels_the_queue_and_lets_running_tasks_finish() {
    watchdog(|| {
        let pool = pool(1);
        let gate = Gate::new();
        let running = blocker(&pool, &gate);
        let queued: Vec<_> = (0..3)
            .map(|i| pool.submit(|x: u32| x, i).unwrap())
            .collect();
        pool.shutdown(false, true);
        for f in &queued {
            assert!(f.cancelled(), "{f:?}");
        }
        assert!(running.running());
        assert!(matches!(pool.spawn(|| ()), Err(Error::Shutdown)));
        gate.open();
        assert_eq!(running.result().unwrap(), "unblocked");
        // Idempotent, and now waits for the workers.
        pool.shutdown(true, true);
        pool.shutdown(true, false);
        for f in queued {
            assert!(f.result().unwrap_err().as_task().unwrap().is_cancelled());
        }
    });
}

#[test]
fn shutdown_without_cancel_runs_the_queue() {
    watchdog(|| {
        let pool = pool(2);
        let gate = Gate::new();
        let first = blocker(&pool, &gate);
        let queued: Vec<_> = (0..10)
            .map(|i| pool.submit(|x: u32| x * 3, i).unwrap())
            .collect();
        let g = gate.clone();
        let opener = thread::spawn(move || g.open());
        pool.shutdown(true, false);
        opener.join().unwrap();
        // `shutdown(wait = true)` returned: everything has run.
        assert!(first.done());
        assert!(queued.iter().all(Future::done));
        let got: Vec<u32> = queued.into_iter().map(|f| f.result().unwrap()).collect();
        assert_eq!(got, (0..10).map(|x| x * 3).collect::<Vec<_>>());
    });
}

#[test]
fn submit_after_shutdown_is_an_error_for_every_entry_point() {
    watchdog(|| {
        let pool = pool(2);
        pool.shutdown(true, false);
        assert!(matches!(pool.spawn(|| 1), Err(Error::Shutdown)));
        assert!(matches!(pool.submit(|x: u8| x, 1), Err(Error::Shutdown)));
        assert!(matches!(
            pool.map(|x: u8| x, vec![1, 2]),
            Err(Error::Shutdown)
        ));
        fn id(x: u8) -> u8 {
            x
        }
        assert!(matches!(
            Executor::submit(&pool, id, 1),
            Err(Error::Shutdown)
        ));
        assert!(matches!(
            Executor::map(&pool, id, vec![1]),
            Err(Error::Shutdown)
        ));
    });
}

#[test]
fn dropping_the_executor_waits_for_queued_tasks() {
    watchdog(|| {
        let pool = pool(2);
        let fs: Vec<_> = (0..20u64)
            .map(|i| pool.submit(|x: u64| x * x, i).unwrap())
            .collect();
        drop(pool);
        assert!(fs.iter().all(Future::done));
        let sum: u64 = fs.into_iter().map(|f| f.result().unwrap()).sum();
        assert_eq!(sum, (0..20u64).map(|x| x * x).sum());
    });
}

#[test]
fn a_panic_is_a_typed_error_and_the_pool_keeps_working() {
    watchdog(|| {
        let pool = pool(1);
        let before = pool
            .spawn(|| thread::current().id())
            .unwrap()
            .result()
            .unwrap();
        let f = pool
            .submit(|x: u32| -> u32 { panic!("boom {x}") }, 7)
            .unwrap();
        let err = f.result().unwrap_err();
        let task = err.as_task().expect("a task error");
        assert!(task.is_panic());
        assert_eq!(task.panic_message(), Some("boom 7"));
        assert!(task
            .panic()
            .unwrap()
            .location()
            .unwrap()
            .contains("futures_thread_pool.rs"));
        // The same (only) worker survived and runs the next task.
        let after = pool
            .spawn(|| thread::current().id())
            .unwrap()
            .result()
            .unwrap();
        assert_eq!(before, after);
        assert_eq!(pool.submit(|x: u32| x + 1, 1).unwrap().result().unwrap(), 2);
    });
}

#[test]
fn initializer_runs_once_per_worker_and_threads_carry_the_prefix() {
    watchdog(|| {
        const WORKERS: usize = 3;
        let inits = Arc::new(Mutex::new(Vec::new()));
        let pool = {
            let inits = Arc::clone(&inits);
            ThreadPoolExecutor::builder()
                .max_workers(WORKERS)
                .thread_name_prefix("dl")
                .initializer(move || {
                    inits
                        .lock()
                        .unwrap()
                        .push(thread::current().name().unwrap().to_owned());
                })
                .build()
                .unwrap()
        };
        let barrier = Arc::new(Barrier::new(WORKERS));
        // Several rounds, every one needing all workers at once: threads are reused, so
        // the initializer still runs exactly once per thread.
        for _ in 0..3 {
            let fs: Vec<_> = (0..WORKERS)
                .map(|_| {
                    let barrier = Arc::clone(&barrier);
                    pool.spawn(move || {
                        barrier.wait();
                        thread::current().name().unwrap().to_owned()
                    })
                    .unwrap()
                })
                .collect();
            let names: BTreeSet<String> = fs.into_iter().map(|f| f.result().unwrap()).collect();
            assert_eq!(names.len(), WORKERS);
            assert!(names.iter().all(|n| n.starts_with("dl_")), "{names:?}");
            let inited: BTreeSet<String> = inits.lock().unwrap().iter().cloned().collect();
            assert_eq!(names, inited);
        }
        assert_eq!(inits.lock().unwrap().len(), WORKERS);
    });
}

#[test]
fn a_panicking_initializer_breaks_the_pool() {
    watchdog(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(1)
            .initializer(|| panic!("no database"))
            .build()
            .unwrap();
        let f = pool.spawn(|| 1).unwrap();
        let err = f.result().unwrap_err();
        assert!(
            err.to_string()
                .contains("initializer panicked: no database"),
            "{err}"
        );
        // Later submits fail at once, with the same explanation.
        let err = pool.spawn(|| 1).unwrap_err();
        assert!(err.to_string().contains("no database"), "{err}");
    });
}

#[test]
fn shutdown_from_inside_a_task_does_not_deadlock() {
    watchdog(|| {
        let pool = Arc::new(pool(2));
        let p = Arc::clone(&pool);
        let f = pool
            .spawn(move || {
                p.shutdown(true, false);
                "done"
            })
            .unwrap();
        assert_eq!(f.result().unwrap(), "done");
        assert!(matches!(pool.spawn(|| ()), Err(Error::Shutdown)));
    });
}

#[test]
fn map_keeps_input_order() {
    watchdog(|| {
        let pool = pool(4);
        let got: Vec<u64> = pool
            .map(|x: u64| x * 2, 0..20_000u64)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(got, (0..20_000u64).map(|x| x * 2).collect::<Vec<_>>());
        // Inputs that are not `Copy`, and an empty input.
        let words = vec!["a".to_owned(), "bb".to_owned(), "ccc".to_owned()];
        let lens: Vec<usize> = pool
            .map(|s: String| s.len(), words)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(lens, [1, 2, 3]);
        assert_eq!(pool.map(|x: u8| x, Vec::new()).unwrap().count(), 0);
    });
}

#[test]
fn map_runs_in_parallel() {
    watchdog(|| {
        // Four items that can only finish if all four run at once.
        const WORKERS: usize = 4;
        let pool = pool(WORKERS);
        let barrier = Arc::new(Barrier::new(WORKERS));
        let b = Arc::clone(&barrier);
        let got: Vec<usize> = pool
            .map(
                move |i: usize| {
                    b.wait();
                    i
                },
                0..WORKERS,
            )
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(got, [0, 1, 2, 3]);
    });
}

#[test]
fn map_with_a_panic_in_one_item() {
    watchdog(|| {
        let pool = pool(3);
        let results: Vec<Result<u32>> = pool
            .map(
                |x: u32| {
                    if x == 500 {
                        panic!("bad item {x}")
                    } else {
                        x + 1
                    }
                },
                0..1000,
            )
            .unwrap()
            .collect();
        assert_eq!(results.len(), 1000);
        for (i, r) in results.iter().enumerate() {
            if i == 500 {
                let task = r.as_ref().unwrap_err().as_task().unwrap();
                assert_eq!(task.panic_message(), Some("bad item 500"));
            } else {
                assert_eq!(*r.as_ref().unwrap(), i as u32 + 1);
            }
        }
        // Several panics, next to each other too.
        let bad = |x: &u32| x % 7 == 0 || x % 7 == 1;
        let results: Vec<Result<u32>> = pool
            .map(
                move |x: u32| if bad(&x) { panic!("p{x}") } else { x },
                0..200,
            )
            .unwrap()
            .collect();
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(v) => assert!(!bad(&(i as u32)) && v == i as u32),
                Err(e) => {
                    assert!(bad(&(i as u32)));
                    assert_eq!(
                        e.as_task().unwrap().panic_message(),
                        Some(format!("p{i}").as_str())
                    );
                }
            }
        }
    });
}

#[test]
fn map_timeout_yields_one_timeout_then_ends() {
    watchdog(|| {
        let pool = pool(4);
        let gate = Gate::new();
        let g = gate.clone();
        let mut results = pool
            .map_timeout(
                move |x: u32| {
                    if x == 2 {
                        g.wait();
                    }
                    x
                },
                0..6,
                Duration::from_millis(300),
            )
            .unwrap();
        assert_eq!(results.next().unwrap().unwrap(), 0);
        assert_eq!(results.next().unwrap().unwrap(), 1);
        assert!(matches!(results.next(), Some(Err(Error::Timeout))));
        assert!(results.next().is_none());
        assert!(results.next().is_none());
        gate.open();
    });
}

#[test]
fn dropping_a_map_midway_is_fine() {
    watchdog(|| {
        let pool = pool(2);
        let mut m = pool.map(|x: u64| x + 1, 0..1_000_000u64).unwrap();
        assert_eq!(m.next().unwrap().unwrap(), 1);
        drop(m);
        assert_eq!(pool.submit(|x: u8| x, 5).unwrap().result().unwrap(), 5);
    });
}

#[test]
fn a_map_outliving_a_shutdown_reports_it() {
    watchdog(|| {
        let pool = pool(1);
        let m = pool.map(|x: u64| x, 0..1_000_000u64).unwrap();
        pool.shutdown(true, false);
        let mut ok = 0u64;
        let mut errors = Vec::new();
        for r in m {
            match r {
                Ok(_) => ok += 1,
                Err(e) => errors.push(e),
            }
        }
        // What was submitted before the shutdown ran; then one `Shutdown` error, the end.
        assert!(ok > 0 && ok < 1_000_000);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(matches!(errors[0], Error::Shutdown));
    });
}

fn square(x: u64) -> u64 {
    x * x
}

/// Written once against the trait: works with every executor.
fn sum_of_squares<E: Executor>(ex: &E, n: u64) -> Result<u64> {
    let f = ex.submit(square, n)?;
    let rest: u64 = ex.map(square, 0..n)?.sum::<Result<u64>>()?;
    Ok(f.result()? + rest)
}

#[test]
fn the_executor_trait() {
    watchdog(|| {
        let pool = pool(2);
        assert_eq!(sum_of_squares(&pool, 10).unwrap(), 100 + 285);
        let mut m = Executor::map_timeout(&pool, square, 1..4, Duration::from_secs(20)).unwrap();
        assert_eq!(m.next().unwrap().unwrap(), 1);
        Executor::shutdown(&pool, true, false);
        assert!(matches!(
            Executor::submit(&pool, square, 1),
            Err(Error::Shutdown)
        ));
    });
}

/// An executor that only implements `submit`, to exercise the trait's default `map`.
struct OneByOne(ThreadPoolExecutor);

impl Executor for OneByOne {
    fn submit<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
        R: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        self.0.submit(f, arg)
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.0.shutdown(wait, cancel_futures);
    }
}

static ORDER_GATES: Mutex<Vec<Gate>> = Mutex::new(Vec::new());

/// Item `i` waits until item `i + 1` has finished: completion order is the reverse of
/// input order.
fn reverse_finisher(i: usize) -> usize {
    let gates = ORDER_GATES.lock().unwrap().clone();
    if i + 1 < gates.len() {
        gates[i + 1].wait();
    }
    gates[i].open();
    i
}

#[test]
fn default_map_is_ordered_whatever_the_completion_order() {
    watchdog(|| {
        const N: usize = 6;
        *ORDER_GATES.lock().unwrap() = (0..N).map(|_| Gate::new()).collect();
        let ex = OneByOne(pool(N));
        let got: Vec<usize> = ex
            .map(reverse_finisher, 0..N)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(got, (0..N).collect::<Vec<_>>());
        assert_eq!(sum_of_squares(&ex, 3).unwrap(), 9 + 5);
        ex.shutdown(true, false);
        assert!(matches!(ex.map(square, 0..3), Err(Error::Shutdown)));
    });
}

#[test]
fn default_map_timeout() {
    watchdog(|| {
        static GATE: Mutex<Option<Gate>> = Mutex::new(None);
        fn slow(x: u32) -> u32 {
            if x == 1 {
                let gate = GATE.lock().unwrap().clone().unwrap();
                gate.wait();
            }
            x
        }
        let gate = Gate::new();
        *GATE.lock().unwrap() = Some(gate.clone());
        let ex = OneByOne(pool(2));
        let mut m = ex
            .map_timeout(slow, 0..4, Duration::from_millis(300))
            .unwrap();
        assert_eq!(m.next().unwrap().unwrap(), 0);
        assert!(matches!(m.next(), Some(Err(Error::Timeout))));
        assert!(m.next().is_none());
        gate.open();
    });
}
