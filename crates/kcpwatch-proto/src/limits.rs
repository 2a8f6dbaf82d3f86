//! Admission limits (docs/security.md, "Limits"): connections per address and per prefix, and handshake rates
//! per source and overall.
//!
//! Connection counts only cover live sessions, so their tables are bounded by
//! `max_connections`. Handshake rates must hold before a source is validated (a spoofed flood
//! comes from millions of addresses), so the per-source buckets live in a fixed table indexed
//! by a keyed hash: memory is constant, and sources that collide share a bucket, which can only
//! make the limit stricter for them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

use crate::drop_rule::DropRule;

/// Buckets in the per-source rate table.
const RATE_TABLE_SIZE: usize = 4096;

/// The limits, each with a safe default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Live sessions from one IP address.
    pub max_per_ip: usize,
    /// Live sessions from one IPv4 /24 or IPv6 /64.
    pub max_per_prefix: usize,
    /// Handshakes (HELLOs, or first datagrams in raw mode) per second from one source
    /// (an IPv4 address or an IPv6 /64).
    pub handshakes_per_ip: u32,
    /// Handshakes from one source allowed in a burst.
    pub handshake_burst_per_ip: u32,
    /// Handshakes per second from everyone.
    pub handshakes_global: u32,
    /// Handshakes from everyone allowed in a burst.
    pub handshake_burst_global: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // A carrier-grade NAT puts many players behind one address; 64 per address and 256
            // per prefix leave room for them while stopping one host from taking the server.
            max_per_ip: 64,
            max_per_prefix: 256,
            handshakes_per_ip: 20,
            handshake_burst_per_ip: 40,
            handshakes_global: 2_000,
            handshake_burst_global: 4_000,
        }
    }
}

/// The prefix an address belongs to for per-prefix limits: /24 for IPv4, /64 for IPv6.
pub fn prefix_of(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            IpAddr::from([o[0], o[1], o[2], 0])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Which connection limit refused a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// `max_per_ip`.
    PerIp,
    /// `max_per_prefix`.
    PerPrefix,
}

impl LimitHit {
    /// The rule name in records.
    pub fn rule(self) -> DropRule {
        match self {
            Self::PerIp => DropRule::MaxConnectionsPerIp,
            Self::PerPrefix => DropRule::MaxConnectionsPerPrefix,
        }
    }
}

/// Live sessions per address and per prefix.
#[derive(Debug, Default)]
pub struct ConnectionCounts {
    per_ip: HashMap<IpAddr, u32>,
    per_prefix: HashMap<IpAddr, u32>,
}

impl ConnectionCounts {
    /// Whether one more session from `ip` is allowed.
    pub fn admits(&self, limits: &Limits, ip: IpAddr) -> Result<(), LimitHit> {
        let ip = canonical(ip);
        let count = |map: &HashMap<IpAddr, u32>, key| map.get(&key).copied().unwrap_or(0) as usize;
        if count(&self.per_ip, ip) >= limits.max_per_ip {
            return Err(LimitHit::PerIp);
        }
        if count(&self.per_prefix, prefix_of(ip)) >= limits.max_per_prefix {
            return Err(LimitHit::PerPrefix);
        }
        Ok(())
    }

    /// Counts a new session from `ip`.
    pub fn add(&mut self, ip: IpAddr) {
        let ip = canonical(ip);
        *self.per_ip.entry(ip).or_default() += 1;
        *self.per_prefix.entry(prefix_of(ip)).or_default() += 1;
    }

    /// Forgets a session from `ip`.
    pub fn remove(&mut self, ip: IpAddr) {
        let ip = canonical(ip);
        for (map, key) in [
            (&mut self.per_ip, ip),
            (&mut self.per_prefix, prefix_of(ip)),
        ] {
            if let Some(n) = map.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
    }

    /// Sessions counted for `ip`.
    pub fn for_ip(&self, ip: IpAddr) -> u32 {
        self.per_ip.get(&canonical(ip)).copied().unwrap_or(0)
    }
}

/// A token bucket in thousandths of a token, refilled from the elapsed milliseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    milli_tokens: u64,
    last_ms: u64,
    used: bool,
}

impl Bucket {
    fn take(&mut self, now_ms: u64, per_second: u32, burst: u32) -> bool {
        let cap = u64::from(burst.max(1)) * 1000;
        if !self.used {
            *self = Self {
                milli_tokens: cap,
                last_ms: now_ms,
                used: true,
            };
        }
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.milli_tokens = (self.milli_tokens + elapsed * u64::from(per_second)).min(cap);
        self.last_ms = now_ms;
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

/// Which rate refused a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateHit {
    /// The source's own rate.
    PerIp,
    /// The endpoint's overall rate.
    Global,
}

impl RateHit {
    /// The rule name in records.
    pub fn rule(self) -> DropRule {
        match self {
            Self::PerIp => DropRule::HandshakeRatePerIp,
            Self::Global => DropRule::HandshakeRateGlobal,
        }
    }
}

/// Handshake rate limiting in constant memory.
#[derive(Debug)]
pub struct HandshakeRate {
    global: Bucket,
    table: Box<[Bucket]>,
    hash_key: u64,
}

impl HandshakeRate {
    /// A limiter whose table positions are keyed by `hash_key` (random in production), so an
    /// attacker cannot aim collisions at a chosen victim's bucket.
    pub fn new(hash_key: u64) -> Self {
        Self {
            global: Bucket::default(),
            table: vec![Bucket::default(); RATE_TABLE_SIZE].into_boxed_slice(),
            hash_key,
        }
    }

    fn index(&self, ip: IpAddr) -> usize {
        // An IPv6 host controls a whole /64, so that is its "address" for rates.
        let bits: u128 = match canonical(ip) {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6) >> 64 | 1 << 100,
        };
        let mut h = self.hash_key ^ (bits as u64) ^ ((bits >> 64) as u64).rotate_left(29);
        // splitmix64 finaliser: cheap and mixes every input bit into the index.
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        (h as usize) % RATE_TABLE_SIZE
    }

    /// Takes a token for one handshake from `ip` at `now_ms`, or says which rate refused it.
    /// The source's bucket is charged first so one noisy source cannot drain the global one.
    pub fn admit(&mut self, limits: &Limits, ip: IpAddr, now_ms: u64) -> Result<(), RateHit> {
        let index = self.index(ip);
        if !self.table[index].take(
            now_ms,
            limits.handshakes_per_ip,
            limits.handshake_burst_per_ip,
        ) {
            return Err(RateHit::PerIp);
        }
        if !self.global.take(
            now_ms,
            limits.handshakes_global,
            limits.handshake_burst_global,
        ) {
            return Err(RateHit::Global);
        }
        Ok(())
    }

    /// Bytes the limiter holds, whatever the traffic.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.table.len() * std::mem::size_of::<Bucket>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_are_slash_24_and_slash_64() {
        assert_eq!(prefix_of(ip("192.0.2.77")), ip("192.0.2.0"));
        assert_eq!(prefix_of(ip("::ffff:192.0.2.77")), ip("192.0.2.0"));
        assert_eq!(prefix_of(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
    }

    #[test]
    fn counts_enforce_per_ip_then_per_prefix() {
        let limits = Limits {
            max_per_ip: 2,
            max_per_prefix: 3,
            ..Limits::default()
        };
        let mut counts = ConnectionCounts::default();
        counts.add(ip("10.0.0.1"));
        counts.add(ip("10.0.0.1"));
        assert_eq!(counts.admits(&limits, ip("10.0.0.1")), Err(LimitHit::PerIp));
        assert_eq!(counts.admits(&limits, ip("10.0.0.2")), Ok(()));
        counts.add(ip("10.0.0.2"));
        assert_eq!(
            counts.admits(&limits, ip("10.0.0.3")),
            Err(LimitHit::PerPrefix)
        );
        assert_eq!(counts.admits(&limits, ip("10.0.1.3")), Ok(()));
        counts.remove(ip("10.0.0.1"));
        assert_eq!(counts.admits(&limits, ip("10.0.0.3")), Ok(()));
        counts.remove(ip("10.0.0.1"));
        counts.remove(ip("10.0.0.2"));
        assert!(counts.per_ip.is_empty() && counts.per_prefix.is_empty());
    }

    #[test]
    fn rates_refill_over_time_and_the_global_bucket_caps_everyone() {
        let limits = Limits {
            handshakes_per_ip: 10,
            handshake_burst_per_ip: 2,
            handshakes_global: 1,
            handshake_burst_global: 5,
            ..Limits::default()
        };
        let mut rate = HandshakeRate::new(7);
        let a = ip("198.51.100.1");
        assert_eq!(rate.admit(&limits, a, 0), Ok(()));
        assert_eq!(rate.admit(&limits, a, 0), Ok(()));
        assert_eq!(rate.admit(&limits, a, 0), Err(RateHit::PerIp));
        assert_eq!(
            rate.admit(&limits, a, 100),
            Ok(()),
            "10/s refills one in 100 ms"
        );
        let mut refused = 0;
        for i in 0..10u8 {
            if rate.admit(&limits, IpAddr::from([203, 0, 113, i]), 100) == Err(RateHit::Global) {
                refused += 1;
            }
        }
        // The global burst of 5 lost 3 tokens to the first source and refills at 1 a second.
        assert_eq!(refused, 8);
    }
}
