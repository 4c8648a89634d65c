//! Runs the CPython peer scripts as subprocesses and reads their samples: `cpython_futures.py`
//! (thread pools, run with `python3 -c`) and `cpython_processes.py` (`multiprocessing`, run
//! from a file in a scratch directory so that spawned children can import it).

use std::io::ErrorKind;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Measurement, Plan};
use crate::scoreboard::NotMeasured;
use crate::scratch::ScratchDir;

/// The peer scripts, embedded so that `spindle bench` works from any directory.
const SCRIPT: &str = include_str!("cpython_futures.py");
const PROCESSES: &str = include_str!("cpython_processes.py");
const IPC: &str = include_str!("cpython_ipc.py");

/// Runs `workload` (`round-trip` or `map`) of size `n` in CPython's `ThreadPoolExecutor`
/// with `workers` threads: `plan.warmup` untimed then exactly `plan.reps` timed repetitions.
///
/// A missing interpreter skips the contender; a failing script fails it.
pub(crate) fn measure(
    python: &str,
    workload: &str,
    n: u64,
    plan: Plan,
    workers: usize,
) -> Result<Measurement, NotMeasured> {
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(SCRIPT).arg(workload).args([
        n.to_string(),
        plan.reps.to_string(),
        plan.warmup.to_string(),
        workers.to_string(),
    ]);
    let stdout = run(python, cmd)?;
    let times = parse_times(&stdout).map_err(NotMeasured::Failed)?;
    if times.len() != plan.reps {
        return Err(NotMeasured::Failed(format!(
            "peer script printed {} times, expected {}",
            times.len(),
            plan.reps
        )));
    }
    Ok(Measurement::times(n, times))
}

/// Times `plan.reps` starts of an empty `multiprocessing.Process` with start method `method`
/// (`fork`, `spawn` or `forkserver`), one start per sample, after `plan.warmup` untimed ones.
pub(crate) fn process_starts(
    python: &str,
    method: &str,
    plan: Plan,
) -> Result<Measurement, NotMeasured> {
    let stdout = run_processes(
        python,
        &[
            "start",
            method,
            &plan.reps.to_string(),
            &plan.warmup.to_string(),
        ],
    )?;
    let times = parse_times(&stdout).map_err(NotMeasured::Failed)?;
    if times.len() != plan.reps {
        return Err(NotMeasured::Failed(format!(
            "peer script printed {} times, expected {}",
            times.len(),
            plan.reps
        )));
    }
    Ok(Measurement::times(1, times))
}

/// The private memory of `count` idle CPython children started with `method`, one sample
/// each.
pub(crate) fn idle_child_rss(
    python: &str,
    method: &str,
    count: usize,
) -> Result<Measurement, NotMeasured> {
    let stdout = run_processes(python, &["idle-rss", method, &count.to_string()])?;
    let sizes = parse_bytes(&stdout).map_err(NotMeasured::Failed)?;
    if sizes.len() != count {
        return Err(NotMeasured::Failed(format!(
            "peer script printed {} sizes, expected {count}",
            sizes.len()
        )));
    }
    Ok(Measurement::bytes(1, sizes))
}

/// The private memory of CPython's fork server process, once it has started one child.
pub(crate) fn forkserver_rss(python: &str) -> Result<Measurement, NotMeasured> {
    let stdout = run_processes(python, &["server-rss"])?;
    let sizes = parse_bytes(&stdout).map_err(NotMeasured::Failed)?;
    if sizes.len() != 1 {
        return Err(NotMeasured::Failed(format!(
            "peer script printed {} sizes, expected 1",
            sizes.len()
        )));
    }
    Ok(Measurement::bytes(1, sizes))
}

/// Runs `cpython_ipc.py` (its children are forked, so it runs with `python3 -c`) with `args`
/// and reads `reps` times of `ops` operations each from its `key` array.
pub(crate) fn ipc(
    python: &str,
    args: &[String],
    key: &str,
    reps: usize,
    ops: u64,
) -> Result<Measurement, NotMeasured> {
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(IPC).args(args);
    let stdout = run(python, cmd)?;
    ipc_times(&stdout, key, reps, ops)
}

/// The `key` array of an IPC script's output as `reps` times of `ops` operations.
pub(crate) fn ipc_times(
    stdout: &str,
    key: &str,
    reps: usize,
    ops: u64,
) -> Result<Measurement, NotMeasured> {
    let times: Vec<Duration> = parse_numbers(stdout, key)
        .map_err(NotMeasured::Failed)?
        .into_iter()
        .map(|(_, s)| Duration::from_secs_f64(s.max(0.0)))
        .collect();
    if times.len() != reps {
        return Err(NotMeasured::Failed(format!(
            "peer script printed {} times, expected {reps}",
            times.len()
        )));
    }
    Ok(Measurement::times(ops, times))
}

/// Runs `cpython_ipc.py` with `args` and returns what it printed.
pub(crate) fn ipc_raw(python: &str, args: &[String]) -> Result<String, NotMeasured> {
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(IPC).args(args);
    run(python, cmd)
}

/// Writes `cpython_processes.py` into a scratch directory and runs it with `args`.
fn run_processes(python: &str, args: &[&str]) -> Result<String, NotMeasured> {
    let dir = ScratchDir::new("cpython")
        .map_err(|e| NotMeasured::Failed(format!("cannot make a scratch directory: {e}")))?;
    let script = dir.path().join("cpython_processes.py");
    std::fs::write(&script, PROCESSES)
        .map_err(|e| NotMeasured::Failed(format!("cannot write {}: {e}", script.display())))?;
    let mut cmd = Command::new(python);
    cmd.arg(&script).args(args);
    run(python, cmd)
}

/// Runs a peer script and returns its standard output; a missing interpreter skips the
/// contender, a failing script fails it with the last line it printed on standard error.
pub(crate) fn run(python: &str, mut cmd: Command) -> Result<String, NotMeasured> {
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(NotMeasured::Skipped(format!("{python} not found")));
        }
        Err(e) => return Err(NotMeasured::Failed(format!("cannot run {python}: {e}"))),
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(NotMeasured::Failed(format!(
            "{python} exited with {}: {last}",
            out.status
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reads the `"times_s"` array of a script's JSON line.
pub(crate) fn parse_times(json: &str) -> Result<Vec<Duration>, String> {
    parse_numbers(json, "times_s")?
        .into_iter()
        .map(|(item, secs)| {
            Duration::try_from_secs_f64(secs)
                .map_err(|_| format!("not a duration in \"times_s\": {item:?}"))
        })
        .collect()
}

/// Reads the `"bytes"` array of a script's JSON line: whole, non-negative numbers.
pub(crate) fn parse_bytes(json: &str) -> Result<Vec<u64>, String> {
    parse_numbers(json, "bytes")?
        .into_iter()
        .map(|(item, v)| {
            if v >= 0.0 && v.fract() == 0.0 && v < u64::MAX as f64 {
                Ok(v as u64)
            } else {
                Err(format!("not a size in \"bytes\": {item:?}"))
            }
        })
        .collect()
}

/// Reads the array of numbers under `key` of a script's JSON line, each with its text.
///
/// The scripts print a flat object whose arrays hold plain numbers; this reads exactly that,
/// so the board needs no JSON library.
fn parse_numbers<'a>(json: &'a str, key: &str) -> Result<Vec<(&'a str, f64)>, String> {
    let quoted = format!("\"{key}\"");
    let at = json
        .find(&quoted)
        .ok_or_else(|| format!("no {quoted} in peer output: {json:?}"))?;
    let rest = json[at + quoted.len()..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .ok_or_else(|| format!("expected ':' after {quoted}"))?
        .trim_start();
    let rest = rest
        .strip_prefix('[')
        .ok_or_else(|| format!("expected '[' after {quoted}:"))?;
    let end = rest
        .find(']')
        .ok_or_else(|| format!("unterminated {quoted} array"))?;
    let body = rest[..end].trim();
    if body.is_empty() {
        return Ok(Vec::new());
    }
    body.split(',')
        .map(|item| {
            let item = item.trim();
            match item.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok((item, v)),
                _ => Err(format!("not a number in {quoted}: {item:?}")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_times_of_a_script_line() {
        let line = r#"{"workload": "map", "n": 10, "workers": 2, "python": "3.11.7", "times_s": [0.5, 1.25e-3, 2]}"#;
        let t = parse_times(line).unwrap();
        assert_eq!(
            t,
            vec![
                Duration::from_millis(500),
                Duration::from_micros(1250),
                Duration::from_secs(2)
            ]
        );
    }

    #[test]
    fn an_empty_array_is_no_times() {
        assert_eq!(
            parse_times(r#"{"times_s":[]}"#).unwrap(),
            Vec::<Duration>::new()
        );
    }

    #[test]
    fn bad_output_is_an_error_not_a_panic() {
        for bad in [
            "",
            "Traceback (most recent call last):",
            r#"{"times_s": 3}"#,
            r#"{"times_s": [1, 2"#,
            r#"{"times_s": [1, "x"]}"#,
            r#"{"times_s": [-1]}"#,
            r#"{"times_s": [NaN]}"#,
            r#"{"times_s" [1]}"#,
        ] {
            assert!(parse_times(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn reads_the_sizes_of_a_script_line() {
        let line = r#"{"bytes": [1519616, 4.5e6], "python": "3.11.7"}"#;
        assert_eq!(parse_bytes(line).unwrap(), vec![1_519_616, 4_500_000]);
        for bad in [
            r#"{"bytes": [-1]}"#,
            r#"{"bytes": [1.5]}"#,
            r#"{"bytes": [inf]}"#,
            r#"{"times_s": [1]}"#,
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_missing_interpreter_is_skipped() {
        let plan = Plan::fixed(0, 1);
        let out = measure("/nonexistent/python3-for-spindle-bench", "map", 10, plan, 2);
        assert!(matches!(out, Err(NotMeasured::Skipped(_))), "{out:?}");
        let out = process_starts("/nonexistent/python3-for-spindle-bench", "fork", plan);
        assert!(matches!(out, Err(NotMeasured::Skipped(_))), "{out:?}");
    }

    #[test]
    fn the_script_rejects_an_unknown_workload() {
        // Runs only where python3 exists; elsewhere the contender is skipped, as checked above.
        let plan = Plan::fixed(0, 1);
        match measure("python3", "no-such-workload", 10, plan, 2) {
            Err(NotMeasured::Skipped(_)) => {}
            other => assert!(matches!(other, Err(NotMeasured::Failed(_))), "{other:?}"),
        }
    }

    #[test]
    fn the_script_measures_a_tiny_map() {
        let plan = Plan::fixed(0, 2);
        match measure("python3", "map", 50, plan, 2) {
            Err(NotMeasured::Skipped(_)) => {}
            other => {
                let m = other.unwrap();
                assert_eq!((m.ops, m.samples.len()), (50, 2));
            }
        }
    }

    #[test]
    fn the_process_script_rejects_an_unknown_start_method() {
        match process_starts("python3", "vfork", Plan::fixed(0, 1)) {
            Err(NotMeasured::Skipped(_)) => {}
            other => assert!(
                matches!(&other, Err(NotMeasured::Failed(m)) if m.contains("vfork")),
                "{other:?}"
            ),
        }
    }

    #[test]
    fn the_process_script_starts_forked_children() {
        // fork only: the cheapest CPython start method (milliseconds).
        match process_starts("python3", "fork", Plan::fixed(0, 2)) {
            Err(NotMeasured::Skipped(_)) => {}
            other => {
                let m = other.unwrap();
                assert_eq!((m.ops, m.samples.len()), (1, 2));
            }
        }
    }
}
