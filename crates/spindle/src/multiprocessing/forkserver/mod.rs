//! The fork server: a single-threaded process, spawned once and reused, that creates children
//! on request (see `README.md` beside this folder for the protocol, `protocol.rs` for its
//! bytes).
//!
//! It is a fresh exec of the program, entered before `main`, so it has one thread and none of
//! the parent's locks: forking it is safe. Each child is made with
//! `clone3(CLONE_PARENT | CLONE_PIDFD)` (`sys::clone`): it is the *parent's* child, not the
//! server's, so it survives the server's death, dies with the parent (its death signal follows
//! the parent's launcher thread) and is reaped by the parent through its pidfd. The server
//! never reaps anything and keeps no per-child state.
//!
//! Before running its call, a child takes the caller's signal dispositions (exec's rule: the
//! caller's ignored signals stay ignored, every other one is at its default, nothing blocked)
//! and the caller's working directory, and keeps only stdio and its channel. It sees the
//! environment the server started with: the parent's, as it was at the first forkserver start.
//!
//! The server ignores `SIGINT` (Ctrl-C reaches the parent and the children, which share the
//! terminal's process group) and ends when its connection reaches end of stream or when the
//! parent dies (death signal).

pub(crate) mod protocol;

use std::os::fd::{AsFd, OwnedFd};

use self::protocol::{Reply, Request, REQUEST_FDS};
use crate::sys;

/// Runs the server loop on `sock` for parent `ppid`; never returns. Each child runs `run` on
/// its channel and exits with the code it returns.
pub(crate) fn serve(sock: OwnedFd, ppid: u32, run: fn(OwnedFd, u32) -> i32) -> ! {
    sys::signal::server_signals();
    if !sys::proc::die_with_parent(ppid).unwrap_or(false) {
        sys::proc::exit_now(0);
    }
    sys::clone::prepare();
    let mut buf = [0u8; 64];
    loop {
        // An error reads as end of stream: the connection is unusable either way.
        let (n, fds) = sys::fd::recv_with_fds(sock.as_fd(), &mut buf).unwrap_or_default();
        if n == 0 {
            // End of stream: the parent is gone or dropped the connection. Our children are
            // the parent's: they are not affected.
            sys::proc::exit_now(0);
        }
        let request = Request::decode(&buf[..n]);
        let (request, [channel, cwd]) = match (request, <[OwnedFd; REQUEST_FDS]>::try_from(fds)) {
            (Some(r), Ok(fds)) => (r, fds),
            _ => {
                reply(&sock, Reply::Err(22), None); // EINVAL
                continue;
            }
        };
        // The child ends inside `run_sibling` with the code it returns.
        let made = sys::clone::run_sibling(move || {
            sys::signal::apply_callers_rule(request.ignored);
            let _ = sys::fd::fchdir(cwd.as_fd());
            drop(cwd);
            match sys::fd::keep_only_stdio_and(channel) {
                Ok(channel) => run(channel, ppid),
                Err(_) => 2,
            }
        });
        match made {
            Ok((pid, pidfd)) => reply(&sock, Reply::Pid(pid), Some(pidfd)),
            Err(e) => reply(&sock, Reply::Err(e.raw_os_error().unwrap_or(22)), None),
        }
    }
}

fn reply(sock: &OwnedFd, reply: Reply, pidfd: Option<OwnedFd>) {
    let fds: Vec<_> = pidfd.iter().map(|p| p.as_fd()).collect();
    if sys::fd::send_with_fds(sock.as_fd(), &reply.encode(), &fds).is_err() {
        sys::proc::exit_now(0);
    }
}
