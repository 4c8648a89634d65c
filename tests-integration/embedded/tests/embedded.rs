//! spindle inside a shared object loaded by another program (issue #10): spawn and forkserver
//! refuse with an error naming `fork` and `set_executable` instead of running the host; fork
//! works; with `set_executable` naming a program that loads the same shared object, spawn and
//! forkserver work. The host here is `python3` with ctypes.

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn fixture() -> PathBuf {
    // Beside this test (target/debug/deps), or one level up where cargo copies it.
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let name = "libspindle_embedded_fixture.so";
    let here = deps.join(name);
    if here.exists() {
        here
    } else {
        deps.parent().unwrap().join(name)
    }
}

/// Runs python3 loading the fixture with `code`; `None` when python3 is missing.
fn python(code: &str, helper: Option<&PathBuf>) -> Option<(String, String)> {
    let script =
        format!("import ctypes, sys\nlib = ctypes.CDLL(sys.argv[1])\n{code}\nsys.stdout.flush()\n");
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &script])
        .arg(fixture())
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(h) = helper {
        cmd.env("SPINDLE_FIXTURE_HELPER", h);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skipped: python3 is not available ({e})");
            return None;
        }
    };
    // If a child ran the host (python3) again, it would read this as its script.
    use std::io::Write;
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(b"print('THE HOST RAN AGAIN')\n");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    Some((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn embedded_spindle_never_runs_the_host() {
    assert!(fixture().exists(), "{} was not built", fixture().display());
    let Some((out, err)) = python(
        "print(lib.fixture_start(0), lib.fixture_start(1), lib.fixture_start(2))",
        None,
    ) else {
        return;
    };
    assert_eq!(out.trim(), "-1 42 -1", "stderr: {err}");
    assert!(!out.contains("THE HOST RAN AGAIN") && !err.contains("THE HOST RAN AGAIN"));
}

#[test]
fn set_executable_names_a_program_that_loads_the_same_object() {
    let dir = std::env::temp_dir().join(format!("spindle-embedded-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("helper.c");
    std::fs::write(&source, "int main(void) { return 0; }\n").unwrap();
    assert!(fixture().exists(), "{} was not built", fixture().display());
    let helper = dir.join("helper");
    let lib_dir = fixture().parent().unwrap().to_owned();
    let built = Command::new("cc")
        .arg(&source)
        .arg("-o")
        .arg(&helper)
        .arg("-Wl,--no-as-needed")
        .arg(fixture())
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .status();
    if !matches!(built, Ok(s) if s.success()) {
        eprintln!("skipped: no C compiler to build the helper program ({built:?})");
        return;
    }
    let Some((out, err)) = python(
        "assert lib.fixture_use_helper() == 0\nprint(lib.fixture_start(0), lib.fixture_start(2), lib.fixture_start(1))",
        Some(&helper),
    ) else {
        return;
    };
    assert_eq!(out.trim(), "42 42 42", "stderr: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}
