//! The messages between rank 0 and a worker rank: one MPI message each, told apart by tag.
//!
//! | tag | direction | payload |
//! |---|---|---|
//! | `HELLO` | 0 → worker, once | postcard [`Hello`]: the build identity, the initializer by offset |
//! | `READY` | worker → 0, once | postcard [`Ready`]: pid, host, the initializer's outcome |
//! | `TASKS` | 0 → worker | `seq: u64, segments: u32`, then per segment `entry: i64, count: u32, len: u32` and `len` bytes of items, each `varint length + postcard` (the process pool's item encoding) |
//! | `RESULTS` | worker → 0 | `seq: u64, segments: u32`, then per segment `count: u32, elapsed_ns: u64, len: u32` and `len` bytes of `count` tagged outcomes (the process pool's: a tag byte, then a postcard value, panic report or message) |
//! | `STOP` | 0 → worker | empty: serve no more, finalize, return from `start` |
//!
//! A segment is one submitted task or one chunk of a `map`; one message carries several
//! (single submits are batched). Integers are little-endian. Bytes from a peer are checked
//! (every length against what is there): a malformed message is a typed error, never a panic.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::multiprocessing::pool::protocol::Reader;

pub(super) const TAG_HELLO: i32 = 1;
pub(super) const TAG_TASKS: i32 = 2;
pub(super) const TAG_STOP: i32 = 3;
pub(super) const TAG_READY: i32 = 10;
pub(super) const TAG_RESULTS: i32 = 11;

/// The largest message either side sends (MPI counts are `int`).
pub(super) const MAX_MESSAGE: usize = 1 << 30;

/// What rank 0 tells every worker first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Hello {
    /// `sys::image::build_identity()` of rank 0's program: the build-id, so that a worker on
    /// another host running another build refuses instead of jumping anywhere.
    pub(super) identity: Vec<u8>,
    /// The initializer's trampoline offset and its encoded arguments.
    pub(super) init: Option<(i64, Vec<u8>)>,
}

/// A worker's answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Ready {
    pub(super) pid: u32,
    pub(super) host: String,
    /// `Err(why)`: another build, or the initializer failed (a panic included).
    pub(super) init: std::result::Result<(), String>,
}

/// Encodes a serde message.
pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| Error::Codec(format!("cannot encode: {e}")))
}

/// Decodes a serde message; leftover bytes are an error.
pub(super) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((v, [])) => Ok(v),
        Ok((_, rest)) => Err(Error::Protocol(format!(
            "{} bytes after an MPI message",
            rest.len()
        ))),
        Err(e) => Err(Error::Protocol(format!("a malformed MPI message: {e}"))),
    }
}

/// A `TASKS` or `RESULTS` message being written.
#[derive(Debug)]
pub(super) struct Writer {
    buf: Vec<u8>,
    segments: u32,
}

impl Writer {
    /// A message with sequence number `seq` and no segment yet.
    pub(super) fn new(seq: u64, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity.max(12));
        buf.extend_from_slice(&seq.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        Writer { buf, segments: 0 }
    }

    /// Appends a `TASKS` segment: `count` items of the trampoline at `entry`.
    pub(super) fn task_segment(&mut self, entry: i64, count: u32, items: &[u8]) {
        self.buf.extend_from_slice(&entry.to_le_bytes());
        self.buf.extend_from_slice(&count.to_le_bytes());
        self.buf
            .extend_from_slice(&(items.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(items);
        self.segments += 1;
    }

    /// Begins a `RESULTS` segment whose outcomes are appended to [`out`](Writer::out) next;
    /// returns where to [`end_result_segment`](Writer::end_result_segment) it.
    pub(super) fn begin_result_segment(&mut self) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0u8; 16]);
        at
    }

    /// The buffer outcomes are appended to.
    pub(super) fn out(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Ends the segment begun at `at`: `count` outcomes that took `elapsed_ns`.
    pub(super) fn end_result_segment(&mut self, at: usize, count: u32, elapsed_ns: u64) {
        let len = (self.buf.len() - at - 16) as u32;
        self.buf[at..at + 4].copy_from_slice(&count.to_le_bytes());
        self.buf[at + 4..at + 12].copy_from_slice(&elapsed_ns.to_le_bytes());
        self.buf[at + 12..at + 16].copy_from_slice(&len.to_le_bytes());
        self.segments += 1;
    }

    /// Bytes written so far.
    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    /// The finished message.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.buf[8..12].copy_from_slice(&self.segments.to_le_bytes());
        self.buf
    }
}

/// The header of a `TASKS` or `RESULTS` message: `(seq, segments)` and a reader at the first
/// segment.
pub(super) fn open(bytes: &[u8]) -> Result<(u64, u32, Reader<'_>)> {
    let mut r = Reader::new(bytes);
    let seq = r.u64()?;
    let segments = r.u32()?;
    Ok((seq, segments, r))
}

/// One segment of a `TASKS` message.
#[derive(Debug, Clone, Copy)]
pub(super) struct TaskSegment<'a> {
    pub(super) entry: i64,
    pub(super) count: u32,
    pub(super) items: &'a [u8],
}

/// Reads the next `TASKS` segment.
pub(super) fn task_segment<'a>(r: &mut Reader<'a>) -> Result<TaskSegment<'a>> {
    let entry = r.i64()?;
    let count = r.u32()?;
    let len = r.u32()? as usize;
    let items = r.bytes(len)?;
    Ok(TaskSegment {
        entry,
        count,
        items,
    })
}

/// One segment of a `RESULTS` message.
#[derive(Debug, Clone, Copy)]
pub(super) struct ResultSegment<'a> {
    pub(super) count: u32,
    pub(super) elapsed_ns: u64,
    pub(super) outcomes: &'a [u8],
}

/// Reads the next `RESULTS` segment.
pub(super) fn result_segment<'a>(r: &mut Reader<'a>) -> Result<ResultSegment<'a>> {
    let count = r.u32()?;
    let elapsed_ns = r.u64()?;
    let len = r.u32()? as usize;
    let outcomes = r.bytes(len)?;
    Ok(ResultSegment {
        count,
        elapsed_ns,
        outcomes,
    })
}
