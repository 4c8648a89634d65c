//! Seats from the inside: who sits, and that every task runs in a seat.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use super::Seats;
use crate::futures::ThreadPoolExecutor;

#[test]
fn a_free_seat_is_taken_once_and_a_full_set_refuses() {
    let seats = Seats::new(9_000_001, 2);
    let a = seats.try_seat().expect("first seat");
    assert_eq!(seats.taken(), 1);
    // The same thread sits already: a nested request takes nothing more.
    let nested = seats.try_seat().expect("nested");
    assert_eq!(seats.taken(), 1);
    drop(nested);
    assert!(seats.held_here(), "dropping a nested guard keeps the seat");
    let other = thread::scope(|s| {
        s.spawn(|| {
            let b = seats.try_seat().expect("second seat");
            let full = thread::scope(|s2| s2.spawn(|| seats.try_seat().is_none()).join());
            drop(b);
            full.unwrap()
        })
        .join()
        .unwrap()
    });
    assert!(other, "a third thread found a seat among two");
    drop(a);
    assert_eq!(seats.taken(), 0);
    assert!(!seats.held_here());
}

#[test]
fn a_waiting_taker_gets_the_seat_given_back() {
    let seats = Arc::new(Seats::new(9_000_002, 1));
    let held = seats.try_seat().expect("the one seat");
    let got = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (seats, got) = (Arc::clone(&seats), Arc::clone(&got));
        thread::spawn(move || {
            let _seat = seats.seat();
            got.store(true, Ordering::SeqCst);
            assert_eq!(seats.taken(), 1);
        })
    };
    // The waiter cannot pass while the seat is held (if it did, it would find two taken).
    thread::sleep(std::time::Duration::from_millis(20));
    assert!(!got.load(Ordering::SeqCst));
    drop(held);
    waiter.join().unwrap();
    assert!(got.load(Ordering::SeqCst));
    assert_eq!(seats.taken(), 0);
}

#[test]
fn giving_a_seat_up_while_waiting_lets_another_sit_then_takes_it_back() {
    let seats = Seats::new(9_000_003, 1);
    let _held = seats.try_seat().expect("the one seat");
    let other_sat = super::Seat::give_up_while(&seats, || {
        assert!(!seats.held_here());
        thread::scope(|s| s.spawn(|| seats.try_seat().is_some()).join().unwrap())
    });
    assert!(other_sat);
    assert!(seats.held_here());
    assert_eq!(seats.taken(), 1);
}

/// Every item of a `map` runs in one of the pool's seats — on a worker or on the caller,
/// tiny items computed a slice at a time on the caller included — and the seats taken never
/// exceed `max_workers`.
#[test]
fn every_map_item_runs_in_a_seat_tiny_or_not() {
    for workers in [1, 2, 3] {
        let exec = ThreadPoolExecutor::builder()
            .max_workers(workers)
            .build()
            .unwrap();
        let pool = Arc::clone(&exec.pool);
        let unseated = Arc::new(AtomicUsize::new(0));
        let over = Arc::new(AtomicUsize::new(0));
        let on_caller = Arc::new(AtomicUsize::new(0));
        let me = thread::current().id();
        let (p, u, o, c) = (
            Arc::clone(&pool),
            Arc::clone(&unseated),
            Arc::clone(&over),
            Arc::clone(&on_caller),
        );
        // Checked on one item in 64, so that the items stay tiny and the caller computes
        // them in slices.
        let sum: u64 = exec
            .map(
                move |i: u64| {
                    if i % 64 == 0 {
                        if !p.seats.held_here() {
                            u.fetch_add(1, Ordering::Relaxed);
                        }
                        if p.seats.taken() > p.max_workers as u64 {
                            o.fetch_add(1, Ordering::Relaxed);
                        }
                        if thread::current().id() == me {
                            c.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    i
                },
                0..1_000_000u64,
            )
            .unwrap()
            .map(Result::unwrap)
            .sum();
        assert_eq!(sum, 999_999 * 1_000_000 / 2);
        assert_eq!(unseated.load(Ordering::Relaxed), 0, "{workers} workers");
        assert_eq!(over.load(Ordering::Relaxed), 0, "{workers} workers");
        assert!(
            on_caller.load(Ordering::Relaxed) > 0,
            "the caller computed nothing"
        );
        drop(exec);
        assert_eq!(pool.seats.taken(), 0, "a seat was not given back");
    }
}
