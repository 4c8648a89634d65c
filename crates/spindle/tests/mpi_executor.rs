//! `MpiPoolExecutor` on three ranks: rank 0 runs the cases, ranks 1 and 2 serve.
//!
//! `harness = false`: every rank runs this `main`, which starts the pool first. Run by cargo
//! (`cargo test -p spindle --features mpi --test mpi_executor`), it launches itself under
//! `mpiexec -n 3 --oversubscribe --allow-run-as-root`; .ci/run does exactly that. A case that
//! fails is reported and the others still run; a hang ends the job through a watchdog (rank 0
//! exits without finalizing, which makes `mpiexec` end every rank) and fails the run.

mod common;

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use spindle::futures::{
    as_completed, Executor, MapOptions, MpiPoolExecutor, ProcessPoolExecutor, ThreadPoolExecutor,
};
use spindle::multiprocessing::{get_context, StartMethod};

/// The initializer's argument, as each worker rank received it.
static TAG: OnceLock<String> = OnceLock::new();

fn remember(tag: String) {
    let _ = TAG.set(tag);
}

fn here() -> u32 {
    MpiPoolExecutor::current_rank().unwrap_or(u32::MAX)
}

fn square(n: u64) -> u64 {
    n * n
}

fn square_where(n: u64) -> (u64, u32) {
    (n * n, here())
}

fn tag_where(_: u32) -> (Option<String>, u32) {
    (TAG.get().cloned(), here())
}

fn join3(a: u64, b: String, c: bool) -> String {
    format!("{a}-{b}-{c}")
}

fn panics_on_7(n: u64) -> u64 {
    assert!(n != 7, "seven is refused on rank {}", here());
    n
}

/// Leaves a file named after this rank in `dir` and waits (at most 20 s) until two ranks
/// have: passes only when two tasks run at once on two ranks.
fn rendezvous(dir: String) -> (bool, u32) {
    let me = here();
    let _ = std::fs::write(format!("{dir}/{me}"), b"");
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        let n = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        if n >= 2 {
            return (true, me);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    (false, me)
}

/// In a process spindle started from a rank: has MPI been initialised here, and what does
/// `start` say?
fn child_probe() -> (bool, String) {
    let refused = match MpiPoolExecutor::start() {
        Err(e) => e.to_string(),
        Ok(_) => "started!".to_string(),
    };
    (MpiPoolExecutor::mpi_initialized(), refused)
}

/// On a worker rank: starts a spindle child with `method` and returns its probe.
fn probe_from_worker(method: u8) -> Result<(bool, String), String> {
    let method = if method == 0 {
        StartMethod::Spawn
    } else {
        StartMethod::Forkserver
    };
    let p = get_context(method).process().target(child_probe, ());
    p.start().map_err(|e| e.to_string())?;
    p.join().map_err(|e| e.to_string())
}

/// The same code for every executor.
fn generic<E: Executor>(ex: &E) -> spindle::Result<Vec<u64>> {
    let f = ex.submit(square, 12)?;
    let mut all: Vec<u64> = ex.map(square, 0..50u64)?.collect::<spindle::Result<_>>()?;
    all.push(f.result()?);
    Ok(all)
}

fn values_and_order_across_three_ranks(ex: &MpiPoolExecutor) {
    assert_eq!(ex.max_workers(), 2);
    let got: Vec<(u64, u32)> = ex
        .map_with(square_where, 0..2000u64, MapOptions::new().chunksize(7))
        .unwrap()
        .collect::<spindle::Result<_>>()
        .unwrap();
    let values: Vec<u64> = got.iter().map(|(v, _)| *v).collect();
    assert_eq!(values, (0..2000u64).map(|n| n * n).collect::<Vec<_>>());
    let ranks: BTreeSet<u32> = got.iter().map(|(_, r)| *r).collect();
    assert_eq!(ranks, BTreeSet::from([1, 2]), "both worker ranks ran items");

    // Single submits: in the order of their futures, and through as_completed.
    let futures: Vec<_> = (0..300u64).map(|n| ex.submit(square, n).unwrap()).collect();
    let in_order: Vec<u64> = futures.into_iter().map(|f| f.result().unwrap()).collect();
    assert_eq!(in_order, (0..300u64).map(|n| n * n).collect::<Vec<_>>());
    let futures: Vec<_> = (0..50u64).map(|n| ex.submit(square, n).unwrap()).collect();
    let mut any: Vec<u64> = as_completed(futures, None)
        .map(|f| f.unwrap().result().unwrap())
        .collect();
    any.sort_unstable();
    assert_eq!(any, (0..50u64).map(|n| n * n).collect::<Vec<_>>());

    // Adaptive chunks (the default) and a lazy, endless input.
    let adaptive: u64 = ex
        .map(square, 0..20_000u64)
        .unwrap()
        .map(Result::unwrap)
        .sum();
    assert_eq!(adaptive, (0..20_000u64).map(|n| n * n).sum());
    let first: Vec<u64> = ex
        .map_with(
            square,
            0u64..,
            MapOptions::new().chunksize(10).buffersize(2),
        )
        .unwrap()
        .take(25)
        .collect::<spindle::Result<_>>()
        .unwrap();
    assert_eq!(first[24], 576);
}

fn two_worker_ranks_run_at_once(ex: &MpiPoolExecutor) {
    let dir = std::env::temp_dir().join(format!("spindle-mpi-rdv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_string_lossy().into_owned();
    let a = ex.submit(rendezvous, d.clone()).unwrap();
    let b = ex.submit(rendezvous, d).unwrap();
    let (a, b) = (a.result().unwrap(), b.result().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(a.0 && b.0, "both tasks saw the other running: {a:?} {b:?}");
    assert_ne!(a.1, b.1, "on two ranks");
}

fn starmap(ex: &MpiPoolExecutor) {
    let args: Vec<(u64, String, bool)> = (0..100u64)
        .map(|i| (i, format!("s{i}"), i % 2 == 0))
        .collect();
    let got: Vec<String> = ex
        .starmap(join3, args.clone())
        .unwrap()
        .collect::<spindle::Result<_>>()
        .unwrap();
    let want: Vec<String> = args
        .into_iter()
        .map(|(a, b, c)| format!("{a}-{b}-{c}"))
        .collect();
    assert_eq!(got, want);
    let small: Vec<String> = ex
        .starmap_with(
            join3,
            [(1, "x".to_string(), true)],
            MapOptions::new().chunksize(1),
        )
        .unwrap()
        .collect::<spindle::Result<_>>()
        .unwrap();
    assert_eq!(small, ["1-x-true"]);
}

fn the_initializer_ran_on_every_worker_rank(ex: &MpiPoolExecutor) {
    let seen: Vec<(Option<String>, u32)> = ex
        .map_with(tag_where, 0..200u32, MapOptions::new().chunksize(1))
        .unwrap()
        .collect::<spindle::Result<_>>()
        .unwrap();
    assert!(
        seen.iter()
            .all(|(t, _)| t.as_deref() == Some("spindle-init")),
        "{seen:?}"
    );
    let ranks: BTreeSet<u32> = seen.iter().map(|(_, r)| *r).collect();
    assert_eq!(ranks, BTreeSet::from([1, 2]));
}

fn a_panicking_task_is_its_own_error_with_rank_and_host(ex: &MpiPoolExecutor) {
    let err = ex.submit(panics_on_7, 7).unwrap().result().unwrap_err();
    let t = err.as_task().expect("a task error");
    assert!(t.is_panic(), "{err}");
    let rank = t.rank().expect("the rank");
    let info = ex
        .ranks()
        .iter()
        .find(|r| r.rank == rank)
        .expect("a worker rank");
    assert_eq!(t.host(), Some(info.host.as_str()));
    assert_eq!(t.pid(), Some(info.pid));
    assert!(
        t.panic_message()
            .unwrap()
            .contains(&format!("on rank {rank}")),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("rank {rank} on {}", info.host)),
        "{err}"
    );
    // In a map: that item's error; every other item's value.
    let got: Vec<spindle::Result<u64>> = ex
        .map_with(panics_on_7, 0..20u64, MapOptions::new().chunksize(5))
        .unwrap()
        .collect();
    for (i, r) in got.iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(*v, i as u64),
            Err(e) => {
                assert_eq!(i, 7, "{e}");
                assert_eq!(e.as_task().unwrap().task(), Some(7));
            }
        }
    }
    assert!(got[7].is_err());
    // The ranks go on serving.
    assert_eq!(ex.submit(square, 9).unwrap().result().unwrap(), 81);
}

fn the_same_generic_code_on_threads_processes_and_ranks(ex: &MpiPoolExecutor) {
    let threads = generic(
        &ThreadPoolExecutor::builder()
            .max_workers(2)
            .build()
            .unwrap(),
    )
    .unwrap();
    let processes = generic(
        &ProcessPoolExecutor::builder()
            .max_workers(2)
            .start_method(StartMethod::Forkserver)
            .build()
            .unwrap(),
    )
    .unwrap();
    let ranks = generic(ex).unwrap();
    assert_eq!(threads, processes);
    assert_eq!(threads, ranks);
    assert_eq!(ranks.last(), Some(&144));
}

fn a_spindle_child_of_a_rank_is_no_rank(ex: &MpiPoolExecutor) {
    for method in [StartMethod::Spawn, StartMethod::Forkserver] {
        let p = get_context(method).process().target(child_probe, ());
        p.start().unwrap();
        let (initialised, refused) = p.join().unwrap();
        assert!(
            !initialised,
            "{method:?}: a child of rank 0 initialised MPI"
        );
        assert!(refused.contains("not an MPI rank"), "{method:?}: {refused}");
    }
    for method in [0u8, 1] {
        let (initialised, refused) = ex
            .submit(probe_from_worker, method)
            .unwrap()
            .result()
            .unwrap()
            .unwrap();
        assert!(!initialised, "a child of a worker rank initialised MPI");
        assert!(refused.contains("not an MPI rank"), "{refused}");
    }
    assert_eq!(MpiPoolExecutor::current_rank(), Some(0));
}

/// The last case: it shuts the executor down.
fn shutdown_ends_every_rank(ex: MpiPoolExecutor) {
    let pids: Vec<u32> = ex.ranks().iter().map(|r| r.pid).collect();
    let local = ex.ranks().iter().all(|r| r.host == ex.ranks()[0].host);
    let last = ex.submit(square, 3).unwrap();
    ex.shutdown(true, false);
    assert_eq!(
        last.result().unwrap(),
        9,
        "shutdown(wait) lets submitted tasks end"
    );
    assert!(matches!(
        ex.submit(square, 1),
        Err(spindle::Error::Shutdown)
    ));
    assert!(ex.map(square, 0..3u64).is_err());
    assert_eq!(MpiPoolExecutor::current_rank(), None);
    assert!(
        matches!(
            MpiPoolExecutor::start(),
            Err(spindle::Error::InvalidState(_))
        ),
        "an executor starts once per process"
    );
    if local {
        for pid in pids {
            assert!(
                common::eventually(Duration::from_secs(20), || !common::running(pid)),
                "worker rank pid {pid} still runs after shutdown"
            );
        }
    }
    drop(ex);
}

type Case = (&'static str, fn(&MpiPoolExecutor));

fn main() {
    if !common::mpi::under_mpiexec() {
        let me = std::env::current_exe().expect("this test's path");
        let job = common::mpi::run(common::mpi::mpiexec(3, &me, &[]), Duration::from_secs(300));
        print!("{}", job.output);
        match job.status {
            Some(s) if s.success() => return,
            Some(s) => panic!("mpiexec -n 3 {}: {s}", me.display()),
            None => panic!("mpiexec -n 3 {}: no end within 300 s", me.display()),
        }
    }
    let started = Instant::now();
    let ex = match MpiPoolExecutor::builder()
        .initializer(remember, ("spindle-init".to_string(),))
        .start()
    {
        Ok(Some(ex)) => ex,
        Ok(None) => return, // a worker rank: it served until rank 0 shut the pool down
        Err(e) => panic!("MpiPoolExecutor::start: {e}"),
    };
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(240));
        eprintln!("watchdog: the MPI suite did not finish within 240 s: a hang");
        std::process::exit(3);
    });
    let cases: [Case; 7] = [
        (
            "values_and_order_across_three_ranks",
            values_and_order_across_three_ranks,
        ),
        ("two_worker_ranks_run_at_once", two_worker_ranks_run_at_once),
        ("starmap", starmap),
        (
            "the_initializer_ran_on_every_worker_rank",
            the_initializer_ran_on_every_worker_rank,
        ),
        (
            "a_panicking_task_is_its_own_error_with_rank_and_host",
            a_panicking_task_is_its_own_error_with_rank_and_host,
        ),
        (
            "the_same_generic_code_on_threads_processes_and_ranks",
            the_same_generic_code_on_threads_processes_and_ranks,
        ),
        (
            "a_spindle_child_of_a_rank_is_no_rank",
            a_spindle_child_of_a_rank_is_no_rank,
        ),
    ];
    println!("\nrunning {} tests (mpiexec -n 3)", cases.len() + 1);
    let (mut passed, mut failed) = (0, 0);
    let mut report = |name: &str, ok: bool| {
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
    };
    for (name, case) in cases {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&ex))).is_ok();
        report(name, ok);
    }
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        shutdown_ends_every_rank(ex)
    }))
    .is_ok();
    report("shutdown_ends_every_rank", ok);
    common::mpi::summary(passed, failed, started.elapsed());
    if failed > 0 {
        std::process::exit(1);
    }
}
