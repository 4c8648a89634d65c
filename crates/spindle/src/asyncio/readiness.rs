//! Awaiting descriptors on the loop's own epoll (tokio's `AsyncFd`): how a coroutine waits
//! for a child's exit (its pidfd), a queue's doorbell (an eventfd) or a socket without
//! blocking the loop's thread.
//!
//! Each wait registers duplicates of the descriptors, never the originals: the same
//! descriptor may be awaited by two coroutines at once (epoll refuses a descriptor twice),
//! and the blocking calls of the same objects keep polling the originals as before.

use std::future::poll_fn;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::task::Poll;

use tokio::io::unix::AsyncFd;

use crate::multiprocessing::connection::Waitable;
use crate::{Error, Result};

/// Duplicates of some descriptors, registered with the running loop for readability
/// (which includes hang-up and errors).
pub(crate) struct Readiness {
    fds: Vec<AsyncFd<OwnedFd>>,
}

impl Readiness {
    /// Registers duplicates of `fds`.
    pub(crate) fn new<'a>(fds: impl IntoIterator<Item = BorrowedFd<'a>>) -> io::Result<Self> {
        let owned = fds
            .into_iter()
            .map(|fd| fd.try_clone_to_owned())
            .collect::<io::Result<Vec<_>>>()?;
        Self::from_owned(owned)
    }

    /// Registers `fds` (duplicates the caller made).
    ///
    /// # Errors
    ///
    /// Outside a loop, or in a tokio runtime built without its I/O driver (tokio panics
    /// there; the panic is caught and becomes this error).
    pub(crate) fn from_owned(fds: Vec<OwnedFd>) -> io::Result<Self> {
        let register = move || {
            fds.into_iter()
                .map(crate::sys::async_fd::register_readable)
                .collect::<io::Result<Vec<_>>>()
        };
        let fds = crate::panic::catch(register).map_err(|report| {
            io::Error::other(format!(
                "the loop cannot watch descriptors (a runtime without I/O?): {report}"
            ))
        })??;
        Ok(Readiness { fds })
    }

    /// Waits until at least one descriptor has become readable (or hung up) since the last
    /// call; returns which, and forgets that they were (the next call waits for a new event).
    pub(crate) async fn readable(&self) -> io::Result<Vec<bool>> {
        poll_fn(|cx| {
            let mut ready = vec![false; self.fds.len()];
            let mut any = false;
            for (i, fd) in self.fds.iter().enumerate() {
                match fd.poll_read_ready(cx) {
                    Poll::Ready(Ok(mut guard)) => {
                        guard.clear_ready();
                        ready[i] = true;
                        any = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if any {
                Poll::Ready(Ok(ready))
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

/// Withdraws a [`Waitable`]'s registered waiter however the wait ends (the coroutine may be
/// cancelled while it waits).
struct Registered<'a, W: Waitable + ?Sized>(&'a W);

impl<W: Waitable + ?Sized> Drop for Registered<'_, W> {
    fn drop(&mut self) {
        self.0.register(false);
    }
}

/// Waits, without blocking the loop, until `obj` is ready as
/// [`connection::wait`](crate::multiprocessing::connection::wait) means it: a message, an
/// item or the end of stream can be received without waiting.
pub(crate) async fn ready<W: Waitable + ?Sized>(obj: &W) -> Result<()> {
    if obj.ready_now(false) {
        return Ok(());
    }
    obj.register(true);
    let _registered = Registered(obj);
    let fds =
        Readiness::new(obj.wait_fds().into_iter().map(|(fd, _hangup)| fd)).map_err(Error::Io)?;
    let mut polled = false;
    loop {
        // After registering: a producer that committed before it saw the waiter is seen here.
        if obj.ready_now(polled) {
            return Ok(());
        }
        fds.readable().await.map_err(Error::Io)?;
        polled = true;
    }
}
