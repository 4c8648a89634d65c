//! What a process runs: [`Target`], a function named by its type, and the trampoline that
//! calls it in the child.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::reduction::{self, ChildFailure, Kind};
use crate::sys;

/// A function a child process can run: a plain `fn` item or a closure that captures
/// nothing, called with its arguments as a tuple (Python's `args=(...)`).
///
/// It is implemented for every `FnOnce` of zero to four arguments that is `Copy` and
/// `'static`. The function must also be **zero-sized**, which `fn` items and non-capturing
/// closures are: a spawned child names it by its type alone (see the module docs), so there
/// is nothing else to send. A capturing closure is refused when the program is compiled;
/// run one with [`Builder::fork_target`](super::Builder::fork_target) instead.
///
/// ```
/// use spindle::multiprocessing::Target;
/// fn add(a: u32, b: u32) -> u32 { a + b }
/// assert_eq!(Target::call(add, (2, 3)), 5);
/// assert_eq!(Target::call(|| "hi", ()), "hi");
/// ```
pub trait Target<Args>: Copy + Send + 'static {
    /// What the function returns.
    type Output;
    /// Calls the function with its arguments.
    fn call(self, args: Args) -> Self::Output;
}

macro_rules! impl_target {
    ($($a:ident),*) => {
        impl<Func, Ret, $($a),*> Target<($($a,)*)> for Func
        where
            Func: FnOnce($($a),*) -> Ret + Copy + Send + 'static,
        {
            type Output = Ret;
            #[allow(non_snake_case)]
            fn call(self, ($($a,)*): ($($a,)*)) -> Ret {
                self($($a),*)
            }
        }
    };
}

impl_target!();
impl_target!(A);
impl_target!(A, B);
impl_target!(A, B, C);
impl_target!(A, B, C, D);

/// The trampoline of target `F`: decodes the arguments, makes a value of `F` (zero-sized, so
/// there is nothing to send), calls it inside `panic::catch` and encodes the outcome.
pub(crate) fn trampoline<F, Args>(input: &[u8], out: &mut Vec<u8>) -> u8
where
    F: Target<Args>,
    Args: DeserializeOwned,
    F::Output: Serialize,
{
    let args: Args = match reduction::decode(input) {
        Ok(a) => a,
        Err(e) => return failure(ChildFailure::from(e), out),
    };
    let f: F = sys::image::conjure::<F>();
    run_and_encode(move || f.call(args), out)
}

/// Runs `f` in a child, encodes its value (or its panic, also printed on the child's stderr)
/// into `out`, and returns the frame kind.
pub(crate) fn run_and_encode<R: Serialize>(f: impl FnOnce() -> R, out: &mut Vec<u8>) -> u8 {
    out.clear();
    match crate::panic::catch(f) {
        Ok(value) => match reduction::encode_into(&value, out) {
            Ok(()) => Kind::Value as u8,
            Err(e) => failure(ChildFailure::from(e), out),
        },
        Err(report) => {
            let report = report.with_pid(sys::proc::getpid());
            // The child's own stderr keeps a trace too, as Rust's default hook (and Python's
            // traceback) would, for a parent that never joins or a service that logs it.
            let me = super::identity::current_process();
            let at = report
                .location()
                .map(|l| format!(" at {l}"))
                .unwrap_or_default();
            eprintln!(
                "process '{}' (pid {}) panicked{at}:\n{}",
                me.name(),
                me.pid(),
                report.message()
            );
            if let Some(bt) = report.backtrace() {
                eprintln!("{bt}");
            }
            out.clear();
            match reduction::encode_into(&report, out) {
                Ok(()) => Kind::Panic as u8,
                Err(e) => failure(ChildFailure::from(e), out),
            }
        }
    }
}

/// Encodes a failure into `out` and returns its frame kind.
pub(crate) fn failure(f: ChildFailure, out: &mut Vec<u8>) -> u8 {
    out.clear();
    // A failure is two strings at most: encoding it cannot fail.
    let _ = reduction::encode_into(&f, out);
    Kind::Failure as u8
}
