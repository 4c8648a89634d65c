//! A shared object that embeds spindle, as a Python extension or a plugin would: the tests
//! load it into `python3` (ctypes) and ask it to start processes.

use spindle::multiprocessing::{set_executable, Builder, StartMethod};

fn triple(x: i32) -> i32 {
    3 * x
}

/// Starts `triple(14)` with method 0 (spawn), 1 (fork) or 2 (forkserver) and returns its value
/// (42); -1 when the start is refused with an error that names both `fork` and
/// `set_executable`; -2 for any other error.
#[no_mangle]
pub extern "C" fn fixture_start(method: i32) -> i32 {
    let method = match method {
        0 => StartMethod::Spawn,
        1 => StartMethod::Fork,
        _ => StartMethod::Forkserver,
    };
    let p = Builder::new().start_method(method).target(triple, (14,));
    let outcome = p.start().and_then(|()| p.join());
    match outcome {
        Ok(v) => v,
        Err(e) => {
            let text = e.to_string();
            eprintln!("fixture: {method}: {text}");
            if matches!(e, spindle::Error::Unsupported(_))
                && text.contains("Fork")
                && text.contains("set_executable")
            {
                -1
            } else {
                -2
            }
        }
    }
}

/// Names the program in `SPINDLE_FIXTURE_HELPER` with `set_executable`: 0 on success.
#[no_mangle]
pub extern "C" fn fixture_use_helper() -> i32 {
    match std::env::var_os("SPINDLE_FIXTURE_HELPER").map(set_executable) {
        Some(Ok(())) => 0,
        _ => 1,
    }
}
