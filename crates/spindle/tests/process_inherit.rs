//! What a child inherits, one rule for every start method (issue #10): exec's signal rule and
//! an empty mask, the caller's working directory, stdio and the channel only (spawn,
//! forkserver) or the user's descriptors but none of spindle's (fork); and failed starts that
//! leave no process. One test, in its own binary: it changes process-wide state (signal
//! dispositions, the working directory, descriptor 57) and counts children and descriptors.

use std::os::fd::AsRawFd;

use spindle::multiprocessing::{bench, Builder, StartMethod};

mod common;
use common::{children_of, watchdog};

const STRAY: i32 = 57;

extern "C" fn on_usr1(_: libc::c_int) {}

/// (SIGINT ignored, SIGUSR1 at its default, SIGUSR2 blocked)
fn signals() -> (bool, bool, bool) {
    // SAFETY: reading dispositions and the mask into zeroed out-parameters.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGINT, std::ptr::null(), &mut act);
        let int_ignored = act.sa_sigaction == libc::SIG_IGN;
        libc::sigaction(libc::SIGUSR1, std::ptr::null(), &mut act);
        let usr1_default = act.sa_sigaction == libc::SIG_DFL;
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
        let usr2_blocked = libc::sigismember(&set, libc::SIGUSR2) == 1;
        (int_ignored, usr1_default, usr2_blocked)
    }
}

fn cwd() -> String {
    std::env::current_dir()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Whether descriptor 57 is open here, and every open descriptor.
fn descriptors() -> (bool, Vec<i32>) {
    // SAFETY: F_GETFD only reads flags; EBADF for a closed number.
    let stray = unsafe { libc::fcntl(STRAY, libc::F_GETFD) } != -1;
    let dir = std::fs::read_dir("/proc/self/fd").unwrap();
    let mut fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort();
    // The last one listed may be the directory being read: drop it if closed now.
    // SAFETY: F_GETFD only reads flags; EBADF for a closed number.
    fds.retain(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } != -1);
    (stray, fds)
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    ms
}

#[derive(Debug)]
struct Huge;

impl serde::Serialize for Huge {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Zero pages from calloc, never touched: the encoder refuses them before copying.
        let bytes = vec![0u8; (1 << 30) + 1];
        s.serialize_bytes(&bytes)
    }
}

impl<'de> serde::Deserialize<'de> for Huge {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_bytes_len(d).map(|_| Huge)
    }
}

fn serde_bytes_len<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    <Vec<u8> as serde::Deserialize>::deserialize(d).map(|v| v.len())
}

fn huge_result() -> Huge {
    Huge
}

fn takes_huge(_: Huge) -> u32 {
    0
}

#[derive(Debug)]
struct Refuses;

impl serde::Serialize for Refuses {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("a Refuses never travels"))
    }
}

impl<'de> serde::Deserialize<'de> for Refuses {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <() as serde::Deserialize>::deserialize(d).map(|()| Refuses)
    }
}

fn takes_refuses(_: Refuses) -> u32 {
    0
}

fn gives_refuses() -> Refuses {
    Refuses
}

fn others(me: u32) -> Vec<(u32, char)> {
    let server = bench::forkserver_pid();
    children_of(me)
        .into_iter()
        .filter(|(p, _)| Some(*p) != server)
        .collect()
}

#[test]
fn children_inherit_what_the_rule_says_and_failed_starts_leave_nothing() {
    watchdog(|| {
        // The fork server starts now, before any of the changes below.
        let p = Builder::new()
            .start_method(StartMethod::Forkserver)
            .target(sleep_ms, (0,));
        p.start().unwrap();
        p.join().unwrap();

        // Signals: SIGINT ignored, SIGUSR1 handled, SIGUSR2 blocked on this thread.
        // SAFETY: a valid handler and dispositions; the mask of this thread only.
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
        }
        for m in StartMethod::ALL {
            let p = Builder::new().start_method(m).target(signals, ());
            p.start().unwrap();
            assert_eq!(p.join().unwrap(), (true, true, false), "{m}");
        }
        // SAFETY: back to the defaults.
        unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
        for m in StartMethod::ALL {
            let p = Builder::new().start_method(m).target(signals, ());
            p.start().unwrap();
            assert!(!p.join().unwrap().0, "{m}: SIGINT follows the caller");
        }

        // The working directory at each start.
        let before = std::env::current_dir().unwrap();
        let dir = std::env::temp_dir().join(format!("spindle-cwd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        std::env::set_current_dir(&dir).unwrap();
        for m in StartMethod::ALL {
            let p = Builder::new().start_method(m).target(cwd, ());
            p.start().unwrap();
            assert_eq!(p.join().unwrap(), dir.to_string_lossy(), "{m}");
        }
        std::env::set_current_dir(&before).unwrap();
        let _ = std::fs::remove_dir(&dir);

        // A stray descriptor without close-on-exec, as a C library or a shell leaves them.
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        // SAFETY: dup2 onto a number this test owns from now on (closed at the end).
        assert_eq!(unsafe { libc::dup2(file.as_raw_fd(), STRAY) }, STRAY);
        for m in [StartMethod::Spawn, StartMethod::Forkserver] {
            let p = Builder::new().start_method(m).target(descriptors, ());
            p.start().unwrap();
            let (stray, fds) = p.join().unwrap();
            assert!(!stray, "{m}: descriptor {STRAY} reached the child");
            assert_eq!(fds, [0, 1, 2, 3], "{m}: stdio and the channel only");
        }
        // A fork child keeps the user's descriptors but none of spindle's: not the channel
        // and pidfd of another running child, nor the fork server's connection.
        let (_, baseline) = descriptors();
        let sibling = Builder::new()
            .start_method(StartMethod::Forkserver)
            .daemon(true)
            .target(sleep_ms, (60_000,));
        sibling.start().unwrap();
        let (_, with_sibling) = descriptors();
        let spindles: Vec<i32> = with_sibling
            .iter()
            .copied()
            .filter(|fd| !baseline.contains(fd))
            .collect();
        assert!(
            spindles.len() >= 2,
            "the sibling's pidfd and channel: {spindles:?}"
        );
        let p = Builder::new()
            .start_method(StartMethod::Fork)
            .target(descriptors, ());
        p.start().unwrap();
        let (stray, fds) = p.join().unwrap();
        assert!(stray, "a fork child keeps the user's descriptors");
        let leaked: Vec<_> = fds.iter().filter(|fd| spindles.contains(fd)).collect();
        assert!(
            leaked.is_empty(),
            "spindle's descriptors in a fork child: {leaked:?}"
        );
        sibling.kill().unwrap();
        let _ = sibling.join();
        // SAFETY: closes the number dup2'd above.
        unsafe { libc::close(STRAY) };

        // Failed starts: an argument over the frame limit fails before any process exists,
        // a result over it is the codec error the argument gets, and a type's own serde
        // error message is kept.
        let me = std::process::id();
        for m in StartMethod::ALL {
            let before = others(me);
            let p = Builder::new().start_method(m).target(takes_huge, (Huge,));
            let err = p.start().unwrap_err();
            assert!(
                matches!(&err, spindle::Error::Codec(msg) if msg.contains("exceeds")),
                "{m}: {err:?}"
            );
            assert_eq!(p.pid(), None);
            assert_eq!(others(me), before, "{m}: a failed start left a process");

            let p = Builder::new()
                .start_method(m)
                .target(takes_refuses, (Refuses,));
            let err = p.start().unwrap_err();
            assert!(
                matches!(&err, spindle::Error::Codec(msg) if msg.contains("a Refuses never travels")),
                "{m}: {err:?}"
            );

            let p = Builder::new().start_method(m).target(huge_result, ());
            p.start().unwrap();
            let err = p.join().unwrap_err();
            assert!(
                matches!(&err, spindle::Error::Codec(msg) if msg.contains("exceeds")),
                "{m}: {err:?}"
            );
            assert_eq!(p.exitcode(), Some(2), "{m}");

            let p = Builder::new().start_method(m).target(gives_refuses, ());
            p.start().unwrap();
            let err = p.join().unwrap_err();
            assert!(
                matches!(&err, spindle::Error::Codec(msg) if msg.contains("a Refuses never travels")),
                "{m}: {err:?}"
            );
        }
    });
}
