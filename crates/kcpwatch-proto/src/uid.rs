//! Connection ids: `K` followed by 22 base62 digits of a UUIDv7. Unique across processes and
//! restarts (74 random bits), time-sortable as plain strings (the timestamp leads, the digits are
//! in ASCII order and the width is fixed), and short enough for every log line.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 62^22 > 2^128, so every UUID fits in 22 digits.
const WIDTH: usize = 22;

/// Makes connection ids.
#[derive(Debug)]
pub struct UidGenerator {
    rng: SmallRng,
}

impl UidGenerator {
    /// A generator whose randomness comes from `seed` (the runtime seeds it from the OS).
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// The UUIDv7 for a Unix time in milliseconds.
    pub fn uuid_v7(&mut self, unix_ms: u64) -> u128 {
        let random: u128 = self.rng.gen();
        let ts = u128::from(unix_ms & 0xFFFF_FFFF_FFFF) << 80;
        let version = 0x7u128 << 76;
        let rand_a = (random & 0xFFF) << 64;
        let variant = 0b10u128 << 62;
        let rand_b = (random >> 12) & ((1u128 << 62) - 1);
        ts | version | rand_a | variant | rand_b
    }

    /// A fresh connection id for a Unix time in milliseconds.
    pub fn next(&mut self, unix_ms: u64) -> Uid {
        Uid::from_uuid(self.uuid_v7(unix_ms))
    }
}

/// A connection id, stored inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uid([u8; WIDTH + 1]);

impl Uid {
    /// Encodes a UUID.
    pub fn from_uuid(mut value: u128) -> Self {
        let mut out = [b'0'; WIDTH + 1];
        out[0] = b'K';
        for slot in out[1..].iter_mut().rev() {
            *slot = DIGITS[(value % 62) as usize];
            value /= 62;
        }
        Self(out)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Built only from ASCII digits above.
        std::str::from_utf8(&self.0).unwrap_or("K")
    }
}

impl std::fmt::Debug for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_are_distinct() {
        let mut gen = UidGenerator::new(7);
        let a = gen.next(1_700_000_000_000);
        let b = gen.next(1_700_000_000_001);
        let c = gen.next(1_700_000_000_001);
        assert!(a.as_str() < b.as_str());
        assert_ne!(b, c);
        assert_eq!(a.as_str().len(), 23);
        assert!(a.as_str().starts_with('K'));
    }

    #[test]
    fn uuid_has_version_7_and_rfc_variant() {
        let uuid = UidGenerator::new(1).uuid_v7(0x0123_4567_89AB);
        assert_eq!((uuid >> 76) & 0xF, 7);
        assert_eq!((uuid >> 62) & 0b11, 0b10);
        assert_eq!(uuid >> 80, 0x0123_4567_89AB);
    }

    #[test]
    fn largest_uuid_fits_the_width() {
        assert_eq!(
            Uid::from_uuid(u128::MAX).as_str(),
            "K7n42DGM5Tflk9n8mt7Fhc7"
        );
    }
}
