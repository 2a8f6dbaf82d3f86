//! The secure-mode wire format, version 2 (`docs/protocol.md` is the normative description;
//! this file and that page must say the same thing).
//!
//! Every secure-mode datagram starts with a type byte. Handshake datagrams have fixed layouts
//! around the two Noise NK messages; session datagrams are `type | conv | packet number |
//! ciphertext | AEAD tag`, the first 13 bytes in the clear and bound as associated data.

use std::net::{IpAddr, SocketAddr};

/// The only protocol version this code speaks.
pub const VERSION: u8 = 2;
/// The cipher suite byte of `Noise_NK_25519_ChaChaPoly_BLAKE2s`, the only one defined.
pub const SUITE_NK_25519_CHACHAPOLY_BLAKE2S: u8 = 1;
/// The Noise protocol name of [`SUITE_NK_25519_CHACHAPOLY_BLAKE2S`].
pub const SUITE_NAME: &str = "Noise_NK_25519_ChaChaPoly_BLAKE2s";

/// Client → server: opens a handshake (zero cookie) or completes it (cookie from COOKIE).
pub const TYPE_HELLO: u8 = 0x01;
/// Server → client: the address-validation cookie.
pub const TYPE_COOKIE: u8 = 0x02;
/// Server → client: the second Noise message, carrying the session's conv.
pub const TYPE_ACCEPT: u8 = 0x03;
/// Server → client: the handshake was refused, with a reason code.
pub const TYPE_REJECT: u8 = 0x04;
/// Server to client: "I have no session with this conv", answering one of the client's session
/// datagrams and echoing its packet number and the first bytes of its AEAD tag.
pub const TYPE_RESET: u8 = 0x05;
/// Either way: one KCP datagram.
pub const TYPE_DATA: u8 = 0x10;
/// Either way: nothing to say, still here.
pub const TYPE_KEEPALIVE: u8 = 0x11;
/// Either way: the session ends, with a reason code (and an application code and text).
pub const TYPE_DISCONNECT: u8 = 0x12;
/// Either way: one unreliable application datagram, outside KCP (`secure::datagram`).
pub const TYPE_DATAGRAM: u8 = 0x13;
/// Either way: Reed-Solomon parity over the sender's preceding session datagrams
/// (`secure::fec`), sent only by a sender with FEC on.
pub const TYPE_FEC_PARITY: u8 = 0x14;

/// Random bytes a client picks per connection attempt; every server reply echoes them.
pub const NONCE_LEN: usize = 16;
/// The cookie: a 4-byte time slot and a 12-byte MAC, opaque to clients.
pub const COOKIE_LEN: usize = 16;
/// The first bytes of SHA-256 of a server static public key: which key a HELLO is for.
pub const KEY_ID_LEN: usize = 4;
/// An X25519 public key (a Noise ephemeral or static key).
pub const DH_LEN: usize = 32;
/// The Poly1305 tag of every AEAD ciphertext.
pub const AEAD_TAG_LEN: usize = 16;
/// Bytes of the AEAD tag a RESET echoes.
pub const TAG_LEN: usize = 8;
/// `type | conv | packet number`: in the clear, and the associated data of the AEAD.
pub const SESSION_HEADER_LEN: usize = 1 + 4 + 8;
/// Bytes a session datagram adds around the KCP datagram it carries.
pub const SESSION_OVERHEAD: usize = SESSION_HEADER_LEN + AEAD_TAG_LEN;
/// The longest application token a HELLO may carry.
pub const MAX_TOKEN_LEN: usize = 1024;
/// The smallest MTU a secure session works with: KCP's smallest (50 bytes) plus the session
/// framing. A HELLO or ACCEPT stating less is malformed.
pub const MIN_MTU: u16 = 50 + SESSION_OVERHEAD as u16;
/// The MTU field that opens the KCP parameters ([`KcpParams`]).
pub const MTU_FIELD_LEN: usize = 2;
/// The KCP parameters that open the HELLO's Noise payload and close the ACCEPT's: `mtu (u16) |
/// receive window (u16) | max message size (u32) | flags (u8)`, little-endian.
pub const PARAMS_LEN: usize = MTU_FIELD_LEN + 2 + 4 + 1;
/// [`KcpParams`] flags bit 0: the side runs KCP in stream mode.
pub const FLAG_STREAM: u8 = 1;
/// `type | version | suite | reserved | key id | nonce | cookie`, then the Noise message.
pub const HELLO_HEADER_LEN: usize = 4 + KEY_ID_LEN + NONCE_LEN + COOKIE_LEN;
/// The part of the HELLO the Noise prologue covers: everything before the cookie.
pub const HELLO_PROLOGUE_LEN: usize = 4 + KEY_ID_LEN + NONCE_LEN;
/// A HELLO with an empty token: its header, the client's ephemeral key and the payload (the
/// client's KCP parameters alone) with its tag. No reply is larger than this.
pub const HELLO_MIN_LEN: usize = HELLO_HEADER_LEN + DH_LEN + PARAMS_LEN + AEAD_TAG_LEN;
/// The longest HELLO.
pub const HELLO_MAX_LEN: usize = HELLO_MIN_LEN + MAX_TOKEN_LEN;
/// The ASCII label the Noise prologue starts with.
pub const PROLOGUE_LABEL: &[u8] = b"kcpwatch secure v2";
/// COOKIE datagram length.
pub const COOKIE_DATAGRAM_LEN: usize = 4 + NONCE_LEN + COOKIE_LEN;
/// The ACCEPT's Noise payload: conv, the server's idle timeout and its KCP parameters (with the
/// agreed MTU).
pub const ACCEPT_PAYLOAD_LEN: usize = 4 + 4 + PARAMS_LEN;
/// ACCEPT datagram length: header, nonce, the server's ephemeral key, the encrypted payload.
pub const ACCEPT_LEN: usize = 4 + NONCE_LEN + DH_LEN + ACCEPT_PAYLOAD_LEN + AEAD_TAG_LEN;
/// REJECT datagram length (with the application's reason code).
pub const REJECT_LEN: usize = 4 + NONCE_LEN + 2;
/// The REJECT prefix every version reads: what a `version_mismatch` REJECT is, so a client of
/// another version can read it.
pub const REJECT_SHORT_LEN: usize = 4 + NONCE_LEN;
/// RESET datagram length: `type | conv | packet number | first 8 bytes of the AEAD tag`,
/// smaller than the smallest session datagram, so a RESET never amplifies.
pub const RESET_LEN: usize = SESSION_HEADER_LEN + TAG_LEN;
/// The longest close text a DISCONNECT carries, in bytes of UTF-8 (a WebSocket close frame's).
pub const MAX_CLOSE_TEXT: usize = 123;
/// A DISCONNECT's plaintext: reason, application code, text.
pub const DISCONNECT_BODY_MAX: usize = 3 + MAX_CLOSE_TEXT;

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
    /// The HELLO names a server key (by its id) the server does not hold.
    UnknownServerKey,
    /// The server is shutting down: the token was not judged, and connecting again later (or
    /// to another server) may work.
    Shutdown,
    /// The HELLO decrypted but its payload is not valid (an MTU below [`MIN_MTU`], a receive
    /// window of 0).
    Malformed,
    /// The client runs KCP in stream mode and the server in message mode, or the other way
    /// round: the two cannot share a session (`stream` must be the same on both sides).
    StreamMismatch,
}

impl RejectReason {
    /// The reason byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            Self::VersionMismatch => 1,
            Self::AuthRejected => 2,
            Self::Capacity => 3,
            Self::RateLimited => 4,
            Self::UnknownServerKey => 5,
            Self::Shutdown => 6,
            Self::Malformed => 7,
            Self::StreamMismatch => 8,
        }
    }

    /// The reason for a reason byte.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::VersionMismatch,
            2 => Self::AuthRejected,
            3 => Self::Capacity,
            4 => Self::RateLimited,
            5 => Self::UnknownServerKey,
            6 => Self::Shutdown,
            7 => Self::Malformed,
            8 => Self::StreamMismatch,
            _ => return None,
        })
    }
}

/// A parsed HELLO. Borrowed from the datagram: parsing never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello<'a> {
    /// The version the client speaks.
    pub version: u8,
    /// The cipher suite the client asks for.
    pub suite: u8,
    /// Which server static key the client holds.
    pub key_id: [u8; KEY_ID_LEN],
    /// The client's attempt nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The cookie, or `None` for the opening HELLO (all zero on the wire).
    pub cookie: Option<[u8; COOKIE_LEN]>,
    /// The bytes the Noise prologue covers (type to nonce).
    pub prologue: &'a [u8],
    /// The first Noise message (`e, es` and the encrypted token).
    pub noise: &'a [u8],
}

/// Why a datagram is not a well-formed secure-mode datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than its type's fixed part, or than the HELLO minimum.
    TooShort,
    /// Longer than a HELLO with the longest token.
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

/// Parses a HELLO. A HELLO of another version parses (so the server can say which version it
/// speaks) if it has at least 64 bytes: its nonce is at offset 4 in version 1 and, from
/// version 2 on, at offset 8 (later versions keep the key id and nonce where version 2 has
/// them).
pub fn parse_hello(datagram: &[u8]) -> Result<Hello<'_>, WireError> {
    if datagram.first() != Some(&TYPE_HELLO) {
        return Err(WireError::BadType);
    }
    let version = datagram.get(1).copied().unwrap_or(0);
    if version != VERSION && datagram.len() >= 64 {
        // Another version's layout: only its version and nonce are read, to say which
        // version this server speaks.
        let at = if version == 1 { 4 } else { 4 + KEY_ID_LEN };
        return Ok(Hello {
            version,
            suite: 0,
            key_id: [0; KEY_ID_LEN],
            nonce: array(&datagram[at..]),
            cookie: None,
            prologue: &[],
            noise: &[],
        });
    }
    if datagram.len() < HELLO_MIN_LEN {
        return Err(WireError::TooShort);
    }
    if datagram.len() > HELLO_MAX_LEN {
        return Err(WireError::BadLength);
    }
    let cookie: [u8; COOKIE_LEN] = array(&datagram[HELLO_PROLOGUE_LEN..]);
    Ok(Hello {
        version,
        suite: datagram[2],
        key_id: array(&datagram[4..]),
        nonce: array(&datagram[4 + KEY_ID_LEN..]),
        cookie: (cookie != [0; COOKIE_LEN]).then_some(cookie),
        prologue: &datagram[..HELLO_PROLOGUE_LEN],
        noise: &datagram[HELLO_HEADER_LEN..],
    })
}

/// The Noise prologue of a handshake: [`PROLOGUE_LABEL`] then the HELLO's first
/// [`HELLO_PROLOGUE_LEN`] bytes, so the version, suite, key id and nonce cannot be altered
/// without failing the handshake.
pub fn prologue(hello_head: &[u8]) -> [u8; PROLOGUE_LABEL.len() + HELLO_PROLOGUE_LEN] {
    let mut out = [0; PROLOGUE_LABEL.len() + HELLO_PROLOGUE_LEN];
    out[..PROLOGUE_LABEL.len()].copy_from_slice(PROLOGUE_LABEL);
    out[PROLOGUE_LABEL.len()..].copy_from_slice(&hello_head[..HELLO_PROLOGUE_LEN]);
    out
}

/// Writes a HELLO's header into `out` (cleared first): the caller appends the Noise message.
pub fn write_hello_header(
    out: &mut Vec<u8>,
    key_id: &[u8; KEY_ID_LEN],
    nonce: &[u8; NONCE_LEN],
    cookie: Option<&[u8; COOKIE_LEN]>,
) {
    out.clear();
    out.extend_from_slice(&[TYPE_HELLO, VERSION, SUITE_NK_25519_CHACHAPOLY_BLAKE2S, 0]);
    out.extend_from_slice(key_id);
    out.extend_from_slice(nonce);
    out.extend_from_slice(cookie.unwrap_or(&[0; COOKIE_LEN]));
}

/// Puts `cookie` into a HELLO built by [`write_hello_header`].
pub fn set_hello_cookie(hello: &mut [u8], cookie: &[u8; COOKIE_LEN]) {
    hello[HELLO_PROLOGUE_LEN..HELLO_HEADER_LEN].copy_from_slice(cookie);
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

/// The KCP parameters a side states in the handshake (the client in its HELLO, the server in
/// its ACCEPT), from which each side works out the largest message it may send: a message
/// can only be received if it has no more fragments than the receiver's window and no more
/// bytes than the receiver's `max_message_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KcpParams {
    /// HELLO: the largest datagram the client accepts. ACCEPT: the agreed MTU, the smaller
    /// of the client's and the server's.
    pub mtu: u16,
    /// The sender's KCP receive window in segments (at least 1).
    pub receive_window: u16,
    /// The largest message the sender accepts from its peer.
    pub max_message_size: u32,
    /// The sender runs KCP in stream mode ([`FLAG_STREAM`]).
    pub stream: bool,
}

impl Default for KcpParams {
    /// KCP's defaults (MTU 1400, window 128, 64 KiB messages, message mode).
    fn default() -> Self {
        Self {
            mtu: 1400,
            receive_window: 128,
            max_message_size: 64 * 1024,
            stream: false,
        }
    }
}

impl KcpParams {
    /// The parameters' bytes.
    pub fn to_bytes(self) -> [u8; PARAMS_LEN] {
        let mut out = [0; PARAMS_LEN];
        out[..2].copy_from_slice(&self.mtu.to_le_bytes());
        out[2..4].copy_from_slice(&self.receive_window.to_le_bytes());
        out[4..8].copy_from_slice(&self.max_message_size.to_le_bytes());
        out[8] = if self.stream { FLAG_STREAM } else { 0 };
        out
    }

    /// Reads [`PARAMS_LEN`] bytes. Flag bits other than [`FLAG_STREAM`] are reserved: sent as
    /// 0, ignored. Values are not checked here ([`KcpParams::usable`]).
    pub fn from_bytes(bytes: &[u8; PARAMS_LEN]) -> Self {
        Self {
            mtu: u16::from_le_bytes(array(bytes)),
            receive_window: u16::from_le_bytes(array(&bytes[2..])),
            max_message_size: u32::from_le_bytes(array(&bytes[4..])),
            stream: bytes[8] & FLAG_STREAM != 0,
        }
    }

    /// Whether a session can work with these: an MTU of at least [`MIN_MTU`] and a receive
    /// window of at least one segment.
    pub fn usable(&self) -> bool {
        self.mtu >= MIN_MTU && self.receive_window >= 1
    }
}

/// The ACCEPT's decrypted payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptPayload {
    /// The conv the server assigned (never 0).
    pub conv: u32,
    /// The server's idle timeout in milliseconds, so the client can pace its keepalives.
    pub idle_timeout_ms: u32,
    /// The server's KCP parameters; their `mtu` is the agreed MTU: the largest datagram either
    /// side sends in this session, the smaller of the client's (its HELLO) and the server's.
    pub params: KcpParams,
}

impl AcceptPayload {
    /// The payload's bytes.
    pub fn to_bytes(self) -> [u8; ACCEPT_PAYLOAD_LEN] {
        let mut out = [0; ACCEPT_PAYLOAD_LEN];
        out[..4].copy_from_slice(&self.conv.to_le_bytes());
        out[4..8].copy_from_slice(&self.idle_timeout_ms.to_le_bytes());
        out[8..].copy_from_slice(&self.params.to_bytes());
        out
    }

    /// Reads a decrypted payload; `None` if it is not one (wrong length, conv 0, parameters a
    /// session cannot work with).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == ACCEPT_PAYLOAD_LEN)
            .then(|| Self {
                conv: u32::from_le_bytes(array(bytes)),
                idle_timeout_ms: u32::from_le_bytes(array(&bytes[4..])),
                params: KcpParams::from_bytes(&array(&bytes[8..])),
            })
            .filter(|p| p.conv != 0 && p.params.usable())
    }
}

/// Writes an ACCEPT's header into `out` (`ACCEPT_LEN` bytes); the caller writes the Noise
/// message at `out[ACCEPT_NOISE_AT..]`.
pub fn write_accept_header(out: &mut [u8; ACCEPT_LEN], nonce: &[u8; NONCE_LEN]) {
    out[..4].copy_from_slice(&[TYPE_ACCEPT, VERSION, SUITE_NK_25519_CHACHAPOLY_BLAKE2S, 0]);
    out[4..4 + NONCE_LEN].copy_from_slice(nonce);
}

/// Where the Noise message starts in an ACCEPT.
pub const ACCEPT_NOISE_AT: usize = 4 + NONCE_LEN;

/// Splits an ACCEPT into the nonce it answers and its Noise message.
pub fn parse_accept(datagram: &[u8]) -> Option<([u8; NONCE_LEN], &[u8])> {
    (datagram.len() == ACCEPT_LEN
        && datagram[0] == TYPE_ACCEPT
        && datagram[1] == VERSION
        && datagram[2] == SUITE_NK_25519_CHACHAPOLY_BLAKE2S)
        .then(|| (array(&datagram[4..]), &datagram[ACCEPT_NOISE_AT..]))
}

/// Writes a REJECT; `app_code` is the application's reason (0: none). A `version_mismatch`
/// REJECT is the [`REJECT_SHORT_LEN`]-byte prefix every version reads. Returns its length.
pub fn write_reject(
    out: &mut [u8; REJECT_LEN],
    nonce: &[u8; NONCE_LEN],
    reason: RejectReason,
    app_code: u16,
) -> usize {
    out[..4].copy_from_slice(&[TYPE_REJECT, VERSION, reason.code(), 0]);
    out[4..REJECT_SHORT_LEN].copy_from_slice(nonce);
    out[REJECT_SHORT_LEN..].copy_from_slice(&app_code.to_le_bytes());
    if reason == RejectReason::VersionMismatch {
        REJECT_SHORT_LEN
    } else {
        REJECT_LEN
    }
}

/// A parsed REJECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    /// The nonce of the HELLO it answers.
    pub nonce: [u8; NONCE_LEN],
    /// The reason byte.
    pub reason: u8,
    /// The version the server speaks.
    pub version: u8,
    /// The application's reason code (0: none).
    pub app_code: u16,
}

/// Parses a REJECT (the short form or the full one).
pub fn parse_reject(datagram: &[u8]) -> Option<Reject> {
    ((datagram.len() == REJECT_LEN || datagram.len() == REJECT_SHORT_LEN)
        && datagram[0] == TYPE_REJECT)
        .then(|| Reject {
            nonce: array(&datagram[4..]),
            reason: datagram[2],
            version: datagram[1],
            app_code: if datagram.len() == REJECT_LEN {
                u16::from_le_bytes(array(&datagram[REJECT_SHORT_LEN..]))
            } else {
                0
            },
        })
}

/// The bytes of the AEAD tag a RESET echoes: the first [`TAG_LEN`] of the datagram's tag.
pub fn reset_tag(datagram: &[u8]) -> Option<[u8; TAG_LEN]> {
    let len = datagram.len();
    (len >= SESSION_OVERHEAD).then(|| array(&datagram[len - AEAD_TAG_LEN..]))
}

/// A RESET answering a session datagram for a conv the server has no session with: its type,
/// then the datagram's conv, packet number and the first bytes of its AEAD tag, copied.
pub fn write_reset(out: &mut [u8; RESET_LEN], header: &SessionHeader, tag: &[u8; TAG_LEN]) {
    out[0] = TYPE_RESET;
    out[1..5].copy_from_slice(&header.conv.to_le_bytes());
    out[5..13].copy_from_slice(&header.packet_number.to_le_bytes());
    out[13..].copy_from_slice(tag);
}

/// Parses a RESET: the conv, packet number and tag bytes it echoes.
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
    /// [`TYPE_DATA`], [`TYPE_KEEPALIVE`], [`TYPE_DISCONNECT`], [`TYPE_DATAGRAM`] or
    /// [`TYPE_FEC_PARITY`].
    pub kind: u8,
    /// The session's conv.
    pub conv: u32,
    /// The sender's packet number.
    pub packet_number: u64,
}

impl SessionHeader {
    /// The 13 header bytes: what the AEAD binds as associated data.
    pub fn to_bytes(&self) -> [u8; SESSION_HEADER_LEN] {
        let mut out = [0; SESSION_HEADER_LEN];
        out[0] = self.kind;
        out[1..5].copy_from_slice(&self.conv.to_le_bytes());
        out[5..].copy_from_slice(&self.packet_number.to_le_bytes());
        out
    }
}

/// Splits a session datagram into its header and its sealed part (ciphertext and AEAD tag);
/// `None` if it is not one.
pub fn parse_session(datagram: &[u8]) -> Option<(SessionHeader, &[u8])> {
    if datagram.len() < SESSION_OVERHEAD {
        return None;
    }
    let kind = datagram[0];
    if !matches!(
        kind,
        TYPE_DATA | TYPE_KEEPALIVE | TYPE_DISCONNECT | TYPE_DATAGRAM | TYPE_FEC_PARITY
    ) {
        return None;
    }
    let header = SessionHeader {
        kind,
        conv: u32::from_le_bytes(array(&datagram[1..])),
        packet_number: u64::from_le_bytes(array(&datagram[5..])),
    };
    Some((header, &datagram[SESSION_HEADER_LEN..]))
}

/// The conv of a session datagram, read without checking anything else.
pub fn session_conv(datagram: &[u8]) -> Option<u32> {
    (datagram.len() >= SESSION_HEADER_LEN).then(|| u32::from_le_bytes(array(&datagram[1..])))
}

/// A DISCONNECT's content: why, and what the application said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisconnectBody<'a> {
    /// The close reason byte (`docs/protocol.md`, DISCONNECT).
    pub reason: u8,
    /// The application's close code (0: none).
    pub app_code: u16,
    /// The application's close text (at most [`MAX_CLOSE_TEXT`] bytes of UTF-8).
    pub text: &'a str,
}

/// Writes a DISCONNECT plaintext into `out`; the text is cut to [`MAX_CLOSE_TEXT`] bytes at a
/// character boundary. Returns its length.
pub fn write_disconnect_body(
    out: &mut [u8; DISCONNECT_BODY_MAX],
    body: &DisconnectBody<'_>,
) -> usize {
    out[0] = body.reason;
    out[1..3].copy_from_slice(&body.app_code.to_le_bytes());
    let mut end = body.text.len().min(MAX_CLOSE_TEXT);
    while !body.text.is_char_boundary(end) {
        end -= 1;
    }
    out[3..3 + end].copy_from_slice(&body.text.as_bytes()[..end]);
    3 + end
}

/// Reads a decrypted DISCONNECT plaintext. Missing fields read as none; a text that is not
/// UTF-8 or too long is left out (the session still ends).
pub fn parse_disconnect_body(body: &[u8]) -> DisconnectBody<'_> {
    let reason = body.first().copied().unwrap_or(0);
    let app_code = if body.len() >= 3 {
        u16::from_le_bytes([body[1], body[2]])
    } else {
        0
    };
    let text = body
        .get(3..)
        .filter(|t| t.len() <= MAX_CLOSE_TEXT)
        .and_then(|t| std::str::from_utf8(t).ok())
        .unwrap_or("");
    DisconnectBody {
        reason,
        app_code,
        text,
    }
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
    fn replies_are_never_larger_than_the_smallest_hello() {
        const { assert!(COOKIE_DATAGRAM_LEN <= HELLO_MIN_LEN) };
        const { assert!(ACCEPT_LEN <= HELLO_MIN_LEN) };
        const { assert!(REJECT_LEN <= HELLO_MIN_LEN) };
        const { assert!(RESET_LEN <= SESSION_OVERHEAD) };
    }

    #[test]
    fn hello_refuses_bad_lengths() {
        let mut out = Vec::new();
        write_hello_header(&mut out, &[1; KEY_ID_LEN], &[7; NONCE_LEN], None);
        out.resize(HELLO_MIN_LEN - 1, 0);
        assert_eq!(parse_hello(&out), Err(WireError::TooShort));
        out.resize(HELLO_MAX_LEN + 1, 0);
        assert_eq!(parse_hello(&out), Err(WireError::BadLength));
        out.resize(HELLO_MIN_LEN, 0);
        let hello = parse_hello(&out).unwrap();
        assert_eq!((hello.version, hello.cookie), (VERSION, None));
        assert_eq!(hello.noise.len(), DH_LEN + PARAMS_LEN + AEAD_TAG_LEN);
        set_hello_cookie(&mut out, &[9; COOKIE_LEN]);
        assert_eq!(parse_hello(&out).unwrap().cookie, Some([9; COOKIE_LEN]));
    }

    #[test]
    fn a_version_1_hello_parses_far_enough_to_be_told_the_version() {
        let mut v1 = vec![0u8; 64];
        v1[..2].copy_from_slice(&[TYPE_HELLO, 1]);
        v1[4..20].copy_from_slice(&[0xa5; 16]);
        let hello = parse_hello(&v1).unwrap();
        assert_eq!((hello.version, hello.nonce), (1, [0xa5; 16]));
        let mut reject = [0; REJECT_LEN];
        let len = write_reject(&mut reject, &hello.nonce, RejectReason::VersionMismatch, 0);
        assert_eq!(len, 20, "a version 1 client reads a 20-byte REJECT");
    }

    #[test]
    fn reject_and_disconnect_round_trip() {
        let mut reject = [0; REJECT_LEN];
        let len = write_reject(
            &mut reject,
            &[3; NONCE_LEN],
            RejectReason::AuthRejected,
            4242,
        );
        let parsed = parse_reject(&reject[..len]).unwrap();
        assert_eq!(
            (parsed.reason, parsed.app_code, parsed.version),
            (2, 4242, VERSION)
        );
        let mut body = [0; DISCONNECT_BODY_MAX];
        let long = "é".repeat(100);
        let len = write_disconnect_body(
            &mut body,
            &DisconnectBody {
                reason: 4,
                app_code: 4000,
                text: &long,
            },
        );
        let parsed = parse_disconnect_body(&body[..len]);
        assert_eq!((parsed.reason, parsed.app_code), (4, 4000));
        assert_eq!(parsed.text.len(), 122, "cut at a character boundary");
        assert_eq!(parse_disconnect_body(&[5]).app_code, 0);
        assert_eq!(parse_disconnect_body(&[5, 1, 0, 0xff]).text, "");
    }

    #[test]
    fn mapped_addresses_cover_the_same_bytes() {
        let v4: SocketAddr = "192.0.2.1:9".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:9".parse().unwrap();
        assert_eq!(address_bytes(v4), address_bytes(mapped));
    }
}
