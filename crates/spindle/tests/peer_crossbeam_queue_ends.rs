//! crossbeam-channel's `tests/array.rs` and `tests/list.rs` (the bounded and unbounded
//! flavours), ported to spindle's queue ends: `Queue::split` gives a crossbeam-style
//! [`Sender`] / [`Receiver`] pair whose disconnection the kernel tracks, also across
//! processes. crossbeam's `send` / `try_send` / `send_timeout` are `put` / `put_nowait` /
//! `put_timeout` here, `recv` / `try_recv` / `recv_timeout` are `get` / `get_nowait` /
//! `get_timeout`, and `Disconnected` errors give the item back as crossbeam's do.
//!
//! Ported (crossbeam test -> Rust test):
//!
//! * `smoke` -> `smoke`
//! * `len_empty_full` -> `len_empty_full`
//! * `try_recv` -> `try_recv_empty_then_item_then_disconnected`
//! * `recv` -> `recv_then_disconnected`
//! * `recv_timeout` -> `recv_timeout_then_item_then_disconnected`
//! * `try_send` -> `try_send_full_then_disconnected`
//! * `send_timeout` -> `send_timeout`
//! * `send_after_disconnect` -> `send_after_disconnect`
//! * `recv_after_disconnect` -> `recv_after_disconnect`
//! * `disconnect_wakes_sender` -> `disconnect_wakes_sender`
//! * `disconnect_wakes_receiver` -> `disconnect_wakes_receiver`
//! * `spsc` -> `spsc`
//! * `mpmc` -> `mpmc`
//! * `linearizable` -> `linearizable`
//! * `stress_timeout_two_threads` -> `stress_timeout_two_threads`
//! * `iter.rs`'s `recv_iter_break` / `nested_recv_iter` (iterate to the end) -> `iter_until_disconnected`
//! * `channel_through_channel` -> `an_end_cannot_travel_through_a_queue` (deliberate difference:
//!   a queue carries data; its ends travel in a `Process`'s arguments)
//! * the same disconnection across processes, with a SIGKILLed peer ->
//!   `a_killed_sending_process_disconnects`, `a_killed_receiving_process_disconnects`
//!
//! Not ported: `drops` (items are copied into shared memory: nothing of the caller's is kept),
//! the `select!` tests (no `select` over queues; `connection::wait` plays that part and is
//! tested in `cpython_mp_connection.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle::multiprocessing::queues::{GetError, PutError, Queue, Receiver, Sender};
use spindle::multiprocessing::{Builder, StartMethod};

mod common;
use common::{eventually, serial_watchdog, watchdog};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn bounded<T: serde::Serialize + serde::de::DeserializeOwned>(
    cap: u32,
) -> (Sender<T>, Receiver<T>) {
    Queue::with_maxsize(cap).unwrap().split().unwrap()
}

fn unbounded<T: serde::Serialize + serde::de::DeserializeOwned>() -> (Sender<T>, Receiver<T>) {
    Queue::new().unwrap().split().unwrap()
}

#[test]
fn smoke() {
    let (s, r) = bounded(1);
    s.put(7).unwrap();
    assert_eq!(r.get_nowait().unwrap(), 7);
    s.put(8).unwrap();
    assert_eq!(r.get().unwrap(), 8);
    assert!(matches!(r.get_nowait(), Err(GetError::Empty)));
    assert!(matches!(r.get_timeout(ms(50)), Err(GetError::Timeout)));
}

#[test]
fn len_empty_full() {
    let (s, r) = bounded::<()>(2);
    assert_eq!((s.qsize(), s.empty(), s.full()), (0, true, false));
    assert_eq!((r.qsize(), r.empty(), r.full()), (0, true, false));
    s.put(()).unwrap();
    assert_eq!((s.qsize(), s.empty(), s.full()), (1, false, false));
    assert_eq!((r.qsize(), r.empty(), r.full()), (1, false, false));
    s.put(()).unwrap();
    assert_eq!((s.qsize(), s.empty(), s.full()), (2, false, true));
    assert_eq!((r.qsize(), r.empty(), r.full()), (2, false, true));
    r.get().unwrap();
    assert_eq!((s.qsize(), s.empty(), s.full()), (1, false, false));
    assert_eq!((r.qsize(), r.empty(), r.full()), (1, false, false));
}

#[test]
fn try_recv_empty_then_item_then_disconnected() {
    watchdog(|| {
        let (s, r) = bounded(100);
        let receiver = std::thread::spawn(move || {
            assert!(matches!(r.get_nowait(), Err(GetError::Empty)));
            assert!(eventually(Duration::from_secs(20), || r.qsize() == 1));
            assert_eq!(r.get_nowait().unwrap(), 7);
            assert!(eventually(Duration::from_secs(20), || matches!(
                r.get_nowait(),
                Err(GetError::Disconnected)
            )));
        });
        std::thread::sleep(ms(20));
        s.put(7).unwrap();
        drop(s);
        receiver.join().unwrap();
    });
}

#[test]
fn recv_then_disconnected() {
    watchdog(|| {
        let (s, r) = bounded(100);
        let receiver = std::thread::spawn(move || {
            assert_eq!(r.get().unwrap(), 7);
            assert_eq!(r.get().unwrap(), 8);
            assert_eq!(r.get().unwrap(), 9);
            assert!(matches!(r.get(), Err(GetError::Disconnected)));
        });
        std::thread::sleep(ms(20));
        s.put(7).unwrap();
        s.put(8).unwrap();
        s.put(9).unwrap();
        drop(s);
        receiver.join().unwrap();
    });
}

#[test]
fn recv_timeout_then_item_then_disconnected() {
    watchdog(|| {
        let (s, r) = bounded::<i32>(100);
        let receiver = std::thread::spawn(move || {
            assert!(matches!(r.get_timeout(ms(20)), Err(GetError::Timeout)));
            assert_eq!(r.get_timeout(Duration::from_secs(20)).unwrap(), 7);
            assert!(matches!(
                r.get_timeout(Duration::from_secs(20)),
                Err(GetError::Disconnected)
            ));
        });
        std::thread::sleep(ms(50));
        s.put(7).unwrap();
        drop(s);
        receiver.join().unwrap();
    });
}

#[test]
fn try_send_full_then_disconnected() {
    watchdog(|| {
        let (s, r) = bounded(1);
        s.put_nowait(1).unwrap();
        assert!(matches!(s.put_nowait(2), Err(PutError::Full(2))));
        assert_eq!(r.get_nowait().unwrap(), 1);
        assert!(matches!(r.get_nowait(), Err(GetError::Empty)));
        s.put_nowait(3).unwrap();
        assert_eq!(r.get().unwrap(), 3);
        drop(r);
        assert!(matches!(s.put_nowait(4), Err(PutError::Disconnected(4))));
    });
}

#[test]
fn send_timeout() {
    watchdog(|| {
        let (s, r) = bounded(2);
        let timed_out = std::sync::Arc::new(spindle::threading::Event::new());
        let t = std::sync::Arc::clone(&timed_out);
        let sender = std::thread::spawn(move || {
            s.put_timeout(1, Duration::from_secs(20)).unwrap();
            s.put_timeout(2, Duration::from_secs(20)).unwrap();
            let t0 = Instant::now();
            assert!(matches!(
                s.put_timeout(3, ms(50)),
                Err(PutError::Timeout(3))
            ));
            assert!(t0.elapsed() >= ms(50));
            t.set();
            // Waits until the receiver makes room.
            s.put_timeout(4, Duration::from_secs(20)).unwrap();
            assert!(eventually(Duration::from_secs(20), || matches!(
                s.put_nowait(5),
                Err(PutError::Disconnected(5))
            )));
        });
        timed_out.wait();
        assert_eq!(r.get().unwrap(), 1);
        assert_eq!(r.get().unwrap(), 2);
        assert_eq!(r.get_timeout(Duration::from_secs(20)).unwrap(), 4);
        drop(r);
        sender.join().unwrap();
    });
}

#[test]
fn send_after_disconnect() {
    let (s, r) = bounded(100);
    s.put(1).unwrap();
    s.put(2).unwrap();
    s.put(3).unwrap();
    drop(r);
    assert!(matches!(s.put(4), Err(PutError::Disconnected(4))));
    assert!(matches!(s.put_nowait(5), Err(PutError::Disconnected(5))));
    assert!(matches!(
        s.put_timeout(6, ms(50)),
        Err(PutError::Disconnected(6))
    ));
}

#[test]
fn recv_after_disconnect() {
    let (s, r) = bounded(100);
    s.put(1).unwrap();
    s.put(2).unwrap();
    s.put(3).unwrap();
    drop(s);
    assert_eq!(r.get().unwrap(), 1);
    assert_eq!(r.get().unwrap(), 2);
    assert_eq!(r.get().unwrap(), 3);
    assert!(matches!(r.get(), Err(GetError::Disconnected)));
    assert!(matches!(r.get_nowait(), Err(GetError::Disconnected)));
}

#[test]
fn disconnect_wakes_sender() {
    watchdog(|| {
        let (s, r) = bounded(1);
        let sender = std::thread::spawn(move || {
            s.put(()).unwrap();
            assert!(matches!(s.put(()), Err(PutError::Disconnected(()))));
        });
        assert!(eventually(Duration::from_secs(20), || r.full()));
        std::thread::sleep(ms(20));
        drop(r);
        sender.join().unwrap();
    });
}

#[test]
fn disconnect_wakes_receiver() {
    watchdog(|| {
        let (s, r) = bounded::<()>(1);
        let receiver = std::thread::spawn(move || {
            assert!(matches!(r.get(), Err(GetError::Disconnected)));
        });
        std::thread::sleep(ms(20));
        drop(s);
        receiver.join().unwrap();
    });
}

#[test]
fn spsc() {
    watchdog(|| {
        const COUNT: u32 = 20_000;
        let (s, r) = bounded(3);
        let receiver = std::thread::spawn(move || {
            for i in 0..COUNT {
                assert_eq!(r.get().unwrap(), i);
            }
            assert!(matches!(r.get(), Err(GetError::Disconnected)));
        });
        for i in 0..COUNT {
            s.put(i).unwrap();
        }
        drop(s);
        receiver.join().unwrap();
    });
}

#[test]
fn mpmc() {
    watchdog(|| {
        const COUNT: usize = 5_000;
        const THREADS: usize = 4;
        let (s, r) = bounded::<usize>(3);
        let seen: Arc<Vec<AtomicUsize>> =
            Arc::new((0..COUNT).map(|_| AtomicUsize::new(0)).collect());
        let mut handles = Vec::new();
        for _ in 0..THREADS {
            let (r, seen) = (r.clone_handle().unwrap(), Arc::clone(&seen));
            handles.push(std::thread::spawn(move || {
                for _ in 0..COUNT {
                    let n = r.get().unwrap();
                    seen[n].fetch_add(1, Ordering::SeqCst);
                }
            }));
            let s = s.clone_handle().unwrap();
            handles.push(std::thread::spawn(move || {
                for i in 0..COUNT {
                    s.put(i).unwrap();
                }
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
        for c in seen.iter() {
            assert_eq!(c.load(Ordering::SeqCst), THREADS);
        }
    });
}

#[test]
fn linearizable() {
    watchdog(|| {
        const COUNT: usize = 5_000;
        const THREADS: usize = 4;
        let q = Arc::new(Queue::with_maxsize(THREADS as u32).unwrap());
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let q = Arc::clone(&q);
                std::thread::spawn(move || {
                    for _ in 0..COUNT {
                        q.put(0u8).unwrap();
                        q.get_nowait().expect("an item put just before is there");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn stress_timeout_two_threads() {
    watchdog(|| {
        const COUNT: u32 = 50;
        let (s, r) = bounded(2);
        let sender = std::thread::spawn(move || {
            for i in 0..COUNT {
                if i % 2 == 0 {
                    std::thread::sleep(ms(2));
                }
                while s.put_timeout(i, ms(1)).is_err() {}
            }
        });
        for i in 0..COUNT {
            if i % 2 == 0 {
                std::thread::sleep(ms(2));
            }
            let x = loop {
                if let Ok(x) = r.get_timeout(ms(1)) {
                    break x;
                }
            };
            assert_eq!(x, i);
        }
        sender.join().unwrap();
    });
}

#[test]
fn iter_until_disconnected() {
    watchdog(|| {
        let (s, r) = unbounded();
        let sender = std::thread::spawn(move || {
            for i in 0..100u32 {
                s.put(i).unwrap();
            }
        });
        let got: Vec<u32> = r.iter().collect();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        sender.join().unwrap();
        // A clone keeps the channel connected until it goes too.
        let (s, r) = unbounded::<u8>();
        let s2 = s.clone_handle().unwrap();
        drop(s);
        assert!(matches!(r.get_nowait(), Err(GetError::Empty)));
        drop(s2);
        assert!(matches!(r.get_nowait(), Err(GetError::Disconnected)));
        // The receiving side of an end cannot send and the other way round.
        let q = Queue::<u8>::new().unwrap();
        let (tx, rx) = (q.sender().unwrap(), q.receiver().unwrap());
        drop(q);
        tx.put(1).unwrap();
        assert_eq!(rx.get().unwrap(), 1);
    });
}

#[test]
fn an_end_cannot_travel_through_a_queue() {
    let (s, r) = unbounded::<Receiver<u8>>();
    let (_inner_s, inner_r) = unbounded::<u8>();
    match s.put(inner_r) {
        Err(PutError::Failed(back, e)) => {
            drop(back);
            assert!(e.to_string().contains("Process"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(r.get_nowait(), Err(GetError::Empty)));
}

#[test]
fn a_killed_sending_process_disconnects() {
    serial_watchdog(|| {
        let (s, r) = unbounded::<u32>();
        let p = Builder::new()
            .start_method(StartMethod::Fork)
            .fork_target(move || {
                s.put(1).unwrap();
                std::thread::sleep(Duration::from_secs(100));
            });
        p.start().unwrap();
        assert_eq!(r.get_timeout(Duration::from_secs(20)).unwrap(), 1);
        p.kill().unwrap();
        assert!(matches!(
            r.get_timeout(Duration::from_secs(20)),
            Err(GetError::Disconnected)
        ));
        let _ = p.join();
    });
}

#[test]
fn a_killed_receiving_process_disconnects() {
    serial_watchdog(|| {
        let (s, r) = bounded::<u32>(1);
        let p = Builder::new()
            .start_method(StartMethod::Fork)
            .fork_target(move || {
                let _keep = r;
                std::thread::sleep(Duration::from_secs(100));
            });
        p.start().unwrap();
        s.put(1).unwrap();
        // Full: this put waits until the receiving process is gone.
        let killer = {
            let pid = p.pid().unwrap();
            std::thread::spawn(move || {
                std::thread::sleep(ms(20));
                let _ = std::process::Command::new("kill")
                    .arg("-9")
                    .arg(pid.to_string())
                    .status();
            })
        };
        assert!(matches!(
            s.put_timeout(2, Duration::from_secs(20)),
            Err(PutError::Disconnected(2))
        ));
        killer.join().unwrap();
        let _ = p.join();
    });
}
