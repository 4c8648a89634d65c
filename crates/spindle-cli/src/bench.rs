//! `spindle bench`: the scoreboard, side by side with the peers in one run.

use std::path::Path;

pub(crate) fn run(quick: bool, only: Option<String>, out: &Path) -> spindle::Result<()> {
    let opts = spindle_bench::Options { quick, filter: only, ..Default::default() };
    let board = spindle_bench::run(&opts);
    println!("{}", board.to_text());
    std::fs::write(out, board.to_markdown())?;
    println!("written to {}", out.display());
    Ok(())
}
