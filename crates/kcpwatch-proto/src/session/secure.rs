//! What a secure session keeps beyond the engine: its ciphers and replay window, the client's
//! handshake, the confirmation, keepalives and DISCONNECT, and the application's close code.

use std::sync::Arc;

use super::Session;
use crate::clock::{diff, Millis};
use crate::config::SessionConfig;
use crate::events::AppClose;
use crate::lifecycle::{CloseReason, ConnectionState};
use crate::secure::keys::{ReplayWindow, Role, SessionCipher, SessionKeys};
use crate::secure::noise::ClientNoise;
use crate::secure::wire::{
    write_disconnect_body, DisconnectBody, DISCONNECT_BODY_MAX, KEY_ID_LEN, NONCE_LEN, TAG_LEN,
    TYPE_DISCONNECT, TYPE_KEEPALIVE,
};
use crate::transmit::{Sealer, SENT_TAGS};

/// How often a client repeats its confirming KEEPALIVE until the server is heard from.
const CONFIRM_RETRY_MS: u32 = 500;

/// The first HELLO retransmission comes this soon; each later one waits twice as long.
pub(crate) const HELLO_RETRY_MS: u32 = 250;

pub(super) const HELLO_RETRY_MAX_MS: u32 = 2_000;

/// A session that ends sends its DISCONNECT this many times: it is unreliable, and one lost
/// copy should not leave the peer waiting for its idle timeout.
pub(super) const DISCONNECT_COPIES: usize = 3;

/// What a secure session keeps beyond the engine.
pub(crate) struct SecureState {
    pub(crate) role: Role,
    /// The HELLO nonce of the attempt that made this session: replies echo it, and a
    /// retransmitted HELLO is recognised by it.
    pub(crate) nonce: [u8; NONCE_LEN],
    /// Opens the peer's datagrams; `None` until the handshake completes.
    pub(crate) receive: Option<SessionCipher>,
    /// The server static key the handshake used (its id), for the records.
    pub(crate) key_id: [u8; KEY_ID_LEN],
    pub(crate) window: ReplayWindow,
    pub(crate) keepalive_ms: u32,
    /// Datagrams sent when the keepalive clock last looked, and when that changed.
    sent_seen: u64,
    last_sent_at: Millis,
    /// Server: the ACCEPT, resent when the client's HELLO comes again.
    pub(crate) accept: Option<Box<[u8]>>,
    /// Client: the handshake in progress.
    pub(crate) handshake: Option<ClientHandshake>,
    /// Newest datagram delivered per sequenced channel.
    pub(crate) sequencer: crate::secure::datagram::Sequencer,
    /// Server: the ACCEPT went out and the session waits, unannounced, for the client's first
    /// authenticated datagram until this time (docs/protocol.md, "Handshake confirmation").
    pub(crate) confirm_by: Option<Millis>,
    /// Client: nothing authentic has come from the server since the ACCEPT, so the server may
    /// not have our confirmation yet; keepalives repeat quickly until something does.
    pub(crate) awaiting_peer: bool,
    /// FEC: the peer's recent datagrams, kept once it sent parity (`secure::fec`).
    pub(crate) fec: Option<Box<crate::secure::fec::Decoder>>,
}

impl SecureState {
    /// When the next keepalive is due: an interval after the last datagram sent.
    pub(super) fn next_keepalive(&self) -> Millis {
        self.last_sent_at.wrapping_add(self.keepalive_interval())
    }

    /// The keepalive interval now: short while a client's confirmation may be lost.
    fn keepalive_interval(&self) -> u32 {
        if self.awaiting_peer {
            self.keepalive_ms.min(CONFIRM_RETRY_MS)
        } else {
            self.keepalive_ms
        }
    }
}

/// A client's handshake: what to send next and until when to try.
pub(crate) struct ClientHandshake {
    /// The HELLO (its Noise message written once; the cookie goes in when it comes).
    pub(crate) hello: Box<[u8]>,
    /// Reads the ACCEPT; taken when it arrives.
    pub(crate) noise: Option<ClientNoise>,
    pub(crate) next_hello_at: Millis,
    pub(crate) retry_ms: u32,
    pub(crate) deadline: Millis,
    /// HELLOs sent, for the record of a timeout.
    pub(crate) hellos: u32,
    /// Distinct HELLOs that drew an ICMP unreachable report since the server last answered
    /// (see [`crate::Endpoint::peer_unreachable`]).
    pub(crate) unreachable_hellos: u32,
    /// The value of `hellos` at the last counted report: more reports about the same HELLO
    /// count once.
    pub(crate) unreachable_at_hello: u32,
}

impl ClientHandshake {
    pub(crate) fn backoff(&mut self, now: Millis) {
        self.hellos += 1;
        self.next_hello_at = now.wrapping_add(self.retry_ms);
        self.retry_ms = (self.retry_ms * 2).min(HELLO_RETRY_MAX_MS);
    }
}

/// What protects a secure session: our side of the handshake, the HELLO nonce that named it,
/// the server key it used, and how often to send a keepalive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Protection {
    pub(crate) role: Role,
    pub(crate) nonce: [u8; NONCE_LEN],
    pub(crate) key_id: [u8; KEY_ID_LEN],
    pub(crate) keepalive_ms: u32,
}

impl Session {
    /// Makes this a secure session. A client starts in `Handshaking` with `handshake`; a server
    /// session passes its keys at once.
    pub(crate) fn make_secure(
        &mut self,
        protection: Protection,
        handshake: Option<ClientHandshake>,
        now: Millis,
    ) {
        let Protection {
            role,
            nonce,
            key_id,
            keepalive_ms,
        } = protection;
        if handshake.is_some() {
            self.state = ConnectionState::Handshaking;
        }
        self.secure = Some(Box::new(SecureState {
            role,
            nonce,
            receive: None,
            key_id,
            window: ReplayWindow::default(),
            keepalive_ms: keepalive_ms.max(1),
            sent_seen: 0,
            last_sent_at: now,
            accept: None,
            handshake,
            sequencer: Default::default(),
            confirm_by: None,
            awaiting_peer: false,
            fec: None,
        }));
    }

    /// A client's handshake agreed an MTU (`config` from `agreed_session_config`): the engine
    /// uses it from now on, and the messages queued meanwhile are split again to fit. Returns
    /// how many queued messages no longer fit and were dropped.
    pub(crate) fn set_agreed_mtu(&mut self, config: &SessionConfig) -> usize {
        self.config = *config;
        self.send_ceiling = config.max_message_size;
        // validate() bounded our MTU and agreed_session_config keeps it at least KCP's minimum.
        let _ = self.kcp.set_mtu(config.mtu);
        self.kcp.resegment_queue()
    }

    /// The largest message queued while the handshake ran (0: none).
    pub(crate) fn largest_queued(&self) -> usize {
        self.largest_queued
    }

    /// Starts sealing: from here on every datagram is an encrypted session datagram.
    pub(crate) fn start_session(
        &mut self,
        conv: u32,
        keys: SessionKeys,
        now: Millis,
        now_extended: u64,
    ) {
        let Some(secure) = self.secure.as_mut() else {
            return;
        };
        secure.receive = Some(keys.receive);
        secure.handshake = None;
        secure.last_sent_at = now;
        self.conv = conv;
        self.kcp.set_conv(conv);
        let client = secure.role == Role::Client;
        let sink = self.kcp.output_mut();
        sink.sealer = Some(Sealer {
            key: keys.send,
            conv,
            next_packet_number: 0,
            fec: None,
        });
        if client {
            // To recognise a server's stateless RESET (docs/protocol.md).
            sink.sent_tags = Some(Box::new([(0, [0; TAG_LEN]); SENT_TAGS]));
        }
        self.state = ConnectionState::Established;
        // The connection's life (and its idle clock) starts when it is established.
        self.started_at = now;
        self.started_at_extended = now_extended;
        self.last_received = now;
        self.kcp.set_current(now);
    }

    /// Secure mode with FEC: from now on every sealed datagram is a data shard, and each full
    /// group is followed by its parity (`mtu`: the largest datagram on the wire).
    pub(crate) fn enable_secure_fec(&mut self, codec: Arc<crate::fec::Codec>, mtu: usize) {
        if let Some(sealer) = self.kcp.output_mut().sealer.as_mut() {
            sealer.fec = Some(Box::new(crate::secure::fec::Encoder::new(codec, mtu)));
        }
    }

    /// Secure mode: the largest datagram on the wire (the agreed MTU): the engine's MTU, the
    /// session framing and, when this side sends FEC, the room it leaves for parity.
    pub(crate) fn secure_wire_mtu(&self) -> usize {
        let fec = self
            .kcp
            .output_ref()
            .sealer
            .as_ref()
            .is_some_and(|s| s.fec.is_some());
        self.config.mtu
            + crate::secure::wire::SESSION_OVERHEAD
            + if fec { crate::secure::fec::OVERHEAD } else { 0 }
    }

    /// Server: the ACCEPT is out; the session stays `Handshaking` (unannounced, its engine
    /// idle) until the client confirms it or `by` passes.
    pub(crate) fn await_confirmation(&mut self, by: Millis) {
        if let Some(secure) = self.secure.as_mut() {
            secure.confirm_by = Some(by);
            self.state = ConnectionState::Handshaking;
        }
    }

    /// Server: whether the session still waits for the client's confirmation.
    pub(crate) fn unconfirmed(&self) -> bool {
        self.secure.as_ref().is_some_and(|s| s.confirm_by.is_some())
    }

    /// Server: the client confirmed the handshake; the connection starts now.
    pub(crate) fn confirm(&mut self, now: Millis, now_extended: u64) {
        if let Some(secure) = self.secure.as_mut() {
            secure.confirm_by = None;
            secure.last_sent_at = now;
        }
        self.state = ConnectionState::Established;
        self.started_at = now;
        self.started_at_extended = now_extended;
        self.last_received = now;
        self.kcp.set_current(now);
    }

    /// Client: the ACCEPT was read; confirms it to the server at once with a KEEPALIVE (before
    /// any queued data, so even an application with nothing to say confirms), and keeps
    /// repeating it until the server is heard from.
    pub(crate) fn send_confirmation(&mut self, now: Millis) {
        let Some(secure) = self.secure.as_mut() else {
            return;
        };
        secure.awaiting_peer = true;
        self.kcp.output_mut().send_sealed(TYPE_KEEPALIVE, &[]);
        secure.sent_seen = self.kcp.output_ref().datagrams;
        secure.last_sent_at = now;
    }

    /// Server: answers the client's confirmation with a KEEPALIVE, so it stops repeating it.
    pub(crate) fn send_confirmation_ack(&mut self) {
        self.kcp.output_mut().send_sealed(TYPE_KEEPALIVE, &[]);
        self.note_sent(self.last_received);
    }

    /// An authentic datagram came from the peer: a client's confirmation has arrived.
    pub(crate) fn heard_peer(&mut self) {
        if let Some(secure) = self.secure.as_mut() {
            secure.awaiting_peer = false;
        }
    }

    /// Whether a RESET echoing `packet_number` and `tag` answers a datagram we sent.
    pub(crate) fn reset_matches(&self, packet_number: u64, tag: &[u8; TAG_LEN]) -> bool {
        self.kcp.output_ref().sent(packet_number, tag)
    }

    /// Seals `body` (a DATAGRAM plaintext) as the session's next datagram, outside the engine;
    /// false if the session has no keys yet.
    pub(crate) fn send_sealed_datagram(&mut self, body: &[u8]) -> bool {
        self.kcp
            .output_mut()
            .send_sealed(crate::secure::wire::TYPE_DATAGRAM, body)
    }

    /// Sends a datagram outside the engine (a handshake reply, a HELLO).
    pub(crate) fn send_plain(&mut self, datagram: &[u8]) {
        self.kcp.output_mut().send_plain(datagram);
    }

    /// Tells the peer this session ends (secure mode; raw KCP has no way to say it), with the
    /// application's close code and text if it gave them.
    pub(crate) fn send_disconnect(&mut self, reason: CloseReason) {
        if self.secure.as_ref().is_some_and(|s| s.receive.is_some()) {
            let mut body = [0; DISCONNECT_BODY_MAX];
            let len = write_disconnect_body(
                &mut body,
                &DisconnectBody {
                    reason: reason.code(),
                    app_code: self.app_close.code,
                    text: self.app_close.text.as_str(),
                },
            );
            for _ in 0..DISCONNECT_COPIES {
                self.kcp
                    .output_mut()
                    .send_sealed(TYPE_DISCONNECT, &body[..len]);
            }
        }
    }

    /// Sets what the application said when closing (sent in the DISCONNECT, and recorded).
    pub(crate) fn set_app_close(&mut self, close: AppClose) {
        self.app_close = close;
    }

    /// What the application said when closing, ours or (after a DISCONNECT) the peer's.
    pub(crate) fn app_close(&self) -> AppClose {
        self.app_close
    }

    /// What the peer's DISCONNECT said: its reason and the application's code and text.
    pub(crate) fn set_peer_close(&mut self, reason: Option<CloseReason>, close: AppClose) {
        self.peer_reason = reason;
        self.app_close = close;
    }

    /// Why the peer said it closed, if it said.
    pub(crate) fn peer_reason(&self) -> Option<CloseReason> {
        self.peer_reason
    }

    /// Seals `body` as this session's next datagrams are sealed (tests and the fuzz harness
    /// only): the session's conv, or `None` before its keys exist.
    #[cfg(feature = "test-keys")]
    pub(crate) fn seal_for_tests(
        &self,
        kind: u8,
        packet_number: u64,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<u32> {
        let sealer = self.kcp.output_ref().sealer.as_ref()?;
        crate::secure::keys::seal_into(out, &sealer.key, kind, sealer.conv, packet_number, body);
        Some(sealer.conv)
    }

    /// The server key id of a secure session.
    pub(crate) fn key_id(&self) -> Option<[u8; KEY_ID_LEN]> {
        self.secure.as_ref().map(|s| s.key_id)
    }

    /// Restarts the keepalive clock if anything was sent since it last looked.
    pub(super) fn note_sent(&mut self, now: Millis) {
        let sent = self.kcp.output_ref().datagrams;
        if let Some(secure) = self.secure.as_mut() {
            if sent != secure.sent_seen {
                secure.sent_seen = sent;
                secure.last_sent_at = now;
            }
        }
    }

    /// Sends a keepalive if the session has been silent for its keepalive interval.
    pub(super) fn keepalive(&mut self, now: Millis) {
        self.note_sent(now);
        let Some(secure) = self.secure.as_mut() else {
            return;
        };
        if secure.receive.is_none() {
            return;
        }
        if diff(now, secure.last_sent_at) >= secure.keepalive_interval() as i32 {
            self.kcp.output_mut().send_sealed(TYPE_KEEPALIVE, &[]);
            secure.sent_seen = self.kcp.output_ref().datagrams;
            secure.last_sent_at = now;
        }
    }

    pub(super) fn handshaking(&self) -> bool {
        self.state == ConnectionState::Handshaking
    }
}
