//! Session ciphers and the replay window.
//!
//! Every session datagram is sealed with ChaCha20-Poly1305 under the direction key the Noise
//! NK handshake split off (`docs/protocol.md`): the packet number is the AEAD nonce (Noise's
//! nonce encoding: 4 zero bytes, then the number little endian), the 13 cleartext header bytes
//! are the associated data. The cipher is snow's ring-backed ChaCha20-Poly1305
//! (`snow::resolvers::RingResolver`): the same AEAD as snow's default, several times faster on
//! small datagrams; nothing here implements a primitive.

use snow::params::CipherChoice;
use snow::resolvers::{CryptoResolver, RingResolver};
use snow::types::Cipher;

use super::wire::{SessionHeader, AEAD_TAG_LEN, SESSION_HEADER_LEN};

/// Packet numbers this far behind the highest one seen are refused as replays: wide enough for
/// any reordering KCP survives, 128 bytes per direction.
pub const REPLAY_WINDOW: u64 = 1024;
/// A packet number at or past this is never used: Noise reserves 2^64 - 1, and a session
/// that reaches it (never, at a billion datagrams a second for 500 years) must end.
pub const MAX_PACKET_NUMBER: u64 = u64::MAX - 1;

/// One direction's AEAD key (ChaCha20-Poly1305, snow's ring-backed implementation).
pub struct SessionCipher(Box<dyn Cipher>);

impl std::fmt::Debug for SessionCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionCipher(..)")
    }
}

impl SessionCipher {
    /// A cipher keyed with `key` (one half of a Noise split).
    pub fn new(key: &[u8; 32]) -> Self {
        let mut cipher = RingResolver
            .resolve_cipher(&CipherChoice::ChaChaPoly)
            .expect("snow is built with ring's ChaChaPoly");
        cipher.set(key);
        Self(cipher)
    }

    /// Encrypts `plaintext` with nonce `n` and associated data `ad` into `out`
    /// (`plaintext.len() + 16` bytes).
    pub fn seal(&self, n: u64, ad: &[u8], plaintext: &[u8], out: &mut [u8]) {
        self.0.encrypt(n, ad, plaintext, out);
    }

    /// Decrypts `sealed` (ciphertext and tag) into `out` (at least `sealed.len() - 16` bytes);
    /// false if it does not authenticate.
    pub fn open(&self, n: u64, ad: &[u8], sealed: &[u8], out: &mut [u8]) -> bool {
        sealed.len() >= AEAD_TAG_LEN && self.0.decrypt(n, ad, sealed, out).is_ok()
    }
}

/// Which end of the session we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sent the HELLO (the Noise initiator).
    Client,
    /// Sent the ACCEPT (the Noise responder).
    Server,
}

/// The two direction ciphers of a session.
#[derive(Debug)]
pub struct SessionKeys {
    /// Seals what we send.
    pub send: SessionCipher,
    /// Opens what we receive.
    pub receive: SessionCipher,
}

impl SessionKeys {
    /// From a Noise split: the first key protects initiator → responder (client → server), the
    /// second the other way, so a datagram reflected back at its sender does not open.
    pub fn from_split(split: &([u8; 32], [u8; 32]), role: Role) -> Self {
        let (c2s, s2c) = (SessionCipher::new(&split.0), SessionCipher::new(&split.1));
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

/// Appends one session datagram to `out`: the cleartext header, then `body` sealed under it.
/// Returns its length.
pub fn seal_into(
    out: &mut Vec<u8>,
    cipher: &SessionCipher,
    kind: u8,
    conv: u32,
    packet_number: u64,
    body: &[u8],
) -> usize {
    let header = SessionHeader {
        kind,
        conv,
        packet_number,
    }
    .to_bytes();
    let start = out.len();
    out.extend_from_slice(&header);
    let sealed_at = out.len();
    out.resize(sealed_at + body.len() + AEAD_TAG_LEN, 0);
    cipher.seal(packet_number, &header, body, &mut out[sealed_at..]);
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
    /// The AEAD did not authenticate it: forged, corrupted, or for another session.
    DecryptFailed,
    /// The packet number was seen before or is too old.
    Replayed,
}

/// Decrypts a session datagram into `plaintext` (cleared first), then checks its packet number
/// against the window and records it. Nothing is recorded for a datagram that does not
/// authenticate, and a corrupted one is always `DecryptFailed`, whichever byte changed.
pub fn open(
    cipher: &SessionCipher,
    window: &mut ReplayWindow,
    datagram: &[u8],
    header: &SessionHeader,
    plaintext: &mut Vec<u8>,
) -> Result<Freshness, OpenError> {
    debug_assert!(datagram.len() >= SESSION_HEADER_LEN + AEAD_TAG_LEN);
    let sealed = &datagram[SESSION_HEADER_LEN..];
    plaintext.clear();
    plaintext.resize(sealed.len() - AEAD_TAG_LEN, 0);
    if header.packet_number > MAX_PACKET_NUMBER
        || !cipher.open(
            header.packet_number,
            &datagram[..SESSION_HEADER_LEN],
            sealed,
            plaintext,
        )
    {
        return Err(OpenError::DecryptFailed);
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

    fn split() -> ([u8; 32], [u8; 32]) {
        ([5; 32], [6; 32])
    }

    #[test]
    fn a_sealed_datagram_opens_once_with_the_other_ends_keys() {
        let client = SessionKeys::from_split(&split(), Role::Client);
        let server = SessionKeys::from_split(&split(), Role::Server);
        let mut out = Vec::new();
        seal_into(&mut out, &client.send, TYPE_DATA, 42, 0, b"kcp bytes");
        assert!(!out.windows(9).any(|w| w == b"kcp bytes"), "encrypted");
        let (header, _) = parse_session(&out).unwrap();
        let mut window = ReplayWindow::default();
        let mut plain = Vec::new();
        assert_eq!(
            open(&server.receive, &mut window, &out, &header, &mut plain),
            Ok(Freshness::Newest)
        );
        assert_eq!(plain, b"kcp bytes");
        assert_eq!(
            open(&server.receive, &mut window, &out, &header, &mut plain),
            Err(OpenError::Replayed)
        );
        // Reflected back at the client, it fails: the directions have different keys.
        let mut client_window = ReplayWindow::default();
        assert_eq!(
            open(
                &client.receive,
                &mut client_window,
                &out,
                &header,
                &mut plain
            ),
            Err(OpenError::DecryptFailed)
        );
    }

    #[test]
    fn a_flipped_bit_anywhere_fails_decryption() {
        let client = SessionKeys::from_split(&split(), Role::Client);
        let server = SessionKeys::from_split(&split(), Role::Server);
        let mut out = Vec::new();
        seal_into(&mut out, &client.send, TYPE_DATA, 7, 3, b"payload");
        let mut plain = Vec::new();
        for i in 0..out.len() {
            for bit in 0..8 {
                let mut copy = out.clone();
                copy[i] ^= 1 << bit;
                let Some((header, _)) = parse_session(&copy) else {
                    continue;
                };
                let mut window = ReplayWindow::default();
                assert_eq!(
                    open(&server.receive, &mut window, &copy, &header, &mut plain),
                    Err(OpenError::DecryptFailed),
                    "byte {i} bit {bit}"
                );
                assert_eq!(window.highest(), None, "nothing recorded");
            }
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
