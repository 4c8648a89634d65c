//! The platform seam: the only module allowed `unsafe` and `libc`.
//!
//! Everything above this module speaks in `OwnedFd`, `u32` pids, `io::Result` and plain Rust
//! types; nothing above it names a libc call, a raw errno or a raw fd number. Nothing in here
//! knows about pools, futures, Python names or the layers above: the pre-main hook lives in
//! `multiprocessing::bootstrap` and calls down into [`trust`] and [`image`].
//!
//! Conventions (after nix's `CONVENTIONS.md`): one errno-to-`Result` helper ([`cvt`]),
//! `MaybeUninit` out-parameters, `unsafe fn` with a `# Safety` section only where the hazard is
//! the caller's ([`proc::fork`]), and a `// SAFETY:` comment on every `unsafe` block.
//!
//! Linux is the only implementation today (pidfd, signalfd, `PR_SET_PDEATHSIG`); a macOS
//! implementation would add a sibling folder behind the same names.

#[cfg(feature = "tokio")]
pub(crate) mod async_fd;
pub(crate) mod clone;
pub(crate) mod event;
pub(crate) mod fd;
pub(crate) mod fork_private;
pub(crate) mod futex;
pub(crate) mod image;
pub(crate) mod memory;
#[cfg(feature = "tokio")]
pub(crate) mod pinned;
pub(crate) mod proc;
pub(crate) mod shm;
pub(crate) mod signal;
pub(crate) mod stdio;
pub(crate) mod trust;

use std::io;

/// Turns a `-1` return of a libc call into the thread's `errno` as an `io::Error`.
pub(crate) fn cvt<T: PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`cvt`], retrying while the call was interrupted by a signal (`EINTR`).
pub(crate) fn cvt_retry<T: PartialEq + From<i8>>(mut f: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match cvt(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
