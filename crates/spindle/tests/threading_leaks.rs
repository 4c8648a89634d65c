//! Thread leaks: every thread spindle starts is gone once joined (or once a detached daemon
//! thread ends), and `active_count` counts exactly the live ones.
//!
//! Its own test binary, with a single test: it counts the process's OS threads
//! (`/proc/self/task`), which other tests running in the same process would disturb.

mod common;

use common::watchdog;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use spindle::threading::{active_count, enumerate, Barrier, Event, Thread, Timer};

/// The process's OS threads, as Linux lists them.
fn os_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// Waits (bounded by the watchdog) until the OS thread count is back to `baseline`: a joined
/// thread's kernel task may linger for a moment after `pthread_join` returns.
fn settles_to(baseline: usize) {
    while os_threads() != baseline {
        assert!(os_threads() > baseline, "fewer threads than at the start");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
#[cfg(target_os = "linux")]
fn no_thread_outlives_its_join() {
    watchdog(|| {
        const N: usize = 16;
        let baseline = os_threads();
        assert_eq!(
            active_count(),
            1,
            "only the main thread before anything starts"
        );

        // N threads alive at once: N more OS threads, N more in active_count.
        let gate = Arc::new(Event::new());
        let mut threads: Vec<Thread<usize>> = (0..N)
            .map(|i| {
                let g = gate.clone();
                Thread::new(move || {
                    g.wait();
                    i
                })
            })
            .collect();
        for t in &mut threads {
            t.start().unwrap();
        }
        assert_eq!(os_threads(), baseline + N);
        assert_eq!(active_count(), 1 + N);
        assert_eq!(enumerate().len(), 1 + N);
        gate.set();
        let sum: usize = threads.iter_mut().map(|t| t.join().unwrap()).sum();
        assert_eq!(sum, (0..N).sum::<usize>());
        assert_eq!(active_count(), 1);
        settles_to(baseline);

        // Panicking threads, dropped non-daemon threads, detached daemon threads, timers
        // (fired and cancelled) and barrier users: all gone in the end.
        let mut panicking: Vec<Thread<()>> = (0..4).map(|_| Thread::new(|| panic!("x"))).collect();
        for t in &mut panicking {
            t.start().unwrap();
            assert!(t.join().is_err());
        }
        let finished = Arc::new(AtomicUsize::new(0));
        for daemon in [false, true] {
            for _ in 0..4 {
                let f = finished.clone();
                let mut t = Thread::builder()
                    .daemon(daemon)
                    .target(move || {
                        f.fetch_add(1, SeqCst);
                    })
                    .unwrap();
                t.start().unwrap();
                drop(t);
            }
        }
        let mut timers: Vec<Timer<u8>> = (0..4)
            .map(|i| Timer::new(Duration::from_secs(if i % 2 == 0 { 0 } else { 3600 }), || 1))
            .collect();
        for t in &mut timers {
            t.start().unwrap();
        }
        for t in &mut timers {
            t.cancel();
            t.join().unwrap();
        }
        let barrier = Arc::new(Barrier::new(4).unwrap());
        let mut meeting: Vec<Thread<usize>> = (0..4)
            .map(|_| {
                let b = barrier.clone();
                Thread::new(move || b.wait().unwrap())
            })
            .collect();
        for t in &mut meeting {
            t.start().unwrap();
        }
        for t in &mut meeting {
            t.join().unwrap();
        }
        while finished.load(SeqCst) < 8 || active_count() > 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(active_count(), 1);
        settles_to(baseline);
    });
}
