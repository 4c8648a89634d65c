//! What the supervisor keeps of each message it sent to a worker: the chunk's segments
//! (slices of calls), how far the worker has reported, and how to split off what it did not
//! run.

use std::sync::Arc;
use std::time::Duration;

use super::job::{offset_of, Piece, ProcJob};
use crate::error::TaskError;

/// A slice of a call sent to a worker in one chunk.
pub(crate) struct Segment {
    pub(crate) job: Arc<ProcJob>,
    pub(crate) first: u64,
    pub(crate) count: u32,
    /// The items' layout: flat values of this many bytes, or `FRAMED`.
    pub(crate) stride: u32,
    /// The encoded items.
    pub(crate) bytes: Vec<u8>,
}

impl Segment {
    /// A piece of `job` cut for a chunk.
    pub(crate) fn new(job: Arc<ProcJob>, piece: Piece) -> Segment {
        Segment {
            job,
            first: piece.first,
            count: piece.count,
            stride: piece.stride,
            bytes: piece.bytes,
        }
    }
}

/// One `TASK` message in flight.
pub(crate) struct Chunk {
    pub(crate) seq: u64,
    pub(crate) segments: Vec<Segment>,
    pub(crate) total: u32,
    /// Items reported so far, and where the next one is (segment, offset in it).
    pub(crate) reported: u32,
    pub(crate) seg: usize,
    pub(crate) seg_off: u32,
    pub(crate) flush_each: bool,
    pub(crate) elapsed_ns: u64,
    /// Estimated work, when every segment's function has been timed.
    pub(crate) estimate: Option<Duration>,
}

impl Chunk {
    pub(crate) fn new(seq: u64) -> Chunk {
        Chunk {
            seq,
            segments: Vec::new(),
            total: 0,
            reported: 0,
            seg: 0,
            seg_off: 0,
            flush_each: false,
            elapsed_ns: 0,
            estimate: Some(Duration::ZERO),
        }
    }

    /// Moves the report cursor `n` items on.
    pub(crate) fn advance(&mut self, mut n: u32) {
        self.reported += n;
        while n > 0 {
            let left = self.segments[self.seg].count - self.seg_off;
            if n < left {
                self.seg_off += n;
                return;
            }
            n -= left;
            self.seg += 1;
            self.seg_off = 0;
        }
    }

    /// The segment and the offset in it of item `pos` of the chunk.
    pub(crate) fn locate(&self, pos: u32) -> Option<(usize, u32)> {
        let mut p = pos;
        for (i, s) in self.segments.iter().enumerate() {
            if p < s.count {
                return Some((i, p));
            }
            p -= s.count;
        }
        None
    }

    /// The call and the index in it of item `pos` of the chunk.
    pub(crate) fn item_at(&self, pos: u32) -> Option<(&Arc<ProcJob>, u64)> {
        let (i, off) = self.locate(pos)?;
        let s = &self.segments[i];
        Some((&s.job, s.first + u64::from(off)))
    }

    /// The position of item `index` of `job` (by address) if it is not reported yet.
    pub(crate) fn position_of(&self, job: usize, index: u64) -> Option<u32> {
        let mut at = 0u32;
        for s in &self.segments {
            if Arc::as_ptr(&s.job) as *const () as usize == job
                && (s.first..s.first + u64::from(s.count)).contains(&index)
            {
                let p = at + (index - s.first) as u32;
                return (p >= self.reported).then_some(p);
            }
            at += s.count;
        }
        None
    }

    /// The items from position `pos` on, as a chunk numbered `seq` to send again.
    pub(crate) fn tail_from(self, pos: u32, seq: u64) -> Option<Chunk> {
        let (first_seg, off) = self.locate(pos)?;
        let mut rest = Chunk::new(seq);
        rest.flush_each = self.flush_each;
        rest.estimate = None;
        for (i, s) in self.segments.into_iter().enumerate().skip(first_seg) {
            if i == first_seg && off > 0 {
                if let Some(at) = offset_of(&s.bytes, s.stride, off as usize) {
                    rest.push(Segment {
                        job: s.job,
                        first: s.first + u64::from(off),
                        count: s.count - off,
                        stride: s.stride,
                        bytes: s.bytes[at..].to_vec(),
                    });
                }
            } else {
                rest.push(s);
            }
        }
        (rest.total > 0).then_some(rest)
    }

    /// The chunk without the items of `stops` (by call address and index), which end
    /// cancelled now; `None` when nothing is left. For a chunk no worker has reported on (one
    /// to send again).
    pub(crate) fn without_stopped(self, stops: &[(usize, u64)]) -> Option<Chunk> {
        if stops.is_empty() {
            return Some(self);
        }
        let mut out = Chunk::new(self.seq);
        out.flush_each = self.flush_each;
        out.estimate = self.estimate;
        for s in self.segments {
            let call = Arc::as_ptr(&s.job) as *const () as usize;
            let end = s.first + u64::from(s.count);
            let mut skip: Vec<u64> = stops
                .iter()
                .filter(|(j, i)| *j == call && (s.first..end).contains(i))
                .map(|(_, i)| *i)
                .collect();
            if skip.is_empty() {
                out.push(s);
                continue;
            }
            skip.sort_unstable();
            for &i in &skip {
                s.job.sink.fail(i, 1, &TaskError::cancelled());
            }
            let job = s.job;
            let piece = Piece {
                first: s.first,
                count: s.count,
                stride: s.stride,
                bytes: s.bytes,
            };
            for p in piece.without(&skip) {
                out.push(Segment::new(Arc::clone(&job), p));
            }
        }
        (out.total > 0).then_some(out)
    }

    pub(crate) fn push(&mut self, s: Segment) {
        self.total += s.count;
        self.segments.push(s);
    }

    /// Ends every unreported item with `error`.
    pub(crate) fn fail_unreported(&self, error: &TaskError) {
        let (mut seg, mut off) = (self.seg, self.seg_off);
        while let Some(s) = self.segments.get(seg) {
            let n = s.count - off;
            if n > 0 {
                s.job
                    .sink
                    .fail(s.first + u64::from(off), u64::from(n), error);
            }
            seg += 1;
            off = 0;
        }
    }
}

/// Why the supervisor killed a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KillReason {
    /// The item at `(chunk seq, position)` ran past its limit.
    Timeout { seq: u64, at: u32 },
    /// A caller stopped item `index` of this job.
    Stop { job: usize, index: u64 },
    /// `terminate_workers` / `kill_workers` / `terminate()`.
    Terminate,
}
