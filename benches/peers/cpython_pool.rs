//! CPython's `multiprocessing.Pool` and `ProcessPoolExecutor` on the pool workloads:
//! `cpython_pool.py`, written to a scratch directory and run by path (so that spawn and
//! forkserver children import it as they would a user's program).

use std::process::Command;

use crate::harness::Measurement;
use crate::peers::cpython::{parse_bytes, parse_times, run};
use crate::scoreboard::NotMeasured;
use crate::scratch::ScratchDir;

const SCRIPT: &str = include_str!("cpython_pool.py");

fn run_script(python: &str, args: &[String]) -> Result<String, NotMeasured> {
    let dir = ScratchDir::new("cpython-pool")
        .map_err(|e| NotMeasured::Failed(format!("cannot make a scratch directory: {e}")))?;
    let script = dir.path().join("cpython_pool.py");
    std::fs::write(&script, SCRIPT)
        .map_err(|e| NotMeasured::Failed(format!("cannot write {}: {e}", script.display())))?;
    let mut cmd = Command::new(python);
    cmd.arg(&script).args(args);
    run(python, cmd)
}

/// Runs `mode METHOD args...` and reads `reps` times, each covering `ops` operations.
pub(crate) fn times(
    python: &str,
    mode: &str,
    method: &str,
    args: &[u64],
    reps: usize,
    ops: u64,
) -> Result<Measurement, NotMeasured> {
    let mut all = vec![mode.to_string(), method.to_string()];
    all.extend(args.iter().map(u64::to_string));
    let out = run_script(python, &all)?;
    let t = parse_times(&out).map_err(NotMeasured::Failed)?;
    if t.len() != reps {
        return Err(NotMeasured::Failed(format!(
            "the pool script printed {} times, expected {reps}",
            t.len()
        )));
    }
    Ok(Measurement::times(ops, t))
}

/// The `memory METHOD` mode: one size.
pub(crate) fn memory(python: &str, method: &str) -> Result<Measurement, NotMeasured> {
    let out = run_script(python, &["memory".to_string(), method.to_string()])?;
    let b = parse_bytes(&out).map_err(NotMeasured::Failed)?;
    Ok(Measurement::bytes(1, b))
}
