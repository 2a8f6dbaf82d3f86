//! Time as the protocol sees it.
//!
//! KCP timestamps are u32 milliseconds that wrap every 49.7 days, and signed differences between
//! them wrap at 24.8 days. Every comparison goes through [`diff`] so both crossings are safe; the
//! endpoint also keeps an [`ExtendedClock`] so its timer queue can order deadlines without
//! wrapping.

/// A KCP clock reading: milliseconds, wrapping at 2^32.
pub type Millis = u32;

/// Signed distance `later - earlier` on the wrapping clock.
#[inline]
pub fn diff(later: Millis, earlier: Millis) -> i32 {
    later.wrapping_sub(earlier) as i32
}

/// Extends the wrapping u32 clock to a u64 that never wraps, given readings that only move
/// forward by less than 2^31 ms between calls.
#[derive(Debug, Clone, Copy)]
pub struct ExtendedClock {
    last: Millis,
    extended: u64,
}

impl ExtendedClock {
    /// Starts the extension at `now`.
    pub fn new(now: Millis) -> Self {
        Self {
            last: now,
            extended: u64::from(now),
        }
    }

    /// Advances to `now` and returns the extended reading. A reading that goes backwards is
    /// treated as no progress: the protocol clock is monotonic by contract.
    pub fn advance(&mut self, now: Millis) -> u64 {
        let step = diff(now, self.last);
        if step > 0 {
            self.extended += step as u64;
            self.last = now;
        }
        self.extended
    }

    /// The last extended reading.
    pub fn extended(&self) -> u64 {
        self.extended
    }

    /// The wrapping reading that corresponds to an extended one.
    pub fn wrap(extended: u64) -> Millis {
        extended as Millis
    }
}
