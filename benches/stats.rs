//! Order statistics of a set of repetition times: median, quartiles, extremes, spread.
//!
//! Quartiles use linear interpolation between the closest ranks (Hyndman & Fan type 7, the
//! default of NumPy's `percentile` and R's `quantile`). The spread printed on the scoreboard
//! is **half the interquartile range relative to the median**: "±3.1%" means that the middle
//! half of the repetitions lies within a band 6.2% of the median wide. It is robust against
//! one slow repetition (a neighbour's compile job), unlike min–max, which is kept as well.

/// Median, quartiles and extremes of a non-empty sample.
///
/// ```
/// use spindle_bench::Summary;
/// let s = Summary::of(&[4.0, 1.0, 3.0, 2.0, 5.0]).unwrap();
/// assert_eq!(s.median, 3.0);
/// assert_eq!((s.q1, s.q3), (2.0, 4.0));
/// assert!((s.spread() - 1.0 / 3.0).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The number of values.
    pub count: usize,
    /// The smallest value.
    pub min: f64,
    /// The first quartile (25th percentile).
    pub q1: f64,
    /// The median (50th percentile).
    pub median: f64,
    /// The third quartile (75th percentile).
    pub q3: f64,
    /// The largest value.
    pub max: f64,
}

impl Summary {
    /// Summarises `values`; `None` when it is empty or holds a NaN.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            count: sorted.len(),
            min: sorted[0],
            q1: quantile(&sorted, 0.25),
            median: quantile(&sorted, 0.5),
            q3: quantile(&sorted, 0.75),
            max: sorted[sorted.len() - 1],
        })
    }

    /// Half the interquartile range divided by the median (0.031 prints as "±3.1%").
    ///
    /// Zero when the median is zero.
    pub fn spread(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.q3 - self.q1) / 2.0 / self.median
        }
    }

    /// The range (max − min) divided by the median.
    pub fn range(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / self.median
        }
    }

    /// The same summary with every value multiplied by `factor` (for example seconds per
    /// repetition to seconds per task).
    pub fn scaled(&self, factor: f64) -> Summary {
        Summary {
            count: self.count,
            min: self.min * factor,
            q1: self.q1 * factor,
            median: self.median * factor,
            q3: self.q3 * factor,
            max: self.max * factor,
        }
    }
}

/// The `p`-quantile (0 ≤ p ≤ 1) of sorted values, interpolating linearly between ranks.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn odd_count_median_is_the_middle_value() {
        let s = Summary::of(&[9.0, 1.0, 5.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 5.0, 9.0));
        assert_eq!((s.q1, s.q3), (3.0, 7.0));
        assert_eq!(s.count, 3);
    }

    #[test]
    fn even_count_median_interpolates() {
        let s = Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert!(close(s.median, 2.5));
        // type 7: h = 3 * 0.25 = 0.75 -> 1 + 0.75 * (2 - 1)
        assert!(close(s.q1, 1.75));
        assert!(close(s.q3, 3.25));
        assert!(close(s.spread(), (3.25 - 1.75) / 2.0 / 2.5));
        assert!(close(s.range(), 3.0 / 2.5));
    }

    #[test]
    fn quartiles_match_numpy_on_ten_values() {
        // numpy.percentile([1..10], [25, 50, 75]) == [3.25, 5.5, 7.75]
        let v: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let s = Summary::of(&v).unwrap();
        assert!(close(s.q1, 3.25));
        assert!(close(s.median, 5.5));
        assert!(close(s.q3, 7.75));
    }

    #[test]
    fn one_value_has_no_spread() {
        let s = Summary::of(&[2.5]).unwrap();
        assert_eq!(
            (s.min, s.q1, s.median, s.q3, s.max),
            (2.5, 2.5, 2.5, 2.5, 2.5)
        );
        assert_eq!(s.spread(), 0.0);
    }

    #[test]
    fn one_outlier_moves_the_range_but_not_the_spread() {
        let calm = Summary::of(&[10.0, 10.0, 10.0, 10.0, 10.0]).unwrap();
        let noisy = Summary::of(&[10.0, 10.0, 10.0, 10.0, 50.0]).unwrap();
        assert_eq!(calm.spread(), 0.0);
        assert_eq!(noisy.spread(), 0.0);
        assert!(close(noisy.range(), 4.0));
    }

    #[test]
    fn empty_or_nan_has_no_summary() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn zero_median_gives_zero_spread() {
        let s = Summary::of(&[0.0, 0.0, 0.0]).unwrap();
        assert_eq!(s.spread(), 0.0);
        assert_eq!(s.range(), 0.0);
    }

    #[test]
    fn scaling_scales_every_statistic() {
        let s = Summary::of(&[2.0, 4.0, 6.0]).unwrap().scaled(0.5);
        assert_eq!(
            (s.min, s.q1, s.median, s.q3, s.max),
            (1.0, 1.5, 2.0, 2.5, 3.0)
        );
    }
}
