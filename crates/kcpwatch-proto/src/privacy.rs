//! IP privacy transforms, applied before an address leaves the addon (docs/privacy.md).
//!
//! Detectors work on the real addresses in memory; every address written to a record goes through
//! [`IpPrivacy::apply`] first, so the mode chosen for a deployment is the only place that decides
//! what an output may contain. Keys are validated once, when the mode is built, and the per-record
//! path does not allocate: records are produced for every connection and every sampled drop.
//!
//! An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket reports for an IPv4
//! peer) is treated as the IPv4 address in every transforming mode, so a dual-stack listener
//! gives the same pseudonyms and prefixes as an IPv4 one. Only [`IpPrivacy::Full`] passes the
//! address through untouched.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use aes::{Aes128Enc, Block};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

/// Default IPv4 prefix kept by [`IpPrivacy::Truncate`]: a /24 is the smallest block commonly
/// routed and assigned, so it locates a network without naming the host.
pub const DEFAULT_V4_PREFIX: u8 = 24;

/// Default IPv6 prefix kept by [`IpPrivacy::Truncate`]: a /48 is the usual site assignment, so
/// (like an IPv4 /24) it names a network rather than a subscriber's /64 or a host.
pub const DEFAULT_V6_PREFIX: u8 = 48;

/// Shortest HMAC key accepted: 128 bits, so that guessing the key is no easier than guessing
/// the truncated MAC.
pub const MIN_HMAC_KEY_LEN: usize = 16;

/// Longest key id accepted, in characters.
pub const MAX_KEY_ID_LEN: usize = 32;

/// Length of a Crypto-PAn key: 16 bytes of AES-128 key, then 16 bytes from which the pad is made.
pub const CRYPTOPAN_KEY_LEN: usize = 32;

/// MAC bytes kept in a pseudonym: 128 bits make accidental collisions negligible for any number
/// of addresses a deployment will see, and keep the text short.
const PSEUDONYM_MAC_LEN: usize = 16;

/// Base64 (unpadded) length of [`PSEUDONYM_MAC_LEN`] bytes.
const PSEUDONYM_MAC_TEXT_LEN: usize = 22;

/// Longest pseudonym text: a key id of [`MAX_KEY_ID_LEN`] characters, `:`, 22 base64url
/// characters.
pub const MAX_PSEUDONYM_LEN: usize = MAX_KEY_ID_LEN + 1 + PSEUDONYM_MAC_TEXT_LEN;

/// A privacy mode that cannot be built from the given settings.
///
/// Messages never contain key bytes, and repeat only lengths and positions of a rejected key id,
/// so they are safe to log.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PrivacyError {
    /// An IPv4 prefix longer than an IPv4 address.
    #[error("IPv4 prefix /{0} is longer than 32 bits")]
    V4PrefixTooLong(u8),
    /// An IPv6 prefix longer than an IPv6 address.
    #[error("IPv6 prefix /{0} is longer than 128 bits")]
    V6PrefixTooLong(u8),
    /// An HMAC key shorter than [`MIN_HMAC_KEY_LEN`] bytes.
    #[error("HMAC key is {len} bytes; at least 16 random bytes are needed")]
    HmacKeyTooShort {
        /// Length of the rejected key, in bytes.
        len: usize,
    },
    /// A key id that is empty or longer than [`MAX_KEY_ID_LEN`] characters.
    #[error("key id is {len} characters; 1 to 32 are allowed")]
    KeyIdLength {
        /// Length of the rejected key id, in characters.
        len: usize,
    },
    /// A key id character outside `A-Z a-z 0-9 _ -` (kept to these so a pseudonym is one token
    /// that needs no quoting in any output format).
    #[error("key id character {index} is not one of A-Z a-z 0-9 _ -")]
    KeyIdCharacter {
        /// Zero-based position of the first rejected character.
        index: usize,
    },
    /// A Crypto-PAn key that is not exactly [`CRYPTOPAN_KEY_LEN`] bytes.
    #[error("Crypto-PAn key is {len} bytes; exactly 32 are needed")]
    CryptoPanKeyLength {
        /// Length of the rejected key, in bytes.
        len: usize,
    },
}

/// How addresses are written to records.
#[derive(Debug, Clone, Default)]
pub enum IpPrivacy {
    /// The address as it is.
    #[default]
    Full,
    /// The network address: host bits zeroed.
    Truncate(Truncation),
    /// A keyed pseudonym instead of the address.
    Hmac(HmacPseudonymizer),
    /// A prefix-preserving pseudonymous address.
    CryptoPan(CryptoPan),
    /// No address at all.
    Omit,
}

impl IpPrivacy {
    /// [`IpPrivacy::Truncate`] keeping `v4_prefix` bits of IPv4 and `v6_prefix` bits of IPv6
    /// addresses.
    pub fn truncate(v4_prefix: u8, v6_prefix: u8) -> Result<Self, PrivacyError> {
        Truncation::new(v4_prefix, v6_prefix).map(Self::Truncate)
    }

    /// [`IpPrivacy::Hmac`] with pseudonyms `"<key_id>:<mac>"`.
    pub fn hmac(key_id: &str, key: &[u8]) -> Result<Self, PrivacyError> {
        HmacPseudonymizer::new(key_id, key).map(Self::Hmac)
    }

    /// [`IpPrivacy::CryptoPan`] with a key of exactly [`CRYPTOPAN_KEY_LEN`] bytes.
    pub fn cryptopan(key: &[u8]) -> Result<Self, PrivacyError> {
        CryptoPan::from_slice(key).map(Self::CryptoPan)
    }

    /// What may be written for `ip` under this mode.
    pub fn apply(&self, ip: IpAddr) -> PrivateIp {
        match self {
            Self::Full => PrivateIp::Ip(ip),
            Self::Truncate(t) => PrivateIp::Ip(t.truncate(ip)),
            // Failing closed: should a pseudonym ever fail to build, no address is written.
            Self::Hmac(h) => h
                .pseudonym(ip)
                .map_or(PrivateIp::Omitted, PrivateIp::Pseudonym),
            Self::CryptoPan(c) => PrivateIp::Ip(c.anonymize(ip)),
            Self::Omit => PrivateIp::Omitted,
        }
    }

    /// The mode's name as written in records and accepted in configuration: `full`, `truncate`,
    /// `hmac`, `cryptopan` or `omit`.
    pub fn mode_name(&self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Truncate(_) => "truncate",
            Self::Hmac(_) => "hmac",
            Self::CryptoPan(_) => "cryptopan",
            Self::Omit => "omit",
        }
    }

    /// Whether the mode outputs addresses whose prefixes still mean something (`full`, `truncate`,
    /// `cryptopan`): two outputs share a prefix exactly when the inputs did, up to the truncation
    /// length.
    ///
    /// This decides whether a Community ID may be computed over the transformed addresses. Over
    /// the raw addresses it would undo every mode but `full` (its seed is public and 16 bits), so
    /// in the other modes it is omitted unless the user opts in to computing it over the
    /// transformed addresses; that only makes sense where there are addresses whose structure is
    /// kept. The result then joins kcpwatch records with each other, not with other sensors.
    pub fn keeps_prefixes(&self) -> bool {
        matches!(self, Self::Full | Self::Truncate(_) | Self::CryptoPan(_))
    }
}

/// What the HMAC of a user id starts with: 17 bytes, so the input is never 4 or 16 bytes long
/// like an address's.
const USER_ID_LABEL: &[u8] = b"kcpwatch user id:";

/// A user id as it may leave the addon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrivateUser<'a> {
    /// The id as the application gave it (mode `full`).
    Text(&'a str),
    /// A keyed pseudonym of the id (mode `hmac`).
    Pseudonym(Pseudonym),
    /// Nothing may be written (`truncate`, `cryptopan`, `omit`: their address transforms mean
    /// nothing for a name, and an id in clear would identify the player they hide).
    Omitted,
}

impl IpPrivacy {
    /// What may be written for a user id under this mode.
    pub fn apply_user<'a>(&self, user: &'a str) -> PrivateUser<'a> {
        match self {
            Self::Full => PrivateUser::Text(user),
            Self::Hmac(h) => h
                .user_pseudonym(user)
                .map_or(PrivateUser::Omitted, PrivateUser::Pseudonym),
            Self::Truncate(_) | Self::CryptoPan(_) | Self::Omit => PrivateUser::Omitted,
        }
    }
}

/// An address as it may leave the addon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrivateIp {
    /// An address: the real one, its network, or a Crypto-PAn pseudonymous address.
    Ip(IpAddr),
    /// A keyed pseudonym, written in place of the address.
    Pseudonym(Pseudonym),
    /// Nothing may be written.
    Omitted,
}

impl PrivateIp {
    /// The address, if the mode writes one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Ip(ip) => Some(*ip),
            _ => None,
        }
    }

    /// The pseudonym text, if the mode writes one.
    pub fn pseudonym(&self) -> Option<&str> {
        match self {
            Self::Pseudonym(p) => Some(p.as_str()),
            _ => None,
        }
    }

    /// Whether nothing may be written.
    pub fn is_omitted(&self) -> bool {
        matches!(self, Self::Omitted)
    }
}

/// A pseudonym `"<key_id>:<mac>"`, stored inline so that making one per record does not
/// allocate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pseudonym {
    buf: [u8; MAX_PSEUDONYM_LEN],
    len: u8,
}

impl Pseudonym {
    /// The pseudonym as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written into the buffer.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }

    /// The key id part, naming the key that produced the pseudonym.
    pub fn key_id(&self) -> &str {
        let text = self.as_str();
        text.split_once(':').map_or(text, |(id, _)| id)
    }
}

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for Pseudonym {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// Prefix lengths for [`IpPrivacy::Truncate`], validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Truncation {
    v4_prefix: u8,
    v6_prefix: u8,
}

impl Default for Truncation {
    fn default() -> Self {
        Self {
            v4_prefix: DEFAULT_V4_PREFIX,
            v6_prefix: DEFAULT_V6_PREFIX,
        }
    }
}

impl Truncation {
    /// Keep `v4_prefix` (at most 32) bits of IPv4 and `v6_prefix` (at most 128) bits of IPv6
    /// addresses.
    pub fn new(v4_prefix: u8, v6_prefix: u8) -> Result<Self, PrivacyError> {
        if v4_prefix > 32 {
            return Err(PrivacyError::V4PrefixTooLong(v4_prefix));
        }
        if v6_prefix > 128 {
            return Err(PrivacyError::V6PrefixTooLong(v6_prefix));
        }
        Ok(Self {
            v4_prefix,
            v6_prefix,
        })
    }

    /// Bits kept of an IPv4 address.
    pub fn v4_prefix(&self) -> u8 {
        self.v4_prefix
    }

    /// Bits kept of an IPv6 address.
    pub fn v6_prefix(&self) -> u8 {
        self.v6_prefix
    }

    /// The network address of `ip`. A mapped IPv4 address gives an IPv4 network address.
    pub fn truncate(&self, ip: IpAddr) -> IpAddr {
        match unmap(ip) {
            IpAddr::V4(v4) => {
                // A shift by the full width (prefix 0) overflows: no bits are kept then.
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.v4_prefix))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.v6_prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }
}

/// Keyed pseudonyms: `"<key_id>:"` + the first 16 bytes of HMAC-SHA256(key, address bytes) in
/// unpadded base64url.
///
/// The address bytes are the 4 octets of an IPv4 (or mapped) address and the 16 of an IPv6 one.
/// The key id is part of the text so a deployment can rotate keys under a new id and analysts
/// can tell which key made which pseudonym (pseudonyms under different ids never compare equal).
#[derive(Clone)]
pub struct HmacPseudonymizer {
    key_id: String,
    // Keyed once: cloning the keyed state per record skips re-hashing the key.
    mac: Hmac<Sha256>,
}

impl HmacPseudonymizer {
    /// A pseudonymizer for `key` (at least [`MIN_HMAC_KEY_LEN`] bytes) named `key_id` (1 to
    /// [`MAX_KEY_ID_LEN`] characters of `A-Z a-z 0-9 _ -`).
    pub fn new(key_id: &str, key: &[u8]) -> Result<Self, PrivacyError> {
        if let Some(index) = key_id
            .chars()
            .position(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        {
            return Err(PrivacyError::KeyIdCharacter { index });
        }
        if key_id.is_empty() || key_id.len() > MAX_KEY_ID_LEN {
            return Err(PrivacyError::KeyIdLength { len: key_id.len() });
        }
        if key.len() < MIN_HMAC_KEY_LEN {
            return Err(PrivacyError::HmacKeyTooShort { len: key.len() });
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .map_err(|_| PrivacyError::HmacKeyTooShort { len: key.len() })?;
        Ok(Self {
            key_id: key_id.to_owned(),
            mac,
        })
    }

    /// The key id written in front of every pseudonym.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The pseudonym of `ip`; `None` only if the text could not be encoded, which the fixed
    /// lengths rule out.
    pub fn pseudonym(&self, ip: IpAddr) -> Option<Pseudonym> {
        match unmap(ip) {
            IpAddr::V4(v4) => self.pseudonym_of(&[&v4.octets()]),
            IpAddr::V6(v6) => self.pseudonym_of(&[&v6.octets()]),
        }
    }

    /// The pseudonym of a user id: the same key, over a label that makes the input longer than
    /// any address (so no user id and address ever share a pseudonym).
    pub fn user_pseudonym(&self, user: &str) -> Option<Pseudonym> {
        self.pseudonym_of(&[USER_ID_LABEL, user.as_bytes()])
    }

    fn pseudonym_of(&self, parts: &[&[u8]]) -> Option<Pseudonym> {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        let digest = mac.finalize().into_bytes();
        let mut buf = [0u8; MAX_PSEUDONYM_LEN];
        let id = self.key_id.as_bytes();
        buf.get_mut(..id.len())?.copy_from_slice(id);
        *buf.get_mut(id.len())? = b':';
        let start = id.len() + 1;
        let written = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode_slice(&digest[..PSEUDONYM_MAC_LEN], buf.get_mut(start..)?)
            .ok()?;
        Some(Pseudonym {
            buf,
            len: u8::try_from(start + written).ok()?,
        })
    }
}

impl fmt::Debug for HmacPseudonymizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacPseudonymizer")
            .field("key_id", &self.key_id)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Crypto-PAn prefix-preserving pseudonymization (Xu, Fan, Ammar, Moon 2002): two outputs share
/// exactly as many leading bits as the two inputs, and the mapping is a bijection per family.
///
/// As in the reference implementation, the 32-byte key is split: bytes 0..16 are the AES-128
/// key, and the pad is the AES encryption of bytes 16..32. Output bit `i` is input bit `i` XOR
/// the most significant bit of AES(first `i` input bits followed by the remaining bits of the
/// pad), so a bit's flip depends only on the bits before it.
///
/// IPv4 follows the reference bit for bit (the address occupies the first 32 bits of the block,
/// the other 96 are always pad). IPv6 runs the same construction over all 128 bits of the
/// address and block, as yacryptopan and Yawning Angel's Go `cryptopan` do, so results agree
/// with those implementations. A consequence worth knowing: an IPv6 address whose last 96 bits
/// are zero maps, in its first 32 bits, to what the IPv4 address with those 32 bits maps to.
/// Mapped IPv4 addresses are anonymized as IPv4 and returned as IPv4.
#[derive(Clone)]
pub struct CryptoPan {
    // The expanded key schedules of every AES backend take ~700 bytes: boxed (once, at
    // construction) so an `IpPrivacy` stays small enough to copy into each listener's config.
    cipher: Box<Aes128Enc>,
    pad: u128,
}

impl CryptoPan {
    /// A Crypto-PAn instance for `key`; the cipher and pad are computed here, once.
    pub fn new(key: &[u8; CRYPTOPAN_KEY_LEN]) -> Self {
        let cipher = Aes128Enc::new(GenericArray::from_slice(&key[..16]));
        let mut pad = Block::clone_from_slice(&key[16..]);
        cipher.encrypt_block(&mut pad);
        let mut pad_bytes = [0u8; 16];
        pad_bytes.copy_from_slice(&pad);
        Self {
            cipher: Box::new(cipher),
            pad: u128::from_be_bytes(pad_bytes),
        }
    }

    /// Like [`CryptoPan::new`], for a key of unchecked length.
    pub fn from_slice(key: &[u8]) -> Result<Self, PrivacyError> {
        let key: &[u8; CRYPTOPAN_KEY_LEN] = key
            .try_into()
            .map_err(|_| PrivacyError::CryptoPanKeyLength { len: key.len() })?;
        Ok(Self::new(key))
    }

    /// The pseudonymous address of `ip`; a mapped IPv4 address gives an IPv4 address.
    pub fn anonymize(&self, ip: IpAddr) -> IpAddr {
        match unmap(ip) {
            IpAddr::V4(v4) => IpAddr::V4(self.anonymize_v4(v4)),
            IpAddr::V6(v6) => IpAddr::V6(self.anonymize_v6(v6)),
        }
    }

    /// The pseudonymous address of an IPv4 address, as the reference implementation computes it.
    pub fn anonymize_v4(&self, ip: Ipv4Addr) -> Ipv4Addr {
        let addr = u128::from(u32::from(ip)) << 96;
        let out = (addr ^ self.flips::<32>(addr)) >> 96;
        // The shift leaves only the low 32 bits set.
        Ipv4Addr::from(out as u32)
    }

    /// The pseudonymous address of an IPv6 address (the 128-bit generalisation).
    pub fn anonymize_v6(&self, ip: Ipv6Addr) -> Ipv6Addr {
        let addr = u128::from(ip);
        Ipv6Addr::from(addr ^ self.flips::<128>(addr))
    }

    /// The bits to flip in the first `BITS` bits of `addr` (left-aligned in 128 bits).
    fn flips<const BITS: usize>(&self, addr: u128) -> u128 {
        // All blocks are independent, so they are encrypted in one call, which lets the AES-NI
        // backend pipeline several at a time; the array lives on the stack.
        let mut blocks = [Block::default(); BITS];
        for (i, block) in blocks.iter_mut().enumerate() {
            // Bit i's block: the first i address bits, then the pad. A shift by 128 (i = 0)
            // overflows: the block is then all pad.
            let prefix = u128::MAX.checked_shl(128 - i as u32).unwrap_or(0);
            let input = (addr & prefix) | (self.pad & !prefix);
            block.copy_from_slice(&input.to_be_bytes());
        }
        self.cipher.encrypt_blocks(&mut blocks);
        blocks.iter().enumerate().fold(0u128, |flips, (i, block)| {
            flips | (u128::from(block[0] >> 7) << (127 - i))
        })
    }
}

impl fmt::Debug for CryptoPan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CryptoPan { key: <redacted> }")
    }
}

/// The IPv4 address inside a mapped IPv6 address, so every mode treats a dual-stack peer like an
/// IPv4 one.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_id_is_written_in_clear_only_in_full_and_pseudonymised_apart_from_addresses() {
        let h = IpPrivacy::hmac("k1", &[7; 16]).unwrap();
        let PrivateUser::Pseudonym(alice) = h.apply_user("alice") else {
            panic!("hmac pseudonymises a user id");
        };
        assert!(alice.as_str().starts_with("k1:"));
        assert_eq!(h.apply_user("alice"), PrivateUser::Pseudonym(alice));
        assert_ne!(h.apply_user("bob"), PrivateUser::Pseudonym(alice));
        // A user id made of an address's bytes does not share the address's pseudonym.
        let ip: IpAddr = "1.2.3.4".parse().unwrap();
        let as_text = std::str::from_utf8(&[1, 2, 3, 4]).unwrap();
        let (IpPrivacy::Hmac(inner), PrivateUser::Pseudonym(user)) = (&h, h.apply_user(as_text))
        else {
            unreachable!()
        };
        assert_ne!(inner.pseudonym(ip), Some(user));
        assert_eq!(
            IpPrivacy::Full.apply_user("alice"),
            PrivateUser::Text("alice")
        );
        for hidden in [
            IpPrivacy::truncate(24, 48).unwrap(),
            IpPrivacy::cryptopan(&[9; 32]).unwrap(),
            IpPrivacy::Omit,
        ] {
            assert_eq!(hidden.apply_user("alice"), PrivateUser::Omitted);
        }
    }

    #[test]
    fn longest_key_id_fits_the_inline_buffer() {
        let id = "a".repeat(MAX_KEY_ID_LEN);
        let h = HmacPseudonymizer::new(&id, &[7; 16]).unwrap();
        let p = h.pseudonym("2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!(p.as_str().len(), MAX_PSEUDONYM_LEN);
        assert_eq!(p.key_id(), id);
    }

    #[test]
    fn debug_output_hides_keys() {
        let key = [0xabu8; 32];
        let text = format!(
            "{:?} {:?}",
            IpPrivacy::hmac("k1", &key).unwrap(),
            IpPrivacy::cryptopan(&key).unwrap()
        );
        assert!(!text.to_ascii_lowercase().contains("ab, "), "{text}");
        assert!(!text.contains("171"), "{text}");
        assert!(text.contains("redacted"));
    }
}
