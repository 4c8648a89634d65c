//! Descriptors that travel in a `Process`'s arguments (the contract in the `boot` and `ipc`
//! branches' `handles.md`).
//!
//! **Stand-in.** This file is the placeholder the contract describes: no encode or decode
//! scope is ever active here, so both functions return their errors and a handle can travel
//! only by being captured in a [`Builder::fork_target`](super::Builder::fork_target) closure.
//! The `boot` branch owns the real file (scopes set up by `Builder::target` and the
//! bootstrap, descriptors sent with `SCM_RIGHTS` beside the call); merging it replaces this
//! one unchanged, and the pool's spawn and forkserver workers start working then.

use std::os::fd::{BorrowedFd, OwnedFd};

use crate::error::{Error, Result};

/// While a `Process`'s arguments are being encoded: dups `fd` into the call's descriptor
/// table and returns its index. Outside that, `Err(Error::InvalidArgument(..))`.
pub(crate) fn stash_fd(fd: BorrowedFd<'_>) -> Result<u32> {
    let _ = fd;
    Err(Error::InvalidArgument(
        "a descriptor handle can only travel in a Process's arguments (or captured by a \
         fork_target closure)"
            .into(),
    ))
}

/// While a child decodes its call's arguments: takes ownership of descriptor `index` of the
/// call's table. Out of range, taken twice, or no table active: `Err(Error::Protocol(..))`.
pub(crate) fn take_fd(index: u32) -> Result<OwnedFd> {
    Err(Error::Protocol(format!(
        "descriptor {index} of the call: no descriptor table is active"
    )))
}
