//! Helper binary of the pool tests (`CARGO_BIN_EXE_spindle-pool-helper`): a plain program
//! that uses nothing of spindle but `Pool`, the way a user's program would (no setup line).
//!
//! Modes (`METHOD` is `spawn`, `fork` or `forkserver`):
//! - `map METHOD`: the notes' example, `Pool(3).map(square, 1..=5)`; prints the list.
//! - `nested METHOD`: a pool of 3 workers, each running a task that builds its own pool of 2
//!   fork workers; every worker prints `worker PID` on stdout, then all of them wait forever.
//! - `catch METHOD`: as `nested` without the inner pools, but catches `SIGINT`: on Ctrl-C it
//!   drops the pool, prints `dropped` and exits with 0.
//! - `oom METHOD`: waits for a line on stdin (the test moves it into a memory-limited cgroup
//!   meanwhile), then runs a task that allocates 512 MiB and prints `oom LIKELY|NOT: ERROR`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use spindle::multiprocessing::{Pool, StartMethod};

fn square(n: u64) -> u64 {
    n * n
}

fn say_pid() {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "worker {}", std::process::id());
    let _ = out.flush();
}

fn forever(_: u64) -> u64 {
    say_pid();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn nest(_: u64) -> u64 {
    say_pid();
    let inner = Pool::builder()
        .processes(2)
        .start_method(StartMethod::Fork)
        .build()
        .expect("inner pool");
    let _running = inner.call().chunksize(1).map_async(forever, [0, 1]);
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Allocates and touches `mib` MiB.
fn hog(mib: usize) -> usize {
    let mut v = vec![0u8; mib << 20];
    for i in (0..v.len()).step_by(4096) {
        v[i] = 1;
    }
    v.len()
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let method: StartMethod = match args.get(1).map(|m| m.parse()) {
        Some(Ok(m)) => m,
        _ => {
            eprintln!("usage: spindle-pool-helper map|nested|catch METHOD");
            std::process::exit(2);
        }
    };
    if args[0] == "oom" {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let pool = Pool::builder()
            .processes(1)
            .start_method(method)
            .build()
            .expect("pool");
        match pool.apply(hog, (512,)) {
            Ok(n) => println!("oom NONE: allocated {n} bytes"),
            Err(e) => {
                let likely = e.as_task().is_some_and(|t| t.likely_oom());
                let verdict = if likely { "LIKELY" } else { "NOT" };
                println!("oom {verdict}: {e}");
            }
        }
        return;
    }
    let pool = Pool::builder()
        .processes(3)
        .start_method(method)
        .build()
        .expect("pool");
    match args[0].as_str() {
        "map" => println!("{:?}", pool.map(square, 1..=5).expect("map")),
        "nested" => {
            let _running = pool.call().chunksize(1).map_async(nest, [0, 1, 2]);
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        "catch" => {
            // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
            unsafe {
                libc::signal(
                    libc::SIGINT,
                    on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
                )
            };
            let _running = pool.call().chunksize(1).map_async(forever, [0, 1, 2]);
            while !INTERRUPTED.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(pool);
            println!("dropped");
        }
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
}
