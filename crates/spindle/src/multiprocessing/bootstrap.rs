//! The child side: the pre-main hook that turns a fresh copy of the program into a spindle
//! child, and the routine every spawned or forkserver child runs — receive the call, check the
//! build, run, report, exit.
//!
//! # Entering child mode
//!
//! [`spindle_child_entry`] runs from `.init_array` (the `ctor` crate) before `main` or the test
//! harness, in *every* program that links spindle. It looks for variables whose names start
//! with `__SPINDLE_CHILD`; in an ordinary program there are none and it returns at once.
//!
//! - `__SPINDLE_CHILD_<tag>`, where the tag names this copy of spindle (version and anchor
//!   offset, see `sys::image::copy_tag`): this copy's child. The variable is removed at once (so
//!   the child's own children start as ordinary programs); then the checks of `sys::trust` run
//!   (no secure execution; the descriptor is a Unix socket of the right type whose peer is our
//!   parent, of our uid, running the same file). Any failure refuses with a message on stderr
//!   and exit code 2: `main` never runs.
//! - `__SPINDLE_CHILD` alone is the variable of a spindle older than this fix: refused by name.
//! - A tagged variable of another copy is left for that copy's hook.
//!
//! Modes (the variable's value): `spawn,3,PPID` runs one call on the stream socket at
//! descriptor 3; `forkserver,3,PPID` runs the fork server on the seqpacket socket there.
//!
//! Exit codes: 0 when the function returned, 1 when it panicked (Python's code for an
//! uncaught exception), 2 when the child could not run its call at all (a protocol or codec
//! failure, a different build, a refused start); the parent's `join` gets the reason as a
//! typed error.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::reduction::{self, ChildFailure, Kind};
use super::{forkserver, handles, identity, StartMethod};
use crate::error::{Error, Result};
use crate::sys;

/// Exit code of a child that could not run its call.
pub(crate) const EXIT_REFUSED: i32 = 2;

/// The variable of a spindle older than the copy tags, refused by name.
const LEGACY_VAR: &str = "__SPINDLE_CHILD";

/// What the parent tells a spawned or forkserver child before the arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Call {
    /// The parent's build identity (`sys::image::build_identity`); the child refuses another.
    pub(crate) build: Vec<u8>,
    /// The trampoline's offset from the image's anchor.
    pub(crate) entry: i64,
    /// The child's `Process` name.
    pub(crate) name: String,
    /// The child's identity numbers (Python's `_identity`: `Process-2:1` is `[2, 1]`).
    pub(crate) ident: Vec<u32>,
    /// The daemon flag.
    pub(crate) daemon: bool,
    /// The start method that made the child (what `get_start_method()` answers there).
    pub(crate) method: String,
    /// The pid of the process that started this child (not the fork server).
    pub(crate) parent_pid: u32,
    /// That process's name.
    pub(crate) parent_name: String,
    /// How many descriptors travel with the call (`SCM_RIGHTS`), see `handles`.
    pub(crate) fds: u32,
}

/// The name of this copy's child variable.
pub(crate) fn child_var() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| format!("{LEGACY_VAR}_{}", sys::image::copy_tag()))
}

/// Makes the calling code reference the pre-main hook so that the linker keeps it.
#[inline(never)]
pub(crate) fn keep_entry_linked() {
    std::hint::black_box(spindle_child_entry as extern "C" fn());
}

/// The pre-main hook (see the module docs).
#[ctor::ctor]
fn spindle_child_entry() {
    let vars = sys::trust::spindle_variables(LEGACY_VAR);
    if vars.is_empty() {
        return;
    }
    let mine = child_var();
    let mut legacy = false;
    for (name, value) in vars {
        if name == mine {
            // Only the constructor's thread exists this early: changing the environment races
            // with nothing.
            std::env::remove_var(mine);
            enter(value);
        }
        legacy |= name == LEGACY_VAR;
    }
    if legacy {
        std::env::remove_var(LEGACY_VAR);
        refuse(&format!(
            "{LEGACY_VAR} is the variable of a spindle older than this copy ({}), which \
             does not answer it",
            env!("CARGO_PKG_VERSION")
        ));
    }
}

fn enter(value: OsString) -> ! {
    if sys::trust::secure_execution() {
        refuse(
            "this program runs with privileges its launcher may not have (setuid, setgid or \
             file capabilities)",
        );
    }
    let text = value.to_string_lossy().into_owned();
    let parts: Vec<&str> = text.split(',').collect();
    let (mode, fd, ppid) = match parts.as_slice() {
        [mode, fd, ppid] => match (fd.parse::<i32>(), ppid.parse::<u32>()) {
            (Ok(fd), Ok(ppid)) => (*mode, fd, ppid),
            _ => refuse(&format!("malformed child mode {text:?}")),
        },
        _ => refuse(&format!("malformed child mode {text:?}")),
    };
    let kind = match mode {
        "spawn" => sys::trust::SocketKind::Stream,
        "forkserver" => sys::trust::SocketKind::Seqpacket,
        _ => refuse(&format!("unknown child mode {mode:?}")),
    };
    let sock = sys::trust::adopt_channel(fd, kind, ppid).unwrap_or_else(|why| refuse(&why));
    // `ps` and `pgrep` show the program's name, not `exe` (the file spawned).
    let argv0 = sys::proc::argv0();
    let base = argv0
        .as_bytes()
        .rsplit(|b| *b == b'/')
        .next()
        .unwrap_or_default();
    sys::proc::set_name(base);
    match kind {
        sys::trust::SocketKind::Stream => {
            let code = run_call(sock, ppid);
            // A fresh process: exit's handlers (ours joins this child's own children) run.
            std::process::exit(code)
        }
        sys::trust::SocketKind::Seqpacket => {
            prepare_for_forks();
            forkserver::serve(
                sock,
                ppid,
                forkserver::Routines {
                    ready: ready_spare,
                    run: run_forked_call,
                },
            )
        }
    }
}

fn refuse(why: &str) -> ! {
    eprintln!(
        "spindle: process {} refuses to act as a spindle child: {why}",
        sys::proc::getpid()
    );
    sys::proc::exit_now(EXIT_REFUSED)
}

/// What a process that forks children computes once, so that each child inherits it instead
/// of computing it (and writing the pages it lives in) again.
pub(crate) fn prepare_for_forks() {
    sys::image::compute_checks();
    overflow_frame();
    sys::signal::prepare_overflow_report();
    crate::panic::install_hook();
    // The first use of a thread-local with a destructor registers it (and binds the loader's
    // lookup it calls, lazily): once here, not in every child.
    handles::begin_decode(Vec::new());
    handles::end_decode();
    drop(std::io::stdout().lock());
}

/// A spare of the fork server, before it waits: its overflow report, on its channel (the one
/// its call will come on).
fn ready_spare(channel: BorrowedFd<'_>) {
    sys::signal::install_overflow_report(channel, overflow_frame());
}

/// The failure frame a child sends when it overflows its stack, encoded once.
pub(crate) fn overflow_frame() -> &'static [u8] {
    static FRAME: OnceLock<Vec<u8>> = OnceLock::new();
    FRAME.get_or_init(|| {
        let mut out = Vec::new();
        let failure = ChildFailure::Fatal("stack overflow".into());
        let payload = reduction::encode(&failure).unwrap_or_default();
        let _ = reduction::write_frame(&mut out, Kind::Failure, &payload);
        out
    })
}

/// A fork server's child, once handed its call: runs it and returns the exit code. Its death
/// signal and overflow report were set up while it waited as a spare (`ready_spare`).
fn run_forked_call(sock: OwnedFd, _ppid: u32, received: forkserver::Received) -> i32 {
    let mut sock = UnixStream::from(sock);
    let outcome = match received {
        Ok(first) => receive_and_run(&mut sock, Some(first)),
        Err(why) => Err(Error::Protocol(why)),
    };
    let code = finish(&mut sock, outcome);
    identity::at_exit();
    code
}

/// Runs the call that arrives on `sock` and reports its outcome there; returns the exit code.
/// `ppid` is the process that started us, which must stay alive.
pub(crate) fn run_call(sock: OwnedFd, ppid: u32) -> i32 {
    if !sys::proc::die_with_parent(ppid).unwrap_or(false) {
        // The parent is already gone: nobody is left to report to.
        return EXIT_REFUSED;
    }
    sys::signal::install_overflow_report(sock.as_fd(), overflow_frame());
    let mut sock = UnixStream::from(sock);
    let outcome = receive_and_run(&mut sock, None);
    finish(&mut sock, outcome)
}

/// Receives the call and its arguments (after `first`, the bytes and descriptors read with a
/// fork server's hand-over, when given), runs it and returns the outcome's frame.
fn receive_and_run(
    sock: &mut UnixStream,
    first: Option<(Vec<u8>, Vec<OwnedFd>)>,
) -> Result<(Kind, Vec<u8>)> {
    let (head, fds) = match first {
        Some(first) => first,
        None => {
            // The first read takes the descriptors sent with the call; the parent sends
            // nothing after the arguments, so reading ahead takes nothing that is not ours.
            // A small buffer: a small call and its arguments still arrive in this one read.
            let mut head = vec![0u8; 1024];
            let (n, fds) = sys::fd::recv_with_fds(sock.as_fd(), &mut head)
                .map_err(|e| Error::Protocol(format!("cannot receive the call: {e}")))?;
            head.truncate(n);
            (head, fds)
        }
    };
    let mut incoming = (&head[..]).chain(&mut *sock);
    let call: Call = match reduction::read_frame(&mut incoming)? {
        (Kind::Call, payload) => reduction::decode(&payload)?,
        (kind, _) => return Err(Error::Protocol(format!("expected a call, got {kind:?}"))),
    };
    if fds.len() != call.fds as usize {
        return Err(Error::Protocol(format!(
            "the call announces {} descriptors, {} arrived",
            call.fds,
            fds.len()
        )));
    }
    let entry = sys::image::entry_at(call.entry, &call.build).map_err(Error::Protocol)?;
    let args = match reduction::read_frame(&mut incoming)? {
        (Kind::Args, payload) => payload,
        (kind, _) => return Err(Error::Protocol(format!("expected arguments, got {kind:?}"))),
    };
    drop(head);
    let method: StartMethod = call.method.parse()?;
    identity::become_child(
        call.name,
        call.ident,
        call.daemon,
        method,
        call.parent_pid,
        call.parent_name,
    );
    let mut out = Vec::new();
    handles::begin_decode(fds);
    let kind = entry(&args, &mut out);
    handles::end_decode();
    match Kind::from_u8(kind) {
        Some(k @ (Kind::Value | Kind::Panic | Kind::Failure)) => Ok((k, out)),
        _ => Err(Error::Protocol(format!(
            "trampoline returned message kind {kind}"
        ))),
    }
}

/// Sends the outcome, flushes stdio and returns the exit code.
pub(crate) fn finish(sock: &mut UnixStream, outcome: Result<(Kind, Vec<u8>)>) -> i32 {
    let (kind, payload, code) = match outcome {
        Ok((Kind::Value, out)) => (Kind::Value, out, 0),
        Ok((Kind::Panic, out)) => (Kind::Panic, out, 1),
        Ok((kind, out)) => (kind, out, EXIT_REFUSED),
        Err(e) => {
            eprintln!(
                "spindle: child process {} could not run its call: {e}",
                sys::proc::getpid()
            );
            let mut out = Vec::new();
            let kind = super::target::failure(e.into(), &mut out);
            (
                Kind::from_u8(kind).unwrap_or(Kind::Failure),
                out,
                EXIT_REFUSED,
            )
        }
    };
    // The parent may be gone; then there is nobody to tell.
    let _ = reduction::write_frame(sock, kind, &payload);
    // Rust's stderr has no buffer; stdout's may hold a line not ended yet.
    let _ = std::io::stdout().flush();
    code
}
