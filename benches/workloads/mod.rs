//! The workloads on the board. Each file builds one [`Group`] of contenders; a later issue adds
//! its workload (process start latency, `multiprocessing.Pool.map`, ...) as a new file and one
//! line in [`all`].

use crate::scoreboard::{Group, Options};

mod map;
mod round_trip;

/// Every workload, in the order the board runs them.
pub(crate) fn all(opts: &Options) -> Vec<Group> {
    vec![round_trip::group(opts), map::group(opts)]
}

/// The tiny task every thread-pool workload runs.
///
/// Its input goes through [`std::hint::black_box`], so that no contender's loop over it is
/// vectorised or folded into a closed form by the compiler: a task is opaque work, and the
/// board measures what it costs a pool to run one, not what LLVM can do with a multiply.
pub(crate) fn square(x: u64) -> u64 {
    let x = std::hint::black_box(x);
    x.wrapping_mul(x)
}

/// The sum of `square(i)` for `i` in `0..n`, wrapping like the contenders' sums; each
/// repetition checks its result against it, so no contender can skip work.
pub(crate) fn expected_sum(n: u64) -> u64 {
    let n = u128::from(n);
    let exact = n.saturating_sub(1) * n * (2 * n).saturating_sub(1) / 6;
    exact as u64
}

/// The error of a repetition whose sum is wrong.
pub(crate) fn check_sum(got: u64, n: u64) -> Result<(), String> {
    let want = expected_sum(n);
    if got == want {
        Ok(())
    } else {
        Err(format!("wrong sum of squares: {got}, expected {want}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoreboard::Role;

    #[test]
    fn expected_sum_matches_a_loop() {
        for n in [0u64, 1, 2, 3, 10, 1000, 100_000] {
            let looped = (0..n).fold(0u64, |acc, i| acc.wrapping_add(square(i)));
            assert_eq!(expected_sum(n), looped, "n = {n}");
        }
    }

    #[test]
    fn check_sum_rejects_a_wrong_sum() {
        assert!(check_sum(expected_sum(10), 10).is_ok());
        assert!(check_sum(expected_sum(10) + 1, 10).is_err());
    }

    #[test]
    fn every_workload_has_one_subject_first_and_distinct_names() {
        for quick in [true, false] {
            let opts = Options {
                quick,
                progress: false,
                ..Options::default()
            };
            let groups = all(&opts);
            assert!(!groups.is_empty());
            for g in &groups {
                let roles: Vec<Role> = g.contenders.iter().map(|c| c.role()).collect();
                assert_eq!(
                    roles.iter().filter(|r| **r == Role::Subject).count(),
                    1,
                    "{}",
                    g.id
                );
                assert_eq!(roles[0], Role::Subject, "{}", g.id);
                let mut names: Vec<&str> = g.contenders.iter().map(|c| c.name()).collect();
                names.sort_unstable();
                names.dedup();
                assert_eq!(names.len(), g.contenders.len(), "{}", g.id);
            }
        }
    }
}
