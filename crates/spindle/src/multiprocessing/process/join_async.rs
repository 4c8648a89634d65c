//! [`Process::join_async`]: `join` from a coroutine, awaiting the child's pidfd and its socket
//! on the loop's epoll instead of blocking the loop's thread (feature `tokio`).

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Process;
use crate::asyncio::readiness::Readiness;
use crate::error::{Error, Result};
use crate::latch::lock;

impl<R: Serialize + DeserializeOwned> Process<R> {
    /// Waits for the child to end and returns its function's value, like
    /// [`join`](Process::join), without blocking the loop's thread: other coroutines run
    /// while the child does.
    ///
    /// As `join`, it reads the child's value while the child runs (a value larger than the
    /// socket's buffer never deadlocks). Dropping the future (a cancelled coroutine) leaves
    /// the process as it was: a later `join` gets the value.
    ///
    /// ```
    /// use spindle::asyncio;
    /// use spindle::multiprocessing::{get_context, StartMethod};
    ///
    /// fn square(n: u64) -> u64 { n * n }
    ///
    /// let p = get_context(StartMethod::Fork).process().target(square, (9,));
    /// p.start()?;
    /// assert_eq!(asyncio::run(p.join_async())??, 81);
    /// # Ok::<(), spindle::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`join`](Process::join); [`Error::Io`] when the loop cannot watch the
    /// child (not inside a loop).
    pub async fn join_async(&self) -> Result<R> {
        loop {
            match self.join_timeout(Duration::ZERO) {
                Err(Error::Timeout) => {}
                other => return other,
            }
            // The child runs: await its exit, or more of its value on the socket.
            let fds: Vec<OwnedFd> = {
                let w = lock(&self.waiter);
                let mut fds = Vec::with_capacity(2);
                if let Some(child) = self.child.get() {
                    fds.push(child.exit_fd().try_clone_to_owned()?);
                }
                if let Some(sock) = w.started.as_ref() {
                    if w.outcome.is_none() && !w.sock_done {
                        fds.push(sock.as_fd().try_clone_to_owned()?);
                    }
                }
                fds
            };
            let watch = Readiness::from_owned(fds)?;
            watch.readable().await?;
        }
    }
}
