//! Secure mode's unreliable datagrams (`docs/protocol.md`, "DATAGRAM"): sealed straight into the
//! transmit queue on send, and on receipt checked (tag, replay window, sequencing) and queued
//! for the application in a bounded inbox. They never touch the KCP engine.

use super::Dropped;

use super::{ConnectionHandle, Endpoint, Opened};
use crate::clock::Millis;
use crate::events::DropRule;
use crate::exclusive::hold;
use crate::lifecycle::{ConnectionState, DropTrigger};
use crate::secure::datagram::{parse_body, DatagramBodyError, DatagramHeader, DATAGRAM_HEADER_LEN};

/// Bytes of received datagrams the inbox holds for the application; past it, new ones are
/// dropped and counted (`dropped_queue_full`). The runtime empties it every loop iteration,
/// so only a burst within one iteration can reach it.
pub const MAX_DATAGRAM_INBOX_BYTES: usize = 1 << 20;
/// Bytes waiting for the socket past which `send_datagram` refuses (`QueueFull`): a socket that
/// cannot keep up must not make the transmit queue grow without bound, and a datagram that
/// waits is stale anyway. Messages are bounded by KCP's send window instead.
pub const MAX_DATAGRAM_TX_BYTES: usize = 4 << 20;

/// Why `send_datagram` refused a datagram. Every refusal is counted
/// ([`crate::secure::datagram::DatagramStats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DatagramSendError {
    /// No such connection (closed, or a stale handle).
    #[error("unknown or closed connection")]
    UnknownConnection,
    /// Raw mode: no plain KCP peer understands a datagram outside KCP.
    #[error("datagrams need secure mode: no plain KCP peer understands them")]
    RawMode,
    /// The handshake has not completed, or the connection is closing.
    #[error("connection is not established")]
    NotOpen,
    /// The payload does not fit in one datagram.
    #[error("datagram of {size} bytes exceeds the limit of {limit} (one datagram: mtu minus 31)")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// The largest payload.
        limit: usize,
    },
    /// The transmit queue holds more than [`MAX_DATAGRAM_TX_BYTES`].
    #[error("datagram send queue full")]
    QueueFull,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    handle: ConnectionHandle,
    channel: u8,
    start: u32,
    len: u32,
}

/// Received datagrams in one reusable buffer: receiving one never allocates once the buffer has
/// grown to the largest burst.
#[derive(Debug, Default)]
pub(super) struct DatagramInbox {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

impl DatagramInbox {
    fn push(&mut self, handle: ConnectionHandle, channel: u8, payload: &[u8]) -> bool {
        if self.bytes.len() + payload.len() > MAX_DATAGRAM_INBOX_BYTES {
            return false;
        }
        self.entries.push(Entry {
            handle,
            channel,
            start: self.bytes.len() as u32,
            len: payload.len() as u32,
        });
        self.bytes.extend_from_slice(payload);
        true
    }
}

impl Endpoint {
    /// Sends an unreliable datagram on a secure connection: sealed now, never retransmitted.
    /// `header` names its channel and whether the receiver delivers it sequenced.
    pub fn send_datagram(
        &mut self,
        now: Millis,
        handle: ConnectionHandle,
        header: DatagramHeader,
        payload: &[u8],
    ) -> Result<(), DatagramSendError> {
        self.clock.advance(now);
        // FEC's encoder reads the time (its gap rule).
        hold(&self.tx).now = now;
        let result = self.seal_datagram(handle, header, payload);
        let stats = &mut self.reporter.stats.unreliable;
        match result {
            Ok(()) => stats.sent += 1,
            Err(DatagramSendError::TooLarge { .. }) => stats.dropped_too_large += 1,
            Err(DatagramSendError::QueueFull) => stats.dropped_queue_full += 1,
            Err(
                DatagramSendError::UnknownConnection
                | DatagramSendError::NotOpen
                | DatagramSendError::RawMode,
            ) => stats.dropped_no_session += 1,
        }
        result
    }

    fn seal_datagram(
        &mut self,
        handle: ConnectionHandle,
        header: DatagramHeader,
        payload: &[u8],
    ) -> Result<(), DatagramSendError> {
        let waiting = hold(&self.tx).byte_len();
        self.session(handle)
            .ok_or(DatagramSendError::UnknownConnection)?;
        let session = self
            .sessions
            .get_mut(handle)
            .ok_or(DatagramSendError::UnknownConnection)?;
        if session.secure.is_none() {
            return Err(DatagramSendError::RawMode);
        }
        if session.state != ConnectionState::Established {
            return Err(DatagramSendError::NotOpen);
        }
        // The session's MTU already leaves room for the session framing.
        let limit = session.config.mtu.saturating_sub(DATAGRAM_HEADER_LEN);
        if payload.len() > limit {
            return Err(DatagramSendError::TooLarge {
                size: payload.len(),
                limit,
            });
        }
        if waiting > MAX_DATAGRAM_TX_BYTES {
            return Err(DatagramSendError::QueueFull);
        }
        let mut body = std::mem::take(&mut self.scratch);
        body.clear();
        body.extend_from_slice(&header.to_bytes());
        body.extend_from_slice(payload);
        let sealed = session.send_sealed_datagram(&body);
        self.scratch = body;
        if !sealed {
            return Err(DatagramSendError::NotOpen);
        }
        session.unreliable.sent += 1;
        Ok(())
    }

    /// An authenticated DATAGRAM (its tag and packet number already checked): sequencing, then
    /// the inbox.
    pub(super) fn datagram_in(
        &mut self,
        now: Millis,
        handle: ConnectionHandle,
        opened: &Opened<'_>,
    ) {
        let Opened {
            remote,
            local,
            header,
            body,
            len,
            ..
        } = *opened;
        let Some(session) = self.sessions.get_mut(handle) else {
            return;
        };
        // Any authentic datagram is activity, whatever becomes of its content.
        session.note_control_in(now, len);
        let uid = Some(session.uid);
        let (dgram, payload) = match parse_body(body) {
            Ok(parsed) => parsed,
            Err(error) => {
                self.reporter.stats.unreliable.dropped_malformed += 1;
                let (trigger, rule) = match error {
                    DatagramBodyError::TooShort => {
                        (DropTrigger::TooShort, DropRule::DatagramTooShort)
                    }
                    DatagramBodyError::UnknownFlags(_) => {
                        (DropTrigger::BadCmd, DropRule::DatagramFlags)
                    }
                };
                self.drop_trigger(
                    Dropped::new(remote, local, len)
                        .conv(Some(header.conv))
                        .uid(uid),
                    trigger,
                    rule,
                );
                self.reschedule(handle, now);
                return;
            }
        };
        // Accepted (stale or not): a malformed plaintext is counted as a drop instead.
        self.reporter.stats.datagrams_accepted += 1;
        let fresh = !dgram.sequenced
            || session
                .secure
                .as_mut()
                .is_some_and(|s| s.sequencer.admit(dgram.channel, header.packet_number));
        if !fresh {
            session.unreliable.dropped += 1;
            self.reporter.stats.unreliable.dropped_stale += 1;
        } else if self.inbox.push(handle, dgram.channel, payload) {
            session.unreliable.received += 1;
            self.reporter.stats.unreliable.received += 1;
        } else {
            session.unreliable.dropped += 1;
            self.reporter.stats.unreliable.dropped_queue_full += 1;
        }
        self.reschedule(handle, now);
    }

    /// Whether received datagrams wait in the inbox.
    pub fn has_datagrams(&self) -> bool {
        !self.inbox.entries.is_empty()
    }

    /// Hands every received datagram to `deliver` (connection, channel, payload), oldest first,
    /// and empties the inbox. `deliver` returns false when it had to drop the datagram (a full
    /// queue further on); that is counted as `dropped_queue_full` on the connection.
    pub fn take_datagrams(&mut self, deliver: impl FnMut(ConnectionHandle, u8, &[u8]) -> bool) {
        self.take_datagrams_where(|_| true, deliver);
    }

    /// [`Endpoint::take_datagrams`] for one connection only (the others stay): a runtime hands
    /// over a closing connection's datagrams before its close record.
    pub fn take_datagrams_of(
        &mut self,
        handle: ConnectionHandle,
        deliver: impl FnMut(ConnectionHandle, u8, &[u8]) -> bool,
    ) {
        if self.inbox.entries.iter().any(|e| e.handle == handle) {
            self.take_datagrams_where(|h| h == handle, deliver);
        }
    }

    fn take_datagrams_where(
        &mut self,
        wanted: impl Fn(ConnectionHandle) -> bool,
        mut deliver: impl FnMut(ConnectionHandle, u8, &[u8]) -> bool,
    ) {
        let mut inbox = std::mem::take(&mut self.inbox);
        let mut kept = 0;
        let mut kept_bytes = 0;
        for i in 0..inbox.entries.len() {
            let e = inbox.entries[i];
            let (start, len) = (e.start as usize, e.len as usize);
            if !wanted(e.handle) {
                inbox.bytes.copy_within(start..start + len, kept_bytes);
                inbox.entries[kept] = Entry {
                    start: kept_bytes as u32,
                    ..e
                };
                kept += 1;
                kept_bytes += len;
                continue;
            }
            if !deliver(e.handle, e.channel, &inbox.bytes[start..start + len]) {
                self.note_datagram_drops(e.handle, 1);
            }
        }
        inbox.entries.truncate(kept);
        inbox.bytes.truncate(kept_bytes);
        self.inbox = inbox;
    }

    /// Counts datagrams of a connection that were received but dropped before the application
    /// read them (a full queue in the runtime or the binding). They were counted as received
    /// when they entered the inbox; they move to dropped, so that received is what the
    /// application got (or holds) and received + dropped is what arrived.
    pub fn note_datagram_drops(&mut self, handle: ConnectionHandle, count: u64) {
        let stats = &mut self.reporter.stats.unreliable;
        let moved = count.min(stats.received);
        stats.received -= moved;
        stats.dropped_queue_full += count;
        if self.session(handle).is_some() {
            if let Some(s) = self.sessions.get_mut(handle) {
                s.unreliable.received = s.unreliable.received.saturating_sub(count);
                s.unreliable.dropped += count;
            }
        }
    }

    /// Counts a datagram the application layer refused as too large before it got here.
    pub fn note_datagram_too_large(&mut self) {
        self.reporter.stats.unreliable.dropped_too_large += 1;
    }

    /// A datagram for a conv with no session (counted apart from the drop record every
    /// unknown session datagram gets).
    pub(super) fn datagram_without_session(&mut self) {
        self.reporter.stats.unreliable.dropped_no_session += 1;
    }
}
