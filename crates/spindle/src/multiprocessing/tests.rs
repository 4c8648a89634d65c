//! Unit tests that look at internals: spawn and forkserver from inside the library's own
//! test binary, and the protocol faults that only hand-made messages can produce.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::bootstrap::{Call, EXIT_REFUSED};
use super::reduction::{self, ChildFailure, Kind};
use super::start::{ChildRef, Started};
use super::*;
use crate::error::Error;
use crate::sys;
use crate::sys::fd::Tracked;

fn triple(x: i64) -> i64 {
    3 * x
}

fn with_watchdog<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let v = f();
        let _ = tx.send(());
        v
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("watchdog: no end within 30 s"),
        _ => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
    }
}

#[test]
fn spawn_and_forkserver_work_from_a_unit_test() {
    with_watchdog(|| {
        for method in [StartMethod::Spawn, StartMethod::Forkserver] {
            let p = Builder::new().start_method(method).target(triple, (14,));
            p.start().unwrap();
            assert_eq!(p.join().unwrap(), 42, "{method}");
        }
    });
}

/// Spawns a child by hand and returns the parent's end of its control socket.
fn spawn_raw() -> Started {
    let (sock, theirs) = UnixStream::pair().unwrap();
    let mode = format!("spawn,3,{}", sys::proc::getpid());
    let pid = sys::proc::spawn_program(&sys::proc::SpawnSpec {
        program: "/proc/self/exe".as_ref(),
        argv: &[sys::proc::argv0()],
        var: Some((super::bootstrap::child_var(), &mode)),
        channel: Some(theirs.as_fd()),
    })
    .unwrap();
    drop(theirs);
    adopt_started(pid, sock)
}

fn adopt_started(pid: u32, sock: UnixStream) -> Started {
    let pidfd = sys::proc::pidfd_open(pid).unwrap();
    Started {
        child: ChildRef::new(pid, Tracked::make(|| Ok(pidfd)).unwrap()),
        sock: Tracked::make(|| Ok(sock)).unwrap(),
    }
}

fn our_build() -> Vec<u8> {
    sys::image::build_identity().to_vec()
}

fn entry_of<F: Target<(i64,), Output = i64>>(_: F) -> i64 {
    sys::image::entry_offset(super::target::trampoline::<F, (i64,)>)
}

fn call(build: Vec<u8>) -> Vec<u8> {
    let call = Call {
        build,
        entry: entry_of(triple),
        name: "raw".into(),
        ident: vec![1],
        daemon: false,
        method: "spawn".into(),
        parent_pid: sys::proc::getpid(),
        parent_name: "MainProcess".into(),
        fds: 0,
    };
    let mut out = Vec::new();
    reduction::write_frame(&mut out, Kind::Call, &reduction::encode(&call).unwrap()).unwrap();
    out
}

/// Sends `bytes` to a raw child, closes the sending side, and returns what the child answered
/// and its exit code.
fn child_answer(bytes: &[u8]) -> (Option<(Kind, Vec<u8>)>, i32) {
    let mut s = spawn_raw();
    let _ = s.sock.write_all(bytes);
    s.sock.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = Vec::new();
    let _ = s.sock.read_to_end(&mut all);
    let status = sys::proc::waitpid(s.child.pid, false).unwrap().unwrap();
    let frame = if all.is_empty() {
        None
    } else {
        Some(reduction::read_frame(&mut &all[..]).unwrap())
    };
    (frame, sys::proc::exitcode(status))
}

fn failure_of(frame: Option<(Kind, Vec<u8>)>) -> ChildFailure {
    match frame {
        Some((Kind::Failure, payload)) => reduction::decode(&payload).unwrap(),
        other => panic!("expected a failure frame, got {other:?}"),
    }
}

#[test]
fn a_child_given_garbage_refuses_with_a_typed_error() {
    with_watchdog(|| {
        let (frame, code) = child_answer(b"this is not a frame at all");
        assert_eq!(code, EXIT_REFUSED);
        assert!(matches!(failure_of(frame), ChildFailure::Protocol(m) if m.contains("magic")));
    });
}

#[test]
fn a_child_given_a_truncated_call_refuses() {
    with_watchdog(|| {
        let full = call(our_build());
        let (frame, code) = child_answer(&full[..full.len() - 3]);
        assert_eq!(code, EXIT_REFUSED);
        assert!(matches!(failure_of(frame), ChildFailure::Protocol(m) if m.contains("truncated")));
    });
}

#[test]
fn a_child_given_undecodable_arguments_reports_a_codec_error() {
    with_watchdog(|| {
        let mut bytes = call(our_build());
        reduction::write_frame(&mut bytes, Kind::Args, &[0xff, 0xff]).unwrap();
        let (frame, code) = child_answer(&bytes);
        assert_eq!(code, EXIT_REFUSED);
        assert!(matches!(failure_of(frame), ChildFailure::Codec(_)));
    });
}

#[test]
fn a_child_of_another_build_refuses_and_join_says_why() {
    with_watchdog(|| {
        // Simulates a binary changed on disk: the parent's fingerprint is not the child's.
        let mut s = spawn_raw();
        let mut bytes = call([our_build(), vec![1]].concat());
        reduction::write_frame(
            &mut bytes,
            Kind::Args,
            &reduction::encode(&(5i64,)).unwrap(),
        )
        .unwrap();
        s.sock.write_all(&bytes).unwrap();
        let p: Process<i64> = Process::adopt(s);
        let err = p.join().unwrap_err();
        assert!(
            matches!(&err, Error::Protocol(m) if m.contains("another build")),
            "{err:?}"
        );
        assert_eq!(p.exitcode(), Some(EXIT_REFUSED));
    });
}

#[test]
fn the_hand_made_call_runs_when_it_is_right() {
    with_watchdog(|| {
        let mut s = spawn_raw();
        let mut bytes = call(our_build());
        reduction::write_frame(
            &mut bytes,
            Kind::Args,
            &reduction::encode(&(5i64,)).unwrap(),
        )
        .unwrap();
        s.sock.write_all(&bytes).unwrap();
        let p: Process<i64> = Process::adopt(s);
        assert_eq!(p.join().unwrap(), 15);
        assert_eq!(p.exitcode(), Some(0));
    });
}

#[test]
fn a_parent_reading_garbage_gets_a_protocol_error() {
    with_watchdog(|| {
        let (sock, mut theirs) = UnixStream::pair().unwrap();
        let pid = sys::proc::fork_run(&[sock.as_fd()], move || {
            let _ = theirs.write_all(b"\xb5\x01\x03\xff\xff\xff\xffgarbage");
            0
        })
        .unwrap();
        let p: Process<u32> = Process::adopt(adopt_started(pid, sock));
        let err = p.join().unwrap_err();
        assert!(
            matches!(&err, Error::Protocol(m) if m.contains("limit")),
            "{err:?}"
        );
        assert_eq!(p.exitcode(), Some(0));
    });
}

#[test]
fn a_parent_reading_a_wrong_value_gets_a_codec_error() {
    with_watchdog(|| {
        let (sock, mut theirs) = UnixStream::pair().unwrap();
        let pid = sys::proc::fork_run(&[sock.as_fd()], move || {
            let _ = reduction::write_frame(&mut theirs, Kind::Value, b"\xff\xff\xff");
            0
        })
        .unwrap();
        let p: Process<String> = Process::adopt(adopt_started(pid, sock));
        assert!(matches!(p.join(), Err(Error::Codec(_))));
    });
}

#[test]
fn thread_count_sees_a_thread_that_is_alive() {
    with_watchdog(|| {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let parked = std::thread::spawn(move || rx.recv());
        // This test's thread and the parked one, at least (other tests may run beside).
        assert!(sys::proc::thread_count() >= 2);
        assert!(sys::proc::thread_count_from_stat() >= 2);
        drop(tx);
        let _ = parked.join();
    });
}

fn write_marker(path: String) -> u32 {
    std::fs::write(path, b"ran").unwrap();
    1
}

fn entry_for<F: Target<(String,), Output = u32>>(_: F) -> sys::image::EntryFn {
    super::target::trampoline::<F, (String,)>
}

/// The bytes a real parent sends for `write_marker(path)`.
fn real_call_bytes(path: &str) -> Vec<u8> {
    let args = reduction::encode(&(path.to_owned(),)).unwrap();
    let entry = entry_for(write_marker);
    let launch = super::start::Launch {
        name: "replayed".into(),
        ident: vec![1],
        daemon: false,
        job: super::start::Job::Entry {
            entry,
            args: args.clone(),
            fds: Vec::new(),
        },
    };
    let call =
        super::start::CallBytes::new(&launch, StartMethod::Spawn, entry, &args, 0, &[]).unwrap();
    let (mut a, mut b) = UnixStream::pair().unwrap();
    call.send(&mut a, &args, &[]).unwrap();
    drop(a);
    let mut bytes = Vec::new();
    b.read_to_end(&mut bytes).unwrap();
    bytes
}

/// A launcher that is not a spindle parent (python3) runs this test binary with the variable
/// and a socket holding a real parent's bytes. With `launcher_made_it`, the launcher made the
/// socket (it is the child's parent and the socket's peer, but runs another program);
/// otherwise a forked copy of it launches the child (the socket's peer is not the parent).
fn replay_through_python(launcher_made_it: bool) -> Option<(i32, String, bool)> {
    let marker = std::env::temp_dir().join(format!(
        "spindle-replay-{}-{launcher_made_it}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&marker);
    let bytes = real_call_bytes(&marker.to_string_lossy());
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let script = r#"
import os, socket, subprocess, sys
exe, var, data, same = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), sys.argv[4] == "1"
a, b = socket.socketpair()
a.sendall(data)
a.shutdown(socket.SHUT_WR)
if not same and os.fork() != 0:
    os.wait()
    sys.exit(0)
os.dup2(b.fileno(), 3, inheritable=True)
env = dict(os.environ)
env[var] = "spawn,3,%d" % os.getpid()
p = subprocess.run([exe], pass_fds=(3,), env=env, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
sys.stdout.write("%d\n%s" % (p.returncode, p.stderr.decode()))
sys.stdout.flush()
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            &std::env::current_exe().unwrap().to_string_lossy(),
            super::bootstrap::child_var(),
            &hex,
            if launcher_made_it { "1" } else { "0" },
        ])
        .stdin(std::process::Stdio::null())
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        other => {
            eprintln!("skipped: python3 could not run the launcher ({other:?})");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, stderr) = text.split_once('\n').unwrap_or(("-1", &text));
    let ran = marker.exists();
    let _ = std::fs::remove_file(&marker);
    Some((code.trim().parse().unwrap_or(-1), stderr.to_owned(), ran))
}

#[test]
fn a_launcher_that_is_not_a_spindle_parent_cannot_replay_a_call() {
    with_watchdog(|| {
        let Some((code, stderr, ran)) = replay_through_python(true) else {
            return;
        };
        assert!(!ran, "the replayed call ran: {stderr}");
        assert_eq!(code, EXIT_REFUSED, "{stderr}");
        assert!(stderr.contains("another program"), "{stderr}");
    });
}

#[test]
fn a_socket_whose_peer_is_not_the_parent_is_refused() {
    with_watchdog(|| {
        let Some((code, stderr, ran)) = replay_through_python(false) else {
            return;
        };
        assert!(!ran, "the replayed call ran: {stderr}");
        assert_eq!(code, EXIT_REFUSED, "{stderr}");
        assert!(stderr.contains("not our parent"), "{stderr}");
    });
}

#[test]
fn the_same_bytes_from_the_real_parent_run() {
    with_watchdog(|| {
        let marker =
            std::env::temp_dir().join(format!("spindle-replay-real-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let mut s = spawn_raw();
        s.sock
            .write_all(&real_call_bytes(&marker.to_string_lossy()))
            .unwrap();
        let p: Process<u32> = Process::adopt(s);
        assert_eq!(p.join().unwrap(), 1);
        assert!(marker.exists());
        let _ = std::fs::remove_file(&marker);
    });
}

/// A test-only IPC handle: one end of a socket, travelling as a descriptor.
struct End(UnixStream);

impl serde::Serialize for End {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let i = super::handles::stash_fd(self.0.as_fd()).map_err(serde::ser::Error::custom)?;
        s.serialize_u32(i)
    }
}

impl<'de> serde::Deserialize<'de> for End {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let i = u32::deserialize(d)?;
        let fd = super::handles::take_fd(i).map_err(serde::de::Error::custom)?;
        Ok(End(UnixStream::from(fd)))
    }
}

fn write_through(end: End, text: String) -> usize {
    let mut s = end.0;
    s.write_all(text.as_bytes()).unwrap();
    text.len()
}

#[test]
fn a_descriptor_travels_in_the_arguments_under_every_start_method() {
    with_watchdog(|| {
        for method in StartMethod::ALL {
            let (mut ours, theirs) = UnixStream::pair().unwrap();
            let p = Builder::new()
                .start_method(method)
                .target(write_through, (End(theirs), format!("via {method}")));
            p.start().unwrap();
            assert_eq!(p.join().unwrap(), format!("via {method}").len());
            // Our copy in the job is gone with the start; the child's is gone with the child.
            drop(p);
            let mut got = String::new();
            ours.read_to_string(&mut got).unwrap();
            assert_eq!(got, format!("via {method}"), "{method}");
        }
        // Outside a Process's arguments, the handle refuses to encode, with its message.
        let (_a, b) = UnixStream::pair().unwrap();
        let err = reduction::encode(&End(b)).unwrap_err();
        assert!(
            matches!(&err, Error::Codec(m) if m.contains("Process's arguments")),
            "{err:?}"
        );
    });
}
