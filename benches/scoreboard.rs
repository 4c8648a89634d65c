//! The scoreboard's model: options, groups of contenders, results, and the run loop.

use std::io::Write;
use std::time::Duration;

use crate::harness::{Measurement, Plan, Unit};
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
    /// (quick) or 1 s, at most 1000 times (spawns at most 200 or 500). The CPython thread-pool
    /// peers run exactly `min(reps, 5)`; the CPython process peers a fixed count per start
    /// method, given in their workload's notes.
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

/// Whose figures these are: spindle's own (the subject of ratios), a peer's, or a reference
/// figure that an aim is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// spindle itself; peers' ratios are taken against a subject. A group may have several
    /// (one per start method, say); each peer then names its own ([`Row::versus`]).
    Subject,
    /// A contender spindle is compared with.
    Peer,
    /// A figure shown for an aim's sake (such as one socket round trip), compared with
    /// nothing; it always runs, like the subjects.
    Reference,
}

/// The rule of an [`Aim`].
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// On a peer's row: spindle's speed-up against it (peer / subject) is at least this;
    /// 0.77 means "no slower than 1.3× the peer".
    MinSpeedup(f64),
    /// On any row: its own median per operation (seconds or bytes) is at most this.
    AtMost(f64),
    /// On any row: its own median is at most the sum of the medians of these rows of the
    /// same group (named by contender), such as "fork's start plus one round trip".
    AtMostSumOf(Vec<String>),
}

/// A target from the issue, attached to the row it is checked on.
#[derive(Debug, Clone, PartialEq)]
pub struct Aim {
    /// What must hold.
    pub rule: Rule,
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
    /// Subject, peer or reference.
    pub role: Role,
    /// The subject a peer is compared with, by name; `None` takes the group's first subject.
    pub versus: Option<String>,
    /// The issue's target checked on this row, if any.
    pub aim: Option<Aim>,
    /// Its repetition times, or why there are none.
    pub outcome: Result<Measurement, NotMeasured>,
}

impl Row {
    /// Statistics of the seconds (or bytes) per operation; `None` when not measured.
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
    /// What every row measures: time or memory.
    pub unit: Unit,
    /// The rows, a subject first.
    pub rows: Vec<Row>,
}

impl GroupResult {
    /// spindle's first row, if it ran.
    pub fn subject(&self) -> Option<&Row> {
        self.rows.iter().find(|r| r.role == Role::Subject)
    }

    /// Whether the group compares several spindle rows (each peer then names its own).
    pub fn several_subjects(&self) -> bool {
        self.rows.iter().filter(|r| r.role == Role::Subject).count() > 1
    }

    /// The subject `row` is compared with: the one it names, or the group's first. `None`
    /// for a reference row, or when the named subject is not on the board.
    pub fn subject_of(&self, row: &Row) -> Option<&Row> {
        match (row.role, &row.versus) {
            (Role::Reference, _) => None,
            (_, Some(name)) => self
                .rows
                .iter()
                .find(|r| r.role == Role::Subject && &r.contender == name),
            (_, None) => self.subject(),
        }
    }

    /// How many times better spindle is than `row`: `row`'s median per operation divided by
    /// its subject's (time or bytes; above 1 spindle is faster or smaller). `None` when either
    /// was not measured, or for a reference row.
    pub fn speedup(&self, row: &Row) -> Option<f64> {
        let ours = self.subject_of(row)?.per_op()?.median;
        let theirs = row.per_op()?.median;
        (ours > 0.0).then(|| theirs / ours)
    }

    /// The bound that `row`'s own median must stay under (seconds or bytes), for an
    /// [`Rule::AtMost`] or [`Rule::AtMostSumOf`] aim; `None` for a speed-up aim, no aim, or
    /// when a row of the sum was not measured.
    pub fn aim_limit(&self, row: &Row) -> Option<f64> {
        match &row.aim.as_ref()?.rule {
            Rule::MinSpeedup(_) => None,
            Rule::AtMost(limit) => Some(*limit),
            Rule::AtMostSumOf(names) => names.iter().try_fold(0.0, |sum, name| {
                let r = self.rows.iter().find(|r| &r.contender == name)?;
                Some(sum + r.per_op()?.median)
            }),
        }
    }

    /// Whether `row`'s aim is met; `None` when it has no aim or a figure it needs is missing.
    pub fn aim_met(&self, row: &Row) -> Option<bool> {
        match &row.aim.as_ref()?.rule {
            Rule::MinSpeedup(min) => Some(self.speedup(row)? >= *min),
            Rule::AtMost(_) | Rule::AtMostSumOf(_) => {
                Some(row.per_op()?.median <= self.aim_limit(row)?)
            }
        }
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

    /// No output (for tests that call a workload directly).
    #[cfg(test)]
    pub(crate) fn quiet() -> Progress {
        Progress { enabled: false }
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
    versus: Option<String>,
    aim: Option<Aim>,
    on_board_thread: bool,
    run: Runner,
}

impl std::fmt::Debug for Contender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contender")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("versus", &self.versus)
            .field("aim", &self.aim)
            .field("on_board_thread", &self.on_board_thread)
            .finish()
    }
}

impl Contender {
    fn new<F>(name: &str, role: Role, run: F) -> Contender
    where
        F: FnOnce(Progress) -> Result<Measurement, NotMeasured> + Send + 'static,
    {
        Contender {
            name: name.to_string(),
            role,
            versus: None,
            aim: None,
            on_board_thread: false,
            run: Box::new(run),
        }
    }

    /// spindle's contender.
    pub(crate) fn subject<F>(name: &str, run: F) -> Contender
    where
        F: FnOnce(Progress) -> Result<Measurement, NotMeasured> + Send + 'static,
    {
        Contender::new(name, Role::Subject, run)
    }

    /// A peer.
    pub(crate) fn peer<F>(name: &str, run: F) -> Contender
    where
        F: FnOnce(Progress) -> Result<Measurement, NotMeasured> + Send + 'static,
    {
        Contender::new(name, Role::Peer, run)
    }

    /// A reference figure an aim is built from (see [`Role::Reference`]).
    pub(crate) fn reference<F>(name: &str, run: F) -> Contender
    where
        F: FnOnce(Progress) -> Result<Measurement, NotMeasured> + Send + 'static,
    {
        Contender::new(name, Role::Reference, run)
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

    /// The subject this peer is compared with.
    #[cfg(test)]
    pub(crate) fn versus_name(&self) -> Option<&str> {
        self.versus.as_deref()
    }

    /// Its aim.
    #[cfg(test)]
    pub(crate) fn aim_of(&self) -> Option<&Aim> {
        self.aim.as_ref()
    }

    /// Compares this peer with the subject named `subject` (in a group of several subjects).
    pub(crate) fn versus(mut self, subject: &str) -> Contender {
        self.versus = Some(subject.to_string());
        self
    }

    /// Attaches the issue's target against this peer: spindle's speed-up at least
    /// `min_speedup`.
    pub(crate) fn aim(self, min_speedup: f64, text: &str) -> Contender {
        self.aim_rule(Rule::MinSpeedup(min_speedup), text)
    }

    /// Runs this contender on the thread that runs the board (the main thread of `cargo bench`
    /// and `spindle bench`) instead of a thread of its own, for a measurement that depends on
    /// the thread it is made from: spindle creates a child process directly on the main
    /// thread, and from any other thread through its launcher thread. A panic is still a
    /// failed row; a hang cannot be abandoned there, so after the timeout the board says so
    /// and ends the process.
    pub(crate) fn on_board_thread(mut self) -> Contender {
        self.on_board_thread = true;
        self
    }

    /// Whether it runs on the board's thread.
    #[cfg(test)]
    pub(crate) fn runs_on_board_thread(&self) -> bool {
        self.on_board_thread
    }

    /// Attaches an aim with any rule.
    pub(crate) fn aim_rule(mut self, rule: Rule, text: &str) -> Contender {
        self.aim = Some(Aim {
            rule,
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
    pub(crate) unit: Unit,
    pub(crate) contenders: Vec<Contender>,
}

impl Group {
    /// A group of timed contenders.
    pub(crate) fn new(id: &str, title: &str) -> Group {
        Group {
            id: id.to_string(),
            title: title.to_string(),
            notes: Vec::new(),
            unit: Unit::Time,
            contenders: Vec::new(),
        }
    }

    /// What every contender measures (time unless said otherwise).
    pub(crate) fn unit(mut self, unit: Unit) -> Group {
        self.unit = unit;
        self
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
            let outcome = if c.on_board_thread {
                on_this_thread(c.run, progress, opts.contender_timeout(), &c.name)
            } else {
                guarded(c.run, progress, opts.contender_timeout())
            };
            let outcome = in_unit(outcome, group.unit);
            progress.say(&format!(" {}\n", crate::report::progress_line(&outcome)));
            rows.push(Row {
                contender: c.name,
                role: c.role,
                versus: c.versus,
                aim: c.aim,
                outcome,
            });
        }
        groups.push(GroupResult {
            id: group.id,
            title: group.title,
            notes: group.notes,
            unit: group.unit,
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

/// Runs one contender on this thread (see [`Contender::on_board_thread`]): a panic becomes a
/// failed row; a hang ends the process after `timeout`, with a message, since this thread
/// cannot be abandoned.
fn on_this_thread(
    run: Runner,
    progress: Progress,
    timeout: Duration,
    name: &str,
) -> Result<Measurement, NotMeasured> {
    let (done, finished) = crossbeam_channel::bounded::<()>(1);
    let name = name.to_string();
    let watchdog = std::thread::Builder::new()
        .name("bench-watchdog".to_string())
        .spawn(move || {
            if let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                finished.recv_timeout(timeout)
            {
                eprintln!(
                    "\nscoreboard: {name}: no result after {} s on the board's own thread; \
                     it cannot be abandoned there, so the board ends",
                    timeout.as_secs()
                );
                std::process::exit(2);
            }
        });
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(progress)));
    let _ = done.send(());
    if let Ok(handle) = watchdog {
        let _ = handle.join();
    }
    outcome.unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-string payload".to_string());
        Err(NotMeasured::Failed(format!("panicked: {msg}")))
    })
}

/// A measurement in another unit than its group's is a bug of the workload: a failed row,
/// rather than bytes printed as seconds.
fn in_unit(
    outcome: Result<Measurement, NotMeasured>,
    unit: Unit,
) -> Result<Measurement, NotMeasured> {
    match outcome {
        Ok(m) if m.unit() != unit => Err(NotMeasured::Failed(format!(
            "measured {:?} in a {unit:?} workload",
            m.unit()
        ))),
        other => other,
    }
}

/// Keeps the groups and contenders the filter selects (spindle's rows and the reference rows
/// always stay, so that ratios and aims can be computed).
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
                .retain(|c| c.role != Role::Peer || opts.matches(&c.name));
            Some(g)
        })
        .collect()
}

#[cfg(test)]
mod tests;
