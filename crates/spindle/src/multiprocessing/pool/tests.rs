//! Internal tests of the pool's pieces: the queue of encoded items, the wire's buffers.

use super::chunking::{Chunking, Sizer};
use super::flat::FRAMED;
use super::job::{encode_item, Encoded, ItemEncoder, JobQueue, Piece};
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

/// One cut, as `(first, count, values)` with the pieces joined (checking they follow on).
fn cut(q: &mut JobQueue, max: usize) -> Option<(u64, u32, Vec<u64>)> {
    let pieces = q.cut(max)?;
    let first = pieces[0].first;
    let mut count = 0u32;
    let mut values = Vec::new();
    for p in pieces {
        assert_eq!(p.first, first + u64::from(count), "pieces follow on");
        count += p.count;
        if p.stride == FRAMED {
            values.extend(decode_all(&p.bytes, p.count as usize));
        } else {
            assert_eq!(p.bytes.len(), p.count as usize * p.stride as usize);
            values.extend(
                p.bytes
                    .chunks_exact(p.stride as usize)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap())),
            );
        }
    }
    Some((first, count, values))
}

/// Items `first..first + n`, flat (8 bytes each).
fn flat_items(first: u64, n: u64) -> Vec<u8> {
    (first..first + n).flat_map(u64::to_le_bytes).collect()
}

#[test]
fn runs_are_cut_at_their_gaps_and_keep_their_indices() {
    let mut q = queue();
    q.push_owned(0, 5, FRAMED, encoded(0, 5));
    // Item 5 failed to encode: the next run starts at 6.
    q.push_owned(6, 2, FRAMED, encoded(6, 2));
    q.push_owned(8, 1, FRAMED, encoded(8, 1));
    assert_eq!(q.indices().collect::<Vec<_>>(), [0, 1, 2, 3, 4, 6, 7, 8]);
    assert_eq!(cut(&mut q, 3).unwrap(), (0, 3, vec![0, 1, 2]));
    assert_eq!(
        cut(&mut q, 10).unwrap(),
        (3, 2, vec![3, 4]),
        "a cut never crosses a gap"
    );
    assert_eq!(
        cut(&mut q, 10).unwrap(),
        (6, 3, vec![6, 7, 8]),
        "adjacent runs are cut together"
    );
    assert!(q.cut(1).is_none() && q.is_empty());
    assert_eq!(q.cut, 8);
}

#[test]
fn cuts_take_whole_runs_and_parts_of_runs_in_either_layout() {
    let mut q = queue();
    q.push_owned(0, 4, FRAMED, encoded(0, 4));
    q.push_owned(4, 4, 8, flat_items(4, 4));
    q.push_owned(8, 300, FRAMED, encoded(8, 300));
    q.push_owned(308, 5000, 8, flat_items(308, 5000));
    assert_eq!(cut(&mut q, 6).unwrap(), (0, 6, (0..6).collect()));
    assert_eq!(cut(&mut q, 200).unwrap(), (6, 200, (6..206).collect()));
    assert_eq!(
        cut(&mut q, 1000).unwrap(),
        (206, 1000, (206..1206).collect())
    );
    let whole = q.cut(100_000).unwrap();
    assert_eq!(whole.len(), 1);
    assert_eq!((whole[0].first, whole[0].count), (1206, 4102));
    // Pieces of one layout that follow on are joined: one segment each.
    q.push_owned(0, 3, 8, flat_items(0, 3));
    q.push_owned(3, 3, 8, flat_items(3, 3));
    q.push_owned(6, 1, FRAMED, encoded(6, 1));
    q.push_owned(7, 2, 8, flat_items(7, 2));
    let shape: Vec<(u64, u32, u32)> = q
        .cut(100)
        .unwrap()
        .iter()
        .map(|p| (p.first, p.count, p.stride))
        .collect();
    assert_eq!(shape, [(0, 6, 8), (6, 1, FRAMED), (7, 2, 8)]);
    assert!(q.is_empty());
}

#[test]
fn small_runs_that_follow_on_share_one_run_and_big_ones_move_whole() {
    let mut q = queue();
    for i in 0..100 {
        q.push_owned(i, 1, 8, flat_items(i, 1));
    }
    let big = flat_items(100, 10_000);
    let at = big.as_ptr();
    q.push_owned(100, 10_000, 8, big);
    let pieces = q.cut(100).unwrap();
    assert_eq!(pieces.len(), 1, "100 single pushes make one run");
    assert_eq!(pieces[0].count, 100);
    let pieces = q.cut(10_000).unwrap();
    assert_eq!(
        pieces[0].bytes.as_ptr(),
        at,
        "a whole big run is moved, not copied"
    );
}

#[test]
fn a_piece_without_cancelled_items_keeps_the_others_in_order() {
    for stride in [8, FRAMED] {
        let bytes = if stride == FRAMED {
            encoded(10, 6)
        } else {
            flat_items(10, 6)
        };
        let piece = Piece {
            first: 10,
            count: 6,
            stride,
            bytes,
        };
        let parts = piece.without(&[9, 10, 13, 15, 99]);
        let got: Vec<(u64, u32)> = parts.iter().map(|p| (p.first, p.count)).collect();
        assert_eq!(got, [(11, 2), (14, 1)], "stride {stride}");
        let mut q = queue();
        for p in parts {
            q.push_owned(p.first, u64::from(p.count), p.stride, p.bytes);
        }
        assert_eq!(cut(&mut q, 10).unwrap().2, [11, 12]);
        assert_eq!(cut(&mut q, 10).unwrap().2, [14]);
    }
}

#[test]
fn the_encoder_goes_flat_for_plain_data_and_framed_otherwise() {
    let mut enc = ItemEncoder::default();
    let mut batch = Encoded::default();
    for i in 0..10u64 {
        enc.push(&i, &mut batch);
    }
    assert_eq!(batch.runs.len(), 1);
    assert_eq!((batch.runs[0].1, batch.runs[0].2), (10, 8));
    let mut enc = ItemEncoder::default();
    let mut batch = Encoded::default();
    for s in ["a", "bb"] {
        enc.push(&s.to_string(), &mut batch);
    }
    assert_eq!(batch.runs.len(), 1);
    assert_eq!((batch.runs[0].1, batch.runs[0].2), (2, FRAMED));
    // A value of another flat size opens a new run; one that is not flat goes framed.
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Odd {
        Small(u32),
        Big(u64),
        Text(String),
    }
    let mut enc = ItemEncoder::default();
    let mut batch = Encoded::default();
    for v in [
        Odd::Small(1),
        Odd::Small(2),
        Odd::Big(3),
        Odd::Text("x".into()),
    ] {
        enc.push(&v, &mut batch);
    }
    let shape: Vec<(u64, u64, u32)> = batch.runs.iter().map(|r| (r.0, r.1, r.2)).collect();
    assert_eq!(shape, [(0, 2, 4), (2, 1, 8), (3, 1, FRAMED)]);
    assert!(batch.failed.is_empty());
    assert_eq!(batch.items, 4);
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
