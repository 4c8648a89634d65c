//! The seed notes' examples, one file each. Every file is both a runnable example
//! (`cargo run -p spindle-examples --example NAME`) and a module of this library, so that
//! `spindle tour` runs exactly the code a reader sees.
