//! Helper of `tests/mpi_faults.rs`: one MPI job per case, named by the first argument, run
//! under `mpiexec`. Every rank runs this `main`; rank 0 plays the case.
//!
//! | case | ranks | what rank 0 does |
//! |---|---|---|
//! | `kill-mid-map` | 3 | maps slow items, and after a few results `SIGKILL`s rank 2 |
//! | `task-exits` | 3 | submits a task that ends its rank with `exit(3)` |
//! | `init-fails` | 3 | starts with an initializer that fails on rank 2 only, submits |
//! | `spawn` | 1 | starts alone: the executor spawns 2 workers (`MPI_Comm_spawn`) |
//!
//! Rank 0 prints `pids A B C` (every rank's pid) first, so that the test can check that none
//! is left when the job ends, and `OK <case>` when the case ends as it should.

use std::process::Command;
use std::time::Duration;

use spindle::futures::{MapOptions, MpiPoolExecutor};

fn slow_square(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(5));
    n * n
}

fn square(n: u64) -> u64 {
    n * n
}

fn exit_here(code: i32) -> u32 {
    std::process::exit(code)
}

fn fail_on_rank_2() -> Result<(), String> {
    match MpiPoolExecutor::current_rank() {
        Some(2) => Err("no database on this rank".into()),
        _ => Ok(()),
    }
}

fn pids(ex: &MpiPoolExecutor) {
    let mut all = vec![std::process::id()];
    all.extend(ex.ranks().iter().map(|r| r.pid));
    let all: Vec<String> = all.iter().map(u32::to_string).collect();
    println!("pids {}", all.join(" "));
}

fn main() -> spindle::Result<()> {
    let case = std::env::args().nth(1).unwrap_or_default();
    let mut builder = MpiPoolExecutor::builder();
    if case == "init-fails" {
        builder = builder.initializer(fail_on_rank_2, ());
    }
    if case == "spawn" {
        builder = builder.spawn_workers(2);
    }
    let Some(ex) = builder.start()? else {
        return Ok(());
    };
    pids(&ex);
    match case.as_str() {
        "kill-mid-map" => {
            let victim = ex.ranks().iter().find(|r| r.rank == 2).expect("rank 2").pid;
            let map = ex.map_with(slow_square, 0..100_000u64, MapOptions::new().chunksize(1))?;
            for (i, r) in map.enumerate() {
                r?;
                if i == 3 {
                    println!("killing rank 2 (pid {victim})");
                    let _ = Command::new("kill")
                        .args(["-9", &victim.to_string()])
                        .status();
                }
            }
            println!("the map ended without the job ending");
        }
        "task-exits" => {
            println!("a task exits");
            let r = ex.submit(exit_here, 3)?.result();
            println!("the task's rank exited and rank 0 went on: {r:?}");
        }
        "init-fails" => {
            let e = ex.submit(square, 3)?.result().unwrap_err();
            let t = e.as_task().expect("a task error");
            assert!(t.is_initializer_failed(), "{e}");
            assert!(e.to_string().contains("rank 2"), "{e}");
            assert!(e.to_string().contains("no database on this rank"), "{e}");
            let e = ex.map(square, 0..3u64)?.next().unwrap().unwrap_err();
            assert!(e.as_task().unwrap().is_initializer_failed(), "{e}");
            println!("OK init-fails: {e}");
        }
        "spawn" => {
            assert_eq!(ex.max_workers(), 2);
            let got: Vec<u64> = ex.map(square, 1..=5u64)?.collect::<spindle::Result<_>>()?;
            assert_eq!(got, [1, 4, 9, 16, 25]);
            println!("OK spawn: {got:?}");
        }
        other => panic!("unknown case {other:?}"),
    }
    Ok(())
}
