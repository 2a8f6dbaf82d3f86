//! Secure mode (docs/protocol.md), protocol version 2: a versioned control layer in front of KCP.
//!
//! - [`wire`]: the datagram layouts, byte by byte (mirrors `docs/protocol.md`).
//! - [`cookie`]: stateless address validation.
//! - [`noise`]: the Noise NK handshake (snow), server static keys and key ids.
//! - [`keys`]: the session AEAD and the replay window.
//! - [`datagram`]: the DATAGRAM body (channel header) and per-channel sequencing.
//! - [`fec`]: forward error correction, FEC_PARITY over the sealed datagrams.
//! - [`mac`]: HMAC-SHA256 for cookies and internal key derivation.
//!
//! The handshake itself runs in the endpoint (`endpoint/secure/`), which owns the sessions.

pub mod cookie;
pub mod datagram;
pub mod fec;
pub mod keys;
pub mod mac;
pub mod noise;
pub mod wire;

pub use cookie::{CookieCheck, CookieJar};
pub use keys::{Freshness, OpenError, ReplayWindow, Role, SessionCipher, SessionKeys};
pub use mac::TagKey;
pub use noise::{key_id, ClientNoise, HandshakeError, ServerNoise, StaticKey};
pub use wire::RejectReason;
