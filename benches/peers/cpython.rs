//! Runs `cpython_futures.py` as a subprocess and reads its repetition times.

use std::io::ErrorKind;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Measurement, Plan};
use crate::scoreboard::NotMeasured;

/// The peer script, embedded so that `spindle bench` works from any directory.
const SCRIPT: &str = include_str!("cpython_futures.py");

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
    let out = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(workload)
        .args([
            n.to_string(),
            plan.reps.to_string(),
            plan.warmup.to_string(),
            workers.to_string(),
        ])
        .output();
    let out = match out {
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
    let stdout = String::from_utf8_lossy(&out.stdout);
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

/// Reads the `"times_s"` array of the script's JSON line.
///
/// The script prints a flat object whose `times_s` is an array of non-negative numbers; this
/// reads exactly that, so the board needs no JSON library.
fn parse_times(json: &str) -> Result<Vec<Duration>, String> {
    let key = "\"times_s\"";
    let at = json
        .find(key)
        .ok_or_else(|| format!("no {key} in peer output: {json:?}"))?;
    let rest = json[at + key.len()..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .ok_or("expected ':' after \"times_s\"")?
        .trim_start();
    let rest = rest
        .strip_prefix('[')
        .ok_or("expected '[' after \"times_s\":")?;
    let end = rest.find(']').ok_or("unterminated \"times_s\" array")?;
    let body = rest[..end].trim();
    if body.is_empty() {
        return Ok(Vec::new());
    }
    body.split(',')
        .map(|item| {
            let item = item.trim();
            let secs: f64 = item
                .parse()
                .map_err(|_| format!("not a number in \"times_s\": {item:?}"))?;
            Duration::try_from_secs_f64(secs)
                .map_err(|_| format!("not a duration in \"times_s\": {item:?}"))
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
    fn a_missing_interpreter_is_skipped() {
        let plan = Plan::fixed(0, 1);
        let out = measure("/nonexistent/python3-for-spindle-bench", "map", 10, plan, 2);
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
}
