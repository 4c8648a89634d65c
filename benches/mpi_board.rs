//! The MPI rows of the scoreboard (issue #16), side by side in one run: spindle's
//! `MpiPoolExecutor`, `mpi4py.futures` (in a virtual environment, built with pip against the
//! same Open MPI's `mpicc`), and a raw chunked pool over plain MPI send/receive, each as its
//! own `mpiexec -n 3 --oversubscribe` job (1 master + 2 worker ranks), repeated.
//!
//! ```text
//! cargo run --release -p spindle-bench --features mpi --bin spindle-mpi-board -- [--reps N] [--jobs N]
//! ```
//!
//! Run without `mpiexec`, it is the driver: it makes `target/mpi4py-venv` if missing (pip
//! downloads mpi4py there; nothing of it is committed), runs `--jobs` rounds of the three
//! jobs, each timing `--reps` repetitions of every row, and prints medians, spreads and the
//! ratios the issue aims at. Under `mpiexec` it is one of the jobs (`spindle` or `raw`).

#[path = "mpi/raw_pool.rs"]
mod raw_pool;
#[path = "mpi/rows.rs"]
mod rows;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mpi::topology::Communicator;
use spindle::futures::MpiPoolExecutor;
use spindle_bench::Summary;

const MPI4PY: &str = include_str!("peers/mpi4py_futures.py");

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let reps = value("--reps", 3);
    match args.first().map(String::as_str) {
        Some("spindle") => spindle_job(reps),
        Some("raw") => raw_job(reps),
        _ => drive(reps, value("--jobs", 3)),
    }
}

fn spindle_job(reps: usize) {
    if let Some(ex) = MpiPoolExecutor::start().expect("start") {
        rows::spindle(&ex, reps);
    }
}

fn raw_job(reps: usize) {
    let universe = mpi::initialize().expect("MPI_Init");
    let world = universe.world();
    if world.rank() != 0 {
        raw_pool::serve(&world);
        return;
    }
    let input: Vec<u64> = (0..rows::N).collect();
    let mut out = vec![0u64; input.len()];
    let want: u64 = input.iter().map(|x| x * x).sum();
    raw_pool::map(&world, &input, 1000, &mut out);
    for _ in 0..reps {
        for (name, chunk) in [("raw.map.c1", 1), ("raw.map.c1000", 1000)] {
            out.iter_mut().for_each(|x| *x = 0);
            let took = raw_pool::map(&world, &input, chunk, &mut out);
            assert_eq!(out.iter().sum::<u64>(), want);
            rows::row(name, took, rows::N);
        }
        rows::row("raw.ping_pong", raw_pool::ping_pong(&world, 20_000), 1);
    }
    raw_pool::stop(&world);
}

/// `mpiexec -n 3` with CI's flags.
fn mpiexec(program: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("mpiexec");
    c.args(["-n", "3", "--oversubscribe", "--allow-run-as-root"])
        .arg(program)
        .args(args)
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
    c
}

/// Runs a job and collects its `ROW name ns` lines.
fn collect(mut cmd: Command, into: &mut BTreeMap<String, Vec<f64>>) {
    let out = cmd.stderr(Stdio::inherit()).output().expect("run mpiexec");
    if !out.status.success() {
        eprintln!("a job failed: {}", out.status);
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = line.split_whitespace();
        if let (Some("ROW"), Some(name), Some(ns)) = (f.next(), f.next(), f.next()) {
            if let Ok(ns) = ns.parse::<f64>() {
                into.entry(name.to_string()).or_default().push(ns);
            }
        }
    }
}

/// The virtual environment's python with mpi4py, made if missing.
fn mpi4py_python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/mpi4py-venv");
    let python = root.join("bin/python");
    let works = |p: &Path| {
        Command::new(p)
            .args(["-c", "import mpi4py.futures"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if works(&python) {
        return Some(python);
    }
    eprintln!(
        "making {} (pip builds mpi4py with mpicc, ~2-3 min)",
        root.display()
    );
    let made = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&root)
        .status();
    let pip = root.join("bin/pip");
    let built = made.is_ok_and(|s| s.success())
        && Command::new(&pip)
            .args(["install", "-q", "mpi4py"])
            .env("MPICC", "mpicc")
            .status()
            .is_ok_and(|s| s.success());
    (built && works(&python)).then_some(python)
}

fn drive(reps: usize, jobs: usize) {
    let me = std::env::current_exe().expect("this program");
    let python = mpi4py_python();
    let script = std::env::temp_dir().join(format!("spindle-mpi4py-{}.py", std::process::id()));
    std::fs::write(&script, MPI4PY).expect("write the mpi4py script");
    let mut rows: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let reps_s = reps.to_string();
    for job in 0..jobs {
        eprintln!("round {} of {jobs}", job + 1);
        collect(mpiexec(&me, &["spindle", "--reps", &reps_s]), &mut rows);
        collect(mpiexec(&me, &["raw", "--reps", &reps_s]), &mut rows);
        if let Some(py) = &python {
            let mut c = mpiexec(py, &["-m", "mpi4py.futures"]);
            c.arg(&script).arg(&reps_s);
            collect(c, &mut rows);
        }
    }
    let _ = std::fs::remove_file(&script);
    report(&rows, jobs, reps);
}

fn med(rows: &BTreeMap<String, Vec<f64>>, name: &str) -> Option<Summary> {
    rows.get(name).and_then(|v| Summary::of(v))
}

fn report(rows: &BTreeMap<String, Vec<f64>>, jobs: usize, reps: usize) {
    println!("\nMPI rows: mpiexec -n 3 --oversubscribe (1 master + 2 worker ranks), {jobs} jobs x {reps} repetitions each; median per task, ± half the IQR, [min–max]\n");
    println!(
        "{:<26} {:>12} {:>8}  {:>23}",
        "row", "median", "spread", "range"
    );
    for (name, v) in rows {
        if let Some(s) = Summary::of(v) {
            println!(
                "{:<26} {:>12} {:>7.1}%  [{} – {}]",
                name,
                show(s.median),
                s.spread() * 100.0,
                show(s.min),
                show(s.max)
            );
        }
    }
    println!("\naims (ratios of medians):");
    let ratio = |a: &str, b: &str| Some(med(rows, b)?.median / med(rows, a)?.median);
    let line = |what: &str, r: Option<f64>, aim: &str, met: Option<bool>| {
        let r = r.map_or("n/a".to_string(), |r| format!("{r:.2}x"));
        let met = match met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        };
        println!("  {what:<58} {r:>9}  aim {aim:<8} {met}");
    };
    let submit = ratio("spindle.submit", "mpi4py.submit");
    line(
        "submit rate, spindle / mpi4py.futures",
        submit,
        ">= 50x",
        submit.map(|r| r >= 50.0),
    );
    for c in ["c1", "c1000"] {
        let r = ratio(&format!("spindle.map.{c}"), &format!("mpi4py.map.{c}"));
        line(
            &format!("map {c}, spindle / mpi4py.futures"),
            r,
            ">= 5x",
            r.map(|r| r >= 5.0),
        );
    }
    let raw = ratio("spindle.map.c1000", "raw.map.c1000");
    line(
        "map c1000, spindle / raw MPI pool",
        raw,
        ">= 0.5x",
        raw.map(|r| r >= 0.5),
    );
    let trip = ratio("raw.ping_pong", "spindle.round_trip");
    line(
        "round trip, spindle / raw ping-pong (lower is better)",
        trip,
        "<= 5x",
        trip.map(|r| r <= 5.0),
    );
}

fn show(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}
