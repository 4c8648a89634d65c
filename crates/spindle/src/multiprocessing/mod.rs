//! `multiprocessing`: run Rust functions in other processes, with Python's names.
//!
//! ```
//! use spindle::multiprocessing::{Process, StartMethod};
//!
//! fn work(name: String, n: u32) -> String {
//!     format!("{name} did {n}")
//! }
//!
//! for method in StartMethod::ALL {
//!     let p = Process::builder().start_method(method).target(work, ("A".to_string(), 3));
//!     p.start().unwrap();
//!     assert_eq!(p.join().unwrap(), "A did 3");
//! }
//! ```
//!
//! How a spawned child knows what to run, and how the fork server works, is told in
//! `README.md` beside this file.

pub(crate) mod bootstrap;
mod context;
mod forkserver;
mod identity;
mod process;
mod reduction;
mod start;
mod target;

pub mod bench;

pub use context::{
    cpu_count, get_all_start_methods, get_context, get_start_method, set_start_method,
    set_start_method_force, Context, StartMethod,
};
pub use identity::{active_children, current_process, parent_process, ProcessInfo};
pub use process::{Builder, Process};
pub use target::Target;

#[cfg(test)]
mod tests;
