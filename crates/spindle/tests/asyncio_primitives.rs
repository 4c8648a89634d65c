//! `spindle::asyncio`'s coroutine primitives: `Queue` (bounds, `task_done`/`join`), `Lock`
//! and `Semaphore` (how many coroutines are inside at once, counted), `Event` (a pulse wakes
//! every waiter), `Condition` (`notify(n)` wakes n), and that the public types cross threads.
#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::watchdog;
use spindle::asyncio::{
    self, create_task, gather, Condition, Event, Lock, Queue, Runner, Semaphore, TaskGroup,
};
use spindle::multiprocessing::queues::{GetError, PutError};
use spindle::Error;

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
fn the_queue_bounds_puts_and_counts_unfinished_items() {
    watchdog(|| {
        asyncio::run(async {
            let q = Arc::new(Queue::new(2));
            q.put_nowait(1).unwrap();
            q.put(2).await;
            assert!(q.full());
            assert!(matches!(q.put_nowait(3), Err(PutError::Full(3))));
            // A put waits for room.
            let putter = {
                let q = Arc::clone(&q);
                create_task(async move { q.put(3).await })?
            };
            asyncio::sleep(Duration::from_millis(5)).await;
            assert!(!putter.done());
            assert_eq!(q.get().await, 1);
            putter.await?;
            assert_eq!((q.get_nowait().unwrap(), q.get().await), (2, 3));
            assert!(matches!(q.get_nowait(), Err(GetError::Empty)));
            // join waits for three task_done calls.
            let joiner = {
                let q = Arc::clone(&q);
                create_task(async move { q.join().await })?
            };
            q.task_done()?;
            q.task_done()?;
            asyncio::sleep(Duration::from_millis(5)).await;
            assert!(!joiner.done());
            q.task_done()?;
            joiner.await?;
            assert!(matches!(q.task_done(), Err(Error::OverRelease)));
            Ok::<_, Error>(())
        })
        .unwrap()
        .unwrap();
    });
}

#[test]
fn lock_and_semaphore_bound_the_coroutines_inside() {
    watchdog(|| {
        asyncio::run(async {
            let lock = Arc::new(Lock::new());
            let sem = Arc::new(Semaphore::new(3));
            let in_lock = Arc::new(Inside::default());
            let in_sem = Arc::new(Inside::default());
            let coros = (0..20).map(|_| {
                let (lock, a) = (Arc::clone(&lock), Arc::clone(&in_lock));
                async move {
                    let _g = lock.acquire().await;
                    a.enter();
                    asyncio::sleep(Duration::from_millis(1)).await;
                    a.leave();
                    Ok::<_, Error>(())
                }
            });
            gather(coros).await?;
            let coros = (0..20).map(|_| {
                let (sem, b) = (Arc::clone(&sem), Arc::clone(&in_sem));
                async move {
                    let _p = sem.acquire().await;
                    b.enter();
                    asyncio::sleep(Duration::from_millis(2)).await;
                    b.leave();
                    Ok::<_, Error>(())
                }
            });
            gather(coros).await?;
            assert_eq!(in_lock.most.load(Ordering::SeqCst), 1);
            assert_eq!(in_sem.most.load(Ordering::SeqCst), 3);
            Ok::<_, Error>(())
        })
        .unwrap()
        .unwrap();
    });
}

#[test]
fn an_event_pulse_wakes_every_waiter_and_notify_wakes_as_many_as_asked() {
    watchdog(|| {
        asyncio::run(async {
            let ev = Arc::new(Event::new());
            let waiters = (0..5)
                .map(|_| {
                    let ev = Arc::clone(&ev);
                    create_task(async move { ev.wait().await })
                })
                .collect::<spindle::Result<Vec<_>>>()?;
            asyncio::sleep(Duration::from_millis(5)).await;
            ev.set();
            ev.clear(); // a pulse: they were waiting when it was set
            gather(waiters).await?;
            assert!(!ev.is_set());

            let cond = Arc::new(Condition::new());
            let woken = Arc::new(AtomicUsize::new(0));
            let tasks = (0..3)
                .map(|_| {
                    let (c, w) = (Arc::clone(&cond), Arc::clone(&woken));
                    create_task(async move {
                        let g = c.acquire().await;
                        let _g = c.wait(g).await?;
                        w.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, Error>(())
                    })
                })
                .collect::<spindle::Result<Vec<_>>>()?;
            while cond.waiting() < 3 {
                asyncio::sleep(Duration::from_millis(1)).await;
            }
            cond.notify(1);
            asyncio::sleep(Duration::from_millis(10)).await;
            assert_eq!(woken.load(Ordering::SeqCst), 1);
            cond.notify_all();
            for t in tasks {
                t.await??;
            }
            assert_eq!(woken.load(Ordering::SeqCst), 3);
            Ok::<_, Error>(())
        })
        .unwrap()
        .unwrap();
    });
}

#[test]
fn the_public_types_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Runner>();
    send_sync::<asyncio::EventLoop>();
    send_sync::<asyncio::Handle>();
    send_sync::<asyncio::Task<u8>>();
    send_sync::<TaskGroup>();
    send_sync::<asyncio::ExceptionGroup<String>>();
    send_sync::<Queue<u8>>();
    send_sync::<Lock>();
    send_sync::<Event>();
    send_sync::<Condition>();
    send_sync::<Semaphore>();
    send_sync::<asyncio::BoundedSemaphore>();
    send_sync::<asyncio::Timeout>();
    send_sync::<asyncio::Sleep>();
    send_sync::<asyncio::Shield<u8>>();
    // The handle of an executor call holds the submission closure until first polled.
    send::<asyncio::ExecutorFuture<'static, u8>>();
}
