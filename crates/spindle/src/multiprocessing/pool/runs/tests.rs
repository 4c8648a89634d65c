//! The run trampolines, called in this process: what they write for plain values, for values
//! that change shape or are not plain, for arguments that do not decode, and for panics.

use serde::{Serialize, Serializer};

use super::super::reports::{decode_block, Reports};
use super::*;

/// Runs `input` (`count` flat values of `stride` bytes) through `f`'s run trampoline.
fn run<F, A, R>(_f: F, input: &[u8], count: u32, stride: u32) -> Vec<u8>
where
    F: Fn(A) -> R + Copy + 'static,
    A: DeserializeOwned,
    R: Serialize,
{
    set_run_shape(count, stride, None);
    let mut out = vec![0xEE];
    assert_eq!(map_run::<F, A, R>(input, &mut out), RUN_DONE);
    out.remove(0);
    out
}

fn items(values: impl IntoIterator<Item = u64>) -> Vec<u8> {
    values.into_iter().flat_map(u64::to_le_bytes).collect()
}

/// The records of a report: `('r', count, stride)` for a run, `('v' | 'p' | 'c', 1, 0)` for
/// a tagged value, panic or codec failure. Tagged values are `u64`s.
fn records(bytes: &[u8], items: usize) -> Vec<(char, u32, u32)> {
    records_with(bytes, items, |_, rest| wire::take::<u64>(rest).unwrap().1)
}

/// [`records`], with the tagged value of item `i` skipped by `value`.
fn records_with<'a>(
    mut bytes: &'a [u8],
    items: usize,
    value: impl Fn(usize, &'a [u8]) -> &'a [u8],
) -> Vec<(char, u32, u32)> {
    let mut out = Vec::new();
    let mut left = items;
    while left > 0 {
        match bytes[0] {
            wire::TAG_RUN => {
                let n = u32::from_le_bytes(bytes[1..5].try_into().unwrap());
                let s = u32::from_le_bytes(bytes[5..9].try_into().unwrap());
                out.push(('r', n, s));
                bytes = &bytes[9 + (n * s) as usize..];
                left -= n as usize;
            }
            tag => {
                let kind = match tag {
                    wire::TAG_VALUE => 'v',
                    wire::TAG_PANIC => 'p',
                    _ => 'c',
                };
                // Every tagged record here is one postcard value; its length is found by
                // decoding it as what it is.
                let rest = &bytes[1..];
                let tail = match kind {
                    'p' => wire::take::<crate::panic::PanicReport>(rest).unwrap().1,
                    'v' => value(items - left, rest),
                    _ => wire::take::<String>(rest).unwrap().1,
                };
                out.push((kind, 1, 0));
                bytes = tail;
                left -= 1;
            }
        }
    }
    assert!(bytes.is_empty(), "{} bytes left over", bytes.len());
    out
}

fn square(x: u64) -> u64 {
    x * x
}

fn panics_at_3_and_9(x: u64) -> u64 {
    assert!(x != 3 && x != 9, "item {x} panics");
    x * x
}

#[test]
fn plain_values_make_one_run_and_a_panic_ends_only_its_item() {
    let out = run(square, &items(0..10), 10, 8);
    assert_eq!(records(&out, 10), [('r', 10, 8)]);
    let (b, used, err) = decode_block::<u64>(0, 10, &out);
    assert!(err.is_none());
    assert_eq!(used, out.len());
    assert_eq!(b.values, (0..10).map(|x| x * x).collect::<Vec<_>>());

    let out = run(panics_at_3_and_9, &items(0..10), 10, 8);
    assert_eq!(
        records(&out, 10),
        [('r', 3, 8), ('p', 1, 0), ('r', 5, 8), ('p', 1, 0)]
    );
    let (b, _, err) = decode_block::<u64>(100, 10, &out);
    assert!(err.is_none());
    assert_eq!(b.values, [0, 1, 4, 16, 25, 36, 49, 64]);
    let panicked: Vec<u64> = b.errors.iter().map(|(i, _)| *i).collect();
    assert_eq!(panicked, [103, 109]);
    let e = &b.errors[0].1;
    assert!(e.is_panic());
    assert!(e.panic_message().unwrap().contains("item 3 panics"), "{e}");
    assert_eq!(e.pid(), Some(std::process::id()));
}

/// A value that is flat at 8 bytes, at 4 when odd, and not flat at 6 (a string).
struct Shifty(u64);

impl Serialize for Shifty {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            6 => s.serialize_str("six"),
            n if n % 2 == 1 => s.serialize_u32(n as u32),
            n => s.serialize_u64(n),
        }
    }
}

fn shifty(x: u64) -> Shifty {
    Shifty(x)
}

#[test]
fn a_value_of_another_size_opens_a_run_and_one_not_flat_ends_the_runs() {
    let out = run(shifty, &items(0..9), 9, 8);
    let tagged = |i: usize, rest| match i {
        6 => wire::take::<String>(rest).unwrap().1,
        _ => wire::take::<u64>(rest).unwrap().1,
    };
    assert_eq!(
        records_with(&out, 9, tagged),
        [
            ('r', 1, 8),
            ('r', 1, 4),
            ('r', 1, 8),
            ('r', 1, 4),
            ('r', 1, 8),
            ('r', 1, 4),
            ('v', 1, 0),
            // After a value that is not flat, the call's values go tagged.
            ('v', 1, 0),
            ('v', 1, 0),
        ]
    );
}

fn takes_a_bool(b: bool) -> u64 {
    u64::from(b)
}

#[test]
fn an_argument_that_does_not_decode_fails_alone() {
    let out = run(takes_a_bool, &[1, 0, 7, 1], 4, 1);
    assert_eq!(records(&out, 4), [('r', 2, 8), ('c', 1, 0), ('r', 1, 8)]);
    let (b, _, err) = decode_block::<u64>(0, 4, &out);
    assert!(err.is_none());
    assert_eq!(b.values, [1, 0, 1]);
    assert_eq!(b.errors[0].0, 2);
    let m = b.errors[0].1.to_string();
    assert!(
        m.contains("cannot decode the argument") && m.contains("bool"),
        "{m}"
    );
}

fn unit(_: u64) {}

#[test]
fn zero_sized_values_and_a_shape_that_does_not_fit() {
    let out = run(unit, &items(0..5), 5, 8);
    assert_eq!(records(&out, 5), [('r', 5, 0)]);
    let (b, _, err) = decode_block::<()>(0, 5, &out);
    assert!(err.is_none() && b.errors.is_empty());
    assert_eq!(b.values.len(), 5);
    let mut reports = Reports::new(&out);
    for _ in 0..5 {
        assert!(reports.next::<()>().unwrap().is_ok());
    }
    reports.check_end_of_run().unwrap();
    // Told 3 items of 8 bytes, given 20 bytes: refused, nothing written.
    fn refused<F: Fn(u64) -> u64 + Copy + 'static>(_f: F) {
        set_run_shape(3, 8, None);
        let mut out = Vec::new();
        assert_eq!(map_run::<F, u64, u64>(&[0; 20], &mut out), RUN_BAD_SHAPE);
        assert!(out.is_empty());
    }
    refused(square);
}

#[test]
fn a_segment_run_in_several_calls_makes_one_run() {
    fn in_calls<F: Fn(u64) -> u64 + Copy + 'static>(
        _f: F,
        parts: &[std::ops::Range<u64>],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut open = None;
        for r in parts {
            set_run_shape((r.end - r.start) as u32, 8, open);
            assert_eq!(
                map_run::<F, u64, u64>(&items(r.clone()), &mut out),
                RUN_DONE
            );
            open = open_run();
        }
        out
    }
    let out = in_calls(square, &[0..3, 3..4, 4..10]);
    assert_eq!(records(&out, 10), [('r', 10, 8)]);
    let (b, _, _) = decode_block::<u64>(0, 10, &out);
    assert_eq!(b.values, (0..10).map(|x| x * x).collect::<Vec<_>>());
    // A panic closes the run; the next call opens another.
    let out = in_calls(panics_at_3_and_9, &[0..2, 2..5, 5..10]);
    assert_eq!(
        records(&out, 10),
        [('r', 3, 8), ('p', 1, 0), ('r', 5, 8), ('p', 1, 0)]
    );
    // A run that does not end where the report ends (a report was sent in between) is not
    // extended.
    fn stale<F: Fn(u64) -> u64 + Copy + 'static>(_f: F) -> Vec<u8> {
        let mut out = vec![7; 31];
        set_run_shape(2, 8, Some((2, 5, 8)));
        assert_eq!(map_run::<F, u64, u64>(&items(0..2), &mut out), RUN_DONE);
        out.split_off(31)
    }
    assert_eq!(records(&stale(square), 2), [('r', 2, 8)]);
}
