//! The plain-data path of the process pools (docs/decisions.md, D160–D162), for every start
//! method: values of a fixed size travel flat and come back in runs, values that are not
//! plain travel framed beside them, a panic in a run ends only its item, forged reports from
//! a worker are typed errors, and single submits that share one call keep `Future`'s
//! contract (a cancelled one never runs).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use spindle::futures::ProcessPoolExecutor;
use spindle::multiprocessing::{Pool, StartMethod};
use spindle::Error;

mod common;
use common::{eventually, running, watchdog};

#[path = "common/pool.rs"]
#[macro_use]
mod pool_common;
use pool_common::Scratch;

/// Plain data with every kind of field the flat layout takes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Particle {
    pos: [f64; 3],
    id: u32,
    alive: bool,
    tag: char,
    spin: (i8, i128),
}

fn particle(i: u64) -> Particle {
    Particle {
        pos: [i as f64, -(i as f64), 0.5],
        id: i as u32,
        alive: i % 3 == 0,
        tag: char::from_u32(0x41 + (i % 26) as u32).unwrap(),
        spin: (-(i as i8 % 100), -(i as i128) << 70),
    }
}

fn step(p: Particle) -> Particle {
    Particle {
        pos: [p.pos[0] + 1.0, p.pos[1] * 2.0, p.pos[2]],
        id: p.id + 1,
        alive: !p.alive,
        tag: p.tag.to_ascii_lowercase(),
        spin: (p.spin.0.wrapping_neg(), p.spin.1 + 1),
    }
}

fn square(x: u64) -> u64 {
    x * x
}

fn halves(x: u64) -> (u32, f64) {
    (x as u32, x as f64 / 2.0)
}

fn nothing(_: u64) {}

fn name(x: u64) -> String {
    format!("#{x}")
}

fn len_of(s: String) -> usize {
    s.len()
}

fn add(a: u32, b: u32) -> u64 {
    u64::from(a) + u64::from(b)
}

fn panics_at_37s(x: u64) -> u64 {
    assert!(x % 100 != 37, "item {x} panics");
    x
}

/// Writes `frame` to every socket this process holds (one of them is its channel to the
/// pool), as a worker that broke the protocol would.
fn forge(frame: &[u8]) {
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"));
        if fd > 2 && is_socket {
            // SAFETY: a write of a live buffer to a descriptor of this process; a closed or
            // unwritable one fails with an error, which is ignored.
            unsafe { libc::write(fd, frame.as_ptr().cast(), frame.len()) };
        }
    }
}

/// A `RESULTS` frame for the first chunk a pool sent (sequence 0, one item), whose outcome is
/// `outcome` (see `pool/protocol.rs`).
fn results_frame(outcome: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&0u64.to_le_bytes()); // seq
    payload.extend_from_slice(&0u32.to_le_bytes()); // offset
    payload.extend_from_slice(&1u32.to_le_bytes()); // count
    payload.push(1); // last
    payload.extend_from_slice(&0u64.to_le_bytes()); // elapsed
    payload.extend_from_slice(outcome);
    let mut frame = vec![0xB6, 12];
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// A run record (tag 3): `count` values of `stride` bytes.
fn run_record(count: u32, stride: u32, values: &[u8]) -> Vec<u8> {
    let mut out = vec![3];
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&stride.to_le_bytes());
    out.extend_from_slice(values);
    out
}

/// Claims five values for its one item.
fn forges_a_long_run(x: u64) -> u64 {
    forge(&results_frame(&run_record(5, 8, &[7; 40])));
    x
}

/// Claims a `bool` of 7.
fn forges_a_bad_bool(_: u64) -> bool {
    forge(&results_frame(&run_record(1, 1, &[7])));
    true
}

/// Waits (at most 20 s) until `dir/go` exists.
fn hold(dir: String) -> u64 {
    let go = std::path::Path::new(&dir).join("go");
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while !go.exists() && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(2));
    }
    0
}

/// Leaves `dir/i` behind: evidence that task `i` ran.
fn touch((dir, i): (String, u64)) -> u64 {
    std::fs::write(std::path::Path::new(&dir).join(i.to_string()), b"").unwrap();
    i
}

/// Sleeps `ms`, then leaves `dir/i` behind.
fn nap_touch((dir, i, ms): (String, u64, u64)) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    touch((dir, i))
}

macro_rules! plain {
    ($m:ident, $method:ident, [$($attr:meta)?]) => {
        mod $m {
            use super::*;

            fn pool(n: usize) -> Pool {
                Pool::builder()
                    .processes(n)
                    .start_method(StartMethod::$method)
                    .build()
                    .unwrap()
            }

            #[test]
            $(#[$attr])?
            fn plain_values_of_every_shape_come_back_in_order() {
                watchdog(|| {
                    let p = pool(2);
                    let ps: Vec<Particle> = (0..3000).map(particle).collect();
                    let want: Vec<Particle> = ps.iter().copied().map(step).collect();
                    assert_eq!(p.map(step, ps.clone()).unwrap(), want);
                    assert_eq!(p.call().chunksize(7).map(step, ps.clone()).unwrap(), want);
                    let got: Vec<u64> = p.imap(square, 0..2000u64).unwrap().map(|r| r.unwrap()).collect();
                    assert_eq!(got, (0..2000).map(|x| x * x).collect::<Vec<_>>());
                    let mut un: Vec<u64> =
                        p.imap_unordered(square, 0..500u64).unwrap().map(|r| r.unwrap()).collect();
                    un.sort_unstable();
                    assert_eq!(un, (0..500).map(|x| x * x).collect::<Vec<_>>());
                    assert_eq!(p.map(halves, [4u64, 5]).unwrap(), [(4, 2.0), (5, 2.5)]);
                    assert_eq!(p.map(nothing, 0..1000u64).unwrap().len(), 1000);
                    // Plain arguments with values that are not, and the other way round.
                    assert_eq!(p.map(name, 0..3u64).unwrap(), ["#0", "#1", "#2"]);
                    let words: Vec<String> = (0..100).map(|i| "x".repeat(i)).collect();
                    assert_eq!(p.map(len_of, words).unwrap(), (0..100).collect::<Vec<_>>());
                    assert_eq!(p.starmap(add, [(1, 2), (3, 4)]).unwrap(), [3, 7]);
                    assert_eq!(p.map_async(square, 0..300u64).unwrap().get().unwrap()[299], 89_401);
                    assert_eq!(p.apply(add, (40, 2)).unwrap(), 42);
                    let ex = ProcessPoolExecutor::builder()
                        .max_workers(2)
                        .start_method(StartMethod::$method)
                        .build()
                        .unwrap();
                    let fs: Vec<_> = (0..3000).map(|i| ex.submit(step, particle(i)).unwrap()).collect();
                    for (i, f) in fs.into_iter().enumerate() {
                        assert_eq!(f.result().unwrap(), step(particle(i as u64)));
                    }
                    let got: Vec<(u32, f64)> =
                        ex.map(halves, 0..1000u64).unwrap().map(|r| r.unwrap()).collect();
                    assert_eq!(got[999], (999, 499.5));
                });
            }

            #[test]
            $(#[$attr])?
            fn a_panic_in_a_run_ends_only_its_item() {
                watchdog(|| {
                    let p = pool(2);
                    let pids = p.pids();
                    let out: Vec<_> = p.call().chunksize(250).imap(panics_at_37s, 0..1000u64).unwrap().collect();
                    assert_eq!(out.len(), 1000);
                    for (i, r) in out.iter().enumerate() {
                        if i % 100 == 37 {
                            let e = r.as_ref().unwrap_err().as_task().unwrap();
                            assert!(e.is_panic(), "{e}");
                            assert_eq!(e.task(), Some(i as u64));
                            assert!(e.panic_message().unwrap().contains(&format!("item {i} panics")));
                            assert!(pids.contains(&e.pid().unwrap()));
                        } else {
                            assert_eq!(*r.as_ref().unwrap(), i as u64);
                        }
                    }
                    assert_eq!(p.pids(), pids, "the workers live on");
                    let e = p.map(panics_at_37s, 0..1000u64).unwrap_err();
                    assert_eq!(e.as_task().unwrap().task(), Some(37), "map names the first");
                });
            }

            #[test]
            $(#[$attr])?
            fn forged_reports_are_typed_errors_and_the_pool_goes_on() {
                watchdog(|| {
                    // A run that claims more values than its item, then a value no `bool`
                    // encodes to: each call ends with an error (never a value, a hang or a
                    // panic), the worker is killed when its real report follows (a call
                    // handed to it before that fails too: the pool cannot tell) and
                    // replaced, and the next call is served.
                    let p = pool(1);
                    let pid = p.pids()[0];
                    let e = p.apply(forges_a_long_run, (1,)).unwrap_err();
                    let t = e.as_task().unwrap();
                    assert!(t.to_string().contains("could not be read"), "{t}");
                    assert!(eventually(Duration::from_secs(10), || !running(pid)), "the forger is killed");
                    assert_eq!(p.map(square, 0..1000u64).unwrap()[999], 998_001);
                    let p = pool(1);
                    let pid = p.pids()[0];
                    let e = p.apply(forges_a_bad_bool, (1,)).unwrap_err();
                    let m = e.to_string();
                    assert!(m.contains("could not be read") && m.contains("bool"), "{m}");
                    assert!(eventually(Duration::from_secs(10), || !running(pid)));
                    assert_eq!(p.apply(square, (5,)).unwrap(), 25);
                });
            }

            #[test]
            $(#[$attr])?
            fn cancelled_submits_never_run_and_the_others_do() {
                watchdog(|| {
                    let dir = Scratch::new("cancel");
                    let ex = ProcessPoolExecutor::builder()
                        .max_workers(1)
                        .start_method(StartMethod::$method)
                        .build()
                        .unwrap();
                    let first = ex.submit(hold, dir.path()).unwrap();
                    assert!(eventually(Duration::from_secs(10), || first.running()));
                    let fs: Vec<_> = (0..10u64).map(|i| ex.submit(touch, (dir.path(), i)).unwrap()).collect();
                    for f in fs.iter().skip(1).step_by(2) {
                        assert!(f.cancel(), "a queued submit can be cancelled");
                    }
                    std::fs::write(dir.0.join("go"), b"").unwrap();
                    assert_eq!(first.result().unwrap(), 0);
                    for (i, f) in fs.into_iter().enumerate() {
                        if i % 2 == 1 {
                            assert!(f.cancelled());
                            assert!(matches!(f.result(), Err(Error::Task(t)) if t.is_cancelled()));
                        } else {
                            assert_eq!(f.result().unwrap(), i as u64);
                        }
                    }
                    let ran: Vec<bool> = (0..10).map(|i| dir.0.join(i.to_string()).exists()).collect();
                    assert_eq!(ran, (0..10).map(|i| i % 2 == 0).collect::<Vec<_>>(), "cancelled tasks never ran");
                });
            }

            #[test]
            $(#[$attr])?
            fn a_stopped_submit_already_on_its_worker_never_runs() {
                watchdog(|| {
                    let dir = Scratch::new("skip");
                    let ex = ProcessPoolExecutor::builder()
                        .max_workers(1)
                        .start_method(StartMethod::$method)
                        .build()
                        .unwrap();
                    // Timed as tiny, so that the next task is sent behind a running one.
                    for i in 100..103 {
                        ex.submit(nap_touch, (dir.path(), i, 0)).unwrap().result().unwrap();
                    }
                    let pid = ex.pids()[0];
                    let a = ex.submit(nap_touch, (dir.path(), 0, 400)).unwrap();
                    assert!(eventually(Duration::from_secs(10), || a.running()));
                    let b = ex.submit(nap_touch, (dir.path(), 1, 0)).unwrap();
                    assert!(eventually(Duration::from_secs(10), || b.running()), "handed to the worker");
                    assert!(ex.stop(&b));
                    assert!(matches!(b.result(), Err(Error::Task(t)) if t.is_cancelled()));
                    assert_eq!(a.result().unwrap(), 0, "the running task was not disturbed");
                    assert_eq!(ex.submit(nap_touch, (dir.path(), 2, 0)).unwrap().result().unwrap(), 2);
                    assert!(!dir.0.join("1").exists(), "the stopped task never ran");
                    assert_eq!(ex.pids(), [pid], "no worker was killed for it");
                });
            }
        }
    };
}

per_start_method!(plain);
