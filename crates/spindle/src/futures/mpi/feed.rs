//! The typed ends of the manager's byte segments: a submitted task's [`Promise`], a `map`
//! chunk's promise of a [`Chunk`], and the [`Feed`] that cuts a `map`'s input into chunks.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::manager::{Outcomes, Shared, Work};
use super::wire::ResultSegment;
use crate::error::TaskError;
use crate::futures::map::{Chunk, Feed, Part, Slice};
use crate::futures::{promise, Promise};
use crate::multiprocessing::pool::{arg_error, decode_one, encode_item, Sizer};

/// The outcome of one submitted task goes to its promise.
pub(super) struct One<R> {
    pub(super) promise: Promise<R>,
}

impl<R: DeserializeOwned + Send> Outcomes for One<R> {
    fn start(&self) -> bool {
        self.promise.set_running_or_notify_cancel()
    }

    fn cancelled(&self) -> bool {
        self.promise.cancelled()
    }

    fn deliver(self: Box<Self>, segment: ResultSegment<'_>) {
        let outcome = match decode_one::<R>(segment.outcomes) {
            Ok((outcome, [])) => outcome,
            Ok((_, rest)) => Err(unreadable(&format!("{} bytes after it", rest.len()))),
            Err(e) => Err(unreadable(&e)),
        };
        let _ = match outcome {
            Ok(v) => self.promise.set_result(v),
            Err(e) => self.promise.set_exception(e),
        };
    }

    fn fail(self: Box<Self>, error: TaskError) {
        if !(error.is_cancelled() && self.promise.cancel()) {
            let _ = self.promise.set_exception(error);
        }
    }
}

fn unreadable(e: &dyn std::fmt::Display) -> TaskError {
    TaskError::failed(format!("the result could not be read: {e}"))
}

/// The outcomes of one `map` chunk go to one promise of a [`Chunk`]: its values, and the
/// position and error of each item that failed.
pub(super) struct Many<R> {
    pub(super) promise: Promise<Chunk<R>>,
    /// The index of the chunk's first item in its call.
    pub(super) first: u64,
}

impl<R: DeserializeOwned + Send> Outcomes for Many<R> {
    fn start(&self) -> bool {
        self.promise.set_running_or_notify_cancel()
    }

    fn cancelled(&self) -> bool {
        self.promise.cancelled()
    }

    fn deliver(self: Box<Self>, segment: ResultSegment<'_>) {
        let count = segment.count as usize;
        let mut chunk = Chunk {
            values: Vec::with_capacity(count),
            errors: Vec::new(),
            elapsed: Duration::from_nanos(segment.elapsed_ns),
        };
        let mut rest = segment.outcomes;
        for i in 0..count {
            match decode_one::<R>(rest) {
                Ok((Ok(v), tail)) => {
                    chunk.values.push(v);
                    rest = tail;
                }
                Ok((Err(e), tail)) => {
                    chunk.errors.push((i, e.with_task(self.first + i as u64)));
                    rest = tail;
                }
                Err(e) => {
                    let err = unreadable(&e);
                    for j in i..count {
                        chunk
                            .errors
                            .push((j, err.clone().with_task(self.first + j as u64)));
                    }
                    break;
                }
            }
        }
        let _ = self.promise.set_result(chunk);
    }

    fn fail(self: Box<Self>, error: TaskError) {
        if !(error.is_cancelled() && self.promise.cancel()) {
            let _ = self.promise.set_exception(error);
        }
    }
}

/// Cuts a `map`'s (or `starmap`'s) input into chunks as [`Map`](crate::futures::Map) asks,
/// encoding each chunk's items on the caller's thread.
pub(super) struct MpiFeed<A, R, I> {
    pub(super) iter: I,
    pub(super) shared: Arc<Shared>,
    pub(super) entry: i64,
    pub(super) sizer: Sizer,
    pub(super) workers: usize,
    /// The user's bound on chunks in flight (`buffersize`), if any.
    pub(super) chunks_ahead: Option<usize>,
    pub(super) next: u64,
    /// An item whose argument did not encode, to hand out after the chunk cut before it.
    pub(super) stashed: Option<Part<R>>,
    pub(super) _a: PhantomData<fn(A)>,
}

/// Items in flight a `map` keeps at least (while chunks are small).
const MIN_ITEMS_AHEAD: usize = 16_384;
/// Parts in flight a `map` keeps at most.
const MAX_PARTS_AHEAD: usize = 4096;

impl<A, R, I> MpiFeed<A, R, I>
where
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
    I: Iterator<Item = A>,
{
    fn remaining(&self) -> Option<usize> {
        match self.iter.size_hint() {
            (lo, Some(hi)) if lo == hi => Some(lo),
            _ => None,
        }
    }
}

impl<A, R, I> Feed<R> for MpiFeed<A, R, I>
where
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
    I: Iterator<Item = A> + Send,
{
    fn next_part(&mut self) -> Option<Part<R>> {
        if let Some(part) = self.stashed.take() {
            return Some(part);
        }
        let n = self.sizer.next(self.remaining()).max(1);
        let mut items = Vec::with_capacity(n.min(1 << 16) * 4);
        let mut count = 0u32;
        let first = self.next;
        while (count as usize) < n {
            let Some(a) = self.iter.next() else {
                break;
            };
            if let Err(e) = encode_item(&a, &mut items) {
                let (p, fut) = promise::<R>();
                let _ = p.set_exception(arg_error::<A>(&e).with_task(first + u64::from(count)));
                self.stashed = Some(Part::One(fut));
                break;
            }
            count += 1;
        }
        if count == 0 {
            self.next += 1;
            return self.stashed.take();
        }
        self.next += u64::from(count) + u64::from(self.stashed.is_some());
        let (p, fut) = promise::<Chunk<R>>();
        let work = Work {
            entry: self.entry,
            count,
            items,
            sink: Box::new(Many { promise: p, first }),
        };
        if let Err(e) = self.shared.push(work) {
            self.stashed = None;
            return Some(Part::Failed(e));
        }
        Some(Part::Chunk(fut, count as usize, None))
    }

    fn local(&self) -> bool {
        // Items run on other ranks, never on the caller's thread.
        false
    }

    fn run_slice(&mut self) -> Slice<R> {
        Slice::NotHere
    }

    fn observe(&mut self, len: usize, elapsed: Duration, _here: bool) {
        self.sizer.observe(len, elapsed);
    }

    fn recycle(&mut self, _values: Vec<R>) {}

    fn window(&self) -> usize {
        match self.chunks_ahead {
            Some(n) => n.max(1),
            None => {
                let chunk = self.sizer.next(None).max(1);
                (4 * self.workers.max(1))
                    .max(MIN_ITEMS_AHEAD / chunk)
                    .min(MAX_PARTS_AHEAD)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}
