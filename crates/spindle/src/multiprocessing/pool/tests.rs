//! Internal tests of the pool's pieces: the queue of encoded items, the wire's buffers.

use super::chunking::{Chunking, Sizer};
use super::job::{encode_item, JobQueue};
use super::protocol::{self as wire, InBuf};

fn queue() -> JobQueue {
    JobQueue::new(
        Sizer::new(Chunking::Fixed(3), 2, None, true, None).unwrap(),
        None,
    )
}

/// Items `first..first + n`, each the encoding of its index.
fn encoded(first: u64, n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for i in first..first + n {
        encode_item(&i, &mut out).unwrap();
    }
    out
}

fn decode_all(bytes: &[u8], n: usize) -> Vec<u64> {
    let mut at = 0;
    (0..n)
        .map(|_| {
            let (len, used) = wire::read_varint(&bytes[at..]).unwrap();
            let item = &bytes[at + used..at + used + len as usize];
            at += used + len as usize;
            crate::multiprocessing::reduction::decode::<u64>(item).unwrap()
        })
        .collect()
}

#[test]
fn runs_are_cut_at_their_gaps_and_keep_their_indices() {
    let mut q = queue();
    q.push_run(0, 5, &encoded(0, 5));
    // Item 5 failed to encode: the next run starts at 6.
    q.push_run(6, 2, &encoded(6, 2));
    q.push_run(8, 1, &encoded(8, 1));
    assert_eq!(q.indices().collect::<Vec<_>>(), [0, 1, 2, 3, 4, 6, 7, 8]);
    let (first, count, bytes) = q.cut(3).unwrap();
    assert_eq!((first, count), (0, 3));
    assert_eq!(decode_all(&bytes, 3), [0, 1, 2]);
    let (first, count, bytes) = q.cut(10).unwrap();
    assert_eq!((first, count), (3, 2), "a cut never crosses a gap");
    assert_eq!(decode_all(&bytes, 2), [3, 4]);
    let (first, count, bytes) = q.cut(10).unwrap();
    assert_eq!((first, count), (6, 3), "adjacent runs are cut together");
    assert_eq!(decode_all(&bytes, 3), [6, 7, 8]);
    assert!(q.cut(1).is_none() && q.is_empty());
    assert_eq!(q.cut, 8);
}

#[test]
fn cuts_take_whole_runs_and_parts_of_runs() {
    let mut q = queue();
    q.push_run(0, 4, &encoded(0, 4));
    q.push_run(4, 4, &encoded(4, 4));
    q.push_run(8, 300, &encoded(8, 300));
    let (first, count, bytes) = q.cut(6).unwrap();
    assert_eq!((first, count), (0, 6));
    assert_eq!(decode_all(&bytes, 6), [0, 1, 2, 3, 4, 5]);
    let (first, count, bytes) = q.cut(200).unwrap();
    assert_eq!((first, count), (6, 200));
    assert_eq!(decode_all(&bytes, 200), (6..206).collect::<Vec<u64>>());
    let (first, count, bytes) = q.cut(1000).unwrap();
    assert_eq!((first, count), (206, 102));
    assert_eq!(decode_all(&bytes, 102), (206..308).collect::<Vec<u64>>());
    assert!(q.is_empty());
}

#[test]
fn an_item_longer_than_127_bytes_gets_a_longer_length() {
    let mut out = Vec::new();
    encode_item(&"x".repeat(300), &mut out).unwrap();
    encode_item(&7u8, &mut out).unwrap();
    let (len, used) = wire::read_varint(&out).unwrap();
    assert_eq!(used, 2);
    let s: String =
        crate::multiprocessing::reduction::decode(&out[used..used + len as usize]).unwrap();
    assert_eq!(s.len(), 300);
    assert_eq!(wire::skip_items(&out, 1).unwrap(), used + len as usize);
    assert_eq!(wire::skip_items(&out, 2).unwrap(), out.len());
}

#[test]
fn inbuf_hands_out_frames_across_reads_and_grows_only_as_needed() {
    let mut stream = Vec::new();
    for i in 0..100u8 {
        wire::push_frame(&mut stream, wire::READY, &vec![i; i as usize * 100]).unwrap();
    }
    let mut reader = std::io::Cursor::new(stream);
    let mut buf = InBuf::default();
    let mut seen = 0u8;
    while seen < 100 {
        let want = buf.wanted(64);
        if buf.fill(&mut reader, want).unwrap() == 0 {
            break;
        }
        while let Some((kind, range)) = wire::split_frame(buf.data()).unwrap() {
            assert_eq!(kind, wire::READY);
            let payload = &buf.data()[range.clone()];
            assert_eq!(payload.len(), seen as usize * 100);
            assert!(payload.iter().all(|b| *b == seen));
            buf.consume(range.end);
            seen += 1;
        }
    }
    assert_eq!(seen, 100);
    assert!(buf.data().is_empty());
}
