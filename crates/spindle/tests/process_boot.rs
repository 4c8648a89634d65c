//! The bootstrap seen from outside (issue #10): who may make a program act as a child, what a
//! child prints and reports, its name, the exit path, and the build identity. Each case runs
//! the helper binary, so nothing here shares state with its neighbours.

use std::process::Command;

use spindle::multiprocessing::{Builder, StartMethod};

mod common;
use common::{running, watchdog};

fn helper(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_spindle-process-helper"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the helper runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_old_exit_mode_and_malformed_modes_are_refused_before_main() {
    watchdog(|| {
        let var = text(&helper(&["variable"]).stdout).trim().to_owned();
        assert!(var.starts_with("__SPINDLE_CHILD_"), "{var}");
        for (name, value, why) in [
            ("__SPINDLE_CHILD", "exit", "older than this copy"),
            ("__SPINDLE_CHILD", "spawn,3,1", "older than this copy"),
            (var.as_str(), "exit", "malformed child mode"),
            (var.as_str(), "spawn,0,1", "not a channel"),
            (var.as_str(), "spawn,3,1", "descriptor 3"),
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_spindle-process-helper"))
                .args(["run", "spawn"])
                .env(name, value)
                .output()
                .unwrap();
            // `main` never ran: it would print the value 5.
            assert_eq!(out.status.code(), Some(2), "{name}={value}: {out:?}");
            assert!(out.stdout.is_empty(), "{name}={value}: main ran: {out:?}");
            let err = text(&out.stderr);
            assert!(err.contains("refuses to act as a spindle child"), "{err}");
            assert!(err.contains(why), "{name}={value}: {err}");
        }
    });
}

#[test]
fn a_panic_is_printed_on_the_childs_own_stderr() {
    watchdog(|| {
        for m in ["spawn", "fork", "forkserver"] {
            let out = helper(&["panic", m]);
            assert!(out.status.success(), "{m}: {out:?}");
            let err = text(&out.stderr);
            assert!(
                err.contains("panicked at") && err.contains("boom from the child"),
                "{m}: {err}"
            );
            assert!(text(&out.stdout).contains("task panicked: boom from the child"));
        }
    });
}

#[test]
fn a_stack_overflow_is_reported_under_every_start_method() {
    watchdog(|| {
        for m in ["spawn", "fork", "forkserver"] {
            let out = helper(&["overflow", m]);
            assert!(out.status.success(), "{m}: {out:?}");
            let stdout = text(&out.stdout);
            assert!(
                stdout.contains("stack overflow in child process"),
                "{m}: {stdout}"
            );
            assert!(stdout.contains("exit code Some(-11)"), "{m}: {stdout}");
            let err = text(&out.stderr);
            assert!(err.contains("has overflowed its stack"), "{m}: {err}");
        }
    });
}

#[test]
fn children_and_the_fork_server_carry_the_programs_name() {
    watchdog(|| {
        let out = helper(&["names"]);
        assert!(out.status.success(), "{out:?}");
        let stdout = text(&out.stdout);
        let line = |k: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or_else(|| panic!("no {k} in {stdout}"))
                .trim()
                .to_owned()
        };
        let parent = line("parent ");
        assert_ne!(parent, "exe");
        assert_eq!(line("spawn "), parent);
        assert_eq!(line("forkserver "), parent);
        assert!(
            line("server ").contains("--spindle-fork-server"),
            "{stdout}"
        );
    });
}

#[test]
fn exit_waits_for_non_daemon_children_and_kills_daemons() {
    watchdog(|| {
        let marker = std::env::temp_dir().join(format!("spindle-exit-{}", std::process::id()));
        let marker = marker.to_string_lossy().into_owned();
        for suffix in [".spawn", ".leaked"] {
            let _ = std::fs::remove_file(format!("{marker}{suffix}"));
        }
        let out = helper(&["exit-leaving", &marker]);
        assert!(out.status.success(), "{out:?}");
        // Both non-daemon children finished their work (300 ms) before the parent ended.
        for suffix in [".spawn", ".leaked"] {
            let path = format!("{marker}{suffix}");
            assert!(
                std::path::Path::new(&path).exists(),
                "{path}: the child was killed at exit"
            );
            let _ = std::fs::remove_file(&path);
        }
        let daemon: u32 = text(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("daemon "))
            .and_then(|p| p.trim().parse().ok())
            .expect("daemon pid");
        assert!(
            common::eventually(std::time::Duration::from_secs(5), || !running(daemon)),
            "the daemon child outlived its parent's exit"
        );
    });
}

#[test]
fn touching_the_executable_does_not_stop_later_starts() {
    watchdog(|| {
        let out = helper(&["touch"]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            text(&out.stdout).split_whitespace().collect::<Vec<_>>(),
            ["2", "4", "4", "4"]
        );
    });
}

fn method_and_names() -> (String, String, String) {
    let me = spindle::multiprocessing::current_process()
        .name()
        .to_owned();
    let method = spindle::multiprocessing::get_start_method().to_string();
    let grandchild = Builder::new().start_method(StartMethod::Fork).target(
        || {
            spindle::multiprocessing::current_process()
                .name()
                .to_owned()
        },
        (),
    );
    grandchild.start().unwrap();
    (method, me, grandchild.join().unwrap())
}

#[test]
fn a_child_reports_its_own_start_method_and_nested_names() {
    watchdog(|| {
        for m in StartMethod::ALL {
            let p = Builder::new().start_method(m).target(method_and_names, ());
            let name = p.name().to_owned();
            p.start().unwrap();
            let (method, me, grandchild) = p.join().unwrap();
            assert_eq!(method, m.as_str());
            assert_eq!(me, name);
            assert!(name.starts_with("Process-"), "{name}");
            assert_eq!(grandchild, format!("{name}:1"), "{m}");
        }
    });
}
