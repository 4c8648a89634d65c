//! The one door to the synchronisation primitives of the thread side.
//!
//! Every `Mutex`, `Condvar` and atomic that the completion latch, `Event`, `Future`, the
//! `wait` watchers and the pool's seats use comes from here, so that a `--cfg loom` build
//! swaps them all for [loom]'s model-checked twins (as tokio's `loom` module does) and the
//! model tests (`cargo test -p spindle --lib loom`, run by `.ci/run`) explore every
//! interleaving of those state machines. The default build never sees loom.
//!
//! `static` items keep `std` types (loom's cannot be built in a constant), and so does code
//! that loom cannot model anyway (the pool's crossbeam channels, the process side): the
//! stress tests in `tests/threading_stress.rs` and `tests/futures_stress.rs` cover those.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(loom))]
pub(crate) use std::sync::{atomic, Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread_local;

#[cfg(loom)]
pub(crate) use loom::sync::{atomic, Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread_local;

use std::sync::PoisonError;

/// A hint inside a short spin-wait (a no-op scheduling point under loom).
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::hint::spin_loop();
}

/// Locks one of the swapped mutexes, ignoring poisoning: every critical section in spindle
/// leaves its data valid even when a user callback panics inside it, so a poisoned lock
/// carries no broken invariant. (For a `std` mutex, a static one or on the process side, use
/// [`crate::latch::lock`]; in a default build the two are the same function.)
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
