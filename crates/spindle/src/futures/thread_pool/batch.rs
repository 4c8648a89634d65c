//! Batching for [`ThreadPoolExecutor::map`](super::ThreadPoolExecutor::map).
//!
//! The caller's thread cuts the input iterator into chunks and submits each chunk as one
//! task; the task returns the chunk's results, and [`Map`] reassembles them in order.
//!
//! Chunk size is adaptive. The first chunks hold one item each (so that slow items are spread
//! over the workers from the start); each finished chunk reports how long it took, and the
//! next chunks are sized to take about [`TARGET`] on a worker, growing at most sixteenfold
//! per report and capped at [`MAX_ITEMS`] (and so that a chunk's inputs stay around a
//! megabyte). Only [`CHUNKS_PER_WORKER`] chunks per worker are in flight at a time.
//!
//! Without an initializer or a deadline, the chunks wait in the map's own
//! [`Pending`](super::pending::Pending) queue, where the caller can take the one it needs next
//! before a worker does (in a free seat only: see [`seats`](super::seats)). While the caller's
//! own timings show items under [`TINY_NANOS`] each, it makes no chunks at all: it computes
//! the items itself, [`SLICE_ITEMS`] at a time, straight from the input iterator (no input
//! buffer, no task, no future), since handing such items to another core costs more than
//! computing them (docs/decisions.md, D44: 1M squares through `map`, ~1.35 ns an item as
//! chunks run on the caller, ~0.8 ns as slices). The emptied buffers of inputs and of results
//! are reused, so steady state allocates nothing per chunk but the task and its future.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pending::{Pending, Pick};
use super::{Job, Pool, Task};
use crate::futures::map::{Chunk, Feed, Here, Inline, Map, Part, Slice};
use crate::futures::{promise, Promise};
use crate::panic::catch;
use crate::sync::{lock, Mutex};
use crate::{Result, TaskError};

/// How long one chunk should keep a worker busy.
const TARGET: Duration = Duration::from_micros(50);
/// The most items in one chunk: small enough that a chunk's inputs and results stay in a
/// core's near caches (4096 beat 2048, 8192 and 16384 on the `map` scoreboard).
const MAX_ITEMS: usize = 4096;
/// About how many bytes of inputs one chunk may hold.
const MAX_BYTES: usize = 1 << 20;
/// How many chunks per worker are kept in flight.
const CHUNKS_PER_WORKER: usize = 3;
/// Items that take less than this many nanoseconds each on the caller's thread are not
/// worth sending to a worker: handing an item to another core and its result back (two
/// cache-line transfers between cores, shared by the items of the line) costs about as much,
/// and the caller, which iterates the results, is the bottleneck.
const TINY_NANOS: u128 = 2;
/// The fewest items in a chunk whose timing says whether its items are [tiny](TINY_NANOS).
const MIN_SAMPLE: usize = 64;
/// While items are not tiny, one chunk in this many is kept for the caller to run and time.
const PROBE_EVERY: u64 = 8;
/// How many tiny items the caller computes at a time, straight from the input: enough that
/// the slice's fixed costs (a seat, two clock reads, a buffer) vanish, few enough that the
/// results are still in the core's near cache when the caller yields them.
const SLICE_ITEMS: usize = 4096;

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
        iter: Some(iter),
        f: Arc::new(f),
        pool: Arc::clone(pool),
        sizer: ChunkSizer::new(std::mem::size_of::<A>()),
        window: pool.max_workers().saturating_mul(CHUNKS_PER_WORKER),
        exhausted: false,
        pending: (pool.initializer.is_none() && until.is_none())
            .then(|| Arc::new(Pending::new(Arc::clone(pool)))),
        next_seq: 0,
        local: false,
        probed: false,
        spare_inputs: Arc::new(Mutex::new(Vec::new())),
        spare_outputs: Arc::new(Mutex::new(Vec::new())),
    };
    // The first chunk is submitted here so that a closed executor is reported by `map`.
    let first = match feed.next_part() {
        Some(Part::Failed(e)) => return Err(e),
        first => first,
    };
    Ok(Map::fed(Box::new(feed), first, until))
}

/// The [`Feed`] of a batched map: owns the inputs, cuts and submits chunks.
struct Batcher<I, F, A, R> {
    /// The input (`None` only while a slice is being computed, or after a panic that could
    /// not give it back).
    iter: Option<I>,
    f: Arc<F>,
    pool: Arc<Pool>,
    sizer: ChunkSizer,
    window: usize,
    exhausted: bool,
    /// Where the chunks wait for a worker or the caller, when the caller may run them
    /// itself: without an initializer (the caller never ran it) and without a deadline (a
    /// chunk run here could overrun it).
    pending: Option<Arc<Pending>>,
    /// The number of the next chunk.
    next_seq: u64,
    /// The items are so quick that the caller runs every chunk itself (see [`TINY_NANOS`]).
    local: bool,
    /// Whether a chunk was kept for the caller to time yet.
    probed: bool,
    /// Emptied input buffers, given back by the chunk tasks.
    spare_inputs: Arc<Mutex<Vec<Vec<A>>>>,
    /// Emptied output buffers, given back by the [`Map`]: reusing them saves the page
    /// faults (and, for big chunks, the `mmap` and `munmap`) of fresh ones.
    spare_outputs: Arc<Mutex<Vec<Vec<R>>>>,
}

impl<I, F, A, R> Feed<R> for Batcher<I, F, A, R>
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
        let Some(iter) = &mut self.iter else {
            return None;
        };
        inputs.reserve(iter.size_hint().1.map_or(size, |n| n.min(size)));
        inputs.extend(iter.by_ref().take(size));
        // A short chunk means the iterator returned `None`: never call it again.
        self.exhausted = inputs.len() < size;
        if inputs.is_empty() {
            return None;
        }
        let len = inputs.len();
        let (promise, future) = promise();
        let job: Job = Box::new(ChunkTask {
            f: Arc::clone(&self.f),
            inputs,
            spare_inputs: Arc::clone(&self.spare_inputs),
            spare_outputs: Arc::clone(&self.spare_outputs),
            keep: self.window + 1,
            promise,
        });
        let Some(pending) = &self.pending else {
            // (The caller cannot run chunks itself: every chunk goes to the workers.)
            return Some(match self.pool.execute(job) {
                Ok(()) => Part::Chunk(future, len, None),
                Err(e) => Part::Failed(e),
            });
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let here = Here {
            queue: Arc::clone(pending) as Arc<dyn Inline>,
            seq,
        };
        // Items too quick to be worth sending to another core run on the caller's thread,
        // but the first chunk big enough to time, and then one in `PROBE_EVERY`, is kept for
        // it to time anyway (while they are not).
        let probe = len >= MIN_SAMPLE && (!self.probed || seq % PROBE_EVERY == 0);
        self.probed |= probe;
        let keep = self.local || probe;
        if keep {
            if let Err(e) = self.pool.check_open() {
                return Some(Part::Failed(e));
            }
            pending.keep(seq, job);
            return Some(Part::Chunk(future, len, Some(here)));
        }
        pending.push(seq, job);
        Some(
            match self.pool.execute(Box::new(Pick(Arc::clone(pending)))) {
                Ok(()) => Part::Chunk(future, len, Some(here)),
                // Not queued: take the chunk back, unless the pick of an earlier chunk (which
                // the caller ran itself) has started it, and then it is as good as queued.
                Err(e) => match pending.remove(seq) {
                    Some(_) => Part::Failed(e),
                    None => Part::Chunk(future, len, Some(here)),
                },
            },
        )
    }

    fn local(&self) -> bool {
        self.local
    }

    fn run_slice(&mut self) -> Slice<R> {
        if !self.local {
            return Slice::NotHere;
        }
        if self.exhausted {
            return Slice::Exhausted;
        }
        if !self.pool.is_open() {
            if let Err(e) = self.pool.check_open() {
                return Slice::Failed(e);
            }
        }
        // In a seat that is free now, never an extra one (see `seats`).
        let Some(_seat) = self.pool.seats.try_seat() else {
            return Slice::NotHere;
        };
        let size = SLICE_ITEMS;
        let mut values = lock(&self.spare_outputs).pop().unwrap_or_default();
        values.reserve(size);
        let mut errors = Vec::new();
        let start = Instant::now();
        compute(&mut self.iter, &*self.f, size, &mut values, &mut errors);
        let elapsed = start.elapsed();
        let len = values.len() + errors.len();
        // A short slice means the iterator returned `None`: never call it again.
        self.exhausted = len < size;
        if len == 0 {
            return Slice::Exhausted;
        }
        Slice::Ran(Chunk {
            values,
            errors,
            elapsed,
        })
    }

    fn observe(&mut self, len: usize, elapsed: Duration, here: bool) {
        self.sizer.observe(len, elapsed);
        // Only the caller's own timings tell the cost of an item: a worker's include
        // fetching the inputs from the caller's core.
        if here && len >= MIN_SAMPLE {
            self.local = elapsed.as_nanos() < TINY_NANOS * len as u128;
        }
    }

    fn recycle(&mut self, values: Vec<R>) {
        let mut spare = lock(&self.spare_outputs);
        if spare.len() <= self.window {
            spare.push(values);
        }
    }

    fn window(&self) -> usize {
        self.window
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.exhausted {
            (0, Some(0))
        } else {
            self.iter.as_ref().map_or((0, Some(0)), Iterator::size_hint)
        }
    }
}

/// Computes `f` over the next `size` items of `*iter` into `values`, on this thread, with the
/// (position, error) of the items that panicked in `errors`; stops early when the input ends.
///
/// The loop works on the iterator and the values *moved into* the closure that `catch` runs,
/// and a guard moves them back out when it ends, normally or by a panic: the compiler then
/// keeps the loop's state in registers instead of writing the input's position and the
/// values' length back through a reference after every item (measured: ~1.0 ns an item the
/// first way, ~0.5 ns this way, for squares of a `u64` range).
fn compute<I, F, A, R>(
    iter: &mut Option<I>,
    f: &F,
    size: usize,
    values: &mut Vec<R>,
    errors: &mut Vec<(usize, TaskError)>,
) where
    I: Iterator<Item = A>,
    F: Fn(A) -> R,
{
    /// The state of the loop, away from its home while the loop runs.
    struct Away<'a, I, R> {
        iter: Option<I>,
        values: Vec<R>,
        home: (&'a mut Option<I>, &'a mut Vec<R>),
    }
    impl<I, R> Drop for Away<'_, I, R> {
        fn drop(&mut self) {
            *self.home.0 = self.iter.take();
            *self.home.1 = std::mem::take(&mut self.values);
        }
    }
    loop {
        let done = values.len() + errors.len();
        if done >= size || iter.is_none() {
            return;
        }
        let ran = catch(|| {
            let mut away = Away {
                iter: iter.take(),
                values: std::mem::take(values),
                home: (&mut *iter, &mut *values),
            };
            let Away { iter, values, .. } = &mut away;
            if let Some(it) = iter {
                values.extend(it.by_ref().take(size - done).map(f));
            }
        });
        match ran {
            // Fewer than asked for: the input ended.
            Ok(()) => return,
            // The item after the last value panicked; go on with the next one.
            Err(report) => errors.push((values.len() + errors.len(), TaskError::panicked(report))),
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
    /// Where the output buffer comes from, if one is there.
    spare_outputs: Arc<Mutex<Vec<Vec<R>>>>,
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
            spare_outputs,
            keep,
            promise,
        } = *self;
        if !promise.set_running_or_notify_cancel() {
            return;
        }
        let start = Instant::now();
        let mut output = lock(&spare_outputs).pop().unwrap_or_default();
        output.reserve(inputs.len());
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
