//! `concurrent.futures.wait` and `as_completed`, for futures of any executor.
//!
//! Both register one [`Watch`] on every future: a future that reaches its final state pushes
//! its index into the watch (once) and wakes the waiting thread. Nothing polls.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Future;
use crate::latch::{deadline, wait_until};
use crate::sync::lock;
use crate::sync::{Condvar, Mutex};
use crate::{Error, Result};

/// How a future ended, as far as `wait` cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Value,
    Error,
    Cancelled,
}

/// What a set of watched futures reports to the one thread that waits on them.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    state: Mutex<WatchState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct WatchState {
    /// Indices of the futures that ended, in the order they ended, not yet handed out.
    ready: VecDeque<usize>,
    /// How many ended in all.
    ended: usize,
    /// How many ended with an error other than a cancellation.
    errors: usize,
}

impl Watch {
    /// Called (once per future) by a future that reached its final state.
    pub(crate) fn notify(&self, index: usize, ending: Ending) {
        let mut s = lock(&self.state);
        s.ready.push_back(index);
        s.ended += 1;
        if ending == Ending::Error {
            s.errors += 1;
        }
        drop(s);
        self.cv.notify_all();
    }

    /// What the watch heard: the indices not handed out, how many ended, how many failed.
    #[cfg(test)]
    pub(crate) fn heard(&self) -> (Vec<usize>, usize, usize) {
        let s = lock(&self.state);
        (s.ready.iter().copied().collect(), s.ended, s.errors)
    }
}

/// When [`wait`] returns (Python's `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnWhen {
    /// As soon as any future is done (finished or cancelled).
    FirstCompleted,
    /// As soon as any future ends with an error (a cancellation does not count, as in
    /// Python); when none does, when all are done.
    FirstException,
    /// When every future is done.
    AllCompleted,
}

/// The two sets [`wait`] returns (Python's `DoneAndNotDoneFutures`), each in the order the
/// futures were given.
pub struct DoneAndNotDone<T> {
    /// The futures that are done.
    pub done: Vec<Future<T>>,
    /// The futures that are not done.
    pub not_done: Vec<Future<T>>,
}

impl<T> fmt::Debug for DoneAndNotDone<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DoneAndNotDone")
            .field("done", &self.done.len())
            .field("not_done", &self.not_done.len())
            .finish()
    }
}

/// Waits for the futures `fs` until `return_when` holds or `timeout` passes
/// (`concurrent.futures.wait`); `None` waits as long as it takes.
///
/// The futures are handed back, split into those done and those not done when it returns
/// (more may be done than `return_when` asked for). A timeout is not an error: `not_done`
/// is then non-empty.
///
/// ```
/// use spindle::futures::{wait, ReturnWhen, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::new()?;
/// let fs = (0..4u64).map(|i| pool.submit(|x: u64| x + 1, i)).collect::<Result<Vec<_>, _>>()?;
/// let r = wait(fs, ReturnWhen::AllCompleted, None);
/// assert_eq!(r.done.len(), 4);
/// assert!(r.not_done.is_empty());
/// # Ok::<(), spindle::Error>(())
/// ```
pub fn wait<T>(
    fs: impl IntoIterator<Item = Future<T>>,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> DoneAndNotDone<T> {
    let fs: Vec<Future<T>> = fs.into_iter().collect();
    let n = fs.len();
    let until = timeout.and_then(deadline);
    let watch = Arc::new(Watch::default());
    for (i, f) in fs.iter().enumerate() {
        f.shared().watch(&watch, i);
    }
    let state = lock(&watch.state);
    let _ = wait_until(&watch.cv, state, until, |s| match return_when {
        ReturnWhen::FirstCompleted => s.ended > 0 || n == 0,
        ReturnWhen::FirstException => s.errors > 0 || s.ended == n,
        ReturnWhen::AllCompleted => s.ended == n,
    });
    for f in &fs {
        f.shared().unwatch(&watch);
    }
    let (done, not_done) = fs.into_iter().partition(Future::done);
    DoneAndNotDone { done, not_done }
}

/// Yields the futures `fs` as they end, in the order they end
/// (`concurrent.futures.as_completed`); `timeout` counts from this call, `None` waits as long
/// as it takes.
///
/// Futures already done come first. Each item is `Ok(future)` (done: its result is ready);
/// when `timeout` passes first, the iterator yields
/// [`Err(Error::Unfinished { unfinished, total })`](Error::Unfinished) once — Python's
/// `TimeoutError("2 (of 4) futures unfinished")`, with [`Error::is_timeout`] true — and then
/// ends; [`AsCompleted::remaining`] gives back the futures not yielded.
///
/// ```
/// use std::time::Duration;
/// use spindle::futures::{as_completed, promise};
///
/// let (done, f1) = promise::<u8>();
/// let (_never, f2) = promise::<u8>();
/// done.set_result(1)?;
/// let mut it = as_completed([f1, f2], Some(Duration::from_millis(10)));
/// assert_eq!(it.next().unwrap()?.result()?, 1);
/// let e = it.next().unwrap().unwrap_err();
/// assert!(e.is_timeout());
/// assert_eq!(e.to_string(), "1 (of 2) futures unfinished");
/// assert_eq!(it.remaining().len(), 1);
/// # Ok::<(), spindle::Error>(())
/// ```
///
/// ```
/// use spindle::futures::{as_completed, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::new()?;
/// let fs = (1..=3u64).map(|i| pool.submit(|x: u64| x * 10, i)).collect::<Result<Vec<_>, _>>()?;
/// let mut total = 0;
/// for f in as_completed(fs, None) {
///     total += f?.result()?;
/// }
/// assert_eq!(total, 60);
/// # Ok::<(), spindle::Error>(())
/// ```
pub fn as_completed<T>(
    fs: impl IntoIterator<Item = Future<T>>,
    timeout: Option<Duration>,
) -> AsCompleted<T> {
    let until = timeout.and_then(deadline);
    let fs: Vec<Option<Future<T>>> = fs.into_iter().map(Some).collect();
    let watch = Arc::new(Watch::default());
    for (i, f) in fs.iter().enumerate() {
        if let Some(f) = f {
            f.shared().watch(&watch, i);
        }
    }
    AsCompleted {
        left: fs.len(),
        fs,
        watch,
        until,
        timed_out: false,
    }
}

/// The iterator of [`as_completed`]: `Ok(future)` in completion order, or
/// [`Err(Error::Unfinished)`](Error::Unfinished) once.
pub struct AsCompleted<T> {
    fs: Vec<Option<Future<T>>>,
    watch: Arc<Watch>,
    until: Option<Instant>,
    left: usize,
    timed_out: bool,
}

impl<T> AsCompleted<T> {
    /// Takes out the futures not yielded yet (for instance after a timeout), in the order
    /// they were given; the iterator then ends.
    pub fn remaining(&mut self) -> Vec<Future<T>> {
        self.left = 0;
        let out: Vec<Future<T>> = self.fs.iter_mut().filter_map(Option::take).collect();
        for f in &out {
            f.shared().unwatch(&self.watch);
        }
        out
    }
}

impl<T> Iterator for AsCompleted<T> {
    type Item = Result<Future<T>>;

    fn next(&mut self) -> Option<Result<Future<T>>> {
        while self.left > 0 && !self.timed_out {
            let state = lock(&self.watch.state);
            let (mut state, ready) =
                wait_until(&self.watch.cv, state, self.until, |s| !s.ready.is_empty());
            if !ready {
                drop(state);
                self.timed_out = true;
                return Some(Err(Error::Unfinished {
                    unfinished: self.left,
                    total: self.fs.len(),
                }));
            }
            let index = state.ready.pop_front();
            drop(state);
            if let Some(f) = index
                .and_then(|i| self.fs.get_mut(i))
                .and_then(Option::take)
            {
                self.left -= 1;
                return Some(Ok(f));
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.timed_out {
            (0, Some(0))
        } else {
            (0, Some(self.left + 1))
        }
    }
}

impl<T> Drop for AsCompleted<T> {
    fn drop(&mut self) {
        for f in self.fs.iter().flatten() {
            f.shared().unwatch(&self.watch);
        }
    }
}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("left", &self.left)
            .field("timed_out", &self.timed_out)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::futures::promise;

    #[test]
    fn wait_and_as_completed_leave_no_watch_behind() {
        let (p, f) = promise::<u8>();
        let mut fs = vec![f];
        for how in [
            ReturnWhen::FirstCompleted,
            ReturnWhen::FirstException,
            ReturnWhen::AllCompleted,
        ] {
            fs = wait(fs, how, Some(Duration::ZERO)).not_done;
            assert_eq!(fs[0].shared().watchers(), 0);
        }
        let mut it = as_completed(fs, Some(Duration::ZERO));
        assert!(matches!(
            it.next(),
            Some(Err(Error::Unfinished {
                unfinished: 1,
                total: 1
            }))
        ));
        let fs = it.remaining();
        assert_eq!(fs[0].shared().watchers(), 0);
        let it = as_completed(fs, None);
        drop(it);
        p.set_result(1).unwrap();
    }

    #[test]
    fn a_watch_hears_each_future_once() {
        let watch = Arc::new(Watch::default());
        let (p, f) = promise::<u8>();
        f.shared().watch(&watch, 3);
        assert_eq!(f.shared().watchers(), 1);
        p.set_exception(crate::TaskError::failed("x")).unwrap();
        // Registering on a finished future reports at once and keeps nothing.
        f.shared().watch(&watch, 4);
        assert_eq!(f.shared().watchers(), 0);
        assert_eq!(watch.heard(), (vec![3, 4], 2, 2));
    }
}
