//! forkserver, client side: asks the fork server for a child and hands it the call.
//!
//! See `multiprocessing/README.md` and `forkserver/protocol.rs`. In short: the parent creates
//! the child's control socket pair, opens its working directory (`O_PATH`), reads the signals
//! it ignores, and sends one `SOCK_SEQPACKET` request to the server with the child's end and
//! the directory attached; the server clones a child of *ours* and answers with its pid and a
//! pidfd. The call itself goes straight from the parent to the child over the control socket,
//! as with spawn; a small one is written before the request, so the child finds it waiting.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use super::{on_launcher, program, CallBytes, ChildRef, Launch, Started, Unstarted};
use crate::error::{Error, Result};
use crate::latch::lock;
use crate::multiprocessing::forkserver::protocol::{Reply, Request};
use crate::multiprocessing::{bootstrap, StartMethod};
use crate::sys::{self, fd::Tracked};

#[derive(Debug)]
struct Server {
    /// The process that started the server (a forked child inherits the static but must not
    /// share the connection).
    owner: u32,
    pid: u32,
    sock: Tracked<OwnedFd>,
}

static SERVER: Mutex<Option<Server>> = Mutex::new(None);

/// The argument that marks the fork server in `ps`.
const SERVER_MARK: &str = "--spindle-fork-server";

/// The fork server's pid, once it runs (for benchmarks and tests).
pub(crate) fn server_pid() -> Option<u32> {
    lock(&SERVER)
        .as_ref()
        .filter(|s| s.owner == sys::proc::getpid())
        .map(|s| s.pid)
}

fn spawn_server() -> Result<Server> {
    bootstrap::keep_entry_linked();
    let (program, argv0) = program(StartMethod::Forkserver)?;
    let (ours, theirs) = Tracked::make_pair(sys::fd::seqpacket_pair)?;
    let me = sys::proc::getpid();
    let mode = format!("forkserver,{},{me}", sys::fd::CHANNEL_FD);
    let pid = on_launcher(move || {
        let pid = sys::proc::spawn_program(&sys::proc::SpawnSpec {
            program: &program,
            argv: &[argv0, SERVER_MARK.into()],
            var: Some((bootstrap::child_var(), &mode)),
            channel: Some(theirs.as_fd()),
        });
        drop(theirs);
        pid
    })??;
    Ok(Server {
        owner: me,
        pid,
        sock: ours,
    })
}

/// Asks the server for a child; returns it, guarded until the start completes.
fn request(channel: BorrowedFd<'_>, cwd: BorrowedFd<'_>, req: Request) -> Result<Unstarted> {
    let mut g = lock(&SERVER);
    let me = sys::proc::getpid();
    let mut last_err = None;
    for _attempt in 0..2 {
        if g.as_ref().is_none_or(|s| s.owner != me) {
            *g = Some(spawn_server()?);
        }
        let server = g.as_ref().expect("server just set");
        let mut buf = [0u8; 16];
        let reply = sys::fd::send_with_fds(server.sock.as_fd(), &req.encode(), &[channel, cwd])
            .and_then(|()| sys::fd::recv_with_fds(server.sock.as_fd(), &mut buf));
        match reply {
            Ok((0, _)) | Err(_) => {
                // The server died (killed, or it could not start): reap it and start another.
                let dead = g.take().expect("server present");
                let _ = sys::proc::waitpid(dead.pid, false);
                last_err = Some(reply.err());
            }
            Ok((n, mut fds)) => {
                return match (Reply::decode(&buf[..n]), fds.pop()) {
                    (Some(Reply::Pid(pid)), Some(pidfd)) if fds.is_empty() => {
                        let pidfd = Tracked::make(|| Ok(pidfd))?;
                        Ok(Unstarted::new(ChildRef::new(pid, pidfd)))
                    }
                    (Some(Reply::Err(errno)), None) => {
                        Err(Error::Io(std::io::Error::from_raw_os_error(errno)))
                    }
                    _ => Err(Error::Protocol(format!(
                        "malformed fork server reply of {n} bytes"
                    ))),
                };
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
    let (entry, args, fds) = launch.job.entry()?;
    let call = CallBytes::new(&launch, StartMethod::Forkserver, entry, args, fds.len())?;
    let (mut sock, theirs) = sys::fd::stream_pair()?;
    let cwd = Tracked::make(sys::fd::open_cwd)?;
    let req = Request {
        ignored: sys::signal::ignored_set(),
    };
    // Written before the child exists, so that it need not wait for a second message after
    // the fork, and the server's reply overlaps with the child's start.
    let early = call.fits(PIPELINED);
    if early {
        call.send(&mut sock, args, fds)?;
    }
    let child = request(theirs.as_fd(), cwd.as_fd(), req)?;
    drop(theirs);
    drop(cwd);
    if !early {
        call.send(&mut sock, args, fds)?;
    }
    sock.set_nonblocking(true)?;
    Ok(Started {
        child: child.started(),
        sock,
    })
}
