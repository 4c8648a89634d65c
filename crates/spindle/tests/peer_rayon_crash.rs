//! rayon's crash tests (`rayon-core/tests/stack_overflow_crash.rs`, and the panic tests of
//! `rayon-core/src/join/test.rs`), ported where spindle has the equivalent, plus CPython's
//! `test_threading.test_recursion_limit` and `ExceptHookTests` (an exception in a thread
//! nobody joins is reported), whose Rust form is the same kind of test.
//!
//! Ported (peer test -> Rust test):
//!
//! * rayon `stack_overflow_crash` (a small stack overflows and the process dies by a signal,
//!   a large one runs the same recursion) -> `thread_stack_size_decides_a_deep_recursion`
//!   (the overflow case re-runs this binary for one test, as rayon does)
//! * the same recursion in a child process -> `a_child_stack_overflow_is_a_task_error`
//!   (spindle reports it instead of losing the child), and in a pool worker ->
//!   `a_pool_worker_stack_overflow_fails_one_item` (the pool goes on)
//! * rayon `join::test::panic_propagate_*`, `panic_b_still_executes` ->
//!   `a_panic_reaches_join_and_the_other_work_still_runs`
//! * CPython `ExceptHookTests.test_excepthook` (a panic in a thread nobody joins reaches
//!   stderr) -> `an_unjoined_panic_is_reported_on_stderr` (re-runs this binary)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use spindle::futures::ThreadPoolExecutor;
use spindle::multiprocessing::{Builder, Pool, StartMethod};
use spindle::threading::Thread;

mod common;
use common::{rerun_alone, serial_watchdog, watchdog};

/// Set in the re-run copy of this binary: which crash to perform.
const CASE: &str = "SPINDLE_PORTED_CRASH_CASE";

/// rayon's `force_stack_overflow`: 1 MiB frames, `depth` deep.
#[inline(never)]
fn force_stack_overflow(depth: u32) -> u8 {
    let buffer = std::hint::black_box([depth as u8; 1024 * 1024]);
    if depth > 0 {
        return force_stack_overflow(depth - 1).wrapping_add(buffer[17]);
    }
    buffer[3]
}

fn deep_recursion_on_a_thread(stack_mib: usize) -> u8 {
    let mut t = Thread::builder()
        .stack_size(stack_mib << 20)
        .target(|| force_stack_overflow(32))
        .unwrap();
    t.start().unwrap();
    t.join().unwrap()
}

/// Re-runs this test binary for the test `name` alone, with [`CASE`] set to `case`.
fn rerun(name: &str, case: &str) -> std::process::Output {
    rerun_alone(name, &[(CASE, case)])
}

#[test]
fn thread_stack_size_decides_a_deep_recursion() {
    // Both cases in a re-run copy of this binary, as rayon does: a wrong guess of the frame
    // size (a debug build's frames are larger) must not take this test process down.
    match std::env::var(CASE).as_deref() {
        Ok("overflow") => {
            deep_recursion_on_a_thread(8);
            return;
        }
        Ok("fits") => {
            deep_recursion_on_a_thread(256);
            return;
        }
        _ => {}
    }
    watchdog(|| {
        use std::os::unix::process::ExitStatusExt;
        // 33 frames of at least 1 MiB do not fit in 8 MiB: the process dies of it, with
        // Rust's report.
        let out = rerun("thread_stack_size_decides_a_deep_recursion", "overflow");
        assert_eq!(
            out.status.code(),
            None,
            "killed by a signal: {:?}",
            out.status
        );
        assert!(
            matches!(out.status.signal(), Some(6) | Some(11)),
            "SIGABRT or SIGSEGV: {:?}",
            out.status
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("has overflowed its stack"), "{stderr}");
        // With room enough, the same recursion runs to its end.
        let out = rerun("thread_stack_size_decides_a_deep_recursion", "fits");
        assert!(
            out.status.success(),
            "{:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

fn overflow_in_child() -> u8 {
    force_stack_overflow(1 << 20)
}

#[test]
fn a_child_stack_overflow_is_a_task_error() {
    serial_watchdog(|| {
        let p = Builder::new()
            .start_method(StartMethod::Fork)
            .target(overflow_in_child, ());
        p.start().unwrap();
        let e = p.join().unwrap_err();
        assert!(e.to_string().contains("stack overflow"), "{e}");
        assert_eq!(p.exitcode(), Some(-11));
    });
}

fn overflow_or_not(deep: bool) -> u8 {
    if deep {
        force_stack_overflow(1 << 20)
    } else {
        1
    }
}

#[test]
fn a_pool_worker_stack_overflow_fails_one_item() {
    serial_watchdog(|| {
        let pool = Pool::builder()
            .processes(2)
            .start_method(StartMethod::Fork)
            .build()
            .unwrap();
        let got = pool
            .call()
            .chunksize(1)
            .imap(overflow_or_not, [false, true, false, false])
            .unwrap()
            .collect::<Vec<_>>();
        assert_eq!(got.len(), 4);
        let e = got[1].as_ref().unwrap_err();
        let t = e.as_task().expect("a task error");
        assert!(t.is_worker_died() && t.signal() == Some(11), "{e}");
        for i in [0, 2, 3] {
            assert_eq!(*got[i].as_ref().unwrap(), 1);
        }
        assert_eq!(pool.map(overflow_or_not, [false; 3]).unwrap(), [1, 1, 1]);
    });
}

#[test]
fn a_panic_reaches_join_and_the_other_work_still_runs() {
    watchdog(|| {
        // join(a, b) where a panics: b still runs, and the panic reaches the caller.
        let b_ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&b_ran);
        let mut a = Thread::new(|| -> u8 { panic!("a panics") });
        let mut b = Thread::new(move || flag.store(true, Ordering::SeqCst));
        a.start().unwrap();
        b.start().unwrap();
        b.join().unwrap();
        let e = a.join().unwrap_err();
        assert_eq!(
            e.as_task().and_then(|t| t.panic_message()),
            Some("a panics")
        );
        assert!(b_ran.load(Ordering::SeqCst));
        // In a pool: the panicking task fails alone, the worker survives it.
        let pool = ThreadPoolExecutor::builder()
            .max_workers(1)
            .build()
            .unwrap();
        let bad = pool.spawn(|| -> u8 { panic!("in the pool") }).unwrap();
        let good = pool.spawn(|| 7u8).unwrap();
        assert!(bad
            .result()
            .unwrap_err()
            .as_task()
            .is_some_and(|t| t.is_panic()));
        assert_eq!(good.result().unwrap(), 7);
    });
}

#[test]
fn an_unjoined_panic_is_reported_on_stderr() {
    if std::env::var(CASE).as_deref() == Ok("unjoined") {
        let mut t = Thread::builder()
            .name("ThreadRunFail")
            .target(|| -> u8 { panic!("run failed") })
            .unwrap();
        t.start().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(t); // never joined
        return;
    }
    watchdog(|| {
        let out = rerun("an_unjoined_panic_is_reported_on_stderr", "unjoined");
        assert!(out.status.success(), "{:?}", out.status);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("thread 'ThreadRunFail' panicked and was never joined")
                && stderr.contains("run failed"),
            "{stderr}"
        );
    });
}
