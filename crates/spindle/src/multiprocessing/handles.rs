//! Descriptors that travel in a `Process`'s arguments (the seam between the start path and
//! the IPC handles).
//!
//! **Stand-in.** This file is the `ipc` branch's placeholder for the version the `boot` branch
//! owns (see the contract in the branches' brief): the same two functions, but no encode or
//! decode scope is ever active here, so both always fail with the errors the contract names.
//! A handle's `Serialize`/`Deserialize` are written against these functions; until the real
//! seam lands, handles reach a child only by being captured in a fork closure.

use std::os::fd::{BorrowedFd, OwnedFd};

use crate::error::{Error, Result};

/// While a `Process`'s arguments are being encoded: dups `fd` into the call's descriptor table
/// and returns its index. Outside that, [`Error::InvalidArgument`].
pub(crate) fn stash_fd(fd: BorrowedFd<'_>) -> Result<u32> {
    let _ = fd;
    Err(Error::InvalidArgument(
        "an IPC handle (connection, queue, lock, shared segment) can only travel in a \
         Process's arguments, or be captured by a fork closure"
            .into(),
    ))
}

/// While a child decodes its call's arguments: takes ownership of descriptor `index` of the
/// call's table. Outside that, [`Error::Protocol`].
pub(crate) fn take_fd(index: u32) -> Result<OwnedFd> {
    Err(Error::Protocol(format!(
        "descriptor {index} named by a handle, but no descriptor table came with this call"
    )))
}
