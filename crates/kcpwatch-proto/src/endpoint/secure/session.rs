//! Secure mode, both sides, once established: session datagrams opened, checked against the
//! replay window, fed to the engine (FEC included), and the peer's address moves.

use crate::endpoint::Dropped;
use std::net::SocketAddr;

use crate::clock::Millis;
use crate::endpoint::{ConnectionHandle, Endpoint};
use crate::events::{Direction, DropRule, PeerAddressChanged, SecurityEvent};
use crate::lifecycle::{CloseReason, DropTrigger};
use crate::secure::keys::{open, Freshness, OpenError};
use crate::secure::wire::{
    self, RESET_LEN, SESSION_OVERHEAD, TYPE_DATA, TYPE_DATAGRAM, TYPE_DISCONNECT, TYPE_FEC_PARITY,
    TYPE_KEEPALIVE,
};
use crate::session::AppClose;

/// An authentic, fresh session datagram, opened: where it came from and reached us, its
/// header, its plaintext body, whether it is the newest the peer sent, and its length on the
/// wire.
#[derive(Clone, Copy)]
pub(in crate::endpoint) struct Opened<'a> {
    pub(in crate::endpoint) remote: SocketAddr,
    pub(in crate::endpoint) local: SocketAddr,
    pub(in crate::endpoint) header: &'a wire::SessionHeader,
    pub(in crate::endpoint) body: &'a [u8],
    pub(in crate::endpoint) freshness: Freshness,
    pub(in crate::endpoint) len: usize,
}

impl Endpoint {
    /// DATA, KEEPALIVE, DISCONNECT, DATAGRAM or FEC_PARITY: found by conv, checked by tag and
    /// packet number before anything else looks at it. `rebuilt`: FEC rebuilt it from parity
    /// (it takes the same path; a forgery is counted as an FEC error too).
    pub(in crate::endpoint) fn session_datagram(
        &mut self,
        now: Millis,
        remote: SocketAddr,
        local: SocketAddr,
        datagram: &[u8],
        rebuilt: bool,
    ) {
        let len = datagram.len();
        let Some((header, _)) = wire::parse_session(datagram) else {
            self.drop_trigger(
                Dropped::new(remote, local, len),
                DropTrigger::TooShort,
                DropRule::SessionTooShort,
            );
            return;
        };
        let conv = Some(header.conv);
        let Some(handle) = self.sessions.by_conv(header.conv) else {
            let now_extended = self.clock.extended();
            if self.sessions.recently_closed(header.conv, now_extended) {
                // The peer's remaining DISCONNECT copies or data in flight: expected after every
                // close, so counted without a record each.
                self.reporter.stats.late_after_close += 1;
                return;
            }
            // DATA or KEEPALIVE for a session this process does not have (it restarted, or
            // closed the session long ago): a stateless RESET ends the client's session.
            if header.kind == TYPE_DATAGRAM {
                self.datagram_without_session();
            }
            let answer = header.kind != TYPE_DISCONNECT && self.reset_allowed(remote);
            let rule = if header.kind == TYPE_DISCONNECT {
                DropRule::NoSession
            } else {
                self.stale_rule()
            };
            self.drop_trigger(
                Dropped::new(remote, local, len).conv(conv),
                DropTrigger::UnknownConnection,
                rule,
            );
            if let (true, Some(tag)) = (answer, wire::reset_tag(datagram)) {
                let mut reset = [0; RESET_LEN];
                wire::write_reset(&mut reset, &header, &tag);
                // The source is not validated: counted like a COOKIE, and never larger than the
                // datagram it answers (a session datagram is at least RESET_LEN bytes).
                self.reporter.stats.bytes_received_unvalidated += len as u64;
                self.send_unbound(remote, local, &reset, false);
                self.reporter.stats.resets_sent += 1;
            }
            return;
        };
        let Some(session) = self.sessions.get_mut(handle) else {
            return;
        };
        let uid = Some(session.uid);
        let Some(secure) = session.secure.as_mut() else {
            return;
        };
        let Some(key) = secure.receive.as_ref() else {
            return;
        };
        if rebuilt && secure.window.check(header.packet_number) == Freshness::Replayed {
            // It arrived after all (or before the peer's first parity): nothing was lost.
            return;
        }
        let mut plain = std::mem::take(&mut self.plain);
        let freshness = match open(key, &mut secure.window, datagram, &header, &mut plain) {
            Ok(freshness) => freshness,
            Err(error) => {
                self.plain = plain;
                let (trigger, rule) = match (error, rebuilt) {
                    (OpenError::DecryptFailed, false) => {
                        (DropTrigger::DecryptFailed, DropRule::SessionAead)
                    }
                    (OpenError::DecryptFailed, true) => {
                        // Garbage rebuilt from a parity that does not fit the group: never
                        // applied, as a forged datagram.
                        self.reporter.stats.fec.errors += 1;
                        self.reporter.stats.fec.rebuilt_refused += 1;
                        (DropTrigger::DecryptFailed, DropRule::FecRebuiltAead)
                    }
                    (OpenError::Replayed, _) => (DropTrigger::Replayed, DropRule::ReplayWindow),
                };
                self.drop_trigger(
                    Dropped::new(remote, local, len).conv(conv).uid(uid),
                    trigger,
                    rule,
                );
                return;
            }
        };
        if rebuilt {
            self.reporter.stats.fec.recovered += 1;
        }
        let recovered = match self.fec_input(handle, &header, datagram, &plain) {
            Ok(recovered) => recovered,
            Err(()) => {
                self.plain = plain;
                self.reporter.stats.fec.errors += 1;
                self.drop_trigger(
                    Dropped::new(remote, local, len).conv(conv).uid(uid),
                    DropTrigger::BadLength,
                    DropRule::FecParityMalformed,
                );
                return;
            }
        };
        let opened = Opened {
            remote,
            local,
            header: &header,
            body: &plain,
            freshness,
            len,
        };
        self.session_plaintext(now, handle, &opened);
        self.plain = plain;
        if let Some(buffers) = recovered {
            for &(at, len) in &buffers.1 {
                if self.session(handle).is_none() {
                    break;
                }
                let datagram = &buffers.0[at as usize..(at + len) as usize];
                self.session_datagram(now, remote, local, datagram, true);
            }
            if let Some(decoder) = self
                .sessions
                .get_mut(handle)
                .and_then(|s| s.secure.as_mut())
                .and_then(|s| s.fec.as_mut())
            {
                decoder.put_back(buffers);
            }
        }
    }

    /// FEC (`secure::fec`): keeps an authentic, fresh datagram for rebuilding its group's lost
    /// ones (once the peer has sent parity), or takes a parity datagram; returns the datagrams
    /// this rebuilt, to be opened like received ones. `Err` for a parity whose header or length
    /// cannot be right.
    #[allow(clippy::type_complexity)]
    pub(in crate::endpoint) fn fec_input(
        &mut self,
        handle: ConnectionHandle,
        header: &wire::SessionHeader,
        datagram: &[u8],
        plain: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<(u32, u32)>)>, ()> {
        let Some(session) = self.sessions.get_mut(handle) else {
            return Ok(None);
        };
        let mtu = session.secure_wire_mtu();
        let Some(secure) = session.secure.as_mut() else {
            return Ok(None);
        };
        let stats = &mut self.reporter.stats.fec;
        let pn = header.packet_number;
        let rebuilt = if header.kind == TYPE_FEC_PARITY {
            stats.enabled = true;
            stats.parity_shards += 1;
            let (parity, bytes) = crate::secure::fec::parse_parity(plain).ok_or(())?;
            if secure.fec.is_none() {
                // The peer sends FEC: keep its datagrams from now on, in buffers made once.
                let codec = self
                    .secure_fec
                    .for_peer(parity.data, parity.parity)
                    .ok_or(())?;
                secure.fec = Some(Box::new(crate::secure::fec::Decoder::new(
                    codec,
                    header.conv,
                    mtu,
                )));
            }
            let decoder = secure.fec.as_mut().ok_or(())?;
            decoder.parity(pn, &parity, bytes, stats).map_err(|_| ())?
        } else {
            match secure.fec.as_mut() {
                Some(decoder) => decoder.data(pn, datagram, stats),
                None => false,
            }
        };
        Ok(rebuilt
            .then(|| secure.fec.as_mut().map(|d| d.take_rebuilt()))
            .flatten())
    }

    /// An authenticated session datagram's content.
    pub(in crate::endpoint) fn session_plaintext(
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
            freshness,
            len,
        } = *opened;
        let conv = Some(header.conv);
        let Some(session) = self.sessions.get_mut(handle) else {
            return;
        };
        let uid = Some(session.uid);
        session.heard_peer();
        if session.unconfirmed() {
            if header.kind == TYPE_DISCONNECT {
                // The client left before its session started: never a connection.
                self.reporter.stats.datagrams_accepted += 1;
                self.abandon_unconfirmed(handle, CloseReason::PeerClosed);
                return;
            }
            self.confirm_server(handle, now);
        }
        let Some(session) = self.sessions.get(handle) else {
            return;
        };
        let (old_peer, old_local) = (session.remote, session.local);
        if (remote, local) != (old_peer, old_local) && freshness == Freshness::Newest {
            self.migrate(handle, remote, local);
        }
        match header.kind {
            TYPE_DATA => {
                let outcome = self.with_session(handle, |s| s.input(now, body));
                match outcome {
                    Some(Ok(engine_error)) => {
                        self.reporter.stats.datagrams_accepted += 1;
                        if let Some(s) = self.sessions.get_mut(handle) {
                            s.note_framing_in(SESSION_OVERHEAD);
                        }
                        if let Some(error) = engine_error {
                            self.engine_error(handle, error);
                        }
                        self.after_activity(handle, now);
                    }
                    Some(Err(violation)) => self.drop_datagram(
                        Dropped::new(remote, local, len).conv(conv).uid(uid),
                        violation,
                    ),
                    None => {}
                }
            }
            TYPE_KEEPALIVE => {
                self.reporter.stats.datagrams_accepted += 1;
                if let Some(s) = self.sessions.get_mut(handle) {
                    s.note_control_in(now, len);
                }
                self.reschedule(handle, now);
            }
            TYPE_DATAGRAM => {
                self.datagram_in(now, handle, opened);
            }
            TYPE_FEC_PARITY => {
                // Taken by `fec_input`; an authentic datagram all the same.
                self.reporter.stats.datagrams_accepted += 1;
                if let Some(s) = self.sessions.get_mut(handle) {
                    s.note_control_in(now, len);
                }
                self.reschedule(handle, now);
            }
            _ => {
                self.reporter.stats.datagrams_accepted += 1;
                let said = wire::parse_disconnect_body(body);
                if let Some(s) = self.sessions.get_mut(handle) {
                    s.note_control_in(now, len);
                    s.set_peer_close(
                        CloseReason::from_code(said.reason),
                        AppClose::new(said.app_code, said.text),
                    );
                }
                self.close_now(handle, CloseReason::PeerClosed);
            }
        }
    }

    /// Moves a session to the address its newest authentic datagram came from.
    pub(in crate::endpoint) fn migrate(
        &mut self,
        handle: ConnectionHandle,
        remote: SocketAddr,
        local: SocketAddr,
    ) {
        let Some(session) = self.sessions.get_mut(handle) else {
            return;
        };
        let (old_peer, old_local) = (session.remote, session.local);
        session.move_to(remote, local);
        let inbound = session.direction == Direction::Inbound;
        let conn = session.conn_ref();
        if inbound {
            self.handshake.inbound_closed(old_peer.ip());
            self.handshake.inbound_opened(remote.ip());
        }
        self.reporter.stats.peer_address_changes += 1;
        self.emit(SecurityEvent::PeerAddressChanged(PeerAddressChanged {
            conn,
            old_peer,
            old_local,
        }));
    }

    /// Raises (or lowers) the largest message `handle`'s session sends, whatever the
    /// handshake agreed: for tests only, to play a peer that ignores the agreement (another
    /// implementation, or a hostile one) and check what the receiver does.
    #[cfg(feature = "test-keys")]
    #[doc(hidden)]
    pub fn set_send_ceiling_for_tests(&mut self, handle: ConnectionHandle, ceiling: usize) {
        if let Some(session) = self.sessions.get_mut(handle) {
            session.send_ceiling = ceiling;
        }
    }
}
