//! `max_workers` bounds what runs at once, always (issue #11): a gauge — the most items seen
//! running at once — never goes above `max_workers`, for `map`, for `submit`, and when the
//! thread iterating a `map` runs chunks itself; with 1, 2 and 3 workers and items that block.
//!
//! Each gauge must also *reach* `max_workers` (the first items wait, up to a bound, until that
//! many run at once), so a pool that ran one item at a time could not pass either.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;

use common::watchdog;
use spindle::futures::ThreadPoolExecutor;

/// Counts the items running now and the most seen at once; items block in [`Gauge::run`].
#[derive(Default)]
struct Gauge {
    state: Mutex<(usize, usize)>,
    cv: Condvar,
}

impl Gauge {
    /// One blocking item: enters, waits until `fill` items run at once (bounded: at most
    /// 2 s, so that a run that cannot fill still ends), then holds its place a little
    /// longer, so that an item started beyond the bound would be seen beside it.
    fn run(&self, fill: usize) {
        let mut s = self.state.lock().unwrap();
        s.0 += 1;
        s.1 = s.1.max(s.0);
        self.cv.notify_all();
        let (g, _) = self
            .cv
            .wait_timeout_while(s, Duration::from_secs(2), |s| s.0 < fill && s.1 < fill)
            .unwrap();
        drop(g);
        thread::sleep(Duration::from_millis(3));
        let mut s = self.state.lock().unwrap();
        s.0 -= 1;
    }

    fn peak(&self) -> usize {
        self.state.lock().unwrap().1
    }
}

fn pool(workers: usize) -> ThreadPoolExecutor {
    ThreadPoolExecutor::builder()
        .max_workers(workers)
        .build()
        .unwrap()
}

#[test]
fn map_of_blocking_items_never_runs_more_than_max_workers() {
    watchdog(|| {
        for workers in [1, 2, 3] {
            let gauge = Arc::new(Gauge::default());
            let ex = pool(workers);
            let g = Arc::clone(&gauge);
            let out: Vec<usize> = ex
                .map(
                    move |i: usize| {
                        g.run(workers);
                        i
                    },
                    0..12 * workers,
                )
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(out, (0..12 * workers).collect::<Vec<_>>());
            assert_eq!(gauge.peak(), workers, "peak with {workers} workers");
        }
    });
}

#[test]
fn submit_of_blocking_items_never_runs_more_than_max_workers() {
    watchdog(|| {
        for workers in [1, 2, 3] {
            let gauge = Arc::new(Gauge::default());
            let ex = pool(workers);
            let futures: Vec<_> = (0..8 * workers)
                .map(|i| {
                    let g = Arc::clone(&gauge);
                    ex.submit(
                        move |i: usize| {
                            g.run(workers);
                            i
                        },
                        i,
                    )
                    .unwrap()
                })
                .collect();
            for (i, f) in futures.into_iter().enumerate() {
                assert_eq!(f.result().unwrap(), i);
            }
            assert_eq!(gauge.peak(), workers, "peak with {workers} workers");
        }
    });
}

/// The caller helps (it runs chunks on its own thread), but only in a free seat: the gauge
/// counts its items with the workers' ones. Repeated until the caller was seen helping, with
/// each worker count.
#[test]
fn the_callers_help_stays_inside_the_bound() {
    watchdog(|| {
        for workers in [1, 2, 3] {
            let mut helped = 0;
            for _round in 0..20 {
                let gauge = Arc::new(Gauge::default());
                let ex = pool(workers);
                let on_caller = Arc::new(AtomicUsize::new(0));
                let me: ThreadId = thread::current().id();
                let (g, c) = (Arc::clone(&gauge), Arc::clone(&on_caller));
                let n = 6 * workers;
                let sum: usize = ex
                    .map(
                        move |i: usize| {
                            if thread::current().id() == me {
                                c.fetch_add(1, Ordering::SeqCst);
                            }
                            g.run(workers);
                            i
                        },
                        0..n,
                    )
                    .unwrap()
                    .map(Result::unwrap)
                    .sum();
                assert_eq!(sum, n * (n - 1) / 2);
                assert_eq!(gauge.peak(), workers, "peak with {workers} workers");
                helped += on_caller.load(Ordering::SeqCst);
                if helped > 0 {
                    break;
                }
            }
            assert!(
                helped > 0,
                "the caller never ran an item with {workers} workers"
            );
        }
    });
}

/// Mixed: tasks submitted one by one while a map of the same pool runs, and the caller of
/// the map helping: still never more than `max_workers` at once.
#[test]
fn submit_and_map_together_share_the_bound() {
    watchdog(|| {
        for workers in [1, 2, 3] {
            let gauge = Arc::new(Gauge::default());
            let ex = Arc::new(pool(workers));
            let fs: Vec<_> = (0..4 * workers)
                .map(|_| {
                    let g = Arc::clone(&gauge);
                    ex.spawn(move || g.run(workers)).unwrap()
                })
                .collect();
            let g = Arc::clone(&gauge);
            let n = ex
                .map(move |_: usize| g.run(workers), 0..4 * workers)
                .unwrap()
                .map(Result::unwrap)
                .count();
            assert_eq!(n, 4 * workers);
            for f in fs {
                f.result().unwrap();
            }
            assert_eq!(gauge.peak(), workers, "peak with {workers} workers");
        }
    });
}

/// A task that iterates a `map` of its own pool runs the chunks in its own seat: with one
/// worker this neither deadlocks nor adds a second running task.
#[test]
fn a_map_inside_a_task_of_the_same_pool_runs_in_the_tasks_seat() {
    watchdog(|| {
        let ex = Arc::new(pool(1));
        let gauge = Arc::new(Gauge::default());
        let (inner, g) = (Arc::clone(&ex), Arc::clone(&gauge));
        let total = ex
            .spawn(move || {
                inner
                    .map(
                        move |i: u64| {
                            g.run(1);
                            i
                        },
                        0..10u64,
                    )
                    .unwrap()
                    .map(Result::unwrap)
                    .sum::<u64>()
            })
            .unwrap()
            .result()
            .unwrap();
        assert_eq!(total, 45);
        assert_eq!(gauge.peak(), 1);
    });
}

/// The notes' example, "a pool of 3 threads" downloading 5 files: at most 3 downloads start
/// before the first one finishes.
#[test]
fn three_workers_start_at_most_three_downloads_before_the_first_finishes() {
    watchdog(|| {
        for _ in 0..5 {
            let ex = pool(3);
            let log = Arc::new(Mutex::new(Vec::new()));
            let l = Arc::clone(&log);
            let results: Vec<String> = ex
                .map(
                    move |f: u32| {
                        l.lock().unwrap().push(format!("start {f}"));
                        thread::sleep(Duration::from_millis(30));
                        l.lock().unwrap().push(format!("done {f}"));
                        format!("File {f} downloaded!")
                    },
                    vec![1, 2, 3, 4, 5],
                )
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(results[0], "File 1 downloaded!");
            assert_eq!(results[4], "File 5 downloaded!");
            let log = log.lock().unwrap();
            let first_done = log.iter().position(|e| e.starts_with("done")).unwrap();
            assert!(
                first_done <= 3,
                "{} started before the first finished: {log:?}",
                first_done
            );
        }
    });
}

/// An item that shuts its own pool down with `wait`, whether a worker or the helping caller
/// runs it: the join does not wait for the seat the item sits in (the caller gives it up
/// meanwhile), so nothing hangs, and the map ends with its items or an error.
#[test]
fn an_item_that_shuts_its_pool_down_and_waits_does_not_hang() {
    watchdog(|| {
        for workers in [1, 2] {
            for round in 0..10usize {
                let ex = Arc::new(pool(workers));
                let inner = Arc::clone(&ex);
                let stop_at = round % 4;
                let mut seen = 0;
                for r in ex
                    .map(
                        move |i: usize| {
                            if i == stop_at {
                                inner.shutdown(true, false);
                            }
                            thread::sleep(Duration::from_millis(1));
                            i
                        },
                        0..8usize,
                    )
                    .unwrap()
                {
                    match r {
                        Ok(v) => assert_eq!(v, seen),
                        Err(e) => assert!(
                            matches!(e, spindle::Error::Shutdown)
                                || e.as_task().is_some_and(|t| t.is_cancelled()),
                            "{e:?}"
                        ),
                    }
                    seen += 1;
                }
                assert!(seen > stop_at, "round {round}: {seen} items");
            }
        }
    });
}
