//! [`Map`]: the ordered, lazy iterator of `Executor.map`.
//!
//! The results arrive as *parts*, in input order: a future of one item (what the default
//! `Executor::map` submits), or a future of a [`Chunk`] of items (what a batching executor
//! submits). A [`Feed`] supplies new parts as old ones are consumed, so that only a bounded
//! window of work is in flight and the input iterator is consumed on the caller's thread.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Future;
use crate::{Error, Result, TaskError};

/// The results of one chunk of a batched map: the values of the items that succeeded, and the
/// (position, error) of those that failed, both in input order.
#[derive(Debug)]
pub(crate) struct Chunk<R> {
    pub(crate) values: Vec<R>,
    pub(crate) errors: Vec<(usize, TaskError)>,
    /// How long the worker took for the whole chunk (to size the next ones).
    pub(crate) elapsed: Duration,
}

/// One unit of in-flight work of a [`Map`].
pub(crate) enum Part<R> {
    /// One item.
    One(Future<R>),
    /// `len` items computed as one task, which the caller may run itself if no worker has
    /// started it.
    Chunk(Future<Chunk<R>>, usize, Option<Here>),
    /// Submitting the next part failed: yield this error, then end.
    Failed(Error),
}

/// Where the thread iterating a [`Map`] can find a chunk it needs next that no worker has
/// started yet, to run it itself instead of sleeping until a worker gets to it.
pub(crate) trait Inline: Send + Sync {
    /// Runs chunk number `seq` here unless someone has already claimed it (a chunk runs at
    /// most once); returns whether it ran here.
    fn run_here(&self, seq: u64) -> bool;
    /// Offers the workers the chunks kept for the caller, which is about to sleep (so that
    /// no chunk waits for a caller that waits for another chunk).
    fn release(self: Arc<Self>);
}

/// A chunk's number and where it waits (see [`Inline`]).
pub(crate) struct Here {
    pub(crate) queue: Arc<dyn Inline>,
    pub(crate) seq: u64,
}

/// What [`Feed::run_slice`] did.
pub(crate) enum Slice<R> {
    /// Ran the next items here: their results, in order.
    Ran(Chunk<R>),
    /// The items are not tiny, or no seat is free: submit a part instead.
    NotHere,
    /// The input is exhausted.
    Exhausted,
    /// The executor was shut down: yield this error, then end.
    Failed(Error),
}

/// A source of parts: it owns the input iterator and submits to its executor.
pub(crate) trait Feed<R>: Send {
    /// Submits the next part, or returns `None` when the input is exhausted.
    fn next_part(&mut self) -> Option<Part<R>>;
    /// Whether the items are so quick that the caller computes them itself, a slice at a
    /// time, straight from the input ([`run_slice`](Feed::run_slice)).
    fn local(&self) -> bool;
    /// Computes the next slice of items on the calling thread, reading them from the input
    /// as they are computed (no input buffer, no task, no future), if the items are tiny and
    /// the caller can sit in one of the executor's seats.
    fn run_slice(&mut self) -> Slice<R>;
    /// A chunk of `len` items took `elapsed`, on a worker or (`here`) on the caller's thread.
    fn observe(&mut self, len: usize, elapsed: Duration, here: bool);
    /// The emptied buffer of a chunk's values, to reuse.
    fn recycle(&mut self, values: Vec<R>);
    /// How many parts to keep in flight.
    fn window(&self) -> usize;
    /// Bounds on the number of inputs not yet submitted.
    fn size_hint(&self) -> (usize, Option<usize>);
}

/// The results of `Executor::map`, in the order of the inputs (Python's `Executor.map`
/// generator).
///
/// Each item is `Ok(value)` or the item's own error (a panic in that call becomes
/// `Err(Error::Task(..))` and the others go on).
///
/// * [`ThreadPoolExecutor::map`](super::ThreadPoolExecutor::map) consumes the inputs lazily,
///   on the thread that iterates, a few chunks per worker ahead of it; if the executor shuts
///   down before every input was submitted, one `Err(Error::Shutdown)` takes the place of the
///   rest and the iterator ends. The default [`Executor::map`](super::Executor::map)
///   submits everything at once, as Python does.
/// * With a timeout (`map_timeout`, counted from the call), a result not ready by the
///   deadline yields `Err(Error::Timeout)` once, the work still queued is cancelled, and the
///   iterator ends.
/// * Dropping a `Map` cancels the work still queued (running tasks finish, unobserved).
///
/// ```
/// use spindle::futures::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::new()?;
/// let squares: Vec<u64> = pool.map(|x: u64| x * x, 1..=5)?.collect::<Result<_, _>>()?;
/// assert_eq!(squares, [1, 4, 9, 16, 25]);
/// # Ok::<(), spindle::Error>(())
/// ```
pub struct Map<R> {
    parts: VecDeque<Part<R>>,
    /// How many items the parts in `parts` will yield.
    queued: usize,
    /// The values of the current chunk when none of its items failed: the hot path of
    /// `next` is this one `vec::IntoIter` (one pointer compared and moved on).
    fast: std::vec::IntoIter<R>,
    /// The current chunk when some of its items failed (or all: a failed part).
    current: Option<ChunkIter<R>>,
    feed: Option<Box<dyn Feed<R>>>,
    until: Option<Instant>,
    finished: bool,
}

impl<R> Map<R> {
    /// A map fed lazily by `feed`, after the part `first` it already gave; the first window
    /// of parts is submitted at once.
    pub(crate) fn fed(
        feed: Box<dyn Feed<R>>,
        first: Option<Part<R>>,
        until: Option<Instant>,
    ) -> Self {
        let mut map = Map::from_parts(VecDeque::new(), until);
        if let Some(first) = first {
            map.push(first);
            map.feed = Some(feed);
            map.refill();
        }
        map
    }

    /// A map over futures already submitted, one per item.
    pub(crate) fn from_futures(fs: Vec<Future<R>>, until: Option<Instant>) -> Self {
        Map::from_parts(fs.into_iter().map(Part::One).collect(), until)
    }

    fn from_parts(parts: VecDeque<Part<R>>, until: Option<Instant>) -> Self {
        let queued = parts.len();
        Map {
            parts,
            queued,
            fast: Vec::new().into_iter(),
            current: None,
            feed: None,
            until,
            finished: false,
        }
    }

    fn push(&mut self, part: Part<R>) {
        self.queued += part.len();
        self.parts.push_back(part);
    }

    /// Tops the parts in flight up to the feed's window (none while the caller computes the
    /// items itself).
    fn refill(&mut self) {
        while let Some(feed) = &mut self.feed {
            if feed.local() || self.parts.len() >= feed.window().max(1) {
                return;
            }
            match feed.next_part() {
                Some(part) => {
                    if matches!(part, Part::Failed(_)) {
                        self.feed = None;
                    }
                    self.push(part);
                }
                None => self.feed = None,
            }
        }
    }

    /// Stops everything: cancels the parts still queued, drops the input.
    fn stop(&mut self) {
        self.finished = true;
        self.feed = None;
        self.current = None;
        self.queued = 0;
        self.fast = Vec::new().into_iter();
        for part in self.parts.drain(..) {
            part.cancel();
        }
    }

    /// Waits for `part` until the deadline; on timeout, stops the map.
    fn ready(&mut self, part: &Part<R>) -> bool {
        if part.wait_deadline(self.until) {
            return true;
        }
        part.cancel();
        self.stop();
        false
    }
}

impl<R> Part<R> {
    /// How many items this part yields.
    fn len(&self) -> usize {
        match self {
            Part::Chunk(_, len, _) => *len,
            Part::One(_) | Part::Failed(_) => 1,
        }
    }

    fn wait_deadline(&self, until: Option<Instant>) -> bool {
        match self {
            Part::One(f) => f.shared().wait_deadline(until),
            Part::Chunk(f, _, _) => f.shared().wait_deadline(until),
            Part::Failed(_) => true,
        }
    }

    fn cancel(&self) {
        match self {
            Part::One(f) => {
                f.cancel();
            }
            Part::Chunk(f, _, _) => {
                f.cancel();
            }
            Part::Failed(_) => {}
        }
    }
}

impl<R> Iterator for Map<R> {
    type Item = Result<R>;

    #[inline]
    fn next(&mut self) -> Option<Result<R>> {
        match self.fast.next() {
            Some(value) => Some(Ok(value)),
            None => self.next_slow(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let current = self.fast.len() + self.current.as_ref().map_or(0, ChunkIter::remaining);
        let sure = current + self.queued;
        // A timeout may end the map at any point.
        let lower = if self.until.is_some() {
            current.min(1)
        } else {
            sure
        };
        match &self.feed {
            None => (lower, Some(sure)),
            Some(feed) => (lower, feed.size_hint().1.and_then(|n| n.checked_add(sure))),
        }
    }
}

impl<R> Map<R> {
    /// The slow path of `next`: the fast values are used up; a chunk with failed items, or
    /// the next part.
    #[inline(never)]
    fn next_slow(&mut self) -> Option<Result<R>> {
        if let Some(cur) = &mut self.current {
            if let Some(item) = cur.next() {
                return Some(item);
            }
        }
        self.next_part()
    }

    /// Makes `chunk` the current one and yields its first item.
    fn install(&mut self, chunk: Chunk<R>) -> Option<Result<R>> {
        if chunk.errors.is_empty() {
            self.fast = chunk.values.into_iter();
            self.fast.next().map(Ok)
        } else {
            self.current.insert(ChunkIter::new(chunk)).next()
        }
    }

    /// Gives the emptied buffers of the chunk just used up back to the feed.
    fn recycle(&mut self) {
        let fast = std::mem::replace(&mut self.fast, Vec::new().into_iter());
        let done = self.current.take().and_then(ChunkIter::into_buffer);
        if let Some(feed) = &mut self.feed {
            for buffer in [into_buffer(fast), done].into_iter().flatten() {
                feed.recycle(buffer);
            }
        }
    }

    /// The next part's first item (the current chunk is used up).
    fn next_part(&mut self) -> Option<Result<R>> {
        loop {
            self.recycle();
            if self.finished {
                return None;
            }
            if self.parts.is_empty() {
                if let Some(item) = self.slice() {
                    return item;
                }
            }
            self.refill();
            let Some(part) = self.parts.pop_front() else {
                self.finished = true;
                return None;
            };
            self.queued -= part.len();
            let here = self.help(&part);
            if !self.ready(&part) {
                return Some(Err(Error::Timeout));
            }
            match part {
                Part::One(mut f) => return Some(f.result_timeout(Duration::ZERO)),
                Part::Chunk(mut f, len, _) => {
                    let first = match f.result_timeout(Duration::ZERO) {
                        Ok(chunk) => {
                            if let Some(feed) = &mut self.feed {
                                feed.observe(len, chunk.elapsed, here);
                            }
                            self.install(chunk)
                        }
                        Err(e) => self.current.insert(ChunkIter::failed(e, len)).next(),
                    };
                    if first.is_some() {
                        return first;
                    }
                }
                Part::Failed(e) => {
                    self.stop();
                    return Some(Err(e));
                }
            }
        }
    }
}

impl<R> Map<R> {
    /// With no part in flight and tiny items: the next slice, computed here. `None` when the
    /// feed did not compute one (then a part is to be submitted, or the map is over);
    /// `Some(item)` is what `next` returns.
    fn slice(&mut self) -> Option<Option<Result<R>>> {
        let feed = self.feed.as_mut()?;
        if !feed.local() {
            return None;
        }
        match feed.run_slice() {
            Slice::Ran(chunk) => {
                feed.observe(chunk.values.len() + chunk.errors.len(), chunk.elapsed, true);
                Some(self.install(chunk))
            }
            Slice::NotHere => {
                // No seat free now: this slice goes to the workers as a part.
                if let Some(part) = feed.next_part() {
                    if matches!(part, Part::Failed(_)) {
                        self.feed = None;
                    }
                    self.push(part);
                }
                None
            }
            Slice::Exhausted => {
                self.feed = None;
                None
            }
            Slice::Failed(e) => {
                self.stop();
                Some(Some(Err(e)))
            }
        }
    }

    /// Before waiting for `front`, the part needed next: runs it here if no worker has
    /// started it. (Only the part needed next: running a later one could make the caller
    /// wait on an item that waits for the caller.)
    /// Returns whether it ran here.
    fn help(&mut self, front: &Part<R>) -> bool {
        match front {
            Part::Chunk(f, _, Some(here)) if !f.shared().is_final() => {
                let ran = here.queue.run_here(here.seq);
                if !ran {
                    Arc::clone(&here.queue).release();
                }
                ran
            }
            _ => false,
        }
    }
}

impl<R> Drop for Map<R> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<R> fmt::Debug for Map<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("in_flight", &self.parts.len())
            .field("finished", &self.finished)
            .finish()
    }
}

/// The items of one finished chunk, in order.
///
/// The hot path is one counter: `run` values can be yielded before the next failed item (or
/// the end of the chunk).
struct ChunkIter<R> {
    /// Values to yield before the next error.
    run: usize,
    /// The values not yielded yet.
    values: std::vec::IntoIter<R>,
    /// The next failed item and its position, then the ones after it.
    next_error: Option<(usize, TaskError)>,
    errors: std::vec::IntoIter<(usize, TaskError)>,
    /// The whole chunk failed: yield this error for this many more items.
    whole: Option<(Error, usize)>,
}

impl<R> ChunkIter<R> {
    fn new(chunk: Chunk<R>) -> Self {
        let mut errors = chunk.errors.into_iter();
        let next_error = errors.next();
        let run = next_error
            .as_ref()
            .map_or(chunk.values.len(), |(at, _)| *at);
        ChunkIter {
            run,
            values: chunk.values.into_iter(),
            next_error,
            errors,
            whole: None,
        }
    }

    fn failed(e: Error, len: usize) -> Self {
        ChunkIter {
            run: 0,
            values: Vec::new().into_iter(),
            next_error: None,
            errors: Vec::new().into_iter(),
            whole: Some((e, len)),
        }
    }

    fn remaining(&self) -> usize {
        match &self.whole {
            Some((_, left)) => *left,
            None => self.values.len() + usize::from(self.next_error.is_some()) + self.errors.len(),
        }
    }

    /// The emptied buffer of the values, once they have all been yielded.
    fn into_buffer(self) -> Option<Vec<R>> {
        into_buffer(self.values)
    }

    #[inline]
    fn next(&mut self) -> Option<Result<R>> {
        if self.run > 0 {
            self.run -= 1;
            return self.values.next().map(Ok);
        }
        self.next_slow()
    }

    /// A failed item, or the end.
    fn next_slow(&mut self) -> Option<Result<R>> {
        if let Some((err, left)) = &mut self.whole {
            if *left == 0 {
                return None;
            }
            *left -= 1;
            return Some(Err(copy_error(err)));
        }
        let (at, error) = self.next_error.take()?;
        self.next_error = self.errors.next();
        self.run = match &self.next_error {
            Some((next, _)) => next - at - 1,
            None => self.values.len(),
        };
        Some(Err(Error::Task(error)))
    }
}

/// The emptied buffer of `values`, once they have all been yielded. (Collecting an exhausted
/// `vec::IntoIter` through an adapter reuses its allocation in place: a standard-library
/// optimisation, not a promise; without it this is a new empty `Vec`, which is not kept.)
fn into_buffer<R>(values: std::vec::IntoIter<R>) -> Option<Vec<R>> {
    if values.len() > 0 {
        return None;
    }
    let buffer: Vec<R> = values.filter(|_| false).collect();
    (buffer.capacity() > 0).then_some(buffer)
}

/// A copy of the error that a whole failed chunk repeats for each of its items.
fn copy_error(e: &Error) -> Error {
    match e {
        Error::Task(t) => Error::Task(t.clone()),
        Error::Timeout => Error::Timeout,
        Error::Shutdown => Error::Shutdown,
        other => Error::Task(TaskError::failed(other.to_string())),
    }
}
