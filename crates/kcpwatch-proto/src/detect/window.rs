//! A sliding-window counter in constant space: the window is split into buckets, and the count
//! is the sum of the buckets that still overlap it (so the window slides by one bucket at a
//! time, an error of at most one bucket's worth at its trailing edge).

/// Buckets per window.
const BUCKETS: usize = 6;

/// Events in the last `window_ms` (passed on each call, so one counter type serves rules with
/// different windows).
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    counts: [u32; BUCKETS],
    /// Index (time / bucket length) of the newest bucket.
    head: u64,
}

impl Window {
    fn bucket_ms(window_ms: u64) -> u64 {
        (window_ms / BUCKETS as u64).max(1)
    }

    fn advance(&mut self, now_ms: u64, window_ms: u64) {
        let index = now_ms / Self::bucket_ms(window_ms);
        if index <= self.head {
            return;
        }
        let gap = (index - self.head).min(BUCKETS as u64);
        for step in 1..=gap {
            self.counts[((self.head + step) % BUCKETS as u64) as usize] = 0;
        }
        self.head = index;
    }

    /// Counts `n` events at `now_ms` and returns the count in the window.
    pub fn add(&mut self, now_ms: u64, window_ms: u64, n: u32) -> u32 {
        self.advance(now_ms, window_ms);
        let slot = (self.head % BUCKETS as u64) as usize;
        self.counts[slot] = self.counts[slot].saturating_add(n);
        self.total()
    }

    /// The count in the window ending at `now_ms`.
    pub fn count(&mut self, now_ms: u64, window_ms: u64) -> u32 {
        self.advance(now_ms, window_ms);
        self.total()
    }

    fn total(&self) -> u32 {
        self.counts.iter().fold(0u32, |a, &c| a.saturating_add(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_slide_out_of_the_window() {
        let mut w = Window::default();
        assert_eq!(w.add(0, 6_000, 5), 5);
        assert_eq!(w.add(2_500, 6_000, 1), 6);
        assert_eq!(w.count(5_999, 6_000), 6);
        assert_eq!(w.count(6_000, 6_000), 1, "the first bucket left the window");
        assert_eq!(w.count(9_000, 6_000), 0);
        assert_eq!(w.add(100_000, 6_000, 2), 2, "a long gap clears everything");
    }
}
