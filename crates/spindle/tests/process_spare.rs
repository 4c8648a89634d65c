//! The fork server's spare child (issue #15): the child it keeps forked ahead takes exactly one
//! call, gets the caller's working directory, signal dispositions and only the allowed
//! descriptors at the moment of the start (not at its birth), never outlives its parent, and
//! survives nothing the server would not. What the caller's process sees of it
//! (`active_children`, a `waitpid(-1)` of its own) is shown too.
//!
//! Its own binary: it changes process-wide state (the working directory, signal dispositions,
//! descriptor 57), kills the fork server and reaps with `waitpid(-1)`. The tests of this file
//! take one lock, so that they never run at the same time.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::time::Duration;

use spindle::multiprocessing::{active_children, bench, Builder, StartMethod};

mod common;
use common::{children_of, eventually, helper, read_pids, running, watchdog_for};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    watchdog_for(Duration::from_secs(60), body)
}

/// The spare the next forkserver start will take (starting the server if need be).
fn spare() -> u32 {
    bench::forkserver_spare_pid()
        .expect("the fork server starts")
        .expect("a spare is announced")
}

/// Appends `id pid` to the log at `path` (one `write`, `O_APPEND`): each run of a call leaves
/// one line, so a call run twice would leave two.
fn record(path: String, id: u32) -> (u32, u32) {
    let me = std::process::id();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(format!("{id} {me}\n").as_bytes()).unwrap();
    (id, me)
}

fn log_path(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("spindle-spare-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// `(id, pid)` of every line of a log.
fn runs(path: &std::path::Path) -> Vec<(u32, u32)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (id, pid) = l.split_once(' ').unwrap();
            (id.parse().unwrap(), pid.parse().unwrap())
        })
        .collect()
}

fn kill(pid: u32, sig: libc::c_int) {
    // SAFETY: kill takes a pid and a signal and touches no memory.
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(r, 0, "kill {pid} {sig}");
}

#[test]
fn a_spare_takes_exactly_one_call_and_no_call_runs_twice() {
    serial(|| {
        let log = log_path("once");
        let path = log.to_string_lossy().into_owned();
        // One after another: each start goes to the spare announced before it.
        let mut pids = BTreeSet::new();
        for id in 0..30u32 {
            let waiting = spare();
            let p = Builder::new()
                .start_method(StartMethod::Forkserver)
                .target(record, (path.clone(), id));
            p.start().unwrap();
            assert_eq!(
                p.pid(),
                Some(waiting),
                "call {id} went to the waiting spare"
            );
            let (got, pid) = p.join().unwrap();
            assert_eq!((got, pid), (id, waiting));
            assert!(pids.insert(pid), "pid {pid} ran two calls");
        }
        // From four threads at once (through the launcher), faster than spares come.
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    (0..10u32)
                        .map(|i| {
                            let p = Builder::new()
                                .start_method(StartMethod::Forkserver)
                                .target(record, (path.clone(), 100 + t * 10 + i));
                            p.start().unwrap();
                            p.join().unwrap().1
                        })
                        .collect::<Vec<u32>>()
                })
            })
            .collect();
        for t in threads {
            for pid in t.join().unwrap() {
                assert!(pids.insert(pid), "pid {pid} ran two calls");
            }
        }
        // The log has every call exactly once, each in its own process.
        let lines = runs(&log);
        let mut per_id: HashMap<u32, usize> = HashMap::new();
        for (id, _) in &lines {
            *per_id.entry(*id).or_default() += 1;
        }
        assert_eq!(lines.len(), 70, "{lines:?}");
        assert!(per_id.values().all(|n| *n == 1), "{per_id:?}");
        let distinct: BTreeSet<u32> = lines.iter().map(|(_, pid)| *pid).collect();
        assert_eq!(distinct.len(), 70);
        // The spare waiting now never ran anything.
        assert!(!distinct.contains(&spare()));
        let _ = std::fs::remove_file(&log);
    });
}

extern "C" fn on_usr1(_: libc::c_int) {}

/// What a child sees: its directory, (SIGINT ignored, SIGUSR1 at its default, SIGUSR2
/// blocked), whether descriptor 57 is open, and its open descriptors.
fn what_i_see() -> (String, (bool, bool, bool), bool, Vec<i32>) {
    let cwd = std::env::current_dir()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // SAFETY: reading dispositions and the mask into zeroed out-parameters; F_GETFD only
    // reads flags.
    let (signals, stray) = unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGINT, std::ptr::null(), &mut act);
        let int_ignored = act.sa_sigaction == libc::SIG_IGN;
        libc::sigaction(libc::SIGUSR1, std::ptr::null(), &mut act);
        let usr1_default = act.sa_sigaction == libc::SIG_DFL;
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
        let usr2_blocked = libc::sigismember(&set, libc::SIGUSR2) == 1;
        (
            (int_ignored, usr1_default, usr2_blocked),
            libc::fcntl(57, libc::F_GETFD) != -1,
        )
    };
    let mut fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    // SAFETY: F_GETFD only reads flags; EBADF for a closed number.
    fds.retain(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } != -1);
    fds.sort();
    (cwd, signals, stray, fds)
}

#[test]
fn a_spare_forked_before_the_callers_changes_starts_with_them() {
    serial(|| {
        // The spare is forked now, before any of the changes below.
        let waiting = spare();
        let before = std::env::current_dir().unwrap();
        let dir = std::env::temp_dir().join(format!("spindle-spare-cwd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        std::env::set_current_dir(&dir).unwrap();
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        // SAFETY: valid dispositions and handler; this thread's mask; dup2 onto a number this
        // test owns until it closes it below.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(
                libc::SIGUSR1,
                on_usr1 as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            assert_eq!(libc::dup2(file.as_raw_fd(), 57), 57);
        }
        let p = Builder::new()
            .start_method(StartMethod::Forkserver)
            .target(what_i_see, ());
        p.start().unwrap();
        assert_eq!(
            p.pid(),
            Some(waiting),
            "the spare forked before took the call"
        );
        let (cwd, signals, stray, fds) = p.join().unwrap();
        assert_eq!(cwd, dir.to_string_lossy());
        assert_eq!(
            signals,
            (true, true, false),
            "exec's rule with the caller's set"
        );
        assert!(!stray, "descriptor 57 reached the child");
        assert_eq!(fds, [0, 1, 2, 3], "stdio and the channel only");

        // And back: a spare forked while the changes held sees the caller's state at its start.
        let waiting = spare();
        std::env::set_current_dir(&before).unwrap();
        // SAFETY: back to the defaults; closes the number dup2'd above; this thread's mask.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGUSR1, libc::SIG_DFL);
            libc::close(57);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
        let p = Builder::new()
            .start_method(StartMethod::Forkserver)
            .target(what_i_see, ());
        p.start().unwrap();
        assert_eq!(p.pid(), Some(waiting));
        let (cwd, signals, _, fds) = p.join().unwrap();
        assert_eq!(cwd, before.to_string_lossy());
        assert_eq!(signals, (false, true, false));
        assert_eq!(fds, [0, 1, 2, 3]);
        let _ = std::fs::remove_dir(&dir);
    });
}

fn ignores_sigint() -> bool {
    // SAFETY: reads the disposition into a zeroed out-parameter.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGINT, std::ptr::null(), &mut act);
        act.sa_sigaction == libc::SIG_IGN
    }
}

fn zombie_or_gone(pid: u32) -> bool {
    !running(pid)
}

#[test]
fn a_spare_survives_nothing_the_server_would_not() {
    serial(|| {
        let me = std::process::id();
        // SIGINT: the server ignores it (Ctrl-C reaches the parent and the children), and so
        // does a waiting spare, which then starts with the caller's rule all the same.
        let server = bench::forkserver_pid().unwrap_or_else(|| {
            spare();
            bench::forkserver_pid().unwrap()
        });
        let waiting = spare();
        kill(server, libc::SIGINT);
        kill(waiting, libc::SIGINT);
        std::thread::sleep(Duration::from_millis(50));
        assert!(running(server) && running(waiting));
        let p = Builder::new()
            .start_method(StartMethod::Forkserver)
            .target(ignores_sigint, ());
        p.start().unwrap();
        assert_eq!(p.pid(), Some(waiting));
        assert!(!p.join().unwrap(), "the caller's SIGINT is at its default");

        // SIGTERM ends a spare as it ends the server; the next start takes another spare and
        // the dead one is reaped, not left a zombie.
        let waiting = spare();
        kill(waiting, libc::SIGTERM);
        assert!(eventually(Duration::from_secs(5), || zombie_or_gone(
            waiting
        )));
        let p = Builder::new()
            .start_method(StartMethod::Forkserver)
            .target(ignores_sigint, ());
        p.start().unwrap();
        assert_ne!(p.pid(), Some(waiting));
        assert!(!p.join().unwrap());
        assert!(
            !children_of(me).iter().any(|(pid, _)| *pid == waiting),
            "the dead spare was reaped"
        );

        // The server's death ends its waiting spare; the next start spawns a new server, and
        // reaps the old one and its spare.
        let server = bench::forkserver_pid().unwrap();
        let waiting = spare();
        kill(server, libc::SIGKILL);
        assert!(eventually(Duration::from_secs(5), || zombie_or_gone(
            waiting
        )));
        let p = Builder::new()
            .start_method(StartMethod::Forkserver)
            .target(ignores_sigint, ());
        p.start().unwrap();
        assert!(!p.join().unwrap());
        assert_ne!(bench::forkserver_pid(), Some(server), "a new server");
        let mine: Vec<u32> = children_of(me).iter().map(|(pid, _)| *pid).collect();
        assert!(
            !mine.contains(&server) && !mine.contains(&waiting),
            "the old server and its spare were reaped: {mine:?}"
        );
    });
}

#[test]
fn the_callers_process_sees_the_spare_as_a_child_that_is_no_process_of_its_own() {
    serial(|| {
        let me = std::process::id();
        let waiting = spare();
        // One more child of ours at all times, but no `Process`: `active_children` omits it.
        assert!(children_of(me).iter().any(|(pid, _)| *pid == waiting));
        assert!(active_children().iter().all(|c| c.pid() != waiting));
        // It ends with `SIGCHLD` like any child (`CLONE_PARENT` gives it the server's exit
        // signal), so a `waitpid(-1)` of the user's own may reap it once it is dead. spindle
        // waits through pidfds, never by pid, so it reaps nothing by mistake, and the next
        // start takes another spare.
        kill(waiting, libc::SIGKILL);
        assert!(eventually(Duration::from_secs(5), || !running(waiting)));
        let mut reaped = Vec::new();
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid out-pointer.
            match unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } {
                pid if pid > 0 => reaped.push(pid as u32),
                _ => break,
            }
        }
        assert_eq!(
            reaped,
            [waiting],
            "a plain waitpid(-1) reaps the dead spare, nothing else"
        );
        let p = Builder::new()
            .start_method(StartMethod::Forkserver)
            .target(ignores_sigint, ());
        p.start().unwrap();
        assert_ne!(p.pid(), Some(waiting));
        assert!(!p.join().unwrap());
        assert_eq!(p.exitcode(), Some(0));
    });
}

#[test]
fn a_spare_never_outlives_its_parent() {
    serial(|| {
        // The parent returns from `main`.
        let (mut parent, mut lines) = helper(&["spare"], false);
        let pids = read_pids(&mut lines);
        assert_eq!(pids.len(), 2, "server and spare: {pids:?}");
        assert!(parent.wait().unwrap().success());
        assert!(
            eventually(Duration::from_secs(1), || pids.iter().all(|p| !running(*p))),
            "still running a second after the parent's exit: {pids:?}"
        );
        // The parent is SIGKILLed with children at work (the process_orphans test checks the
        // same for every start method; here the spare is named).
        let (mut parent, mut lines) = helper(&["children", "forkserver"], false);
        let pids = read_pids(&mut lines);
        assert!(pids.len() >= 3, "child, server and spares: {pids:?}");
        parent.kill().unwrap();
        parent.wait().unwrap();
        assert!(
            eventually(Duration::from_secs(1), || pids.iter().all(|p| !running(*p))),
            "still running a second after the parent's SIGKILL: {pids:?}"
        );
    });
}

#[test]
fn a_forked_child_starts_its_own_server_and_leaves_the_parents_spare_alone() {
    serial(|| {
        let waiting = spare();
        let server = bench::forkserver_pid().unwrap();
        let p = Builder::new()
            .start_method(StartMethod::Fork)
            .fork_target(|| {
                let q = Builder::new()
                    .start_method(StartMethod::Forkserver)
                    .target(std::process::id, ());
                q.start().unwrap();
                let pid = q.join().unwrap();
                (pid, bench::forkserver_pid().unwrap())
            });
        p.start().unwrap();
        let (grandchild, its_server) = p.join().unwrap();
        assert_ne!(
            grandchild, waiting,
            "the parent's spare took the fork child's call"
        );
        assert_ne!(its_server, server);
        assert!(running(waiting), "the parent's spare is untouched");
        assert_eq!(spare(), waiting);
    });
}
