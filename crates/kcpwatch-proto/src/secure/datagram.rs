//! The DATAGRAM session type (`docs/protocol.md`, "DATAGRAM"): unreliable application datagrams
//! beside the KCP stream, for updates that are worthless once a newer one exists (positions,
//! inputs). Sealed like DATA (same keys, packet numbers and replay window), never retransmitted
//! and never given to the KCP engine.
//!
//! The plaintext is a 2-byte header, `flags | channel`, then the payload. A sequenced datagram
//! is delivered only if its packet number is higher than that of the last datagram delivered on
//! its channel: the packet number is already authenticated, unique and increasing, so
//! sequencing needs no counter of its own on the wire.

use super::wire::SESSION_OVERHEAD;

/// `flags | channel` before the payload.
pub const DATAGRAM_HEADER_LEN: usize = 2;
/// Flag bit: deliver only if newer than the newest delivered on this channel.
pub const FLAG_SEQUENCED: u8 = 0x01;
/// Every flag bit this version defines; a datagram with another bit set is dropped.
pub const KNOWN_FLAGS: u8 = FLAG_SEQUENCED;
/// Bytes a DATAGRAM adds around its payload on the wire: the session framing and the header.
pub const DATAGRAM_OVERHEAD: usize = SESSION_OVERHEAD + DATAGRAM_HEADER_LEN;
/// Sequenced channels tracked per session: every channel id there is.
pub const CHANNELS: usize = 256;

/// The largest payload one datagram carries when session datagrams are at most `mtu` bytes on
/// the wire (0 if the MTU leaves no room).
pub fn max_payload(mtu: usize) -> usize {
    mtu.saturating_sub(DATAGRAM_OVERHEAD)
}

/// A DATAGRAM's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DatagramHeader {
    /// The application's channel id.
    pub channel: u8,
    /// Only newer-than-delivered datagrams of this channel are delivered.
    pub sequenced: bool,
}

impl DatagramHeader {
    /// The two header bytes.
    pub fn to_bytes(self) -> [u8; DATAGRAM_HEADER_LEN] {
        [
            if self.sequenced { FLAG_SEQUENCED } else { 0 },
            self.channel,
        ]
    }
}

/// Why a decrypted DATAGRAM plaintext is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DatagramBodyError {
    /// Shorter than the 2-byte header.
    #[error("datagram plaintext shorter than its 2-byte header")]
    TooShort,
    /// A flag bit this version does not define is set.
    #[error("datagram flags {0:#04x} set a bit this version does not define")]
    UnknownFlags(u8),
}

/// Splits a decrypted DATAGRAM plaintext into its header and payload.
pub fn parse_body(body: &[u8]) -> Result<(DatagramHeader, &[u8]), DatagramBodyError> {
    let [flags, channel, payload @ ..] = body else {
        return Err(DatagramBodyError::TooShort);
    };
    if flags & !KNOWN_FLAGS != 0 {
        return Err(DatagramBodyError::UnknownFlags(*flags));
    }
    Ok((
        DatagramHeader {
            channel: *channel,
            sequenced: flags & FLAG_SEQUENCED != 0,
        },
        payload,
    ))
}

/// The receive side of sequencing: per channel, the packet number of the newest datagram
/// delivered. Grows by one entry per channel first used (at most [`CHANNELS`]).
#[derive(Debug, Clone, Default)]
pub struct Sequencer {
    newest: Vec<(u8, u64)>,
}

impl Sequencer {
    /// Whether a sequenced datagram with `packet_number` on `channel` is to be delivered (it
    /// is newer than every one delivered on the channel); records it if so.
    pub fn admit(&mut self, channel: u8, packet_number: u64) -> bool {
        match self.newest.iter_mut().find(|(c, _)| *c == channel) {
            Some((_, newest)) if packet_number <= *newest => false,
            Some((_, newest)) => {
                *newest = packet_number;
                true
            }
            None => {
                self.newest.push((channel, packet_number));
                true
            }
        }
    }
}

/// One session's datagram counters (its close summary and `connection.stats()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DatagramCounters {
    /// Datagrams sealed and queued for the socket.
    pub sent: u64,
    /// Datagrams handed to the application.
    pub received: u64,
    /// Authentic datagrams not delivered: older than one already delivered on their sequenced
    /// channel, or the receive queue was full.
    pub dropped: u64,
}

/// Endpoint-wide datagram counters (stats and Prometheus), apart from the message counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DatagramStats {
    /// Datagrams sealed and queued for the socket.
    pub sent: u64,
    /// Datagrams handed to the application.
    pub received: u64,
    /// Received on a sequenced channel after a newer one was delivered.
    pub dropped_stale: u64,
    /// Received while the receive queue was full, or refused at send while the send queue was
    /// full.
    pub dropped_queue_full: u64,
    /// Refused at send: the payload exceeds one datagram.
    pub dropped_too_large: u64,
    /// For a session this endpoint does not have (sent to a closed connection, or received for
    /// an unknown conv).
    pub dropped_no_session: u64,
    /// Authentic, but with a plaintext that is not a datagram (too short, unknown flags).
    pub dropped_malformed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_refuses_unknown_flags() {
        let header = DatagramHeader {
            channel: 7,
            sequenced: true,
        };
        let mut body = header.to_bytes().to_vec();
        body.extend_from_slice(b"pos");
        assert_eq!(parse_body(&body), Ok((header, &b"pos"[..])));
        assert_eq!(parse_body(&[0]), Err(DatagramBodyError::TooShort));
        assert_eq!(
            parse_body(&[0x82, 0]),
            Err(DatagramBodyError::UnknownFlags(0x82))
        );
        assert_eq!(max_payload(1200), 1169);
        assert_eq!(max_payload(20), 0);
    }

    #[test]
    fn a_sequenced_channel_admits_only_newer_packet_numbers() {
        let mut s = Sequencer::default();
        assert!(s.admit(1, 5));
        assert!(!s.admit(1, 5), "the same");
        assert!(!s.admit(1, 3), "older");
        assert!(s.admit(2, 3), "channels are independent");
        assert!(s.admit(1, 9));
        assert!(!s.admit(1, 8));
    }
}
