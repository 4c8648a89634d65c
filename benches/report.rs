//! Rendering the board: a plain-text table for the terminal and Markdown for `BENCHMARKS.md`.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use crate::harness::{Measurement, Unit};
use crate::scoreboard::{GroupResult, NotMeasured, Role, Row, Rule, Scoreboard};

impl Scoreboard {
    /// The board as an aligned plain-text table (no colour), for a terminal.
    ///
    /// Columns: workload, contender, tasks per repetition, median time per task, spread,
    /// throughput, spindle's speed-up against this peer, and the aim if any. Memory
    /// workloads get their own header line: samples, median bytes, spread, min–max, and how
    /// many times smaller spindle is.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "spindle bench{}: {} worker threads per pool; median of at least {} repetitions \
             after {} warm-up",
            if self.quick { " --quick" } else { "" },
            self.workers,
            self.plan.reps,
            self.plan.warmup
        );
        let _ = writeln!(
            out,
            "spread = ±half the interquartile range / median; speed-up = peer's time per task / \
             spindle's (above 1× spindle is faster){}",
            if self.has_memory() {
                "; smaller by = peer's bytes / spindle's"
            } else {
                ""
            }
        );
        let m = &self.machine;
        let _ = writeln!(
            out,
            "{} CPUs ({}), load {}; {}; {}",
            m.nproc,
            m.cpu,
            m.load.as_deref().unwrap_or("unknown"),
            m.rustc,
            m.python.as_deref().unwrap_or("no python3")
        );
        if self.machine.profile != "release" {
            let _ = writeln!(
                out,
                "WARNING: {} build; the figures mean nothing",
                self.machine.profile
            );
        }
        out.push('\n');
        let mut table = Vec::new();
        let mut header_of = None;
        for g in &self.groups {
            if header_of != Some(g.unit) {
                if header_of.is_some() {
                    table.push(Vec::new());
                }
                table.push(text_header(g.unit));
                header_of = Some(g.unit);
            }
            for (i, row) in g.rows.iter().enumerate() {
                let workload = if i == 0 {
                    g.title.clone()
                } else {
                    String::new()
                };
                let mut line = vec![workload, row.contender.clone()];
                match figures(g, row) {
                    Ok(f) => line.extend(f),
                    Err(reason) => line.push(reason),
                }
                table.push(line);
            }
        }
        out.push_str(&align(
            &table,
            &[false, false, true, true, true, true, true, false],
        ));
        let missed = self.missed_aims();
        if !missed.is_empty() {
            out.push('\n');
            for (id, contender) in missed {
                let _ = writeln!(out, "aim missed: {id}, {contender}");
            }
        }
        out
    }

    fn has_memory(&self) -> bool {
        self.groups.iter().any(|g| g.unit == Unit::Bytes)
    }

    /// The board as Markdown, headed with the date, the machine, the toolchain and the exact
    /// command; one section per workload.
    pub fn to_markdown(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        out.push_str("# Benchmarks\n\n");
        out.push_str(
            "spindle side by side with its peers, every contender measured in one run by \
             `spindle bench`. Regenerate this file with the command below.\n\n",
        );
        let _ = writeln!(out, "- **Command:** `{}`", self.command);
        let _ = writeln!(out, "- **Date:** {}", m.date);
        let _ = writeln!(
            out,
            "- **Machine:** {} CPUs (nproc), {}, {}",
            m.nproc, m.cpu, m.os
        );
        let _ = writeln!(out, "- **Rust:** {} ({} build)", m.rustc, m.profile);
        let python = m
            .python
            .as_deref()
            .unwrap_or("not found: CPython peers skipped");
        let _ = writeln!(out, "- **Python:** {python}");
        let _ = writeln!(
            out,
            "- **Threads:** every pool has {} worker threads; the calling thread is one more.",
            self.workers
        );
        let _ = writeln!(
            out,
            "- **Repetitions:** {} warm-up, then at least {} timed{} for each Rust contender, \
             more while they add up to less than {:.2} s (at most {}; spawns fewer); the \
             CPython peers run fewer (at most 5 for the thread pools; the process workloads \
             say how many); each row gives its count.",
            self.plan.warmup,
            self.plan.reps,
            if self.quick {
                " (quick mode: smaller sizes)"
            } else {
                ""
            },
            self.plan.min_time.as_secs_f64(),
            self.plan.max_reps
        );
        let load = m.load.as_deref().unwrap_or("unknown");
        let _ = writeln!(
            out,
            "- **Load average at start:** {load} (other work on the machine widens the spread)"
        );
        out.push_str(
            "- **How to read:** *median* is the median over repetitions of the wall time per \
             task; *spread* is ± half the interquartile range relative to the median (quartiles \
             interpolated linearly); *speed-up* is the peer's median divided by spindle's: \
             above 1× spindle is faster, 0.50× means spindle takes twice as long. In a \
             workload with several spindle rows (one per start method), each peer is compared \
             with the spindle row it names.\n",
        );
        if self.has_memory() {
            out.push_str(
                "- **Memory rows:** *median* is the median over samples of a size in bytes \
                 (KiB = 1024 B); *smaller by* is the peer's median divided by spindle's: above \
                 1× spindle uses less.\n",
            );
        }
        let aims: Vec<(&GroupResult, &Row)> = self
            .groups
            .iter()
            .flat_map(|g| {
                g.rows
                    .iter()
                    .filter(|r| r.aim.is_some())
                    .map(move |r| (g, r))
            })
            .collect();
        if !aims.is_empty() {
            out.push_str("\n## Aims\n\n| workload | aim | figure | |\n|---|---|---:|---|\n");
            for (g, r) in aims {
                let aim = r.aim.as_ref().map_or("", |a| a.text.as_str());
                let speedup = aim_figure(g, r);
                let verdict = match g.aim_met(r) {
                    Some(true) => "met",
                    Some(false) => "**missed**",
                    None => "not measured",
                };
                let _ = writeln!(out, "| {} | {aim} | {speedup} | {verdict} |", g.title);
            }
        }
        for g in &self.groups {
            let _ = write!(out, "\n## {}\n\n", g.title);
            for note in &g.notes {
                let _ = write!(out, "{note}\n\n");
            }
            out.push_str(match g.unit {
                Unit::Time => {
                    "| contender | tasks/rep | reps | median/task | spread | min–max/task \
                     | throughput | spindle speed-up | aim |\n\
                     |---|---:|---:|---:|---:|---:|---:|---:|---|\n"
                }
                Unit::Bytes => {
                    "| contender | samples | median | spread | min–max | spindle smaller by \
                     | aim |\n|---|---:|---:|---:|---:|---:|---|\n"
                }
            });
            for row in &g.rows {
                let f = figures(g, row).unwrap_or_else(|reason| {
                    let mut f: [String; 6] = Default::default();
                    f[1] = reason;
                    f
                });
                let name = if row.role == Role::Subject {
                    format!("**{}**", row.contender)
                } else {
                    row.contender.clone()
                };
                let _ = match g.unit {
                    Unit::Time => {
                        let reps = row
                            .outcome
                            .as_ref()
                            .map_or(String::new(), |m| m.samples.len().to_string());
                        let range = row.per_op().map_or(String::new(), |s| {
                            format!("{}–{}", time(s.min), time(s.max))
                        });
                        writeln!(
                            out,
                            "| {name} | {} | {reps} | {} | {} | {range} | {} | {} | {} |",
                            f[0], f[1], f[2], f[3], f[4], f[5]
                        )
                    }
                    Unit::Bytes => writeln!(
                        out,
                        "| {name} | {} | {} | {} | {} | {} | {} |",
                        f[0], f[1], f[2], f[3], f[4], f[5]
                    ),
                };
            }
        }
        out
    }

    /// Writes [`to_markdown`](Scoreboard::to_markdown) to `path` (the CLI's `--out`).
    pub fn write_markdown(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.to_markdown())
    }
}

/// The header line of the plain-text table for workloads in `unit`.
fn text_header(unit: Unit) -> Vec<String> {
    cells(&match unit {
        Unit::Time => [
            "workload",
            "contender",
            "tasks/rep",
            "median/task",
            "spread",
            "throughput",
            "spindle speed-up",
            "aim",
        ],
        Unit::Bytes => [
            "workload",
            "contender",
            "samples",
            "median",
            "spread",
            "min–max",
            "spindle smaller by",
            "aim",
        ],
    })
}

/// The six figure cells of a row, or why it has none: for time, tasks/rep, median, spread,
/// throughput, speed-up, aim; for memory, samples, median, spread, min–max, ratio, aim.
fn figures(g: &GroupResult, row: &Row) -> Result<[String; 6], String> {
    let (m, s) = match (&row.outcome, row.per_op()) {
        (Ok(m), Some(s)) => (m, s),
        (Ok(_), None) => return Err("no timed repetitions".to_string()),
        (Err(NotMeasured::Skipped(why)), _) => return Err(format!("skipped: {why}")),
        (Err(NotMeasured::Failed(why)), _) => return Err(format!("FAILED: {why}")),
    };
    let unit = m.unit();
    let speedup = match row.role {
        Role::Subject => "—".to_string(),
        Role::Reference => String::new(),
        Role::Peer => {
            let r = g.speedup(row).map_or_else(|| "n/a".to_string(), ratio);
            match g.subject_of(row) {
                Some(subject) if g.several_subjects() => {
                    let short = subject.contender.strip_prefix("spindle ");
                    format!("{r} vs {}", short.unwrap_or(&subject.contender))
                }
                _ => r,
            }
        }
    };
    let aim = match row.aim.as_ref().map(|a| &a.rule) {
        None => String::new(),
        Some(rule) => {
            let bound = match rule {
                Rule::MinSpeedup(min) => format!("≥ {}", ratio(*min)),
                Rule::AtMost(_) | Rule::AtMostSumOf(_) => match g.aim_limit(row) {
                    Some(limit) => format!("≤ {}", value(unit, limit)),
                    None => "≤ n/a".to_string(),
                },
            };
            match g.aim_met(row) {
                Some(true) => format!("{bound} met"),
                Some(false) => format!("{bound} MISSED"),
                None => bound,
            }
        }
    };
    let spread = format!("±{:.1}%", s.spread() * 100.0);
    Ok(match unit {
        Unit::Time => [
            thousands(m.ops),
            time(s.median),
            spread,
            rate(1.0 / s.median),
            speedup,
            aim,
        ],
        Unit::Bytes => [
            thousands(m.samples.len() as u64),
            bytes(s.median),
            spread,
            format!("{}–{}", bytes(s.min), bytes(s.max)),
            speedup,
            aim,
        ],
    })
}

/// The figure an aim is judged on, for the Markdown list of aims: the speed-up, or the row's
/// median and its bound.
fn aim_figure(g: &GroupResult, row: &Row) -> String {
    let not_measured = || "n/a".to_string();
    match row.aim.as_ref().map(|a| &a.rule) {
        Some(Rule::MinSpeedup(_)) | None => g.speedup(row).map_or_else(not_measured, ratio),
        Some(Rule::AtMost(_) | Rule::AtMostSumOf(_)) => {
            match (row.outcome.as_ref().ok(), row.per_op(), g.aim_limit(row)) {
                (Some(m), Some(s), Some(limit)) => format!(
                    "{} (limit {})",
                    value(m.unit(), s.median),
                    value(m.unit(), limit)
                ),
                _ => not_measured(),
            }
        }
    }
}

/// The one-line result printed to standard error after a contender has run.
pub(crate) fn progress_line(outcome: &Result<Measurement, NotMeasured>) -> String {
    match outcome {
        Ok(m) => match (m.unit(), m.per_op()) {
            (Unit::Time, Some(s)) => format!(
                "{}/task ±{:.1}%  ({})",
                time(s.median),
                s.spread() * 100.0,
                rate(1.0 / s.median)
            ),
            (Unit::Bytes, Some(s)) => format!(
                "{} ±{:.1}%  ({}–{})",
                bytes(s.median),
                s.spread() * 100.0,
                bytes(s.min),
                bytes(s.max)
            ),
            (_, None) => "no timed repetitions".to_string(),
        },
        Err(NotMeasured::Skipped(why)) => format!("skipped: {why}"),
        Err(NotMeasured::Failed(why)) => format!("FAILED: {why}"),
    }
}

/// `v` rounded to three significant figures, so that unit choices see 999,999.9 as 1.00 M.
fn round3(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let step = 10f64.powi(v.abs().log10().floor() as i32 - 2);
    (v / step).round() * step
}

/// Three significant figures of a value below 1000: 1.23, 12.3, 123.
fn sig3(v: f64) -> String {
    let two = format!("{v:.2}");
    if two.parse::<f64>().is_ok_and(|x| x.abs() < 10.0) {
        return two;
    }
    let one = format!("{v:.1}");
    if one.parse::<f64>().is_ok_and(|x| x.abs() < 100.0) {
        return one;
    }
    format!("{v:.0}")
}

/// Seconds in the unit that keeps three significant figures: "45.2 ns", "12.3 µs", "1.05 s".
pub(crate) fn time(secs: f64) -> String {
    let secs = round3(secs);
    if secs < 1e-6 {
        format!("{} ns", sig3(secs * 1e9))
    } else if secs < 1e-3 {
        format!("{} µs", sig3(secs * 1e6))
    } else if secs < 1.0 {
        format!("{} ms", sig3(secs * 1e3))
    } else {
        format!("{} s", sig3(secs))
    }
}

/// A size in binary units with three significant figures: "512 B", "812 KiB", "1.25 MiB".
pub(crate) fn bytes(b: f64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if !b.is_finite() {
        return "n/a".to_string();
    }
    if b < 1000.0 {
        return format!("{} B", b.round());
    }
    let mut scaled = b / 1024.0;
    let mut unit = 0;
    while round3(scaled) >= 1000.0 && unit + 1 < UNITS.len() {
        scaled /= 1024.0;
        unit += 1;
    }
    format!("{} {}", sig3(round3(scaled)), UNITS[unit])
}

/// A median or bound in the unit of its workload.
fn value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Time => time(v),
        Unit::Bytes => bytes(v),
    }
}

/// Operations per second: "42.0 k/s", "5.90 M/s".
pub(crate) fn rate(per_sec: f64) -> String {
    let per_sec = round3(per_sec);
    if !per_sec.is_finite() {
        "n/a".to_string()
    } else if per_sec >= 1e9 {
        format!("{} G/s", sig3(per_sec / 1e9))
    } else if per_sec >= 1e6 {
        format!("{} M/s", sig3(per_sec / 1e6))
    } else if per_sec >= 1e3 {
        format!("{} k/s", sig3(per_sec / 1e3))
    } else {
        format!("{} /s", sig3(per_sec))
    }
}

/// A ratio: "0.93×", "12.5×", "150×".
pub(crate) fn ratio(r: f64) -> String {
    format!("{}×", sig3(round3(r)))
}

/// `1000000` as `1,000,000`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .filter_map(|g| std::str::from_utf8(g).ok())
        .collect();
    groups.join(",")
}

fn cells(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| (*t).to_string()).collect()
}

/// Pads every column to its widest cell (counted in characters); `right[i]` right-aligns
/// column `i`. A line shorter than the longest one ends in a cell that spans the remaining
/// columns: it is printed as it is and does not widen its column.
fn align(table: &[Vec<String>], right: &[bool]) -> String {
    let cols = table.iter().map(Vec::len).max().unwrap_or(0);
    let mut width = vec![0; cols];
    for line in table {
        let full = line.len() == cols;
        for (i, cell) in line.iter().enumerate() {
            if full || i + 1 < line.len() {
                width[i] = width[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    for line in table {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let spans = line.len() < cols && i + 1 == line.len();
            let pad = " ".repeat(width[i].saturating_sub(cell.chars().count()));
            if spans {
                text.push_str(cell);
            } else if right.get(i).copied().unwrap_or(false) {
                text.push_str(&pad);
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.push_str(&pad);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
