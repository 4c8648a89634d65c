//! No thread outlives a `ThreadPoolExecutor`. Alone in its binary: it counts the threads of
//! the whole process (`/proc/self/task`), which other tests would disturb.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::watchdog;
use spindle::futures::ThreadPoolExecutor;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// The thread count once it has come down to `want`, or after 10 s the count it is stuck
/// at. A joined thread can linger in `/proc/self/task` for a moment after `join` returns
/// (the kernel wakes the joiner before it removes the task); a leaked thread stays.
fn threads_settled_at(want: usize) -> usize {
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let n = threads();
        if n <= want || Instant::now() > give_up {
            return n;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Makes the pool start all its `n` workers (each task waits for all the others).
fn use_every_worker(pool: &ThreadPoolExecutor, n: usize) {
    let barrier = Arc::new(Barrier::new(n));
    let fs: Vec<_> = (0..n)
        .map(|_| {
            let b = Arc::clone(&barrier);
            pool.spawn(move || {
                b.wait();
            })
            .unwrap()
        })
        .collect();
    fs.into_iter().for_each(|f| f.result().unwrap());
}

#[test]
fn no_thread_outlives_its_executor() {
    watchdog(|| {
        let before = threads();

        // Dropped after use.
        let pool = ThreadPoolExecutor::builder()
            .max_workers(4)
            .build()
            .unwrap();
        use_every_worker(&pool, 4);
        assert_eq!(threads(), before + 4);
        let sum: u64 = pool
            .map(|x: u64| x, 0..10_000u64)
            .unwrap()
            .map(Result::unwrap)
            .sum();
        assert_eq!(sum, 49_995_000);
        let _ = pool
            .spawn(|| -> u8 { panic!("a panic does not leak the worker") })
            .unwrap()
            .result();
        drop(pool);
        assert_eq!(threads_settled_at(before), before);

        // Shut down without waiting, then dropped.
        let pool = ThreadPoolExecutor::builder()
            .max_workers(3)
            .build()
            .unwrap();
        use_every_worker(&pool, 3);
        pool.shutdown(false, true);
        drop(pool);
        assert_eq!(threads_settled_at(before), before);

        // Shut down with waiting: the threads are gone before the drop.
        let pool = ThreadPoolExecutor::builder()
            .max_workers(2)
            .build()
            .unwrap();
        use_every_worker(&pool, 2);
        pool.shutdown(true, false);
        assert_eq!(threads_settled_at(before), before);
        drop(pool);

        // A map dropped half-way, then the executor.
        let pool = ThreadPoolExecutor::builder()
            .max_workers(2)
            .build()
            .unwrap();
        let mut m = pool.map(|x: u64| x * 2, 0..1_000_000u64).unwrap();
        assert_eq!(m.next().unwrap().unwrap(), 0);
        drop(pool);
        drop(m);
        assert_eq!(threads_settled_at(before), before);

        // A broken pool, too.
        let pool = ThreadPoolExecutor::builder()
            .max_workers(2)
            .initializer(|| panic!("broken"))
            .build()
            .unwrap();
        assert!(pool.spawn(|| ()).unwrap().result().is_err());
        drop(pool);
        assert_eq!(threads_settled_at(before), before);

        // Never used: no thread was ever started.
        let pool = ThreadPoolExecutor::new().unwrap();
        assert_eq!(threads_settled_at(before), before);
        drop(pool);
    });
}
