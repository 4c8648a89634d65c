//! [`gather`]: many awaitables at once, values in input order (Python's `asyncio.gather`),
//! polled in place by the awaiting task (see `in_place.rs`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::in_place::{InPlace, Next};
use crate::sys::pinned::PinnedSlots;

/// Runs every future of `coros` at once and gives their values in input order (Python's
/// `await asyncio.gather(*coros)`).
///
/// Each future yields a `Result`; the first `Err` ends the gather with that error (Python
/// raises the first exception), and [`return_exceptions`](Gather::return_exceptions) gives
/// every outcome instead, `Ok` and `Err` alike, in input order. For futures that cannot fail,
/// `return_exceptions()` is the way to get their plain values.
///
/// The futures are polled in place by the task that awaits the gather: no task is spawned
/// per future, and a wake-up polls only the few futures that share its waker. To run them on
/// the loop as separate tasks (Python wraps each coroutine in a task), pass
/// [`Task`](super::Task)s: `gather(coros.map(create_task))`.
///
/// ```
/// use std::time::Duration;
/// use spindle::asyncio::{self, gather};
///
/// let v = asyncio::run(async {
///     // Three sleepers of 30, 10 and 20 ms: about 30 ms in all, values in input order.
///     let coros = [30u64, 10, 20].map(|ms| async move {
///         asyncio::sleep(Duration::from_millis(ms)).await;
///         Ok::<_, spindle::Error>(ms)
///     });
///     gather(coros).await
/// })??;
/// assert_eq!(v, [30, 10, 20]);
///
/// // return_exceptions=True
/// let all = asyncio::run(gather([Ok(1), Err("boom"), Ok(3)].map(|r| async move { r })).return_exceptions())?;
/// assert_eq!(all, [Ok(1), Err("boom"), Ok(3)]);
/// # Ok::<(), spindle::Error>(())
/// ```
///
/// # Cancellation
///
/// When the gather ends on an error, or is dropped (cancelled), the futures not finished are
/// dropped with it; tasks among them run on, detached (a [`Task`](super::Task) is not
/// cancelled by dropping it). Python's gather also leaves its children running when one
/// raises, but cancels them when the gather itself is cancelled: call
/// [`Task::cancel`](super::Task::cancel), or use a [`TaskGroup`](super::TaskGroup).
pub fn gather<I, F, T, E>(coros: I) -> Gather<F, T>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>>,
{
    let set = InPlace::pinned(coros);
    let values = (0..set.len()).map(|_| None).collect();
    Gather { set, values }
}

/// The future of [`gather`]: `Ok` with every value in input order, or the first error.
#[must_use = "a gather does nothing unless awaited"]
pub struct Gather<F, T> {
    set: InPlace<PinnedSlots<F>>,
    values: Vec<Option<T>>,
}

// The values are only ever moved, never pinned; the futures are pinned in their boxes.
impl<F, T> Unpin for Gather<F, T> {}
impl<F: Future> Unpin for GatherAll<F> {}

impl<F, T, E> Gather<F, T>
where
    F: Future<Output = Result<T, E>>,
{
    /// Gives every outcome, errors included, in input order (Python's
    /// `gather(..., return_exceptions=True)`): nothing ends the gather early.
    pub fn return_exceptions(self) -> GatherAll<F> {
        let outcomes = (0..self.set.len()).map(|_| None).collect();
        GatherAll {
            set: self.set,
            outcomes,
        }
    }
}

impl<F, T, E> Future for Gather<F, T>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<Vec<T>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let values = &mut this.values;
        let mut failed = None;
        let pass = this.set.poll_pass(cx, |i, out| match out {
            Ok(v) => {
                values[i] = Some(v);
                Next::Continue
            }
            Err(e) => {
                failed = Some(e);
                Next::Stop
            }
        });
        if let Some(e) = failed {
            return Poll::Ready(Err(e));
        }
        match pass {
            Poll::Ready(()) => Poll::Ready(Ok(values.drain(..).flatten().collect())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The future of [`Gather::return_exceptions`]: every outcome in input order.
#[must_use = "a gather does nothing unless awaited"]
pub struct GatherAll<F: Future> {
    set: InPlace<PinnedSlots<F>>,
    outcomes: Vec<Option<F::Output>>,
}

impl<F: Future> Future for GatherAll<F> {
    type Output = Vec<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let outcomes = &mut this.outcomes;
        match this.set.poll_pass(cx, |i, out| {
            outcomes[i] = Some(out);
            Next::Continue
        }) {
            Poll::Ready(()) => Poll::Ready(outcomes.drain(..).flatten().collect()),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F: Future, T> fmt::Debug for Gather<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gather")
            .field("total", &self.set.len())
            .field("left", &self.set.left())
            .finish()
    }
}

impl<F: Future> fmt::Debug for GatherAll<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatherAll")
            .field("total", &self.set.len())
            .field("left", &self.set.left())
            .finish()
    }
}
