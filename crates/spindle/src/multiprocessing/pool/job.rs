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
use super::protocol as wire;
use super::result::{ByteSink, Outcomes, Pull};
use crate::error::{Error, Result, TaskError};
use crate::latch::lock;
use crate::sys::event::Wake;

/// The most items an `imap` may pull ahead of its consumer unless told otherwise.
pub(crate) const MAX_WINDOW: usize = 1 << 16;

/// One call: its function, its limits, its items, its outcomes.
pub(crate) struct ProcJob {
    pub(crate) entry: i64,
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
    /// Adds item `index`, already encoded, and makes sure the supervisor sees it.
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] when the pool took the call back.
    pub(crate) fn push(
        self: &Arc<Self>,
        shared: &Shared,
        index: u64,
        encoded: &[u8],
    ) -> Result<()> {
        let mut q = lock(&self.q);
        if q.closed {
            return Err(Error::Shutdown);
        }
        q.push_encoded(index, encoded);
        let was_queued = q.queued;
        q.queued = true;
        drop(q);
        shared.requeue(self, was_queued);
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

/// The items of a call not yet cut into a chunk.
#[derive(Debug)]
pub(crate) struct JobQueue {
    /// Encoded items, each `varint length + bytes`, from `head` on.
    bytes: Vec<u8>,
    head: usize,
    /// Runs of consecutive items in `bytes`, as pushed: `(index of the first, count, bytes)`.
    runs: VecDeque<(u64, u64, usize)>,
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
            bytes: Vec::new(),
            head: 0,
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

    /// Appends item `index`, already encoded (`varint length + bytes`).
    pub(crate) fn push_encoded(&mut self, index: u64, encoded: &[u8]) {
        self.push_run(index, 1, encoded);
    }

    /// Appends items `first..first + count`, encoded one after another.
    pub(crate) fn push_run(&mut self, first: u64, count: u64, encoded: &[u8]) {
        if count == 0 {
            return;
        }
        self.bytes.extend_from_slice(encoded);
        self.runs.push_back((first, count, encoded.len()));
    }

    /// The indices of the items not cut yet.
    pub(crate) fn indices(&self) -> impl Iterator<Item = u64> + '_ {
        self.runs.iter().flat_map(|&(f, n, _)| f..f + n)
    }

    /// Drops every item not cut yet.
    pub(crate) fn clear(&mut self) {
        self.runs.clear();
        self.bytes.clear();
        self.head = 0;
    }

    /// How many items are left to cut, when the input's length is known.
    pub(crate) fn remaining(&self) -> Option<usize> {
        self.total.map(|t| t.saturating_sub(self.cut) as usize)
    }

    /// Cuts up to `max` items with consecutive indices off the front: `(first index,
    /// count, encoded items)`.
    pub(crate) fn cut(&mut self, max: usize) -> Option<(u64, u32, Vec<u8>)> {
        let max = max.clamp(1, u32::MAX as usize) as u64;
        let (first, _, _) = *self.runs.front()?;
        let (mut n, mut len) = (0u64, 0usize);
        // Whole runs while they fit and follow on: their byte lengths are known.
        while let Some(&(f, count, bytes)) = self.runs.front() {
            if f != first + n || n + count > max {
                break;
            }
            n += count;
            len += bytes;
            self.runs.pop_front();
        }
        // Part of the next run: its items' lengths are read.
        if n < max {
            if let Some(front) = self.runs.front_mut() {
                if front.0 == first + n {
                    let take = (max - n).min(front.1);
                    let rest = &self.bytes[self.head + len..];
                    // Our own encoding: the lengths are well formed.
                    let part = wire::skip_items(rest, take as usize).unwrap_or(front.2);
                    *front = (front.0 + take, front.1 - take, front.2 - part);
                    if front.1 == 0 {
                        self.runs.pop_front();
                    }
                    n += take;
                    len += part;
                }
            }
        }
        let chunk = self.bytes[self.head..self.head + len].to_vec();
        self.head += len;
        if self.runs.is_empty() {
            self.bytes.clear();
            self.head = 0;
        } else if self.head > self.bytes.len() / 2 && self.head > 1 << 16 {
            self.bytes.drain(..self.head);
            self.head = 0;
        }
        self.cut += n;
        Some((first, n as u32, chunk))
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
    /// Stop the task of this job if it runs: `SIGTERM` its worker, `SIGKILL` after `grace`.
    Stop { job: usize, grace: Duration },
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
    pub(crate) scratch: Vec<u8>,
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
        // the rest is being encoded.
        let step = (n / 4).clamp(64, MAX_WINDOW);
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
        let mut encoded = std::mem::take(&mut self.scratch);
        encoded.clear();
        let mut failed: Vec<(usize, Error)> = Vec::new();
        let mut got = 0usize;
        for a in self.iter.by_ref().take(n) {
            if let Err(e) = encode_item(&a, &mut encoded) {
                failed.push((got, e));
            }
            got += 1;
        }
        let mut q = lock(&self.job.q);
        if q.closed {
            self.scratch = encoded;
            return Err(q.refusal());
        }
        if got == 0 {
            q.input_done = true;
            drop(q);
            self.scratch = encoded;
            // The supervisor may be waiting for this call to end (close, then join).
            self.shared.nudge();
            return Ok(0);
        }
        let first = self.out.register(got as u64);
        // Runs of items between the ones that failed to encode.
        let mut at = 0u64;
        let mut start = 0usize;
        for (k, _) in &failed {
            let k = *k as u64;
            let len = wire::skip_items(&encoded[start..], (k - at) as usize).unwrap_or(0);
            q.push_run(first + at, k - at, &encoded[start..start + len]);
            start += len;
            at = k + 1;
        }
        q.push_run(first + at, got as u64 - at, &encoded[start..]);
        let was_queued = q.queued;
        let wake = !q.is_empty();
        if wake {
            q.queued = true;
        }
        drop(q);
        self.scratch = encoded;
        for (k, e) in failed {
            self.job.sink.fail(first + k as u64, 1, &arg_error::<A>(&e));
        }
        if wake {
            self.shared.requeue(&self.job, was_queued);
        }
        Ok(got)
    }
}
