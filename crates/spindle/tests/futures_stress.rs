//! Seeded stress tests for what the loom models cannot reach (issue #11): the pool's
//! shutdown over its crossbeam channel racing submits, maps and the caller's help, and timed
//! waits (loom's condvar never times out).
//!
//! Each case draws its choices (worker count, item delays, when and how to shut down) from a
//! small deterministic generator seeded per round; a failure names its seed, and
//! `SPINDLE_STRESS_SEED=N` replays that one seed alone. What must hold, whatever the
//! interleaving: every future ends (value, cancellation or a shutdown error), nothing is
//! yielded twice or out of order, never more than `max_workers` items run at once, and a
//! timed wait never loses a value nor misses an end that came before it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::watchdog_for;
use spindle::futures::{promise, ThreadPoolExecutor};
use spindle::threading::Event;
use spindle::Error;

/// xorshift64*: small, deterministic, good enough to shuffle timings.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The seeds to run: `SPINDLE_STRESS_SEED` alone, or `0..n`.
fn seeds(n: u64) -> Vec<u64> {
    match std::env::var("SPINDLE_STRESS_SEED") {
        Ok(s) => vec![s.parse().expect("SPINDLE_STRESS_SEED is a number")],
        Err(_) => (0..n).collect(),
    }
}

/// A short, seeded pause: nothing, a yield, or a few microseconds of sleep.
fn pause(rng: &mut Rng) {
    match rng.below(4) {
        0 => {}
        1 => thread::yield_now(),
        _ => thread::sleep(Duration::from_micros(rng.below(200))),
    }
}

/// Counts items running now; records the most.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    fn run(&self, work: impl FnOnce()) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        work();
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Submits and maps from two threads while a third shuts the pool down at a seeded moment,
/// with or without waiting and cancelling. Every submitted future ends; every map yields
/// its items in order, then at most one error, then ends; the bound holds throughout.
#[test]
fn shutdown_races_submits_maps_and_the_callers_help() {
    watchdog_for(Duration::from_secs(120), || {
        for seed in seeds(100) {
            let mut rng = Rng::new(seed);
            let workers = 1 + rng.below(3) as usize;
            let ex = Arc::new(
                ThreadPoolExecutor::builder()
                    .max_workers(workers)
                    .build()
                    .unwrap(),
            );
            let gauge = Arc::new(Gauge::default());
            let item_seed = rng.next();

            // A submitter: its futures must all end.
            let submitter = {
                let (ex, gauge) = (Arc::clone(&ex), Arc::clone(&gauge));
                let mut rng = Rng::new(rng.next());
                thread::spawn(move || {
                    let mut ended = (0, 0);
                    let mut fs = Vec::new();
                    for i in 0..40u64 {
                        let g = Arc::clone(&gauge);
                        let d = rng.below(100);
                        match ex.submit(
                            move |i: u64| {
                                g.run(|| thread::sleep(Duration::from_micros(d)));
                                i
                            },
                            i,
                        ) {
                            Ok(f) => fs.push((i, f)),
                            Err(Error::Shutdown) => break,
                            Err(e) => panic!("seed {seed}: submit: {e:?}"),
                        }
                        pause(&mut rng);
                    }
                    for (i, f) in fs {
                        match f.result() {
                            Ok(v) => {
                                assert_eq!(v, i, "seed {seed}");
                                ended.0 += 1;
                            }
                            Err(Error::Task(t)) if t.is_cancelled() => ended.1 += 1,
                            Err(e) => panic!("seed {seed}: a future ended with {e:?}"),
                        }
                    }
                    ended
                })
            };

            // A map, whose caller helps: in order, then at most one error, then the end.
            let mapper = {
                let (ex, gauge) = (Arc::clone(&ex), Arc::clone(&gauge));
                thread::spawn(move || {
                    let n = 2_000u64;
                    let m = match ex.map(
                        move |i: u64| {
                            let mut r = Rng::new(item_seed ^ i);
                            gauge.run(|| {
                                if r.below(50) == 0 {
                                    thread::sleep(Duration::from_micros(r.below(300)));
                                }
                            });
                            i
                        },
                        0..n,
                    ) {
                        Ok(m) => m,
                        Err(Error::Shutdown) => return (0, true),
                        Err(e) => panic!("seed {seed}: map: {e:?}"),
                    };
                    let mut next = 0;
                    let mut errors = 0;
                    for r in m {
                        match r {
                            // (A chunk a worker had started still delivers after a cancelled
                            // one: positions stay exact either way.)
                            Ok(v) => assert_eq!(v, next, "seed {seed}: out of order"),
                            Err(Error::Task(t)) if t.is_cancelled() => errors += 1,
                            Err(Error::Shutdown) => errors += 1,
                            Err(e) => panic!("seed {seed}: map item: {e:?}"),
                        }
                        next += 1;
                    }
                    assert!(next <= n, "seed {seed}: {next} items of {n}");
                    (next, errors > 0 || next == n)
                })
            };

            // The shutdown, at a seeded moment.
            thread::sleep(Duration::from_micros(rng.below(3_000)));
            let (wait, cancel) = (rng.below(2) == 0, rng.below(2) == 0);
            ex.shutdown(wait, cancel);
            let (_ok, cancelled) = submitter.join().unwrap();
            let (_mapped, ended) = mapper.join().unwrap();
            assert!(
                ended,
                "seed {seed}: the map stopped without its items or an error"
            );
            if !cancel {
                assert_eq!(
                    cancelled, 0,
                    "seed {seed}: cancelled without cancel_futures"
                );
            }
            drop(ex);
            let peak = gauge.peak.load(Ordering::SeqCst);
            assert!(
                peak <= workers,
                "seed {seed}: {peak} ran at once with {workers} workers"
            );
        }
    });
}

/// `result_timeout` with seeded timeouts racing `set_result`: a time-out never loses the
/// value (it is there for the next call), and once `set_result` has returned, a wait that
/// starts sees it.
#[test]
fn timed_result_waits_race_the_result_and_never_lose_it() {
    watchdog_for(Duration::from_secs(60), || {
        for seed in seeds(300) {
            let mut rng = Rng::new(seed);
            let (p, mut f) = promise::<u64>();
            let delay = rng.below(300);
            let setter = thread::spawn(move || {
                thread::sleep(Duration::from_micros(delay));
                p.set_result(seed).unwrap();
            });
            let mut timeouts = 0;
            let value = loop {
                match f.result_timeout(Duration::from_micros(rng.below(150))) {
                    Ok(v) => break v,
                    Err(e) if e.is_timeout() => timeouts += 1,
                    Err(e) => panic!("seed {seed}: {e:?}"),
                }
                assert!(timeouts < 1_000_000, "seed {seed}: never ended");
            };
            assert_eq!(value, seed);
            setter.join().unwrap();
            assert!(f.result_timeout(Duration::ZERO).is_err(), "taken once");
        }
    });
}

/// `Event::wait_timeout` with seeded timeouts racing `set` and `clear`: a wait that starts
/// after a `set` that nobody cleared returns true; no wait outlives its timeout by a hang.
#[test]
fn timed_event_waits_race_set_and_clear() {
    watchdog_for(Duration::from_secs(60), || {
        for seed in seeds(200) {
            let mut rng = Rng::new(seed);
            let event = Arc::new(Event::new());
            let setting = Arc::new(Mutex::new(()));
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let (e, s) = (Arc::clone(&event), Arc::clone(&setting));
                    let mut rng = Rng::new(rng.next());
                    thread::spawn(move || {
                        for _ in 0..20 {
                            let woken = e.wait_timeout(Duration::from_micros(rng.below(200)));
                            if !woken {
                                // Not woken: then it was not set (stably) when we looked.
                                let _g = s.lock().unwrap();
                                if e.is_set() {
                                    // Set meanwhile, under the lock: a new wait sees it.
                                    assert!(e.wait_timeout(Duration::ZERO), "seed {seed}");
                                }
                            }
                        }
                    })
                })
                .collect();
            for _ in 0..20 {
                {
                    let _g = setting.lock().unwrap();
                    event.set();
                    assert!(event.wait_timeout(Duration::ZERO), "seed {seed}");
                }
                pause(&mut rng);
                event.clear();
                pause(&mut rng);
            }
            for w in waiters {
                w.join().unwrap();
            }
        }
    });
}
