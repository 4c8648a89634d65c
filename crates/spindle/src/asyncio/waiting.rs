//! Waiting with a limit or for some of many: [`sleep`], [`wait_for`], [`timeout`] scopes,
//! [`wait`] with its three modes, [`as_completed`], and [`shield`].

use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use super::in_place::{InPlace, Next};
use super::task::{create_task, Task};
use crate::futures::ReturnWhen;
use crate::latch::{deadline, lock};
use crate::sys::pinned::PinnedSlots;
use crate::{Error, Result};

/// Suspends the coroutine for `delay` (Python's `await asyncio.sleep(delay)`); other
/// coroutines run meanwhile. tokio's timer: millisecond resolution, no thread per sleeper.
///
/// The deadline is taken when `sleep` is called; the timer is armed at the first poll, so a
/// `sleep` may be made outside the loop and handed to it (`runner.run(sleep(d))`).
///
/// ```
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// spindle::asyncio::run(spindle::asyncio::sleep(Duration::from_millis(20)))?;
/// assert!(start.elapsed() >= Duration::from_millis(20));
/// # Ok::<(), spindle::Error>(())
/// ```
///
/// # Panics
///
/// When polled outside a loop (as tokio's timers do); inside [`run`](super::run) or any
/// tokio runtime with its timer enabled, never.
pub fn sleep(delay: Duration) -> Sleep {
    Sleep {
        until: deadline(delay),
        timer: None,
    }
}

pin_project! {
    /// The future of [`sleep`].
    #[must_use = "a sleep does nothing unless awaited"]
    pub struct Sleep {
        until: Option<Instant>,
        #[pin]
        timer: Option<tokio::time::Sleep>,
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if this.timer.is_none() {
            let Some(until) = *this.until else {
                // Beyond what an `Instant` can hold: for ever.
                return Poll::Pending;
            };
            this.timer.set(Some(tokio::time::sleep_until(until.into())));
        }
        match this.timer.as_pin_mut() {
            Some(t) => t.poll(cx),
            None => Poll::Pending,
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("until", &self.until).finish()
    }
}

/// `fut`'s value, or [`Error::Timeout`] when it takes longer than `limit` (Python's
/// `await asyncio.wait_for(fut, timeout)`); on timeout `fut` is dropped (cancelled).
///
/// ```
/// use std::time::Duration;
/// use spindle::asyncio::{self, wait_for};
/// asyncio::run(async {
///     let quick = wait_for(async { 5 }, Duration::from_secs(1)).await;
///     assert_eq!(quick?, 5);
///     let slow = wait_for(asyncio::sleep(Duration::from_secs(60)), Duration::from_millis(5)).await;
///     assert!(slow.unwrap_err().is_timeout());
///     Ok::<_, spindle::Error>(())
/// })?
/// # ?; Ok::<(), spindle::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Timeout`].
pub async fn wait_for<F: Future>(fut: F, limit: Duration) -> Result<F::Output> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| Error::Timeout)
}

/// A deadline over a block of code (Python 3.11's `async with asyncio.timeout(delay)`);
/// `None` sets none yet. See [`Timeout`].
pub fn timeout(delay: Option<Duration>) -> Timeout {
    timeout_at(delay.and_then(deadline))
}

/// [`timeout`] with an absolute deadline (Python's `asyncio.timeout_at(when)`).
pub fn timeout_at(when: Option<Instant>) -> Timeout {
    Timeout {
        inner: Arc::new(TimeoutInner {
            when: Mutex::new(when),
            expired: AtomicBool::new(false),
            changed: tokio::sync::Notify::new(),
        }),
    }
}

/// A deadline that a block of code runs under: [`scope`](Timeout::scope) runs it, and gives
/// [`Error::Timeout`] if the deadline passes first (the block is dropped there). The deadline
/// can be moved while the block runs, from inside it (a clone of the `Timeout`), as
/// Python's `cm.reschedule(when)`.
///
/// ```
/// use std::time::{Duration, Instant};
/// use spindle::asyncio::{self, timeout};
///
/// asyncio::run(async {
///     // async with asyncio.timeout(0.01): await asyncio.sleep(60)
///     let cm = timeout(Some(Duration::from_millis(10)));
///     let r = cm.scope(asyncio::sleep(Duration::from_secs(60))).await;
///     assert!(r.unwrap_err().is_timeout() && cm.expired());
///
///     // A deadline moved later from inside the block.
///     let cm = timeout(Some(Duration::from_millis(10)));
///     let inner = cm.clone();
///     let r = cm.scope(async move {
///         inner.reschedule(Some(Instant::now() + Duration::from_secs(5)));
///         asyncio::sleep(Duration::from_millis(30)).await;
///         7
///     }).await;
///     assert_eq!(r.unwrap(), 7);
/// })?;
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Clone)]
pub struct Timeout {
    inner: Arc<TimeoutInner>,
}

struct TimeoutInner {
    when: Mutex<Option<Instant>>,
    expired: AtomicBool,
    changed: tokio::sync::Notify,
}

enum Turn<T> {
    Finished(T),
    Expired,
    Moved,
}

impl Timeout {
    /// The deadline now (Python's `when()`).
    pub fn when(&self) -> Option<Instant> {
        *lock(&self.inner.when)
    }

    /// Moves the deadline (`None`: none), also while the scope runs (Python's
    /// `reschedule(when)`).
    pub fn reschedule(&self, when: Option<Instant>) {
        *lock(&self.inner.when) = when;
        self.inner.changed.notify_waiters();
    }

    /// Whether the deadline passed while a scope ran (Python's `expired()`).
    pub fn expired(&self) -> bool {
        self.inner.expired.load(Ordering::Acquire)
    }

    /// Runs `body` under the deadline: its value, or [`Error::Timeout`] once the deadline
    /// passes (the body is dropped there, as Python cancels it).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`].
    pub async fn scope<F: Future>(&self, body: F) -> Result<F::Output> {
        let mut body = pin!(body);
        loop {
            // Listen for a move before reading the deadline, so that none is missed.
            let mut moved = pin!(self.inner.changed.notified());
            moved.as_mut().enable();
            let mut sleep = self
                .when()
                .map(|w| Box::pin(tokio::time::sleep_until(w.into())));
            let turn = poll_fn(|cx| {
                if let Poll::Ready(v) = body.as_mut().poll(cx) {
                    return Poll::Ready(Turn::Finished(v));
                }
                if let Some(s) = sleep.as_mut() {
                    if s.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Turn::Expired);
                    }
                }
                if moved.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Turn::Moved);
                }
                Poll::Pending
            })
            .await;
            match turn {
                Turn::Finished(v) => return Ok(v),
                Turn::Expired => {
                    self.inner.expired.store(true, Ordering::Release);
                    return Err(Error::Timeout);
                }
                Turn::Moved => {}
            }
        }
    }
}

impl fmt::Debug for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("when", &self.when())
            .field("expired", &self.expired())
            .finish()
    }
}

/// What [`wait`] returns: the outcomes of the futures found done, and the futures not done,
/// each with its position in the input (Python's `(done, pending)` sets).
pub struct Waited<F: Future> {
    /// `(position, outcome)` of each future found done, in the order they finished.
    pub done: Vec<(usize, F::Output)>,
    /// `(position, future)` of each future not done, in input order.
    pub pending: Vec<(usize, F)>,
}

impl<F: Future> fmt::Debug for Waited<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waited")
            .field(
                "done",
                &self.done.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            )
            .field(
                "pending",
                &self.pending.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Waits for some of `futures` (Python's `await asyncio.wait(aws, timeout, return_when)`):
/// until one is done ([`ReturnWhen::FirstCompleted`]), one fails or all are done
/// ([`ReturnWhen::FirstException`]), all are done ([`ReturnWhen::AllCompleted`]), or
/// `timeout` passes. Nothing is cancelled: the futures not done come back to be awaited,
/// cancelled or waited on again.
///
/// The futures are typically [`Task`](super::Task)s (Python's `wait` takes tasks); any
/// `Unpin` future whose output is a `Result` will do (box a coroutine with `Box::pin`).
/// `FirstException` looks at that `Result`: a task's is `Err` when it panicked or was
/// cancelled. A coroutine that returns its own `Result` inside a task gives
/// `Ok(Err(..))`; to count its `Err` as the exception, flatten it:
/// `Box::pin(async move { task.await.and_then(|r| r) })` for a `Task<spindle::Result<T>>`.
///
/// ```
/// use std::time::Duration;
/// use spindle::asyncio::{self, create_task, wait, ReturnWhen};
///
/// asyncio::run(async {
///     let quick = create_task(async { 1 })?;
///     let slow = create_task(async { asyncio::sleep(Duration::from_secs(60)).await; 2 })?;
///     let w = wait(vec![quick, slow], ReturnWhen::FirstCompleted, None).await;
///     assert_eq!(w.done.len(), 1);
///     assert_eq!(w.done[0].0, 0); // the quick one
///     for (_, task) in &w.pending {
///         task.cancel();
///     }
///     Ok::<_, spindle::Error>(())
/// })??;
/// # Ok::<(), spindle::Error>(())
/// ```
pub async fn wait<I, F, T, E>(
    futures: I,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> Waited<F>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = std::result::Result<T, E>> + Unpin,
{
    let mut set = InPlace::unpinned(futures);
    let mut done = Vec::new();
    let mut limit = timeout.map(|t| Box::pin(tokio::time::sleep(t)));
    poll_fn(|cx| {
        let pass = set.poll_pass(cx, |i, out| {
            let failed = out.is_err();
            done.push((i, out));
            match return_when {
                ReturnWhen::FirstCompleted => Next::Stop,
                ReturnWhen::FirstException if failed => Next::Stop,
                _ => Next::Continue,
            }
        });
        if pass.is_ready() {
            return Poll::Ready(());
        }
        match limit.as_mut() {
            Some(s) => s.as_mut().poll(cx),
            None => Poll::Pending,
        }
    })
    .await;
    Waited {
        done,
        pending: set.take_pending(),
    }
}

/// Gives the outcomes of `futures` in the order they finish (Python's
/// `for f in asyncio.as_completed(aws, timeout=...)`); see [`AsCompleted::next`].
///
/// ```
/// use std::time::Duration;
/// use spindle::asyncio::{self, as_completed};
///
/// let order = asyncio::run(async {
///     let coros = [30u64, 10, 20].map(|ms| async move {
///         asyncio::sleep(Duration::from_millis(ms)).await;
///         ms
///     });
///     let mut order = Vec::new();
///     let mut it = as_completed(coros, None);
///     while let Some(v) = it.next().await {
///         order.push(v?);
///     }
///     Ok::<_, spindle::Error>(order)
/// })??;
/// assert_eq!(order, [10, 20, 30]);
/// # Ok::<(), spindle::Error>(())
/// ```
pub fn as_completed<I, F>(futures: I, timeout: Option<Duration>) -> AsCompleted<F>
where
    I: IntoIterator<Item = F>,
    F: Future,
{
    AsCompleted {
        set: InPlace::pinned(futures),
        ready: VecDeque::new(),
        until: timeout.and_then(deadline),
        limit: None,
        ended: false,
    }
}

/// The outcomes of [`as_completed`]'s futures, in the order they finish.
pub struct AsCompleted<F: Future> {
    set: InPlace<PinnedSlots<F>>,
    ready: VecDeque<F::Output>,
    until: Option<Instant>,
    limit: Option<Pin<Box<tokio::time::Sleep>>>,
    ended: bool,
}

impl<F: Future> AsCompleted<F> {
    /// The next outcome to finish; `None` once every future has been given out.
    ///
    /// When the timeout passes first, one `Err(`[`Error::Unfinished`]`)` says how many
    /// futures were left (Python's `TimeoutError`), they are dropped, and `None` follows.
    pub async fn next(&mut self) -> Option<Result<F::Output>> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<F::Output>>> {
        if let Some(v) = self.ready.pop_front() {
            return Poll::Ready(Some(Ok(v)));
        }
        if self.ended || self.set.left() == 0 {
            return Poll::Ready(None);
        }
        let ready = &mut self.ready;
        let _ = self.set.poll_pass(cx, |_, out| {
            ready.push_back(out);
            Next::Stop
        });
        if let Some(v) = self.ready.pop_front() {
            return Poll::Ready(Some(Ok(v)));
        }
        if let Some(until) = self.until {
            let limit = self
                .limit
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until.into())));
            if limit.as_mut().poll(cx).is_ready() {
                self.ended = true;
                let unfinished = self.set.left();
                self.set.drop_pending();
                return Poll::Ready(Some(Err(Error::Unfinished {
                    unfinished,
                    total: self.set.len(),
                })));
            }
        }
        Poll::Pending
    }
}

impl<F: Future> fmt::Debug for AsCompleted<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("total", &self.set.len())
            .field("left", &self.set.left())
            .finish()
    }
}

/// Runs `coro` as a task that the awaiting code's cancellation does not reach (Python's
/// `await asyncio.shield(coro)`): if the awaiting coroutine is cancelled, or a
/// [`wait_for`] around the shield times out, the task runs on to its end, detached.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use spindle::asyncio::{self, shield, wait_for};
///
/// let finished = Arc::new(AtomicBool::new(false));
/// let f = Arc::clone(&finished);
/// asyncio::run(async move {
///     let work = async move {
///         asyncio::sleep(Duration::from_millis(20)).await;
///         f.store(true, Ordering::SeqCst);
///     };
///     assert!(wait_for(shield(work), Duration::from_millis(1)).await.is_err());
///     asyncio::sleep(Duration::from_millis(60)).await; // the shielded work goes on
/// })?;
/// assert!(finished.load(Ordering::SeqCst));
/// # Ok::<(), spindle::Error>(())
/// ```
pub fn shield<F>(coro: F) -> Shield<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Shield {
        task: create_task(coro).map_err(Some),
    }
}

/// The future of [`shield`]: the shielded task's value (or its error).
#[must_use = "a shield does nothing unless awaited"]
pub struct Shield<T> {
    task: std::result::Result<Task<T>, Option<Error>>,
}

impl<T> Future for Shield<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        match &mut self.task {
            Ok(task) => Pin::new(task).poll(cx),
            Err(e) => Poll::Ready(Err(e
                .take()
                .unwrap_or(Error::InvalidState("shield polled after its end")))),
        }
    }
}

impl<T> fmt::Debug for Shield<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shield").finish_non_exhaustive()
    }
}
