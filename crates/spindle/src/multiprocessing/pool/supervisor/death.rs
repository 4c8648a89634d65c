//! What the supervisor does when a worker's pidfd turns readable: read what the worker left,
//! reap it, and end or resend what it held (docs/decisions.md, D82); and how the pool ends
//! every call at once (a failed initializer, termination).

use std::os::fd::AsFd;
use std::sync::Arc;

use super::{KillReason, Supervisor};
use crate::error::{Death, TaskError};
use crate::latch::lock;
use crate::multiprocessing::pool::job::ProcJob;
use crate::multiprocessing::pool::spawn::Worker;
use crate::sys;

impl Supervisor {
    /// Handles the workers that exited.
    pub(super) fn reap(&mut self) {
        let mut i = 0;
        while i < self.workers.len() {
            if !self.workers[i].exited {
                i += 1;
                continue;
            }
            // Everything it wrote before it died is still in its channel and pipe.
            self.read(i);
            let mut w = self.workers.swap_remove(i);
            let _ = self.epoll.delete(w.chan.as_fd());
            if let Some(fd) = w.process.sentinel() {
                let _ = self.epoll.delete(fd);
            }
            if w.tap.is_some() {
                let _ = self.relay();
            }
            let stderr = match &mut w.tap {
                Some(tap) => {
                    let _ = self.epoll.delete(tap.fd());
                    tap.finish(self.relay.as_ref())
                }
                None => Vec::new(),
            };
            let _ = w.process.join();
            let exitcode = w.process.exitcode();
            lock(&self.shared.sched).pids.retain(|p| *p != w.pid);
            self.buried(w, exitcode, stderr);
        }
    }

    /// Ends what a worker that exited still held.
    fn buried(&mut self, mut w: Worker, exitcode: Option<i32>, stderr: Vec<String>) {
        let oom_now = sys::memory::oom_kill_count();
        let likely_oom = exitcode == Some(-9)
            && w.kill.is_none()
            && matches!((self.oom_seen, oom_now), (Some(a), Some(b)) if b > a);
        self.oom_seen = oom_now.or(self.oom_seen);
        if !w.ready && w.kill.is_none() && !self.stopping_all {
            // It died before its initializer finished: that is the initializer's failure.
            let why = match exitcode {
                Some(c) if c < 0 => format!(
                    "the worker was killed by signal {} during its initializer",
                    -c
                ),
                Some(c) => format!("the worker exited with code {c} during its initializer"),
                None => "the worker died during its initializer".to_string(),
            };
            let mut why = why;
            if let Some(last) = stderr.last() {
                why.push_str(&format!(" (its last stderr line: {last})"));
            }
            for c in w.inflight.drain(..) {
                self.retry.push_back(c);
            }
            self.break_pool(TaskError::initializer_failed(why));
            return;
        }
        let died = |task: u64| {
            TaskError::worker_died_with(
                Some(w.pid),
                exitcode,
                Death {
                    likely_oom,
                    stderr: stderr.clone(),
                },
            )
            .with_task(task)
        };
        let mut chunks = std::mem::take(&mut w.inflight);
        if let Some(front) = chunks.pop_front() {
            let seq = self.next_seq;
            self.next_seq += 1;
            let r = front.reported;
            let exact = front.flush_each || front.total - r <= 1;
            // The item the worker was killed for, if any, and how it ends.
            let victim = match w.kill {
                Some(KillReason::Timeout { seq, at }) if seq == front.seq && at == r => {
                    Some((r, TaskError::timed_out()))
                }
                Some(KillReason::Stop { job, index }) => front
                    .position_of(job, index)
                    .map(|p| (p, TaskError::cancelled())),
                _ => None,
            };
            let (pos, error, retry) = match victim {
                Some((p, e)) => (p, e, true),
                // A crash: the item at the cursor when every item reports (exact); otherwise
                // which unreported item crashed is unknown, and none runs again.
                None if exact => (r, died(0), true),
                None => (front.total, died(0), false),
            };
            // Items before it ran (their results died with the worker); one a caller stopped
            // meanwhile ends cancelled.
            let stopped = |job: &Arc<ProcJob>, index: u64| {
                let call = Arc::as_ptr(job) as *const () as usize;
                w.also_stop.contains(&(call, index))
            };
            for p in r..pos.min(front.total) {
                if let Some((job, index)) = front.item_at(p) {
                    let e = if stopped(job, index) {
                        TaskError::cancelled()
                    } else {
                        died(index)
                    };
                    job.sink.fail(index, 1, &e);
                }
            }
            if let Some((job, index)) = front.item_at(pos) {
                let e = if !error.is_worker_died() {
                    error
                } else if stopped(job, index) {
                    TaskError::cancelled()
                } else {
                    died(index)
                };
                job.sink.fail(index, 1, &e);
            }
            if retry {
                if let Some(rest) = front
                    .tail_from(pos + 1, seq)
                    .and_then(|c| c.without_stopped(&w.also_stop))
                {
                    self.retry.push_back(rest);
                }
            }
        }
        // The chunks behind the running one never started: they go to another worker (less
        // the items stopped meanwhile).
        for c in chunks {
            if let Some(c) = c.without_stopped(&w.also_stop) {
                self.retry.push_back(c);
            }
        }
    }

    /// The pool cannot run anything any more: every call ends with `error`, the workers go.
    pub(super) fn break_pool(&mut self, error: TaskError) {
        {
            let mut s = lock(&self.shared.sched);
            if s.broken.is_some() {
                return;
            }
            s.broken = Some(error.clone());
        }
        for w in &mut self.workers {
            if w.kill.is_none() {
                w.kill = Some(KillReason::Terminate);
            }
            let _ = w.process.kill();
        }
        self.fail_everything(&error);
    }

    /// Ends every call not finished with `error`.
    pub(super) fn fail_everything(&mut self, error: &TaskError) {
        // Hold every call first: the queues below may hold the last reference to one.
        let live: Vec<Arc<ProcJob>> = {
            let mut s = lock(&self.shared.sched);
            let live = std::mem::take(&mut s.live);
            let live = live.iter().filter_map(std::sync::Weak::upgrade).collect();
            s.jobs.clear();
            live
        };
        self.retry.clear();
        for w in &mut self.workers {
            w.inflight.clear();
        }
        for job in live {
            lock(&job.q).close(error);
            // Outside the queue's lock: ending a call may run its callbacks.
            job.sink.terminate(error);
        }
    }
}
