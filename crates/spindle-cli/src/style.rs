//! Terminal styling: headings, dim text and colour, only when stdout is a terminal and
//! `NO_COLOR` is unset.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

fn colour() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
}

fn paint(code: &str, text: &str) -> String {
    if colour() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// Bold cyan.
pub(crate) fn heading(text: &str) -> String {
    paint("1;36", text)
}

/// Dim grey.
pub(crate) fn dim(text: &str) -> String {
    paint("2", text)
}

/// Bold green.
pub(crate) fn good(text: &str) -> String {
    paint("1;32", text)
}

/// Yellow.
pub(crate) fn note(text: &str) -> String {
    paint("33", text)
}

/// A duration right-aligned in 10 columns: seconds with two decimals from one second up,
/// milliseconds with one decimal below.
pub(crate) fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:>7.2} s ")
    } else {
        format!("{:>7.1} ms", s * 1e3)
    }
}
