//! Queues across processes: typed items with fork children, many producers and consumers,
//! back-pressure, every timeout form, close, end of stream, `JoinableQueue::join`, and real
//! SIGKILLs of producers and consumers in the middle of their work.
//!
//! Behaviours ported from CPython's `_test_multiprocessing` (`_TestQueue`: `test_put`,
//! `test_get`, `test_fork`, `test_qsize`, `test_task_done`, `test_timeout`), plus the faults
//! CPython does not survive.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use spindle::multiprocessing::queues::{GetError, JoinableQueue, PutError, Queue, SimpleQueue};
use spindle::multiprocessing::{Builder, Process};

mod common;

use common::serial_watchdog as watchdog;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Msg {
    producer: u32,
    seq: u32,
    body: Vec<u8>,
}

fn msg(producer: u32, seq: u32, len: usize) -> Msg {
    let fill = (producer as u8) ^ (seq as u8);
    Msg {
        producer,
        seq,
        body: vec![fill; len],
    }
}

fn intact(m: &Msg) -> bool {
    let fill = (m.producer as u8) ^ (m.seq as u8);
    m.body.iter().all(|b| *b == fill)
}

#[test]
fn typed_items_reach_a_fork_child_and_come_back() {
    watchdog(|| {
        let to_child = Queue::<Msg>::new().unwrap();
        let from_child = Queue::<(u32, String)>::new().unwrap();
        let (inq, outq) = (
            to_child.clone_handle().unwrap(),
            from_child.clone_handle().unwrap(),
        );
        let p = Builder::new().fork_target(move || {
            let mut n = 0;
            while let Ok(m) = inq.get_timeout(Duration::from_secs(10)) {
                if m.seq == u32::MAX {
                    break;
                }
                assert!(intact(&m));
                outq.put((m.seq, format!("{} bytes", m.body.len())))
                    .unwrap();
                n += 1;
            }
            n
        });
        p.start().unwrap();
        for (i, len) in [0usize, 1, 64, 4096, 300_000, 3 << 20].iter().enumerate() {
            to_child.put(msg(1, i as u32, *len)).unwrap();
            assert_eq!(
                from_child.get().unwrap(),
                (i as u32, format!("{len} bytes"))
            );
        }
        to_child.put(msg(1, u32::MAX, 0)).unwrap();
        assert_eq!(p.join().unwrap(), 6);
    });
}

#[test]
fn four_producers_four_consumers_no_loss_no_duplicate_order_kept() {
    watchdog(|| {
        const PER: u32 = 1000;
        let (tx, rx) = Queue::<Msg>::builder()
            .capacity(64 * 1024)
            .build()
            .unwrap()
            .split()
            .unwrap();
        let results = Queue::<Vec<(u32, u32)>>::new().unwrap();
        // Producers first, then the parent drops its sender, then consumers: a fork child
        // keeps a copy of every end its parent held when it was forked (as in Python), so a
        // consumer forked while the parent held a sender would keep the stream open.
        let mut producers = Vec::new();
        for id in 0..4u32 {
            let tx = tx.clone_handle().unwrap();
            let p = Builder::new().fork_target(move || {
                for seq in 0..PER {
                    // Sizes from tiny to larger than the 32 KiB inline limit (out of line).
                    let len = [8usize, 100, 1000, 40_000][(seq % 4) as usize];
                    tx.put(msg(id, seq, len)).unwrap();
                }
            });
            p.start().unwrap();
            producers.push(p);
        }
        drop(tx);
        let mut consumers = Vec::new();
        for _ in 0..4 {
            let rx = rx.clone_handle().unwrap();
            let out = results.clone_handle().unwrap();
            let p = Builder::new().fork_target(move || {
                let mut seen = Vec::new();
                let mut last: HashMap<u32, u32> = HashMap::new();
                // End of stream: every producer gone and the queue empty.
                while let Ok(m) = rx.get() {
                    assert!(intact(&m), "torn message {}/{}", m.producer, m.seq);
                    if let Some(prev) = last.insert(m.producer, m.seq) {
                        assert!(m.seq > prev, "producer {} out of order", m.producer);
                    }
                    seen.push((m.producer, m.seq));
                }
                out.put(seen).unwrap();
            });
            p.start().unwrap();
            consumers.push(p);
        }
        drop(rx);
        for p in producers {
            p.join().unwrap();
        }
        let mut all = Vec::new();
        for _ in 0..4 {
            all.extend(results.get().unwrap());
        }
        for p in consumers {
            p.join().unwrap();
        }
        all.sort();
        let expected: Vec<(u32, u32)> =
            (0..4).flat_map(|p| (0..PER).map(move |s| (p, s))).collect();
        assert_eq!(all.len(), expected.len(), "lost or duplicated messages");
        assert_eq!(all, expected);
    });
}

#[test]
fn maxsize_back_pressure_and_every_timeout_form() {
    watchdog(|| {
        let q = Queue::<u32>::with_maxsize(2).unwrap();
        assert!(q.empty());
        q.put(1).unwrap();
        q.put_timeout(2, Duration::from_millis(10)).unwrap();
        assert!(q.full());
        assert_eq!(q.qsize(), 2);
        assert!(matches!(q.put_nowait(3), Err(PutError::Full(3))));
        assert!(matches!(
            q.put_timeout(4, Duration::from_millis(20)),
            Err(PutError::Timeout(4))
        ));
        // A consumer in another process makes room; the blocked put goes through.
        let c = q.clone_handle().unwrap();
        let p = Builder::new().fork_target(move || {
            std::thread::sleep(Duration::from_millis(50));
            c.get().unwrap()
        });
        p.start().unwrap();
        q.put(5).unwrap();
        assert_eq!(p.join().unwrap(), 1);
        assert_eq!(q.get_nowait().unwrap(), 2);
        assert_eq!(q.get_timeout(Duration::from_millis(10)).unwrap(), 5);
        assert!(matches!(q.get_nowait(), Err(GetError::Empty)));
        assert!(matches!(
            q.get_timeout(Duration::from_millis(20)),
            Err(GetError::Timeout)
        ));
    });
}

#[test]
fn close_refuses_put_and_gives_the_item_back() {
    let q = Queue::<String>::new().unwrap();
    q.put("before".into()).unwrap();
    q.close();
    match q.put("after".into()) {
        Err(PutError::Closed(item)) => assert_eq!(item, "after"),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert_eq!(q.get().unwrap(), "before");
    q.join_thread();
}

#[test]
fn end_of_stream_both_ways() {
    watchdog(|| {
        let (tx, rx) = Queue::<u8>::new().unwrap().split().unwrap();
        tx.put(1).unwrap();
        drop(tx);
        assert_eq!(rx.get().unwrap(), 1);
        assert!(matches!(rx.get(), Err(GetError::Disconnected)));
        assert!(matches!(rx.get_nowait(), Err(GetError::Disconnected)));

        let (tx, rx) = Queue::<u8>::new().unwrap().split().unwrap();
        drop(rx);
        assert!(matches!(tx.put(9), Err(PutError::Disconnected(9))));

        // A producer that is SIGKILLed is gone too: the kernel closes its end.
        let (tx, rx) = Queue::<u8>::new().unwrap().split().unwrap();
        let p = Builder::new().daemon(true).fork_target(move || {
            tx.put(7).unwrap();
            std::thread::sleep(Duration::from_secs(60));
        });
        p.start().unwrap();
        assert_eq!(rx.get().unwrap(), 7);
        p.kill().unwrap();
        assert!(matches!(rx.get(), Err(GetError::Disconnected)));
        let _ = p.join();
    });
}

#[test]
fn joinable_queue_join_waits_for_task_done() {
    watchdog(|| {
        let q = JoinableQueue::<u32>::new().unwrap();
        for i in 0..10 {
            q.put(i).unwrap();
        }
        assert!(q.join_timeout(Duration::from_millis(10)).is_err());
        let worker = q.clone_handle().unwrap();
        let p = Builder::new().fork_target(move || {
            let mut sum = 0;
            for _ in 0..10 {
                sum += worker.get().unwrap();
                worker.task_done().unwrap();
            }
            sum
        });
        p.start().unwrap();
        q.join();
        assert_eq!(p.join().unwrap(), 45);
        assert!(matches!(q.task_done(), Err(spindle::Error::OverRelease)));
    });
}

#[test]
fn simple_queue_round_trip() {
    let q = SimpleQueue::new().unwrap();
    q.put(vec![1u64, 2, 3]).unwrap();
    assert!(!q.empty());
    assert_eq!(q.get().unwrap(), [1, 2, 3]);
    assert!(q.empty());
}

/// Bytes that travel as one byte string (serde's `serialize_bytes`), not one varint per byte.
#[derive(Debug, PartialEq)]
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(V).map(Bytes)
    }
}

#[test]
fn a_64_mib_item_never_deadlocks_the_producers_join() {
    watchdog(|| {
        let q = Queue::<Bytes>::new().unwrap();
        let tx = q.sender().unwrap();
        let p = Builder::new().fork_target(move || {
            tx.put(Bytes(vec![0xAB; 64 << 20])).unwrap();
            "put".to_string()
        });
        p.start().unwrap();
        // Nobody reads until the producer has exited: the item waits in its sealed memfd.
        assert_eq!(p.join().unwrap(), "put");
        let item = q.get().unwrap();
        assert_eq!(item.0.len(), 64 << 20);
        assert!(item.0.iter().all(|b| *b == 0xAB));
    });
}

fn consume_forever(q: Queue<u32>) -> u32 {
    loop {
        let _ = q.get();
    }
}

#[test]
fn a_consumer_killed_inside_get_does_not_wedge_the_others() {
    watchdog(|| {
        let q = Queue::<u32>::new().unwrap();
        // Three consumers block inside get on an empty queue; one is SIGKILLed there.
        let mut victims = Vec::new();
        for _ in 0..3 {
            let c = q.clone_handle().unwrap();
            let p = Builder::new()
                .daemon(true)
                .fork_target(move || consume_forever(c));
            p.start().unwrap();
            victims.push(p);
        }
        std::thread::sleep(Duration::from_millis(100));
        for p in &victims {
            p.kill().unwrap();
        }
        for p in &victims {
            let _ = p.join();
        }
        // Nothing was taken by the dead: every item put now reaches a live consumer.
        let c = q.clone_handle().unwrap();
        let alive =
            Builder::new().fork_target(move || (0..100).map(|_| c.get().unwrap()).sum::<u32>());
        alive.start().unwrap();
        for i in 0..100 {
            q.put(i).unwrap();
        }
        assert_eq!(alive.join().unwrap(), 4950);
        assert!(q.empty());
    });
}

fn produce_forever(q: Queue<Msg>, id: u32) -> u32 {
    let mut seq = 0;
    loop {
        let len = if seq % 3 == 0 { 200_000 } else { 3000 };
        if q.put(msg(id, seq, len)).is_err() {
            return seq;
        }
        seq += 1;
    }
}

#[test]
fn a_producer_killed_mid_message_tears_nothing() {
    watchdog(|| {
        let q = Queue::<Msg>::builder()
            .capacity(256 * 1024)
            .build()
            .unwrap();
        for round in 0..5u32 {
            let tx = q.clone_handle().unwrap();
            let victim = Builder::new()
                .daemon(true)
                .fork_target(move || produce_forever(tx, 100 + round));
            victim.start().unwrap();
            let tx = q.clone_handle().unwrap();
            let steady = Process::<u32>::from_fork(move || {
                for seq in 0..200 {
                    tx.put(msg(round, seq, 5000)).unwrap();
                }
                200
            });
            // Read while both write, kill the victim mid-stream, read on.
            let mut from_steady = 0;
            let mut last_steady = None;
            for i in 0..600 {
                if i == 150 {
                    victim.kill().unwrap();
                }
                match q.get_timeout(Duration::from_millis(500)) {
                    Ok(m) => {
                        assert!(intact(&m), "torn message from {}", m.producer);
                        if m.producer == round {
                            if let Some(prev) = last_steady {
                                assert_eq!(m.seq, prev + 1, "lost or reordered");
                            }
                            last_steady = Some(m.seq);
                            from_steady += 1;
                        }
                    }
                    Err(GetError::Timeout) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            let _ = victim.join();
            assert_eq!(steady.join().unwrap(), 200);
            while let Ok(m) = q.get_nowait() {
                assert!(intact(&m));
                if m.producer == round {
                    from_steady += 1;
                }
            }
            assert_eq!(from_steady, 200, "round {round}");
        }
    });
}

trait FromFork<R> {
    fn from_fork(f: impl FnOnce() -> R + Send + 'static) -> Process<R>;
}

impl<R: Serialize + serde::de::DeserializeOwned> FromFork<R> for Process<R> {
    fn from_fork(f: impl FnOnce() -> R + Send + 'static) -> Process<R> {
        let p = Builder::new().fork_target(f);
        p.start().unwrap();
        p
    }
}

/// CPU time this process has used, in clock ticks (fields 14 and 15 of `/proc/self/stat`).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn blocked_producers_and_consumers_sleep_instead_of_spinning() {
    watchdog(|| {
        let q = Queue::<u32>::with_maxsize(1).unwrap();
        q.put(1).unwrap();
        let c = q.clone_handle().unwrap();
        // A producer waiting for room, and a consumer of another queue waiting for an item,
        // each for 600 ms: CPU time used while waiting stays near zero (a spinning wait would
        // use the whole 600 ms).
        let empty = Queue::<u32>::new().unwrap();
        let e = empty.clone_handle().unwrap();
        let p = Builder::new().fork_target(move || {
            let before = cpu_ticks();
            let full = matches!(
                c.put_timeout(2, Duration::from_millis(600)),
                Err(PutError::Timeout(2))
            );
            let got = matches!(
                e.get_timeout(Duration::from_millis(600)),
                Err(GetError::Timeout)
            );
            (full && got, cpu_ticks() - before)
        });
        p.start().unwrap();
        let (timed_out, ticks) = p.join().unwrap();
        assert!(timed_out);
        // 1.2 s of waiting; at 100 ticks a second, spinning would cost about 120 ticks.
        assert!(ticks < 30, "{ticks} ticks of CPU while blocked");
    });
}
