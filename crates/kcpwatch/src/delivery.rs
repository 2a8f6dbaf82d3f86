//! The data path to JavaScript: connection events and messages packed into one byte buffer
//! that JavaScript takes whole with a single call (zero copies on the JavaScript side: each
//! message is a view into the batch). One wake-up fires per empty -> non-empty edge, so a busy
//! server costs one cross-thread notification per batch, not per message.
//!
//! Record layout, little endian: `kind: u8, handle: u32, len: u32, payload[len]`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Bytes of datagram records waiting for JavaScript past which the I/O thread drops new
/// datagrams (and counts them): a stalled event loop holds at most this much of them.
pub const DATAGRAM_DELIVERY_LIMIT: usize = 1 << 20;

use kcpwatch_proto::{AppClose, CloseReason, ConnectionSummary, Initiator};

/// What a record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// A peer opened a connection: conv u32, remote port u16, local port u16, then three
    /// u8-length-prefixed strings: remote ip, local ip, uid.
    Accepted = 1,
    /// One message (or stream chunk): the payload is the message.
    Message = 2,
    /// A connection ended: reason code u8, initiator u8, then the summary as u64s
    /// (duration_ms, datagrams_in, bytes_in, datagrams_out, bytes_out, payload_bytes_in,
    /// payload_bytes_out, messages_in, messages_out, retransmitted segments, guard drops) and
    /// u32s (srtt, rttvar, rto), then the peer's DISCONNECT reason code u8 (0: none; secure
    /// mode), the application's close code u16 (0: none) and its text, u8-length-prefixed
    /// (ours when we closed, the peer's when its DISCONNECT carried them), then the unreliable
    /// datagram counters as u64s (sent, received, dropped; secure mode).
    Closed = 3,
    /// Bytes the peer acknowledged over the connection's life: u64. Sent, at most once per
    /// published batch, for connections with bytes JavaScript sent and the peer has not
    /// acknowledged yet (so `queuedBytes` stays current).
    Progress = 4,
    /// A connection-level error: u8-length-prefixed code, then u16-length-prefixed message.
    Error = 5,
    /// Secure mode, client: the handshake completed; conv u32 (the server assigned it).
    Established = 6,
    /// Secure mode, client: the handshake failed; u8-length-prefixed reason
    /// (`handshake_timeout`, `auth_rejected`, `capacity`, ...), then the application's reason
    /// code u16 from an `auth_rejected` REJECT (0: none).
    ConnectFailed = 7,
    /// Secure mode, server: a validated client presented a token (handle 0). Request id u64,
    /// remote port u16, local port u16, then u8-length-prefixed remote ip, local ip and uid,
    /// then the token with a u16 length.
    AuthRequest = 8,
    /// Secure mode: one unreliable datagram: channel u8, then the payload.
    Datagram = 9,
}

/// Staging area the I/O thread fills during one loop iteration, published in one step.
#[derive(Debug, Default)]
pub struct RecordWriter {
    bytes: Vec<u8>,
    /// Bytes of datagram records staged (they have their own budget, see
    /// [`DeliveryQueue::datagram_room`]).
    datagram_bytes: usize,
}

/// Whom a new connection or an authentication request is with, as its record carries it.
#[derive(Debug, Clone, Copy)]
pub struct Peer<'a> {
    /// The peer's address.
    pub remote: SocketAddr,
    /// The local address the peer reached.
    pub local: SocketAddr,
    /// The connection's uid.
    pub uid: &'a str,
}

/// How a connection ended, as its `Closed` record carries it.
#[derive(Debug, Clone, Copy)]
pub struct Closing<'a> {
    /// Why it ended.
    pub reason: CloseReason,
    /// The reason the peer's DISCONNECT gave, if it sent one.
    pub peer_reason: Option<CloseReason>,
    /// Its counters and timings.
    pub summary: &'a ConnectionSummary,
    /// The application's close code and text.
    pub app_close: &'a AppClose,
}

impl RecordWriter {
    /// Bytes staged.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn header(&mut self, kind: RecordKind, handle: u32, len: usize) {
        self.bytes.push(kind as u8);
        self.bytes.extend_from_slice(&handle.to_le_bytes());
        self.bytes.extend_from_slice(&(len as u32).to_le_bytes());
    }

    fn short_str(&mut self, s: &str) {
        let s = &s.as_bytes()[..s.len().min(255)];
        self.bytes.push(s.len() as u8);
        self.bytes.extend_from_slice(s);
    }

    /// The start of a record about `peer`: the header, `head`, then the peer's ports,
    /// addresses and uid. `tail` bytes follow, written by the caller.
    fn peer_record(
        &mut self,
        kind: RecordKind,
        handle: u32,
        head: &[u8],
        peer: &Peer<'_>,
        tail: usize,
    ) {
        let remote_ip = peer.remote.ip().to_string();
        let local_ip = peer.local.ip().to_string();
        let len = head.len() + 2 + 2 + 3 + remote_ip.len() + local_ip.len() + peer.uid.len() + tail;
        self.header(kind, handle, len);
        self.bytes.extend_from_slice(head);
        self.bytes
            .extend_from_slice(&peer.remote.port().to_le_bytes());
        self.bytes
            .extend_from_slice(&peer.local.port().to_le_bytes());
        self.short_str(&remote_ip);
        self.short_str(&local_ip);
        self.short_str(peer.uid);
    }

    /// A new connection, with its size ceilings (`limits`: the largest message and the largest
    /// unreliable datagram, which a secure handshake's agreed MTU may have lowered).
    pub fn accepted(&mut self, handle: u32, conv: u32, peer: &Peer<'_>, limits: (usize, usize)) {
        self.peer_record(RecordKind::Accepted, handle, &conv.to_le_bytes(), peer, 8);
        self.limits(limits);
    }

    /// A connection's message and datagram ceilings, each a u32 (at most 2^32 - 1).
    fn limits(&mut self, (message, datagram): (usize, usize)) {
        for v in [message, datagram] {
            let v = u32::try_from(v).unwrap_or(u32::MAX);
            self.bytes.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// Reserves room for a message of `len` bytes and returns it to be filled in place.
    pub fn message_slot(&mut self, handle: u32, len: usize) -> &mut [u8] {
        self.header(RecordKind::Message, handle, len);
        let start = self.bytes.len();
        self.bytes.resize(start + len, 0);
        &mut self.bytes[start..]
    }

    /// Shrinks the message just reserved to the bytes actually written.
    pub fn finish_message(&mut self, reserved: usize, written: usize) {
        let start = self.bytes.len() - reserved;
        self.bytes.truncate(start + written);
        let len_at = start - 4;
        self.bytes[len_at..start].copy_from_slice(&(written as u32).to_le_bytes());
    }

    /// A connection ended.
    pub fn closed(&mut self, handle: u32, closing: &Closing<'_>) {
        let Closing {
            reason,
            peer_reason,
            summary: s,
            app_close,
        } = *closing;
        let u64s = [
            s.duration_ms,
            s.datagrams_in,
            s.bytes_in,
            s.datagrams_out,
            s.bytes_out,
            s.payload_bytes_in,
            s.payload_bytes_out,
            s.messages_in,
            s.messages_out,
            s.engine.retrans_segs + s.engine.fast_retrans_segs,
            s.guard_drops,
        ];
        let u32s = [s.srtt_ms, s.rttvar_ms, s.rto_ms];
        self.header(
            RecordKind::Closed,
            handle,
            2 + u64s.len() * 8
                + u32s.len() * 4
                + 1
                + 2
                + 1
                + app_close.text.as_str().len().min(255)
                + 3 * 8,
        );
        self.bytes.push(reason.code());
        self.bytes.push(match reason.initiator() {
            Initiator::Local => 0,
            Initiator::Remote => 1,
        });
        for v in u64s {
            self.bytes.extend_from_slice(&v.to_le_bytes());
        }
        for v in u32s {
            self.bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.bytes.push(peer_reason.map_or(0, CloseReason::code));
        self.bytes.extend_from_slice(&app_close.code.to_le_bytes());
        self.short_str(app_close.text.as_str());
        let u = &s.unreliable;
        for v in [u.sent, u.received, u.dropped] {
            self.bytes.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// One unreliable datagram, copied in.
    pub fn datagram(&mut self, handle: u32, channel: u8, payload: &[u8]) {
        let before = self.bytes.len();
        self.header(RecordKind::Datagram, handle, 1 + payload.len());
        self.bytes.push(channel);
        self.bytes.extend_from_slice(payload);
        self.datagram_bytes += self.bytes.len() - before;
    }

    /// Bytes a datagram record of `payload_len` bytes takes.
    pub fn datagram_record_len(payload_len: usize) -> usize {
        9 + 1 + payload_len
    }

    /// Bytes of datagram records staged.
    pub fn datagram_bytes(&self) -> usize {
        self.datagram_bytes
    }

    /// A client's handshake completed, with the connection's size ceilings from the agreed
    /// MTU (as [`RecordWriter::accepted`]).
    pub fn established(&mut self, handle: u32, conv: u32, limits: (usize, usize)) {
        self.header(RecordKind::Established, handle, 4 + 8);
        self.bytes.extend_from_slice(&conv.to_le_bytes());
        self.limits(limits);
    }

    /// A client's handshake failed.
    pub fn connect_failed(&mut self, handle: u32, reason: &str, app_code: u16) {
        self.header(
            RecordKind::ConnectFailed,
            handle,
            1 + reason.len().min(255) + 2,
        );
        self.short_str(reason);
        self.bytes.extend_from_slice(&app_code.to_le_bytes());
    }

    /// A token for the application's `authenticate`.
    pub fn auth_request(&mut self, id: u64, peer: &Peer<'_>, token: &[u8]) {
        let tail = 2 + token.len();
        self.peer_record(RecordKind::AuthRequest, 0, &id.to_le_bytes(), peer, tail);
        self.bytes
            .extend_from_slice(&(token.len() as u16).to_le_bytes());
        self.bytes.extend_from_slice(token);
    }

    /// Acknowledgement progress of a connection.
    pub fn progress(&mut self, handle: u32, acked_bytes: u64) {
        self.header(RecordKind::Progress, handle, 8);
        self.bytes.extend_from_slice(&acked_bytes.to_le_bytes());
    }

    /// A connection-level error.
    pub fn error(&mut self, handle: u32, code: &str, message: &str) {
        let message = &message.as_bytes()[..message.len().min(1024)];
        self.header(
            RecordKind::Error,
            handle,
            1 + code.len().min(255) + 2 + message.len(),
        );
        self.short_str(code);
        self.bytes
            .extend_from_slice(&(message.len() as u16).to_le_bytes());
        self.bytes.extend_from_slice(message);
    }
}

/// What the I/O thread has published and JavaScript has not taken yet.
pub struct DeliveryQueue {
    inner: Mutex<Vec<u8>>,
    notify: Box<dyn Fn() + Send + Sync>,
    limit: usize,
    /// Bytes of datagram records published and not taken yet (changed under `inner`'s lock).
    datagram_bytes: AtomicUsize,
    datagram_limit: usize,
}

impl DeliveryQueue {
    /// A queue that calls `notify` whenever it goes from empty to non-empty, and that reports
    /// itself full past `limit` bytes.
    pub fn new(limit: usize, notify: Box<dyn Fn() + Send + Sync>) -> Self {
        Self {
            inner: Mutex::new(Vec::new()),
            notify,
            limit,
            datagram_bytes: AtomicUsize::new(0),
            datagram_limit: DATAGRAM_DELIVERY_LIMIT,
        }
    }

    /// How many more bytes of datagram records may be staged before JavaScript takes what is
    /// there (`staged`: already in the writer). Datagrams are not held back like messages
    /// (they are worthless late, and nothing pushes back on their sender): past this budget the
    /// I/O thread drops them and counts them.
    pub fn datagram_room(&self, staged: usize) -> usize {
        self.datagram_limit
            .saturating_sub(self.datagram_bytes.load(Ordering::Acquire) + staged)
    }

    /// Publishes staged records. Returns false when the queue is above its limit, so the
    /// I/O thread stops pulling messages out of the engines (the KCP receive window then
    /// pushes back on the peers) until JavaScript drains. Staged records are always published:
    /// a closing session's last messages (acknowledged to the peer already, at most its
    /// receive window) and its close record go out past the limit.
    pub fn publish(&self, staged: &mut RecordWriter) -> bool {
        self.publish_announced(staged, true)
    }

    /// Publishes like [`DeliveryQueue::publish`] without calling `notify`: the caller runs on
    /// JavaScript's thread and hands the records over itself, or calls
    /// [`DeliveryQueue::notify_consumer`].
    pub fn publish_unannounced(&self, staged: &mut RecordWriter) -> bool {
        self.publish_announced(staged, false)
    }

    fn publish_announced(&self, staged: &mut RecordWriter, announce: bool) -> bool {
        if staged.is_empty() {
            return self.has_room();
        }
        let (was_empty, room) = {
            let mut queue = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let was_empty = queue.is_empty();
            self.datagram_bytes
                .fetch_add(staged.datagram_bytes, Ordering::AcqRel);
            staged.datagram_bytes = 0;
            if was_empty {
                std::mem::swap(&mut *queue, &mut staged.bytes);
            } else {
                queue.extend_from_slice(&staged.bytes);
            }
            (was_empty, queue.len() < self.limit)
        };
        staged.bytes.clear();
        if was_empty && announce {
            (self.notify)();
        }
        room
    }

    /// Whether records wait for JavaScript.
    pub fn is_waiting(&self) -> bool {
        self.inner.lock().map(|q| !q.is_empty()).unwrap_or(false)
    }

    /// Calls JavaScript to take its records, whether or not there are any: the I/O thread
    /// has something else for it to do on its own thread (see `io_thread::reception`).
    pub fn notify_consumer(&self) {
        (self.notify)();
    }

    /// How many more bytes may be published before JavaScript takes what is there.
    pub fn room(&self) -> usize {
        self.inner
            .lock()
            .map(|q| self.limit.saturating_sub(q.len()))
            .unwrap_or(self.limit)
    }

    /// Whether more may be published.
    pub fn has_room(&self) -> bool {
        self.inner
            .lock()
            .map(|q| q.len() < self.limit)
            .unwrap_or(true)
    }

    /// Takes everything published so far.
    pub fn take(&self) -> Vec<u8> {
        let mut queue = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        self.datagram_bytes.store(0, Ordering::Release);
        std::mem::take(&mut *queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> Peer<'static> {
        Peer {
            remote: "10.0.0.7:4000".parse().unwrap(),
            local: "[::1]:5000".parse().unwrap(),
            uid: "u1",
        }
    }

    /// The bytes after the peer's ports: the three u8-prefixed strings.
    fn peer_strings() -> Vec<u8> {
        let mut b = vec![8];
        b.extend_from_slice(b"10.0.0.7");
        b.push(3);
        b.extend_from_slice(b"::1");
        b.push(2);
        b.extend_from_slice(b"u1");
        b
    }

    fn header(kind: RecordKind, handle: u32, len: usize) -> Vec<u8> {
        let mut b = vec![kind as u8];
        b.extend_from_slice(&handle.to_le_bytes());
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b
    }

    #[test]
    fn accepted_record_layout() {
        let mut w = RecordWriter::default();
        w.accepted(9, 0xA1B2_C3D4, &peer(), (1 << 20, 1200));
        let mut body = 0xA1B2_C3D4u32.to_le_bytes().to_vec();
        body.extend_from_slice(&4000u16.to_le_bytes());
        body.extend_from_slice(&5000u16.to_le_bytes());
        body.extend(peer_strings());
        body.extend_from_slice(&(1u32 << 20).to_le_bytes());
        body.extend_from_slice(&1200u32.to_le_bytes());
        let mut want = header(RecordKind::Accepted, 9, body.len());
        want.extend(body);
        assert_eq!(w.bytes, want);
    }

    #[test]
    fn auth_request_record_layout() {
        let mut w = RecordWriter::default();
        w.auth_request(77, &peer(), b"tok");
        let mut body = 77u64.to_le_bytes().to_vec();
        body.extend_from_slice(&4000u16.to_le_bytes());
        body.extend_from_slice(&5000u16.to_le_bytes());
        body.extend(peer_strings());
        body.extend_from_slice(&3u16.to_le_bytes());
        body.extend_from_slice(b"tok");
        let mut want = header(RecordKind::AuthRequest, 0, body.len());
        want.extend(body);
        assert_eq!(w.bytes, want);
    }
}
