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

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn say_to_stderr(i: u64) -> u64 {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "leak test line {i}");
    i
}

#[test]
fn pools_built_faulted_and_dropped_leave_nothing_behind() {
    watchdog_for(Duration::from_secs(120), || {
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
        let threads_before = threads();
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
            eventually(Duration::from_secs(2), || threads() == threads_before),
            "threads: {} before, {} after",
            threads_before,
            threads()
        );
        assert_eq!(fd_count(), fds, "descriptors leak");
    });
}
