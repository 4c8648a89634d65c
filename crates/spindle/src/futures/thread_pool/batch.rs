//! Batching for [`ThreadPoolExecutor::map`](super::ThreadPoolExecutor::map).
//!
//! The caller's thread cuts the input iterator into chunks and submits each chunk as one
//! task; the task returns the chunk's results, and [`Map`] reassembles them in order.
//!
//! Chunk size is adaptive. The first chunks hold one item each (so that slow items are spread
//! over the workers from the start); each finished chunk reports how long it took, and the
//! next chunks are sized to take about [`TARGET`] on a worker, growing at most sixteenfold
//! per report and capped so that a chunk's inputs stay around a megabyte. Only
//! [`CHUNKS_PER_WORKER`] chunks per worker are in flight at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Pool, Task};
use crate::futures::map::{Chunk, Feed, Map, Part};
use crate::futures::{promise, Promise};
use crate::panic::catch;
use crate::{Result, TaskError};

/// How long one chunk should keep a worker busy.
const TARGET: Duration = Duration::from_micros(50);
/// The most items in one chunk.
const MAX_ITEMS: usize = 16 * 1024;
/// About how many bytes of inputs one chunk may hold.
const MAX_BYTES: usize = 1 << 20;
/// How many chunks per worker are kept in flight.
const CHUNKS_PER_WORKER: usize = 3;

/// Starts a batched map of `f` over `iter` on `pool`.
pub(super) fn map<F, A, R, I>(
    pool: &Arc<Pool>,
    f: F,
    iter: I,
    until: Option<Instant>,
) -> Result<Map<R>>
where
    F: Fn(A) -> R + Send + Sync + 'static,
    A: Send + 'static,
    R: Send + 'static,
    I: Iterator<Item = A> + Send + 'static,
{
    let max = (MAX_BYTES / std::mem::size_of::<A>().max(1)).clamp(1, MAX_ITEMS);
    let mut feed = Batcher {
        iter,
        f: Arc::new(f),
        pool: Arc::clone(pool),
        size: 1,
        max,
        window: pool.max_workers().saturating_mul(CHUNKS_PER_WORKER),
        exhausted: false,
    };
    // The first chunk is submitted here so that a closed executor is reported by `map`.
    let first = match feed.next_part() {
        Some(Part::Failed(e)) => return Err(e),
        first => first,
    };
    Ok(Map::fed(Box::new(feed), first, until))
}

/// The [`Feed`] of a batched map: owns the inputs, cuts and submits chunks.
struct Batcher<I, F> {
    iter: I,
    f: Arc<F>,
    pool: Arc<Pool>,
    /// Items in the next chunk.
    size: usize,
    max: usize,
    window: usize,
    exhausted: bool,
}

impl<I, F, A, R> Feed<R> for Batcher<I, F>
where
    I: Iterator<Item = A> + Send,
    F: Fn(A) -> R + Send + Sync + 'static,
    A: Send + 'static,
    R: Send + 'static,
{
    fn next_part(&mut self) -> Option<Part<R>> {
        if self.exhausted {
            return None;
        }
        let capacity = self
            .iter
            .size_hint()
            .1
            .map_or(self.size, |n| n.min(self.size));
        let mut inputs = Vec::with_capacity(capacity);
        inputs.extend(self.iter.by_ref().take(self.size));
        // A short chunk means the iterator returned `None`: never call it again.
        self.exhausted = inputs.len() < self.size;
        if inputs.is_empty() {
            return None;
        }
        let len = inputs.len();
        let (promise, future) = promise();
        let job = Box::new(ChunkTask {
            f: Arc::clone(&self.f),
            inputs,
            promise,
        });
        Some(match self.pool.execute(job) {
            Ok(()) => Part::Chunk(future, len),
            Err(e) => Part::Failed(e),
        })
    }

    fn observe(&mut self, len: usize, elapsed: Duration) {
        let nanos = elapsed.as_nanos().max(1);
        let ideal = (TARGET.as_nanos() * len as u128 / nanos).min(usize::MAX as u128) as usize;
        let ceiling = self.size.max(len).saturating_mul(16).min(self.max);
        self.size = ideal.clamp(1, ceiling);
    }

    fn window(&self) -> usize {
        self.window
    }
}

/// One chunk of a map: `f` over `inputs`, each call's panic caught on its own.
struct ChunkTask<F, A, R> {
    f: Arc<F>,
    inputs: Vec<A>,
    promise: Promise<Chunk<R>>,
}

impl<F, A, R> Task for ChunkTask<F, A, R>
where
    F: Fn(A) -> R + Send + Sync,
    A: Send,
    R: Send,
{
    fn run(self: Box<Self>) {
        let ChunkTask { f, inputs, promise } = *self;
        if !promise.set_running_or_notify_cancel() {
            return;
        }
        let start = Instant::now();
        let mut values = Vec::with_capacity(inputs.len());
        let mut errors = Vec::new();
        let mut items = inputs.into_iter();
        // One `catch` for the whole chunk; after a panic, go on with the next item.
        while let Err(report) = catch(|| {
            for a in items.by_ref() {
                values.push(f(a));
            }
        }) {
            errors.push((values.len() + errors.len(), TaskError::panicked(report)));
        }
        let _ = promise.set_result(Chunk {
            values,
            errors,
            elapsed: start.elapsed(),
        });
    }

    fn cancel(self: Box<Self>) {
        self.promise.cancel();
    }

    fn fail(self: Box<Self>, error: TaskError) {
        let _ = self.promise.set_exception(error);
    }
}
