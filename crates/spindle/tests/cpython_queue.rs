//! CPython's `Lib/test/test_queue.py` (3.11), ported where it maps: spindle has no
//! thread-only `queue` module, so its `multiprocessing` [`Queue`] and [`JoinableQueue`] —
//! which threads of one process share as well — play `queue.Queue`. (`LifoQueue` and
//! `PriorityQueue` have no spindle equivalent.)
//!
//! Ported (CPython test -> Rust test):
//!
//! * `BaseQueueTestMixin.basic_queue_test` / `test_basic` (twice on one queue) -> `basic`
//! * `BaseQueueTestMixin.test_queue_task_done` -> `task_done_without_items`
//! * `BaseQueueTestMixin.test_queue_join` (`queue_join_test`, twice) -> `join_with_worker_threads`
//! * `BaseQueueTestMixin.test_nowait` -> `nowait`
//! * `BaseSimpleQueueTest.test_basic` -> `simple_basic`
//! * `BaseSimpleQueueTest.test_order` -> `one_feeder_one_consumer_keep_order`
//! * `BaseSimpleQueueTest.test_many_threads` -> `many_threads`
//! * `BaseSimpleQueueTest.test_many_threads_nonblock` -> `many_threads_nonblock`
//! * `BaseSimpleQueueTest.test_many_threads_timeout` -> `many_threads_timeout`
//! * `queue.Full` / `queue.Empty` mean full / empty, not "a neighbour holds the lock"
//!   (what `test_many_threads_nonblock` relies on) -> `nowait_answers_are_not_spurious`
//!
//! Not ported: `test_negative_timeout_raises_exception` (a `Duration` cannot be negative),
//! `test_shrinking_queue` (`maxsize` is fixed at creation), `test_references` and the
//! failing-queue tests (items are copied into shared memory: nothing of the caller's is
//! kept), `test_is_default`/`test_reentrancy` (C-accelerator details).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use spindle::multiprocessing::queues::{GetError, JoinableQueue, PutError, Queue};
use spindle::threading::{Event, Thread};
use spindle::Error;

mod common;
use common::watchdog;

const QUEUE_SIZE: u32 = 5;
const LONG: Duration = Duration::from_secs(20);

/// CPython's `do_blocking_test`: `block` must not return before `trigger` ran on another
/// thread (which runs it after a short sleep and an event).
fn blocking<T: Send + 'static>(
    block: impl FnOnce() -> T,
    trigger: impl FnOnce() + Send + 'static,
) -> T {
    let started = Arc::new(Event::new());
    let s = Arc::clone(&started);
    let mut t = Thread::new(move || {
        std::thread::sleep(Duration::from_millis(20));
        s.set();
        trigger();
    });
    t.start().unwrap();
    let out = block();
    assert!(started.is_set(), "the blocking call appeared not to block");
    t.join().unwrap();
    out
}

fn basic_queue_test(q: &Arc<Queue<u32>>) {
    assert_eq!(q.qsize(), 0, "call with an empty queue");
    assert!(q.empty());
    assert!(!q.full());
    q.put(111).unwrap();
    q.put(333).unwrap();
    q.put(222).unwrap();
    let order = [q.get().unwrap(), q.get().unwrap(), q.get().unwrap()];
    assert_eq!(order, [111, 333, 222], "FIFO");
    for i in 0..QUEUE_SIZE - 1 {
        q.put(i).unwrap();
        assert!(q.qsize() > 0);
    }
    assert!(!q.full());
    let last = 2 * QUEUE_SIZE;
    let full = 3 * 2 * QUEUE_SIZE;
    q.put(last).unwrap();
    assert!(q.full());
    assert!(!q.empty());
    assert!(matches!(q.put_nowait(full), Err(PutError::Full(_))));
    assert!(matches!(
        q.put_timeout(full, Duration::from_millis(10)),
        Err(PutError::Timeout(_))
    ));
    // Blocking puts, released by a get on another thread.
    let g = Arc::clone(q);
    blocking(
        || q.put(full).unwrap(),
        move || {
            g.get().unwrap();
        },
    );
    let g = Arc::clone(q);
    blocking(
        || q.put_timeout(full, Duration::from_secs(10)).unwrap(),
        move || {
            g.get().unwrap();
        },
    );
    for _ in 0..QUEUE_SIZE {
        q.get().unwrap();
    }
    assert_eq!(q.qsize(), 0);
    assert!(matches!(q.get_nowait(), Err(GetError::Empty)));
    assert!(matches!(
        q.get_timeout(Duration::from_millis(10)),
        Err(GetError::Timeout)
    ));
    // Blocking gets, released by a put on another thread.
    let p = Arc::clone(q);
    assert_eq!(
        blocking(|| q.get().unwrap(), move || p.put(42).unwrap()),
        42
    );
    let p = Arc::clone(q);
    assert_eq!(
        blocking(
            || q.get_timeout(Duration::from_secs(10)).unwrap(),
            move || p.put(43).unwrap()
        ),
        43
    );
}

#[test]
fn basic() {
    watchdog(|| {
        let q = Arc::new(Queue::with_maxsize(QUEUE_SIZE).unwrap());
        basic_queue_test(&q);
        basic_queue_test(&q);
    });
}

#[test]
fn task_done_without_items() {
    let q = JoinableQueue::<u32>::new().unwrap();
    assert!(matches!(q.task_done(), Err(Error::OverRelease)));
}

fn queue_join_test(q: &Arc<JoinableQueue<i64>>) {
    let cum = Arc::new(Mutex::new(0i64));
    let mut threads: Vec<Thread> = (0..2)
        .map(|_| {
            let (q, cum) = (Arc::clone(q), Arc::clone(&cum));
            Thread::new(move || loop {
                let x = q.get().unwrap();
                if x < 0 {
                    q.task_done().unwrap();
                    return;
                }
                *cum.lock().unwrap() += x;
                q.task_done().unwrap();
            })
        })
        .collect();
    threads.iter_mut().for_each(|t| t.start().unwrap());
    for i in 0..100 {
        q.put(i).unwrap();
    }
    q.join_timeout(LONG).unwrap();
    assert_eq!(
        *cum.lock().unwrap(),
        (0..100).sum::<i64>(),
        "join waited for every task"
    );
    for _ in 0..2 {
        q.put(-1).unwrap();
    }
    q.join_timeout(LONG).unwrap(); // joining twice is fine
    threads.iter_mut().for_each(|t| t.join().unwrap());
}

#[test]
fn join_with_worker_threads() {
    watchdog(|| {
        let q = Arc::new(JoinableQueue::new().unwrap());
        queue_join_test(&q);
        queue_join_test(&q);
        assert!(matches!(q.task_done(), Err(Error::OverRelease)));
    });
}

#[test]
fn nowait() {
    let q = Queue::with_maxsize(QUEUE_SIZE).unwrap();
    for _ in 0..QUEUE_SIZE {
        q.put_nowait(1).unwrap();
    }
    assert!(matches!(q.put_nowait(1), Err(PutError::Full(1))));
    for _ in 0..QUEUE_SIZE {
        q.get_nowait().unwrap();
    }
    assert!(matches!(q.get_nowait(), Err(GetError::Empty)));
}

#[test]
fn simple_basic() {
    let q = Queue::new().unwrap();
    assert!(q.empty());
    assert_eq!(q.qsize(), 0);
    q.put(1).unwrap();
    assert!(!q.empty());
    assert_eq!(q.qsize(), 1);
    q.put(2).unwrap();
    q.put_nowait(3).unwrap();
    q.put(4).unwrap();
    assert_eq!(q.qsize(), 4);
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.qsize(), 3);
    assert_eq!(q.get_nowait().unwrap(), 2);
    assert_eq!(q.qsize(), 2);
    assert_eq!(q.get_timeout(Duration::ZERO).unwrap(), 3);
    assert_eq!(q.qsize(), 1);
    assert_eq!(q.get_timeout(Duration::from_millis(100)).unwrap(), 4);
    assert!(q.empty());
    assert!(matches!(q.get_nowait(), Err(GetError::Empty)));
    assert!(matches!(
        q.get_timeout(Duration::from_millis(1)),
        Err(GetError::Timeout)
    ));
    assert_eq!(q.qsize(), 0);
}

#[derive(Clone, Copy)]
enum Consume {
    Blocking,
    NonBlocking,
    Timeout,
}

/// CPython's `run_threads`: `n` feeders share the inputs (each puts a `None` sentinel when
/// they run out), `n` consumers take until they see a sentinel.
fn run_threads(n: usize, inputs: Vec<u32>, how: Consume) -> Vec<u32> {
    let q = Arc::new(Queue::<Option<u32>>::new().unwrap());
    let seq = Arc::new(Mutex::new(inputs.into_iter().rev().collect::<Vec<u32>>()));
    let results = Arc::new(Mutex::new(Vec::new()));
    let mut threads: Vec<Thread> = Vec::new();
    for _ in 0..n {
        let (fq, seq) = (Arc::clone(&q), Arc::clone(&seq));
        threads.push(Thread::new(move || loop {
            let next = seq.lock().unwrap().pop();
            fq.put(next).unwrap();
            if next.is_none() {
                return;
            }
        }));
        let (cq, results) = (Arc::clone(&q), Arc::clone(&results));
        threads.push(Thread::new(move || loop {
            let q = &cq;
            let val = match how {
                Consume::Blocking => q.get().unwrap(),
                Consume::NonBlocking => loop {
                    match q.get_nowait() {
                        Ok(v) => break v,
                        Err(GetError::Empty) => std::thread::sleep(Duration::from_micros(10)),
                        Err(e) => panic!("{e}"),
                    }
                },
                Consume::Timeout => loop {
                    match q.get_timeout(Duration::from_micros(10)) {
                        Ok(v) => break v,
                        Err(GetError::Timeout) => {}
                        Err(e) => panic!("{e}"),
                    }
                },
            };
            match val {
                Some(v) => results.lock().unwrap().push(v),
                None => return,
            }
        }));
    }
    threads.iter_mut().for_each(|t| t.start().unwrap());
    threads.iter_mut().for_each(|t| t.join().unwrap());
    assert!(q.empty());
    assert_eq!(q.qsize(), 0);
    let out = std::mem::take(&mut *results.lock().unwrap());
    out
}

#[test]
fn one_feeder_one_consumer_keep_order() {
    watchdog(|| {
        let inputs: Vec<u32> = (0..100).collect();
        assert_eq!(run_threads(1, inputs.clone(), Consume::Blocking), inputs);
    });
}

#[test]
fn many_threads() {
    watchdog(|| {
        let inputs: Vec<u32> = (0..10_000).collect();
        let mut got = run_threads(50, inputs.clone(), Consume::Blocking);
        got.sort();
        assert_eq!(got, inputs);
    });
}

#[test]
fn many_threads_nonblock() {
    watchdog(|| {
        let inputs: Vec<u32> = (0..10_000).collect();
        let mut got = run_threads(50, inputs.clone(), Consume::NonBlocking);
        got.sort();
        assert_eq!(got, inputs);
    });
}

#[test]
fn many_threads_timeout() {
    watchdog(|| {
        let inputs: Vec<u32> = (0..1_000).collect();
        let mut got = run_threads(50, inputs.clone(), Consume::Timeout);
        got.sort();
        assert_eq!(got, inputs);
    });
}

#[test]
fn nowait_answers_are_not_spurious() {
    watchdog(|| {
        // Eight threads hammer one queue with room to spare: no put_nowait may say Full. Each
        // gets right after its own put: no get_nowait may say Empty (crossbeam's
        // `linearizable`).
        let q = Arc::new(Queue::<u32>::with_maxsize(64).unwrap());
        let mut threads: Vec<Thread> = (0..8)
            .map(|_| {
                let q = Arc::clone(&q);
                Thread::new(move || {
                    for i in 0..2_000 {
                        q.put_nowait(i).expect("room for it: not Full");
                        q.get_nowait().expect("an item is there: not Empty");
                    }
                })
            })
            .collect();
        threads.iter_mut().for_each(|t| t.start().unwrap());
        threads.iter_mut().for_each(|t| t.join().unwrap());
        assert!(q.empty());
    });
}
