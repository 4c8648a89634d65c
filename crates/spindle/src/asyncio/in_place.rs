//! Many futures polled in place by one task (`gather`, `wait`, `as_completed`): no task each,
//! and no poll of every future on every wake-up.
//!
//! The futures are cut into blocks of [`BLOCK`]; each block has one waker. A wake-up marks
//! its block ready (once: a flag) and wakes the task that owns the set; the next poll polls
//! only the futures of the blocks marked since. So a wake-up costs at most `BLOCK` polls, and
//! the set costs one small allocation per block, not per future, unlike a waker each
//! (`FuturesUnordered` allocates a node per future).
//!
//! A set starts by awaiting its futures in order (only the front one watched) and switches to
//! the blocks as soon as the front one does not advance over one turn of the loop: a set of
//! tasks, which advance whether polled or not, then registers almost no waker at all.
//!
//! The polls respect tokio's cooperative budget: when it runs out, the blocks not yet polled
//! are kept for the next turn and the task yields, rather than polling futures that could
//! only answer "not now".

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use crate::latch::lock;
use crate::sys::pinned::PinnedSlots;

/// Futures per waker.
pub(crate) const BLOCK: usize = 32;

/// What the owner of the set says after each finished future.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Poll on.
    Continue,
    /// Stop this pass now (the owner has what it waited for).
    Stop,
}

/// The blocks marked ready since the last pass, and the waker of the task that polls.
#[derive(Default)]
struct Ready {
    inner: Mutex<ReadyInner>,
}

#[derive(Default)]
struct ReadyInner {
    blocks: Vec<usize>,
    owner: Option<Waker>,
}

/// One block's waker.
struct BlockWaker {
    block: usize,
    marked: AtomicBool,
    ready: Arc<Ready>,
}

impl BlockWaker {
    /// Queues the block (if not queued yet); returns the owner's waker to wake, if any.
    fn mark(&self) -> Option<Waker> {
        if self.marked.swap(true, Ordering::AcqRel) {
            return None;
        }
        let mut r = lock(&self.ready.inner);
        r.blocks.push(self.block);
        r.owner.take()
    }
}

impl Wake for BlockWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(owner) = self.mark() {
            owner.wake();
        }
    }
}

/// Where a set keeps its futures: a `Vec` of `Unpin` futures (which `wait` hands back
/// unfinished), or one pinned slice for any future (no `Box` each: `gather`,
/// `as_completed`).
pub(crate) trait Slots {
    /// What a future gives.
    type Output;
    /// How many slots, finished or not.
    fn len(&self) -> usize;
    /// Whether slot `i` holds a future not finished.
    fn occupied(&self, i: usize) -> bool;
    /// Polls slot `i` (`None` when it is empty); a finished future leaves its slot.
    fn poll_slot(&mut self, i: usize, cx: &mut Context<'_>) -> Option<Poll<Self::Output>>;
    /// Drops the future of slot `i`, if any.
    fn clear(&mut self, i: usize);
}

impl<S: Future + Unpin> Slots for Vec<Option<S>> {
    type Output = S::Output;

    fn len(&self) -> usize {
        <[Option<S>]>::len(self)
    }

    fn occupied(&self, i: usize) -> bool {
        self.get(i).is_some_and(Option::is_some)
    }

    fn poll_slot(&mut self, i: usize, cx: &mut Context<'_>) -> Option<Poll<S::Output>> {
        let slot = self.get_mut(i)?;
        let out = Pin::new(slot.as_mut()?).poll(cx);
        if out.is_ready() {
            *slot = None;
        }
        Some(out)
    }

    fn clear(&mut self, i: usize) {
        if let Some(slot) = self.get_mut(i) {
            *slot = None;
        }
    }
}

impl<F: Future> Slots for PinnedSlots<F> {
    type Output = F::Output;

    fn len(&self) -> usize {
        PinnedSlots::len(self)
    }

    fn occupied(&self, i: usize) -> bool {
        self.is_some(i)
    }

    fn poll_slot(&mut self, i: usize, cx: &mut Context<'_>) -> Option<Poll<F::Output>> {
        self.poll(i, cx)
    }

    fn clear(&mut self, i: usize) {
        PinnedSlots::clear(self, i);
    }
}

/// A set of futures, kept in `S` (see [`Slots`]), polled in place.
pub(crate) struct InPlace<S> {
    slots: S,
    left: usize,
    ready: Arc<Ready>,
    wakers: Vec<(Arc<BlockWaker>, Waker)>,
    pass: Vec<usize>,
    /// `Some(next)` while the futures are awaited one after another (see `poll_in_order`);
    /// `None` once every pass polls the woken blocks.
    in_order: Option<usize>,
    /// Whether the future at `next` was found pending at the last poll.
    stalled: bool,
}

/// What polling in order came to.
enum Step {
    /// Return this.
    Return(Poll<()>),
    /// The future at the front did not advance while the loop turned: poll them all.
    Stalled,
}

impl<F: Future> InPlace<PinnedSlots<F>> {
    /// A set of any futures, pinned in one slice.
    pub(crate) fn pinned(futures: impl IntoIterator<Item = F>) -> Self {
        InPlace::new(PinnedSlots::new(futures))
    }
}

impl<S: Future + Unpin> InPlace<Vec<Option<S>>> {
    /// A set of `Unpin` futures, which [`take_pending`](InPlace::take_pending) can hand back.
    pub(crate) fn unpinned(futures: impl IntoIterator<Item = S>) -> Self {
        InPlace::new(futures.into_iter().map(Some).collect())
    }

    /// The futures not finished, with their positions (the set is then empty).
    pub(crate) fn take_pending(&mut self) -> Vec<(usize, S)> {
        self.left = 0;
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.take().map(|s| (i, s)))
            .collect()
    }
}

impl<S: Slots> InPlace<S> {
    /// How many futures have not finished.
    pub(crate) fn left(&self) -> usize {
        self.left
    }

    /// How many futures the set was made of.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Drops every future not finished (the set is then empty).
    pub(crate) fn drop_pending(&mut self) {
        for i in 0..self.slots.len() {
            self.slots.clear(i);
        }
        self.left = 0;
    }

    /// A set of the futures in `slots`, every block queued for the first poll.
    fn new(slots: S) -> Self {
        let left = slots.len();
        let ready = Arc::new(Ready::default());
        let blocks = slots.len().div_ceil(BLOCK);
        let wakers = (0..blocks)
            .map(|block| {
                let w = Arc::new(BlockWaker {
                    block,
                    marked: AtomicBool::new(true),
                    ready: Arc::clone(&ready),
                });
                (Arc::clone(&w), Waker::from(w))
            })
            .collect();
        lock(&ready.inner).blocks = (0..blocks).rev().collect();
        InPlace {
            slots,
            left,
            ready,
            wakers,
            pass: Vec::new(),
            in_order: Some(0),
            stalled: false,
        }
    }

    /// Polls the futures of the blocks woken since the last pass; `done(index, output)` is
    /// called for each that finishes and may stop the pass. `Ready` when every future has
    /// finished or `done` said stop; `Pending` otherwise (the task is woken when a block is).
    pub(crate) fn poll_pass(
        &mut self,
        cx: &mut Context<'_>,
        mut done: impl FnMut(usize, S::Output) -> Next,
    ) -> Poll<()> {
        if self.left == 0 {
            return Poll::Ready(());
        }
        {
            let mut r = lock(&self.ready.inner);
            if !r.owner.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                r.owner = Some(cx.waker().clone());
            }
            std::mem::swap(&mut self.pass, &mut r.blocks);
        }
        if self.in_order.is_some() {
            // Every future from `next` on is polled in turn: the woken blocks need no pass of
            // their own, only their flags lowered so that later wake-ups reach this task.
            for block in self.pass.drain(..) {
                self.wakers[block].0.marked.store(false, Ordering::Release);
            }
            match self.poll_in_order(cx, &mut done) {
                Step::Return(p) => return p,
                Step::Stalled => self.poll_all_from_now_on(),
            }
        }
        while let Some(block) = self.pass.pop() {
            let (flag, waker) = &self.wakers[block];
            flag.marked.store(false, Ordering::Release);
            let mut bcx = Context::from_waker(waker);
            let start = block * BLOCK;
            let end = (start + BLOCK).min(self.slots.len());
            for i in start..end {
                if !self.slots.occupied(i) {
                    continue;
                }
                if !tokio::task::coop::has_budget_remaining() {
                    // Out of budget: this block and the rest wait for the next turn.
                    self.requeue(block);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                if let Some(Poll::Ready(out)) = self.slots.poll_slot(i, &mut bcx) {
                    self.left -= 1;
                    if done(i, out) == Next::Stop {
                        // The rest of the block (and the blocks not reached) may hold more.
                        self.requeue(block);
                        return Poll::Ready(());
                    }
                }
            }
        }
        if self.left == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Awaits the futures one after another, as a coroutine awaiting each in turn would: only
    /// the front one is watched. Tasks ([`Task`](super::Task)) advance whether polled or not,
    /// so most are done when their turn comes, and none registers a waker it does not need
    /// (the first pass of a `gather` of 100,000 tasks would otherwise register one per task).
    /// A plain future advances only when polled: when the front one has not advanced over one
    /// turn of the loop, the set switches for good to polling every woken block, after
    /// starting every future not polled yet. That costs a plain future one turn of the loop.
    fn poll_in_order(
        &mut self,
        cx: &mut Context<'_>,
        done: &mut impl FnMut(usize, S::Output) -> Next,
    ) -> Step {
        let mut next = self.in_order.unwrap_or(0);
        while next < self.slots.len() {
            if !self.slots.occupied(next) {
                next += 1;
                continue;
            }
            self.in_order = Some(next);
            if !tokio::task::coop::has_budget_remaining() {
                cx.waker().wake_by_ref();
                return Step::Return(Poll::Pending);
            }
            let mut bcx = Context::from_waker(&self.wakers[next / BLOCK].1);
            match self.slots.poll_slot(next, &mut bcx) {
                // Occupied (above): never `None`.
                None => next += 1,
                Some(Poll::Ready(out)) => {
                    self.left -= 1;
                    self.stalled = false;
                    next += 1;
                    self.in_order = Some(next);
                    if done(next - 1, out) == Next::Stop {
                        return Step::Return(Poll::Ready(()));
                    }
                }
                Some(Poll::Pending) if self.stalled => return Step::Stalled,
                Some(Poll::Pending) => {
                    // Let the loop turn once (spawned tasks run), then look again.
                    self.stalled = true;
                    cx.waker().wake_by_ref();
                    return Step::Return(Poll::Pending);
                }
            }
        }
        Step::Return(if self.left == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        })
    }

    /// Leaves the in-order mode: every block from the front on is queued for this pass.
    fn poll_all_from_now_on(&mut self) {
        let first = self.in_order.take().unwrap_or(0) / BLOCK;
        for block in (first..self.wakers.len()).rev() {
            self.wakers[block].0.marked.store(true, Ordering::Release);
            self.pass.push(block);
        }
    }

    /// Puts `block` and the blocks of this pass not reached back in the queue.
    fn requeue(&mut self, block: usize) {
        let mut r = lock(&self.ready.inner);
        if !self.wakers[block].0.marked.swap(true, Ordering::AcqRel) {
            r.blocks.push(block);
        }
        // The flags of the blocks not reached are still set: only the list needs them.
        r.blocks.append(&mut self.pass);
    }
}
