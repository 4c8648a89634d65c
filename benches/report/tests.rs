//! Rendering tests on a hand-made board with known times.

use std::time::Duration;

use super::*;
use crate::harness::Plan;
use crate::machine::Machine;
use crate::scoreboard::{Aim, Rule};

fn measured(ops: u64, micros: &[u64]) -> Result<Measurement, NotMeasured> {
    Ok(Measurement::times(
        ops,
        micros.iter().map(|&u| Duration::from_micros(u)).collect(),
    ))
}

fn row(name: &str, role: Role, aim: Option<f64>, outcome: Result<Measurement, NotMeasured>) -> Row {
    Row {
        contender: name.to_string(),
        role,
        versus: None,
        aim: aim.map(|min_speedup| Aim {
            rule: Rule::MinSpeedup(min_speedup),
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
        unit: Unit::Time,
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
    assert!(line_of(&text, "aim missed").contains("round-trip, peer A"));
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

fn versus(mut r: Row, subject: &str) -> Row {
    r.versus = Some(subject.to_string());
    r
}

fn with_rule(mut r: Row, rule: Rule) -> Row {
    r.aim = Some(Aim {
        rule,
        text: "an absolute aim".to_string(),
    });
    r
}

fn kib(samples: &[u64]) -> Result<Measurement, NotMeasured> {
    Ok(Measurement::bytes(
        1,
        samples.iter().map(|k| k * 1024).collect(),
    ))
}

/// Process starts: spindle fork 300 µs with a raw fork of 100 µs (0.33×) and CPython fork at
/// 6 ms (20×); spindle spawn 1 ms with raw spawn 0.9 ms (0.90×); spindle forkserver 400 µs,
/// bound by fork + round trip = 300 + 50 µs (missed); a round trip of 50 µs for reference.
/// Memory: a fork child of 512 KiB (aim ≤ 2 MiB met) against CPython's 6 MiB (12×), a spawn
/// child of 3 MiB (aim ≤ 2 MiB missed).
fn multi_board() -> Scoreboard {
    let starts = GroupResult {
        id: "process-start".to_string(),
        title: "process start-and-join".to_string(),
        notes: Vec::new(),
        unit: Unit::Time,
        rows: vec![
            row("spindle fork", Role::Subject, None, measured(1, &[300; 5])),
            versus(
                row(
                    "raw fork",
                    Role::Peer,
                    Some(1.0 / 1.3),
                    measured(1, &[100; 5]),
                ),
                "spindle fork",
            ),
            versus(
                row(
                    "CPython fork",
                    Role::Peer,
                    Some(10.0),
                    measured(1, &[6_000; 3]),
                ),
                "spindle fork",
            ),
            row(
                "spindle spawn",
                Role::Subject,
                None,
                measured(1, &[1_000; 5]),
            ),
            versus(
                row(
                    "raw spawn",
                    Role::Peer,
                    Some(1.0 / 1.3),
                    measured(1, &[900; 5]),
                ),
                "spindle spawn",
            ),
            with_rule(
                row(
                    "spindle forkserver",
                    Role::Subject,
                    None,
                    measured(1, &[400; 5]),
                ),
                Rule::AtMostSumOf(vec!["spindle fork".to_string(), "round trip".to_string()]),
            ),
            row(
                "round trip",
                Role::Reference,
                None,
                measured(100, &[5_000; 5]),
            ),
        ],
    };
    let memory = GroupResult {
        id: "process-memory".to_string(),
        title: "idle child memory".to_string(),
        notes: Vec::new(),
        unit: Unit::Bytes,
        rows: vec![
            with_rule(
                row(
                    "spindle fork child",
                    Role::Subject,
                    None,
                    kib(&[256, 512, 768]),
                ),
                Rule::AtMost(2.0 * 1024.0 * 1024.0),
            ),
            versus(
                row("CPython fork child", Role::Peer, None, kib(&[6 * 1024])),
                "spindle fork child",
            ),
            with_rule(
                row("spindle spawn child", Role::Subject, None, kib(&[3 * 1024])),
                Rule::AtMost(2.0 * 1024.0 * 1024.0),
            ),
            versus(
                row(
                    "CPython spawn child",
                    Role::Peer,
                    None,
                    Err(NotMeasured::Skipped("python3 not found".to_string())),
                ),
                "spindle spawn child",
            ),
        ],
    };
    let mut b = board();
    b.groups = vec![starts, memory];
    b
}

#[test]
fn each_peer_is_compared_with_the_subject_it_names() {
    let b = multi_board();
    let g = &b.groups[0];
    assert!(g.several_subjects());
    assert!(!board().groups[0].several_subjects());
    let raw_spawn = &g.rows[4];
    assert_eq!(g.subject_of(raw_spawn).unwrap().contender, "spindle spawn");
    assert!((g.speedup(raw_spawn).unwrap() - 0.9).abs() < 1e-9);
    let cpython = &g.rows[2];
    assert!((g.speedup(cpython).unwrap() - 20.0).abs() < 1e-9);
    // A reference row is compared with nothing.
    assert_eq!(g.subject_of(&g.rows[6]), None);
    assert_eq!(g.speedup(&g.rows[6]), None);
    // A peer naming a subject that is not on the board has no ratio rather than a wrong one.
    let lost = versus(g.rows[1].clone(), "spindle vfork");
    assert_eq!(g.speedup(&lost), None);
}

#[test]
fn absolute_aims_compare_the_rows_own_median_with_its_bound() {
    let b = multi_board();
    let starts = &b.groups[0];
    let forkserver = &starts.rows[5];
    // 300 µs (fork) + 5 ms / 100 round trips = 350 µs.
    let limit = starts.aim_limit(forkserver).unwrap();
    assert!((limit - 350e-6).abs() < 1e-12, "{limit}");
    assert_eq!(starts.aim_met(forkserver), Some(false));
    assert_eq!(starts.aim_met(&starts.rows[1]), Some(false));
    assert_eq!(starts.aim_met(&starts.rows[2]), Some(true));
    let memory = &b.groups[1];
    assert_eq!(memory.aim_met(&memory.rows[0]), Some(true));
    assert_eq!(memory.aim_met(&memory.rows[2]), Some(false));
    assert_eq!(
        b.missed_aims(),
        vec![
            ("process-start", "raw fork"),
            ("process-start", "spindle forkserver"),
            ("process-memory", "spindle spawn child"),
        ]
    );
    // A bound built from a row that was not measured is unknown, not zero.
    let mut unmeasured = starts.clone();
    unmeasured.rows[6].outcome = Err(NotMeasured::Failed("boom".to_string()));
    assert_eq!(unmeasured.aim_limit(&unmeasured.rows[5]), None);
    assert_eq!(unmeasured.aim_met(&unmeasured.rows[5]), None);
}

#[test]
fn text_names_the_subject_and_prints_memory_in_bytes() {
    let text = multi_board().to_text();
    assert!(line_of(&text, "raw spawn").contains("0.90× vs spawn"));
    assert!(line_of(&text, "CPython fork").contains("20.0× vs fork  ≥ 10.0× met"));
    assert!(line_of(&text, "spindle forkserver").contains("≤ 350 µs MISSED"));
    let reference = line_of(&text, "round trip");
    assert!(reference.contains("50.0 µs"), "{reference}");
    assert!(!reference.contains('×'), "{reference}");
    // The memory workload has its own header line, with sizes instead of times.
    let header = line_of(&text, "spindle smaller by");
    assert!(header.contains("median") && !header.contains("median/task"));
    let fork_child = line_of(&text, "spindle fork child");
    for cell in ["512 KiB", "±25.0%", "256 KiB–768 KiB", "≤ 2.00 MiB met"] {
        assert!(fork_child.contains(cell), "{cell:?} not in {fork_child:?}");
    }
    assert!(line_of(&text, "CPython fork child").contains("12.0× vs fork child"));
    assert!(line_of(&text, "spindle spawn child").contains("3.00 MiB"));
    assert!(line_of(&text, "CPython spawn child").contains("skipped: python3 not found"));
    assert!(line_of(&text, "speed-up = ").contains("smaller by = peer's bytes / spindle's"));
    assert!(line_of(&text, "aim missed: process-memory").contains("spindle spawn child"));
}

#[test]
fn markdown_memory_tables_have_their_own_columns() {
    let md = multi_board().to_markdown();
    for needle in [
        "| contender | samples | median | spread | min–max | spindle smaller by | aim |",
        "| **spindle fork child** | 3 | 512 KiB | ±25.0% | 256 KiB–768 KiB | — | ≤ 2.00 MiB met |",
        "| process start-and-join | an absolute aim | 400 µs (limit 350 µs) | **missed** |",
        "| idle child memory | an absolute aim | 512 KiB (limit 2.00 MiB) | met |",
        "- **Memory rows:**",
    ] {
        assert!(md.contains(needle), "{needle:?} not in\n{md}");
    }
    let section = &md[md.find("## idle child memory").unwrap()..];
    let header_cells = line_of(section, "| contender").matches('|').count();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        assert_eq!(line.matches('|').count(), header_cells, "{line}");
    }
    assert!(!board().to_markdown().contains("Memory rows"));
}

#[test]
fn sizes_keep_three_significant_figures_in_binary_units() {
    assert_eq!(bytes(512.0), "512 B");
    assert_eq!(bytes(1000.0), "0.98 KiB");
    assert_eq!(bytes(812.0 * 1024.0), "812 KiB");
    assert_eq!(bytes(1023.9 * 1024.0), "1.00 MiB");
    assert_eq!(bytes(1.25 * 1024.0 * 1024.0), "1.25 MiB");
    assert_eq!(bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.00 GiB");
    assert_eq!(bytes(f64::NAN), "n/a");
}
