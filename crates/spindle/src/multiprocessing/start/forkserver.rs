//! forkserver, client side: hands the call to a spare child the fork server forked ahead.
//!
//! See `multiprocessing/README.md` and `forkserver/protocol.rs`. In short: we ask the server
//! for each spare with the spare's end of a new control socket; the server forks it and
//! answers with its pid and a pidfd, which wait in our connection until a start reads them. A
//! start takes the oldest spare announced, sends it the hand-over (the signals the caller
//! ignores, its working directory as an `O_PATH` descriptor, then the call itself, as spawn
//! sends it) and asks for the next spare, which the server forks while this start's child
//! runs. The spare is our own child from birth (`CLONE_PARENT`): it is reaped by pid after its
//! pidfd wakes, like fork and spawn children.
//!
//! When starts come faster than the server forks, a start waits for the spare it asked for
//! (then it costs what a start without spares costs: one fork of the server) and asks for one
//! more, so that the server forks the next ones back to back; the surplus drains when starts
//! slow down (see [`Server::take`]).
//!
//! **What the caller's process sees.** One more child of its own while a fork server runs (up
//! to [`MAX_AHEAD`] after a burst of starts): the waiting spare, named like the server. It ends
//! like any child (`CLONE_PARENT` gives it the server's exit signal, `SIGCHLD`), so a user's
//! `waitpid(-1)` may reap it once dead; spindle waits through pidfds, never by pid, so nothing
//! is then reaped by mistake and the next start takes another spare. `active_children()` does
//! not list it (it is no `Process`), and the exit hook does not wait for it: at exit its
//! control socket closes and its death signal fires. If the fork server is killed, its waiting
//! spares end too; they stay zombies until the next forkserver start reaps them with the
//! server (or the process ends).

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use super::{on_launcher, program, CallBytes, ChildRef, Launch, Sent, Started, Unstarted};
use crate::error::{Error, Result};
use crate::latch::lock;
use crate::multiprocessing::forkserver::protocol::{Handover, Reply, REQ_NEXT};
use crate::multiprocessing::{bootstrap, StartMethod};
use crate::sys::{self, fd::Tracked};

/// A child the server forked ahead, waiting for its call.
#[derive(Debug)]
pub(crate) struct Spare {
    pid: u32,
    pidfd: Tracked<OwnedFd>,
    sock: Tracked<UnixStream>,
}

impl Spare {
    /// Kills and reaps a spare that will not get a call (ours from birth).
    fn discard(self) {
        ChildRef::new(self.pid, self.pidfd).kill_and_reap();
    }
}

#[derive(Debug)]
struct Server {
    /// The process that started the server (a forked child inherits the static but must not
    /// share the connection).
    owner: u32,
    pid: u32,
    sock: Tracked<OwnedFd>,
    /// Spares announced and not taken yet, oldest first.
    spares: VecDeque<Spare>,
    /// Our ends of the control sockets of the spares asked for and not announced yet, in the
    /// order asked (the server answers in order).
    pending: VecDeque<Tracked<UnixStream>>,
}

/// Why the server could not give a spare.
enum Lost {
    /// The server is gone (killed, or it could not start): start another.
    Server(Option<std::io::Error>),
    /// The server answered with an error.
    Refused(Error),
}

impl Server {
    /// Reads one announcement, waiting for it (or, with `wait` false, `Ok(false)` when none has
    /// arrived). A spare is queued; an error reply is returned.
    fn receive(&mut self, wait: bool) -> std::result::Result<bool, Lost> {
        let mut buf = [0u8; 16];
        // Wait without holding the descriptor registry, then receive and register the
        // descriptors under it, so that no fork on another thread inherits them untracked.
        if wait {
            sys::fd::poll_readable(&[self.sock.as_fd()], None)
                .map_err(|e| Lost::Server(Some(e)))?;
        }
        let got = Tracked::make_many(|| sys::fd::try_recv_with_fds(self.sock.as_fd(), &mut buf));
        let (n, fds) = match got {
            Ok(got) => got,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(Lost::Server(Some(e))),
        };
        if n == 0 {
            return Err(Lost::Server(None));
        }
        let Some(sock) = self.pending.pop_front() else {
            return Err(Lost::Refused(Error::Protocol(
                "the fork server announced a spare nobody asked for".into(),
            )));
        };
        match (
            Reply::decode(&buf[..n]),
            <[Tracked<OwnedFd>; 1]>::try_from(fds),
        ) {
            (Some(Reply::Pid(pid)), Ok([pidfd])) => {
                self.spares.push_back(Spare { pid, pidfd, sock });
                Ok(true)
            }
            (Some(Reply::Err(errno)), Ok(_) | Err(_)) => Err(Lost::Refused(Error::Io(
                std::io::Error::from_raw_os_error(errno),
            ))),
            _ => Err(Lost::Refused(Error::Protocol(format!(
                "malformed fork server message of {n} bytes"
            )))),
        }
    }

    /// Asks for one more spare, sending the spare's end of its new control socket.
    fn ask(&mut self) -> std::io::Result<()> {
        let (ours, theirs) = sys::fd::stream_pair()?;
        sys::fd::send_with_fds(self.sock.as_fd(), &[REQ_NEXT], &[theirs.as_fd()])?;
        self.pending.push_back(ours);
        Ok(())
    }

    /// The oldest spare, waiting for (and asking for) one when none is there.
    ///
    /// A start that has to wait means starts come faster than spares: it asks for one more
    /// first (up to [`MAX_AHEAD`] asked for and not taken), so that the server forks the
    /// following starts' spares back to back while this one waits. [`Server::replace`] lets
    /// the surplus drain once starts slow down.
    fn take(&mut self) -> std::result::Result<Spare, Lost> {
        // The announcements that arrived since the last start.
        while !self.pending.is_empty() && self.receive(false)? {}
        loop {
            if let Some(spare) = self.spares.pop_front() {
                return Ok(spare);
            }
            if self.pending.len() < MAX_AHEAD {
                self.ask().map_err(|e| Lost::Server(Some(e)))?;
            }
            self.receive(true)?;
        }
    }

    /// After a spare was taken: asks for its replacement, unless another one already waits
    /// (left over from a burst), so that one spare waits in the steady state.
    fn replace(&mut self) {
        if self.spares.is_empty() && self.pending.len() < MAX_AHEAD {
            let _ = self.ask();
        }
    }

    /// Reaps the dead server and kills and reaps its waiting spares.
    fn bury(self) {
        let _ = sys::proc::waitpid(self.pid, false);
        for spare in self.spares {
            spare.discard();
        }
    }
}

static SERVER: Mutex<Option<Server>> = Mutex::new(None);

/// The most spares asked for and not taken yet: one in the steady state, more while starts
/// come faster than the server forks (each waiting spare costs about 24 KiB of private memory
/// here).
const MAX_AHEAD: usize = 4;

/// The argument that marks the fork server in `ps`.
const SERVER_MARK: &str = "--spindle-fork-server";

/// The fork server's pid, once it runs (for benchmarks and tests).
pub(crate) fn server_pid() -> Option<u32> {
    lock(&SERVER)
        .as_ref()
        .filter(|s| s.owner == sys::proc::getpid())
        .map(|s| s.pid)
}

/// The pid of the spare the next start would take, once announced (for benchmarks and tests).
pub(crate) fn spare_pid() -> Option<u32> {
    let mut g = lock(&SERVER);
    let server = g.as_mut().filter(|s| s.owner == sys::proc::getpid())?;
    if server.spares.is_empty() && !server.pending.is_empty() {
        let _ = server.receive(true);
    }
    server.spares.front().map(|s| s.pid)
}

/// The pids of every spare waiting now, once the spares asked for have been announced (for
/// tests that count children and descriptors: each waiting spare holds two of ours).
pub(crate) fn spare_pids() -> Vec<u32> {
    let mut g = lock(&SERVER);
    let Some(server) = g.as_mut().filter(|s| s.owner == sys::proc::getpid()) else {
        return Vec::new();
    };
    while !server.pending.is_empty() {
        if server.receive(true).is_err() {
            break;
        }
    }
    server.spares.iter().map(|s| s.pid).collect()
}

/// Makes sure the fork server runs, so that a spare is forked ahead of the next start (the
/// server forks one as it starts and one more after each start). A pool calls this where it
/// expects to start workers soon — when it is built, when a worker died — so that the start
/// that replaces a worker hands its call to a waiting child instead of waiting for a fork.
/// Does not wait for the spare.
pub(crate) fn warm() -> Result<()> {
    let mut g = lock(&SERVER);
    if g.as_ref().is_none_or(|s| s.owner != sys::proc::getpid()) {
        replace_server(&mut g)?;
    }
    Ok(())
}

/// Starts a server in place of whatever `slot` holds: a dead server of ours is buried, one
/// inherited through a fork is forgotten (it is our parent's; its descriptors were closed when
/// we were forked).
fn replace_server(slot: &mut Option<Server>) -> Result<()> {
    match slot.take() {
        Some(old) if old.owner == sys::proc::getpid() => old.bury(),
        Some(inherited) => std::mem::forget(inherited),
        None => {}
    }
    *slot = Some(spawn_server()?);
    Ok(())
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
    let mut server = Server {
        owner: me,
        pid,
        sock: ours,
        spares: VecDeque::new(),
        pending: VecDeque::new(),
    };
    // The first spare is asked for at once: the request waits for the server in its socket.
    server.ask()?;
    Ok(server)
}

/// Takes a spare, starting a server (again) when there is none or it died.
fn take_spare() -> Result<Spare> {
    let mut g = lock(&SERVER);
    let me = sys::proc::getpid();
    let mut last_err = None;
    for _attempt in 0..2 {
        if g.as_ref().is_none_or(|s| s.owner != me) {
            replace_server(&mut g)?;
        }
        let server = g.as_mut().expect("server just set");
        match server.take() {
            Ok(spare) => return Ok(spare),
            Err(Lost::Refused(e)) => return Err(e),
            Err(Lost::Server(e)) => {
                // The server died (killed, or it could not start): bury it and start another.
                g.take().expect("server present").bury();
                last_err = e;
            }
        }
    }
    Err(match last_err {
        Some(e) => Error::Io(e),
        None => Error::Protocol("the fork server closed its connection".into()),
    })
}

/// Asks the server for the spare after the one just taken. A server found dead here is left
/// for the next start, which buries it and starts another.
fn ask_for_next() {
    let mut g = lock(&SERVER);
    if let Some(server) = g.as_mut().filter(|s| s.owner == sys::proc::getpid()) {
        server.replace();
    }
}

pub(crate) fn start(launch: Launch) -> Result<Started> {
    let (entry, args, fds) = launch.job.entry()?;
    // Everything the spare needs from us is read at the start: the signals we ignore now, and
    // (below) the directory we are in now.
    let header = Handover {
        ignored: sys::signal::ignored_set(),
    }
    .encode();
    let call = CallBytes::new(
        &launch,
        StartMethod::Forkserver,
        entry,
        args,
        fds.len(),
        &header,
    )?;
    let cwd = Tracked::make(sys::fd::open_cwd)?;
    // A spare gone before its hand-over (the server died, and it with it) refuses the first
    // write: take another (from a new server, if need be).
    for _attempt in 0..3 {
        let spare = take_spare()?;
        let Spare {
            pid,
            pidfd,
            mut sock,
        } = spare;
        let guard = Unstarted::new(ChildRef::new(pid, pidfd));
        let mut with: Vec<BorrowedFd<'_>> = Vec::with_capacity(1 + fds.len());
        with.push(cwd.as_fd());
        with.extend(fds.iter().map(|f| f.as_fd()));
        let sent = call.send(&mut sock, args, &with);
        // The next spare is forked while this one runs its call.
        ask_for_next();
        match sent? {
            Sent::Written => {
                drop(cwd);
                sock.set_nonblocking(true)?;
                return Ok(Started {
                    child: guard.started(),
                    sock,
                });
            }
            // Dropping the guard kills and reaps it.
            Sent::Refused => continue,
        }
    }
    Err(Error::Protocol(
        "the fork server's spare children ended before they could take the call".into(),
    ))
}
