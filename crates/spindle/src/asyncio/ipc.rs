//! Awaiting spindle's IPC from a coroutine without blocking the loop: `get_async` on the
//! queues, `recv_async` on connections (`Process::join_async` is beside `Process`, in
//! `multiprocessing/process/join_async.rs`, as it reads the process's own state).
//!
//! Each tries the non-blocking form first; when nothing is there, it awaits the same
//! descriptors [`connection::wait`](crate::multiprocessing::connection::wait) polls (a
//! queue's doorbell and its peers' socket, a stream's socket) on the loop's epoll, and tries
//! again. Several consumers may race for one item: the loser waits again.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::readiness::ready;
use crate::multiprocessing::connection::{Connection, RecvError};
use crate::multiprocessing::queues::{GetError, JoinableQueue, Queue, Receiver};

/// `get_async` for a type with `get_nowait` that is [`Waitable`](crate::multiprocessing::connection::Waitable).
macro_rules! get_async {
    () => {
        /// Takes the next item, awaiting one without blocking the loop's thread (`await`
        /// where Python would call `get()` in an executor).
        ///
        /// # Errors
        ///
        /// Those of `get`: [`GetError::Disconnected`] when the queue is empty and every
        /// sender is gone, [`GetError::Failed`] when an item does not decode (or the loop
        /// cannot watch the queue: not inside a loop).
        pub async fn get_async(&self) -> Result<T, GetError> {
            loop {
                match self.get_nowait() {
                    Err(GetError::Empty) => {}
                    other => return other,
                }
                ready(self).await.map_err(GetError::Failed)?;
            }
        }
    };
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    get_async!();
}

impl<T: Serialize + DeserializeOwned> Receiver<T> {
    get_async!();
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// [`Queue::get_async`].
    ///
    /// # Errors
    ///
    /// Those of [`Queue::get_async`].
    pub async fn get_async(&self) -> Result<T, GetError> {
        self.queue().get_async().await
    }
}

impl<S: Serialize, R: DeserializeOwned> Connection<S, R> {
    /// Receives one value, awaiting it without blocking the loop's thread.
    ///
    /// ```
    /// use spindle::asyncio;
    /// use spindle::multiprocessing::connection::pipe;
    ///
    /// let (a, b) = pipe::<u32, u32>(true)?;
    /// let got = asyncio::run(async move {
    ///     let reader = asyncio::create_task(async move { a.recv_async().await })?;
    ///     asyncio::sleep(std::time::Duration::from_millis(5)).await;
    ///     b.send(&9)?;
    ///     Ok::<_, spindle::Error>(reader.await??)
    /// })??;
    /// assert_eq!(got, 9);
    /// # Ok::<(), spindle::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`recv`](Connection::recv); [`RecvError::Bad`] when the loop cannot watch
    /// the connection (not inside a loop).
    pub async fn recv_async(&self) -> Result<R, RecvError> {
        loop {
            match self.recv_timeout(std::time::Duration::ZERO) {
                Err(RecvError::Timeout) => {}
                other => return other,
            }
            ready(self).await.map_err(RecvError::Bad)?;
        }
    }
}
