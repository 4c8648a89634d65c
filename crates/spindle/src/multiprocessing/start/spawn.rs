//! spawn: a fresh `posix_spawn` of `/proc/self/exe`, control socket inherited.
//!
//! The child inherits no memory: the pre-main hook (`sys::image`) takes over before `main`,
//! reads the call (trampoline offset, fingerprint, name) and the arguments from the socket,
//! and runs the function. It sets its own death signal and checks that its parent is still
//! the process that spawned it.

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;

use super::{on_launcher, send_call, ChildRef, Launch, Started, Status};
use crate::error::Result;
use crate::sys;

pub(crate) fn start(launch: Launch) -> Result<Started> {
    sys::image::keep_entry_linked();
    let (entry, args) = launch.job.entry()?;
    let (mut sock, theirs) = UnixStream::pair()?;
    let mode = format!("spawn,{},{}", theirs.as_raw_fd(), sys::proc::getpid());
    let pid = on_launcher(move || {
        let pid = sys::proc::spawn_self(&[(sys::image::CHILD_ENV, mode)], &[theirs.as_fd()]);
        drop(theirs);
        pid
    })??;
    let pidfd = sys::proc::pidfd_open(pid)?;
    send_call(&mut sock, &launch, entry, args)?;
    Ok(Started {
        child: ChildRef::new(pid, pidfd),
        sock,
        status: Status::Own,
    })
}
