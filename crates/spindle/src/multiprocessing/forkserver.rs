//! The fork server: a single-threaded process, spawned once and reused, that forks children
//! on request (see `README.md` beside this file for the protocol).
//!
//! It is a fresh exec of the program, entered before `main`, so it has one thread and none of
//! the parent's locks: forking it is safe. It ignores `SIGINT` (Ctrl-C reaches the parent and
//! the children, which share the terminal's process group) and ends when its connection to the
//! parent reaches end of stream or when the parent dies (death signal); its children have
//! their own death signal tied to the server, so they go with it.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use super::bootstrap;
use super::start::forkserver::{REP_ERR, REP_PID, REQ_FORK};
use crate::sys;

/// Runs the server loop on `sock` for parent `ppid`; never returns.
pub(crate) fn serve(sock: OwnedFd, ppid: u32) -> ! {
    let sigfd = match sys::proc::server_signals() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("spindle: fork server cannot set up its signals: {e}");
            sys::proc::exit_now(bootstrap::EXIT_REFUSED)
        }
    };
    if !sys::proc::die_with_parent(ppid).unwrap_or(false) {
        sys::proc::exit_now(0);
    }
    let me = sys::proc::getpid();
    // What every child checks its call against, known before the first fork.
    sys::image::compute_checks();
    // Status pipes of the children not reaped yet.
    let mut children: HashMap<u32, File> = HashMap::new();
    loop {
        let ready = match sys::fd::poll_readable(&[sock.as_fd(), sigfd.as_fd()], None) {
            Ok(r) => r,
            Err(_) => sys::proc::exit_now(bootstrap::EXIT_REFUSED),
        };
        if ready[1] {
            sys::proc::drain_signalfd(sigfd.as_fd());
            // Every child is in `children` until reaped: once it is empty, nothing is left
            // to ask `waitpid` about.
            while !children.is_empty() {
                let Ok(Some((pid, status))) = sys::proc::reap_any() else {
                    break;
                };
                if let Some(mut pipe) = children.remove(&pid) {
                    // The parent may have closed its end (dropped the Process): ignore EPIPE.
                    let _ = pipe.write_all(&status.to_le_bytes());
                }
            }
        }
        if !ready[0] {
            continue;
        }
        let mut buf = [0u8; 16];
        // An error reads as end of stream: the connection is unusable either way.
        let (n, fds) = sys::fd::recv_with_fds(sock.as_fd(), &mut buf).unwrap_or_default();
        if n == 0 {
            // End of stream: the parent is gone (or dropped the connection). Our children
            // receive their death signal when we exit.
            sys::proc::exit_now(0);
        }
        let [child_sock, status_w]: [OwnedFd; 2] = match fds.try_into() {
            Ok(pair) if n == 1 && buf[0] == REQ_FORK => pair,
            _ => {
                reply_error(&sock, libc_einval());
                continue;
            }
        };
        let forked = {
            let (sock_ref, sigfd_ref, status_ref) = (sock.as_fd(), sigfd.as_fd(), status_w.as_fd());
            let mut close: Vec<_> = vec![sock_ref, sigfd_ref, status_ref];
            close.extend(children.values().map(|f| f.as_fd()));
            sys::proc::fork_run(&close, || {
                sys::proc::child_signals();
                let code = bootstrap::run_call(UnixStream::from(child_sock), me);
                // fork_run ends the child with `code` and without running our destructors.
                code
            })
        };
        match forked {
            Ok(pid) => {
                let reply = match sys::proc::pidfd_open(pid) {
                    Ok(pidfd) => {
                        let p = pid.to_le_bytes();
                        sys::fd::send_with_fds(
                            sock.as_fd(),
                            &[REP_PID, p[0], p[1], p[2], p[3]],
                            &[pidfd.as_fd()],
                        )
                    }
                    Err(e) => Err(e),
                };
                if reply.is_err() {
                    sys::proc::exit_now(0);
                }
                children.insert(pid, File::from(status_w));
            }
            Err(e) => reply_error(&sock, e.raw_os_error().unwrap_or(libc_einval())),
        }
    }
}

fn libc_einval() -> i32 {
    22
}

fn reply_error(sock: &OwnedFd, errno: i32) {
    let e = errno.to_le_bytes();
    if sys::fd::send_with_fds(sock.as_fd(), &[REP_ERR, e[0], e[1], e[2], e[3]], &[]).is_err() {
        sys::proc::exit_now(0);
    }
}
