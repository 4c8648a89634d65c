//! CPython's `Lib/test/_test_multiprocessing.py` (3.11), the queue part (`_TestQueue`,
//! `TestSimpleQueue`), ported to `spindle::multiprocessing::{Queue, JoinableQueue,
//! SimpleQueue}` across processes. Its own binary: it forks and spawns.
//!
//! Ported (CPython test -> Rust test):
//!
//! * `_TestQueue.test_put` -> `put_full_and_timeouts` (the consumer is a forkserver child
//!   that gets the queue and two events in its arguments)
//! * `_TestQueue.test_get` -> `get_empty_and_timeouts`
//! * `_TestQueue.test_fork` -> `items_of_parent_then_fork_child_in_order`
//! * `_TestQueue.test_qsize` -> `qsize`
//! * `_TestQueue.test_task_done` -> `task_done_with_worker_processes`
//! * `_TestQueue.test_timeout` -> `get_timeout_waits_at_least_its_time`
//! * `_TestQueue.test_queue_feeder_donot_stop_onexc` -> `an_item_that_does_not_encode_costs_no_room`
//! * `_TestQueue.test_closed_queue_put_get_exceptions` -> `closed_queue_refuses_put_keeps_get`
//!   (deliberate difference: CPython's `get` on a closed queue raises; spindle's `close` is
//!   Python's "no more puts from this handle", and gets go on)
//! * `TestSimpleQueue.test_empty` -> `simple_queue_empty`
//! * `TestSimpleQueue.test_close` -> `simple_queue_close`
//!
//! Not ported: `test_no_import_lock_contention` (no imports), the feeder-thread tests' hooks
//! (`_on_queue_feeder_error`: there is no feeder thread; a put that cannot encode returns
//! the item with the error).

use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};
use spindle::multiprocessing::queues::{GetError, JoinableQueue, PutError, Queue, SimpleQueue};
use spindle::multiprocessing::synchronize::Event;
use spindle::multiprocessing::{Builder, StartMethod};
use spindle::Error;

mod common;
use common::serial_watchdog;

const LONG: Duration = Duration::from_secs(20);
const TIMEOUT: Duration = Duration::from_millis(100);

fn take_six(q: Queue<u32>, can_start: Event, done: Event) {
    can_start.wait();
    for _ in 0..6 {
        q.get().unwrap();
    }
    done.set();
}

#[test]
fn put_full_and_timeouts() {
    serial_watchdog(|| {
        const MAXSIZE: u32 = 6;
        let q = Queue::with_maxsize(MAXSIZE).unwrap();
        let (can_start, done) = (Event::new().unwrap(), Event::new().unwrap());
        let p = Builder::new()
            .start_method(StartMethod::Forkserver)
            .daemon(true)
            .target(
                take_six,
                (q.clone_handle().unwrap(), can_start.clone(), done.clone()),
            );
        p.start().unwrap();
        assert!(q.empty());
        assert!(!q.full());

        q.put(1).unwrap();
        q.put(2).unwrap();
        q.put_timeout(3, LONG).unwrap();
        q.put_nowait(4).unwrap();
        q.put_nowait(5).unwrap();
        q.put_nowait(6).unwrap();
        // No feeder thread: the items are in the queue now, no sleep needed.
        assert!(!q.empty());
        assert!(q.full());
        assert_eq!(q.qsize(), 6);

        let t0 = Instant::now();
        assert!(matches!(q.put_nowait(7), Err(PutError::Full(7))));
        assert!(matches!(
            q.put_timeout(7, TIMEOUT),
            Err(PutError::Timeout(7))
        ));
        assert!(t0.elapsed() >= TIMEOUT);
        assert!(matches!(
            q.put_timeout(7, Duration::ZERO),
            Err(PutError::Timeout(7))
        ));

        can_start.set();
        assert!(done.wait_timeout(LONG));
        assert!(q.empty());
        assert!(!q.full());
        p.join().unwrap();
    });
}

fn put_four(q: Queue<u32>, can_start: Event, done: Event) {
    can_start.wait();
    for i in 2..=5 {
        q.put(i).unwrap();
    }
    done.set();
}

#[test]
fn get_empty_and_timeouts() {
    serial_watchdog(|| {
        let q = Queue::new().unwrap();
        let (can_start, done) = (Event::new().unwrap(), Event::new().unwrap());
        let p = Builder::new()
            .start_method(StartMethod::Forkserver)
            .daemon(true)
            .target(
                put_four,
                (q.clone_handle().unwrap(), can_start.clone(), done.clone()),
            );
        p.start().unwrap();
        assert!(q.empty());
        can_start.set();
        assert!(done.wait_timeout(LONG));
        assert!(!q.empty());
        assert_eq!(q.get().unwrap(), 2);
        assert_eq!(q.get_timeout(LONG).unwrap(), 3);
        assert_eq!(q.get_timeout(Duration::from_secs(1)).unwrap(), 4);
        assert_eq!(q.get_nowait().unwrap(), 5);
        assert!(q.empty());

        assert!(matches!(q.get_nowait(), Err(GetError::Empty)));
        let t0 = Instant::now();
        assert!(matches!(q.get_timeout(TIMEOUT), Err(GetError::Timeout)));
        assert!(t0.elapsed() >= TIMEOUT);
        assert!(matches!(
            q.get_timeout(Duration::ZERO),
            Err(GetError::Timeout)
        ));
        p.join().unwrap();
    });
}

#[test]
fn items_of_parent_then_fork_child_in_order() {
    serial_watchdog(|| {
        let q = Queue::new().unwrap();
        for i in 0..10u32 {
            q.put(i).unwrap();
        }
        let child_q = q.clone_handle().unwrap();
        let p = Builder::new()
            .start_method(StartMethod::Fork)
            .daemon(true)
            .fork_target(move || {
                for i in 10..20u32 {
                    child_q.put(i).unwrap();
                }
            });
        p.start().unwrap();
        for i in 0..20 {
            assert_eq!(q.get_timeout(LONG).unwrap(), i);
        }
        assert!(matches!(q.get_nowait(), Err(GetError::Empty)));
        p.join().unwrap();
    });
}

#[test]
fn qsize() {
    let q = Queue::new().unwrap();
    assert_eq!(q.qsize(), 0);
    q.put(1).unwrap();
    assert_eq!(q.qsize(), 1);
    q.put(5).unwrap();
    assert_eq!(q.qsize(), 2);
    q.get().unwrap();
    assert_eq!(q.qsize(), 1);
    q.get().unwrap();
    assert_eq!(q.qsize(), 0);
}

fn task_done_worker(q: JoinableQueue<Option<u32>>) {
    while let Some(_obj) = q.get().unwrap() {
        std::thread::sleep(Duration::from_millis(5));
        q.task_done().unwrap();
    }
}

#[test]
fn task_done_with_worker_processes() {
    serial_watchdog(|| {
        let q = JoinableQueue::new().unwrap();
        let workers: Vec<_> = (0..4)
            .map(|_| {
                Builder::new()
                    .start_method(StartMethod::Forkserver)
                    .daemon(true)
                    .target(task_done_worker, (q.clone_handle().unwrap(),))
            })
            .collect();
        workers.iter().for_each(|p| p.start().unwrap());
        for i in 0..10 {
            q.put(Some(i)).unwrap();
        }
        q.join_timeout(LONG).unwrap();
        assert!(q.queue().empty());
        for _ in &workers {
            q.put(None).unwrap();
        }
        workers.iter().for_each(|p| p.join().unwrap());
        // The four sentinels were taken and not marked done: join would wait for them.
        assert!(matches!(
            q.join_timeout(Duration::from_millis(10)),
            Err(Error::Timeout)
        ));
        for _ in &workers {
            q.task_done().unwrap();
        }
        q.join_timeout(LONG).unwrap();
        // More task_done than puts: Python's ValueError.
        assert!(matches!(q.task_done(), Err(Error::OverRelease)));
    });
}

#[test]
fn get_timeout_waits_at_least_its_time() {
    let q = Queue::<u8>::new().unwrap();
    let t0 = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(200)),
        Err(GetError::Timeout)
    ));
    assert!(t0.elapsed() >= Duration::from_millis(200));
}

/// CPython's `NotSerializable`.
#[derive(Debug, PartialEq)]
enum Item {
    NotSerializable,
    Value(bool),
}

impl Serialize for Item {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Item::NotSerializable => Err(serde::ser::Error::custom("AttributeError")),
            Item::Value(v) => s.serialize_bool(*v),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Item {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Item, D::Error> {
        bool::deserialize(d).map(Item::Value)
    }
}

#[test]
fn an_item_that_does_not_encode_costs_no_room() {
    for maxsize in [0, 1] {
        let q = Queue::with_maxsize(maxsize).unwrap();
        match q.put(Item::NotSerializable) {
            Err(PutError::Failed(item, Error::Codec(_))) => {
                assert_eq!(item, Item::NotSerializable, "the item comes back")
            }
            other => panic!("{other:?}"),
        }
        q.put(Item::Value(true)).unwrap();
        assert_eq!(q.qsize(), 1, "maxsize {maxsize}");
        assert_eq!(q.get_timeout(LONG).unwrap(), Item::Value(true));
        assert!(q.empty());
    }
}

#[test]
fn closed_queue_refuses_put_keeps_get() {
    let q = Queue::new().unwrap();
    q.put("before".to_string()).unwrap();
    q.close();
    assert!(matches!(q.put("foo".into()), Err(PutError::Closed(s)) if s == "foo"));
    assert!(matches!(
        q.put_nowait("foo".into()),
        Err(PutError::Closed(_))
    ));
    assert_eq!(q.get().unwrap(), "before");
    let jq = JoinableQueue::<u8>::new().unwrap();
    jq.queue().close();
    assert!(matches!(jq.put(1), Err(PutError::Closed(1))));
    // Another handle of the same queue is not closed.
    let other = q.clone_handle().unwrap();
    other.put("after".into()).unwrap();
    assert_eq!(q.get().unwrap(), "after");
    q.join_thread();
}

#[test]
fn simple_queue_empty() {
    serial_watchdog(|| {
        let q = SimpleQueue::new().unwrap();
        assert!(q.empty());
        let child_q = q.clone_handle().unwrap();
        let p = Builder::new()
            .start_method(StartMethod::Fork)
            .fork_target(move || {
                child_q.put(5u32).unwrap();
                child_q.put(6u32).unwrap();
            });
        p.start().unwrap();
        p.join().unwrap();
        assert!(!q.empty());
        assert_eq!(q.get().unwrap(), 5);
        assert!(!q.empty());
        assert_eq!(q.get().unwrap(), 6);
        assert!(q.empty());
    });
}

#[test]
fn simple_queue_close() {
    let q = SimpleQueue::new().unwrap();
    q.close();
    assert!(matches!(q.put(1u8), Err(PutError::Closed(1))));
    q.close(); // twice is fine
}
