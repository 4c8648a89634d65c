//! Rendering tests on a hand-made board with known times.

use std::time::Duration;

use super::*;
use crate::harness::Plan;
use crate::machine::Machine;
use crate::scoreboard::Aim;

fn measured(ops: u64, micros: &[u64]) -> Result<Measurement, NotMeasured> {
    Ok(Measurement {
        ops,
        times: micros.iter().map(|&u| Duration::from_micros(u)).collect(),
    })
}

fn row(name: &str, role: Role, aim: Option<f64>, outcome: Result<Measurement, NotMeasured>) -> Row {
    Row {
        contender: name.to_string(),
        role,
        aim: aim.map(|min_speedup| Aim {
            min_speedup,
            text: format!("at least {min_speedup:.2}×"),
        }),
        outcome,
    }
}

/// spindle: 10 µs per op (1000 ops in 10 ms, spread ±5%); peer A: 8 µs per op (spindle
/// 0.80×, aim 0.83 missed); peer B: 1 ms per op (spindle 100×, aim 50 met); peer C skipped.
fn board() -> Scoreboard {
    let group = GroupResult {
        id: "round-trip".to_string(),
        title: "submit-and-wait round trip".to_string(),
        notes: vec!["A note about fairness.".to_string()],
        rows: vec![
            row(
                "spindle pool",
                Role::Subject,
                None,
                measured(1000, &[9_000, 9_500, 10_000, 10_500, 11_000]),
            ),
            row(
                "peer A",
                Role::Peer,
                Some(1.0 / 1.2),
                measured(1000, &[8_000, 8_000, 8_000]),
            ),
            row("peer B", Role::Peer, Some(50.0), measured(10, &[10_000])),
            row(
                "peer C",
                Role::Peer,
                None,
                Err(NotMeasured::Skipped("python3 not found".to_string())),
            ),
        ],
    };
    Scoreboard {
        machine: Machine {
            date: "2024-02-29 13:05 UTC".to_string(),
            nproc: 2,
            cpu: "Test CPU".to_string(),
            os: "linux 6.1".to_string(),
            rustc: "rustc 1.80.0".to_string(),
            profile: "release".to_string(),
            load: Some("0.50 0.40 0.30".to_string()),
            python: None,
        },
        command: "spindle bench --quick".to_string(),
        quick: true,
        workers: 2,
        plan: Plan::fixed(1, 5),
        groups: vec![group],
    }
}

fn line_of<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{text}"))
}

#[test]
fn speedups_and_aims_follow_the_medians() {
    let b = board();
    let g = &b.groups[0];
    let a = g.speedup(&g.rows[1]).unwrap();
    assert!((a - 0.8).abs() < 1e-9, "{a}");
    let bb = g.speedup(&g.rows[2]).unwrap();
    assert!((bb - 100.0).abs() < 1e-9, "{bb}");
    assert_eq!(g.aim_met(&g.rows[1]), Some(false));
    assert_eq!(g.aim_met(&g.rows[2]), Some(true));
    assert_eq!(g.aim_met(&g.rows[3]), None);
    assert_eq!(b.missed_aims(), vec![("round-trip", "peer A")]);
}

#[test]
fn text_rows_carry_median_spread_throughput_and_ratio() {
    let text = board().to_text();
    let spindle = line_of(&text, "spindle pool");
    assert!(
        spindle.starts_with("submit-and-wait round trip"),
        "{spindle}"
    );
    for cell in ["1,000", "10.0 µs", "±5.0%", "100 k/s", "—"] {
        assert!(spindle.contains(cell), "{cell:?} not in {spindle:?}");
    }
    let a = line_of(&text, "peer A");
    for cell in ["8.00 µs", "±0.0%", "125 k/s", "0.80×", "≥ 0.83× MISSED"] {
        assert!(a.contains(cell), "{cell:?} not in {a:?}");
    }
    let b = line_of(&text, "peer B");
    for cell in ["10", "1.00 ms", "1.00 k/s", "100×", "≥ 50.0× met"] {
        assert!(b.contains(cell), "{cell:?} not in {b:?}");
    }
    assert!(line_of(&text, "peer C").contains("skipped: python3 not found"));
    assert!(line_of(&text, "aim missed").contains("peer A"));
    assert!(line_of(&text, "2 CPUs")
        .contains("Test CPU), load 0.50 0.40 0.30; rustc 1.80.0; no python3"));
}

#[test]
fn text_columns_line_up() {
    let text = board().to_text();
    let header = line_of(&text, "contender");
    let col = |line: &str, cell: &str| line[..line.find(cell).unwrap()].chars().count();
    let contender_col = col(header, "contender");
    for name in ["spindle pool", "peer A", "peer B", "peer C"] {
        assert_eq!(col(line_of(&text, name), name), contender_col, "{name}");
    }
    // Right-aligned: the medians end where the header's "median/task" ends.
    let end = |line: &str, cell: &str| col(line, cell) + cell.chars().count();
    let median_end = end(header, "median/task");
    assert_eq!(end(line_of(&text, "spindle pool"), "10.0 µs"), median_end);
    assert_eq!(end(line_of(&text, "peer B"), "1.00 ms"), median_end);
}

#[test]
fn markdown_has_the_header_aims_and_one_table_per_workload() {
    let md = board().to_markdown();
    assert!(md.starts_with("# Benchmarks\n"));
    for needle in [
        "- **Command:** `spindle bench --quick`",
        "- **Date:** 2024-02-29 13:05 UTC",
        "2 CPUs (nproc), Test CPU, linux 6.1",
        "rustc 1.80.0 (release build)",
        "- **Python:** not found: CPython peers skipped",
        "every pool has 2 worker threads",
        "- **Load average at start:** 0.50 0.40 0.30",
        "then at least 5 timed (quick mode: smaller sizes)",
        "## submit-and-wait round trip",
        "A note about fairness.",
        "| submit-and-wait round trip | at least 50.00× | 100× | met |",
        "| **missed** |",
        "| **spindle pool** | 1,000 | 5 | 10.0 µs | ±5.0% | 9.00 µs–11.0 µs | 100 k/s | — |  |",
        "| peer A | 1,000 | 3 | 8.00 µs | ±0.0% | 8.00 µs–8.00 µs | 125 k/s | 0.80× | ≥ 0.83× MISSED |",
        "| peer C |  |  | skipped: python3 not found |",
    ] {
        assert!(md.contains(needle), "{needle:?} not in\n{md}");
    }
    // Every table line of the workload has as many cells as the header.
    let header_cells = md
        .lines()
        .find(|l| l.starts_with("| contender"))
        .unwrap()
        .matches('|')
        .count();
    let section = &md[md.find("## submit-and-wait round trip").unwrap()..];
    for line in section.lines().filter(|l| l.starts_with('|')) {
        assert_eq!(line.matches('|').count(), header_cells, "{line}");
    }
}

#[test]
fn write_markdown_writes_the_rendering() {
    let b = board();
    let path = std::env::temp_dir().join(format!("spindle-bench-{}.md", std::process::id()));
    b.write_markdown(&path).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(written, b.to_markdown());
}

#[test]
fn a_debug_build_is_flagged() {
    let mut b = board();
    b.machine.profile = "debug".to_string();
    assert!(b.to_text().contains("WARNING: debug build"));
}

#[test]
fn units_keep_three_significant_figures() {
    assert_eq!(time(45.2e-9), "45.2 ns");
    assert_eq!(time(12.34e-6), "12.3 µs");
    assert_eq!(time(1.05e-3), "1.05 ms");
    assert_eq!(time(2.5), "2.50 s");
    assert_eq!(rate(42_000.0), "42.0 k/s");
    assert_eq!(rate(5.9e6), "5.90 M/s");
    assert_eq!(rate(2.5e10), "25.0 G/s");
    assert_eq!(rate(12.0), "12.0 /s");
    assert_eq!(ratio(0.934), "0.93×");
    assert_eq!(ratio(150.4), "150×");
    assert_eq!(time(9.9996e-6), "10.0 µs");
    assert_eq!(time(999.96e-6), "1.00 ms");
    assert_eq!(rate(99_999.99), "100 k/s");
    assert_eq!(rate(999_999.9), "1.00 M/s");
    assert_eq!(ratio(9.999), "10.0×");
    assert_eq!(thousands(1_000_000), "1,000,000");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(0), "0");
}
