//! [`Event`]: one futex word.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::multiprocessing::shared_memory::Segment;
use crate::sys::futex;

/// The event's word: bit 0 is the flag; the bits above count the `set`s that raised it
/// (wrapping), so that a waiter woken by a `set(); clear()` pulse knows that a set happened
/// while it waited, though the flag is down again by the time it runs.
const WORD: usize = 0;
const FLAG: u32 = 1;

/// A process-shared flag that processes wait for: Python's `multiprocessing.Event`.
///
/// As `threading.Event` (which Python's is a clone of), a wait returns `true` when the flag
/// was set before the wait or at any moment during it, even if it was cleared again before
/// the waiter ran: a `set(); clear()` pulse wakes every waiter of that moment.
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

    fn word(&self) -> &AtomicU32 {
        self.seg.map().atomic_u32(WORD)
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.word().load(Ordering::Acquire) & FLAG != 0
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        let word = self.word();
        let mut cur = word.load(Ordering::Relaxed);
        loop {
            if cur & FLAG != 0 {
                return;
            }
            // One more set (the count is in the bits above the flag), and the flag.
            let next = cur.wrapping_add(2) | FLAG;
            match word.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        futex::wake(word, u32::MAX);
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.word().fetch_and(!FLAG, Ordering::AcqRel);
    }

    /// Waits until the flag is set (or was set while this call waited).
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Waits at most `timeout`; returns whether the flag was set before or during the wait
    /// (`false` means the time ran out).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    fn wait_until(&self, end: Option<Instant>) -> bool {
        let word = self.word();
        let start = word.load(Ordering::Acquire);
        let mut seen = start;
        loop {
            // Set now, or set (and maybe cleared again) since this wait began.
            if seen & FLAG != 0 || (seen >> 1) != (start >> 1) {
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
            futex::wait(word, seen, left);
            seen = word.load(Ordering::Acquire);
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
