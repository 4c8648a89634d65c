//! `cargo bench -p spindle-bench [-- --quick] [-- --out BENCHMARKS.md]`: the scoreboard
//! without the CLI (the same library `spindle bench` calls).
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it does nothing, so the test
//! suite never runs timed work.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("scoreboard: run with `cargo bench -p spindle-bench`; nothing to do in test mode");
        return ExitCode::SUCCESS;
    }
    let mut opts = spindle_bench::Options::default();
    let mut out: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => {}
            "--quick" => opts.quick = true,
            "--out" => out = it.next().map(PathBuf::from),
            "--filter" => opts.filter = it.next().cloned(),
            other => {
                eprintln!("scoreboard: unknown argument {other:?} (known: --quick, --out PATH, --filter TEXT)");
                return ExitCode::from(2);
            }
        }
    }
    let shown: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--bench")
        .collect();
    opts.command = Some(if shown.is_empty() {
        "cargo bench -p spindle-bench".to_string()
    } else {
        format!("cargo bench -p spindle-bench -- {}", shown.join(" "))
    });
    let board = spindle_bench::run(&opts);
    print!("{}", board.to_text());
    if let Some(path) = out {
        if let Err(e) = board.write_markdown(&path) {
            eprintln!("scoreboard: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("scoreboard: wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
