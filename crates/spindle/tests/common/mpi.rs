//! Launching MPI jobs from the MPI test binaries.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Whether this process was started by Open MPI's `mpiexec` (read in `main`, never before).
pub(crate) fn under_mpiexec() -> bool {
    std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some()
}

/// `mpiexec -n N` with the flags CI needs: oversubscribed (2 cores, 3 ranks), as root, and
/// no single-copy mechanism (containers forbid `process_vm_readv`).
pub(crate) fn mpiexec(n: u32, program: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("mpiexec");
    c.args([
        "-n",
        &n.to_string(),
        "--oversubscribe",
        "--allow-run-as-root",
    ])
    .arg(program)
    .args(args)
    .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
    c
}

/// What a job printed and how it ended.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) status: Option<ExitStatus>,
    /// Standard output then standard error.
    pub(crate) output: String,
    /// When each line of standard output arrived, from the start.
    pub(crate) lines: Vec<(Duration, String)>,
    pub(crate) took: Duration,
}

impl Job {
    /// When the first line of standard output containing `text` arrived.
    pub(crate) fn when(&self, text: &str) -> Option<Duration> {
        self.lines
            .iter()
            .find(|(_, l)| l.contains(text))
            .map(|(t, _)| *t)
    }
}

/// Runs `cmd` to its end, killing it after `limit` (then `status` is `None`: a hang).
pub(crate) fn run(mut cmd: Command, limit: Duration) -> Job {
    use std::io::{BufRead, Read};
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mpiexec (is Open MPI installed?)");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let out = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send((started.elapsed(), line));
        }
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for mpiexec") {
            break Some(s);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = started.elapsed();
    let _ = out.join();
    let lines: Vec<(Duration, String)> = rx.try_iter().collect();
    let mut output: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    output.push_str(&err.join().unwrap_or_default());
    Job {
        status,
        output,
        lines,
        took,
    }
}

/// The libtest-like closing line that CI's summary counts.
pub(crate) fn summary(passed: usize, failed: usize, took: Duration) {
    let word = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {word}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 \
         filtered out; finished in {:.2}s\n",
        took.as_secs_f64()
    );
}
