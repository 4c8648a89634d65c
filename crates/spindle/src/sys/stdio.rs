//! Standard streams of a child: pointing its standard error at a pipe.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::cvt_retry;

/// Makes `fd` this process's standard error (`dup2` onto descriptor 2) and closes `fd`.
/// Later writes to standard error, by Rust's `eprintln!` or by any library, go to it.
pub(crate) fn redirect_stderr(fd: OwnedFd) -> io::Result<()> {
    if fd.as_raw_fd() == libc::STDERR_FILENO {
        // Already there: keep it open (dropping `fd` would close standard error).
        std::mem::forget(fd);
        return Ok(());
    }
    // SAFETY: dup2 of an open descriptor (owned by `fd`) onto 2; it touches no memory. The
    // new descriptor 2 is not close-on-exec (dup2 clears the flag), as standard error must be.
    cvt_retry(|| unsafe { libc::dup2(fd.as_raw_fd(), libc::STDERR_FILENO) })?;
    Ok(())
}

/// A pipe for a child's standard error: `(read end, write end)`, both close-on-exec, the
/// read end non-blocking (the parent reads it from an event loop; the child blocks on a full
/// pipe as it would on a slow terminal).
pub(crate) fn stderr_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = super::fd::pipe()?;
    // SAFETY: F_GETFL/F_SETFL on an open descriptor (owned by `r`) only change its flags.
    unsafe {
        let flags = super::cvt(libc::fcntl(r.as_raw_fd(), libc::F_GETFL))?;
        super::cvt(libc::fcntl(
            r.as_raw_fd(),
            libc::F_SETFL,
            flags | libc::O_NONBLOCK,
        ))?;
    }
    Ok((r, w))
}
