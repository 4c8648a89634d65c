//! [`Event`]: one futex word.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::multiprocessing::shared_memory::Segment;
use crate::sys::futex;

const FLAG: usize = 0;

/// A process-shared flag that processes wait for: Python's `multiprocessing.Event`.
///
/// ```
/// use spindle::multiprocessing::synchronize::Event;
/// use std::time::Duration;
/// let e = Event::new()?;
/// assert!(!e.wait_timeout(Duration::from_millis(1)));
/// e.set();
/// assert!(e.is_set());
/// e.wait();
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Event {
    seg: Segment,
}

impl Event {
    /// A new event, not set.
    pub fn new() -> Result<Event> {
        Ok(Event {
            seg: Segment::new("spindle-event", 64)?,
        })
    }

    fn flag(&self) -> &AtomicU32 {
        self.seg.map().atomic_u32(FLAG)
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.flag().load(Ordering::Acquire) != 0
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.flag().store(1, Ordering::Release);
        futex::wake(self.flag(), u32::MAX);
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.flag().store(0, Ordering::Release);
    }

    /// Waits until the flag is set.
    pub fn wait(&self) {
        while !self.is_set() {
            futex::wait(self.flag(), 0, None);
        }
    }

    /// Waits at most `timeout`; returns whether the flag is set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let end = Instant::now().checked_add(timeout);
        loop {
            if self.is_set() {
                return true;
            }
            let left = match end {
                None => None,
                Some(e) => {
                    let now = Instant::now();
                    if now >= e {
                        return false;
                    }
                    Some(e - now)
                }
            };
            futex::wait(self.flag(), 0, left);
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}
