//! `threading.Event`.

use std::time::Duration;

use crate::latch::Latch;

/// A flag that threads can wait for: Python's `threading.Event`.
///
/// [`Event::set`] wakes every waiter, present and future, until [`Event::clear`]. Every
/// thread waiting when `set` is called returns `true`, even when the flag is cleared again
/// before it runs: a `set(); clear()` pulse is a tick that all current waiters see, as in
/// Python.
///
/// ```
/// use spindle::threading::{Event, Thread};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let ready = Arc::new(Event::new());
/// assert!(!ready.wait_timeout(Duration::from_millis(1)));
/// let r = Arc::clone(&ready);
/// let mut t = Thread::new(move || r.set());
/// t.start()?;
/// ready.wait();
/// assert!(ready.is_set());
/// t.join()?;
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Event {
    latch: Latch,
}

impl Event {
    /// An event that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag and wakes every waiting thread: Python's `set()`.
    pub fn set(&self) {
        self.latch.set();
    }

    /// Clears the flag; later waits block until the next [`Event::set`]: Python's `clear()`.
    pub fn clear(&self) {
        self.latch.reset();
    }

    /// Whether the flag is set: Python's `is_set()`.
    pub fn is_set(&self) -> bool {
        self.latch.is_set()
    }

    /// Blocks until the flag is set: Python's `wait()`.
    pub fn wait(&self) {
        self.latch.wait();
    }

    /// Blocks until the flag is set or `timeout` passes: Python's `wait(timeout)`. Returns
    /// whether the flag is set (`false` means the time ran out).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.latch.wait_timeout(timeout)
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
