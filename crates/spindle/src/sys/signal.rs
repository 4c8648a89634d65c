//! Signal dispositions of a worker process.

/// Ignores `SIGINT` in this process, so that Ctrl-C at a terminal (which signals the whole
/// foreground process group) leaves the decision to the parent. An ignored signal stays
/// ignored across `fork` and `exec`.
pub(crate) fn ignore_interrupt() {
    // SAFETY: SIG_IGN is a valid disposition for SIGINT; no memory is touched.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
}
