//! Secure mode (DESIGN §4): a versioned control layer in front of KCP.
//!
//! - [`wire`]: the datagram layouts, byte by byte (mirrors `docs/protocol.md`).
//! - [`cookie`]: stateless address validation.
//! - [`keys`]: session keys, tags and the replay window.
//!
//! The handshake itself runs in the endpoint (`endpoint/secure.rs`), which owns the sessions.

pub mod cookie;
pub mod keys;
pub mod wire;

pub use cookie::{CookieCheck, CookieJar};
pub use keys::{Freshness, OpenError, ReplayWindow, Role, SessionKeys, TagKey};
pub use wire::RejectReason;
