//! The fork server is not a single point of failure (issue #10): its children are ours, so
//! they survive its SIGKILL and `join` reports their real outcome; a fork child started
//! meanwhile holds nothing of the forkserver start; a new server serves new starts. In its own
//! binary: it kills this process's fork server.

use std::time::Duration;

use spindle::multiprocessing::{bench, Builder, StartMethod};

mod common;
use common::{eventually, running, watchdog};

fn work(ms: u64, value: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    value
}

fn kill(pid: u32) {
    // SAFETY: kill takes a pid and a signal and touches no memory.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
}

#[test]
fn children_outlive_their_fork_server_and_join_reports_their_outcome() {
    watchdog(|| {
        // A child at work when its server is SIGKILLed finishes and `join` has its value.
        let p = Builder::new()
            .start_method(StartMethod::Forkserver)
            .target(work, (500, 7));
        p.start().unwrap();
        let server = bench::forkserver_pid().expect("a fork server");
        kill(server);
        assert!(eventually(Duration::from_secs(5), || !running(server)));
        assert!(p.is_alive(), "the child died with its server");
        assert_eq!(p.join().unwrap(), 7);
        assert_eq!(p.exitcode(), Some(0));

        // A fork child that lives on, started while a forkserver child runs: killing the
        // server makes no `join` wait for the unrelated fork child.
        let q = Builder::new()
            .start_method(StartMethod::Forkserver)
            .target(work, (300, 3));
        q.start().unwrap();
        let second = bench::forkserver_pid().expect("a new fork server");
        assert_ne!(second, server, "a new server serves new starts");
        let bystander = Builder::new()
            .start_method(StartMethod::Fork)
            .daemon(true)
            .target(work, (60_000, 0));
        bystander.start().unwrap();
        kill(second);
        // The watchdog (30 s) fails this long before the bystander's 60 s.
        assert_eq!(q.join().unwrap(), 3);
        assert!(bystander.is_alive());
        bystander.kill().unwrap();
        let _ = bystander.join();
    });
}
