//! The bare crossbeam-channel pool: the floor a thread pool's overhead is judged against.
//!
//! N worker threads read boxed closures from one unbounded crossbeam channel and run them.
//! No futures, no results, no panic handling, no cancellation: a caller that wants a result
//! sends it back itself (a `bounded(1)` reply channel per task in the round-trip workload).
//! This is the least a pool built on crossbeam can do, so spindle's pool, which is built on
//! crossbeam and adds futures, panic capture and shutdown, is measured against it.

use std::io;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{unbounded, Sender};

/// A unit of work for the pool.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// N threads draining one job channel; dropping the pool closes the channel and joins them.
#[derive(Debug)]
pub(crate) struct BarePool {
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl BarePool {
    /// Starts `workers` threads.
    pub(crate) fn new(workers: usize) -> io::Result<BarePool> {
        let (tx, rx) = unbounded::<Job>();
        let mut pool = BarePool {
            jobs: Some(tx),
            workers: Vec::with_capacity(workers),
        };
        for i in 0..workers {
            let rx = rx.clone();
            // On an error, `pool` is dropped here and joins the threads already started.
            let handle = thread::Builder::new()
                .name(format!("bare-pool-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Queues `job`; some worker runs it.
    pub(crate) fn execute(&self, job: Job) {
        if let Some(tx) = &self.jobs {
            // The workers hold the receiver until the pool is dropped, so this cannot fail.
            let _ = tx.send(job);
        }
    }
}

impl Drop for BarePool {
    fn drop(&mut self) {
        self.jobs = None;
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;

    #[test]
    fn every_job_runs_and_replies() {
        let pool = BarePool::new(2).unwrap();
        let (tx, rx) = unbounded();
        for i in 0..100u64 {
            let tx = tx.clone();
            pool.execute(Box::new(move || tx.send(i * i).unwrap()));
        }
        drop(tx);
        let mut got: Vec<u64> = rx.iter().collect();
        got.sort_unstable();
        assert_eq!(got, (0..100u64).map(|i| i * i).collect::<Vec<_>>());
    }

    #[test]
    fn drop_runs_queued_jobs_then_joins() {
        let (tx, rx) = bounded(10);
        let pool = BarePool::new(2).unwrap();
        for i in 0..10 {
            let tx = tx.clone();
            pool.execute(Box::new(move || tx.send(i).unwrap()));
        }
        drop(pool);
        assert_eq!(rx.try_iter().count(), 10);
    }
}
