//! The scoreboard: spindle measured side by side with its peers in one run.
//!
//! `spindle bench [--quick] [--out BENCHMARKS.md]` calls [`run`] and prints
//! [`Scoreboard::to_text`], then writes [`Scoreboard::to_markdown`]. Every workload (a group
//! of contenders) runs the same tiny task in each contender, one contender after another in
//! the same process, each building its pool, timing one warm-up plus N repetitions, and
//! dropping it before the next starts:
//!
//! | workload | contenders |
//! |---|---|
//! | submit-and-wait round trip | spindle `ThreadPoolExecutor::submit` + `result`, a bare crossbeam-channel pool, rayon `install`, CPython `ThreadPoolExecutor.submit(...).result()` |
//! | map over 1,000,000 tiny tasks | spindle `ThreadPoolExecutor::map`, rayon `par_iter` (collect and sum), the bare crossbeam pool, CPython `ThreadPoolExecutor.map` |
//! | process start-and-join (empty task) | spindle `Process` with each start method (fork, spawn, forkserver), raw `fork`+`waitpid`, raw `posix_spawn`+`waitpid` of the same binary, CPython `multiprocessing.Process` with each method, and one socket round trip to a child for reference |
//! | idle child process memory (private RSS) | one idle spindle child per start method and the fork server, beside CPython's |
//! | process pool rows a–h (`pool-*`) | spindle `Pool` / `ProcessPoolExecutor` / `dummy::Pool` beside a raw fork pool and CPython's `Pool` and `ProcessPoolExecutor`: map of 100,000 tiny tasks, 100,000 submits, one task's round trip, build to first result, a worker's SIGKILL to its error, CPU-bound and I/O-bound scaling, a 2-worker pool's memory |
//!
//! Figures are medians of the time per task over the repetitions, with the spread as ± half
//! the interquartile range relative to the median ([`Summary::spread`]); each peer's row gives
//! spindle's speed-up against it (the peer's median over spindle's: above 1× spindle is
//! faster) and, where the issue set one, the aim. The CPython peers run
//! `benches/peers/cpython_futures.py` with `python3` as a subprocess; without `python3` their
//! rows say "skipped".
//!
//! Memory rows are sizes in bytes ([`Unit::Bytes`]); their ratio is how many times smaller
//! spindle is. A workload may compare several spindle rows (one per start method), each peer
//! with the one it names ([`Row::versus`]). A later issue adds a workload as one file under
//! `benches/workloads/` and one line in its `all` list.
//!
//! ```no_run
//! use spindle_bench::{run, Options};
//! let board = run(&Options { quick: true, ..Options::default() });
//! print!("{}", board.to_text());
//! board.write_markdown("BENCHMARKS.md".as_ref()).unwrap();
//! ```

mod empty_child;
mod fork_floor;
mod harness;
mod machine;
mod peers;
mod report;
mod scoreboard;
mod scratch;
mod stats;
mod workloads;

pub use harness::{measure, Measurement, Plan, Samples, Unit};
pub use machine::Machine;
pub use scoreboard::{run, Aim, GroupResult, NotMeasured, Options, Role, Row, Rule, Scoreboard};
pub use stats::Summary;
