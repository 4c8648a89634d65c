//! The wire between a pool and one of its workers: framed messages on the worker's own
//! socket pair, so that results come back on the channel their tasks went out on.
//!
//! A frame is `[0xB6, kind, len: u32 LE] + payload` (payload at most 1 GiB).
//!
//! | kind | direction | payload |
//! |---|---|---|
//! | `TASK` | pool → worker | `seq: u64, flags: u8, segments: u32`, then per segment `entry: i64, count: u32, stride: u32, bytes: u32` and `bytes` of items: `count` flat values of `stride` bytes each (`flat.rs`), or, when `stride` is `u32::MAX`, each `varint length + postcard` |
//! | `STOP` | pool → worker | empty: finish, run the exit hook, exit |
//! | `SKIP` | pool → worker | `seq: u64, position: u32`: do not run that item of that chunk (a caller stopped it before it started); it is reported `TAG_CANCELLED` |
//! | `READY` | worker → pool | empty: the initializer succeeded |
//! | `INIT_FAILED` | worker → pool | the initializer's message (UTF-8) |
//! | `RESULTS` | worker → pool | `seq: u64, offset: u32, count: u32, last: u8, elapsed_ns: u64`, then the outcomes of `count` items: tagged postcard values, and runs of flat values (`trampoline.rs`) |
//!
//! The entry of a segment of flat values is its function's run trampoline; of framed values,
//! its item trampoline. A chunk (`TASK`) is a list of segments: one segment for a `map` chunk, several one-item
//! segments when the pool batches single submits of different calls into one message. A
//! worker reports a chunk's results in one or more `RESULTS` frames; `offset` counts the
//! chunk's items reported before, `last` marks the final one. A worker writes a chunk's last
//! report before it starts the next chunk, so the first chunk without a last report is the
//! one it was running when it died.
//!
//! Bytes from a worker are untrusted (a task runs arbitrary code): every length is checked
//! and a malformed frame is a typed error, never a panic.

use crate::error::{Error, Result};

pub(crate) const MAGIC: u8 = 0xB6;
pub(crate) const HEADER: usize = 6;
pub(crate) const MAX_FRAME: usize = 1 << 30;

pub(crate) const TASK: u8 = 1;
pub(crate) const STOP: u8 = 2;
pub(crate) const SKIP: u8 = 3;
pub(crate) const READY: u8 = 10;
pub(crate) const INIT_FAILED: u8 = 11;
pub(crate) const RESULTS: u8 = 12;

/// `TASK` flag: report after every item (the chunk has a time limit, so the pool must know
/// when each item starts).
pub(crate) const FLUSH_EACH: u8 = 1;

/// Tags of a result item.
pub(crate) const TAG_VALUE: u8 = 0;
pub(crate) const TAG_PANIC: u8 = 1;
pub(crate) const TAG_CODEC: u8 = 2;
/// A run of flat values: `count: u32, stride: u32`, then `count × stride` bytes.
pub(crate) const TAG_RUN: u8 = 3;
/// An item not run because the pool said `SKIP`; nothing follows.
pub(crate) const TAG_CANCELLED: u8 = 4;

/// Appends the postcard encoding of `value` to `out`; on failure `out` is left as it was.
///
/// (The codec is `reduction`'s, postcard; a pool encodes many values into one message, so it
/// appends in place instead of making a buffer per value.)
#[inline]
pub(crate) fn append<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    let at = out.len();
    match postcard::serialize_with_flavor(value, Append(out)) {
        Ok(()) => Ok(()),
        Err(e) => {
            out.truncate(at);
            Err(Error::Codec(format!(
                "cannot encode: {}",
                crate::multiprocessing::reduction::encode_failure(value, e)
            )))
        }
    }
}

struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        // Varints and small fields are a few bytes: a byte loop beats a call to memcpy.
        if data.len() <= 16 {
            self.0.reserve(data.len());
            for &b in data {
                self.0.push(b);
            }
        } else {
            self.0.extend_from_slice(data);
        }
        Ok(())
    }

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Decodes one `T` from the front of `bytes` and returns it with the bytes after it.
pub(crate) fn take<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<(T, &[u8])> {
    postcard::take_from_bytes::<T>(bytes)
        .map_err(|e| Error::Codec(format!("cannot decode {}: {e}", std::any::type_name::<T>())))
}

/// The header of a frame of `kind` with `len` payload bytes.
pub(crate) fn header(kind: u8, len: usize) -> Result<[u8; HEADER]> {
    if len > MAX_FRAME {
        return Err(Error::Codec(format!(
            "a pool message of {len} bytes exceeds the {MAX_FRAME}-byte limit"
        )));
    }
    let l = (len as u32).to_le_bytes();
    Ok([MAGIC, kind, l[0], l[1], l[2], l[3]])
}

/// Appends a whole frame.
pub(crate) fn push_frame(out: &mut Vec<u8>, kind: u8, payload: &[u8]) -> Result<()> {
    out.extend_from_slice(&header(kind, payload.len())?);
    out.extend_from_slice(payload);
    Ok(())
}

/// Starts a frame whose payload is appended next; [`end_frame`] writes its length.
pub(crate) fn begin_frame(out: &mut Vec<u8>, kind: u8) -> usize {
    let at = out.len();
    out.extend_from_slice(&[MAGIC, kind, 0, 0, 0, 0]);
    at
}

/// Writes the length of the frame begun at `at`.
pub(crate) fn end_frame(out: &mut [u8], at: usize) -> Result<()> {
    let len = out.len() - at - HEADER;
    let h = header(out[at + 1], len)?;
    out[at..at + HEADER].copy_from_slice(&h);
    Ok(())
}

/// Splits the first complete frame off `buf[..]`: `Some((kind, payload range, frame length))`
/// when one is complete, `None` when more bytes are needed.
pub(crate) fn split_frame(buf: &[u8]) -> Result<Option<(u8, std::ops::Range<usize>)>> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    if buf[0] != MAGIC {
        return Err(Error::Protocol(format!(
            "bad magic byte {:#04x} on a pool channel",
            buf[0]
        )));
    }
    let len = u32::from_le_bytes([buf[2], buf[3], buf[4], buf[5]]) as usize;
    if len > MAX_FRAME {
        return Err(Error::Protocol(format!(
            "a pool frame of {len} bytes exceeds the limit"
        )));
    }
    if buf.len() < HEADER + len {
        return Ok(None);
    }
    Ok(Some((buf[1], HEADER..HEADER + len)))
}

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint from the front of `buf`: `(value, bytes used)`.
pub(crate) fn read_varint(buf: &[u8]) -> Result<(u64, usize)> {
    let mut v = 0u64;
    for (i, b) in buf.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(Error::Protocol("malformed length in a pool message".into()))
}

/// The byte offset of item `n` in a segment's items (each `varint length + bytes`).
pub(crate) fn skip_items(items: &[u8], n: usize) -> Result<usize> {
    let mut at = 0;
    for _ in 0..n {
        // Most items are shorter than 128 bytes: a one-byte length.
        match items.get(at) {
            Some(&b) if b < 0x80 => at += 1 + b as usize,
            Some(_) => {
                let (len, used) = read_varint(&items[at..])?;
                at = at
                    .checked_add(used)
                    .and_then(|a| a.checked_add(len as usize))
                    .ok_or_else(|| Error::Protocol("an item runs past its segment".into()))?;
            }
            None => return Err(Error::Protocol("an item runs past its segment".into())),
        }
    }
    if at > items.len() {
        return Err(Error::Protocol("an item runs past its segment".into()));
    }
    Ok(at)
}

/// Bytes received and not yet parsed, in a buffer that is zero-filled only when it grows
/// (reading into a freshly resized `Vec` each time would fill megabytes per read).
#[derive(Debug, Default)]
pub(crate) struct InBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl InBuf {
    /// The bytes not yet consumed.
    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` bytes of [`data`](InBuf::data) as consumed.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Appends `bytes` after the data.
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.buf.truncate(self.end);
        self.buf.extend_from_slice(bytes);
        self.end = self.buf.len();
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// How many more bytes the frame at the front needs (at least `min`, or, while the buffer
    /// is smaller than `min`, at least its size or 4 KiB: a worker that only ever gets small
    /// frames never fills and faults in a big buffer).
    pub(crate) fn wanted(&self, min: usize) -> usize {
        let min = min.min(self.buf.len().max(4096));
        let d = self.data();
        if d.len() >= HEADER {
            let len = u32::from_le_bytes([d[2], d[3], d[4], d[5]]) as usize;
            (HEADER + len.min(MAX_FRAME))
                .saturating_sub(d.len())
                .max(min)
        } else {
            min
        }
    }

    /// One read of at most `want` bytes (0 at end of stream).
    pub(crate) fn fill(
        &mut self,
        r: &mut impl std::io::Read,
        want: usize,
    ) -> std::io::Result<usize> {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < want {
            self.buf.resize(self.end + want, 0);
        }
        let n = r.read(&mut self.buf[self.end..self.end + want])?;
        self.end += n;
        Ok(n)
    }
}

/// A little-endian reader over a payload; every read is bounds-checked.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, at: 0 }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| Error::Protocol("truncated pool message".into()))?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.bytes(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.bytes(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(
            self.bytes(8)?.try_into().expect("8 bytes"),
        ))
    }

    /// What is left, without consuming it.
    pub(crate) fn rest_peek(&self) -> &'a [u8] {
        &self.buf[self.at..]
    }

    /// What is left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.at..];
        self.at = self.buf.len();
        s
    }
}

/// The header of a `RESULTS` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResultsHeader {
    pub(crate) seq: u64,
    pub(crate) offset: u32,
    pub(crate) count: u32,
    pub(crate) last: bool,
    pub(crate) elapsed_ns: u64,
}

/// Bytes of a `RESULTS` header.
pub(crate) const RESULTS_HEADER: usize = 8 + 4 + 4 + 1 + 8;

impl ResultsHeader {
    pub(crate) fn write(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.seq.to_le_bytes());
        out[8..12].copy_from_slice(&self.offset.to_le_bytes());
        out[12..16].copy_from_slice(&self.count.to_le_bytes());
        out[16] = u8::from(self.last);
        out[17..25].copy_from_slice(&self.elapsed_ns.to_le_bytes());
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(ResultsHeader {
            seq: r.u64()?,
            offset: r.u32()?,
            count: r.u32()?,
            last: r.u8()? != 0,
            elapsed_ns: r.u64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_items_are_skipped() {
        let mut out = Vec::new();
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            out.clear();
            push_varint(&mut out, v);
            assert_eq!(read_varint(&out).unwrap(), (v, out.len()));
        }
        let mut items = Vec::new();
        for len in [0usize, 3, 200] {
            push_varint(&mut items, len as u64);
            items.extend(std::iter::repeat_n(7u8, len));
        }
        assert_eq!(skip_items(&items, 0).unwrap(), 0);
        assert_eq!(skip_items(&items, 1).unwrap(), 1);
        assert_eq!(skip_items(&items, 2).unwrap(), 5);
        assert_eq!(skip_items(&items, 3).unwrap(), items.len());
        assert!(skip_items(&items, 4).is_err());
        assert!(skip_items(&[0x85], 1).is_err(), "a truncated varint");
        assert!(skip_items(&[0x05, 1], 1).is_err(), "an item past the end");
    }

    #[test]
    fn frames_split_only_when_whole_and_bad_bytes_are_errors() {
        let mut out = Vec::new();
        push_frame(&mut out, READY, b"").unwrap();
        let at = begin_frame(&mut out, INIT_FAILED);
        out.extend_from_slice(b"no db");
        end_frame(&mut out, at).unwrap();
        let (kind, range) = split_frame(&out).unwrap().unwrap();
        assert_eq!((kind, range.clone()), (READY, 6..6));
        let rest = &out[range.end..];
        let (kind, range) = split_frame(rest).unwrap().unwrap();
        assert_eq!((kind, &rest[range]), (INIT_FAILED, &b"no db"[..]));
        assert_eq!(split_frame(&rest[..8]).unwrap(), None);
        assert!(split_frame(&[0, 1, 0, 0, 0, 0]).is_err());
        assert!(split_frame(&[MAGIC, 1, 0xff, 0xff, 0xff, 0xff]).is_err());
        let mut r = Reader::new(&[1, 2, 3]);
        assert!(r.u32().is_err());
        let h = ResultsHeader {
            seq: 9,
            offset: 2,
            count: 3,
            last: true,
            elapsed_ns: 77,
        };
        let mut buf = [0u8; RESULTS_HEADER];
        h.write(&mut buf);
        assert_eq!(ResultsHeader::read(&mut Reader::new(&buf)).unwrap(), h);
    }
}
