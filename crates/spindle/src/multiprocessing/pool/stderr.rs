//! Workers' standard error: each worker writes into a pipe of its own; the supervisor reads
//! it, keeps the last lines (for a dead worker's error) and hands whole lines to one relay
//! thread per pool, which writes them to this process's standard error.
//!
//! The relay thread is what keeps the supervisor from ever blocking on the parent's stderr
//! (a full pipe nobody reads, a user holding `stderr().lock()`): the supervisor only queues
//! lines; when the queue is full (stderr stuck), lines are dropped and counted, and the
//! count is printed once stderr moves again.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender, TrySendError};

use crate::sys;

/// Lines kept per worker for its death report.
pub(crate) const KEEP: usize = 20;
/// A line longer than this is cut (and relayed in pieces).
const MAX_LINE: usize = 8 * 1024;
/// Lines waiting for the relay thread before new ones are dropped.
const QUEUE: usize = 4096;

/// The relay thread of a pool.
#[derive(Debug)]
pub(crate) struct Relay {
    tx: Option<Sender<Vec<u8>>>,
    dropped: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    pub(crate) fn start() -> std::io::Result<Relay> {
        let (tx, rx) = bounded::<Vec<u8>>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = Arc::clone(&dropped);
        let thread = std::thread::Builder::new()
            .name("spindle-pool-stderr".into())
            .spawn(move || {
                for line in rx {
                    let mut err = std::io::stderr().lock();
                    let n = lost.swap(0, Ordering::Relaxed);
                    if n > 0 {
                        let _ = writeln!(err, "spindle: {n} lines of pool workers' stderr were dropped (stderr was blocked)");
                    }
                    let _ = err.write_all(&line);
                }
            })?;
        Ok(Relay {
            tx: Some(tx),
            dropped,
            thread: Some(thread),
        })
    }

    fn send(&self, line: Vec<u8>) {
        if let Some(tx) = &self.tx {
            if let Err(TrySendError::Full(_)) = tx.try_send(line) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The read end of one worker's stderr pipe, its unfinished line and its last lines.
#[derive(Debug)]
pub(crate) struct Tap {
    // Declared before `pipe`: leaves the fork-private table before the pipe closes.
    _private: sys::fork_private::Registration,
    pipe: File,
    partial: Vec<u8>,
    last: VecDeque<String>,
}

impl Tap {
    /// A tap on the non-blocking read end of a worker's stderr pipe.
    pub(crate) fn new(read_end: OwnedFd) -> std::io::Result<Tap> {
        let file = File::from(read_end);
        Ok(Tap {
            _private: sys::fork_private::register(std::os::fd::AsFd::as_fd(&file)),
            pipe: file,
            partial: Vec::new(),
            last: VecDeque::new(),
        })
    }

    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.pipe)
    }

    /// Reads what the pipe holds, relays whole lines; returns `false` at end of stream.
    pub(crate) fn pump(&mut self, relay: Option<&Relay>) -> bool {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.pipe.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => self.take(&buf[..n], relay),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }

    fn take(&mut self, mut bytes: &[u8], relay: Option<&Relay>) {
        while !bytes.is_empty() {
            match bytes.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.partial.extend_from_slice(&bytes[..=i]);
                    bytes = &bytes[i + 1..];
                    self.line(relay);
                }
                None => {
                    self.partial.extend_from_slice(bytes);
                    bytes = &[];
                    if self.partial.len() >= MAX_LINE {
                        self.partial.push(b'\n');
                        self.line(relay);
                    }
                }
            }
        }
    }

    fn line(&mut self, relay: Option<&Relay>) {
        let line = std::mem::take(&mut self.partial);
        let text = String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(&line));
        if self.last.len() == KEEP {
            self.last.pop_front();
        }
        self.last.push_back(text.into_owned());
        if let Some(relay) = relay {
            relay.send(line);
        }
    }

    /// Reads the rest (the worker has exited), relays a last unfinished line, and returns the
    /// last lines.
    pub(crate) fn finish(&mut self, relay: Option<&Relay>) -> Vec<String> {
        self.pump(relay);
        if !self.partial.is_empty() {
            self.partial.push(b'\n');
            self.line(relay);
        }
        self.last.iter().cloned().collect()
    }
}
