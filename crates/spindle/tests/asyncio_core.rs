//! `spindle::asyncio` on its own: the loop, tasks, `gather`, `TaskGroup`, `wait_for`,
//! `timeout`, `wait`, `as_completed`, `shield`, the coroutine sync primitives, and the
//! thread-safe entries (`run_coroutine_threadsafe`, `call_soon_threadsafe`). Nothing here
//! forks; the executor and IPC bridges are in `asyncio_executors.rs` and `asyncio_ipc.rs`.
//!
//! Concurrency is shown by counts (most coroutines seen inside at once, a barrier only
//! concurrent tasks pass), order by events the test sets itself; times are only lower bounds
//! ("not early").
#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::watchdog;
use spindle::asyncio::{
    self, as_completed, create_task, gather, shield, timeout, wait, wait_for, Event, ReturnWhen,
    Runner, TaskGroup,
};
use spindle::Error;

const FOREVER: Duration = Duration::from_secs(3600);

/// Sets its flag when dropped: shows that a future was cancelled (dropped), or not.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

/// Counts how many coroutines are inside at once.
#[derive(Default)]
struct Inside {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Inside {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(n, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn gather_gives_values_in_input_order_and_runs_them_together() {
    watchdog(|| {
        let inside = Arc::new(Inside::default());
        let i2 = Arc::clone(&inside);
        let got = asyncio::run(async move {
            // Later inputs finish first.
            let coros = (0..50u64).map(|i| {
                let inside = Arc::clone(&i2);
                async move {
                    inside.enter();
                    asyncio::sleep(Duration::from_millis(50 - i)).await;
                    inside.leave();
                    Ok::<_, Error>(i * 10)
                }
            });
            gather(coros).await
        })
        .unwrap()
        .unwrap();
        assert_eq!(got, (0..50).map(|i| i * 10).collect::<Vec<u64>>());
        assert_eq!(inside.most.load(Ordering::SeqCst), 50);
    });
}

/// Returns `Pending` `n` times (waking itself each time), then `Ready`.
struct Yields(u32);

impl std::future::Future for Yields {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 == 0 {
            return std::task::Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

#[test]
fn gather_mixes_tasks_and_futures_that_need_several_polls() {
    watchdog(|| {
        let got = asyncio::run(async {
            // Tasks (which advance unpolled) and plain futures (which advance only when
            // polled, some several times, some never done before the others) in one gather.
            type Boxed =
                std::pin::Pin<Box<dyn std::future::Future<Output = Result<u32, Error>> + Send>>;
            let mut coros: Vec<Boxed> = Vec::new();
            for i in 0..3000u32 {
                coros.push(match i % 3 {
                    0 => {
                        let t = create_task(async move { i })?;
                        Box::pin(t)
                    }
                    1 => Box::pin(async move {
                        Yields(i % 7).await;
                        Ok(i)
                    }),
                    _ => Box::pin(async move {
                        asyncio::sleep(Duration::from_millis(u64::from(i % 5))).await;
                        Ok(i)
                    }),
                });
            }
            gather(coros).await
        })
        .unwrap()
        .unwrap();
        assert_eq!(got, (0..3000).collect::<Vec<u32>>());
    });
}

#[test]
fn gather_ends_on_the_first_error_and_drops_the_rest() {
    watchdog(|| {
        let dropped = flag();
        let d = Arc::clone(&dropped);
        let started = Instant::now();
        let got: Result<Vec<u32>, String> = asyncio::run(async move {
            let slow = Box::pin(async move {
                let _guard = DropFlag(d);
                asyncio::sleep(FOREVER).await;
                Ok(1)
            });
            let failing = Box::pin(async {
                asyncio::sleep(Duration::from_millis(10)).await;
                Err("second failed".to_string())
            });
            let quick = Box::pin(async { Ok(3) });
            let coros: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>> =
                vec![slow, failing, quick];
            gather(coros).await
        })
        .unwrap();
        assert_eq!(got.unwrap_err(), "second failed");
        assert!(dropped.load(Ordering::SeqCst), "the sleeper was dropped");
        assert!(started.elapsed() < FOREVER);
    });
}

#[test]
fn gather_return_exceptions_gives_every_outcome_in_order() {
    watchdog(|| {
        let got = asyncio::run(async {
            let coros = (0..6u32).map(|i| async move {
                asyncio::sleep(Duration::from_millis(u64::from(6 - i))).await;
                if i % 2 == 0 {
                    Ok(i)
                } else {
                    Err(format!("odd {i}"))
                }
            });
            gather(coros).return_exceptions().await
        })
        .unwrap();
        let want: Vec<Result<u32, String>> = (0..6)
            .map(|i| {
                if i % 2 == 0 {
                    Ok(i)
                } else {
                    Err(format!("odd {i}"))
                }
            })
            .collect();
        assert_eq!(got, want);
        // An empty gather is done at once.
        let none = asyncio::run(gather(Vec::<std::future::Ready<Result<u8, ()>>>::new()));
        assert_eq!(none.unwrap(), Ok(vec![]));
    });
}

#[test]
fn gather_of_tasks_reports_a_panicking_task_as_an_error() {
    watchdog(|| {
        let got = asyncio::run(async {
            let tasks = (0..100u32)
                .map(|i| {
                    create_task(async move {
                        if i == 37 {
                            panic!("task 37 broke");
                        }
                        i
                    })
                })
                .collect::<spindle::Result<Vec<_>>>()?;
            gather(tasks).await
        })
        .unwrap();
        let err = got.unwrap_err();
        let task = err.as_task().expect("a task error");
        assert!(task.is_panic());
        assert_eq!(task.panic_message(), Some("task 37 broke"));
    });
}

#[test]
fn a_panic_in_the_main_coroutine_is_an_error() {
    watchdog(|| {
        let err = asyncio::run(async {
            asyncio::sleep(Duration::from_millis(1)).await;
            if std::hint::black_box(true) {
                panic!("main broke");
            }
        })
        .unwrap_err();
        assert_eq!(err.as_task().unwrap().panic_message(), Some("main broke"));
    });
}

#[test]
fn task_group_cancels_siblings_on_one_failure_and_reports_every_error() {
    watchdog(|| {
        // Two workers, and two tasks that fail together (a barrier only both pass): both
        // errors reach the group; the third task is cancelled, not waited for.
        let runner = Runner::builder().multi_thread(2).build().unwrap();
        let cancelled = flag();
        let c = Arc::clone(&cancelled);
        let (eg, sibling) = runner
            .run(async move {
                let tg: TaskGroup<String> = TaskGroup::new();
                let barrier = Arc::new(spindle::threading::Barrier::new(2).unwrap());
                for name in ["a", "b"] {
                    let barrier = Arc::clone(&barrier);
                    tg.create_task(async move {
                        barrier
                            .wait_timeout(Duration::from_secs(10))
                            .map_err(|e| e.to_string())?;
                        Err::<(), _>(format!("{name} failed"))
                    })
                    .unwrap();
                }
                // Made before the task: dropped with it even if it never ran.
                let guard = DropFlag(c);
                let sibling = tg
                    .create_task(async move {
                        let _guard = guard;
                        asyncio::sleep(FOREVER).await;
                        Ok(())
                    })
                    .unwrap();
                let eg = tg.join().await.unwrap_err();
                (eg, sibling.await)
            })
            .unwrap();
        let mut errors = eg.into_errors();
        errors.sort();
        assert_eq!(errors, ["a failed", "b failed"]);
        assert!(cancelled.load(Ordering::SeqCst));
        assert!(sibling.unwrap_err().as_task().unwrap().is_cancelled());
    });
}

#[test]
fn task_group_turns_a_panic_into_an_error_and_refuses_new_tasks_while_failing() {
    watchdog(|| {
        asyncio::run(async {
            let tg: TaskGroup = TaskGroup::new();
            let ok = tg.create_task(async { Ok::<_, Error>(5) }).unwrap();
            tg.create_task(async {
                asyncio::sleep(Duration::from_millis(5)).await;
                if std::hint::black_box(true) {
                    panic!("group task broke");
                }
                Ok::<(), Error>(())
            })
            .unwrap();
            asyncio::sleep(Duration::from_millis(30)).await;
            let refused = tg.create_task(async { Ok::<_, Error>(()) });
            assert!(matches!(refused, Err(Error::InvalidState(_))));
            let eg = tg.join().await.unwrap_err();
            assert_eq!((eg.errors().len(), eg.panics().len()), (0, 1));
            assert_eq!(eg.panics()[0].panic_message(), Some("group task broke"));
            assert_eq!(ok.await.unwrap(), 5);
            // A group whose tasks all succeed joins with Ok.
            let tg: TaskGroup = TaskGroup::new();
            let t = tg.create_task(async { Ok::<_, Error>(1) }).unwrap();
            tg.join().await.unwrap();
            assert_eq!(t.await.unwrap(), 1);
        })
        .unwrap();
    });
}

#[test]
fn a_dropped_task_group_cancels_its_tasks() {
    watchdog(|| {
        let cancelled = flag();
        let c = Arc::clone(&cancelled);
        asyncio::run(async move {
            let tg: TaskGroup = TaskGroup::new();
            tg.create_task(async move {
                let _guard = DropFlag(c);
                asyncio::sleep(FOREVER).await;
                Ok::<(), Error>(())
            })
            .unwrap();
            asyncio::sleep(Duration::from_millis(5)).await;
            drop(tg);
            asyncio::sleep(Duration::from_millis(5)).await;
        })
        .unwrap();
        assert!(cancelled.load(Ordering::SeqCst));
    });
}

#[test]
fn wait_for_expires_not_early_and_passes_a_quick_future() {
    watchdog(|| {
        asyncio::run(async {
            let dropped = flag();
            let d = Arc::clone(&dropped);
            let limit = Duration::from_millis(30);
            let start = Instant::now();
            let r = wait_for(
                async move {
                    let _guard = DropFlag(d);
                    asyncio::sleep(FOREVER).await;
                },
                limit,
            )
            .await;
            assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
            assert!(
                start.elapsed() >= limit,
                "expired early: {:?}",
                start.elapsed()
            );
            assert!(
                dropped.load(Ordering::SeqCst),
                "the inner future is cancelled"
            );
            // A future that ends well before its limit is not cut short.
            let r = wait_for(
                async {
                    asyncio::sleep(Duration::from_millis(20)).await;
                    "finished"
                },
                Duration::from_secs(20),
            )
            .await;
            assert_eq!(r.unwrap(), "finished");
        })
        .unwrap();
    });
}

#[test]
fn timeout_scopes_expire_not_early_and_can_be_moved() {
    watchdog(|| {
        asyncio::run(async {
            let limit = Duration::from_millis(30);
            let start = Instant::now();
            let cm = timeout(Some(limit));
            let r = cm.scope(asyncio::sleep(FOREVER)).await;
            assert!(r.unwrap_err().is_timeout());
            assert!(start.elapsed() >= limit, "expired early");
            assert!(cm.expired());

            // No deadline, then one set from inside the block.
            let cm = timeout(None);
            let inner = cm.clone();
            let start = Instant::now();
            let r = cm
                .scope(async move {
                    asyncio::sleep(Duration::from_millis(10)).await;
                    inner.reschedule(Some(Instant::now() + Duration::from_millis(20)));
                    asyncio::sleep(FOREVER).await;
                })
                .await;
            assert!(r.unwrap_err().is_timeout());
            assert!(start.elapsed() >= Duration::from_millis(30));

            // A deadline moved later lets the block finish.
            let cm = timeout(Some(Duration::from_millis(10)));
            let inner = cm.clone();
            let r = cm
                .scope(async move {
                    inner.reschedule(Some(Instant::now() + Duration::from_secs(30)));
                    asyncio::sleep(Duration::from_millis(40)).await;
                    7
                })
                .await;
            assert_eq!(r.unwrap(), 7);
            assert!(!cm.expired());
        })
        .unwrap();
    });
}

/// A task that sleeps `ms` and then returns `Ok(ms)`, or `Err` when `fail`.
fn sleeper(ms: u64, fail: bool) -> spindle::Result<asyncio::Task<Result<u64, String>>> {
    create_task(async move {
        asyncio::sleep(Duration::from_millis(ms)).await;
        if fail {
            Err(format!("{ms} failed"))
        } else {
            Ok(ms)
        }
    })
}

/// `wait`'s outcomes as (position, value-or-error) pairs, the task layer flattened.
fn done_positions<T, E>(done: &[(usize, Result<T, E>)]) -> Vec<usize> {
    let mut v: Vec<usize> = done.iter().map(|(i, _)| *i).collect();
    v.sort_unstable();
    v
}

#[test]
fn wait_returns_on_first_completed_first_exception_or_all_completed() {
    watchdog(|| {
        asyncio::run(async {
            // FIRST_COMPLETED: the 10 ms task only.
            let ts = vec![
                sleeper(3_600_000, false)?,
                sleeper(10, false)?,
                sleeper(200, true)?,
            ];
            let w = wait(ts, ReturnWhen::FirstCompleted, None).await;
            assert_eq!(done_positions(&w.done), [1]);
            assert_eq!(
                w.pending.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
                [0, 2]
            );
            for (_, t) in &w.pending {
                t.cancel();
            }

            // FIRST_EXCEPTION: returns at the failure (the ok one before it is done too),
            // the endless one pending. The tasks' own `Err` counts once flattened.
            let endless = flag();
            let e = Arc::clone(&endless);
            type Boxed =
                std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, String>> + Send>>;
            let flat = |t: asyncio::Task<Result<u64, String>>| -> Boxed {
                Box::pin(async move { t.await.map_err(|e| e.to_string()).and_then(|r| r) })
            };
            let ts: Vec<Boxed> = vec![
                flat(sleeper(10, false)?),
                flat(sleeper(30, true)?),
                Box::pin(async move {
                    let _guard = DropFlag(e);
                    asyncio::sleep(FOREVER).await;
                    Ok(0)
                }),
            ];
            let w = wait(ts, ReturnWhen::FirstException, None).await;
            assert_eq!(done_positions(&w.done), [0, 1]);
            let failed = w.done.iter().find(|(i, _)| *i == 1).unwrap();
            assert_eq!(failed.1.as_ref().unwrap_err(), "30 failed");
            assert_eq!(w.pending.len(), 1);
            assert!(!endless.load(Ordering::SeqCst), "wait cancels nothing");
            drop(w);
            assert!(endless.load(Ordering::SeqCst));

            // FIRST_EXCEPTION with no failure: all done; a panicking task is an exception.
            let ts = vec![sleeper(5, false)?, sleeper(15, false)?];
            let w = wait(ts, ReturnWhen::FirstException, None).await;
            assert_eq!(done_positions(&w.done), [0, 1]);
            let boom = create_task(async {
                if std::hint::black_box(true) {
                    panic!("boom");
                }
                Ok::<u64, String>(0)
            })?;
            let ts = vec![boom, sleeper(3_600_000, false)?];
            let w = wait(ts, ReturnWhen::FirstException, None).await;
            assert_eq!(done_positions(&w.done), [0]);
            w.pending[0].1.cancel();

            // ALL_COMPLETED, failures included.
            let ts = vec![sleeper(20, true)?, sleeper(5, false)?, sleeper(10, false)?];
            let w = wait(ts, ReturnWhen::AllCompleted, None).await;
            assert_eq!(done_positions(&w.done), [0, 1, 2]);
            assert!(w.pending.is_empty());

            // A timeout returns what is done by then, nothing cancelled.
            let ts = vec![sleeper(5, false)?, sleeper(3_600_000, false)?];
            let w = wait(
                ts,
                ReturnWhen::AllCompleted,
                Some(Duration::from_millis(50)),
            )
            .await;
            assert_eq!(done_positions(&w.done), [0]);
            assert_eq!(w.pending.len(), 1);
            assert!(!w.pending[0].1.done());
            w.pending[0].1.cancel();
            Ok::<_, Error>(())
        })
        .unwrap()
        .unwrap();
    });
}

#[test]
fn as_completed_follows_completion_order_and_reports_its_timeout() {
    watchdog(|| {
        asyncio::run(async {
            let events: Vec<Arc<Event>> = (0..3).map(|_| Arc::new(Event::new())).collect();
            let coros = events.iter().enumerate().map(|(i, e)| {
                let e = Arc::clone(e);
                async move {
                    e.wait().await;
                    i
                }
            });
            let mut it = as_completed(coros, None);
            let mut order = Vec::new();
            for i in [2, 0, 1] {
                events[i].set();
                order.push(it.next().await.unwrap().unwrap());
            }
            assert!(it.next().await.is_none());
            assert_eq!(order, [2, 0, 1]);

            let coros = [1u64, 3_600_000, 3_600_000].map(|ms| async move {
                asyncio::sleep(Duration::from_millis(ms)).await;
                ms
            });
            let mut it = as_completed(coros, Some(Duration::from_millis(30)));
            assert_eq!(it.next().await.unwrap().unwrap(), 1);
            let err = it.next().await.unwrap().unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Unfinished {
                        unfinished: 2,
                        total: 3
                    }
                ),
                "{err}"
            );
            assert!(it.next().await.is_none());
        })
        .unwrap();
    });
}

#[test]
fn shield_keeps_the_inner_work_running_when_the_waiter_gives_up() {
    watchdog(|| {
        asyncio::run(async {
            let go = Arc::new(Event::new());
            let finished = flag();
            let (g, f) = (Arc::clone(&go), Arc::clone(&finished));
            let work = async move {
                g.wait().await;
                f.store(true, Ordering::SeqCst);
            };
            let r = wait_for(shield(work), Duration::from_millis(5)).await;
            assert!(r.unwrap_err().is_timeout());
            go.set();
            while !finished.load(Ordering::SeqCst) {
                asyncio::sleep(Duration::from_millis(1)).await;
            }

            // Without the shield, the same timeout cancels the work.
            let dropped = flag();
            let d = Arc::clone(&dropped);
            let unshielded = async move {
                let _guard = DropFlag(d);
                asyncio::sleep(FOREVER).await;
            };
            assert!(wait_for(unshielded, Duration::from_millis(5))
                .await
                .is_err());
            assert!(dropped.load(Ordering::SeqCst));
        })
        .unwrap();
    });
}

#[test]
fn a_task_runs_detached_when_dropped_and_stops_when_cancelled() {
    watchdog(|| {
        asyncio::run(async {
            let ran = flag();
            let r = Arc::clone(&ran);
            drop(create_task(async move { r.store(true, Ordering::SeqCst) })?);
            while !ran.load(Ordering::SeqCst) {
                asyncio::sleep(Duration::from_millis(1)).await;
            }

            let dropped = flag();
            let d = Arc::clone(&dropped);
            let t = create_task(async move {
                let _guard = DropFlag(d);
                asyncio::sleep(FOREVER).await;
            })?;
            asyncio::sleep(Duration::from_millis(2)).await;
            assert!(t.cancel());
            let err = t.await.unwrap_err();
            assert!(err.as_task().unwrap().is_cancelled());
            assert!(dropped.load(Ordering::SeqCst));

            let quick = create_task(async { 1 })?;
            while !quick.done() {
                asyncio::sleep(Duration::from_millis(1)).await;
            }
            assert!(!quick.cancel(), "a finished task cannot be cancelled");
            assert_eq!(quick.await?, 1);
            Ok::<_, Error>(())
        })
        .unwrap()
        .unwrap();
    });
}

#[test]
fn outside_a_loop_the_loop_calls_are_typed_errors() {
    watchdog(|| {
        assert!(matches!(
            create_task(async {}),
            Err(Error::InvalidState("no running event loop"))
        ));
        assert!(asyncio::get_running_loop().is_err());
        let nested = asyncio::run(async { asyncio::run(async {}) }).unwrap();
        assert!(matches!(nested, Err(Error::InvalidState(_))));
        assert!(Runner::builder().multi_thread(0).build().is_err());
    });
}

#[test]
fn run_coroutine_threadsafe_from_a_plain_thread() {
    watchdog(|| {
        let runner = Runner::new().unwrap();
        let event_loop = runner.get_loop();
        let ev = Arc::new(Event::new());
        let e = Arc::clone(&ev);
        let thread = std::thread::spawn(move || {
            // The coroutine runs on the loop; this thread blocks on a plain Future.
            let f = asyncio::run_coroutine_threadsafe(
                async move {
                    asyncio::sleep(Duration::from_millis(5)).await;
                    e.set();
                    6 * 7
                },
                &event_loop,
            )
            .unwrap();
            let v = f.result().unwrap();
            // A panic in the coroutine is the future's error.
            let broken = asyncio::run_coroutine_threadsafe(
                async {
                    if std::hint::black_box(true) {
                        panic!("threadsafe broke");
                    }
                },
                &event_loop,
            )
            .unwrap();
            let err = broken.result().unwrap_err();
            (v, err.as_task().unwrap().panic_message().map(str::to_owned))
        });
        // The loop waits (without blocking) for the coroutine the thread handed over.
        runner.run(async move { ev.wait().await }).unwrap();
        let (v, panic) = runner
            .run(asyncio::to_thread(move || thread.join().unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(v, 42);
        assert_eq!(panic.as_deref(), Some("threadsafe broke"));
    });
}

#[test]
fn cancelling_the_threadsafe_future_cancels_the_coroutine() {
    watchdog(|| {
        let runner = Runner::new().unwrap();
        let event_loop = runner.get_loop();
        let dropped = flag();
        let d = Arc::clone(&dropped);
        let f = asyncio::run_coroutine_threadsafe(
            async move {
                let _guard = DropFlag(d);
                asyncio::sleep(FOREVER).await;
            },
            &event_loop,
        )
        .unwrap();
        runner
            .run(asyncio::sleep(Duration::from_millis(5)))
            .unwrap();
        assert!(f.cancel());
        runner
            .run(asyncio::sleep(Duration::from_millis(5)))
            .unwrap();
        assert!(dropped.load(Ordering::SeqCst));
        assert!(f.result().unwrap_err().as_task().unwrap().is_cancelled());
        // A closed loop refuses.
        runner.close();
        assert!(matches!(
            asyncio::run_coroutine_threadsafe(async {}, &event_loop),
            Err(Error::Shutdown)
        ));
        assert!(matches!(
            event_loop.call_soon_threadsafe(|| {}),
            Err(Error::Shutdown)
        ));
    });
}

#[test]
fn call_soon_threadsafe_runs_the_callback_on_the_loop() {
    watchdog(|| {
        let runner = Runner::new().unwrap();
        let got = runner
            .run(async {
                let event_loop = asyncio::get_running_loop()?;
                let ev = Arc::new(Event::new());
                let e = Arc::clone(&ev);
                std::thread::spawn(move || {
                    event_loop.call_soon_threadsafe(move || e.set()).unwrap();
                })
                .join()
                .unwrap();
                wait_for(ev.wait(), Duration::from_secs(20)).await
            })
            .unwrap();
        assert!(got.is_ok());
    });
}

#[test]
fn a_multi_threaded_loop_runs_tasks_on_several_threads_at_once() {
    watchdog(|| {
        let runner = Runner::builder().multi_thread(2).build().unwrap();
        // Two tasks that each block their thread until the other arrives: only two threads
        // running tasks at once pass.
        let passed = runner
            .run(async {
                let barrier = Arc::new(spindle::threading::Barrier::new(2).unwrap());
                let tasks = (0..2)
                    .map(|_| {
                        let b = Arc::clone(&barrier);
                        create_task(async move { b.wait_timeout(Duration::from_secs(10)).is_ok() })
                    })
                    .collect::<spindle::Result<Vec<_>>>()?;
                gather(tasks).await
            })
            .unwrap()
            .unwrap();
        assert_eq!(passed, [true, true]);
    });
}
