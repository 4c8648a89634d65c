//! The floor of a fork from a process the size of spindle's fork server: this very binary,
//! executed afresh, times bare `fork` + `waitpid`s before `main` (where the fork server also
//! lives: a fresh exec of the program that never reaches `main`) and prints the times.
//!
//! A fork copies the parent's page tables and the child's exit tears its copy down, so a fork
//! costs more from a larger process: the board's own process, which has run every earlier
//! workload, is larger than the fork server. This row shows the floor a fork server's fork
//! stands on.
//!
//! The hook is the benches' own (an argument, not an environment variable, and not in the
//! library), like the empty child of `empty_child.rs`.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::Measurement;
use crate::scoreboard::NotMeasured;

/// The argument that makes a binary of the benches time forks before `main`, then exit.
const FORK_LOOP_ARG: &str = "--spindle-bench-fork-loop";

#[ctor::ctor]
fn fork_loop() {
    let mut args = std::env::args_os().skip(1);
    if args.next().is_none_or(|a| a != FORK_LOOP_ARG) {
        return;
    }
    let mut count = |default: usize| {
        args.next()
            .and_then(|a| a.to_str()?.parse().ok())
            .unwrap_or(default)
    };
    let (warmup, reps) = (count(1), count(100));
    let code = match time_forks(warmup, reps) {
        Ok(times) => {
            let line: Vec<String> = times.iter().map(|t| t.as_nanos().to_string()).collect();
            println!("{}", line.join(" "));
            0
        }
        Err(e) => {
            eprintln!("fork loop: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn time_forks(warmup: usize, reps: usize) -> spindle::Result<Vec<Duration>> {
    for _ in 0..warmup {
        spindle::multiprocessing::bench::raw_fork_wait()?;
    }
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        spindle::multiprocessing::bench::raw_fork_wait()?;
        times.push(start.elapsed());
    }
    Ok(times)
}

/// Runs this binary afresh with the fork-loop argument and reads `reps` fork+waitpid times,
/// after `warmup` untimed ones.
pub(crate) fn raw_forks_from_a_small_process(
    warmup: usize,
    reps: usize,
) -> Result<Measurement, NotMeasured> {
    // Keeps the hook's object in the link.
    std::hint::black_box(fork_loop as extern "C" fn());
    let failed = |e: String| NotMeasured::Failed(e);
    let me = std::env::current_exe().map_err(|e| failed(e.to_string()))?;
    let out = Command::new(me)
        .args([FORK_LOOP_ARG, &warmup.to_string(), &reps.to_string()])
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        return Err(failed(format!(
            "the fork loop ended with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let times: Vec<Duration> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|t| t.parse::<u64>().map(Duration::from_nanos))
        .collect::<Result<_, _>>()
        .map_err(|e| failed(format!("the fork loop printed {e}")))?;
    if times.len() != reps {
        return Err(failed(format!(
            "the fork loop printed {} times, expected {reps}",
            times.len()
        )));
    }
    Ok(Measurement::times(1, times))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::with_processes;

    #[test]
    fn a_fresh_copy_of_this_binary_times_its_forks() {
        let m = with_processes(|| raw_forks_from_a_small_process(1, 3).unwrap());
        assert_eq!((m.ops, m.samples.len()), (1, 3));
    }
}
