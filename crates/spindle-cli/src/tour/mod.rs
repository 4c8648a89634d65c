//! `spindle tour`: the seed notes, section by section. Each section quotes what the notes claim,
//! runs the example that shows it (the very code in `examples/`), and sets the measured wall
//! time beside the time the notes compare it with.

use std::time::{Duration, Instant};

use crate::style;

mod asyncio;
mod exchange;
mod pool;
mod processes;
mod threads;

/// What a section measured: its wall time and the times the notes compare it with.
pub(crate) struct Timing {
    /// What was measured, e.g. "measured" or "measured (spawn)".
    pub(crate) label: String,
    pub(crate) measured: Duration,
    /// `(label, duration)` rows, e.g. ("one after another", 4 s).
    pub(crate) compare: Vec<(&'static str, Duration)>,
}

/// One section of the notes.
pub(crate) struct Section {
    pub(crate) title: &'static str,
    /// The notes' own words for what the example should show.
    pub(crate) claim: &'static str,
    /// The example file that holds the code, when there is one.
    pub(crate) source: Option<&'static str>,
    /// Where spindle puts the Python names of this section.
    pub(crate) names: &'static [(&'static str, &'static str)],
    pub(crate) run: fn(&Pace) -> spindle::Result<Vec<Timing>>,
}

/// How long the notes' `time.sleep(n)` lasts here: `n` seconds, or `n / 10` with `--quick`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pace {
    scale: f64,
}

impl Pace {
    /// The notes' `time.sleep(seconds)`, at this pace.
    pub(crate) fn sleep(self, seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds * self.scale)
    }

    /// An amount of work, `n` at full pace or `n / 10` with `--quick`.
    pub(crate) fn work(self, n: f64) -> u64 {
        (n * self.scale) as u64
    }
}

/// Runs `f` and returns its value and wall time.
pub(crate) fn timed<T>(f: impl FnOnce() -> spindle::Result<T>) -> spindle::Result<(T, Duration)> {
    let start = Instant::now();
    let value = f()?;
    Ok((value, start.elapsed()))
}

fn sections() -> Vec<Section> {
    let mut all = threads::sections();
    all.extend(processes::sections());
    all.extend(exchange::sections());
    all.extend(pool::sections());
    all.extend(asyncio::sections());
    all
}

pub(crate) fn run(quick: bool, only: Option<&str>) -> spindle::Result<()> {
    let pace = Pace {
        scale: if quick { 0.1 } else { 1.0 },
    };
    let only = only.map(str::to_lowercase);
    let chosen: Vec<Section> = sections()
        .into_iter()
        .filter(|s| {
            only.as_ref()
                .is_none_or(|o| s.title.to_lowercase().contains(o))
        })
        .collect();
    if chosen.is_empty() {
        return Err(spindle::Error::InvalidArgument(format!(
            "no tour section matches {:?}",
            only.unwrap_or_default()
        )));
    }
    println!(
        "{}",
        style::heading("spindle tour: Python's concurrency notes, run in Rust")
    );
    if quick {
        println!(
            "{}",
            style::dim("--quick: every sleep of the notes lasts a tenth as long")
        );
    }
    let total = Instant::now();
    for (i, section) in chosen.iter().enumerate() {
        print_section(i + 1, section, pace)?;
    }
    println!();
    println!(
        "{} {}",
        style::good("tour done in"),
        style::secs(total.elapsed()).trim()
    );
    Ok(())
}

fn print_section(number: usize, section: &Section, pace: Pace) -> spindle::Result<()> {
    let title = format!("{number}. {}", section.title);
    println!();
    println!(
        "{}",
        style::heading(&format!(
            "── {title} {}",
            "─".repeat(60usize.saturating_sub(title.len()))
        ))
    );
    println!("  {} {}", style::note("notes:"), section.claim);
    for (python, rust) in section.names {
        println!("  {} {python:<34} → {rust}", style::dim("name: "));
    }
    if let Some(src) = section.source {
        println!("  {} {src}", style::dim("code: "));
    }
    println!("{}", style::dim("  ── output"));
    let timings = (section.run)(&pace)?;
    if !timings.is_empty() {
        println!("{}", style::dim("  ── timing"));
    }
    for t in timings {
        println!("  {:<34}{}", t.label, style::good(&style::secs(t.measured)));
        for (label, d) in &t.compare {
            let ratio = d.as_secs_f64() / t.measured.as_secs_f64().max(f64::MIN_POSITIVE);
            let verdict = if ratio >= 1.05 {
                format!("measured is {ratio:.1}× faster")
            } else if ratio > 0.95 {
                "about the same".to_owned()
            } else {
                format!("measured is {:.1}× slower (a busy machine?)", 1.0 / ratio)
            };
            println!(
                "    {label:<32}{}   {}",
                style::secs(*d),
                style::dim(&verdict)
            );
        }
    }
    Ok(())
}
