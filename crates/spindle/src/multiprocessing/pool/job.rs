//! A call as the process pool's supervisor sees it: a queue of encoded items not yet sent to
//! a worker, the function's offset, and where its outcomes go. Callers (and `imap`
//! iterators) push encoded items; the supervisor cuts chunks off the front.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;

use super::chunking::Sizer;
use super::flat::{self, FRAMED};
use super::protocol as wire;
use super::result::{ByteSink, Outcomes, Pull};
use crate::error::{Error, Result, TaskError};
use crate::latch::lock;
use crate::sys::event::Wake;

/// The most items an `imap` may pull ahead of its consumer unless told otherwise.
pub(crate) const MAX_WINDOW: usize = 1 << 16;

/// One call: its function, its limits, its items, its outcomes.
pub(crate) struct ProcJob {
    /// The offset of the item trampoline (framed items, one at a time).
    pub(crate) entry: i64,
    /// The offset of the run trampoline (flat items, a run at a time).
    pub(crate) run_entry: i64,
    /// Which function this is, for the per-function time estimates.
    pub(crate) key: u64,
    /// The per-item time limit.
    pub(crate) timeout: Option<Duration>,
    pub(crate) sink: Arc<dyn ByteSink>,
    pub(crate) q: Mutex<JobQueue>,
}

impl std::fmt::Debug for ProcJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcJob")
            .field("entry", &self.entry)
            .finish()
    }
}

impl ProcJob {
    /// Adds the items of `batch` as items `first..` of the call and makes sure the supervisor
    /// sees them (the items that failed to encode stay in `batch.failed`).
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] (or the pool's failure) when the pool took the call back.
    pub(crate) fn push_batch(
        self: &Arc<Self>,
        shared: &Shared,
        first: u64,
        batch: &mut Encoded,
    ) -> Result<()> {
        let mut q = lock(&self.q);
        if q.closed || q.input_done {
            return Err(q.refusal());
        }
        q.push_batch(first, batch);
        let was_queued = q.queued;
        let wake = !q.is_empty();
        if wake {
            q.queued = true;
        }
        drop(q);
        if wake {
            shared.requeue(self, was_queued);
        }
        Ok(())
    }

    /// Ends the items not yet handed to a worker with a cancellation (`cancel_futures`).
    pub(crate) fn cancel_queued(&self) {
        let indices: Vec<u64> = {
            let mut q = lock(&self.q);
            let indices = q.indices().collect();
            q.clear();
            q.closed = true;
            indices
        };
        for i in indices {
            self.sink.fail(i, 1, &TaskError::cancelled());
        }
    }
}

/// A run of items with consecutive indices, encoded in one layout: flat values of `stride`
/// bytes each, or (`stride == FRAMED`) each `varint length + postcard`.
#[derive(Debug)]
struct Run {
    first: u64,
    count: u64,
    stride: u32,
    bytes: Vec<u8>,
    /// Bytes of `bytes` already cut off the front.
    off: usize,
}

/// Items cut off a call's queue for one segment of a chunk.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) first: u64,
    pub(crate) count: u32,
    pub(crate) stride: u32,
    pub(crate) bytes: Vec<u8>,
}

impl Piece {
    /// The byte offset of item `n` of the piece.
    pub(crate) fn offset_of(&self, n: u32) -> Option<usize> {
        offset_of(&self.bytes, self.stride, n as usize)
    }

    /// The piece without the items whose indices are in `skip` (sorted), as the pieces
    /// left between them.
    pub(crate) fn without(self, skip: &[u64]) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut at = 0u32;
        for &s in skip {
            if s < self.first + u64::from(at) || s >= self.first + u64::from(self.count) {
                continue;
            }
            let k = (s - self.first) as u32;
            if k > at {
                if let (Some(a), Some(b)) = (self.offset_of(at), self.offset_of(k)) {
                    out.push(Piece {
                        first: self.first + u64::from(at),
                        count: k - at,
                        stride: self.stride,
                        bytes: self.bytes[a..b].to_vec(),
                    });
                }
            }
            at = k + 1;
        }
        if at == 0 {
            out.push(self);
        } else if at < self.count {
            if let Some(a) = self.offset_of(at) {
                out.push(Piece {
                    first: self.first + u64::from(at),
                    count: self.count - at,
                    stride: self.stride,
                    bytes: self.bytes[a..].to_vec(),
                });
            }
        }
        out
    }
}

/// The byte offset of item `n` in items of the given layout.
pub(crate) fn offset_of(items: &[u8], stride: u32, n: usize) -> Option<usize> {
    if stride == FRAMED {
        wire::skip_items(items, n).ok()
    } else {
        let at = n.checked_mul(stride as usize)?;
        (at <= items.len()).then_some(at)
    }
}

/// Runs below this many bytes are appended to the run before them when they follow on
/// (single submits share a run); bigger ones stay whole, so that a cut can take them
/// without a copy.
const MERGE_BELOW: usize = 4096;

/// The items of a call not yet cut into a chunk.
#[derive(Debug)]
pub(crate) struct JobQueue {
    runs: VecDeque<Run>,
    /// No more items will come.
    pub(crate) input_done: bool,
    /// The pool took the call back (terminated, broken): no more items are accepted.
    pub(crate) closed: bool,
    /// Why, when it was not a plain termination (a failed initializer).
    pub(crate) why: Option<TaskError>,
    /// Whether the job is in the supervisor's queue.
    pub(crate) queued: bool,
    pub(crate) sizer: Sizer,
    /// The input's length when known, and how many items were cut so far.
    pub(crate) total: Option<u64>,
    pub(crate) cut: u64,
}

impl JobQueue {
    pub(crate) fn new(sizer: Sizer, total: Option<u64>) -> Self {
        JobQueue {
            runs: VecDeque::new(),
            input_done: false,
            closed: false,
            why: None,
            queued: false,
            sizer,
            total,
            cut: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Takes the call back: no more items; `why` is the pool's failure, if any.
    pub(crate) fn close(&mut self, why: &TaskError) {
        self.closed = true;
        self.clear();
        if !why.is_cancelled() {
            self.why = Some(why.clone());
        }
    }

    /// The error of an item offered after the call was taken back: the pool's failure, or
    /// [`Error::Shutdown`].
    pub(crate) fn refusal(&self) -> Error {
        self.why.clone().map_or(Error::Shutdown, Error::Task)
    }

    /// Appends items `first..first + count` of the given layout, taking `bytes` as they are.
    pub(crate) fn push_owned(&mut self, first: u64, count: u64, stride: u32, bytes: Vec<u8>) {
        if count == 0 {
            return;
        }
        if let Some(last) = self.mergeable(first, stride, bytes.len()) {
            last.bytes.extend_from_slice(&bytes);
            last.count += count;
            return;
        }
        self.runs.push_back(Run {
            first,
            count,
            stride,
            bytes,
            off: 0,
        });
    }

    /// Appends every run of `batch`, its item `k` being item `first + k` of the call.
    pub(crate) fn push_batch(&mut self, first: u64, batch: &mut Encoded) {
        for (offset, count, stride, bytes) in batch.runs.drain(..) {
            self.push_owned(first + offset, count, stride, bytes);
        }
    }

    /// The last run, when a small run of the same layout following on may join it.
    fn mergeable(&mut self, first: u64, stride: u32, len: usize) -> Option<&mut Run> {
        let last = self.runs.back_mut()?;
        (len < MERGE_BELOW
            && last.stride == stride
            && last.first + last.count == first
            && u32::try_from(last.count + 1).is_ok())
        .then_some(last)
    }

    /// The indices of the items not cut yet.
    pub(crate) fn indices(&self) -> impl Iterator<Item = u64> + '_ {
        self.runs.iter().flat_map(|r| r.first..r.first + r.count)
    }

    /// Drops every item not cut yet.
    pub(crate) fn clear(&mut self) {
        self.runs.clear();
    }

    /// How many items are left to cut, when the input's length is known.
    pub(crate) fn remaining(&self) -> Option<usize> {
        self.total.map(|t| t.saturating_sub(self.cut) as usize)
    }

    /// Cuts up to `max` items with consecutive indices off the front, as pieces (one per run
    /// they come from; a whole run is moved, not copied).
    pub(crate) fn cut(&mut self, max: usize) -> Option<Vec<Piece>> {
        let max = max.clamp(1, u32::MAX as usize) as u64;
        let first = self.runs.front()?.first;
        let mut n = 0u64;
        let mut pieces = Vec::new();
        while n < max {
            let Some(run) = self.runs.front_mut() else {
                break;
            };
            if run.first != first + n {
                break;
            }
            let take = (max - n).min(run.count);
            if take == run.count {
                let run = self.runs.pop_front().expect("checked");
                let bytes = if run.off == 0 {
                    run.bytes
                } else {
                    run.bytes[run.off..].to_vec()
                };
                pieces.push(Piece {
                    first: run.first,
                    count: take as u32,
                    stride: run.stride,
                    bytes,
                });
            } else {
                let rest = &run.bytes[run.off..];
                // Our own encoding: the lengths are well formed.
                let len = offset_of(rest, run.stride, take as usize).unwrap_or(rest.len());
                pieces.push(Piece {
                    first: run.first,
                    count: take as u32,
                    stride: run.stride,
                    bytes: rest[..len].to_vec(),
                });
                run.off += len;
                run.first += take;
                run.count -= take;
                if run.off > run.bytes.len() / 2 && run.off > 1 << 16 {
                    run.bytes.drain(..run.off);
                    run.off = 0;
                }
            }
            n += take;
        }
        self.cut += n;
        Some(join(pieces))
    }
}

/// Joins pieces of one layout that follow on into one (one segment, one block of outcomes,
/// one wake-up of the consumer, instead of one per piece); the first one's buffer grows.
fn join(pieces: Vec<Piece>) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    for p in pieces {
        match out.last_mut() {
            Some(last)
                if last.stride == p.stride
                    && last.first + u64::from(last.count) == p.first
                    && last.count.checked_add(p.count).is_some() =>
            {
                last.bytes.extend_from_slice(&p.bytes);
                last.count += p.count;
            }
            _ => out.push(p),
        }
    }
    out
}

/// Items encoded outside a queue's lock, in runs: `(offset of the first in the batch,
/// count, stride, bytes)`, and the items that encode in no layout.
#[derive(Debug, Default)]
pub(crate) struct Encoded {
    pub(crate) runs: Vec<(u64, u64, u32, Vec<u8>)>,
    pub(crate) failed: Vec<(u64, Error)>,
    /// Items encoded so far (failed ones included).
    pub(crate) items: u64,
}

impl Encoded {
    pub(crate) fn clear(&mut self) {
        self.runs.clear();
        self.failed.clear();
        self.items = 0;
    }
}

/// Encodes a call's items: flat while their type allows it (D160), else framed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ItemEncoder {
    /// The type refused the flat layout: every item is framed.
    refused: bool,
    /// Room to reserve in a new run.
    expect: usize,
}

impl ItemEncoder {
    /// The next batch holds about `n` items (to size its buffers).
    pub(crate) fn expect(&mut self, n: usize) {
        self.expect = n.clamp(1, 1 << 16);
    }

    /// Encodes every item of `items` as the next items of `batch`. While the items stay flat
    /// at one stride they are appended in a tight loop to one run.
    pub(crate) fn extend<A: Serialize>(
        &mut self,
        mut items: impl Iterator<Item = A>,
        batch: &mut Encoded,
    ) {
        while let Some(a) = items.next() {
            self.push(&a, batch);
            if self.refused {
                continue;
            }
            // The run `a` went to, if flat: the rest follows in a local buffer.
            let Some((offset, count, stride, bytes)) = batch.runs.last_mut() else {
                continue;
            };
            if *stride == FRAMED || *offset + *count != batch.items {
                continue;
            }
            // Written in place into room made ahead (the loop carries its position in a
            // register, not in the buffer's length).
            let width = *stride as usize;
            let mut buf = std::mem::take(bytes);
            let mut pos = buf.len();
            let ahead = items.size_hint().1.unwrap_or(1024).min(1 << 16);
            buf.resize(pos + ahead * width, 0);
            let mut n = 0u64;
            let mut odd = None;
            for a in items.by_ref() {
                if pos + width > buf.len() {
                    buf.resize(buf.len() * 2 + width, 0);
                }
                match flat::write(&a, &mut buf[pos..pos + width]) {
                    Ok(()) => {
                        pos += width;
                        n += 1;
                    }
                    Err(_) => {
                        odd = Some(a);
                        break;
                    }
                }
            }
            buf.truncate(pos);
            let (_, count, _, bytes) = batch.runs.last_mut().expect("checked");
            *bytes = buf;
            *count += n;
            batch.items += n;
            if let Some(a) = odd {
                self.push(&a, batch);
            }
        }
    }

    /// Encodes `value` as the next item of `batch`.
    #[inline]
    pub(crate) fn push<A: Serialize>(&mut self, value: &A, batch: &mut Encoded) {
        let k = batch.items;
        batch.items += 1;
        if !self.refused {
            if let Some((offset, count, stride, bytes)) = batch.runs.last_mut() {
                if *stride != FRAMED && *offset + *count == k {
                    let at = bytes.len();
                    match flat::append(value, bytes) {
                        Ok(n) if n == *stride as usize => {
                            *count += 1;
                            return;
                        }
                        Ok(_) => bytes.truncate(at),
                        Err(_) => {}
                    }
                }
            }
            self.push_new_flat(value, k, batch);
            if batch.runs.last().is_some_and(|r| r.0 + r.1 == k + 1) {
                return;
            }
        }
        self.push_framed(value, k, batch);
    }

    #[cold]
    fn push_new_flat<A: Serialize>(&mut self, value: &A, k: u64, batch: &mut Encoded) {
        let mut bytes = Vec::new();
        match flat::append(value, &mut bytes) {
            Ok(n) if n < FRAMED as usize => {
                bytes.reserve(n.saturating_mul(self.expect).min(1 << 22));
                batch.runs.push((k, 1, n as u32, bytes));
            }
            _ => self.refused = true,
        }
    }

    fn push_framed<A: Serialize>(&mut self, value: &A, k: u64, batch: &mut Encoded) {
        if let Some((offset, count, FRAMED, bytes)) = batch.runs.last_mut() {
            if *offset + *count == k {
                match encode_item(value, bytes) {
                    Ok(()) => *count += 1,
                    Err(e) => batch.failed.push((k, e)),
                }
                return;
            }
        }
        let mut bytes = Vec::new();
        match encode_item(value, &mut bytes) {
            Ok(()) => batch.runs.push((k, 1, FRAMED, bytes)),
            Err(e) => batch.failed.push((k, e)),
        }
    }
}

/// What callers and the supervisor share.
pub(crate) struct Shared {
    pub(crate) sched: Mutex<Sched>,
    pub(crate) wake: Wake,
    /// The supervisor is about to sleep (or sleeps): a new job must wake it.
    pub(crate) idle: AtomicBool,
    /// Work was added since the supervisor last looked (read without the lock while it
    /// busy-waits).
    pub(crate) fresh: AtomicBool,
    pub(crate) workers: usize,
    /// Seconds per item of each function seen, by key.
    pub(crate) estimates: Mutex<std::collections::HashMap<u64, f64>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("workers", &self.workers)
            .finish()
    }
}

/// A request from a caller to the supervisor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Command {
    /// Stop item `index` of this job if it runs: `SIGTERM` its worker, `SIGKILL` after
    /// `grace`.
    Stop {
        job: usize,
        index: u64,
        grace: Duration,
    },
    /// Send every worker `SIGTERM` (`kill`: `SIGKILL`) and end every pending call.
    Signal { kill: bool },
}

/// The supervisor's queue and the pool's state, under one lock.
#[derive(Default)]
pub(crate) struct Sched {
    /// Calls with items to cut, oldest first.
    pub(crate) jobs: VecDeque<Arc<ProcJob>>,
    /// Every call not finished, to end them all at once on termination.
    pub(crate) live: Vec<Weak<ProcJob>>,
    pub(crate) commands: Vec<Command>,
    /// `close()`: no new calls; the workers stop once the calls accepted are done.
    pub(crate) closed: bool,
    /// `terminate()`: everything ends now.
    pub(crate) terminated: bool,
    /// Why the pool cannot run anything (a failed initializer, workers that cannot start).
    pub(crate) broken: Option<TaskError>,
    /// The pids of the workers now.
    pub(crate) pids: Vec<u32>,
    /// How many workers were started in all.
    pub(crate) starts: u64,
    /// The supervisor has ended.
    pub(crate) finished: bool,
}

impl Shared {
    pub(crate) fn new(workers: usize) -> std::io::Result<Arc<Shared>> {
        Ok(Arc::new(Shared {
            sched: Mutex::new(Sched::default()),
            wake: Wake::new()?,
            idle: AtomicBool::new(false),
            fresh: AtomicBool::new(false),
            workers,
            estimates: Mutex::new(std::collections::HashMap::new()),
        }))
    }

    /// Wakes the supervisor if it may be asleep.
    pub(crate) fn nudge(&self) {
        self.fresh.store(true, Ordering::Release);
        if self.idle.swap(false, Ordering::SeqCst) {
            self.wake.notify();
        }
    }

    /// Wakes the supervisor for a command.
    pub(crate) fn command(&self, c: Command) {
        lock(&self.sched).commands.push(c);
        self.idle.store(false, Ordering::SeqCst);
        self.wake.notify();
    }

    /// The per-item time of the function `key`, when seen before.
    pub(crate) fn estimate(&self, key: u64) -> Option<f64> {
        lock(&self.estimates).get(&key).copied()
    }

    /// Hands a new call to the supervisor.
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] after `close` or `terminate`. A broken pool accepts the call and
    /// ends it at once with its error.
    pub(crate) fn submit(&self, job: &Arc<ProcJob>) -> Result<()> {
        let mut s = lock(&self.sched);
        if s.closed || s.terminated {
            return Err(Error::Shutdown);
        }
        if let Some(e) = s.broken.clone() {
            drop(s);
            lock(&job.q).close(&e);
            job.sink.terminate(&e);
            return Ok(());
        }
        if s.live.len() > 64 && s.live.len().is_power_of_two() {
            s.live.retain(|w| w.strong_count() > 0);
        }
        s.live.push(Arc::downgrade(job));
        let mut q = lock(&job.q);
        if !q.is_empty() && !q.queued {
            q.queued = true;
            drop(q);
            s.jobs.push_back(Arc::clone(job));
        }
        drop(s);
        self.nudge();
        Ok(())
    }

    /// Puts a job whose queue just got items back into the supervisor's queue (if it was not
    /// there) and wakes the supervisor.
    pub(crate) fn requeue(&self, job: &Arc<ProcJob>, was_queued: bool) {
        if !was_queued {
            lock(&self.sched).jobs.push_back(Arc::clone(job));
        }
        self.nudge();
    }
}

/// Appends `value` to `out` as a queue item (`varint length + bytes`); on failure `out` is
/// left as it was.
#[inline]
pub(crate) fn encode_item<A: Serialize>(value: &A, out: &mut Vec<u8>) -> Result<()> {
    let at = out.len();
    // One byte for the length, the common case; moved aside when it needs more.
    out.push(0);
    if let Err(e) = wire::append(value, out) {
        out.truncate(at);
        return Err(e);
    }
    let len = out.len() - at - 1;
    if len < 0x80 {
        out[at] = len as u8;
    } else {
        let mut prefix = Vec::with_capacity(10);
        wire::push_varint(&mut prefix, len as u64);
        out.splice(at..=at, prefix);
    }
    Ok(())
}

/// The error of an item whose argument does not encode.
pub(crate) fn arg_error<A>(e: &Error) -> TaskError {
    let why = match e {
        Error::Codec(m) => m.clone(),
        other => other.to_string(),
    };
    TaskError::failed(format!(
        "the argument (a {}) cannot be encoded: {why}",
        std::any::type_name::<A>()
    ))
}

/// Pulls items of an `imap`'s input into its job, on the consumer's thread.
pub(crate) struct Feed<A, R, I> {
    pub(crate) iter: I,
    pub(crate) job: Arc<ProcJob>,
    pub(crate) out: Arc<Outcomes<R>>,
    pub(crate) shared: Arc<Shared>,
    /// The user's bound on items ahead (`buffersize`), if any.
    pub(crate) limit: Option<usize>,
    pub(crate) encoder: ItemEncoder,
    pub(crate) batch: Encoded,
    pub(crate) _a: PhantomData<fn(A)>,
}

impl<A, R, I> Pull for Feed<A, R, I>
where
    A: Serialize,
    R: Send + 'static,
    I: Iterator<Item = A>,
{
    fn pull(&mut self, n: usize) -> Result<usize> {
        // In a few parts, each handed to the supervisor at once, so that workers start while
        // the rest is being encoded; a part is at least the chunk the supervisor will cut
        // next (one wake-up and one run per chunk, not several).
        let chunk = {
            let q = lock(&self.job.q);
            q.sizer.next(q.remaining())
        };
        let step = (n / 4).max(chunk).clamp(64, MAX_WINDOW);
        let mut total = 0;
        while total < n {
            match self.pull_some(step.min(n - total))? {
                0 => break,
                k => total += k,
            }
        }
        if total == 0 {
            return self.pull_some(0);
        }
        Ok(total)
    }

    fn window(&self) -> usize {
        let q = lock(&self.job.q);
        let chunk = q.sizer.next(None);
        let w = self.shared.workers.max(1);
        let window = (2 * w * chunk).max(2 * w);
        window.min(self.limit.unwrap_or(MAX_WINDOW)).max(1)
    }

    fn cancel(&mut self) {
        let mut q = lock(&self.job.q);
        q.clear();
        q.input_done = true;
    }
}

impl<A, R, I> Feed<A, R, I>
where
    A: Serialize,
    R: Send + 'static,
    I: Iterator<Item = A>,
{
    /// Pulls up to `n` items (`n` = 0: checks the end of the input).
    fn pull_some(&mut self, n: usize) -> Result<usize> {
        // Encoded here, outside the queue's lock; the indices are known once it is taken.
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        self.encoder.expect(n);
        self.encoder.extend(self.iter.by_ref().take(n), &mut batch);
        let got = batch.items;
        let mut q = lock(&self.job.q);
        if q.closed {
            self.batch = batch;
            return Err(q.refusal());
        }
        if got == 0 {
            q.input_done = true;
            drop(q);
            self.batch = batch;
            // The supervisor may be waiting for this call to end (close, then join).
            self.shared.nudge();
            return Ok(0);
        }
        let first = self.out.register(got);
        q.push_batch(first, &mut batch);
        let was_queued = q.queued;
        let wake = !q.is_empty();
        if wake {
            q.queued = true;
        }
        drop(q);
        for (k, e) in batch.failed.drain(..) {
            self.job.sink.fail(first + k, 1, &arg_error::<A>(&e));
        }
        self.batch = batch;
        if wake {
            self.shared.requeue(&self.job, was_queued);
        }
        Ok(got as usize)
    }
}
