//! Helpers of the `futures_*` test binaries: a gate and a hand-written `block_on`.

use std::future::Future as StdFuture;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

/// A one-shot gate: `open` releases every `wait`er (a test-side latch).
#[derive(Clone, Default)]
pub(crate) struct Gate(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    pub(crate) fn wait(&self) {
        let mut open = self.0 .0.lock().unwrap();
        while !*open {
            open = self.0 .1.wait(open).unwrap();
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        *self.0 .0.lock().unwrap()
    }
}

/// Wakes a parked thread, and counts how often it was asked to.
pub(crate) struct ThreadWaker {
    thread: Thread,
    woken: AtomicBool,
    pub wakes: AtomicUsize,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// The smallest executor of `std::future::Future`s: poll, park until woken, poll again.
/// `on_pending` runs every time a poll returns `Pending`. Returns the output and how many
/// times the waker was woken.
pub(crate) fn block_on<F: StdFuture>(fut: F, mut on_pending: impl FnMut()) -> (F::Output, usize) {
    let mut fut = pin!(fut);
    let state = Arc::new(ThreadWaker {
        thread: thread::current(),
        woken: AtomicBool::new(false),
        wakes: AtomicUsize::new(0),
    });
    let waker = Waker::from(Arc::clone(&state));
    let mut cx = Context::from_waker(&waker);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return (out, state.wakes.load(Ordering::SeqCst)),
            Poll::Pending => {
                on_pending();
                // `park` may return spuriously; polling again is always allowed.
                while !state.woken.swap(false, Ordering::SeqCst) {
                    thread::park();
                }
            }
        }
    }
}
