//! A stable, seeded fuzzer for the frame decoder of `Connection` and for the message codec
//! (postcard through `reduction`), plus a hostile process scribbling in a queue's shared ring.
//!
//! cargo-fuzz needs a nightly toolchain and an install step in CI; this is the stable
//! alternative (DESIGN/decisions D66): a corpus kept in `tests/corpus/frames/`, mutated by a
//! seeded xorshift generator (bit flips, byte sets, truncation, splicing, hostile length
//! prefixes and varints), checked for typed errors, no panic, no hang (every receive ends at
//! the writer's end of stream) and no allocation ahead of the bytes received (a counting
//! allocator). `SPINDLE_FUZZ_ITERS` runs a longer pass (CI runs the default short one);
//! `SPINDLE_FUZZ_SEED` replays a seed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use spindle::multiprocessing::connection::{Connection, RecvError};

mod common;

/// Counts the bytes allocated by the thread that asks, so a test can bound what one decode
/// allocated (other tests' threads allocate too, so the count is per thread).
struct Counting;

thread_local! {
    static LIVE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    static PEAK: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}
static TOTAL: AtomicUsize = AtomicUsize::new(0);

fn note(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = (live.get() as isize + delta).max(0) as usize;
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        TOTAL.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize));
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        note(new as isize - layout.size() as isize);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The peak of this thread's live allocations while `f` runs, above what was live before.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, PEAK.with(|p| p.get()).saturating_sub(base))
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum Shape {
    Unit,
    Point { x: i64, y: i64 },
    Named(String, Vec<u32>),
    Tree(Vec<Shape>),
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/frames");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("the corpus is in the repository")
        .flatten()
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 10, "corpus missing from {}", dir.display());
    seeds
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        match rng.below(7) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = [0, 0xFF, 0x7F, 0x80, 1][rng.below(5)];
            }
            2 => b.truncate(rng.below(b.len() + 1)),
            3 => {
                let other = &seeds[rng.below(seeds.len())];
                b.extend_from_slice(&other[..rng.below(other.len() + 1)]);
            }
            4 => {
                // A hostile length prefix on whatever follows.
                let len = [0u32, 1, 5, 1 << 20, 1 << 30, u32::MAX, rng.next() as u32];
                let l = len[rng.below(len.len())];
                if b.len() >= 4 {
                    b[..4].copy_from_slice(&l.to_le_bytes());
                }
            }
            5 => {
                // A hostile varint inside the payload: -1, 2^40, 2^63.
                let v: &[u8] = [
                    &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F][..],
                    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x20][..],
                    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01][..],
                ][rng.below(3)];
                let at = if b.len() > 4 {
                    4 + rng.below(b.len() - 4)
                } else {
                    b.len()
                };
                b.splice(at..at, v.iter().copied());
            }
            _ => {
                let n = rng.below(16);
                b.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
    b
}

/// Feeds `bytes` to a connection, closes the writer, and receives until end of stream.
/// Every outcome must be a value or a typed error; returns the number of frames decoded.
fn feed<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> usize {
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let writer = {
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = theirs.write_all(&bytes);
        })
    };
    let mut conn = Connection::<(), T>::from(ours);
    conn.set_max_frame(1 << 20);
    let mut ok = 0;
    for _ in 0..64 {
        match conn.recv_timeout(Duration::from_secs(10)) {
            Ok(_) => ok += 1,
            Err(RecvError::Disconnected) => break,
            Err(RecvError::Bad(spindle::Error::Codec(_))) => {} // the next frame may be fine
            Err(RecvError::Bad(spindle::Error::Protocol(_))) => break, // the stream is lost
            Err(e) => panic!("unexpected outcome {e:?} for {bytes:?}"),
        }
    }
    writer.join().unwrap();
    ok
}

fn iterations() -> usize {
    std::env::var("SPINDLE_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500)
}

fn seed() -> u64 {
    std::env::var("SPINDLE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_1DEA_D00D_F00D)
}

#[test]
fn fuzz_the_frame_decoder_and_the_codec() {
    common::watchdog_for(Duration::from_secs(120), || {
        let seeds = corpus();
        let mut rng = Rng(seed());
        let mut decoded = 0;
        for i in 0..iterations() {
            let case = mutate(&mut rng, &seeds);
            decoded += match i % 4 {
                0 => feed::<String>(&case),
                1 => feed::<Vec<u64>>(&case),
                2 => feed::<Shape>(&case),
                _ => feed::<(u8, Option<String>, Vec<Vec<i32>>)>(&case),
            };
        }
        // The corpus holds valid frames: some cases decode, so the loop is not vacuous.
        assert!(decoded > 0);
    });
}

#[test]
fn random_bytes_are_typed_errors() {
    common::watchdog_for(Duration::from_secs(120), || {
        let mut rng = Rng(seed() ^ 0xABCD);
        for _ in 0..iterations() / 3 {
            let n = rng.below(64);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            feed::<Shape>(&bytes);
        }
    });
}

#[test]
fn no_allocation_ahead_of_the_bytes_received() {
    common::watchdog(|| {
        // A header claiming 1000 MiB, ten bytes of it, then end of stream.
        let mut bytes = (1000u32 << 20).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[7; 10]);
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        theirs.write_all(&bytes).unwrap();
        drop(theirs);
        let conn = Connection::<(), Vec<u8>>::from(ours);
        let (outcome, peak) = peak_during(|| conn.recv_bytes());
        assert!(matches!(
            outcome,
            Err(RecvError::Bad(spindle::Error::Protocol(_)))
        ));
        assert!(peak < 4 << 20, "allocated {peak} bytes for 14 received");

        // Codec lengths of -1, 2^40 and 2^63 as varints: typed errors, bounded allocation.
        for varint in [
            &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F][..],
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x20][..],
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01][..],
        ] {
            let mut frame = (varint.len() as u32 + 3).to_le_bytes().to_vec();
            frame.extend_from_slice(varint);
            frame.extend_from_slice(&[1, 2, 3]);
            for kind in 0..3 {
                let (ours, mut theirs) = UnixStream::pair().unwrap();
                theirs.write_all(&frame).unwrap();
                drop(theirs);
                let (ok, peak) = peak_during(|| match kind {
                    0 => Connection::<(), Vec<u64>>::from(ours).recv().is_ok(),
                    1 => Connection::<(), String>::from(ours).recv().is_ok(),
                    _ => Connection::<(), Vec<Shape>>::from(ours).recv().is_ok(),
                });
                assert!(!ok, "a hostile length decoded");
                assert!(peak < 4 << 20, "allocated {peak} bytes for a 20-byte frame");
            }
        }
    });
}

#[test]
fn a_process_scribbling_in_a_queues_ring_gets_typed_errors_not_ub() {
    use spindle::multiprocessing::queues::Queue;
    use std::os::unix::fs::FileExt;
    common::watchdog_for(Duration::from_secs(120), || {
        let mut rng = Rng(seed() ^ 0x51DE);
        for round in 0..60 {
            let q = Queue::<String>::builder().capacity(4096).build().unwrap();
            for i in 0..5 {
                q.put(format!("item {i} {}", "x".repeat(i * 50))).unwrap();
            }
            // Find this queue's segment among our descriptors and scribble on it, as a
            // hostile process sharing it could.
            let newest = std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().contains("memfd:spindle-queue"))
                })
                .max_by_key(|e| e.file_name().to_string_lossy().parse::<u32>().unwrap_or(0))
                .unwrap();
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(newest.path())
                .unwrap();
            for _ in 0..1 + rng.below(6) {
                // Head/tail words, record headers, payload bytes.
                let at = [128u64, 192, 4096, 4096 + 4, 4096 + rng.below(4096) as u64][rng.below(5)];
                let v = rng.next().to_le_bytes();
                file.write_all_at(&v[..1 + rng.below(8)], at).unwrap();
            }
            for _ in 0..8 {
                match q.get_timeout(Duration::from_millis(5)) {
                    Ok(_) => {}
                    Err(spindle::multiprocessing::queues::GetError::Timeout) => break,
                    Err(spindle::multiprocessing::queues::GetError::Failed(e)) => {
                        assert!(
                            matches!(e, spindle::Error::Protocol(_) | spindle::Error::Codec(_)),
                            "round {round}: {e:?}"
                        );
                        break;
                    }
                    Err(e) => panic!("round {round}: {e:?}"),
                }
            }
        }
    });
}
