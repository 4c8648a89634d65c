//! The floor of a spawn: `posix_spawn` of this very binary, which exits before `main`.
//!
//! The hook is the benches' own (an argument, not an environment variable, and not in the
//! library): a program that merely links spindle has no empty-child mode.

/// The argument that makes a binary of the benches exit at once, before `main`.
const EMPTY_CHILD_ARG: &str = "--spindle-bench-empty-child";

#[ctor::ctor]
fn empty_child() {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == EMPTY_CHILD_ARG)
    {
        std::process::exit(0);
    }
}

/// `posix_spawn` this binary with the empty-child argument (the hook above exits with 0
/// before `main`), and `waitpid` it.
pub(crate) fn raw_spawn_wait() -> spindle::Result<()> {
    // Keeps the hook's object in the link.
    std::hint::black_box(empty_child as extern "C" fn());
    let me = std::env::current_exe()?;
    match spindle::multiprocessing::bench::raw_spawn_wait(&me, &[EMPTY_CHILD_ARG])? {
        0 => Ok(()),
        code => Err(spindle::Error::Protocol(format!(
            "the empty child exited with {code}"
        ))),
    }
}
