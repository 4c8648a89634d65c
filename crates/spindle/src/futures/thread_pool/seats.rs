//! [`Seats`]: `max_workers` is a bound on the tasks a pool runs at once, whoever runs them.
//!
//! A thread runs a pool's tasks only while it holds one of the pool's `max_workers` seats. A
//! worker takes a seat when it gets work and keeps it while work keeps coming; it gives the
//! seat back just before it blocks for more ([`Pool::serve`](super::Pool)). The thread
//! iterating a `map` may run a chunk itself only in a seat it could take at once — the seat of
//! a worker that is idle or not started — never in an extra one ([`Seats::try_seat`]); when
//! none is free it sleeps and leaves the chunk to the workers. Since there are as many seats
//! as workers, a worker waits for a seat only while a caller sits in one, and the caller
//! leaves it at the end of that one chunk (or slice of tiny items).
//!
//! The state is one atomic word: the seats taken (low half) and the threads waiting for one
//! (high half), so that a release sees in the same read-modify-write whether it must wake a
//! waiter. A waiter registers under the mutex and holds it until it sleeps on the condvar, and
//! a release that saw a waiter takes the mutex before notifying, so no wake-up is lost (the
//! loom models in `seats/loom_tests.rs` check it, together with the bound).

use std::cell::Cell;
use std::fmt;

use crate::latch::wait_until;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{lock, Condvar, Mutex};

/// One seat taken.
const ONE: u64 = 1;
/// One waiter registered.
const WAITER: u64 = 1 << 32;
/// The seats-taken half of the word.
const TAKEN: u64 = WAITER - 1;

#[cfg(not(loom))]
std::thread_local! {
    /// The id of the pool whose seat this thread holds (0: none).
    static SEATED: Cell<usize> = const { Cell::new(0) };
}

// loom runs its model threads on one OS thread, with thread-locals of its own.
#[cfg(loom)]
loom::thread_local! {
    static SEATED: Cell<usize> = Cell::new(0);
}

/// The seats of one pool.
pub(crate) struct Seats {
    /// The pool's id (what [`SEATED`] records).
    pool: usize,
    max: u64,
    /// Seats taken (low 32 bits) and threads waiting for one (high 32 bits).
    state: AtomicU64,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Seats {
    /// `max` seats (at least one; more than 2³¹ cannot be used and are not counted).
    pub(crate) fn new(pool: usize, max: usize) -> Self {
        let max = u64::try_from(max).unwrap_or(u64::MAX).clamp(1, TAKEN >> 1);
        Seats {
            pool,
            max,
            state: AtomicU64::new(0),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    /// Takes a seat if one is free now.
    fn try_take(&self) -> bool {
        let mut s = self.state.load(Ordering::Acquire);
        while s & TAKEN < self.max {
            match self
                .state
                .compare_exchange_weak(s, s + ONE, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
        false
    }

    /// Takes a seat, waiting for one if all are taken.
    fn take(&self) {
        if self.try_take() {
            return;
        }
        let guard = lock(&self.lock);
        // Register as a waiter, unless a seat came free meanwhile.
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            let (next, seated) = if s & TAKEN < self.max {
                (s + ONE, true)
            } else {
                (s + WAITER, false)
            };
            match self
                .state
                .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if seated => return,
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        // Registered: every release from now on sees us and notifies under the lock, which
        // we hold until the condvar has us.
        let _ = wait_until(&self.cv, guard, None, |_| {
            let mut s = self.state.load(Ordering::Acquire);
            while s & TAKEN < self.max {
                // Take the seat and leave the waiters in one step.
                match self.state.compare_exchange_weak(
                    s,
                    s + ONE - WAITER,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return true,
                    Err(now) => s = now,
                }
            }
            false
        });
    }

    /// Gives a seat back, waking one waiter if there is one.
    fn release(&self) {
        let before = self.state.fetch_sub(ONE, Ordering::AcqRel);
        debug_assert!(before & TAKEN > 0, "a seat released twice");
        if before >= WAITER {
            let _guard = lock(&self.lock);
            self.cv.notify_one();
        }
    }

    /// A seat for the calling thread, waiting for one if need be (a worker that got work).
    /// A thread that already sits in one of these seats gets a guard that changes nothing.
    pub(crate) fn seat(&self) -> Seat<'_> {
        if self.held_here() {
            return Seat::nested(self);
        }
        self.take();
        Seat::taken(self)
    }

    /// A seat for the calling thread if one is free now, else `None` (a caller that would
    /// help). A thread that already sits in one of these seats (a task of this pool that
    /// iterates a `map` of the same pool) runs in it: that adds no running task.
    pub(crate) fn try_seat(&self) -> Option<Seat<'_>> {
        if self.held_here() {
            return Some(Seat::nested(self));
        }
        self.try_take().then(|| Seat::taken(self))
    }

    /// Whether the calling thread sits in one of these seats.
    pub(crate) fn held_here(&self) -> bool {
        SEATED.with(Cell::get) == self.pool
    }

    /// How many seats are taken now (for tests).
    #[cfg(test)]
    pub(crate) fn taken(&self) -> u64 {
        self.state.load(Ordering::Acquire) & TAKEN
    }
}

impl fmt::Debug for Seats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        f.debug_struct("Seats")
            .field("max", &self.max)
            .field("taken", &(s & TAKEN))
            .field("waiting", &(s >> 32))
            .finish()
    }
}

/// A seat held by the current thread; given back when dropped (also on unwinding).
pub(crate) struct Seat<'a> {
    seats: &'a Seats,
    /// Whether this guard took the seat (not a nested one).
    owned: bool,
    /// What [`SEATED`] was before.
    before: usize,
}

impl<'a> Seat<'a> {
    fn taken(seats: &'a Seats) -> Self {
        let before = SEATED.with(|s| s.replace(seats.pool));
        Seat {
            seats,
            owned: true,
            before,
        }
    }

    fn nested(seats: &'a Seats) -> Self {
        Seat {
            seats,
            owned: false,
            before: seats.pool,
        }
    }

    /// Gives the seat up for the duration of `wait` and takes one again afterwards (waiting
    /// if need be): for a thread in a seat that must wait for the pool's workers (a task
    /// that shuts its own pool down with `wait`), which may need this very seat to finish.
    pub(crate) fn give_up_while<T>(seats: &Seats, wait: impl FnOnce() -> T) -> T {
        if !seats.held_here() {
            return wait();
        }
        seats.release();
        SEATED.with(|s| s.set(0));
        struct Retake<'a>(&'a Seats);
        impl Drop for Retake<'_> {
            fn drop(&mut self) {
                self.0.take();
                SEATED.with(|s| s.set(self.0.pool));
            }
        }
        let _retake = Retake(seats);
        wait()
    }
}

impl Drop for Seat<'_> {
    fn drop(&mut self) {
        if self.owned {
            SEATED.with(|s| s.set(self.before));
            self.seats.release();
        }
    }
}

impl fmt::Debug for Seat<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seat")
            .field("pool", &self.seats.pool)
            .field("owned", &self.owned)
            .finish()
    }
}

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod tests;
