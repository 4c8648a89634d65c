//! The one door to the synchronisation primitives of the thread side.
//!
//! Every `Mutex`, `Condvar` and atomic that the completion latch, `Event`, `Future`, the
//! `wait` watchers and the pool's seats use comes from here, so that a `--cfg loom` build
//! swaps them all for [loom]'s model-checked twins (as tokio's `loom` module does) and the
//! model tests (`cargo test -p spindle --lib loom`, run by `.ci/run`) explore every
//! interleaving of those state machines. The default build never sees loom.
//!
//! One thread-local swaps too, beside its use: the seat a thread holds
//! (`futures::thread_pool::seats`), since loom runs its model threads on one OS thread.
//!
//! `static` items keep `std` types (loom's cannot be built in a constant), and so does code
//! that loom cannot model anyway (the pool's crossbeam channels, the process side): the
//! seeded stress tests in `tests/futures_stress.rs` cover those, and timed waits (loom's
//! condvar never times out), with `tests/threading_wakeups.rs` on real threads.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(loom))]
pub(crate) use std::sync::{atomic, Condvar, Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::{atomic, Condvar, Mutex, MutexGuard};

use std::sync::PoisonError;

/// Locks one of the swapped mutexes, ignoring poisoning: every critical section in spindle
/// leaves its data valid even when a user callback panics inside it, so a poisoned lock
/// carries no broken invariant. (For a `std` mutex, a static one or on the process side, use
/// [`crate::latch::lock`]; in a default build the two are the same function.)
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
