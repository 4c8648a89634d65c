//! A boxed slice whose elements are pinned where they lie: many futures polled in place with
//! one allocation for all of them (`asyncio::gather`, `as_completed`), rather than a `Box`
//! each.
//!
//! Not a platform call: it lives here because `sys` is the one home of `unsafe` in the crate
//! (two pin projections, the same ones `futures::future::join_all` makes). The safe API never
//! moves an element after it was pinned: an element is only polled through a `Pin`, dropped
//! in place by [`PinnedSlots::clear`], or dropped with the whole slice.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Futures in one pinned boxed slice; a cleared slot is `None`.
pub(crate) struct PinnedSlots<F> {
    slots: Pin<Box<[Option<F>]>>,
}

impl<F> PinnedSlots<F> {
    /// The futures, each pinned from now on (one allocation for all).
    pub(crate) fn new(futures: impl IntoIterator<Item = F>) -> Self {
        let slots: Box<[Option<F>]> = futures.into_iter().map(Some).collect();
        PinnedSlots {
            slots: Box::into_pin(slots),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Slot `i`, pinned (`None` out of range).
    fn slot(&mut self, i: usize) -> Option<Pin<&mut Option<F>>> {
        // SAFETY: the slice is never moved out of its box nor reallocated, and nothing here
        // moves an element out of the `&mut` slice: it is only indexed, and the element is
        // handed back pinned at once.
        let slots = unsafe { self.slots.as_mut().get_unchecked_mut() };
        let slot = slots.get_mut(i)?;
        // SAFETY: `slot` lies in the pinned slice (above), so it is pinned as well: it is
        // only ever polled through this `Pin`, or replaced by `Pin::set`, which drops the old
        // value in place before the slot is reused.
        Some(unsafe { Pin::new_unchecked(slot) })
    }

    /// Whether slot `i` holds a future still.
    pub(crate) fn is_some(&self, i: usize) -> bool {
        self.slots.get(i).is_some_and(Option::is_some)
    }

    /// Drops the future of slot `i` in place (no-op on an empty slot).
    pub(crate) fn clear(&mut self, i: usize) {
        if let Some(mut slot) = self.slot(i) {
            slot.set(None);
        }
    }
}

impl<F: Future> PinnedSlots<F> {
    /// Polls the future of slot `i`; `None` when the slot is empty. A finished future is
    /// dropped in place at once.
    pub(crate) fn poll(&mut self, i: usize, cx: &mut Context<'_>) -> Option<Poll<F::Output>> {
        let mut slot = self.slot(i)?;
        let out = slot.as_mut().as_pin_mut()?.poll(cx);
        if out.is_ready() {
            slot.set(None);
        }
        Some(out)
    }
}

impl<F> fmt::Debug for PinnedSlots<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedSlots")
            .field("len", &self.slots.len())
            .field("left", &self.slots.iter().filter(|s| s.is_some()).count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::marker::PhantomPinned;
    use std::rc::Rc;
    use std::task::Waker;

    /// A future that checks it was never moved between polls (it keeps its first address),
    /// is ready on its second poll, and counts its drops.
    struct Fixed {
        at: Cell<usize>,
        polls: u32,
        drops: Rc<Cell<u32>>,
        _pin: PhantomPinned,
    }

    impl Future for Fixed {
        type Output = usize;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<usize> {
            // SAFETY: (test) only plain fields are touched; nothing is moved out.
            let this = unsafe { self.get_unchecked_mut() };
            let here = std::ptr::from_ref(this) as usize;
            if this.at.get() == 0 {
                this.at.set(here);
            }
            assert_eq!(this.at.get(), here, "moved while pinned");
            this.polls += 1;
            if this.polls == 2 {
                Poll::Ready(here)
            } else {
                Poll::Pending
            }
        }
    }

    impl Drop for Fixed {
        fn drop(&mut self) {
            self.drops.set(self.drops.get() + 1);
        }
    }

    #[test]
    fn futures_stay_put_and_each_is_dropped_once() {
        let drops = Rc::new(Cell::new(0));
        let make = || Fixed {
            at: Cell::new(0),
            polls: 0,
            drops: drops.clone(),
            _pin: PhantomPinned,
        };
        let mut set = PinnedSlots::new((0..5).map(|_| make()));
        let mut cx = Context::from_waker(Waker::noop());
        for i in 0..5 {
            assert!(set.poll(i, &mut cx).unwrap().is_pending());
        }
        // The second poll of slot 1 finishes it: dropped in place, the slot empty.
        assert!(set.poll(1, &mut cx).unwrap().is_ready());
        assert_eq!(drops.get(), 1);
        assert!(!set.is_some(1));
        assert!(
            set.poll(1, &mut cx).is_none(),
            "an empty slot is not polled"
        );
        set.clear(3);
        set.clear(3);
        assert_eq!(drops.get(), 2, "a cleared slot drops its future once");
        assert!(set.poll(9, &mut cx).is_none(), "out of range");
        assert_eq!(set.len(), 5);
        drop(set);
        assert_eq!(drops.get(), 5, "the rest drop with the set");
    }
}
