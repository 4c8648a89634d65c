//! `multiprocessing::dummy::Pool`: the process pool's API on threads, within `processes`
//! threads (never more tasks running at once, shown by a gauge and a barrier), with the same
//! result, chunking and lazy-input behaviour. Ported from CPython's `_TestPool` run on
//! `ThreadPool` (test_map, test_imap, test_imap_unordered, test_starmap, test_terminate).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use spindle::multiprocessing::dummy::Pool;
use spindle::Error;

mod common;
use common::watchdog;

#[test]
fn every_method_gives_the_values_in_order() {
    watchdog(|| {
        let p = Pool::new(3).unwrap();
        let want: Vec<u64> = (0..200).map(|x| x * x).collect();
        assert_eq!(p.map(|x: u64| x * x, 0..200).unwrap(), want);
        assert_eq!(
            p.call().chunksize(7).map(|x: u64| x * x, 0..200).unwrap(),
            want
        );
        assert_eq!(
            p.map_async(|x: u64| x * x, 0..200).unwrap().get().unwrap(),
            want
        );
        let got: Vec<u64> = p
            .imap(|x: u64| x * x, 0..200)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, want);
        let mut got: Vec<u64> = p
            .imap_unordered(|x: u64| x * x, 0..200)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        got.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(
            p.starmap(|a: u64, b: u64| a + b, [(1, 2), (3, 4)]).unwrap(),
            [3, 7]
        );
        assert_eq!(p.apply(|a: u32, b: u32| a * b, (6, 7)).unwrap(), 42);
        assert_eq!(
            p.apply_async(|| "no args", ()).unwrap().get().unwrap(),
            "no args"
        );
        assert!(p.map(|x: u64| x, Vec::<u64>::new()).unwrap().is_empty());
        // Tasks may capture anything, and values need not be serialisable.
        let shared = Arc::new(vec![10u64, 20, 30]);
        let s2 = Arc::clone(&shared);
        let cells = p
            .map(move |i: usize| std::cell::Cell::new(s2[i]), 0..3)
            .unwrap();
        assert_eq!(cells.iter().map(|c| c.get()).collect::<Vec<_>>(), *shared);
    });
}

#[test]
fn never_more_tasks_at_once_than_threads_and_all_of_them_do_run() {
    watchdog(|| {
        for n in [1usize, 2, 3] {
            let p = Pool::new(n).unwrap();
            let now = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let (a, b) = (Arc::clone(&now), Arc::clone(&most));
            let task = move |_: u64| {
                let here = a.fetch_add(1, Ordering::SeqCst) + 1;
                b.fetch_max(here, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                a.fetch_sub(1, Ordering::SeqCst);
            };
            p.call().chunksize(1).map(task.clone(), 0..60).unwrap();
            let _ = p.imap_unordered(task.clone(), 0..30).unwrap().count();
            let r: Vec<_> = (0..10)
                .map(|i| p.apply_async(task.clone(), (i,)).unwrap())
                .collect();
            r.into_iter().for_each(|r| r.get().unwrap());
            assert_eq!(most.load(Ordering::SeqCst), n, "{n} threads");
            // A barrier only n concurrent tasks can pass.
            let barrier = Arc::new(Barrier::new(n));
            let passed = p
                .call()
                .chunksize(1)
                .map(move |_: usize| barrier.wait().is_leader(), 0..n)
                .unwrap();
            assert_eq!(passed.iter().filter(|l| **l).count(), 1);
        }
    });
}

#[test]
fn a_panic_is_the_items_error_and_the_thread_goes_on() {
    watchdog(|| {
        let p = Pool::new(2).unwrap();
        let out: Vec<_> = p
            .imap(|i: u64| if i == 3 { panic!("three") } else { i }, 0..6)
            .unwrap()
            .collect();
        let e = out[3].as_ref().unwrap_err().as_task().unwrap();
        assert!(e.is_panic() && e.panic_message() == Some("three"));
        assert_eq!(e.task(), Some(3));
        assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 5);
        let e = p
            .map(|i: u64| if i == 8 { panic!("eight") } else { i }, 0..20)
            .unwrap_err();
        assert_eq!(e.as_task().unwrap().task(), Some(8));
        assert_eq!(p.map(|i: u64| i, 0..3).unwrap(), [0, 1, 2]);
    });
}

#[test]
fn imap_over_an_endless_input_pulls_a_bounded_window() {
    watchdog(|| {
        let p = Pool::new(2).unwrap();
        let pulled = Arc::new(AtomicU64::new(0));
        let c = Arc::clone(&pulled);
        let endless = (0u64..).inspect(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        });
        let mut it = p
            .call()
            .buffersize(16)
            .imap(|x: u64| x + 1, endless)
            .unwrap();
        for i in 0..500 {
            assert_eq!(it.next().unwrap().unwrap(), i + 1);
        }
        let n = pulled.load(Ordering::SeqCst);
        assert!((500..=516).contains(&n), "pulled {n}");
    });
}

#[test]
fn worker_state_initializer_and_exit_hook_per_thread() {
    watchdog(|| {
        let inits = Arc::new(AtomicUsize::new(0));
        let exits = Arc::new(AtomicU64::new(0));
        let (i2, e2) = (Arc::clone(&inits), Arc::clone(&exits));
        let p = Pool::builder()
            .processes(2)
            .initializer(move || {
                i2.fetch_add(1, Ordering::SeqCst);
            })
            .worker_state(|| 0u64)
            .on_worker_exit(move |count: u64| {
                e2.fetch_add(count, Ordering::SeqCst);
            })
            .build()
            .unwrap();
        let counts = p
            .call()
            .chunksize(1)
            .map_with_state(
                |c: &mut u64, _: u64| {
                    *c += 1;
                    *c
                },
                0..40,
            )
            .unwrap();
        assert_eq!(counts.len(), 40);
        p.close();
        p.join().unwrap();
        assert_eq!(inits.load(Ordering::SeqCst), 2);
        assert_eq!(
            exits.load(Ordering::SeqCst),
            40,
            "every item counted once by its thread's state"
        );
    });
}

#[test]
fn a_failing_initializer_fails_every_call() {
    watchdog(|| {
        let p = Pool::builder()
            .processes(2)
            .initializer(|| Err::<(), _>("no GPU"))
            .build()
            .unwrap();
        let e = p.map(|x: u64| x, 0..5).unwrap_err();
        let t = e.as_task().unwrap();
        assert!(
            t.is_initializer_failed() && t.to_string().contains("no GPU"),
            "{t}"
        );
        assert!(p
            .apply(|| 1, ())
            .unwrap_err()
            .as_task()
            .unwrap()
            .is_initializer_failed());
    });
}

#[test]
fn terminate_and_drop_end_pending_results_at_once_and_never_hang() {
    watchdog(|| {
        let p = Pool::new(2).unwrap();
        let slow = |ms: u64| {
            std::thread::sleep(Duration::from_millis(ms));
            ms
        };
        let r = p
            .call()
            .chunksize(1)
            .map_async(slow, vec![2_000; 6])
            .unwrap();
        let a = p.apply_async(slow, (2_000,)).unwrap();
        let mut it = p.imap(slow, vec![2_000; 3]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        drop(p);
        assert!(r.ready() && a.ready());
        assert!(r.get().unwrap_err().as_task().unwrap().is_cancelled());
        assert!(a.get().unwrap_err().as_task().unwrap().is_cancelled());
        assert!(it
            .next()
            .unwrap()
            .unwrap_err()
            .as_task()
            .unwrap()
            .is_cancelled());
        let p = Pool::new(2).unwrap();
        p.close();
        assert!(matches!(p.map(|x: u64| x, [1]), Err(Error::Shutdown)));
        p.join().unwrap();
    });
}
