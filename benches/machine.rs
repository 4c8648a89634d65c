//! Where and when the board ran: date, CPU, kernel, compiler, Python.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// A description of the machine and toolchain, printed at the head of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// The UTC date and time of the run, as `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// Logical CPUs available to this process (what `nproc` prints).
    pub nproc: usize,
    /// The CPU's model name from `/proc/cpuinfo`, or "unknown".
    pub cpu: String,
    /// The operating system and kernel release, such as "linux 6.1.0".
    pub os: String,
    /// The compiler that built the board (`rustc -V` at build time).
    pub rustc: String,
    /// `release` or `debug`: figures from a debug build are meaningless.
    pub profile: String,
    /// The 1, 5 and 15 minute load averages when the run started (`/proc/loadavg`).
    pub load: Option<String>,
    /// The Python that ran the CPython peers (`python3 --version`), if any.
    pub python: Option<String>,
}

impl Machine {
    /// Looks at this machine; `python` is the interpreter the CPython peers use.
    pub fn detect(python: &str) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Machine {
            date: utc_date(SystemTime::now()),
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".to_string()),
            os: format!("{} {}", std::env::consts::OS, kernel.trim())
                .trim()
                .to_string(),
            rustc: env!("SPINDLE_BENCH_RUSTC").to_string(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_string(),
            load: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|t| load_average(&t)),
            python: python_version(python),
        }
    }
}

/// The first `model name` line of `/proc/cpuinfo` text.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

/// The first three fields of `/proc/loadavg` text.
fn load_average(text: &str) -> Option<String> {
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    (fields.len() == 3).then(|| fields.join(" "))
}

/// `python --version`, or `None` when it cannot be run.
fn python_version(python: &str) -> Option<String> {
    let out = Command::new(python).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    // Python 2 printed its version on stderr; take whichever has it.
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    Some(String::from_utf8_lossy(&text).trim().to_string())
}

/// Formats a time as `YYYY-MM-DD HH:MM UTC`.
fn utc_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        s / 3600,
        s % 3600 / 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days` algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_of_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn date_and_time_of_a_known_instant() {
        // 2024-02-29 13:05:59 UTC
        let t = UNIX_EPOCH + Duration::from_secs(19_782 * 86_400 + 13 * 3600 + 5 * 60 + 59);
        assert_eq!(utc_date(t), "2024-02-29 13:05 UTC");
    }

    #[test]
    fn cpu_model_is_the_first_model_name_line() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\
                    processor\t: 1\nmodel name\t: other\n";
        assert_eq!(cpu_model(info).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn load_average_is_the_first_three_fields() {
        assert_eq!(
            load_average("1.24 0.87 0.43 2/345 6789\n").as_deref(),
            Some("1.24 0.87 0.43")
        );
        assert_eq!(load_average("1.24"), None);
    }

    #[test]
    fn a_missing_python_has_no_version() {
        assert_eq!(
            python_version("/nonexistent/python3-for-spindle-bench"),
            None
        );
    }
}
