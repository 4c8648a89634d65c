//! kill -9 of a parent leaves no child behind, whatever the start method, nor the fork server's
//! spare; Ctrl-C (SIGINT to the process group) ends the whole tree.

use std::time::{Duration, Instant};

mod common;
use common::{eventually, helper, read_pids, running, watchdog};

const ALL: &[&str] = &["spawn", "fork", "forkserver", "forkserver"];

#[test]
fn sigkill_of_the_parent_leaves_no_child() {
    watchdog(|| {
        let (mut parent, mut lines) = helper(&[&["children"][..], ALL].concat(), false);
        let pids = read_pids(&mut lines);
        assert!(
            pids.len() >= ALL.len() + 2,
            "four children, the fork server and its spares: {pids:?}"
        );
        assert!(
            pids.iter().all(|p| running(*p)),
            "all running before the kill"
        );
        parent.kill().unwrap(); // SIGKILL
        parent.wait().unwrap();
        let t = Instant::now();
        // The issue asks for a check within a second: the death signal is SIGKILL, sent by the
        // kernel as the parent dies, so nothing here waits on scheduling luck.
        let gone = eventually(Duration::from_secs(1), || pids.iter().all(|p| !running(*p)));
        let left: Vec<_> = pids.iter().filter(|p| running(**p)).collect();
        assert!(
            gone,
            "still running a second after the parent's SIGKILL: {left:?}"
        );
        eprintln!("children gone {:?} after the parent's SIGKILL", t.elapsed());
    });
}

#[test]
fn sigint_to_the_group_ends_the_whole_tree() {
    watchdog(|| {
        let (mut parent, mut lines) = helper(&[&["children"][..], ALL].concat(), true);
        let pids = read_pids(&mut lines);
        let pgid = parent.id() as i32;
        // SAFETY: kill with a negative pid signals a process group; it touches no memory.
        assert_eq!(unsafe { libc::kill(-pgid, libc::SIGINT) }, 0);
        let status = parent.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(libc::SIGINT),
            "the parent ends by Ctrl-C: {status:?}"
        );
        let gone = eventually(Duration::from_secs(5), || pids.iter().all(|p| !running(*p)));
        let left: Vec<_> = pids.iter().filter(|p| running(**p)).collect();
        assert!(gone, "still running after Ctrl-C: {left:?}");
    });
}

#[test]
fn children_of_a_plain_binary_run_and_print_where_the_parent_prints() {
    watchdog(|| {
        for m in ["spawn", "fork", "forkserver"] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_spindle-process-helper"))
                .args(["run", m])
                .output()
                .unwrap();
            assert!(out.status.success(), "{m}: {out:?}");
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5", "{m}");
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_spindle-process-helper"))
                .args(["print", m])
                .output()
                .unwrap();
            assert!(out.status.success(), "{m}: {out:?}");
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("hello from the child on stdout"),
                "{m}"
            );
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("hello from the child on stderr"),
                "{m}"
            );
        }
    });
}
