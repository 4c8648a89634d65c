//! The scoreboard's workloads and its report.
