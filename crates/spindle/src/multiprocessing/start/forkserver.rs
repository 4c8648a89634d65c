//! forkserver, client side: asks the fork server for a child and hands it the call.
//!
//! See `multiprocessing/README.md` for the protocol. In short: the parent creates the
//! child's control socket pair and a status pipe, sends one end of each to the server in one
//! `SOCK_SEQPACKET` message (`b"F"` + 2 descriptors); the server forks, answers
//! `b"P"` + pid (u32 LE) + a pidfd of the child, and later writes the child's raw wait status
//! into the status pipe after reaping it. The call itself goes straight from the parent to the
//! child over the control socket, as with spawn; a small one is written before the request,
//! so the child finds it waiting.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use super::{on_launcher, CallBytes, ChildRef, Launch, Started, Status};
use crate::error::{Error, Result};
use crate::latch::lock;
use crate::sys;

/// The request byte and the reply bytes of the server protocol.
pub(crate) const REQ_FORK: u8 = b'F';
pub(crate) const REP_PID: u8 = b'P';
pub(crate) const REP_ERR: u8 = b'E';

#[derive(Debug)]
struct Server {
    /// The process that started the server (a forked child inherits the static but must not
    /// share the connection).
    owner: u32,
    pid: u32,
    sock: OwnedFd,
}

static SERVER: Mutex<Option<Server>> = Mutex::new(None);

/// The fork server's pid, once it runs (for benchmarks and tests).
pub(crate) fn server_pid() -> Option<u32> {
    lock(&SERVER)
        .as_ref()
        .filter(|s| s.owner == sys::proc::getpid())
        .map(|s| s.pid)
}

fn spawn_server() -> Result<Server> {
    sys::image::keep_entry_linked();
    let (ours, theirs) = sys::fd::seqpacket_pair()?;
    let me = sys::proc::getpid();
    let mode = format!("forkserver,{},{me}", theirs.as_raw_fd());
    let pid = on_launcher(move || {
        let pid = sys::proc::spawn_self(&[(sys::image::CHILD_ENV, mode)], &[theirs.as_fd()]);
        drop(theirs);
        pid
    })??;
    Ok(Server {
        owner: me,
        pid,
        sock: ours,
    })
}

/// Asks the server for a child; returns its pid and pidfd.
fn request(child_sock: BorrowedFd<'_>, status_w: BorrowedFd<'_>) -> Result<(u32, OwnedFd)> {
    let mut g = lock(&SERVER);
    let me = sys::proc::getpid();
    let mut last_err = None;
    for _attempt in 0..2 {
        if g.as_ref().is_none_or(|s| s.owner != me) {
            *g = Some(spawn_server()?);
        }
        let server = g.as_ref().expect("server just set");
        let mut buf = [0u8; 16];
        let reply =
            sys::fd::send_with_fds(server.sock.as_fd(), &[REQ_FORK], &[child_sock, status_w])
                .and_then(|()| sys::fd::recv_with_fds(server.sock.as_fd(), &mut buf));
        match reply {
            Ok((5, mut fds)) if buf[0] == REP_PID && fds.len() == 1 => {
                let pid = u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
                return Ok((pid, fds.pop().expect("one descriptor")));
            }
            Ok((5, _)) if buf[0] == REP_ERR => {
                let errno = i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
                return Err(Error::Io(std::io::Error::from_raw_os_error(errno)));
            }
            Ok((0, _)) | Err(_) => {
                // The server died (killed, or it could not start): reap it and start another.
                let dead = g.take().expect("server present");
                let _ = sys::proc::waitpid(dead.pid, false);
                last_err = Some(reply.err());
            }
            Ok((n, _)) => {
                return Err(Error::Protocol(format!(
                    "malformed fork server reply of {n} bytes"
                )))
            }
        }
    }
    Err(match last_err.flatten() {
        Some(e) => Error::Io(e),
        None => Error::Protocol("the fork server closed its connection".into()),
    })
}

/// A call of at most this many bytes is written into the child's socket before the fork
/// request: the socket's buffer holds it, and the child finds it there as soon as it runs.
const PIPELINED: usize = 32 * 1024;

pub(crate) fn start(launch: Launch) -> Result<Started> {
    let (entry, args) = launch.job.entry()?;
    let call = CallBytes::new(&launch, entry, args)?;
    let (mut sock, theirs) = UnixStream::pair()?;
    let (status_r, status_w) = sys::fd::pipe()?;
    // Written before the child exists, so that it need not wait for a second message after
    // the fork, and the server's reply overlaps with the child's start.
    let early = call.fits(PIPELINED);
    if early {
        call.send(&mut sock, args)?;
    }
    let (pid, pidfd) = request(theirs.as_fd(), status_w.as_fd())?;
    drop(theirs);
    drop(status_w);
    if !early {
        call.send(&mut sock, args)?;
    }
    Ok(Started {
        child: ChildRef::new(pid, pidfd),
        sock,
        status: Status::Server(File::from(status_r)),
    })
}
