//! IPC handles passed in a `Process`'s arguments, under every start method.
//!
//! The descriptors travel with `SCM_RIGHTS` beside the call; the seam
//! (`multiprocessing::handles`: `stash_fd` / `take_fd`) belongs to the start path.
//!
//! Handles captured by a fork closure need no seam and are covered by every other `ipc_*`
//! test file.

use std::time::Duration;

use spindle::multiprocessing::connection::{pipe, Connection};
use spindle::multiprocessing::queues::{JoinableQueue, Queue, Receiver, Sender};
use spindle::multiprocessing::shared_memory::SharedMemory;
use spindle::multiprocessing::sharedctypes::{Array, Value};
use spindle::multiprocessing::synchronize::{Barrier, Condition, Event, Lock, RLock, Semaphore};
use spindle::multiprocessing::{Builder, StartMethod};

mod common;

use common::serial_watchdog as watchdog;

/// Echoes every message twice until end of stream, or until `count` messages when one is given.
fn echo_twice(conn: Connection<String, String>, count: Option<usize>) -> usize {
    let mut n = 0;
    while count.is_none_or(|c| n < c) {
        let Ok(s) = conn.recv() else { break };
        conn.send(&format!("{s}{s}")).unwrap();
        n += 1;
    }
    n
}

/// Sums what arrives until end of stream, or until `count` items when one is given.
fn drain(rx: Receiver<u64>, out: Sender<u64>, count: Option<usize>) -> u64 {
    let mut sum = 0;
    let mut seen = 0;
    while count.is_none_or(|n| seen < n) {
        let Ok(v) = rx.get() else { break };
        sum += v;
        seen += 1;
    }
    out.put(sum).unwrap();
    sum
}

fn locked_increments(lock: Lock, counter: Value<u64>, n: u64) {
    for _ in 0..n {
        let _g = lock.lock().unwrap();
        counter.set(counter.get() + 1);
    }
}

fn shared_sum(arr: Array<u32>, shm: SharedMemory) -> (u64, u8) {
    (arr.as_slice().iter().map(|x| *x as u64).sum(), shm.buf()[0])
}

fn sync_party(b: Barrier, e: Event, s: Semaphore, c: Condition) -> usize {
    s.release().unwrap();
    e.wait();
    c.acquire().unwrap();
    c.notify_all().unwrap();
    c.release().unwrap();
    b.wait().unwrap()
}

fn joinable_worker(q: JoinableQueue<u32>, r: RLock) -> u32 {
    let mut n = 0;
    while let Ok(v) = q.get_timeout(Duration::from_millis(200)) {
        r.acquire().unwrap();
        n += v;
        r.release().unwrap();
        q.task_done().unwrap();
    }
    n
}

fn conformance(method: StartMethod) {
    // A connection end.
    // A fork child inherits every descriptor the parent holds when it forks (here the parent's
    // own end, and below its queue sender), so it never sees end of stream while it lives: the
    // documented fork rule, as in Python ("close unused ends"). Under fork the child counts
    // what it receives instead.
    let count = (method == StartMethod::Fork).then_some(1);
    let (here, there) = pipe::<String, String>(true).unwrap();
    let p = Builder::new()
        .start_method(method)
        .target(echo_twice, (there, count));
    p.start().unwrap();
    here.send(&"ab".to_string()).unwrap();
    assert_eq!(here.recv().unwrap(), "abab");
    drop(here);
    assert_eq!(p.join().unwrap(), 1);

    // Queue ends: end of stream reaches the child, whose sender reports back (under fork: the
    // count, as above).
    let (tx, rx) = Queue::<u64>::new().unwrap().split().unwrap();
    let (out_tx, out_rx) = Queue::<u64>::new().unwrap().split().unwrap();
    let count = count.map(|_| 10);
    let p = Builder::new()
        .start_method(method)
        .target(drain, (rx, out_tx, count));
    p.start().unwrap();
    for v in 1..=10 {
        tx.put(v).unwrap();
    }
    drop(tx);
    assert_eq!(out_rx.get().unwrap(), 55);
    assert_eq!(p.join().unwrap(), 55);

    // A lock and a value.
    let lock = Lock::new().unwrap();
    let counter = Value::new_raw(0u64).unwrap();
    let p = Builder::new()
        .start_method(method)
        .target(locked_increments, (lock.clone(), counter.clone(), 1000));
    p.start().unwrap();
    locked_increments(lock, counter.clone(), 1000);
    p.join().unwrap();
    assert_eq!(counter.get(), 2000);

    // Shared memory: an array and an anonymous segment.
    let arr = Array::new(&[1u32, 2, 3, 4]).unwrap();
    let mut shm = SharedMemory::new(16).unwrap();
    shm.buf_mut()[0] = 42;
    let p = Builder::new()
        .start_method(method)
        .target(shared_sum, (arr.share().unwrap(), shm.share().unwrap()));
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), (10, 42));

    // Barrier, event, semaphore, condition.
    let (b, e, s, c) = (
        Barrier::new(2).unwrap(),
        Event::new().unwrap(),
        Semaphore::new(0).unwrap(),
        Condition::new().unwrap(),
    );
    let p = Builder::new()
        .start_method(method)
        .target(sync_party, (b.clone(), e.clone(), s.clone(), c.clone()));
    p.start().unwrap();
    assert!(s.acquire_timeout(Duration::from_secs(10)));
    e.set();
    b.wait_timeout(Duration::from_secs(10)).unwrap();
    p.join().unwrap();

    // A joinable queue and an RLock.
    let q = JoinableQueue::new().unwrap();
    let p = Builder::new().start_method(method).target(
        joinable_worker,
        (q.clone_handle().unwrap(), RLock::new().unwrap()),
    );
    p.start().unwrap();
    for v in 0..10 {
        q.put(v).unwrap();
    }
    q.join_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(p.join().unwrap(), 45);
}

#[test]
fn handles_in_arguments_under_spawn() {
    watchdog(|| conformance(StartMethod::Spawn));
}

#[test]
fn handles_in_arguments_under_fork() {
    watchdog(|| conformance(StartMethod::Fork));
}

#[test]
fn handles_in_arguments_under_forkserver() {
    watchdog(|| conformance(StartMethod::Forkserver));
}

/// Outside a `Process`'s arguments a handle cannot travel.
#[test]
fn a_handle_inside_a_queue_message_is_refused_with_the_reason() {
    // A handle put into a queue message (not a Process's arguments): refused, with the reason,
    // and the item comes back.
    let q = Queue::<Lock>::new().unwrap();
    match q.put(Lock::new().unwrap()) {
        Err(spindle::multiprocessing::queues::PutError::Failed(_lock, e)) => {
            assert!(e.to_string().contains("can only travel"), "{e}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
