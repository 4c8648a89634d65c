//! Model checks of the `Future`/`Promise` state machine (`--cfg loom`): every transition
//! raced against the others under every interleaving loom explores.
//!
//! What must hold: exactly one of "finished" and "cancelled" wins; every waiter, `.await`er and
//! watcher hears the end once; a callback runs exactly once, on whichever thread; the outcome
//! is handed out once.

use std::future::Future as _;
use std::sync::atomic::AtomicUsize as StdAtomicUsize;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use crate::futures::wait::Watch;
use crate::futures::{promise, Future};

/// `set_result` on a worker racing `cancel` on the caller, with a third thread blocked in
/// `wait`: one of the two wins, the loser learns it, the waiter always wakes.
#[test]
fn loom_finish_races_cancel_and_a_waiter_always_wakes() {
    loom::model(|| {
        let (p, f) = promise::<u32>();
        let f = Arc::new(f);
        let fw = Arc::clone(&f);
        let waiter = thread::spawn(move || {
            fw.wait();
            assert!(fw.done());
        });
        let worker = thread::spawn(move || {
            if p.set_running_or_notify_cancel() {
                p.set_result(7).is_ok()
            } else {
                false
            }
        });
        let cancelled = f.cancel();
        let finished = worker.join().unwrap();
        waiter.join().unwrap();
        assert!(
            cancelled != finished,
            "cancelled {cancelled}, finished {finished}"
        );
        assert!(f.done());
        assert_eq!(f.cancelled(), cancelled);
        let f = Arc::try_unwrap(f).expect("one owner left");
        match f.result() {
            Ok(v) => assert!(finished && v == 7),
            Err(e) => assert!(cancelled && e.as_task().is_some_and(|t| t.is_cancelled())),
        }
    });
}

/// A callback added while the task ends runs exactly once: before completion it runs on the
/// completing thread, after it on the adding thread.
#[test]
fn loom_a_callback_added_during_completion_runs_once() {
    loom::model(|| {
        let (p, f) = promise::<u32>();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&runs);
        let worker = thread::spawn(move || p.set_result(3).unwrap());
        f.add_done_callback(move |v| {
            assert_eq!(v.copied().ok(), Some(3));
            r.fetch_add(1, Ordering::SeqCst);
        });
        worker.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(f.result().unwrap(), 3);
    });
}

/// Counts its wake-ups.
#[derive(Default)]
struct CountingWaker(StdAtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: StdArc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &StdArc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A poll racing the completion: either the poll sees the value, or the waker it left is
/// woken (no lost wake-up for an async runtime), and the next poll is ready.
#[test]
fn loom_a_poll_racing_completion_is_ready_or_woken() {
    loom::model(|| {
        let (p, mut f) = promise::<u32>();
        let worker = thread::spawn(move || p.set_result(5).unwrap());
        let counter = StdArc::new(CountingWaker::default());
        let waker = Waker::from(StdArc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let first = std::pin::Pin::new(&mut f).poll(&mut cx);
        worker.join().unwrap();
        match first {
            Poll::Ready(v) => assert_eq!(v.unwrap(), 5),
            Poll::Pending => {
                assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 1);
                match std::pin::Pin::new(&mut f).poll(&mut cx) {
                    Poll::Ready(v) => assert_eq!(v.unwrap(), 5),
                    Poll::Pending => panic!("woken but not ready"),
                }
            }
        }
    });
}

/// A `wait`/`as_completed` watcher registered while the future ends hears it exactly once.
#[test]
fn loom_a_watcher_registered_during_completion_hears_once() {
    loom::model(|| {
        let (p, f): (_, Future<u32>) = promise();
        let watch = StdArc::new(Watch::default());
        let worker = thread::spawn(move || drop(p)); // a dropped promise ends the future too
        f.shared().watch(&watch, 0);
        worker.join().unwrap();
        assert_eq!(watch.heard(), (vec![0], 1, 1), "(ready, ended, errors)");
        assert_eq!(f.shared().watchers(), 0);
    });
}
