//! The fork server: a single-threaded process, spawned once and reused, that keeps a child
//! forked ahead for the next start (see `README.md` beside this folder for the protocol,
//! `protocol.rs` for its bytes).
//!
//! It is a fresh exec of the program, entered before `main`, so it has one thread and none of
//! the parent's locks: forking it is safe. Each child is made with
//! `clone3(CLONE_PARENT | CLONE_PIDFD)` (`sys::clone`): it is the *parent's* child, not the
//! server's, so it survives the server's death once it has its call, dies with the parent (its
//! death signal follows the thread that started the server) and is reaped by the parent
//! through its pidfd. The server never reaps anything and keeps no per-child state.
//!
//! **Spares.** A child is made before it is needed: the client asks for one when it starts the
//! server and for one more each time it takes one, sending the spare's end of a new control
//! socket with the request. The new child, a *spare*, keeps only stdio, that socket and the
//! read end of the server's *life pipe*, sets its death signal, and waits; the server answers
//! with its pid and a pidfd. A
//! start hands its call straight to a spare over that socket: the header of the hand-over says
//! which signals the caller ignores, and the caller's working directory travels with it. The
//! spare then takes the caller's signal dispositions (exec's rule: the caller's ignored signals
//! stay ignored, every other one is at its default, nothing blocked) and working directory,
//! closes the life pipe and runs the call like a spawned child. It sees the environment the
//! server started with: the parent's, as it was at the first forkserver start.
//!
//! A spare that waits survives nothing the server would not: the parent's death (its death
//! signal, and the end of its control socket), the end of the client's connection, and the
//! server's own death, which it sees as the life pipe's end. A spare that gives up shuts its
//! socket's reading side first, so that a hand-over racing with its end fails in the client
//! (which then takes another spare) instead of being lost.
//!
//! The server ignores `SIGINT` (Ctrl-C reaches the parent and the children, which share the
//! terminal's process group) and ends when its connection reaches end of stream or when the
//! parent dies (death signal).

pub(crate) mod protocol;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use self::protocol::{Handover, Reply, REQ_NEXT};
use crate::sys;

/// What a spare received at its hand-over, after the header: the rest of the first read (the
/// call's first bytes) and the call's own descriptors; or why the hand-over was refused.
pub(crate) type Received = Result<(Vec<u8>, Vec<OwnedFd>), String>;

/// What the bootstrap gives the server (which imports nothing above it): how a spare gets
/// ready, and how a child runs its call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Routines {
    /// Run by a spare before it waits, with its channel: whatever the call would otherwise do
    /// first (its copy-on-write faults among it).
    pub(crate) ready: fn(BorrowedFd<'_>),
    /// Run once handed its call: its channel, the parent's pid, and what arrived with the
    /// hand-over. Returns the exit code.
    pub(crate) run: fn(OwnedFd, u32, Received) -> i32,
}

/// How many bytes a spare reads with its hand-over: the header and a small call with its
/// arguments arrive in this one read (a forked child pays a page fault for every page it
/// writes: the buffer is made, and written, before the spare waits).
const FIRST_READ: usize = 1024;

/// Runs the server loop on `sock` for parent `ppid`; never returns. Each child runs `run` on
/// its channel (see [`Routines`]) and exits with the code it returns.
pub(crate) fn serve(sock: OwnedFd, ppid: u32, run: Routines) -> ! {
    sys::signal::server_signals();
    if !sys::proc::die_with_parent(ppid).unwrap_or(false) {
        sys::proc::exit_now(0);
    }
    sys::clone::prepare();
    // Its write end stays here alone: its end of stream tells each waiting spare that the
    // server is gone.
    let (life, _life_write) = match sys::fd::pipe() {
        Ok(p) => p,
        Err(_) => sys::proc::exit_now(0),
    };
    let mut buf = [0u8; 16];
    loop {
        // An error reads as end of stream: the connection is unusable either way.
        let (n, fds) = sys::fd::recv_with_fds(sock.as_fd(), &mut buf).unwrap_or_default();
        if n == 0 {
            // End of stream: the parent is gone or dropped the connection. Waiting spares see
            // the life pipe end with us; children with a call are the parent's and go on.
            sys::proc::exit_now(0);
        }
        match (&buf[..n], <[OwnedFd; 1]>::try_from(fds)) {
            ([REQ_NEXT], Ok([channel])) => make_spare(&sock, channel, life.as_fd(), ppid, run),
            _ => reply(&sock, Reply::Err(22), &[]), // EINVAL
        }
    }
}

/// Forks a spare on `channel` and announces it to the client (or says why it could not).
fn make_spare(sock: &OwnedFd, channel: OwnedFd, life: BorrowedFd<'_>, ppid: u32, run: Routines) {
    // The child ends inside `run_sibling` with the code `spare` returns; here the closure, and
    // with it our copy of the channel, is dropped.
    let made = sys::clone::run_sibling(move || spare(channel, life, ppid, run));
    match made {
        Ok((pid, pidfd)) => reply(sock, Reply::Pid(pid), &[pidfd.as_fd()]),
        Err(e) => reply(sock, Reply::Err(e.raw_os_error().unwrap_or(22)), &[]),
    }
}

fn reply(sock: &OwnedFd, reply: Reply, fds: &[BorrowedFd<'_>]) {
    if sys::fd::send_with_fds(sock.as_fd(), &reply.encode(), fds).is_err() {
        sys::proc::exit_now(0);
    }
}

/// A spare's life: keep only what it needs, wait for a hand-over, take the caller's signals
/// and directory, run the call. Returns the exit code.
fn spare(channel: OwnedFd, life: BorrowedFd<'_>, ppid: u32, run: Routines) -> i32 {
    let Ok((channel, life)) = sys::fd::keep_only_stdio_and(channel, life) else {
        return 0;
    };
    if !sys::proc::die_with_parent(ppid).unwrap_or(false) {
        // The parent is gone already: nobody will hand a call over.
        return 0;
    }
    let mut head = vec![0u8; FIRST_READ];
    (run.ready)(channel.as_fd());
    if !sys::fd::wait_for_handover(channel.as_fd(), life.as_fd()) {
        return 0;
    }
    drop(life);
    let (n, mut fds) = match sys::fd::recv_with_fds(channel.as_fd(), &mut head) {
        Ok((0, _)) => return 0, // The client dropped us.
        Ok(got) => got,
        Err(e) => {
            return (run.run)(
                channel,
                ppid,
                Err(format!("cannot receive the hand-over: {e}")),
            )
        }
    };
    head.truncate(n);
    let received = handed_over(&channel, head, &mut fds).map(|head| (head, fds));
    (run.run)(channel, ppid, received)
}

/// Reads the hand-over's header at the start of `head` (reading more if the first read was
/// short), applies the caller's signal rule and working directory (the first descriptor, closed
/// here), and returns the bytes after the header.
fn handed_over(
    channel: &OwnedFd,
    mut head: Vec<u8>,
    fds: &mut Vec<OwnedFd>,
) -> Result<Vec<u8>, String> {
    if head.len() < protocol::HANDOVER {
        let mut rest = [0u8; protocol::HANDOVER];
        let want = protocol::HANDOVER - head.len();
        sys::fd::read_exact(channel.as_fd(), &mut rest[..want])
            .map_err(|e| format!("a short hand-over: {e}"))?;
        head.extend_from_slice(&rest[..want]);
    }
    let handover =
        Handover::decode(&head).ok_or_else(|| "a malformed hand-over header".to_string())?;
    if fds.is_empty() {
        return Err("the hand-over carries no working directory".into());
    }
    let cwd = fds.remove(0);
    sys::signal::apply_callers_rule(handover.ignored);
    let _ = sys::fd::fchdir(cwd.as_fd());
    drop(cwd);
    head.drain(..protocol::HANDOVER);
    Ok(head)
}
