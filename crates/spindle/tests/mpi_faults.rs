//! Jobs that must end: a rank killed mid-map, a task that exits its rank, a failing
//! initializer, workers spawned by a lone rank 0. Each case is one `mpiexec` job of the
//! `spindle-mpi-cases` helper (`tests/bin/mpi_cases.rs`), watched from here (this binary is
//! not an MPI program): a job that does not end within its limit fails the case as a hang.

mod common;

use std::time::{Duration, Instant};

use common::mpi::{mpiexec, run, summary, Job};

const LIMIT: Duration = Duration::from_secs(90);

fn job(n: u32, case: &str) -> Job {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_spindle-mpi-cases"));
    run(mpiexec(n, bin, &[case]), LIMIT)
}

/// The pids rank 0 printed.
fn pids(job: &Job) -> Vec<u32> {
    job.lines
        .iter()
        .find_map(|(_, l)| l.strip_prefix("pids "))
        .map(|s| s.split(' ').filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

fn no_rank_left(job: &Job) {
    let pids = pids(job);
    assert_eq!(
        pids.len() as u32,
        pids.len().max(1) as u32,
        "{}",
        job.output
    );
    for pid in pids {
        assert!(
            common::eventually(Duration::from_secs(10), || !common::running(pid)),
            "rank pid {pid} still runs after the job ended\n{}",
            job.output
        );
    }
}

fn a_rank_killed_mid_map_ends_the_job_promptly_naming_it() {
    let job = job(3, "kill-mid-map");
    let status = job
        .status
        .unwrap_or_else(|| panic!("a hang:\n{}", job.output));
    assert!(!status.success(), "{status}\n{}", job.output);
    assert_eq!(pids(&job).len(), 3, "{}", job.output);
    let killed = job.when("killing rank 2").expect("rank 0 killed rank 2");
    assert!(job.output.contains("rank 2"), "{}", job.output);
    assert!(
        !job.output.contains("without the job ending"),
        "{}",
        job.output
    );
    println!(
        "    (rank 2 killed {:.0} ms into the job, the job ended {:.0} ms later, {status})",
        killed.as_secs_f64() * 1e3,
        (job.took - killed).as_secs_f64() * 1e3
    );
    no_rank_left(&job);
}

fn a_task_that_exits_its_rank_ends_the_job_naming_it() {
    let job = job(3, "task-exits");
    let status = job
        .status
        .unwrap_or_else(|| panic!("a hang:\n{}", job.output));
    assert!(!status.success(), "{status}\n{}", job.output);
    assert!(job.when("a task exits").is_some(), "{}", job.output);
    assert!(!job.output.contains("went on"), "{}", job.output);
    assert!(
        job.output.contains("rank 1") || job.output.contains("rank 2"),
        "{}",
        job.output
    );
    no_rank_left(&job);
}

fn a_failing_initializer_fails_every_task_naming_the_rank() {
    let job = job(3, "init-fails");
    let status = job
        .status
        .unwrap_or_else(|| panic!("a hang:\n{}", job.output));
    assert!(status.success(), "{status}\n{}", job.output);
    assert!(job.output.contains("OK init-fails"), "{}", job.output);
    no_rank_left(&job);
}

fn a_lone_rank_0_spawns_its_workers() {
    let job = job(1, "spawn");
    let status = job
        .status
        .unwrap_or_else(|| panic!("a hang:\n{}", job.output));
    assert!(status.success(), "{status}\n{}", job.output);
    assert!(
        job.output.contains("OK spawn: [1, 4, 9, 16, 25]"),
        "{}",
        job.output
    );
    assert_eq!(pids(&job).len(), 3, "{}", job.output);
    no_rank_left(&job);
}

fn main() {
    let started = Instant::now();
    let cases: [(&str, fn()); 4] = [
        (
            "a_rank_killed_mid_map_ends_the_job_promptly_naming_it",
            a_rank_killed_mid_map_ends_the_job_promptly_naming_it,
        ),
        (
            "a_task_that_exits_its_rank_ends_the_job_naming_it",
            a_task_that_exits_its_rank_ends_the_job_naming_it,
        ),
        (
            "a_failing_initializer_fails_every_task_naming_the_rank",
            a_failing_initializer_fails_every_task_naming_the_rank,
        ),
        (
            "a_lone_rank_0_spawns_its_workers",
            a_lone_rank_0_spawns_its_workers,
        ),
    ];
    println!("\nrunning {} tests (mpiexec jobs)", cases.len());
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in cases {
        let ok = std::panic::catch_unwind(case).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    summary(passed, failed, started.elapsed());
    if failed > 0 {
        std::process::exit(1);
    }
}
