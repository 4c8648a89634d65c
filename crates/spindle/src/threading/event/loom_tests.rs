//! Model checks of `Event` (`--cfg loom`): Python's promise that `set()` wakes every thread
//! waiting at that moment, whatever the flag does next.

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;

use super::Event;

/// Ten threads wait in Python's example of the issue; two (one of each kind) keep the model
/// small enough for every interleaving, which is what the waiters can differ in.
#[test]
fn loom_event_pulse_wakes_waiters_of_both_kinds() {
    loom::model(|| {
        let event = Arc::new(Event::new());
        let (a, b) = (Arc::clone(&event), Arc::clone(&event));
        let plain = thread::spawn(move || a.wait());
        let timed = thread::spawn(move || b.wait_timeout(Duration::from_secs(20)));
        while event.latch.waiting() < 2 {
            thread::yield_now();
        }
        event.set();
        event.clear();
        plain.join().unwrap();
        assert!(timed.join().unwrap());
        assert!(!event.is_set());
    });
}

/// `set` on one thread racing `clear` on another: a thread that was waiting before both is
/// woken with `true` in either order.
#[test]
fn loom_event_set_racing_clear_wakes_the_waiter() {
    loom::model(|| {
        let event = Arc::new(Event::new());
        let w = Arc::clone(&event);
        let waiter = thread::spawn(move || w.wait_timeout(Duration::from_secs(20)));
        while event.latch.waiting() < 1 {
            thread::yield_now();
        }
        let s = Arc::clone(&event);
        let setter = thread::spawn(move || s.set());
        event.clear();
        setter.join().unwrap();
        assert!(waiter.join().unwrap());
    });
}
