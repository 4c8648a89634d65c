//! Pipes and connections across processes: typed messages both ways with fork children,
//! every timeout form, end of stream, raw bytes, `Listener`/`client` with a wrong `authkey`,
//! `connection::wait` on a mix of connections, queues and processes, and hostile frames.
//!
//! Behaviours ported from CPython's `_test_multiprocessing` (`_TestConnection`:
//! `test_connection`, `test_duplex_false`, `test_sendbytes`, `test_fd_transfer` is for the
//! start path; `_TestListenerClient`; `TestWait`).

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use spindle::multiprocessing::connection::{
    client, pipe, wait, Connection, Listener, RecvError, SendError, Waitable,
};
use spindle::multiprocessing::queues::Queue;
use spindle::multiprocessing::{Builder, Process};

mod common;

use common::serial_watchdog as watchdog;

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
enum Request {
    Add(i64, i64),
    Upper(String),
    Stop,
}

#[test]
fn typed_messages_both_ways_with_a_fork_child() {
    watchdog(|| {
        let (parent, child) = pipe::<Request, String>(true).unwrap();
        let p = Builder::new().fork_target(move || {
            let mut served = 0u32;
            loop {
                match child.recv().unwrap() {
                    Request::Add(a, b) => child.send(&(a + b).to_string()).unwrap(),
                    Request::Upper(s) => child.send(&s.to_uppercase()).unwrap(),
                    Request::Stop => return served,
                }
                served += 1;
            }
        });
        p.start().unwrap();
        parent.send(&Request::Add(40, 2)).unwrap();
        assert_eq!(parent.recv().unwrap(), "42");
        parent.send(&Request::Upper("spindle".into())).unwrap();
        assert_eq!(
            parent.recv_timeout(Duration::from_secs(10)).unwrap(),
            "SPINDLE"
        );
        // A message larger than the socket buffer: read while it is written.
        let big = "x".repeat(3 << 20);
        parent.send(&Request::Upper(big.clone())).unwrap();
        assert_eq!(parent.recv().unwrap(), big.to_uppercase());
        parent.send(&Request::Stop).unwrap();
        assert_eq!(p.join().unwrap(), 3);
    });
}

#[test]
fn one_way_pipe_and_raw_bytes() {
    let (reader, writer) = pipe::<(), Vec<u8>>(false).unwrap();
    assert!(!reader.writable() && !writer.readable());
    writer.send_bytes(b"raw").unwrap();
    assert_eq!(reader.recv_bytes().unwrap(), b"raw");
    writer.send(&vec![1, 2, 3]).unwrap();
    assert_eq!(reader.recv().unwrap(), [1, 2, 3]);
    assert!(matches!(reader.send(&()), Err(SendError::WrongDirection)));
    assert!(matches!(writer.recv(), Err(RecvError::WrongDirection)));
}

#[test]
fn poll_and_timeouts() {
    watchdog(|| {
        let (a, b) = pipe::<u32, u32>(true).unwrap();
        assert!(!a.poll(Duration::ZERO).unwrap());
        assert!(!a.poll(Duration::from_millis(20)).unwrap());
        assert!(matches!(
            a.recv_timeout(Duration::from_millis(20)),
            Err(RecvError::Timeout)
        ));
        assert!(matches!(
            a.recv_bytes_timeout(Duration::from_millis(5)),
            Err(RecvError::Timeout)
        ));
        b.send(&5).unwrap();
        assert!(a.poll(Duration::from_secs(5)).unwrap());
        assert_eq!(a.recv().unwrap(), 5);
        // A pipe's send that finds its ring full (nobody reads) times out, whole: the frame
        // is not half sent, so the pipe stays usable.
        let (c, d) = pipe::<Vec<u8>, ()>(true).unwrap();
        let mut sent = 0;
        loop {
            match c.send_timeout(&vec![7; 1000], Duration::from_millis(20)) {
                Ok(()) => sent += 1,
                Err(SendError::Timeout) => break,
                Err(e) => panic!("{e}"),
            }
            assert!(sent < 100_000, "the ring never filled");
        }
        assert!(sent > 10);
        let first: Vec<u8> = d.recv().unwrap();
        assert_eq!(first, vec![7; 1000]);
        // A stream connection's send that times out mid-frame leaves it unusable (typed).
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let s = Connection::<Vec<u32>, ()>::from(ours);
        assert!(matches!(
            s.send_timeout(&vec![0u32; 4 << 20], Duration::from_millis(50)),
            Err(SendError::Timeout)
        ));
        assert!(matches!(s.send(&vec![1]), Err(SendError::Broken)));
    });
}

#[test]
fn end_of_stream_when_the_peer_is_gone() {
    watchdog(|| {
        let (a, b) = pipe::<u8, u8>(true).unwrap();
        b.send(&1).unwrap();
        drop(b);
        assert_eq!(a.recv().unwrap(), 1);
        assert!(matches!(a.recv(), Err(RecvError::Disconnected)));
        assert!(a.poll(Duration::ZERO).unwrap());
        assert!(matches!(a.send(&2), Err(SendError::Disconnected)));

        // A peer SIGKILLed while the other waits: Disconnected, not a hang.
        let (a, b) = pipe::<u8, u8>(true).unwrap();
        let p = Builder::new().daemon(true).fork_target(move || {
            let _keep = b;
            std::thread::sleep(Duration::from_secs(60));
        });
        p.start().unwrap();
        // The child inherited `a` too (fork copies every descriptor): close the parent's
        // own copy of `b` is done by the move; end of stream needs the child gone.
        p.kill().unwrap();
        let _ = p.join();
        assert!(matches!(a.recv(), Err(RecvError::Disconnected)));
    });
}

#[test]
fn listener_and_client_with_authkey() {
    watchdog(|| {
        let dir = std::env::temp_dir().join(format!("spindle-ipc-pipe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.sock");
        let listener = Listener::bind(&path, Some(b"right key")).unwrap();
        assert_eq!(listener.address(), path);
        let p = {
            let path = path.clone();
            Builder::new().fork_target(move || {
                let wrong = client::<(), ()>(&path, Some(b"wrong key"));
                let good = client::<u32, u32>(&path, Some(b"right key")).unwrap();
                good.send(&41).unwrap();
                (wrong.is_err(), good.recv().unwrap())
            })
        };
        p.start().unwrap();
        // The first client knows the wrong key: refused, and the listener goes on.
        let refused = listener.accept::<(), ()>();
        assert!(
            matches!(refused, Err(spindle::Error::Protocol(ref m)) if m.contains("authentication")),
            "{refused:?}"
        );
        let conn = listener.accept::<u32, u32>().unwrap();
        let n = conn.recv().unwrap();
        conn.send(&(n + 1)).unwrap();
        assert_eq!(p.join().unwrap(), (true, 42));
        // Without a key on one side: the keyed side refuses.
        let l2 = Listener::bind(dir.join("l2.sock"), None).unwrap();
        let t = std::thread::spawn(move || l2.accept::<(), ()>().map(drop));
        assert!(client::<(), ()>(dir.join("l2.sock"), Some(b"k")).is_err());
        let _ = t.join();
        drop(listener);
        assert!(!path.exists(), "the listener removes its socket file");
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

fn sleep_then(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn wait_on_connections_queues_and_processes() {
    watchdog(|| {
        let (a, b) = pipe::<u8, u8>(true).unwrap();
        let (c, d) = pipe::<u8, u8>(true).unwrap();
        let q = Queue::<u32>::new().unwrap();
        let proc_ = Process::new(sleep_then, (200,));
        proc_.start().unwrap();
        let objects: [&dyn Waitable; 4] = [&a, &c, &q, &proc_];
        assert!(wait(&objects, Some(Duration::from_millis(20)))
            .unwrap()
            .is_empty());

        // A queue item put by another process wakes a waiter.
        let tx = q.sender().unwrap();
        let putter = Builder::new().fork_target(move || {
            std::thread::sleep(Duration::from_millis(30));
            tx.put(9).unwrap();
        });
        putter.start().unwrap();
        assert_eq!(wait(&objects, Some(Duration::from_secs(10))).unwrap(), [2]);
        assert_eq!(q.get().unwrap(), 9);
        putter.join().unwrap();

        d.send(&1).unwrap();
        assert_eq!(wait(&objects, None).unwrap(), [1]);
        assert_eq!(c.recv().unwrap(), 1);

        // The process's sentinel: ready once it has exited.
        assert_eq!(wait(&objects, Some(Duration::from_secs(10))).unwrap(), [3]);
        assert_eq!(proc_.join().unwrap(), 200);

        // End of stream is ready too: a receiver whose only producer is SIGKILLed wakes.
        let (tx, rx) = Queue::<u8>::new().unwrap().split().unwrap();
        let producer = Builder::new().daemon(true).fork_target(move || {
            let _keep = tx;
            std::thread::sleep(Duration::from_secs(60));
        });
        producer.start().unwrap();
        let killer = {
            let pid = producer.pid().unwrap();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
            })
        };
        assert_eq!(wait(&[&rx as &dyn Waitable], None).unwrap(), [0]);
        assert!(matches!(
            rx.get(),
            Err(spindle::multiprocessing::queues::GetError::Disconnected)
        ));
        killer.join().unwrap();
        let _ = producer.join();
        drop(b);
        b_dropped_ready(&a);
        drop(d);
    });
}

fn b_dropped_ready(a: &Connection<u8, u8>) {
    assert_eq!(
        wait(&[a as &dyn Waitable], Some(Duration::from_secs(5))).unwrap(),
        [0]
    );
    assert!(matches!(a.recv(), Err(RecvError::Disconnected)));
}

/// A hostile peer: raw bytes on the other end of a connection.
fn hostile(bytes: &[u8], then_close: bool) -> (Connection<(), String>, UnixStream) {
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    theirs.write_all(bytes).unwrap();
    let conn = Connection::from(ours);
    if then_close {
        drop(theirs);
        let (_, keep) = UnixStream::pair().unwrap();
        return (conn, keep);
    }
    (conn, theirs)
}

#[test]
fn hostile_frames_are_typed_errors() {
    watchdog(|| {
        // A length beyond the limit: refused as soon as the 4 bytes arrive, without waiting
        // for (or allocating) the claimed gigabytes.
        let (c, _keep) = hostile(&u32::MAX.to_le_bytes(), false);
        match c.recv() {
            Err(RecvError::Bad(spindle::Error::Protocol(m))) => assert!(m.contains("limit"), "{m}"),
            other => panic!("{other:?}"),
        }
        // A smaller limit of our own is honoured too.
        let (mut c, _keep) = hostile(&2000u32.to_le_bytes(), false);
        c.set_max_frame(1000);
        assert!(matches!(
            c.recv(),
            Err(RecvError::Bad(spindle::Error::Protocol(_)))
        ));
        // A frame cut short by the peer's end of stream: an error, not a hang.
        let mut cut = 100u32.to_le_bytes().to_vec();
        cut.extend_from_slice(&[1; 10]);
        let (c, _keep) = hostile(&cut, true);
        match c.recv() {
            Err(RecvError::Bad(spindle::Error::Protocol(m))) => {
                assert!(m.contains("truncated"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        // A header cut short.
        let (c, _keep) = hostile(&[5, 0], true);
        assert!(matches!(c.recv(), Err(RecvError::Bad(_))));
        // A whole frame that is not a String: a codec error, and the stream goes on.
        let mut frames = Vec::new();
        for payload in [
            &[0xFFu8, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F][..],
            &[2, b'o', b'k'][..],
        ] {
            frames.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            frames.extend_from_slice(payload);
        }
        let (c, _keep) = hostile(&frames, false);
        assert!(matches!(
            c.recv(),
            Err(RecvError::Bad(spindle::Error::Codec(_)))
        ));
        assert_eq!(c.recv().unwrap(), "ok");
        // A peer that claims a large frame and then sends nothing: the timeout form returns.
        let (c, _keep) = hostile(&(1u32 << 20).to_le_bytes(), false);
        assert!(matches!(
            c.recv_timeout(Duration::from_millis(30)),
            Err(RecvError::Timeout)
        ));
    });
}
