//! How sessions end: an application close, a shutdown, or an immediate close with a reason.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{ConnectionHandle, Endpoint, EndpointEvent};
use crate::clock::Millis;
use crate::events::{
    CappedText, ConnectionClosed, ConnectionStateUpdated, Direction, ErrorEvent, ErrorType,
    SecurityEvent,
};
use crate::lifecycle::{CloseReason, ConnectionState};
use crate::session::{ConnectionSummary, EngineError, Session};

impl Endpoint {
    /// Closes a connection gracefully: queued data keeps flowing for up to the linger time,
    /// then the connection closes with `local_closed`.
    pub fn close(&mut self, now: Millis, handle: ConnectionHandle) {
        self.close_as(now, handle, None, CloseReason::LocalClosed);
    }

    /// [`Endpoint::close`] with the application's close code and text: a secure session's
    /// DISCONNECT carries them to the peer, and both sides' close records show them. Raw KCP
    /// has no way to carry them; they are only recorded locally.
    pub fn close_with(&mut self, now: Millis, handle: ConnectionHandle, close: crate::AppClose) {
        if let Some(session) = self.sessions.get_mut(handle) {
            session.set_app_close(close);
        }
        self.close_as(now, handle, None, CloseReason::LocalClosed);
    }

    /// Ends every connection gracefully with `shutdown`: queued data keeps flowing for up to
    /// `linger_ms` (each connection's own linger when `None`), then each closes; no new
    /// connection is accepted from now on. Handshakes in progress and pending authentications
    /// end at once. [`Endpoint::shutdown`] still ends whatever is left.
    pub fn shutdown_gracefully(&mut self, now: Millis, linger_ms: Option<u32>) {
        self.clock.advance(now);
        self.config.accept_inbound = false;
        for handle in self.sessions.handles() {
            self.close_as(now, handle, linger_ms, CloseReason::Shutdown);
        }
        self.refuse_pending_auth_for_shutdown();
    }

    pub(super) fn close_as(
        &mut self,
        now: Millis,
        handle: ConnectionHandle,
        linger_ms: Option<u32>,
        reason: CloseReason,
    ) {
        self.clock.advance(now);
        // A handshake in progress has nothing to flush: it ends now.
        if self
            .session(handle)
            .is_some_and(|s| s.state == ConnectionState::Handshaking)
        {
            self.close_now(handle, reason);
            return;
        }
        let was_established = self
            .session(handle)
            .is_some_and(|s| s.state == ConnectionState::Established);
        let reason = self.with_session(handle, |s| {
            let linger = linger_ms.unwrap_or(s.config.linger_ms);
            s.begin_close_as(now, linger, reason);
            s.liveness(now)
        });
        if was_established && reason.is_some() {
            if let Some(conn) = self.session(handle).map(Session::conn_ref) {
                self.emit(SecurityEvent::ConnectionStateUpdated(
                    ConnectionStateUpdated {
                        conn,
                        old: ConnectionState::Established,
                        new: ConnectionState::Closing,
                    },
                ));
            }
        }
        match reason {
            Some(Some(reason)) => self.close_now(handle, reason),
            Some(None) => self.reschedule(handle, now),
            None => {}
        }
    }

    /// Ends every connection with `shutdown`.
    pub fn shutdown(&mut self, now: Millis) {
        self.clock.advance(now);
        for handle in self.sessions.handles() {
            self.close_now(handle, CloseReason::Shutdown);
        }
        self.refuse_pending_auth_for_shutdown();
    }

    /// Takes a session out of the sessions and everything that counts it (FEC peers, the
    /// per-address counts); the handle is stale afterwards.
    pub(super) fn remove_session(&mut self, handle: ConnectionHandle) -> Option<Session> {
        let session = self.sessions.remove(handle, self.clock.extended())?;
        if let Some(fec) = self.fec.as_mut() {
            fec.forget(session.remote);
        }
        if session.direction == Direction::Inbound {
            self.handshake.inbound_closed(session.remote.ip());
        }
        Some(session)
    }

    /// Ends a connection at once.
    pub fn close_now(&mut self, handle: ConnectionHandle, reason: CloseReason) {
        if self.session(handle).is_some_and(Session::unconfirmed) {
            // Never announced: it ends as a failed attempt, not as a connection.
            self.abandon_unconfirmed(handle, reason);
            return;
        }
        let Some(mut session) = self.remove_session(handle) else {
            return;
        };
        if reason == CloseReason::ProtocolViolation
            && session.secure.is_none()
            && session.direction == Direction::Inbound
        {
            let until = self.clock.extended() + u64::from(session.config.idle_timeout_ms);
            self.sessions.block_raw(session.remote, session.conv, until);
        }
        if reason == CloseReason::DeadLink {
            let now = self.clock.extended();
            self.reporter.detect(now, |d, now_ms| d.dead_link(now_ms));
        }
        // Before the summary, so that its message counters include them. A panicked engine
        // is not read again.
        let unread = if reason == CloseReason::InternalError {
            Vec::new()
        } else {
            catch_unwind(AssertUnwindSafe(|| {
                session.send_owed_acks();
                session.take_unread()
            }))
            .unwrap_or_default()
        };
        if reason != CloseReason::PeerClosed {
            // The engine may be what panicked; the DISCONNECT only touches the sink.
            let _ = catch_unwind(AssertUnwindSafe(|| session.send_disconnect(reason)));
        }
        self.reporter.stats.closed += 1;
        // A panicking engine may have left its state inconsistent; the summary only reads
        // plain counters, but guard it all the same.
        let now_extended = self.clock.extended();
        let old_state = session.state;
        session.state = ConnectionState::Closed;
        let conn = session.conn_ref();
        let mut params = session.config;
        if session.secure.is_some() {
            // The record's `kcp_mtu` is the largest datagram on the wire, as
            // `kcp:listener_started` states it; a secure engine's own MTU leaves room for the
            // session framing (and FEC's header), so that is added back.
            params.mtu = session.secure_wire_mtu();
        }
        let summary = catch_unwind(AssertUnwindSafe(|| session.summary(now_extended)));
        if reason == CloseReason::InternalError {
            self.emit(SecurityEvent::Error(ErrorEvent {
                conn: Some(conn),
                peer: None,
                local: None,
                error_type: ErrorType::Library,
                code: EngineError::PANIC_CODE,
                message: CappedText::format("the KCP engine panicked; the session was discarded"),
                suppressed: 0,
            }));
        }
        self.emit(SecurityEvent::ConnectionStateUpdated(
            ConnectionStateUpdated {
                conn,
                old: old_state,
                new: ConnectionState::Closed,
            },
        ));
        // A panicking engine may have left counters unreadable; the close is recorded all the
        // same, with what could be read.
        let summary = summary.unwrap_or_else(|_| ConnectionSummary::empty(conn));
        self.sessions.add_closed(&summary);
        let (peer_reason, app_close) = (session.peer_reason(), session.app_close());
        self.emit(SecurityEvent::ConnectionClosed(ConnectionClosed {
            conn,
            reason,
            initiator: reason.initiator(),
            peer_reason,
            app_close,
            summary,
            params,
        }));
        self.events.push_back(EndpointEvent::Closed {
            handle,
            reason,
            peer_reason,
            app_close: Box::new(app_close),
            summary: Box::new(summary),
            unread,
        });
    }
}
