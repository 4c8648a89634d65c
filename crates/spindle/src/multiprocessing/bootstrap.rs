//! The child side: entered before `main` (see `sys::image`), it checks the fingerprint,
//! decodes the call, runs it, reports the outcome and exits.
//!
//! Exit codes: 0 when the function returned, 1 when it panicked (Python's code for an
//! uncaught exception), 2 when the child could not run its call at all (a protocol or codec
//! failure, a different build); the parent's `join` gets the reason as a typed error.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::net::UnixStream;

use serde::{Deserialize, Serialize};

use super::reduction::{self, Kind};
use super::{forkserver, identity};
use crate::error::{Error, Result};
use crate::sys;

/// Exit code of a child that could not run its call.
pub(crate) const EXIT_REFUSED: i32 = 2;

/// What the parent tells a spawned or forkserver child before the arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Call {
    /// The parent's build fingerprint; the child refuses another.
    pub(crate) fingerprint: u64,
    /// The trampoline's offset from the image's anchor.
    pub(crate) entry: i64,
    /// The child's `Process` name.
    pub(crate) name: String,
    /// The daemon flag.
    pub(crate) daemon: bool,
    /// The pid of the process that started this child (not the fork server).
    pub(crate) parent_pid: u32,
    /// That process's name.
    pub(crate) parent_name: String,
}

/// The child's modes, named in `sys::image::CHILD_ENV`: `spawn,FD,PPID`,
/// `forkserver,FD,PPID`, or `exit` (an empty child, for benchmarks).
pub(crate) fn child_main(value: OsString) -> ! {
    let text = value.to_string_lossy().into_owned();
    let parts: Vec<&str> = text.split(',').collect();
    let parsed = match parts.as_slice() {
        ["exit"] => sys::proc::exit_now(0),
        [mode, fd, ppid] => match (fd.parse::<i32>(), ppid.parse::<u32>()) {
            (Ok(fd), Ok(ppid)) => sys::fd::adopt_inherited(fd)
                .map(|fd| (*mode, fd, ppid))
                .map_err(Error::Io),
            _ => Err(Error::Protocol(format!("malformed child mode {text:?}"))),
        },
        _ => Err(Error::Protocol(format!("malformed child mode {text:?}"))),
    };
    match parsed {
        Ok(("spawn", fd, ppid)) => {
            let code = run_call(UnixStream::from(fd), ppid);
            std::process::exit(code)
        }
        Ok(("forkserver", fd, ppid)) => forkserver::serve(fd, ppid),
        Ok((mode, _, _)) => refuse(&format!("unknown child mode {mode:?}")),
        Err(e) => refuse(&e.to_string()),
    }
}

fn refuse(why: &str) -> ! {
    eprintln!(
        "spindle: child process {} cannot start: {why}",
        sys::proc::getpid()
    );
    sys::proc::exit_now(EXIT_REFUSED)
}

/// Runs the call that arrives on `sock` and reports its outcome there; returns the exit code.
/// `ppid` is the process that must stay alive (the parent, or the fork server).
pub(crate) fn run_call(mut sock: UnixStream, ppid: u32) -> i32 {
    sys::proc::ignore_sigpipe();
    if !sys::proc::die_with_parent(ppid).unwrap_or(false) {
        // The parent is already gone: nobody is left to report to.
        return EXIT_REFUSED;
    }
    let outcome = receive_and_run(&mut sock);
    finish(&mut sock, outcome)
}

fn receive_and_run(sock: &mut UnixStream) -> Result<(Kind, Vec<u8>)> {
    // The parent sends nothing after the arguments, so reading ahead takes nothing that is
    // not ours: a small call and its arguments arrive in one read instead of four.
    let mut incoming = std::io::BufReader::with_capacity(1024, &mut *sock);
    let call: Call = match reduction::read_frame(&mut incoming)? {
        (Kind::Call, payload) => reduction::decode(&payload)?,
        (kind, _) => return Err(Error::Protocol(format!("expected a call, got {kind:?}"))),
    };
    let entry = sys::image::entry_at(call.entry, call.fingerprint).map_err(Error::Protocol)?;
    let args = match reduction::read_frame(&mut incoming)? {
        (Kind::Args, payload) => payload,
        (kind, _) => return Err(Error::Protocol(format!("expected arguments, got {kind:?}"))),
    };
    drop(incoming);
    identity::become_child(call.name, call.daemon, call.parent_pid, call.parent_name);
    let mut out = Vec::new();
    let kind = entry(&args, &mut out);
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
