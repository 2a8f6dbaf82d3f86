//! Unreliable datagrams from JavaScript (secure mode): one packed batch per event-loop turn, as
//! messages are, kept apart from the message batch so a bound can be put on it alone.
//!
//! Entry layout, little endian: `handle: u32, len: u32, flags: u8, channel: u8, payload[len]`,
//! with flag bit 0 asking the receiver for sequenced delivery (`docs/protocol.md`, DATAGRAM).
//! Flag bit 7 marks a report instead: the binding refused a datagram of `len` bytes as too large
//! (no payload follows), so the refusal is counted with the others.

use kcpwatch_proto::secure::datagram::{DatagramHeader, FLAG_SEQUENCED};
use kcpwatch_proto::{ConnectionHandle, Endpoint, Millis};
use tracing::warn;

/// Bytes before each payload.
pub const ENTRY_HEADER: usize = 10;
/// Flag bit: a refusal report, no payload.
pub const REPORT_TOO_LARGE: u8 = 0x80;

/// Seals every datagram of `batch`. Refusals are counted by the endpoint (the binding checks
/// sizes and state first, so they are rare: a connection that closed meanwhile, a socket that
/// cannot keep up); a datagram is never retried.
pub(crate) fn apply(endpoint: &mut Endpoint, now: Millis, batch: &[u8]) {
    let mut rest = batch;
    while rest.len() >= ENTRY_HEADER {
        let handle = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let len = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        if rest[8] & REPORT_TOO_LARGE != 0 {
            rest = &rest[ENTRY_HEADER..];
            endpoint.note_datagram_too_large();
            continue;
        }
        let header = DatagramHeader {
            sequenced: rest[8] & FLAG_SEQUENCED != 0,
            channel: rest[9],
        };
        let Some(payload) = rest.get(ENTRY_HEADER..ENTRY_HEADER + len) else {
            warn!("malformed datagram batch from the binding");
            return;
        };
        rest = &rest[ENTRY_HEADER + len..];
        let _ = endpoint.send_datagram(now, ConnectionHandle::from_bits(handle), header, payload);
    }
}
