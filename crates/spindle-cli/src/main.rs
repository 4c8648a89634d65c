//! The `spindle` command: `spindle tour` walks the seed notes section by section and runs each
//! example with its timing; `spindle bench` runs the scoreboard side by side with the peers.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod style;
mod tour;

/// Python's concurrency notes, run in Rust.
#[derive(Debug, Parser)]
#[command(name = "spindle", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Walk the seed notes section by section, run every example and time it.
    Tour {
        /// Divide every sleep by 10.
        #[arg(long)]
        quick: bool,
        /// Run only the sections whose title contains this text (case-insensitive).
        #[arg(long)]
        only: Option<String>,
    },
    /// Measure spindle side by side with rayon, crossbeam and CPython; write BENCHMARKS.md.
    Bench {
        /// Fewer repetitions and smaller inputs.
        #[arg(long)]
        quick: bool,
        /// Run only the workloads whose name contains this text.
        #[arg(long)]
        only: Option<String>,
        /// Where to write the Markdown report.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Tour { quick, only } => tour::run(quick, only.as_deref()),
        Command::Bench { quick, only, out } => bench::run(quick, only, &out),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spindle: {e}");
            ExitCode::FAILURE
        }
    }
}
