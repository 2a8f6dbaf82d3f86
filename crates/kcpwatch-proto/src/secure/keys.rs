//! Session keys, tags and the replay window.
//!
//! The tag is HMAC-SHA256 truncated to 8 bytes: every language a game client is written in has
//! HMAC-SHA256 in its standard library (Go `crypto/hmac`, .NET `HMACSHA256`, OpenSSL), and with
//! SHA extensions it costs a few hundred nanoseconds per datagram. 64 bits make a blind forgery
//! a 2^-64 guess per datagram; the tag protects against off-path injection, not against an
//! on-path observer, who saw the secret in ACCEPT (see `docs/protocol.md`, "What it does not do").

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::wire::{SessionHeader, SECRET_LEN, SESSION_HEADER_LEN, TAG_LEN};

type HmacSha256 = Hmac<Sha256>;

const LABEL_CLIENT_TO_SERVER: &[u8] = b"kcpwatch v1 client to server";
const LABEL_SERVER_TO_CLIENT: &[u8] = b"kcpwatch v1 server to client";
/// Packet numbers this far behind the highest one seen are refused as replays: wide enough for
/// any reordering KCP survives, 128 bytes per direction.
pub const REPLAY_WINDOW: u64 = 1024;

/// A key with its HMAC state precomputed, so each tag costs only the datagram's blocks.
#[derive(Clone)]
pub struct TagKey(HmacSha256);

impl std::fmt::Debug for TagKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TagKey(..)")
    }
}

impl TagKey {
    /// A tag key from raw key bytes.
    pub fn new(key: &[u8]) -> Self {
        Self(HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length"))
    }

    /// The full 32-byte HMAC of `data`.
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// The 8-byte tag of `data`.
    pub fn tag(&self, data: &[u8]) -> [u8; TAG_LEN] {
        let full = self.mac(data);
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// Whether `tag` is the tag of `data`, compared in constant time.
    pub fn verify(&self, data: &[u8], tag: &[u8; TAG_LEN]) -> bool {
        let mut mac = self.0.clone();
        mac.update(data);
        mac.verify_truncated_left(tag).is_ok()
    }
}

/// Which end of the session we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sent the HELLO.
    Client,
    /// Sent the ACCEPT.
    Server,
}

/// The two direction keys of a session, derived from the ACCEPT secret.
#[derive(Debug, Clone)]
pub struct SessionKeys {
    /// Tags what we send.
    pub send: TagKey,
    /// Checks what we receive.
    pub receive: TagKey,
}

impl SessionKeys {
    /// `key_c2s = HMAC(secret, "kcpwatch v1 client to server")`, `key_s2c` likewise; separate
    /// keys per direction make a datagram reflected back at its sender fail its tag.
    pub fn derive(secret: &[u8; SECRET_LEN], role: Role) -> Self {
        let master = TagKey::new(secret);
        let c2s = TagKey::new(&master.mac(LABEL_CLIENT_TO_SERVER));
        let s2c = TagKey::new(&master.mac(LABEL_SERVER_TO_CLIENT));
        match role {
            Role::Client => Self {
                send: c2s,
                receive: s2c,
            },
            Role::Server => Self {
                send: s2c,
                receive: c2s,
            },
        }
    }
}

/// Appends one session datagram to `out`: header, body, tag. Returns its length.
pub fn seal_into(
    out: &mut Vec<u8>,
    key: &TagKey,
    kind: u8,
    conv: u32,
    packet_number: u64,
    body: &[u8],
) -> usize {
    let start = out.len();
    out.push(kind);
    out.extend_from_slice(&conv.to_le_bytes());
    out.extend_from_slice(&packet_number.to_le_bytes());
    out.extend_from_slice(body);
    let tag = key.tag(&out[start..]);
    out.extend_from_slice(&tag);
    out.len() - start
}

/// Packet numbers seen, for refusing replays: the highest, and a bitmap of the
/// [`REPLAY_WINDOW`] below it (RFC 6479's scheme, without its block trick).
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    highest: Option<u64>,
    bits: [u64; (REPLAY_WINDOW / 64) as usize],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self {
            highest: None,
            bits: [0; (REPLAY_WINDOW / 64) as usize],
        }
    }
}

/// What the window says of a packet number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Higher than any seen: the only kind that may move a session to a new address.
    Newest,
    /// Not seen, inside the window (reordered).
    Reordered,
    /// Seen before, or too old to tell.
    Replayed,
}

impl ReplayWindow {
    fn bit(pn: u64) -> (usize, u64) {
        let slot = pn % REPLAY_WINDOW;
        ((slot / 64) as usize, 1 << (slot % 64))
    }

    /// Classifies `pn` without recording it.
    pub fn check(&self, pn: u64) -> Freshness {
        let Some(highest) = self.highest else {
            return Freshness::Newest;
        };
        if pn > highest {
            return Freshness::Newest;
        }
        if highest - pn >= REPLAY_WINDOW {
            return Freshness::Replayed;
        }
        let (word, mask) = Self::bit(pn);
        if self.bits[word] & mask != 0 {
            Freshness::Replayed
        } else {
            Freshness::Reordered
        }
    }

    /// Records `pn` as seen (after its tag was verified).
    pub fn record(&mut self, pn: u64) {
        match self.highest {
            Some(highest) if pn <= highest => {}
            Some(highest) if pn - highest < REPLAY_WINDOW => {
                for skipped in highest + 1..pn {
                    let (word, mask) = Self::bit(skipped);
                    self.bits[word] &= !mask;
                }
                self.highest = Some(pn);
            }
            _ => {
                self.bits = [0; (REPLAY_WINDOW / 64) as usize];
                self.highest = Some(pn);
            }
        }
        let (word, mask) = Self::bit(pn);
        self.bits[word] |= mask;
    }

    /// The highest packet number seen.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }
}

/// Why a session datagram was refused before reaching the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// The tag does not match: forged, corrupted, or for another session.
    BadTag,
    /// The packet number was seen before or is too old.
    Replayed,
}

/// Checks a session datagram's tag and packet number, and records the number if both pass.
pub fn open(
    key: &TagKey,
    window: &mut ReplayWindow,
    datagram: &[u8],
    header: &SessionHeader,
    tag: &[u8; TAG_LEN],
) -> Result<Freshness, OpenError> {
    debug_assert!(datagram.len() >= SESSION_HEADER_LEN + TAG_LEN);
    if !key.verify(&datagram[..datagram.len() - TAG_LEN], tag) {
        return Err(OpenError::BadTag);
    }
    let freshness = window.check(header.packet_number);
    if freshness == Freshness::Replayed {
        return Err(OpenError::Replayed);
    }
    window.record(header.packet_number);
    Ok(freshness)
}

#[cfg(test)]
mod tests {
    use super::super::wire::{parse_session, TYPE_DATA};
    use super::*;

    #[test]
    fn a_sealed_datagram_opens_once_with_the_other_ends_keys() {
        let secret = [5; SECRET_LEN];
        let client = SessionKeys::derive(&secret, Role::Client);
        let server = SessionKeys::derive(&secret, Role::Server);
        let mut out = Vec::new();
        seal_into(&mut out, &client.send, TYPE_DATA, 42, 0, b"kcp bytes");
        let (header, body, tag) = parse_session(&out).unwrap();
        assert_eq!((header.conv, body), (42, &b"kcp bytes"[..]));
        let mut window = ReplayWindow::default();
        assert_eq!(
            open(&server.receive, &mut window, &out, &header, tag),
            Ok(Freshness::Newest)
        );
        assert_eq!(
            open(&server.receive, &mut window, &out, &header, tag),
            Err(OpenError::Replayed)
        );
        // Reflected back at the client, it fails: the directions have different keys.
        let mut client_window = ReplayWindow::default();
        assert_eq!(
            open(&client.receive, &mut client_window, &out, &header, tag),
            Err(OpenError::BadTag)
        );
    }

    #[test]
    fn a_flipped_bit_anywhere_fails_the_tag() {
        let keys = SessionKeys::derive(&[1; SECRET_LEN], Role::Client);
        let mut out = Vec::new();
        seal_into(&mut out, &keys.send, TYPE_DATA, 7, 3, b"payload");
        for i in 0..out.len() {
            let mut copy = out.clone();
            copy[i] ^= 1;
            let Some((header, _, tag)) = parse_session(&copy) else {
                continue;
            };
            let mut window = ReplayWindow::default();
            let server = SessionKeys::derive(&[1; SECRET_LEN], Role::Server);
            assert_eq!(
                open(&server.receive, &mut window, &copy, &header, tag),
                Err(OpenError::BadTag),
                "byte {i}"
            );
        }
    }

    #[test]
    fn the_window_accepts_reordering_and_refuses_repeats_and_the_too_old() {
        let mut w = ReplayWindow::default();
        for pn in [5, 3, 4, 10, 6] {
            assert_ne!(w.check(pn), Freshness::Replayed, "{pn}");
            w.record(pn);
        }
        for pn in [3, 4, 5, 6, 10] {
            assert_eq!(w.check(pn), Freshness::Replayed);
        }
        assert_eq!(w.check(7), Freshness::Reordered);
        assert_eq!(w.check(11), Freshness::Newest);
        w.record(10 + REPLAY_WINDOW);
        assert_eq!(w.check(10), Freshness::Replayed, "too old");
        assert_eq!(w.check(11), Freshness::Reordered);
        w.record(10 + 5 * REPLAY_WINDOW);
        assert_eq!(w.check(10 + 4 * REPLAY_WINDOW + 1), Freshness::Reordered);
        assert_eq!(w.check(10 + 5 * REPLAY_WINDOW), Freshness::Replayed);
    }
}
