//! Sampling of per-datagram records.

/// Rate-limits per-datagram records: per key, the first `burst` records of each window are
/// logged one by one; later ones are counted, and the last of them is kept to be reported as
/// one aggregate record at the end of the window. Memory is one small entry per key (a fixed
/// set), whatever the attacker sends.
#[derive(Debug, Clone)]
pub struct Sampler<T: Copy, const KEYS: usize> {
    burst: u32,
    window_ms: u64,
    slots: [SampleSlot<T>; KEYS],
}

#[derive(Debug, Clone, Copy)]
struct SampleSlot<T: Copy> {
    window_start: u64,
    seen: u32,
    suppressed: u64,
    /// The latest record only counted, for the aggregate.
    last: Option<T>,
}

impl<T: Copy, const KEYS: usize> Sampler<T, KEYS> {
    /// A sampler logging `burst` records per key per `window_ms`.
    pub fn new(burst: u32, window_ms: u64) -> Self {
        Self {
            burst,
            window_ms: window_ms.max(1),
            slots: [SampleSlot {
                window_start: 0,
                seen: 0,
                suppressed: 0,
                last: None,
            }; KEYS],
        }
    }

    /// Offers one record of `key` at `now_ms` (an extended, never-wrapping clock). Returns it
    /// with the number of earlier records only counted, when it is to be logged.
    pub fn sample(&mut self, key: usize, now_ms: u64, record: T) -> Option<(T, u64)> {
        let window = self.window_ms;
        let slot = &mut self.slots[key];
        if now_ms >= slot.window_start + window {
            slot.window_start = now_ms;
            slot.seen = 0;
        }
        slot.seen = slot.seen.saturating_add(1);
        if slot.seen <= self.burst {
            slot.last = None;
            Some((record, std::mem::take(&mut slot.suppressed)))
        } else {
            slot.suppressed += 1;
            slot.last = Some(record);
            None
        }
    }

    /// Every key whose window has ended with records only counted: the last of them and how
    /// many it stands for. Each is returned once. (Owned, so the caller may emit while
    /// iterating.)
    pub fn take_expired(&mut self, now_ms: u64) -> impl Iterator<Item = (T, u64)> {
        let window = self.window_ms;
        let mut expired = [None; KEYS];
        for (slot, out) in self.slots.iter_mut().zip(expired.iter_mut()) {
            if slot.suppressed > 0 && now_ms >= slot.window_start + window {
                let count = std::mem::take(&mut slot.suppressed);
                *out = slot.last.take().map(|last| (last, count));
            }
        }
        expired.into_iter().flatten()
    }

    /// When the earliest window with records only counted ends, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.slots
            .iter()
            .filter(|s| s.suppressed > 0)
            .map(|s| s.window_start + self.window_ms)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_logs_a_burst_then_aggregates() {
        let mut s = Sampler::<u32, 2>::new(2, 1000);
        assert_eq!(s.sample(0, 0, 10), Some((10, 0)));
        assert_eq!(s.sample(0, 1, 11), Some((11, 0)));
        assert_eq!(s.sample(0, 2, 12), None);
        assert_eq!(s.sample(0, 3, 13), None);
        assert_eq!(s.sample(1, 3, 20), Some((20, 0)));
        assert_eq!(s.next_deadline(), Some(1000));
        assert_eq!(s.take_expired(999).count(), 0);
        assert_eq!(s.take_expired(1000).collect::<Vec<_>>(), vec![(13, 2)]);
        assert_eq!(s.next_deadline(), None);
        // A new window logs again.
        assert_eq!(s.sample(0, 1500, 14), Some((14, 0)));
    }
}
