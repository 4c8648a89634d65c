//! Helper binary of the process tests (found through `CARGO_BIN_EXE_spindle-process-helper`).
//!
//! It uses spindle the way a user's program would — no setup line — so it also shows that
//! spawn and forkserver children work from a plain binary.
//!
//! Modes:
//! - `run METHOD`: runs `add(2, 3)` in a child and prints the value.
//! - `print METHOD`: the child prints a line on stdout and one on stderr.
//! - `children METHOD... `: starts one sleeping child per METHOD, prints `child PID` for each
//!   (and `server PID` once a fork server runs), then `ready`, and waits for them.

use std::io::Write;
use std::time::Duration;

use spindle::multiprocessing::{bench, Builder, Process, StartMethod};

fn add(a: u32, b: u32) -> u32 {
    a + b
}

fn say() -> u32 {
    println!("hello from the child on stdout");
    eprintln!("hello from the child on stderr");
    1
}

fn sleep_long() -> u32 {
    std::thread::sleep(Duration::from_secs(60));
    0
}

fn method(s: &str) -> StartMethod {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => {
            let p = Builder::new()
                .start_method(method(&args[1]))
                .target(add, (2, 3));
            p.start().expect("start");
            println!("{}", p.join().expect("join"));
        }
        Some("print") => {
            let p = Builder::new()
                .start_method(method(&args[1]))
                .target(say, ());
            p.start().expect("start");
            assert_eq!(p.join().expect("join"), 1);
        }
        Some("children") => {
            let procs: Vec<Process<u32>> = args[1..]
                .iter()
                .map(|m| {
                    let p = Builder::new()
                        .start_method(method(m))
                        .target(sleep_long, ());
                    p.start().expect("start");
                    p
                })
                .collect();
            let mut out = std::io::stdout().lock();
            for p in &procs {
                writeln!(out, "child {}", p.pid().expect("pid")).unwrap();
            }
            if let Some(pid) = bench::forkserver_pid() {
                writeln!(out, "server {pid}").unwrap();
            }
            writeln!(out, "ready").unwrap();
            out.flush().unwrap();
            drop(out);
            for p in &procs {
                let _ = p.join();
            }
        }
        _ => {
            eprintln!("usage: spindle-process-helper run|print|children METHOD...");
            std::process::exit(2);
        }
    }
}
