//! Pools built, faulted and dropped many times leave no process, zombie, thread or
//! descriptor behind; dropping a busy pool ends every pending result at once. Its own test
//! binary: it counts this process's children, threads and descriptors.

use std::time::Duration;

use spindle::multiprocessing::{Pool, StartMethod};

mod common;
use common::{children_of, eventually, fd_count, watchdog_for};

fn square(x: u64) -> u64 {
    x * x
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn die(_: u64) -> u64 {
    std::process::abort()
}

/// The tests of this binary count this process's threads and children: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The pools' own threads alive now (supervisors, stderr relays, thread-pool workers), by
/// name: the test harness's threads come and go beside them.
fn pool_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| n.starts_with("spindle-pool") || n.starts_with("spindle-threadp"))
        .collect()
}

fn say_to_stderr(i: u64) -> u64 {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "leak test line {i}");
    i
}

#[test]
fn pools_built_faulted_and_dropped_leave_nothing_behind() {
    watchdog_for(Duration::from_secs(120), || {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let me = std::process::id();
        // Warm-up: what lives for good (the launcher thread) starts here.
        {
            let p = Pool::builder()
                .processes(1)
                .start_method(StartMethod::Fork)
                .build()
                .unwrap();
            assert_eq!(p.map(square, [2]).unwrap(), [4]);
        }
        let fds = fd_count();
        assert!(children_of(me).is_empty(), "{:?}", children_of(me));
        for round in 0..15 {
            let p = Pool::builder()
                .processes(3)
                .start_method(StartMethod::Fork)
                .maxtasksperchild(50)
                .build()
                .unwrap();
            assert_eq!(
                p.call().chunksize(1).map(square, 0..120).unwrap().len(),
                120
            );
            // A worker dies; its stderr lines are relayed.
            assert!(p.apply(die, (0,)).is_err());
            assert_eq!(p.map(say_to_stderr, 0..3).unwrap(), [0, 1, 2]);
            // An abandoned iterator.
            let mut it = p.imap(square, 0u64..).unwrap();
            it.next().unwrap().unwrap();
            drop(it);
            if round % 3 == 0 {
                // An orderly end.
                p.close();
                p.join().unwrap();
                assert!(p.pids().is_empty());
                continue;
            }
            // Dropped while busy: every pending result ends at once.
            let pending_map = p
                .call()
                .chunksize(1)
                .map_async(sleep_ms, vec![30_000; 6])
                .unwrap();
            let pending_apply = p.apply_async(sleep_ms, (30_000,)).unwrap();
            let mut pending_imap = p.imap(sleep_ms, vec![30_000; 4]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            drop(p);
            assert!(pending_map.ready() && pending_apply.ready());
            assert!(pending_map
                .get()
                .unwrap_err()
                .as_task()
                .unwrap()
                .is_cancelled());
            assert!(pending_apply
                .get()
                .unwrap_err()
                .as_task()
                .unwrap()
                .is_cancelled());
            let first = pending_imap.next_timeout(Duration::ZERO).unwrap();
            assert!(first.unwrap_err().as_task().unwrap().is_cancelled());
        }
        assert!(
            children_of(me).is_empty(),
            "children left: {:?}",
            children_of(me)
        );
        assert!(
            eventually(Duration::from_secs(2), || pool_threads().is_empty()),
            "threads left: {:?}",
            pool_threads()
        );
        assert_eq!(fd_count(), fds, "descriptors leak");
    });
}

#[test]
fn thread_pools_dropped_while_busy_leave_no_thread_once_their_tasks_end() {
    watchdog_for(Duration::from_secs(60), || {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        use spindle::multiprocessing::dummy;
        assert!(pool_threads().is_empty());
        for _ in 0..10 {
            let p = dummy::Pool::new(3).unwrap();
            assert_eq!(p.map(|x: u64| x + 1, 0..100).unwrap().len(), 100);
            let pending = p
                .call()
                .chunksize(1)
                .map_async(sleep_ms, vec![200; 9])
                .unwrap();
            std::thread::sleep(Duration::from_millis(20));
            drop(p);
            assert!(pending.get().unwrap_err().as_task().unwrap().is_cancelled());
        }
        for _ in 0..5 {
            let p = dummy::Pool::new(2).unwrap();
            p.close();
            p.join().unwrap();
        }
        // The threads that were inside a task end after it (200 ms).
        assert!(
            eventually(Duration::from_secs(10), || pool_threads().is_empty()),
            "threads left: {:?}",
            pool_threads()
        );
    });
}
