//! Per-source detector state in a fixed table: open addressing over a keyed hash, a short probe
//! sequence, and, when every probed slot is taken, eviction of the least active one (the
//! Space-Saving idea: a source that keeps sending stays, the one-shot addresses of a spoofed
//! flood replace each other). Memory is `capacity` entries, allocated once.

use std::net::IpAddr;

use super::window::Window;
use super::Firing;

/// Per-source rules (slots in [`SourceEntry::firing`]).
pub const PER_SOURCE_RULES: usize = 6;
/// Slots examined for a key before one is evicted.
const PROBES: usize = 8;
/// Bits of the distinct-conv sketch (linear counting).
const CONV_BITS: usize = 256;

/// What the detectors know about one source.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceEntry {
    key: u128,
    used: bool,
    /// Unix ms this source entered the table.
    pub first_seen: u64,
    /// Unix ms of its latest observation.
    pub last_seen: u64,
    /// Handshakes (KCPW-001).
    pub handshakes: Window,
    /// Failed handshakes (KCPW-003).
    pub failures: Window,
    /// Connections established (KCPW-008).
    pub churn: Window,
    /// Refusals by the per-address or per-prefix cap (KCPW-009).
    pub cap_refusals: Window,
    /// Session datagrams that failed authenticated decryption (KCPW-010).
    pub decrypt_failures: Window,
    conv_bits: [u64; CONV_BITS / 64],
    conv_window: u64,
    pub(crate) firing: [Firing; PER_SOURCE_RULES],
}

impl SourceEntry {
    /// Notes `conv` and estimates the distinct convs in the current window (a tumbling window:
    /// the sketch restarts when the window does).
    pub fn distinct_convs(&mut self, conv: u32, now_ms: u64, window_ms: u64) -> u32 {
        let window = now_ms / window_ms.max(1);
        if window != self.conv_window {
            self.conv_window = window;
            self.conv_bits = [0; CONV_BITS / 64];
        }
        let h = mix(u64::from(conv)) as usize % CONV_BITS;
        self.conv_bits[h / 64] |= 1 << (h % 64);
        let set: u32 = self.conv_bits.iter().map(|w| w.count_ones()).sum();
        let zeros = CONV_BITS as f64 - f64::from(set);
        if zeros <= 0.0 {
            // Saturated: at least this many.
            return (CONV_BITS as f64 * (CONV_BITS as f64).ln()) as u32;
        }
        (-(CONV_BITS as f64) * (zeros / CONV_BITS as f64).ln()).round() as u32
    }

    fn activity(&mut self, now_ms: u64) -> u32 {
        // Windows of the rules that use each counter; only relative order matters here.
        self.handshakes.count(now_ms, 10_000)
            + self.failures.count(now_ms, 60_000)
            + self.churn.count(now_ms, 60_000)
            + self.cap_refusals.count(now_ms, 60_000)
            + self.decrypt_failures.count(now_ms, 10_000)
    }
}

pub(crate) fn mix(mut h: u64) -> u64 {
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The key of a source: its address, or its /64 for IPv6 (a host controls a whole /64).
pub(crate) fn source_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => (u128::from(v6) >> 64) | (1 << 100),
        },
    }
}

/// The fixed table.
#[derive(Debug)]
pub struct SourceTable {
    entries: Box<[SourceEntry]>,
    hash_key: u64,
    len: usize,
    /// Entries replaced to make room.
    pub evictions: u64,
}

impl SourceTable {
    /// A table of `capacity` entries (at least one probe sequence long).
    pub fn new(capacity: usize, hash_key: u64) -> Self {
        Self {
            entries: vec![SourceEntry::default(); capacity.max(PROBES)].into_boxed_slice(),
            hash_key,
            len: 0,
            evictions: 0,
        }
    }

    /// Bytes held, whatever the traffic.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.entries.len() * std::mem::size_of::<SourceEntry>()
    }

    /// Sources tracked.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry of `ip`, created (possibly in place of the least active probed entry) if absent.
    pub fn entry(&mut self, ip: IpAddr, now_ms: u64) -> &mut SourceEntry {
        let key = source_key(ip);
        let n = self.entries.len();
        let start =
            (mix(self.hash_key ^ key as u64 ^ ((key >> 64) as u64).rotate_left(17)) as usize) % n;
        let mut free = None;
        let mut victim = start;
        let mut victim_activity = u32::MAX;
        for i in 0..PROBES {
            let index = (start + i) % n;
            let e = &mut self.entries[index];
            if e.used && e.key == key {
                e.last_seen = now_ms;
                return &mut self.entries[index];
            }
            if !e.used {
                free.get_or_insert(index);
            } else {
                let activity = e.activity(now_ms);
                if activity < victim_activity {
                    victim_activity = activity;
                    victim = index;
                }
            }
        }
        let index = match free {
            Some(index) => {
                self.len += 1;
                index
            }
            None => {
                self.evictions += 1;
                victim
            }
        };
        self.entries[index] = SourceEntry {
            key,
            used: true,
            first_seen: now_ms,
            last_seen: now_ms,
            ..SourceEntry::default()
        };
        &mut self.entries[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_convs_are_estimated_closely() {
        let mut e = SourceEntry::default();
        let mut last = 0;
        for conv in 0..40u32 {
            last = e.distinct_convs(conv.wrapping_mul(2_654_435_761), 1_000, 60_000);
        }
        assert!((36..=44).contains(&last), "{last}");
        assert_eq!(
            e.distinct_convs(7, 1_000, 60_000),
            e.distinct_convs(7, 1_000, 60_000)
        );
        assert_eq!(
            e.distinct_convs(7, 60_000, 60_000),
            1,
            "a new window starts over"
        );
    }

    #[test]
    fn a_busy_source_survives_a_million_one_shot_sources() {
        let mut table = SourceTable::new(1024, 42);
        let busy: IpAddr = "198.51.100.7".parse().unwrap();
        let bytes = table.memory_bytes();
        for i in 0..1_000_000u32 {
            let now = u64::from(i / 100);
            let spoofed = IpAddr::from((0x0A00_0000u32 + i).to_be_bytes());
            table.entry(spoofed, now).handshakes.add(now, 10_000, 1);
            if i % 1_000 == 0 {
                table.entry(busy, now).handshakes.add(now, 10_000, 1);
            }
        }
        assert_eq!(table.memory_bytes(), bytes);
        assert!(table.len() <= 1024);
        let now = 10_000;
        let kept = table.entry(busy, now).handshakes.count(now, 10_000);
        assert!(kept > 500, "the busy source kept its count: {kept}");
    }
}
