//! The MPI executor's messages and sinks, without MPI (the behaviour under `mpiexec` is in
//! `tests/mpi_executor.rs` and `tests/mpi_faults.rs`).

use std::time::Duration;

use super::feed::{Many, One};
use super::manager::{Nap, Outcomes, NAP_MAX, SPIN};
use super::wire::{self, Hello, Ready, Writer};
use crate::futures::map::Chunk;
use crate::futures::promise;
use crate::multiprocessing::pool::protocol as pw;
use crate::panic::PanicReport;

/// `count` outcomes of `u64` values, the item at `panic_at` (if any) panicked.
fn outcomes(values: &[u64], panic_at: Option<usize>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        if Some(i) == panic_at {
            out.push(pw::TAG_PANIC);
            let report = PanicReport::new("boom".into(), None, None)
                .with_pid(7)
                .with_rank(2, "node-b");
            pw::append(&report, &mut out).unwrap();
        } else {
            out.push(pw::TAG_VALUE);
            pw::append(v, &mut out).unwrap();
        }
    }
    out
}

#[test]
fn task_and_result_messages_round_trip_segment_by_segment() {
    let mut w = Writer::new(9, 0);
    w.task_segment(-42, 2, &[1, 5, 1, 6]);
    w.task_segment(7, 0, &[]);
    let bytes = w.finish();
    let (seq, n, mut r) = wire::open(&bytes).unwrap();
    assert_eq!((seq, n), (9, 2));
    let a = wire::task_segment(&mut r).unwrap();
    assert_eq!((a.entry, a.count, a.items), (-42, 2, &[1u8, 5, 1, 6][..]));
    let b = wire::task_segment(&mut r).unwrap();
    assert_eq!((b.entry, b.count, b.items.len()), (7, 0, 0));
    assert!(wire::task_segment(&mut r).is_err(), "no third segment");

    let mut w = Writer::new(3, 0);
    let at = w.begin_result_segment();
    w.out().extend_from_slice(&outcomes(&[4, 9], None));
    w.end_result_segment(at, 2, 1234);
    let bytes = w.finish();
    let (seq, n, mut r) = wire::open(&bytes).unwrap();
    assert_eq!((seq, n), (3, 1));
    let s = wire::result_segment(&mut r).unwrap();
    assert_eq!((s.count, s.elapsed_ns), (2, 1234));
    assert_eq!(s.outcomes, &outcomes(&[4, 9], None)[..]);
}

#[test]
fn truncated_or_lying_messages_are_errors_not_panics() {
    let mut w = Writer::new(1, 0);
    w.task_segment(5, 3, &[1, 2, 1, 3, 1, 4]);
    let bytes = w.finish();
    for cut in 0..bytes.len() {
        let short = &bytes[..cut];
        let parsed = wire::open(short).and_then(|(_, n, mut r)| {
            (0..n).try_for_each(|_| wire::task_segment(&mut r).map(drop))
        });
        assert!(parsed.is_err(), "cut at {cut}");
    }
    let mut lying = bytes.clone();
    // The segment claims more bytes than there are.
    let len_at = 12 + 8 + 4;
    lying[len_at..len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let (_, _, mut r) = wire::open(&lying).unwrap();
    assert!(wire::task_segment(&mut r).is_err());
    assert!(wire::decode::<Ready>(&[0xff; 3]).is_err());
    let hello = Hello {
        identity: b"id:\x01\x02".to_vec(),
        init: Some((-5, vec![1, 2, 3])),
    };
    let mut bytes = wire::encode(&hello).unwrap();
    assert_eq!(wire::decode::<Hello>(&bytes).unwrap(), hello);
    bytes.push(0);
    assert!(wire::decode::<Hello>(&bytes).is_err(), "trailing bytes");
}

fn segment(bytes: &[u8], count: u32, elapsed_ns: u64) -> Vec<u8> {
    let mut w = Writer::new(0, 0);
    let at = w.begin_result_segment();
    w.out().extend_from_slice(bytes);
    w.end_result_segment(at, count, elapsed_ns);
    w.finish()
}

#[test]
fn a_submitted_tasks_panic_arrives_with_its_rank_and_host() {
    let (p, f) = promise::<u64>();
    let sink: Box<dyn Outcomes> = Box::new(One { promise: p });
    assert!(sink.start());
    let msg = segment(&outcomes(&[0], Some(0)), 1, 10);
    let (_, _, mut r) = wire::open(&msg).unwrap();
    sink.deliver(wire::result_segment(&mut r).unwrap());
    let e = f.result().unwrap_err();
    let t = e.as_task().unwrap();
    assert!(t.is_panic());
    assert_eq!(
        (t.rank(), t.host(), t.pid()),
        (Some(2), Some("node-b"), Some(7))
    );
    assert!(e.to_string().contains("rank 2 on node-b"), "{e}");
}

#[test]
fn a_chunk_keeps_values_in_order_and_names_the_failed_item() {
    let (p, mut f) = promise::<Chunk<u64>>();
    let sink: Box<dyn Outcomes> = Box::new(Many {
        promise: p,
        first: 100,
    });
    let msg = segment(&outcomes(&[1, 4, 9, 16], Some(2)), 4, 4000);
    let (_, _, mut r) = wire::open(&msg).unwrap();
    sink.deliver(wire::result_segment(&mut r).unwrap());
    let chunk = f.result_timeout(Duration::ZERO).unwrap();
    assert_eq!(chunk.values, [1, 4, 16]);
    assert_eq!(chunk.errors.len(), 1);
    assert_eq!(chunk.errors[0].0, 2);
    assert_eq!(chunk.errors[0].1.task(), Some(102));
    assert_eq!(chunk.elapsed, Duration::from_nanos(4000));

    // Unreadable bytes fail the items from there on, never panic.
    let (p, mut f) = promise::<Chunk<u64>>();
    let sink: Box<dyn Outcomes> = Box::new(Many {
        promise: p,
        first: 0,
    });
    let mut bad = outcomes(&[1], None);
    bad.push(77);
    let msg = segment(&bad, 2, 0);
    let (_, _, mut r) = wire::open(&msg).unwrap();
    sink.deliver(wire::result_segment(&mut r).unwrap());
    let chunk = f.result_timeout(Duration::ZERO).unwrap();
    assert_eq!(chunk.values, [1]);
    assert_eq!(chunk.errors[0].0, 1);
}

#[test]
fn a_cancelled_future_is_not_sent_and_ends_cancelled() {
    let (p, f) = promise::<u64>();
    assert!(f.cancel());
    let sink: Box<dyn Outcomes> = Box::new(One { promise: p });
    assert!(!sink.start(), "a cancelled task is dropped, not sent");
    let (p, f) = promise::<u64>();
    let sink: Box<dyn Outcomes> = Box::new(One { promise: p });
    sink.fail(crate::TaskError::cancelled());
    assert!(f.cancelled());
}

#[test]
fn naps_look_again_at_once_then_grow_to_their_cap() {
    let mut nap = Nap::new();
    assert_eq!(nap.busy_for(), Some(Duration::ZERO));
    std::thread::sleep(SPIN * 2);
    let first = nap.busy_for().unwrap();
    assert!(first > Duration::ZERO);
    let mut last = first;
    for _ in 0..20 {
        last = nap.busy_for().unwrap();
    }
    assert_eq!(last, NAP_MAX);
    assert_eq!(
        nap.idle_for(),
        None,
        "idle past the spin: sleep until woken"
    );
    nap.reset();
    assert_eq!(nap.busy_for(), Some(Duration::ZERO));
}

#[test]
fn the_public_types_are_send_and_sync() {
    fn both<T: Send + Sync>() {}
    both::<super::MpiPoolExecutor>();
    both::<super::MpiPoolBuilder>();
    both::<super::RankInfo>();
}

#[test]
fn a_close_between_the_managers_last_look_and_its_sleep_ends_the_sleep() {
    // The lost wake-up behind a hang at shutdown (1 job in 5 of `init-fails`): the manager
    // saw the executor open, then `close` ran and notified before the manager slept. The
    // sleep must see the change, not wait an hour for a second notification.
    let shared = std::sync::Arc::new(super::manager::Shared::new());
    shared.close(false);
    let (tx, rx) = std::sync::mpsc::channel();
    let sleeper = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            shared.nap(None, false);
            tx.send(()).unwrap();
        })
    };
    assert!(
        rx.recv_timeout(Duration::from_secs(30)).is_ok(),
        "the manager slept through a close it had not seen"
    );
    sleeper.join().unwrap();
    // Seen closed, nothing changes: a nap of a given length waits it out and returns.
    shared.nap(Some(Duration::from_millis(1)), true);
}
