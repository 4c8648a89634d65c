//! Model checks of the seats (`--cfg loom`): never more than `max` threads sit at once, and
//! a thread waiting for a seat is always woken when one is given back.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use super::Seats;

/// Sits down (waiting if need be) or tries to, and checks the gauge while seated.
fn sit(seats: &Seats, gauge: &AtomicUsize, max: usize, wait: bool) -> bool {
    let seat = if wait {
        Some(seats.seat())
    } else {
        seats.try_seat()
    };
    let Some(_seat) = seat else {
        return false;
    };
    let now = gauge.fetch_add(1, Ordering::SeqCst) + 1;
    assert!(now <= max, "{now} seated of {max}");
    gauge.fetch_sub(1, Ordering::SeqCst);
    true
}

/// One seat: a worker that waits for it and a caller that takes it only if free. The bound
/// holds, and the worker always gets the seat (no deadlock).
#[test]
fn loom_one_seat_worker_waits_caller_tries() {
    loom::model(|| {
        let seats = Arc::new(Seats::new(1, 1));
        let gauge = Arc::new(AtomicUsize::new(0));
        let (s, g) = (Arc::clone(&seats), Arc::clone(&gauge));
        let worker = thread::spawn(move || sit(&s, &g, 1, true));
        sit(&seats, &gauge, 1, false);
        assert!(worker.join().unwrap());
        assert_eq!(seats.taken(), 0);
    });
}

/// One seat, two threads that wait for it while the caller holds it: each release wakes a
/// waiter, so both get the seat in turn.
#[test]
fn loom_one_seat_two_waiters_both_get_it() {
    loom::model(|| {
        let seats = Arc::new(Seats::new(2, 1));
        let gauge = Arc::new(AtomicUsize::new(0));
        let held = seats.try_seat().expect("free at first");
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (s, g) = (Arc::clone(&seats), Arc::clone(&gauge));
                thread::spawn(move || sit(&s, &g, 1, true))
            })
            .collect();
        drop(held);
        for w in waiters {
            assert!(w.join().unwrap());
        }
        assert_eq!(seats.taken(), 0);
    });
}

/// Two seats, three threads: two wait for a seat, one tries. Never three at once.
#[test]
fn loom_two_seats_three_threads_never_three() {
    loom::model(|| {
        let seats = Arc::new(Seats::new(3, 2));
        let gauge = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (s, g) = (Arc::clone(&seats), Arc::clone(&gauge));
                thread::spawn(move || sit(&s, &g, 2, true))
            })
            .collect();
        sit(&seats, &gauge, 2, false);
        for w in waiters {
            assert!(w.join().unwrap());
        }
        assert_eq!(seats.taken(), 0);
    });
}
