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

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Pool, Task};
use crate::futures::map::{Chunk, Feed, Map, Part};
use crate::futures::{promise, Promise};
use crate::latch::lock;
use crate::panic::catch;
use crate::{Result, TaskError};

/// How long one chunk should keep a worker busy.
const TARGET: Duration = Duration::from_micros(50);
/// The most items in one chunk.
const MAX_ITEMS: usize = 16384;
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
    let mut feed = Batcher {
        iter,
        f: Arc::new(f),
        pool: Arc::clone(pool),
        sizer: ChunkSizer::new(std::mem::size_of::<A>()),
        window: pool.max_workers().saturating_mul(CHUNKS_PER_WORKER),
        exhausted: false,
        spare_inputs: Arc::new(Mutex::new(Vec::new())),
    };
    // The first chunk is submitted here so that a closed executor is reported by `map`.
    let first = match feed.next_part() {
        Some(Part::Failed(e)) => return Err(e),
        first => first,
    };
    Ok(Map::fed(Box::new(feed), first, until))
}

/// The [`Feed`] of a batched map: owns the inputs, cuts and submits chunks.
struct Batcher<I, F, A> {
    iter: I,
    f: Arc<F>,
    pool: Arc<Pool>,
    sizer: ChunkSizer,
    window: usize,
    exhausted: bool,
    /// Emptied input buffers, given back by the chunk tasks.
    spare_inputs: Arc<Mutex<Vec<Vec<A>>>>,
}

impl<I, F, A, R> Feed<R> for Batcher<I, F, A>
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
        let mut inputs = lock(&self.spare_inputs).pop().unwrap_or_default();
        let size = self.sizer.size;
        inputs.reserve(self.iter.size_hint().1.map_or(size, |n| n.min(size)));
        inputs.extend(self.iter.by_ref().take(size));
        // A short chunk means the iterator returned `None`: never call it again.
        self.exhausted = inputs.len() < size;
        if inputs.is_empty() {
            return None;
        }
        let len = inputs.len();
        let (promise, future) = promise();
        let job = Box::new(ChunkTask {
            f: Arc::clone(&self.f),
            inputs,
            spare_inputs: Arc::clone(&self.spare_inputs),
            keep: self.window + 1,
            promise,
        });
        Some(match self.pool.execute(job) {
            Ok(()) => Part::Chunk(future, len),
            Err(e) => Part::Failed(e),
        })
    }

    fn observe(&mut self, len: usize, elapsed: Duration) {
        self.sizer.observe(len, elapsed);
    }

    fn window(&self) -> usize {
        self.window
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.exhausted {
            (0, Some(0))
        } else {
            self.iter.size_hint()
        }
    }
}

/// The adaptive chunk size: one item at first, then about [`TARGET`] of work per chunk.
#[derive(Debug)]
struct ChunkSizer {
    /// Items in the next chunk.
    size: usize,
    /// The most items in a chunk, for inputs of this size.
    max: usize,
}

impl ChunkSizer {
    fn new(input_bytes: usize) -> Self {
        ChunkSizer {
            size: 1,
            max: (MAX_BYTES / input_bytes.max(1)).clamp(1, MAX_ITEMS),
        }
    }

    /// A chunk of `len` items took `elapsed`: aim the next ones at [`TARGET`], growing at
    /// most sixteenfold at a time (a tiny chunk's timing is mostly overhead, so it
    /// underestimates the right size, never overestimates it).
    fn observe(&mut self, len: usize, elapsed: Duration) {
        let nanos = elapsed.as_nanos().max(1);
        let ideal = TARGET.as_nanos().saturating_mul(len as u128) / nanos;
        let ideal = usize::try_from(ideal).unwrap_or(usize::MAX);
        let ceiling = self.size.max(len).saturating_mul(16).min(self.max);
        self.size = ideal.clamp(1, ceiling);
    }
}

/// One chunk of a map: `f` over `inputs`, each call's panic caught on its own.
struct ChunkTask<F, A, R> {
    f: Arc<F>,
    inputs: Vec<A>,
    /// Where the emptied `inputs` go back to, if fewer than `keep` are there.
    spare_inputs: Arc<Mutex<Vec<Vec<A>>>>,
    keep: usize,
    promise: Promise<Chunk<R>>,
}

impl<F, A, R> Task for ChunkTask<F, A, R>
where
    F: Fn(A) -> R + Send + Sync,
    A: Send,
    R: Send,
{
    fn run(self: Box<Self>) {
        let ChunkTask {
            f,
            mut inputs,
            spare_inputs,
            keep,
            promise,
        } = *self;
        if !promise.set_running_or_notify_cancel() {
            return;
        }
        let start = Instant::now();
        let mut output = Vec::with_capacity(inputs.len());
        let mut errors = Vec::new();
        let mut items = inputs.drain(..);
        // One `catch` for the whole chunk; after a panic, go on with the next item.
        // (`extend` over a `Drain` keeps the loop in registers and leaves both consistent if
        // `f` unwinds.)
        while let Err(report) = catch(|| output.extend(items.by_ref().map(|a| f(a)))) {
            errors.push((output.len() + errors.len(), TaskError::panicked(report)));
        }
        drop(items);
        let elapsed = start.elapsed();
        {
            let mut spare = lock(&spare_inputs);
            if spare.len() < keep {
                spare.push(inputs);
            }
        }
        let _ = promise.set_result(Chunk {
            values: output,
            errors,
            elapsed,
        });
    }

    fn cancel(self: Box<Self>) {
        self.promise.cancel();
    }

    fn fail(self: Box<Self>, error: TaskError) {
        let _ = self.promise.set_exception(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_start_at_one_item_and_grow_while_items_are_quick() {
        let mut s = ChunkSizer::new(8);
        assert_eq!(s.size, 1);
        s.observe(1, Duration::from_nanos(100));
        assert_eq!(s.size, 16, "at most sixteenfold per report");
        for _ in 0..10 {
            let len = s.size;
            s.observe(len, Duration::from_nanos(len as u64));
        }
        assert_eq!(s.size, MAX_ITEMS);
    }

    #[test]
    fn slow_items_go_one_by_one() {
        let mut s = ChunkSizer::new(8);
        s.observe(1, Duration::from_millis(10));
        assert_eq!(s.size, 1);
        s.size = 1000;
        s.observe(1000, Duration::from_millis(100));
        assert_eq!(s.size, 1);
    }

    #[test]
    fn chunks_aim_at_the_target_duration() {
        let mut s = ChunkSizer::new(8);
        s.size = 1000;
        // 1000 items in 100 µs: 100 ns each, so 500 make the 50 µs target.
        s.observe(1000, Duration::from_micros(100));
        assert_eq!(s.size, 500);
    }

    #[test]
    fn big_inputs_make_smaller_chunks() {
        assert_eq!(ChunkSizer::new(1 << 16).max, 16);
        assert_eq!(ChunkSizer::new(1 << 30).max, 1);
        assert_eq!(ChunkSizer::new(0).max, MAX_ITEMS);
    }
}
