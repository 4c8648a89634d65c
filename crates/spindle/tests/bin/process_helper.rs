//! Helper binary of the process tests (found through `CARGO_BIN_EXE_spindle-process-helper`).
//!
//! It uses spindle the way a user's program would — no setup line — so it also shows that
//! spawn and forkserver children work from a plain binary.
//!
//! Modes:
//! - `run METHOD`: runs `add(2, 3)` in a child and prints the value.
//! - `print METHOD`: the child prints a line on stdout and one on stderr.
//! - `children METHOD... `: starts one sleeping child per METHOD, prints `child PID` for each
//!   (and `server PID` and a `spare PID` for each child the server keeps forked ahead, once a
//!   fork server runs), then `ready`, and waits for them.
//! - `spare`: starts and joins one forkserver child, prints `server PID` and `spare PID` (the
//!   child the server keeps forked ahead), then `ready`, and returns from `main`.
//! - `variable`: prints the name of spindle's child variable.
//! - `panic METHOD`: the child panics; prints the join error.
//! - `overflow METHOD`: the child overflows its stack; prints the join error.
//! - `names`: prints this process's name, its spawn and forkserver children's, and the fork
//!   server's command line.
//! - `exit-leaving MARKER`: leaves non-daemon children working (one leaked), a daemon child
//!   sleeping, prints `daemon PID` and calls `std::process::exit(0)`.
//! - `touch`: starts a child, touches its own executable, starts more: prints their values.

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

fn boom() -> u32 {
    panic!("boom from the child")
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 512]);
    recurse(frame[depth as usize % 512] + 1) + frame[7]
}

fn overflow() -> u64 {
    recurse(0)
}

fn comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim()
        .to_owned()
}

fn write_later(path: String) -> u32 {
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(path, b"done").unwrap();
    1
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
                for spare in bench::forkserver_spares() {
                    writeln!(out, "spare {spare}").unwrap();
                }
            }
            writeln!(out, "ready").unwrap();
            out.flush().unwrap();
            drop(out);
            for p in &procs {
                let _ = p.join();
            }
        }
        Some("spare") => {
            let p = Builder::new()
                .start_method(StartMethod::Forkserver)
                .target(add, (1, 1));
            p.start().expect("start");
            assert_eq!(p.join().expect("join"), 2);
            let server = bench::forkserver_pid().expect("a fork server");
            let spare = bench::forkserver_spare_pid()
                .expect("spare")
                .expect("a spare");
            println!("server {server}\nspare {spare}\nready");
        }
        Some("variable") => println!("{}", bench::child_variable()),
        Some("panic") => {
            let p = Builder::new()
                .start_method(method(&args[1]))
                .target(boom, ());
            p.start().expect("start");
            println!("{}", p.join().unwrap_err());
        }
        Some("overflow") => {
            let p = Builder::new()
                .start_method(method(&args[1]))
                .target(overflow, ());
            p.start().expect("start");
            println!("{}", p.join().unwrap_err());
            println!("exit code {:?}", p.exitcode());
        }
        Some("names") => {
            println!("parent {}", comm());
            for m in [StartMethod::Spawn, StartMethod::Forkserver] {
                let p = Builder::new().start_method(m).target(comm, ());
                p.start().expect("start");
                println!("{m} {}", p.join().expect("join"));
            }
            let server = bench::forkserver_pid().expect("a fork server");
            let cmdline = std::fs::read(format!("/proc/{server}/cmdline")).unwrap();
            println!(
                "server {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            );
        }
        Some("exit-leaving") => {
            let marker = &args[1];
            let working = Builder::new()
                .start_method(StartMethod::Spawn)
                .target(write_later, (format!("{marker}.spawn"),));
            working.start().expect("start");
            let leaked = Builder::new()
                .start_method(StartMethod::Forkserver)
                .target(write_later, (format!("{marker}.leaked"),));
            leaked.start().expect("start");
            std::mem::forget(leaked);
            let daemon = Builder::new().daemon(true).target(sleep_long, ());
            daemon.start().expect("start");
            println!("daemon {}", daemon.pid().unwrap());
            std::io::stdout().flush().unwrap();
            std::mem::forget(daemon);
            std::process::exit(0)
        }
        Some("touch") => {
            let p = Builder::new()
                .start_method(StartMethod::Spawn)
                .target(add, (1, 1));
            p.start().expect("start");
            println!("{}", p.join().expect("join"));
            let me = std::env::current_exe().unwrap();
            let later = std::time::SystemTime::now() + Duration::from_secs(10);
            std::fs::File::open(&me)
                .unwrap()
                .set_modified(later)
                .expect("touch");
            for m in StartMethod::ALL {
                let p = Builder::new().start_method(m).target(add, (2, 2));
                p.start().expect("start");
                println!("{}", p.join().expect("join after touch"));
            }
        }
        _ => {
            eprintln!("usage: spindle-process-helper run|print|children|panic|overflow|names|exit-leaving|touch ...");
            std::process::exit(2);
        }
    }
}
