//! Reconnect delays: exponential with jitter, so that many kcpwatch processes that lost the
//! same receiver do not come back in lockstep when it returns.

use std::time::Duration;

/// Delays between connection attempts.
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
    rng: u64,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        let mut seed = [0u8; 8];
        if getrandom::getrandom(&mut seed).is_err() {
            // Jitter needs no secrecy; any per-process difference will do.
            seed = (crate::clock::unix_micros() ^ u64::from(std::process::id())).to_le_bytes();
        }
        Self {
            initial,
            max,
            failures: 0,
            rng: u64::from_le_bytes(seed) | 1,
        }
    }

    /// The delay before the next attempt after one more failure: the nominal delay
    /// `initial * 2^(failures-1)`, capped at `max`, then drawn uniformly from its upper half
    /// ("equal jitter": never sooner than half the nominal delay, so a dead receiver is not
    /// hammered, yet spread enough to break up synchronised retries).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let exp = self.failures.min(30);
        self.failures = self.failures.saturating_add(1);
        let nominal = self
            .initial
            .checked_mul(1u32 << exp)
            .map_or(self.max, |d| d.min(self.max));
        let half = nominal / 2;
        let spread = half.as_nanos() as u64;
        let jitter = if spread == 0 {
            0
        } else {
            self.next_random() % (spread + 1)
        };
        half + Duration::from_nanos(jitter)
    }

    /// Forgets past failures: the receiver has accepted records again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: plenty for jitter.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_jitter_and_stop_at_max() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let bounds = [100u64, 200, 400, 800, 1000, 1000];
        for nominal in bounds {
            let d = b.next_delay().as_millis() as u64;
            assert!(d >= nominal / 2 && d <= nominal, "{d} vs {nominal}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
