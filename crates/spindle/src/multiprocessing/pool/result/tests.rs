//! Internal tests of the outcomes of a call: order, termination, collection, decoding.

use super::*;
use crate::multiprocessing::pool::protocol as wire;
use crate::multiprocessing::pool::reports::decode_block;
use crate::panic::PanicReport;
use std::time::Duration;

/// Every outcome handed out now, one by one.
fn items<R: Send + 'static>(out: &Outcomes<R>, until: Option<Instant>) -> Vec<Result<R>> {
    let mut got = Vec::new();
    while let Some(b) = out.next_block(until) {
        match b {
            Ok(b) => {
                let mut c = Cursor::new(b);
                while let Some(item) = c.next() {
                    got.push(item);
                }
            }
            Err(e) => {
                got.push(Err(e));
                break;
            }
        }
    }
    got
}

fn block(first: u64, vals: &[u32]) -> Block<u32> {
    let mut b = Block::new(first, vals.len());
    for v in vals {
        b.value(*v);
    }
    b
}

#[test]
fn ordered_outcomes_come_in_input_order_whatever_the_arrival() {
    let out = Outcomes::<u32>::new(Order::Ordered);
    out.register(5);
    out.input_done();
    out.deliver(block(3, &[30, 40]));
    let mut b = block(0, &[0]);
    b.error(TaskError::cancelled());
    b.value(20);
    out.deliver(b);
    let got = items(&out, None);
    assert_eq!(got.len(), 5);
    assert_eq!(*got[0].as_ref().unwrap(), 0);
    let e = got[1].as_ref().unwrap_err().as_task().unwrap().clone();
    assert!(e.is_cancelled());
    assert_eq!(e.task(), Some(1));
    assert_eq!(*got[4].as_ref().unwrap(), 40);
    assert!(out.exhausted());
}

#[test]
fn termination_fails_every_gap_once_and_ignores_late_deliveries() {
    for order in [Order::Ordered, Order::Unordered] {
        let out = Outcomes::<u32>::new(order);
        out.register(6);
        out.deliver(block(1, &[1]));
        out.deliver(block(4, &[4]));
        out.terminate(&TaskError::cancelled());
        out.deliver(block(0, &[99]));
        let got = items(&out, None);
        assert_eq!(got.len(), 6, "{order:?}");
        let failed: Vec<u64> = got
            .iter()
            .filter_map(|r| r.as_ref().err()?.as_task()?.task())
            .collect();
        let mut sorted = failed.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 2, 3, 5], "{order:?}");
        assert!(!got.iter().any(|r| matches!(r, Ok(99))));
    }
}

#[test]
fn collect_finishes_once_with_the_first_error_by_position() {
    let out = Outcomes::<u32>::new(Order::Collect);
    let (tx, rx) = std::sync::mpsc::channel();
    out.on_finish(move |blocks| tx.send(collect(blocks)).unwrap());
    out.register(4);
    let mut late = Block::new(2, 2);
    late.value(2);
    late.error(TaskError::timed_out());
    out.deliver(late);
    let mut early = Block::new(0, 2);
    early.error(TaskError::cancelled());
    early.value(1);
    out.deliver(early);
    assert!(rx.try_recv().is_err(), "the input is not done yet");
    out.input_done();
    let e = rx.recv().unwrap().unwrap_err();
    assert!(e.as_task().unwrap().is_cancelled());
    assert_eq!(e.as_task().unwrap().task(), Some(0));
}

#[test]
fn a_timeout_leaves_the_outcome_coming() {
    let out = Outcomes::<u32>::new(Order::Unordered);
    out.register(1);
    let until = Some(Instant::now() + Duration::from_millis(5));
    assert!(matches!(out.next_block(until), Some(Err(Error::Timeout))));
    out.deliver(block(0, &[7]));
    let got = items(&out, None);
    assert_eq!(*got[0].as_ref().unwrap(), 7);
    assert_eq!(got.len(), 1);
    assert!(out.next_block(None).is_none());
}

#[test]
fn decoding_tagged_outcomes_and_a_bad_value() {
    let mut bytes = Vec::new();
    bytes.push(wire::TAG_VALUE);
    wire::append(&5u32, &mut bytes).unwrap();
    bytes.push(wire::TAG_PANIC);
    wire::append(&PanicReport::new("boom".into(), None, None), &mut bytes).unwrap();
    bytes.push(wire::TAG_CODEC);
    wire::append("cannot encode", &mut bytes).unwrap();
    let (b, used, err) = decode_block::<u32>(10, 3, &bytes);
    assert_eq!((b.len, used, err.is_none()), (3, bytes.len(), true));
    assert_eq!(b.values, [5]);
    assert_eq!(b.errors[0].1.panic_message(), Some("boom"));
    assert_eq!(b.errors[1].0, 12);
    let (b, _, err) = decode_block::<u32>(0, 2, &[wire::TAG_VALUE]);
    assert_eq!(b.len, 2);
    assert!(err.is_some());
    let (_, _, err) = decode_block::<u32>(0, 1, &[77]);
    assert!(err.is_some());
}

fn run_record(count: u32, stride: u32, values: &[u8]) -> Vec<u8> {
    let mut out = vec![wire::TAG_RUN];
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&stride.to_le_bytes());
    out.extend_from_slice(values);
    out
}

#[test]
fn hostile_runs_are_typed_errors_and_never_panic() {
    // A count of zero, a count × stride that overflows, a run longer than the bytes, a
    // header cut short: the stream cannot be split; every item of the block fails.
    for bytes in [
        run_record(0, 8, &[]),
        run_record(u32::MAX, u32::MAX, &[0; 16]),
        run_record(3, 8, &[0; 16]),
        vec![wire::TAG_RUN, 1, 0, 0],
        vec![9, 9, 9],
    ] {
        let (b, _, err) = decode_block::<u64>(0, 2, &bytes);
        assert!(
            matches!(err, Some(Error::Protocol(_))),
            "{bytes:?}: {err:?}"
        );
        assert_eq!((b.len, b.errors.len()), (2, 2));
        let out = Outcomes::<u64>::new(Order::Unordered);
        out.register(2);
        assert!(out.deliver_bytes(0, 2, &bytes).is_err());
        let got = items(&out, None);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|r| r.is_err()));
    }
    // A run with more values than the items it reports for: the block is suspect.
    let bytes = run_record(5, 8, &[1; 40]);
    let (b, _, err) = decode_block::<u64>(0, 2, &bytes);
    assert!(err.is_some());
    assert!(b.values.is_empty() && b.errors.len() == 2);
    // A value no `bool` encodes to fails alone: the stride still cuts the rest.
    let bytes = run_record(3, 1, &[1, 7, 0]);
    let (b, used, err) = decode_block::<bool>(10, 3, &bytes);
    assert!(err.is_none());
    assert_eq!(used, bytes.len());
    assert_eq!(b.values, [true, false]);
    assert_eq!(b.errors[0].0, 11);
    assert!(b.errors[0].1.to_string().contains("could not be read"));
}

#[test]
fn a_big_run_reaches_the_consumer_undecoded_and_decodes_there() {
    let values: Vec<u8> = (0..100u64).flat_map(u64::to_le_bytes).collect();
    let out = Outcomes::<u64>::new(Order::Ordered);
    out.register(100);
    out.input_done();
    let bytes = run_record(100, 8, &values);
    assert_eq!(out.deliver_bytes(0, 100, &bytes).unwrap(), bytes.len());
    let got: Vec<u64> = items(&out, None).into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    // Hostile values in a raw run: each is its item's error, found by the consumer.
    let mut bad = vec![1u8; 100];
    bad[40] = 2;
    let out = Outcomes::<bool>::new(Order::Collect);
    let (tx, rx) = std::sync::mpsc::channel();
    out.on_finish(move |blocks| tx.send(collect(blocks)).unwrap());
    out.register(100);
    out.input_done();
    out.deliver_bytes(0, 100, &run_record(100, 1, &bad))
        .unwrap();
    let e = rx.recv().unwrap().unwrap_err();
    assert_eq!(e.as_task().unwrap().task(), Some(40), "{e}");
}
