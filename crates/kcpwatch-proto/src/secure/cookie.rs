//! Stateless address validation: a cookie is a MAC of the client's address, port, attempt nonce
//! and a time slot, so a server can check that a HELLO comes from an address that received its
//! COOKIE without remembering anything about the client.
//!
//! Each time slot has its own key, derived from the endpoint's master secret, so keys rotate
//! every slot and a cookie lives between one and two slots.

use std::net::SocketAddr;

use super::mac::TagKey;
use super::wire::{address_bytes, COOKIE_LEN, NONCE_LEN};

const LABEL_SLOT_KEY: &[u8] = b"kcpwatch v1 cookie key";
/// Cookies from up to this many slots ago are recognised as genuine but expired (rather than
/// invalid), so a log can tell a slow client from a forger.
const RECOGNISED_SLOTS: u32 = 30;

/// Mints and checks cookies.
#[derive(Debug)]
pub struct CookieJar {
    master: TagKey,
    slot_ms: u64,
    /// The keys of the current and previous slot, derived once per slot.
    cached: [(u32, TagKey); 2],
}

/// What a returned cookie turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieCheck {
    /// Minted for this address and nonce in the current or previous slot.
    Valid,
    /// Minted for this address and nonce, but too long ago.
    Expired,
    /// Not one of ours for this address and nonce.
    Invalid,
}

impl CookieJar {
    /// A jar whose slot keys derive from `master`; a slot lasts `slot_ms`.
    pub fn new(master: &[u8; 32], slot_ms: u32) -> Self {
        let master = TagKey::new(master);
        let key0 = Self::derive(&master, 0);
        Self {
            cached: [(0, key0.clone()), (0, key0)],
            master,
            slot_ms: u64::from(slot_ms.max(1)),
        }
    }

    fn derive(master: &TagKey, slot: u32) -> TagKey {
        let mut input = [0u8; LABEL_SLOT_KEY.len() + 4];
        input[..LABEL_SLOT_KEY.len()].copy_from_slice(LABEL_SLOT_KEY);
        input[LABEL_SLOT_KEY.len()..].copy_from_slice(&slot.to_le_bytes());
        TagKey::new(&master.mac(&input))
    }

    fn slot_at(&self, unix_ms: u64) -> u32 {
        (unix_ms / self.slot_ms) as u32
    }

    fn key(&mut self, slot: u32) -> TagKey {
        if let Some((_, key)) = self.cached.iter().find(|(s, _)| *s == slot) {
            return key.clone();
        }
        let key = Self::derive(&self.master, slot);
        // Keep the two newest slots: the current one and its predecessor.
        let older = usize::from(self.cached[0].0 > self.cached[1].0);
        if slot > self.cached[older].0 {
            self.cached[older] = (slot, key.clone());
        }
        key
    }

    fn mac(
        key: &TagKey,
        addr: SocketAddr,
        nonce: &[u8; NONCE_LEN],
        slot: u32,
    ) -> [u8; COOKIE_LEN - 4] {
        let (ip, port) = address_bytes(addr);
        let mut input = [0u8; 16 + 2 + 4 + NONCE_LEN];
        input[..16].copy_from_slice(&ip);
        input[16..18].copy_from_slice(&port.to_le_bytes());
        input[18..22].copy_from_slice(&slot.to_le_bytes());
        input[22..].copy_from_slice(nonce);
        let full = key.mac(&input);
        let mut out = [0; COOKIE_LEN - 4];
        out.copy_from_slice(&full[..COOKIE_LEN - 4]);
        out
    }

    /// A cookie for `addr` and `nonce` at `unix_ms`.
    pub fn mint(
        &mut self,
        unix_ms: u64,
        addr: SocketAddr,
        nonce: &[u8; NONCE_LEN],
    ) -> [u8; COOKIE_LEN] {
        let slot = self.slot_at(unix_ms);
        let key = self.key(slot);
        let mut cookie = [0; COOKIE_LEN];
        cookie[..4].copy_from_slice(&slot.to_le_bytes());
        cookie[4..].copy_from_slice(&Self::mac(&key, addr, nonce, slot));
        cookie
    }

    /// Checks a cookie returned in a HELLO.
    pub fn check(
        &mut self,
        unix_ms: u64,
        addr: SocketAddr,
        nonce: &[u8; NONCE_LEN],
        cookie: &[u8; COOKIE_LEN],
    ) -> CookieCheck {
        let current = self.slot_at(unix_ms);
        let slot = u32::from_le_bytes([cookie[0], cookie[1], cookie[2], cookie[3]]);
        let age = current.wrapping_sub(slot);
        if slot > current || age > RECOGNISED_SLOTS {
            return CookieCheck::Invalid;
        }
        let key = if age <= 1 {
            self.key(slot)
        } else {
            Self::derive(&self.master, slot)
        };
        let expected = Self::mac(&key, addr, nonce, slot);
        // Constant time: the comparison must not tell a forger how many bytes it got right.
        let diff = expected
            .iter()
            .zip(&cookie[4..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        match (diff == 0, age <= 1) {
            (true, true) => CookieCheck::Valid,
            (true, false) => CookieCheck::Expired,
            (false, _) => CookieCheck::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_cookie_is_valid_for_its_address_and_nonce_for_one_to_two_slots() {
        let mut jar = CookieJar::new(&[9; 32], 10_000);
        let a = addr("192.0.2.1:4000");
        let cookie = jar.mint(1_000_005_000, a, &[1; NONCE_LEN]);
        assert_eq!(
            jar.check(1_000_005_000, a, &[1; NONCE_LEN], &cookie),
            CookieCheck::Valid
        );
        assert_eq!(
            jar.check(1_000_019_999, a, &[1; NONCE_LEN], &cookie),
            CookieCheck::Valid
        );
        assert_eq!(
            jar.check(1_000_020_000, a, &[1; NONCE_LEN], &cookie),
            CookieCheck::Expired
        );
        assert_eq!(
            jar.check(
                1_000_005_000,
                addr("192.0.2.1:4001"),
                &[1; NONCE_LEN],
                &cookie
            ),
            CookieCheck::Invalid
        );
        assert_eq!(
            jar.check(
                1_000_005_000,
                addr("192.0.2.2:4000"),
                &[1; NONCE_LEN],
                &cookie
            ),
            CookieCheck::Invalid
        );
        assert_eq!(
            jar.check(1_000_005_000, a, &[2; NONCE_LEN], &cookie),
            CookieCheck::Invalid
        );
        let mut other = CookieJar::new(&[8; 32], 10_000);
        assert_eq!(
            other.check(1_000_005_000, a, &[1; NONCE_LEN], &cookie),
            CookieCheck::Invalid
        );
        assert_eq!(
            jar.check(1_000_005_000, a, &[1; NONCE_LEN], &[0xFF; COOKIE_LEN]),
            CookieCheck::Invalid
        );
    }
}
