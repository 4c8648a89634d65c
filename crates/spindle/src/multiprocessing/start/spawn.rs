//! spawn: a fresh `posix_spawn` of the program, its control socket at descriptor 3.
//!
//! The child inherits no memory and no descriptor but stdio and its channel: the pre-main hook
//! (`bootstrap`) checks who started it, reads the call (trampoline offset, build identity,
//! name) and the arguments from the socket, and runs the function. It sets its own death
//! signal and checks that its parent is still the process that spawned it.

use std::os::fd::AsFd;

use super::{on_launcher, own_child, program, CallBytes, Launch, Started};
use crate::error::Result;
use crate::multiprocessing::{bootstrap, StartMethod};
use crate::sys;

pub(crate) fn start(launch: Launch) -> Result<Started> {
    bootstrap::keep_entry_linked();
    let (program, argv0) = program(StartMethod::Spawn)?;
    let (entry, args, fds) = launch.job.entry()?;
    // Everything that can fail on our side is checked before the child exists.
    let call = CallBytes::new(&launch, StartMethod::Spawn, entry, args, fds.len(), &[])?;
    let (mut sock, theirs) = sys::fd::stream_pair()?;
    let mode = format!("spawn,{},{}", sys::fd::CHANNEL_FD, sys::proc::getpid());
    let pid = on_launcher(move || {
        let pid = sys::proc::spawn_program(&sys::proc::SpawnSpec {
            program: &program,
            argv: &[argv0],
            var: Some((bootstrap::child_var(), &mode)),
            channel: Some(theirs.as_fd()),
        });
        drop(theirs);
        pid
    })??;
    let child = own_child(pid)?;
    let fds: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    // A spawned child that is gone already is `join`'s to report.
    call.send(&mut sock, args, &fds)?;
    sock.set_nonblocking(true)?;
    Ok(Started {
        child: child.started(),
        sock,
    })
}
