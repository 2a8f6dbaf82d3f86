//! What the handle asks of the I/O thread: the commands its queue carries, and how a send
//! batch (the binding's packed messages, refusals and delivery controls) is applied.

use crossbeam_channel::Sender;
use kcpwatch_proto::endpoint::ConnectError;
use kcpwatch_proto::events::Violation;
use kcpwatch_proto::{AppClose, ConnectionHandle, Millis, Mode, SendError, SessionConfig};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use tracing::warn;

use super::IoThread;
use crate::connected::ConnectedInfo;
use crate::error::RuntimeError;
use crate::stats::RuntimeStats;

pub(crate) enum Command {
    Connect {
        remote: SocketAddr,
        conv: u32,
        /// Secure mode: the application token for the server's `authenticate`.
        token: Vec<u8>,
        session: Option<SessionConfig>,
        reply: Sender<Result<ConnectedInfo, RuntimeError>>,
    },
    Send(Vec<u8>),
    /// Unreliable datagrams (secure mode), packed as `datagram_batch` describes.
    SendDatagrams(Vec<u8>),
    Close(u32),
    /// Closes a connection gracefully with the application's close code and text, which a
    /// secure session's DISCONNECT carries to the peer.
    CloseWith(u32, AppClose),
    InjectFault(u32),
    /// Closes every connection gracefully with `shutdown`, lingering at most this many ms
    /// (each connection's own linger when `None`), and accepts no new ones.
    CloseAll(Option<u32>),
    /// Answers an authentication request: its id and whether the token is accepted.
    ResolveAuth(u64, bool),
    /// Accepts an authentication request naming the connection's user (boxed: one per
    /// authentication, and the other commands stay small).
    ResolveAuthAs(u64, Box<kcpwatch_proto::events::UserId>),
    /// Refuses an authentication request with the application's reason code (1..=65535),
    /// which the client receives in the REJECT.
    RejectAuth(u64, u16),
    Stats(Sender<RuntimeStats>),
    /// One connection's summary so far (`None`: unknown or closed).
    ConnectionStats(u32, Sender<Option<kcpwatch_proto::ConnectionSummary>>),
    Shutdown,
}

/// Send-batch flag: report progress (acknowledged bytes) until the queue drains.
const WANT_PROGRESS: u8 = 1;
/// Send-batch flag: no message, only a refusal to log; bits 4..8 carry the violation.
const REPORT_ONLY: u8 = 2;
/// Send-batch flag: no message, a delivery control for the connection; bits 4..8 carry the
/// operation (`DELIVERY_PAUSE`, `DELIVERY_RESUME`).
pub(super) const CONTROL: u8 = 4;
/// JavaScript holds as many of this connection's messages as it may: leave the rest in the
/// engine (its receive window then pushes back on the peer).
pub(super) const DELIVERY_PAUSE: u8 = 1;
/// JavaScript has room again for this connection's messages.
pub(super) const DELIVERY_RESUME: u8 = 2;
/// JavaScript dropped `len` of this connection's datagrams nobody read: count them.
const DATAGRAMS_DROPPED: u8 = 3;

/// The violation codes JavaScript uses in a report-only send entry.
fn violation_from_code(code: u8) -> Option<Violation> {
    Some(match code {
        1 => Violation::OversizedMessage,
        2 => Violation::MessageOnClosedConnection,
        3 => Violation::EmptyMessage,
        4 => Violation::SendQueueFull,
        _ => return None,
    })
}

impl IoThread {
    /// Applies queued commands; true when asked to shut down.
    pub(super) fn take_commands(&mut self) -> bool {
        while let Ok(command) = self.commands.try_recv() {
            let now = self.now();
            match command {
                Command::Shutdown => return true,
                Command::Send(batch) => self.apply_sends(now, &batch),
                Command::SendDatagrams(batch) => {
                    crate::datagram_batch::apply(&mut self.endpoint, now, &batch);
                    self.shared
                        .datagram_backlog
                        .fetch_sub(batch.len(), Ordering::AcqRel);
                }
                Command::Close(handle) => self
                    .endpoint
                    .close(now, ConnectionHandle::from_bits(handle)),
                Command::CloseWith(handle, close) => {
                    self.endpoint
                        .close_with(now, ConnectionHandle::from_bits(handle), close)
                }
                Command::CloseAll(linger_ms) => self.endpoint.shutdown_gracefully(now, linger_ms),
                Command::InjectFault(handle) => {
                    self.endpoint
                        .inject_engine_fault(ConnectionHandle::from_bits(handle));
                }
                Command::ResolveAuth(id, accept) => {
                    self.endpoint.resolve_auth(id, accept);
                }
                Command::ResolveAuthAs(id, user) => {
                    self.endpoint.resolve_auth_as(id, *user);
                }
                Command::RejectAuth(id, app_code) => {
                    self.endpoint.reject_auth(id, app_code);
                }
                Command::Connect {
                    remote,
                    conv,
                    token,
                    session,
                    reply,
                } => {
                    let result = match self.endpoint.config().mode {
                        Mode::Raw => {
                            self.endpoint
                                .connect(now, remote, self.local, conv, session.as_ref())
                        }
                        Mode::Secure => self.endpoint.connect_secure(
                            now,
                            remote,
                            self.local,
                            &token,
                            session.as_ref(),
                        ),
                    };
                    let result = result.map_err(RuntimeError::from).and_then(|handle| {
                        let info = self
                            .endpoint
                            .connection_info(handle)
                            .ok_or(RuntimeError::Connect(ConnectError::Capacity(0)))?;
                        Ok(ConnectedInfo {
                            handle: handle.to_bits(),
                            uid: info.uid.to_string(),
                            local: info.local,
                            remote: info.remote,
                            conv: info.conv,
                        })
                    });
                    if let Ok(info) = &result {
                        self.open_span(ConnectionHandle::from_bits(info.handle));
                    }
                    let _ = reply.send(result);
                }
                Command::Stats(reply) => {
                    let _ = reply.send(self.stats_now());
                }
                Command::ConnectionStats(handle, reply) => {
                    let summary = self
                        .endpoint
                        .connection_summary(ConnectionHandle::from_bits(handle));
                    let _ = reply.send(summary);
                }
            }
        }
        false
    }

    /// The runtime's counters and the endpoint's, as they stand.
    pub(super) fn stats_now(&self) -> RuntimeStats {
        let mut stats = self.stats.clone();
        stats.endpoint = self.endpoint.stats().clone();
        stats.connections = self.endpoint.connection_count();
        stats.pending_auth = self.endpoint.pending_auth_count();
        stats.sessions = self.endpoint.session_totals();
        stats
    }

    pub(super) fn apply_sends(&mut self, now: Millis, batch: &[u8]) {
        let mut rest = batch;
        while rest.len() >= 9 {
            let handle = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let len = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
            let flags = rest[8];
            let conn = ConnectionHandle::from_bits(handle);
            if flags & REPORT_ONLY != 0 {
                // JavaScript refused this send itself and says so, so that the refusal is
                // logged with the connection's identity. `len` is the refused size; no bytes
                // follow.
                rest = &rest[9..];
                if let Some(violation) = violation_from_code(flags >> 4) {
                    self.endpoint.report_violation(conn, violation, len as u64);
                }
                continue;
            }
            if flags & CONTROL != 0 {
                rest = &rest[9..];
                match flags >> 4 {
                    DELIVERY_PAUSE if self.endpoint.connection_info(conn).is_some() => {
                        self.delivery_paused.insert(conn);
                    }
                    DELIVERY_RESUME => {
                        self.delivery_paused.remove(&conn);
                    }
                    DATAGRAMS_DROPPED => self.endpoint.note_datagram_drops(conn, len as u64),
                    _ => {}
                }
                continue;
            }
            let Some(data) = rest.get(9..9 + len) else {
                warn!("malformed send batch from the binding");
                return;
            };
            rest = &rest[9 + len..];
            match self.endpoint.send(now, conn, data) {
                Ok(()) => {
                    if flags & WANT_PROGRESS != 0 {
                        let acked = self.endpoint.acked_bytes(conn).unwrap_or(0);
                        self.watched.entry(conn).or_insert(acked);
                    }
                }
                // The close record is already on its way to JavaScript.
                Err(SendError::UnknownConnection) => self.stats.sends_to_closed += 1,
                Err(SendError::Session(e)) => {
                    use kcpwatch_proto::session::SessionSendError as E;
                    use kcpwatch_proto::ErrorCode;
                    let code = match e {
                        E::TooLarge { .. } => ErrorCode::MessageTooLarge.as_str(),
                        E::QueueFull { .. } => ErrorCode::QueueFull.as_str(),
                        E::NotOpen => ErrorCode::Closed.as_str(),
                        E::Empty => ErrorCode::EmptyMessage.as_str(),
                        E::Engine(code) => code,
                    };
                    self.writer.error(handle, code, &e.to_string());
                }
            }
        }
    }
}
