//! Descriptors that a forked child must not keep: the parent's ends of channels to *other*
//! children, and the parent's event descriptors.
//!
//! A forked child inherits every descriptor of its parent. A child that keeps the parent's
//! end of a sibling's channel open holds that channel alive after the parent closed it, and
//! could write into it. So such descriptors are registered here while they are open, and a
//! forked child closes every registered number before it runs anything else.
//!
//! The table is a fixed array of atomics, not a locked list: a lock that another thread of
//! the parent held at the moment of the fork would stay locked forever in the child. Each
//! slot is read atomically in the child, and a descriptor leaves the table *before* it is
//! closed, so every number the child finds was open when it was forked.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicI32, Ordering};

const SLOTS: usize = 1024;
const EMPTY: i32 = -1;

static TABLE: [AtomicI32; SLOTS] = [const { AtomicI32::new(EMPTY) }; SLOTS];

/// A registered descriptor; dropping it removes it from the table (do so before closing the
/// descriptor: keep the registration in a field declared *before* the descriptor's owner).
#[derive(Debug)]
pub(crate) struct Registration {
    slot: Option<usize>,
}

/// Registers `fd` as private to this process: forked children close it. When the table is
/// full the descriptor is simply not registered (children then keep a copy, as without this
/// table).
pub(crate) fn register(fd: BorrowedFd<'_>) -> Registration {
    let raw = fd.as_raw_fd();
    for (i, slot) in TABLE.iter().enumerate() {
        if slot
            .compare_exchange(EMPTY, raw, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return Registration { slot: Some(i) };
        }
    }
    Registration { slot: None }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            TABLE[i].store(EMPTY, Ordering::Release);
        }
    }
}

/// In a freshly forked child: closes every registered descriptor (the parent's) and empties
/// the table, so that the child's own registrations start from nothing.
pub(crate) fn close_all_in_child() {
    for slot in &TABLE {
        let raw = slot.swap(EMPTY, Ordering::AcqRel);
        if raw >= 0 {
            // SAFETY: in a forked child, the number was a registered descriptor of the parent
            // at the moment of the fork (registered after it was opened, removed before it
            // is closed), so it is open here and belongs to the parent's objects, which this
            // child never uses or drops (it ends with `_exit`).
            unsafe { libc::close(raw) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_registration_holds_a_slot_until_dropped() {
        let holds = |raw: i32| TABLE.iter().any(|s| s.load(Ordering::Acquire) == raw);
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let raw = a.as_raw_fd();
        let reg = register(a.as_fd());
        assert!(holds(raw));
        drop(reg);
        assert!(!holds(raw));
    }
}
