//! Process-shared synchronisation: Python's `multiprocessing.synchronize`.
//!
//! [`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`], [`Event`], [`Condition`] and
//! [`Barrier`] live in a small shared-memory segment each (a sealed memfd), so a handle works
//! in any process that has it: captured by a fork closure, or (once the start path carries
//! descriptors) passed in a `Process`'s arguments. Cloning a handle shares the same primitive.
//!
//! What a demanding user gets beyond Python:
//! - **A dead holder is reported, not waited for.** [`Lock`] and [`RLock`] are glibc's robust,
//!   process-shared mutexes. When a process dies holding one (even by `SIGKILL`), the next
//!   acquirer gets [`LockError::OwnerDied`] — it holds the lock, and is told that the state the
//!   lock protects may be half-updated. Every acquirer is told so until one of them calls
//!   [`LockGuard::mark_consistent`] (or [`Lock::mark_consistent`]).
//! - **A dead waiter never blocks a wake-up.** [`Condition`] keeps its own futex word; a
//!   `notify_all` never waits for a waiter, so one that died is simply gone.
//! - **A dead party breaks a [`Barrier`]** instead of making it look slow: a barrier records
//!   each process that waits at it, and a waiter that finds a recorded party dead without
//!   having arrived breaks the barrier ([`Error::BrokenBarrier`](crate::Error::BrokenBarrier)).
//!
//! ```
//! use spindle::multiprocessing::synchronize::Lock;
//! let lock = Lock::new()?;
//! {
//!     let _g = lock.lock().expect("not held");
//!     assert!(lock.locked());
//! }
//! assert!(!lock.locked());
//! # Ok::<(), spindle::Error>(())
//! ```

mod barrier;
mod condition;
mod event;
mod lock;
mod semaphore;

pub use barrier::Barrier;
pub use condition::{Condition, ConditionLock};
pub use event::Event;
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore};

use std::fmt;
use std::time::{Duration, Instant};

/// Why a lock attempt did not simply succeed. Gives back what it acquired (`G`: a guard, or
/// `()` for [`Lock::acquire`]) when the lock *was* acquired.
#[non_exhaustive]
pub enum LockError<G = ()> {
    /// The time ran out (or, for a try, the lock is held).
    Timeout,
    /// The lock is now held by the caller, and a process (or thread) died holding it earlier:
    /// the state it protects may be half-updated. Holds the guard.
    OwnerDied(G),
    /// The calling thread already holds this (non-reentrant) lock: waiting would never end.
    WouldDeadlock,
    /// The calling thread does not hold the lock this call needs (a condition's `wait` or
    /// `notify` without its lock).
    NotOwner,
    /// The system refused (a corrupt segment).
    Io(std::io::Error),
}

impl<G> LockError<G> {
    /// Whether this is [`LockError::OwnerDied`].
    pub fn is_owner_died(&self) -> bool {
        matches!(self, LockError::OwnerDied(_))
    }

    /// The guard of an [`OwnerDied`](LockError::OwnerDied) outcome.
    pub fn into_guard(self) -> Option<G> {
        match self {
            LockError::OwnerDied(g) => Some(g),
            _ => None,
        }
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Timeout => f.write_str("Timeout"),
            LockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockError::WouldDeadlock => f.write_str("WouldDeadlock"),
            LockError::NotOwner => f.write_str("NotOwner"),
            LockError::Io(e) => f.debug_tuple("Io").field(e).finish(),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Timeout => f.write_str("timed out waiting for the lock"),
            LockError::OwnerDied(_) => {
                f.write_str("acquired a lock whose previous owner died holding it")
            }
            LockError::WouldDeadlock => f.write_str("this thread already holds the lock"),
            LockError::NotOwner => f.write_str("this thread does not hold the lock"),
            LockError::Io(e) => write!(f, "lock failed: {e}"),
        }
    }
}

impl<G> std::error::Error for LockError<G> {}

impl<G> From<LockError<G>> for crate::Error {
    fn from(e: LockError<G>) -> crate::Error {
        match e {
            LockError::Timeout => crate::Error::Timeout,
            LockError::Io(e) => crate::Error::Io(e),
            LockError::NotOwner => crate::Error::NotOwner,
            other => crate::Error::InvalidState(match other {
                LockError::OwnerDied(_) => "the lock's previous owner died holding it",
                _ => "this thread already holds the lock",
            }),
        }
    }
}

/// How long a waiter sleeps before it looks again at what only polling can see (a dead
/// barrier party, a dead process holding a semaphore's waiters): short at first, longer later.
pub(crate) fn slice(waited: Duration, deadline: Option<Instant>) -> Option<Duration> {
    let step = if waited < Duration::from_millis(50) {
        Duration::from_millis(5)
    } else {
        Duration::from_millis(50)
    };
    match deadline {
        None => Some(step),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            Some(left.min(step))
        }
    }
}
