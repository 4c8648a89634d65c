//! The scoreboard's model: options, groups of contenders, results, and the run loop.

use std::io::Write;
use std::time::Duration;

use crate::harness::{Measurement, Plan};
use crate::machine::Machine;
use crate::stats::Summary;
use crate::workloads;

/// What to run and how; the CLI fills it from `spindle bench [--quick] [--filter F]`.
///
/// ```
/// use spindle_bench::Options;
/// let opts = Options { quick: true, filter: Some("map".into()), ..Options::default() };
/// assert_eq!(opts.workers, 2);
/// assert_eq!(opts.plan().reps, 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Few repetitions and smaller sizes, for CI (the whole board in well under a minute).
    pub quick: bool,
    /// Run only the workloads whose id or title contains this text (case-insensitive), or only
    /// the contenders whose name contains it (spindle's own contender always runs, so that
    /// ratios can be computed).
    pub filter: Option<String>,
    /// The fewest timed repetitions per contender; `None` takes 5 in quick mode and 10
    /// otherwise. Fast contenders repeat more, until their repetitions add up to 0.25 s
    /// (quick) or 1 s, at most 1000 times; the CPython peers run exactly `min(reps, 5)`.
    pub reps: Option<usize>,
    /// Worker threads of every pool, the same for every contender.
    pub workers: usize,
    /// The Python interpreter that runs the CPython peers; a missing one skips them.
    pub python: String,
    /// Stream progress to standard error while running.
    pub progress: bool,
    /// The command line printed in the report; `None` takes this process's arguments.
    pub command: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            quick: false,
            filter: None,
            reps: None,
            workers: 2,
            python: "python3".to_string(),
            progress: true,
            command: None,
        }
    }
}

impl Options {
    /// The repetitions every Rust contender runs: one untimed warm-up, then at least `reps`
    /// timed ones (see [`Options::reps`]).
    pub fn plan(&self) -> Plan {
        let reps = self.reps.unwrap_or(if self.quick { 5 } else { 10 }).max(1);
        let min_time = Duration::from_millis(if self.quick { 250 } else { 1000 });
        Plan {
            warmup: 1,
            reps,
            min_time,
            max_reps: reps.max(1000),
        }
    }

    /// Picks `quick` in quick mode and `full` otherwise.
    pub(crate) fn size(&self, quick: u64, full: u64) -> u64 {
        if self.quick {
            quick
        } else {
            full
        }
    }

    /// How long one contender may take before the board gives up on it and goes on.
    fn contender_timeout(&self) -> Duration {
        Duration::from_secs(if self.quick { 120 } else { 600 })
    }

    fn matches(&self, text: &str) -> bool {
        match &self.filter {
            None => true,
            Some(f) => text.to_lowercase().contains(&f.to_lowercase()),
        }
    }
}

/// Whose figures these are: spindle's own (the subject of every ratio) or a peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// spindle itself; every peer's ratio is taken against this contender.
    Subject,
    /// A contender spindle is compared with.
    Peer,
}

/// A target from the issue: spindle's speed-up against one peer must be at least `min_speedup`.
#[derive(Debug, Clone, PartialEq)]
pub struct Aim {
    /// The smallest acceptable speed-up (peer time / spindle time); 0.83 means "no slower than
    /// 1.2× the peer".
    pub min_speedup: f64,
    /// How the issue words it.
    pub text: String,
}

/// Why a contender has no figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotMeasured {
    /// It could not run here (for example no `python3`); not an error.
    Skipped(String),
    /// It ran and failed (a wrong result, an error from the library, a crashed peer script).
    Failed(String),
}

/// One contender's line on the board.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Its name, such as "crossbeam pool".
    pub contender: String,
    /// Subject or peer.
    pub role: Role,
    /// The issue's target against this peer, if any.
    pub aim: Option<Aim>,
    /// Its repetition times, or why there are none.
    pub outcome: Result<Measurement, NotMeasured>,
}

impl Row {
    /// Statistics of the seconds per operation; `None` when not measured.
    pub fn per_op(&self) -> Option<Summary> {
        self.outcome.as_ref().ok().and_then(Measurement::per_op)
    }
}

/// One workload with every contender's row.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupResult {
    /// Short id, such as `round-trip`.
    pub id: String,
    /// Title, such as "submit-and-wait round trip".
    pub title: String,
    /// What is measured and how to read it.
    pub notes: Vec<String>,
    /// The rows, spindle's first.
    pub rows: Vec<Row>,
}

impl GroupResult {
    /// spindle's own row, if it ran.
    pub fn subject(&self) -> Option<&Row> {
        self.rows.iter().find(|r| r.role == Role::Subject)
    }

    /// How many times faster spindle is than `row` (its median time per operation divided by
    /// spindle's): above 1 spindle is faster. `None` when either was not measured.
    pub fn speedup(&self, row: &Row) -> Option<f64> {
        let ours = self.subject()?.per_op()?.median;
        let theirs = row.per_op()?.median;
        (ours > 0.0).then(|| theirs / ours)
    }

    /// Whether spindle meets `row`'s aim; `None` when it has no aim or was not measured.
    pub fn aim_met(&self, row: &Row) -> Option<bool> {
        let aim = row.aim.as_ref()?;
        Some(self.speedup(row)? >= aim.min_speedup)
    }
}

/// The result of one run: the machine, the settings and every workload's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Scoreboard {
    /// Where and when it ran.
    pub machine: Machine,
    /// The command line that produced it.
    pub command: String,
    /// Whether it ran in quick mode.
    pub quick: bool,
    /// Worker threads of every pool.
    pub workers: usize,
    /// Repetitions of every Rust contender (the CPython peers may run fewer; see each row).
    pub plan: Plan,
    /// One result per workload, in the order run.
    pub groups: Vec<GroupResult>,
}

impl Scoreboard {
    /// The rows whose aim spindle missed, as (workload id, contender) pairs.
    pub fn missed_aims(&self) -> Vec<(&str, &str)> {
        self.groups
            .iter()
            .flat_map(|g| {
                g.rows
                    .iter()
                    .filter(|r| g.aim_met(r) == Some(false))
                    .map(|r| (g.id.as_str(), r.contender.as_str()))
            })
            .collect()
    }
}

/// Reports repetitions of the contender being measured to standard error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Progress {
    enabled: bool,
}

impl Progress {
    /// Called after each timed repetition: a dot for each of the first ten.
    pub(crate) fn rep(&self, index: usize, _took: Duration) {
        if self.enabled && index <= 10 {
            eprint!(".");
            let _ = std::io::stderr().flush();
        }
    }

    fn say(&self, text: &str) {
        if self.enabled {
            eprint!("{text}");
            let _ = std::io::stderr().flush();
        }
    }
}

type Runner = Box<dyn FnOnce(Progress) -> Result<Measurement, NotMeasured> + Send>;

/// One contender of a workload: a name, a role and the code that measures it. The code runs
/// only when the board reaches it, so each contender builds its pool, measures and drops it
/// before the next one starts.
pub(crate) struct Contender {
    name: String,
    role: Role,
    aim: Option<Aim>,
    run: Runner,
}

impl std::fmt::Debug for Contender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contender")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish()
    }
}

impl Contender {
    /// spindle's contender.
    pub(crate) fn subject<F>(name: &str, run: F) -> Contender
    where
        F: FnOnce(Progress) -> Result<Measurement, NotMeasured> + Send + 'static,
    {
        Contender {
            name: name.to_string(),
            role: Role::Subject,
            aim: None,
            run: Box::new(run),
        }
    }

    /// A peer.
    pub(crate) fn peer<F>(name: &str, run: F) -> Contender
    where
        F: FnOnce(Progress) -> Result<Measurement, NotMeasured> + Send + 'static,
    {
        Contender {
            name: name.to_string(),
            role: Role::Peer,
            aim: None,
            run: Box::new(run),
        }
    }

    /// Its name.
    #[cfg(test)]
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Its role.
    #[cfg(test)]
    pub(crate) fn role(&self) -> Role {
        self.role
    }

    /// Attaches the issue's target against this peer.
    pub(crate) fn aim(mut self, min_speedup: f64, text: &str) -> Contender {
        self.aim = Some(Aim {
            min_speedup,
            text: text.to_string(),
        });
        self
    }
}

/// One workload: the unit later issues add to the board (see [`workloads::all`]).
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) notes: Vec<String>,
    pub(crate) contenders: Vec<Contender>,
}

impl Group {
    pub(crate) fn new(id: &str, title: &str) -> Group {
        Group {
            id: id.to_string(),
            title: title.to_string(),
            notes: Vec::new(),
            contenders: Vec::new(),
        }
    }

    pub(crate) fn note(mut self, text: impl Into<String>) -> Group {
        self.notes.push(text.into());
        self
    }

    pub(crate) fn contender(mut self, c: Contender) -> Group {
        self.contenders.push(c);
        self
    }
}

/// Runs every selected workload, contender after contender, and returns the board.
///
/// Progress goes to standard error when `opts.progress` is set. Nothing here panics on a
/// failing contender: its row says why it has no figures.
///
/// ```no_run
/// let board = spindle_bench::run(&spindle_bench::Options { quick: true, ..Default::default() });
/// println!("{}", board.to_text());
/// std::fs::write("BENCHMARKS.md", board.to_markdown()).unwrap();
/// ```
pub fn run(opts: &Options) -> Scoreboard {
    let progress = Progress {
        enabled: opts.progress,
    };
    let machine = Machine::detect(&opts.python);
    let command = opts
        .command
        .clone()
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    let selected = select(workloads::all(opts), opts);
    let total: usize = selected.iter().map(|g| g.contenders.len()).sum();
    let mut done = 0;
    let mut groups = Vec::new();
    for group in selected {
        let mut rows = Vec::new();
        for c in group.contenders {
            done += 1;
            progress.say(&format!("[{done}/{total}] {} · {} ", group.id, c.name));
            let outcome = guarded(c.run, progress, opts.contender_timeout());
            progress.say(&format!(" {}\n", crate::report::progress_line(&outcome)));
            rows.push(Row {
                contender: c.name,
                role: c.role,
                aim: c.aim,
                outcome,
            });
        }
        groups.push(GroupResult {
            id: group.id,
            title: group.title,
            notes: group.notes,
            rows,
        });
    }
    Scoreboard {
        machine,
        command,
        quick: opts.quick,
        workers: opts.workers,
        plan: opts.plan(),
        groups,
    }
}

/// Runs one contender on its own thread, so that a panic becomes a failed row and a hang
/// (a deadlocked pool) becomes a failed row after `timeout` instead of a board that never
/// ends. A hung contender's thread is left behind; the process ends when the board is done.
fn guarded(run: Runner, progress: Progress, timeout: Duration) -> Result<Measurement, NotMeasured> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let spawned = std::thread::Builder::new()
        .name("bench-contender".to_string())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(progress)));
            let _ = tx.send(outcome);
        });
    let handle = spawned.map_err(|e| NotMeasured::Failed(format!("cannot start a thread: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(outcome)) => {
            let _ = handle.join();
            outcome
        }
        Ok(Err(payload)) => {
            let _ = handle.join();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string payload".to_string());
            Err(NotMeasured::Failed(format!("panicked: {msg}")))
        }
        Err(_) => Err(NotMeasured::Failed(format!(
            "no result after {} s; abandoned (the contender may be deadlocked)",
            timeout.as_secs()
        ))),
    }
}

/// Keeps the groups and contenders the filter selects.
fn select(groups: Vec<Group>, opts: &Options) -> Vec<Group> {
    groups
        .into_iter()
        .filter_map(|mut g| {
            if opts.matches(&g.id) || opts.matches(&g.title) {
                return Some(g);
            }
            if !g.contenders.iter().any(|c| opts.matches(&c.name)) {
                return None;
            }
            g.contenders
                .retain(|c| c.role == Role::Subject || opts.matches(&c.name));
            Some(g)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str, names: &[&str]) -> Group {
        let mut g = Group::new(id, &format!("title of {id}"));
        for (i, name) in names.iter().enumerate() {
            let run = |_| Err(NotMeasured::Skipped("test".to_string()));
            g = g.contender(if i == 0 {
                Contender::subject(name, run)
            } else {
                Contender::peer(name, run)
            });
        }
        g
    }

    fn picked(filter: Option<&str>) -> Vec<(String, Vec<String>)> {
        let opts = Options {
            filter: filter.map(str::to_string),
            ..Options::default()
        };
        let groups = vec![
            group("round-trip", &["spindle", "crossbeam", "CPython"]),
            group("map", &["spindle", "rayon"]),
        ];
        select(groups, &opts)
            .into_iter()
            .map(|g| (g.id, g.contenders.into_iter().map(|c| c.name).collect()))
            .collect()
    }

    #[test]
    fn no_filter_keeps_everything() {
        assert_eq!(picked(None).len(), 2);
    }

    #[test]
    fn a_workload_filter_keeps_its_whole_group() {
        assert_eq!(
            picked(Some("MAP")),
            vec![(
                "map".to_string(),
                vec!["spindle".to_string(), "rayon".to_string()]
            )]
        );
    }

    #[test]
    fn a_contender_filter_keeps_spindle_beside_it() {
        assert_eq!(
            picked(Some("cpython")),
            vec![(
                "round-trip".to_string(),
                vec!["spindle".to_string(), "CPython".to_string()]
            )]
        );
    }

    #[test]
    fn a_filter_matching_nothing_keeps_nothing() {
        assert!(picked(Some("no such thing")).is_empty());
    }

    #[test]
    fn a_panicking_contender_is_a_failed_row() {
        let run: Runner = Box::new(|_| panic!("pool exploded"));
        let out = guarded(run, Progress { enabled: false }, Duration::from_secs(30));
        assert_eq!(
            out,
            Err(NotMeasured::Failed("panicked: pool exploded".to_string()))
        );
    }

    #[test]
    fn a_hung_contender_is_abandoned_after_the_timeout() {
        let (_keep, rx) = crossbeam_channel::bounded::<()>(0);
        let run: Runner = Box::new(move |_| {
            // Blocks until the test ends (the sender is dropped then).
            let _ = rx.recv();
            Err(NotMeasured::Skipped(
                "unreachable while the test runs".to_string(),
            ))
        });
        let out = guarded(run, Progress { enabled: false }, Duration::from_millis(50));
        assert!(
            matches!(&out, Err(NotMeasured::Failed(m)) if m.contains("abandoned")),
            "{out:?}"
        );
    }

    #[test]
    fn a_measured_contender_comes_back_whole() {
        let run: Runner = Box::new(|_| {
            Ok(Measurement {
                ops: 3,
                times: vec![Duration::from_millis(1)],
            })
        });
        let out = guarded(run, Progress { enabled: false }, Duration::from_secs(30));
        assert_eq!(
            out,
            Ok(Measurement {
                ops: 3,
                times: vec![Duration::from_millis(1)]
            })
        );
    }

    #[test]
    fn plan_follows_mode_and_override() {
        let full = Options::default().plan();
        assert_eq!(
            (full.warmup, full.reps, full.min_time),
            (1, 10, Duration::from_secs(1))
        );
        assert_eq!(full.max_reps, 1000);
        assert_eq!(
            Options {
                quick: true,
                ..Options::default()
            }
            .plan()
            .reps,
            5
        );
        assert_eq!(
            Options {
                reps: Some(3),
                ..Options::default()
            }
            .plan()
            .reps,
            3
        );
        assert_eq!(
            Options {
                reps: Some(0),
                ..Options::default()
            }
            .plan()
            .reps,
            1
        );
    }

    #[test]
    fn a_board_with_no_groups_runs_nothing() {
        let opts = Options {
            filter: Some("no such thing".into()),
            progress: false,
            ..Options::default()
        };
        let board = run(&opts);
        assert!(board.groups.is_empty());
        assert_eq!(board.workers, 2);
    }
}
