//! [`Pending`]: the chunks of one map that no thread has started yet, shared by the map's
//! caller and the pool's workers.
//!
//! Each chunk is queued here and a [`Pick`] is sent to the pool in its place. The caller of
//! the map, when the chunk it needs next is still here, takes it and runs it itself instead
//! of sleeping (as rayon's caller takes part in the work); a worker that pops a `Pick` runs the
//! *newest* chunk still here, so that the oldest, the one the caller needs next, stays
//! available to it the longest. There is one `Pick` per chunk, so every chunk is run (or
//! cancelled, or failed) by someone, and a chunk is taken out under the lock, so it runs at
//! most once.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::{Job, Pool, Task};
use crate::futures::map::Inline;
use crate::latch::lock;
use crate::TaskError;

/// The chunks of one map not started yet, oldest first, with their numbers.
pub(super) struct Pending {
    jobs: Mutex<VecDeque<(u64, Job)>>,
    pool: Arc<Pool>,
}

impl Pending {
    pub(super) fn new(pool: Arc<Pool>) -> Self {
        Pending {
            jobs: Mutex::new(VecDeque::new()),
            pool,
        }
    }

    /// Queues chunk `seq` (numbers increase).
    pub(super) fn push(&self, seq: u64, job: Job) {
        lock(&self.jobs).push_back((seq, job));
    }

    /// Takes chunk `seq` back out, if it is still here.
    pub(super) fn remove(&self, seq: u64) -> Option<Job> {
        let mut jobs = lock(&self.jobs);
        let at = jobs.iter().position(|(s, _)| *s == seq)?;
        jobs.remove(at).map(|(_, job)| job)
    }

    fn newest(&self) -> Option<Job> {
        lock(&self.jobs).pop_back().map(|(_, job)| job)
    }
}

impl Inline for Pending {
    fn run_here(&self, seq: u64) -> bool {
        let job = {
            let mut jobs = lock(&self.jobs);
            match jobs.front() {
                Some((s, _)) if *s == seq => jobs.pop_front().map(|(_, job)| job),
                _ => None,
            }
        };
        match job {
            // After `shutdown(cancel_futures=true)`, a chunk not started is cancelled, as
            // the pool's queue was.
            Some(job) if self.pool.cancelled.load(Ordering::Acquire) => {
                job.cancel();
                true
            }
            Some(job) => {
                job.run();
                true
            }
            None => false,
        }
    }
}

/// What the pool's queue holds for each chunk of a [`Pending`]: "run the newest chunk still
/// there" (nothing if the caller has taken them all).
pub(super) struct Pick(pub(super) Arc<Pending>);

impl Task for Pick {
    fn run(self: Box<Self>) {
        if let Some(job) = self.0.newest() {
            job.run();
        }
    }

    fn cancel(self: Box<Self>) {
        if let Some(job) = self.0.newest() {
            job.cancel();
        }
    }

    fn fail(self: Box<Self>, error: TaskError) {
        if let Some(job) = self.0.newest() {
            job.fail(error);
        }
    }
}
