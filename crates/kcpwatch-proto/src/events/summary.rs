//! What a close record says about the whole connection: its counters, timings and history, and
//! the application's close code and text.

use std::net::SocketAddr;

use super::{CappedText, ConnectionRef, Direction, History};
use crate::uid::Uid;

/// The one-record view of a connection (docs/events.md, the close summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSummary {
    /// Connection id.
    pub uid: Uid,
    /// KCP conversation id.
    pub conv: u32,
    /// The peer.
    pub remote: SocketAddr,
    /// Our address the peer talks to.
    pub local: SocketAddr,
    /// Milliseconds from establishment to the summary.
    pub duration_ms: u64,
    /// Datagrams received and accepted by the guard.
    pub datagrams_in: u64,
    /// Bytes of accepted datagrams.
    pub bytes_in: u64,
    /// Datagrams produced.
    pub datagrams_out: u64,
    /// Bytes of produced datagrams.
    pub bytes_out: u64,
    /// Application payload bytes delivered to the application.
    pub payload_bytes_in: u64,
    /// Application payload bytes accepted from the application.
    pub payload_bytes_out: u64,
    /// Messages (or stream chunks) delivered.
    pub messages_in: u64,
    /// Messages accepted by `send`.
    pub messages_out: u64,
    /// Datagrams for this session refused by the guard.
    pub guard_drops: u64,
    /// Smoothed RTT in ms.
    pub srtt_ms: u32,
    /// RTT variance in ms.
    pub rttvar_ms: u32,
    /// Current retransmission timeout in ms.
    pub rto_ms: u32,
    /// Engine counters.
    pub engine: kcp::KcpCounters,
    /// Zeek-style activity history (see [`History`]).
    pub history: History,
    /// Who opened the connection.
    pub direction: Direction,
    /// Secure mode: unreliable datagrams (`sendDatagram`), apart from the messages.
    pub unreliable: crate::secure::datagram::DatagramCounters,
}

impl ConnectionSummary {
    /// A summary with identity only, for a session whose counters could not be read.
    pub fn empty(conn: ConnectionRef) -> Self {
        Self {
            uid: conn.uid,
            conv: conn.conv,
            remote: conn.peer,
            local: conn.local,
            duration_ms: 0,
            datagrams_in: 0,
            bytes_in: 0,
            datagrams_out: 0,
            bytes_out: 0,
            payload_bytes_in: 0,
            payload_bytes_out: 0,
            messages_in: 0,
            messages_out: 0,
            guard_drops: 0,
            srtt_ms: 0,
            rttvar_ms: 0,
            rto_ms: 0,
            engine: kcp::KcpCounters::default(),
            history: History::default(),
            direction: conn.direction,
            unreliable: Default::default(),
        }
    }
}

/// An application close code and text (`conn.close(code, reason)`), carried by a secure
/// DISCONNECT and recorded on both sides. Inline, so records never allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppClose {
    /// The code (0: none given).
    pub code: u16,
    /// The text (at most 123 bytes of UTF-8 on the wire).
    pub text: CappedText,
}

impl AppClose {
    /// Nothing said.
    pub const NONE: Self = Self {
        code: 0,
        text: CappedText::EMPTY,
    };

    /// A code and text; the text is cut to the 123 bytes a DISCONNECT carries.
    pub fn new(code: u16, text: &str) -> Self {
        let mut end = text.len().min(crate::secure::wire::MAX_CLOSE_TEXT);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            code,
            text: CappedText::format(&text[..end]),
        }
    }

    /// Whether anything was said.
    pub fn is_none(&self) -> bool {
        self.code == 0 && self.text.as_str().is_empty()
    }
}
