//! Runs `cpython_asyncio.py` (CPython's asyncio, and a 100-thread `ThreadPoolExecutor`, on
//! the asyncio rows) with `python3 -c` and reads its samples.

use std::process::Command;

use crate::harness::Measurement;
use crate::peers::cpython::{parse_bytes, parse_times, run};
use crate::scoreboard::NotMeasured;

/// The peer script, embedded so that `spindle bench` works from any directory.
const SCRIPT: &str = include_str!("cpython_asyncio.py");

fn script(python: &str, args: &[String]) -> Result<String, NotMeasured> {
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(SCRIPT).args(args);
    run(python, cmd)
}

/// Runs a timed workload and checks that it printed `reps` times of `ops` operations.
pub(crate) fn times(
    python: &str,
    args: &[String],
    reps: usize,
    ops: u64,
) -> Result<Measurement, NotMeasured> {
    let out = script(python, args)?;
    let times = parse_times(&out).map_err(NotMeasured::Failed)?;
    if times.len() != reps {
        return Err(NotMeasured::Failed(format!(
            "peer script printed {} times, expected {reps}",
            times.len()
        )));
    }
    Ok(Measurement::times(ops, times))
}

/// Runs `sleepers-memory` in `samples` fresh interpreters, one size each.
pub(crate) fn memory(
    python: &str,
    n: u64,
    ms: u64,
    mode: &str,
    samples: usize,
) -> Result<Measurement, NotMeasured> {
    let mut sizes = Vec::new();
    for _ in 0..samples {
        let args = [
            "sleepers-memory".to_string(),
            n.to_string(),
            ms.to_string(),
            mode.to_string(),
        ];
        let out = script(python, &args)?;
        sizes.extend(parse_bytes(&out).map_err(NotMeasured::Failed)?);
    }
    Ok(Measurement::bytes(1, sizes))
}
