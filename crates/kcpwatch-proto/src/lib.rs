//! The kcpwatch protocol core.
//!
//! Everything here is a deterministic state machine: datagrams and the current time go in,
//! datagrams to send, timer deadlines and events come out. There are no sockets, threads, clocks
//! or globals, so the whole protocol can be driven by a simulated network in tests (see
//! `tests/simulated_network.rs`), in the style of `quinn-proto`.
//!
//! - [`segment`]: the KCP wire header.
//! - [`guard`]: validates a whole datagram before any byte reaches the engine.
//! - [`session`]: one KCP conversation behind the guard, with liveness and counters.
//! - [`endpoint`]: demultiplexes datagrams by (address, conv) into sessions and runs their timers.
//! - [`fec`]: kcp-go-compatible forward error correction (Reed-Solomon shards), raw mode.
//! - [`error_code`]: the stable `KCP_ERR_*` codes of every failure an application is told about.
//! - [`events`]: the security event catalog (`kcp:*`), one typed struct per event.
//! - [`community_id`]: Community ID v1 flow hashes for joining records with other sensors.
//! - [`secure`]: secure mode's wire format, cookies, keys and replay window.
//! - [`detect`]: detectors over what the endpoint sees, raising `kcp:alert`.
//! - [`limits`]: admission limits per address, per prefix and per handshake rate.
//! - [`privacy`]: IP privacy modes (truncate, HMAC pseudonyms, Crypto-PAn, omit) for records.
#![warn(missing_docs)]

pub mod clock;
pub mod community_id;
pub mod config;
pub mod detect;
pub mod drop_rule;
pub mod endpoint;
pub mod error_code;
pub mod events;
mod exclusive;
pub mod fec;
pub mod guard;
pub mod lifecycle;
pub mod limits;
pub mod metrics;
pub mod privacy;
pub mod secure;
pub mod segment;
pub mod session;
pub mod severity;
mod timer;
mod transmit;
pub mod uid;

pub use clock::{ExtendedClock, Millis};
pub use config::{EndpointConfig, Mode, Preset, SessionConfig};
pub use endpoint::{
    ConnectionHandle, Endpoint, EndpointEvent, EndpointStats, SendError, Unreachable,
};
pub use error_code::ErrorCode;
pub use events::SecurityEvent;
pub use guard::GuardViolation;
pub use lifecycle::{CloseReason, ConnectionState, DropTrigger, Initiator};
pub use session::{AppClose, ConnectionSummary};
pub use severity::Severity;
pub use transmit::{Transmit, Transmits};
