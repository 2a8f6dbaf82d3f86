//! The secure-mode wire format, version 1 (`docs/protocol.md` is the normative description;
//! this file and that page must say the same thing).
//!
//! Every secure-mode datagram starts with a type byte. Handshake datagrams have fixed layouts;
//! session datagrams are `type | conv | packet number | body | tag`, the tag covering everything
//! before it.

use std::net::{IpAddr, SocketAddr};

/// The only protocol version this code speaks.
pub const VERSION: u8 = 1;

/// Client → server: opens a handshake (zero cookie) or completes it (cookie from COOKIE).
pub const TYPE_HELLO: u8 = 0x01;
/// Server → client: the address-validation cookie.
pub const TYPE_COOKIE: u8 = 0x02;
/// Server → client: the session exists; its conv and secret.
pub const TYPE_ACCEPT: u8 = 0x03;
/// Server → client: the handshake was refused, with a reason code.
pub const TYPE_REJECT: u8 = 0x04;
/// Server to client: "I have no session with this conv", answering one of the client's session
/// datagrams and echoing its packet number and tag (a stateless reset).
pub const TYPE_RESET: u8 = 0x05;
/// Either way: one KCP datagram.
pub const TYPE_DATA: u8 = 0x10;
/// Either way: nothing to say, still here.
pub const TYPE_KEEPALIVE: u8 = 0x11;
/// Either way: the session ends, with a reason code.
pub const TYPE_DISCONNECT: u8 = 0x12;

/// Random bytes a client picks per connection attempt; every server reply echoes them.
pub const NONCE_LEN: usize = 16;
/// The cookie: a 4-byte time slot and a 12-byte MAC, opaque to clients.
pub const COOKIE_LEN: usize = 16;
/// The secret ACCEPT hands to the client, from which both direction keys derive.
pub const SECRET_LEN: usize = 32;
/// The tag at the end of every session datagram.
pub const TAG_LEN: usize = 8;
/// `type | conv | packet number`.
pub const SESSION_HEADER_LEN: usize = 1 + 4 + 8;
/// Bytes a session datagram adds around the KCP datagram it carries.
pub const SESSION_OVERHEAD: usize = SESSION_HEADER_LEN + TAG_LEN;
/// HELLOs are padded to at least this size so that no reply to one is larger than it.
pub const HELLO_MIN_LEN: usize = 64;
/// The longest application token a HELLO may carry.
pub const MAX_TOKEN_LEN: usize = 1024;
const HELLO_FIXED_LEN: usize = 4 + NONCE_LEN + COOKIE_LEN;
/// COOKIE datagram length.
pub const COOKIE_DATAGRAM_LEN: usize = 4 + NONCE_LEN + COOKIE_LEN;
/// ACCEPT datagram length.
pub const ACCEPT_LEN: usize = 4 + NONCE_LEN + 4 + SECRET_LEN + 4;
/// REJECT datagram length.
pub const REJECT_LEN: usize = 4 + NONCE_LEN;
/// RESET datagram length: `type | conv | packet number | tag`, the size of the smallest
/// session datagram, so a RESET is never larger than the datagram it answers.
pub const RESET_LEN: usize = SESSION_OVERHEAD;

/// Why a server refused a handshake (the REJECT reason byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The HELLO's version is not one the server speaks; the REJECT carries the server's.
    VersionMismatch,
    /// The application's `authenticate` hook refused the token (or did not answer in time).
    AuthRejected,
    /// A connection limit is reached (total, per address or per prefix).
    Capacity,
    /// The source opened handshakes faster than its rate allows.
    RateLimited,
}

impl RejectReason {
    /// The reason byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            Self::VersionMismatch => 1,
            Self::AuthRejected => 2,
            Self::Capacity => 3,
            Self::RateLimited => 4,
        }
    }

    /// The reason for a reason byte.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::VersionMismatch,
            2 => Self::AuthRejected,
            3 => Self::Capacity,
            4 => Self::RateLimited,
            _ => return None,
        })
    }
}

/// A parsed HELLO. Borrowed from the datagram: parsing never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello<'a> {
    /// The version the client speaks.
    pub version: u8,
    /// The client's attempt nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The cookie, or `None` for the opening HELLO (all zero on the wire).
    pub cookie: Option<[u8; COOKIE_LEN]>,
    /// The application token (may be empty).
    pub token: &'a [u8],
}

/// Why a datagram is not a well-formed secure-mode datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than its type's fixed part, or than the HELLO minimum.
    TooShort,
    /// The token length points past the end, or beyond [`MAX_TOKEN_LEN`].
    BadLength,
    /// A type byte this version does not define, or one that cannot come this way.
    BadType,
}

/// The type byte of a datagram.
pub fn datagram_type(datagram: &[u8]) -> Option<u8> {
    datagram.first().copied()
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// Parses a HELLO. A HELLO with a version other than [`VERSION`] parses (so the server can say
/// which version it speaks) as long as its fixed part is there.
pub fn parse_hello(datagram: &[u8]) -> Result<Hello<'_>, WireError> {
    if datagram.first() != Some(&TYPE_HELLO) {
        return Err(WireError::BadType);
    }
    if datagram.len() < HELLO_MIN_LEN {
        return Err(WireError::TooShort);
    }
    let version = datagram[1];
    let token_len = usize::from(u16::from_le_bytes([datagram[2], datagram[3]]));
    if token_len > MAX_TOKEN_LEN || HELLO_FIXED_LEN + token_len > datagram.len() {
        return Err(WireError::BadLength);
    }
    let nonce = array(&datagram[4..]);
    let cookie: [u8; COOKIE_LEN] = array(&datagram[4 + NONCE_LEN..]);
    Ok(Hello {
        version,
        nonce,
        cookie: (cookie != [0; COOKIE_LEN]).then_some(cookie),
        token: &datagram[HELLO_FIXED_LEN..HELLO_FIXED_LEN + token_len],
    })
}

/// Writes a HELLO into `out` (cleared first), padded to [`HELLO_MIN_LEN`].
pub fn write_hello(
    out: &mut Vec<u8>,
    nonce: &[u8; NONCE_LEN],
    cookie: Option<&[u8; COOKIE_LEN]>,
    token: &[u8],
) {
    out.clear();
    out.push(TYPE_HELLO);
    out.push(VERSION);
    out.extend_from_slice(&(token.len() as u16).to_le_bytes());
    out.extend_from_slice(nonce);
    out.extend_from_slice(cookie.unwrap_or(&[0; COOKIE_LEN]));
    out.extend_from_slice(token);
    if out.len() < HELLO_MIN_LEN {
        out.resize(HELLO_MIN_LEN, 0);
    }
}

/// Writes a COOKIE.
pub fn write_cookie(
    out: &mut [u8; COOKIE_DATAGRAM_LEN],
    nonce: &[u8; NONCE_LEN],
    cookie: &[u8; COOKIE_LEN],
) {
    out[..4].copy_from_slice(&[TYPE_COOKIE, VERSION, 0, 0]);
    out[4..4 + NONCE_LEN].copy_from_slice(nonce);
    out[4 + NONCE_LEN..].copy_from_slice(cookie);
}

/// A parsed COOKIE: the nonce it answers and the cookie.
pub fn parse_cookie(datagram: &[u8]) -> Option<([u8; NONCE_LEN], [u8; COOKIE_LEN])> {
    (datagram.len() == COOKIE_DATAGRAM_LEN && datagram[0] == TYPE_COOKIE && datagram[1] == VERSION)
        .then(|| (array(&datagram[4..]), array(&datagram[4 + NONCE_LEN..])))
}

/// The content of an ACCEPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    /// The nonce of the HELLO it answers.
    pub nonce: [u8; NONCE_LEN],
    /// The conv the server assigned.
    pub conv: u32,
    /// The session secret.
    pub secret: [u8; SECRET_LEN],
    /// The server's idle timeout in milliseconds, so the client can pace its keepalives.
    pub idle_timeout_ms: u32,
}

/// Writes an ACCEPT.
pub fn write_accept(out: &mut [u8; ACCEPT_LEN], accept: &Accept) {
    out[..4].copy_from_slice(&[TYPE_ACCEPT, VERSION, 0, 0]);
    out[4..20].copy_from_slice(&accept.nonce);
    out[20..24].copy_from_slice(&accept.conv.to_le_bytes());
    out[24..56].copy_from_slice(&accept.secret);
    out[56..60].copy_from_slice(&accept.idle_timeout_ms.to_le_bytes());
}

/// Parses an ACCEPT (refusing conv 0, which no server assigns).
pub fn parse_accept(datagram: &[u8]) -> Option<Accept> {
    if datagram.len() != ACCEPT_LEN || datagram[0] != TYPE_ACCEPT || datagram[1] != VERSION {
        return None;
    }
    let accept = Accept {
        nonce: array(&datagram[4..]),
        conv: u32::from_le_bytes(array(&datagram[20..])),
        secret: array(&datagram[24..]),
        idle_timeout_ms: u32::from_le_bytes(array(&datagram[56..])),
    };
    (accept.conv != 0).then_some(accept)
}

/// Writes a REJECT; `version` is the one the server speaks.
pub fn write_reject(out: &mut [u8; REJECT_LEN], nonce: &[u8; NONCE_LEN], reason: RejectReason) {
    out[..4].copy_from_slice(&[TYPE_REJECT, VERSION, reason.code(), 0]);
    out[4..].copy_from_slice(nonce);
}

/// Parses a REJECT: the nonce it answers, the reason byte and the server's version.
pub fn parse_reject(datagram: &[u8]) -> Option<([u8; NONCE_LEN], u8, u8)> {
    (datagram.len() == REJECT_LEN && datagram[0] == TYPE_REJECT)
        .then(|| (array(&datagram[4..]), datagram[2], datagram[1]))
}

/// A RESET answering `datagram`, a session datagram for a conv the server has no session
/// with: its type, then the datagram's conv, packet number and tag, copied.
pub fn write_reset(out: &mut [u8; RESET_LEN], header: &SessionHeader, tag: &[u8; TAG_LEN]) {
    out[0] = TYPE_RESET;
    out[1..5].copy_from_slice(&header.conv.to_le_bytes());
    out[5..13].copy_from_slice(&header.packet_number.to_le_bytes());
    out[13..].copy_from_slice(tag);
}

/// Parses a RESET: the conv, packet number and tag it echoes.
pub fn parse_reset(datagram: &[u8]) -> Option<(u32, u64, [u8; TAG_LEN])> {
    (datagram.len() == RESET_LEN && datagram[0] == TYPE_RESET).then(|| {
        (
            u32::from_le_bytes(array(&datagram[1..])),
            u64::from_le_bytes(array(&datagram[5..])),
            array(&datagram[13..]),
        )
    })
}

/// The header of a session datagram (DATA, KEEPALIVE, DISCONNECT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionHeader {
    /// [`TYPE_DATA`], [`TYPE_KEEPALIVE`] or [`TYPE_DISCONNECT`].
    pub kind: u8,
    /// The session's conv.
    pub conv: u32,
    /// The sender's packet number.
    pub packet_number: u64,
}

/// Splits a session datagram into header, body and tag; `None` if it is not one.
pub fn parse_session(datagram: &[u8]) -> Option<(SessionHeader, &[u8], &[u8; TAG_LEN])> {
    if datagram.len() < SESSION_OVERHEAD {
        return None;
    }
    let kind = datagram[0];
    if !matches!(kind, TYPE_DATA | TYPE_KEEPALIVE | TYPE_DISCONNECT) {
        return None;
    }
    let body_end = datagram.len() - TAG_LEN;
    let header = SessionHeader {
        kind,
        conv: u32::from_le_bytes(array(&datagram[1..])),
        packet_number: u64::from_le_bytes(array(&datagram[5..])),
    };
    let tag: &[u8; TAG_LEN] = datagram[body_end..].try_into().ok()?;
    Some((header, &datagram[SESSION_HEADER_LEN..body_end], tag))
}

/// The conv of a session datagram, read without checking anything else.
pub fn session_conv(datagram: &[u8]) -> Option<u32> {
    (datagram.len() >= SESSION_HEADER_LEN).then(|| u32::from_le_bytes(array(&datagram[1..])))
}

/// An address as the 16 bytes and port the cookie MAC covers (IPv4 as IPv4-mapped IPv6).
pub fn address_bytes(addr: SocketAddr) -> ([u8; 16], u16) {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(v6, |v4| v4.to_ipv6_mapped()),
    };
    (ip.octets(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_pads() {
        let mut out = Vec::new();
        write_hello(&mut out, &[7; NONCE_LEN], None, b"ticket");
        assert_eq!(out.len(), HELLO_MIN_LEN);
        let hello = parse_hello(&out).unwrap();
        assert_eq!(hello.cookie, None);
        assert_eq!(hello.token, b"ticket");
        write_hello(&mut out, &[7; NONCE_LEN], Some(&[9; COOKIE_LEN]), &[1; 100]);
        assert_eq!(out.len(), HELLO_FIXED_LEN + 100);
        let hello = parse_hello(&out).unwrap();
        assert_eq!(hello.cookie, Some([9; COOKIE_LEN]));
        assert_eq!(hello.token.len(), 100);
    }

    #[test]
    fn hello_refuses_bad_lengths() {
        let mut out = Vec::new();
        write_hello(&mut out, &[7; NONCE_LEN], None, b"");
        assert_eq!(parse_hello(&out[..63]), Err(WireError::TooShort));
        out[2] = 200;
        assert_eq!(parse_hello(&out), Err(WireError::BadLength));
        out[2..4].copy_from_slice(&2000u16.to_le_bytes());
        out.resize(3000, 0);
        assert_eq!(parse_hello(&out), Err(WireError::BadLength));
    }

    #[test]
    fn replies_are_never_larger_than_the_smallest_hello() {
        const { assert!(COOKIE_DATAGRAM_LEN <= HELLO_MIN_LEN) };
        const { assert!(ACCEPT_LEN <= HELLO_MIN_LEN) };
        const { assert!(REJECT_LEN <= HELLO_MIN_LEN) };
    }

    #[test]
    fn accept_and_reject_round_trip() {
        let accept = Accept {
            nonce: [1; NONCE_LEN],
            conv: 0xDEAD_BEEF,
            secret: [2; SECRET_LEN],
            idle_timeout_ms: 30_000,
        };
        let mut out = [0; ACCEPT_LEN];
        write_accept(&mut out, &accept);
        assert_eq!(parse_accept(&out), Some(accept));
        let mut reject = [0; REJECT_LEN];
        write_reject(&mut reject, &[3; NONCE_LEN], RejectReason::Capacity);
        assert_eq!(parse_reject(&reject), Some(([3; NONCE_LEN], 3, VERSION)));
        let mut other_version = out;
        other_version[1] = 2;
        assert_eq!(parse_accept(&other_version), None);
        let mut conv_zero = out;
        conv_zero[20..24].fill(0);
        assert_eq!(parse_accept(&conv_zero), None);
    }

    #[test]
    fn mapped_addresses_cover_the_same_bytes() {
        let v4: SocketAddr = "192.0.2.1:9".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:9".parse().unwrap();
        assert_eq!(address_bytes(v4), address_bytes(mapped));
    }
}
