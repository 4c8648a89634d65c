//! Registering an owned descriptor with tokio's reactor (feature `tokio`): tokio 1.5x made
//! its registration `unsafe` (the descriptor must stay open and the same for as long as the
//! registration lives), so it lives here, behind a safe function that takes ownership.

use std::io;
use std::os::fd::OwnedFd;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Registers `fd` with the running loop's reactor for readability (which includes hang-up
/// and errors).
///
/// # Errors
///
/// When no loop with an I/O driver runs on this thread (reported, never a panic), or when
/// epoll refuses the descriptor.
pub(crate) fn register_readable(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other("no running event loop"));
    }
    // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, which owns it until it is dropped
    // (deregistering first): the descriptor stays open and refers to the same file for the
    // registration's whole life, and `OwnedFd::as_raw_fd` always returns that one number.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|e| e.into())
}
