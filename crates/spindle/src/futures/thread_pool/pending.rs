//! [`Pending`]: the chunks of one map that no thread has started yet, shared by the map's
//! caller and the pool's workers.
//!
//! Each chunk is queued here, and for a chunk *offered* to the workers a [`Pick`] is sent to
//! the pool in its place. A worker that pops a `Pick` runs the *oldest* offered chunk still
//! here, so that work starts in input order, as Python's queue does (the notes' five downloads
//! on three workers start as 1, 2, 3, then 4 and 5). The caller of the map, when the chunk it
//! needs next is still here, takes it and runs it itself instead of sleeping — in a free seat
//! only (see `seats`). A chunk *kept* for the caller (one it times, or every chunk while the
//! items are tiny) has no `Pick` until the caller, about to sleep, offers it
//! ([`release`](Inline::release)). There is one `Pick` per offered chunk, so every chunk is
//! run (or cancelled, or failed) by someone, and a chunk is taken out under the lock, so it
//! runs at most once.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Job, Pool, Task};
use crate::futures::map::Inline;
use crate::sync::atomic::Ordering;
use crate::sync::{lock, Mutex};
use crate::TaskError;

/// One chunk not started yet.
struct Waiting {
    seq: u64,
    job: Job,
    /// Whether a [`Pick`] for it is in the pool's queue (else it is kept for the caller).
    offered: bool,
}

/// The chunks of one map not started yet, oldest first.
pub(super) struct Pending {
    jobs: Mutex<VecDeque<Waiting>>,
    pool: Arc<Pool>,
}

impl Pending {
    pub(super) fn new(pool: Arc<Pool>) -> Self {
        Pending {
            jobs: Mutex::new(VecDeque::new()),
            pool,
        }
    }

    /// Queues chunk `seq` for the caller only: no worker is told about it (until
    /// [`release`](Inline::release)).
    pub(super) fn keep(&self, seq: u64, job: Job) {
        lock(&self.jobs).push_back(Waiting {
            seq,
            job,
            offered: false,
        });
    }

    /// Queues chunk `seq` (numbers increase), offered to the workers: the caller sends one
    /// [`Pick`] for it.
    pub(super) fn push(&self, seq: u64, job: Job) {
        lock(&self.jobs).push_back(Waiting {
            seq,
            job,
            offered: true,
        });
    }

    /// Takes chunk `seq` back out, if it is still here.
    pub(super) fn remove(&self, seq: u64) -> Option<Job> {
        let mut jobs = lock(&self.jobs);
        let at = jobs.iter().position(|w| w.seq == seq)?;
        jobs.remove(at).map(|w| w.job)
    }

    /// Whether chunk `seq` is the oldest one here.
    fn holds(&self, seq: u64) -> bool {
        lock(&self.jobs).front().is_some_and(|w| w.seq == seq)
    }

    /// The oldest chunk offered to the workers, taken out.
    fn oldest_offered(&self) -> Option<Job> {
        let mut jobs = lock(&self.jobs);
        let at = jobs.iter().position(|w| w.offered)?;
        jobs.remove(at).map(|w| w.job)
    }
}

impl Inline for Pending {
    fn release(self: Arc<Self>) {
        let offered = {
            let mut jobs = lock(&self.jobs);
            let mut n = 0;
            for w in jobs.iter_mut().filter(|w| !w.offered) {
                w.offered = true;
                n += 1;
            }
            n
        };
        for _ in 0..offered {
            // On a closed pool this fails: the caller runs (or cancels) them itself.
            let _ = self.pool.execute(Box::new(Pick(Arc::clone(&self))));
        }
    }

    fn run_here(&self, seq: u64) -> bool {
        // Only in a seat that is free now (an idle or unstarted worker's): the caller never
        // adds a task to the `max_workers` that may run at once. Once the pool is shut down,
        // a chunk still here may have no `Pick` left for it (an offer fails on a closed
        // pool): then the caller waits for a seat and runs it itself.
        let _seat = match self.pool.seats.try_seat() {
            Some(seat) => seat,
            None if !self.pool.is_open() && self.holds(seq) => self.pool.seats.seat(),
            None => return false,
        };
        let job = {
            let mut jobs = lock(&self.jobs);
            match jobs.front() {
                Some(w) if w.seq == seq => jobs.pop_front().map(|w| w.job),
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

/// What the pool's queue holds for each offered chunk of a [`Pending`]: "run the oldest
/// offered chunk still there" (nothing if the caller has taken them all).
pub(super) struct Pick(pub(super) Arc<Pending>);

impl Task for Pick {
    fn run(self: Box<Self>) {
        if let Some(job) = self.0.oldest_offered() {
            job.run();
        }
    }

    fn cancel(self: Box<Self>) {
        if let Some(job) = self.0.oldest_offered() {
            job.cancel();
        }
    }

    fn fail(self: Box<Self>, error: TaskError) {
        if let Some(job) = self.0.oldest_offered() {
            job.fail(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::futures::ThreadPoolExecutor;

    /// A task that records what happened to it.
    struct Probe {
        runs: Arc<AtomicUsize>,
        cancels: Arc<AtomicUsize>,
    }

    impl Task for Probe {
        fn run(self: Box<Self>) {
            self.runs.fetch_add(1, Ordering::SeqCst);
        }
        fn cancel(self: Box<Self>) {
            self.cancels.fetch_add(1, Ordering::SeqCst);
        }
        fn fail(self: Box<Self>, _: TaskError) {
            panic!("not failed in these tests");
        }
    }

    fn setup() -> (
        ThreadPoolExecutor,
        Arc<Pending>,
        Arc<AtomicUsize>,
        Arc<AtomicUsize>,
    ) {
        let exec = ThreadPoolExecutor::builder()
            .max_workers(1)
            .build()
            .unwrap();
        let pending = Arc::new(Pending::new(Arc::clone(&exec.pool)));
        (exec, pending, Arc::default(), Arc::default())
    }

    fn job(runs: &Arc<AtomicUsize>, cancels: &Arc<AtomicUsize>) -> Job {
        Box::new(Probe {
            runs: Arc::clone(runs),
            cancels: Arc::clone(cancels),
        })
    }

    #[test]
    fn the_caller_takes_its_next_and_picks_take_the_oldest_offered_each_chunk_once() {
        let (_exec, pending, runs, cancels) = setup();
        pending.push(0, job(&runs, &cancels));
        pending.keep(1, job(&runs, &cancels));
        pending.push(2, job(&runs, &cancels));
        pending.push(3, job(&runs, &cancels));
        // The caller may only take the oldest.
        assert!(!pending.run_here(1));
        assert!(pending.run_here(0));
        assert!(!pending.run_here(0), "a chunk runs once");
        // A pick skips the chunk kept for the caller and takes the oldest offered: 2.
        Box::new(Pick(Arc::clone(&pending))).run();
        assert!(pending.run_here(1));
        assert!(!pending.run_here(2), "2 ran on the pick");
        assert!(pending.run_here(3));
        // Picks left over once the caller took everything do nothing.
        Box::new(Pick(Arc::clone(&pending))).run();
        Box::new(Pick(Arc::clone(&pending))).run();
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        assert_eq!(cancels.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn released_chunks_go_to_the_workers() {
        let (exec, pending, runs, cancels) = setup();
        pending.keep(0, job(&runs, &cancels));
        pending.keep(1, job(&runs, &cancels));
        Arc::clone(&pending).release();
        // Joining the worker waits for the two picks the release queued.
        exec.shutdown(true, false);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(!pending.run_here(0));
        // Nothing kept any more: a second release queues nothing.
        Arc::clone(&pending).release();
        assert!(lock(&pending.jobs).iter().all(|w| w.offered));
    }

    #[test]
    fn after_a_cancelling_shutdown_the_caller_cancels_instead_of_running() {
        let (exec, pending, runs, cancels) = setup();
        pending.push(0, job(&runs, &cancels));
        pending.push(1, job(&runs, &cancels));
        exec.shutdown(true, false);
        assert!(
            pending.run_here(0),
            "a plain shutdown lets accepted work run"
        );
        exec.shutdown(true, true);
        assert!(pending.run_here(1));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(cancels.load(Ordering::SeqCst), 1);
        assert!(exec.pool.check_open().is_err());
    }
}
