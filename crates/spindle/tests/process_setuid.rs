//! A setuid copy of a program that links spindle, run by an unprivileged user, never acts as a
//! spindle child, and its own spawn and forkserver starts say to use fork (issue #10).
//!
//! CI runs as root, and root running a setuid-root binary gets no `AT_SECURE`: so the test
//! copies the helper binary into a fresh directory on a filesystem not mounted `nosuid`,
//! makes it setuid root and runs it as `nobody` with `setpriv`. Where that cannot be set up
//! (not root, no `setpriv`, only `nosuid` filesystems), it says why and passes without
//! checking.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::watchdog;

const NOBODY: u32 = 65534;

/// Whether the filesystem holding `dir` is mounted `nosuid`.
fn nosuid(dir: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let dir = dir.to_string_lossy();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4).then(|| (f[1].to_owned(), f[3].to_owned()))
        })
        .filter(|(mnt, _)| dir.starts_with(mnt.as_str()))
        .max_by_key(|(mnt, _)| mnt.len())
        .is_none_or(|(_, opts)| opts.split(',').any(|o| o == "nosuid"))
}

fn setup() -> Result<PathBuf, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not running as root: cannot make a setuid-root copy".into());
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        return Err("setpriv is not available".into());
    }
    let dir = std::env::temp_dir().join(format!("spindle-setuid-{}", std::process::id()));
    if nosuid(&dir) {
        return Err(format!("{} is on a nosuid filesystem", dir.display()));
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let copy = dir.join("helper");
    std::fs::copy(env!("CARGO_BIN_EXE_spindle-process-helper"), &copy)
        .map_err(|e| e.to_string())?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755))
        .map_err(|e| e.to_string())?;
    Ok(copy)
}

/// Runs `copy args` as nobody, with `env` added and, if given, a socket at descriptor 3.
fn as_nobody(copy: &Path, args: &[&str], env: Option<(&str, String)>, sock: bool) -> Output {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOBODY}"),
        "--clear-groups",
        "--",
    ])
    .arg(copy)
    .args(args)
    .env("RUST_BACKTRACE", "0")
    .current_dir("/");
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let pair = std::os::unix::net::UnixStream::pair().unwrap();
    if sock {
        use std::os::fd::AsRawFd;
        let raw = pair.1.as_raw_fd();
        // SAFETY: between fork and exec only dup2 (async-signal-safe) runs; it puts our socket
        // at descriptor 3 without close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(raw, 3) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.output().unwrap()
}

#[test]
fn a_setuid_copy_run_by_nobody_never_acts_as_a_child() {
    watchdog(|| {
        let copy = match setup() {
            Ok(c) => c,
            Err(why) => {
                eprintln!("skipped: {why}");
                return;
            }
        };
        let var =
            String::from_utf8_lossy(&Command::new(&copy).arg("variable").output().unwrap().stdout)
                .trim()
                .to_owned();
        let ppid = std::process::id().to_string();
        // The launcher hands the setuid program a socket and the variable: refused by
        // AT_SECURE, before main (which would print 5).
        let out = as_nobody(
            &copy,
            &["run", "fork"],
            Some((&var, format!("spawn,3,{ppid}"))),
            true,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(out.stdout.is_empty(), "main ran: {out:?}");
        assert!(err.contains("privileges"), "{err}");

        // Its own starts: fork works, spawn and forkserver are refused with an error that
        // names fork.
        let out = as_nobody(&copy, &["run", "fork"], None, false);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5", "{out:?}");
        for m in ["spawn", "forkserver"] {
            let out = as_nobody(&copy, &["run", m], None, false);
            assert!(!out.status.success(), "{m}: {out:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("Unsupported") && err.contains("StartMethod::Fork"),
                "{m}: {err}"
            );
        }
        let _ = std::fs::remove_dir_all(copy.parent().unwrap());
    });
}
