//! `spindle bench`: the scoreboard, side by side with the peers in one run.

use std::path::Path;

pub(crate) fn run(quick: bool, only: Option<String>, out: &Path) -> spindle::Result<()> {
    let command: Vec<String> = std::env::args().collect();
    let opts = spindle_bench::Options {
        quick,
        filter: only,
        command: Some(command.join(" ")),
        ..Default::default()
    };
    let board = spindle_bench::run(&opts);
    print!("{}", board.to_text());
    board.write_markdown(out)?;
    println!("written to {}", out.display());
    Ok(())
}
