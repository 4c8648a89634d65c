//! An opt-in progress bar on pool calls (feature `progress`, `Call::progress`): done of
//! total, rate and ETA, drawn with `indicatif` on standard error, and only when standard
//! error is a terminal. Without the feature this is a no-op type that is never built.

/// The bar of one call, advanced by its consumer as items are handed out.
#[derive(Debug)]
pub(crate) struct Bar {
    #[cfg(feature = "progress")]
    bar: indicatif::ProgressBar,
}

impl Bar {
    /// A bar for `total` items (a spinner with a count when the total is unknown).
    #[cfg(feature = "progress")]
    pub(crate) fn new(total: Option<u64>) -> Bar {
        use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
        use std::io::IsTerminal;
        let bar = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "{bar:40.cyan/blue} {pos}/{len} items · {per_sec} · ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {pos} items · {per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        bar.set_draw_target(target);
        #[cfg(test)]
        {
            *crate::latch::lock(&tests::LAST) = Some(bar.clone());
        }
        Bar { bar }
    }

    /// Without the feature no call asks for a bar; this keeps the callers free of `cfg`s.
    #[cfg(not(feature = "progress"))]
    pub(crate) fn new(total: Option<u64>) -> Bar {
        let _ = total;
        Bar {}
    }

    /// `n` more items are done.
    pub(crate) fn add(&self, n: u64) {
        #[cfg(feature = "progress")]
        self.bar.inc(n);
        #[cfg(not(feature = "progress"))]
        let _ = n;
    }

    /// The call has ended: the bar stays on screen with its final count.
    pub(crate) fn finish(&self) {
        #[cfg(feature = "progress")]
        self.bar.finish();
    }
}

#[cfg(all(test, feature = "progress"))]
pub(crate) mod tests {
    use std::sync::Mutex;

    /// The last bar made, to read its count.
    pub(crate) static LAST: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

    #[test]
    fn a_thread_pool_map_advances_the_bar_to_its_total() {
        let pool = crate::multiprocessing::dummy::Pool::new(2).unwrap();
        let _one_at_a_time = crate::latch::lock(&LAST);
        drop(_one_at_a_time);
        let v = pool
            .call()
            .progress(true)
            .map(|x: u64| x * 2, 0..1000)
            .unwrap();
        assert_eq!(v.len(), 1000);
        let bar = crate::latch::lock(&LAST).clone().unwrap();
        assert_eq!((bar.position(), bar.length()), (1000, Some(1000)));
        assert!(bar.is_finished());
        let n = pool
            .call()
            .progress(true)
            .imap(|x: u64| x, 0..10)
            .unwrap()
            .count();
        assert_eq!(n, 10);
        let bar = crate::latch::lock(&LAST).clone().unwrap();
        assert_eq!(bar.position(), 10);
    }
}
