//! Syslog as a [`Transport`]: a TCP or TLS connection whose records are delivered once the
//! receiver's TCP acknowledged their bytes, or a UDP socket that sends each record once.

use std::collections::VecDeque;
use std::net::UdpSocket;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::framing::cut_datagram;
use super::super::stats::Shared;
use super::super::tls::TlsSetup;
use super::super::transport::{Fate, Health, Learned, Policy, Rec, Transport};
use super::config::{SyslogSinkConfig, SyslogTarget};
use super::link::{Link, PeerState};
use super::udp;

/// Records and bytes written per batch before the driver looks at acknowledgements, the
/// receiver and the queue again.
const BATCH_RECORDS: usize = 256;
const BATCH_BYTES: usize = 64 << 10;

/// How often acknowledgements are checked while a closing receiver reads what is in flight.
const ACK_POLL: Duration = Duration::from_millis(2);

/// The transport of a [`SyslogSink`](super::SyslogSink): UDP (RFC 5426), TCP (RFC 6587) or
/// TLS (RFC 5425). Made by [`SyslogSink::start`](super::SyslogSink::start).
pub struct SyslogTransport {
    cfg: SyslogSinkConfig,
    tls: Option<TlsSetup>,
    shared: Arc<Shared>,
    conn: Option<Conn>,
    /// Where each record in flight on a stream ends in the connection's byte stream, oldest
    /// first.
    ends: VecDeque<u64>,
    /// The fates of the datagrams sent since they were last asked for.
    sent: Vec<Fate>,
    /// Datagrams refused since that was last asked for.
    refused: u64,
    connected_once: bool,
}

enum Conn {
    Stream(Box<Link>),
    Udp(UdpSocket),
}

impl SyslogTransport {
    pub(super) fn new(cfg: SyslogSinkConfig, tls: Option<TlsSetup>, shared: Arc<Shared>) -> Self {
        Self {
            cfg,
            tls,
            shared,
            conn: None,
            ends: VecDeque::new(),
            sent: Vec::new(),
            refused: 0,
            connected_once: false,
        }
    }

    /// Datagrams the receiver's host refused (ICMP "port unreachable": the receiver is down)
    /// were counted as delivered when the socket took them: they are lost, and counted so.
    /// Each refusal is one entry of the socket's error queue (`IP_RECVERR`). Taking them
    /// before every send also clears the socket's pending error, so that the next datagram
    /// is sent rather than refused locally: every record to a receiver that is down is counted
    /// exactly once, however the ICMP messages and the sends interleave.
    fn take_refusals(&mut self, sock: &UdpSocket) {
        let refused = udp::refusals(sock);
        if refused > 0 {
            self.refused += refused;
            self.shared.set_error(format!(
                "UDP to {}: {refused} datagrams refused (port unreachable)",
                self.cfg.target.addr()
            ));
        }
    }

    fn send_datagrams(&mut self, sock: &UdpSocket, batch: &[Rec]) {
        let addr = self.cfg.target.addr();
        for record in batch {
            self.take_refusals(sock);
            let datagram = cut_datagram(record, self.cfg.max_udp_datagram);
            if datagram.len() < record.len() {
                Shared::add(&self.shared.truncated, 1);
            }
            match sock.send(&datagram) {
                Ok(_) => self.sent.push(Fate::Delivered),
                Err(e) => {
                    // Not sent: a local error, or a refusal that arrived between
                    // `take_refusals` and this send (that earlier datagram is still in the
                    // error queue, and counted from there).
                    self.sent.push(Fate::Lost);
                    self.shared.set_error(format!("UDP send to {addr}: {e}"));
                }
            }
        }
    }

    /// Encodes and writes `batch` on the stream, remembering where each record ends.
    fn write(
        &mut self,
        link: &mut Link,
        batch: &[Rec],
        stop: Option<Instant>,
    ) -> Result<(), String> {
        for record in batch {
            match link.encode(record) {
                Ok(end) => self.ends.push_back(end),
                Err(e) => {
                    // Not written: first in line for the next attempt.
                    self.ends.push_back(u64::MAX);
                    return Err(format!("write failed: {e}"));
                }
            }
        }
        if link.pending() > 0 {
            if let Some(deadline) = stop {
                // A blocked write must not outlast the grace period by the whole timeout.
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = link.set_write_timeout(self.cfg.write_timeout.min(left));
            }
            link.flush().map_err(|e| format!("write failed: {e}"))?;
        }
        Ok(())
    }

    /// After the receiver closed its side: stop writing, close ours, and give what is in
    /// flight a moment to be acknowledged (a receiver that closes gracefully reads until our
    /// end of stream), so that it is not sent twice.
    fn drain_closing(&mut self, stop: Option<Instant>) {
        let Some(Conn::Stream(link)) = self.conn.as_mut() else {
            return;
        };
        link.shutdown();
        let mut deadline = Instant::now() + self.cfg.write_timeout.min(Duration::from_secs(2));
        if let Some(stop) = stop {
            deadline = deadline.min(stop);
        }
        while self.ends.back().is_some_and(|&end| end > link.acked()) && Instant::now() < deadline {
            if let PeerState::Failed(_) = link.poll_peer() {
                break;
            }
            std::thread::sleep(ACK_POLL);
        }
    }
}

impl Transport for SyslogTransport {
    const THREAD_NAME: &'static str = "kcpwatch-sink";
    const INTERRUPTIBLE: bool = true;

    fn policy(&self) -> Policy {
        Policy {
            batch_records: BATCH_RECORDS,
            batch_bytes: BATCH_BYTES,
            batch_delay: None,
            // Only streams spool, and they do as soon as the receiver is down.
            spill_after: 0,
        }
    }

    fn connect(&mut self, stop: Option<Instant>) -> Result<(), String> {
        let addr = self.cfg.target.addr();
        if let SyslogTarget::Udp(_) = self.cfg.target {
            let sock = udp::socket(addr).map_err(|e| format!("UDP socket for {addr}: {e}"))?;
            self.conn = Some(Conn::Udp(sock));
            self.shared.connected.store(true, Ordering::Relaxed);
            return Ok(());
        }
        let mut timeout = self.cfg.connect_timeout;
        let mut write_timeout = self.cfg.write_timeout;
        if let Some(deadline) = stop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("connect to {addr}: the close deadline has passed"));
            }
            timeout = timeout.min(left);
            write_timeout = write_timeout.min(left);
        }
        let shared = Arc::clone(&self.shared);
        let on_socket = move |sock: &std::net::TcpStream| shared.set_socket(sock.try_clone().ok());
        match Link::connect(addr, self.tls.as_ref(), timeout, write_timeout, &on_socket) {
            Ok(link) => {
                self.conn = Some(Conn::Stream(Box::new(link)));
                if self.connected_once {
                    Shared::add(&self.shared.reconnects, 1);
                }
                self.connected_once = true;
                self.shared.connected.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.shared.set_socket(None);
                Err(format!("connect to {addr}: {e}"))
            }
        }
    }

    fn send(&mut self, batch: &[Rec], stop: Option<Instant>) -> Result<(), String> {
        match self.conn.take() {
            Some(Conn::Udp(sock)) => {
                self.send_datagrams(&sock, batch);
                self.conn = Some(Conn::Udp(sock));
                Ok(())
            }
            Some(Conn::Stream(mut link)) => {
                let written = self.write(&mut link, batch, stop);
                self.conn = Some(Conn::Stream(link));
                written
            }
            None => Err("write failed: not connected".to_owned()),
        }
    }

    fn health(&mut self, stop: Option<Instant>) -> Health {
        let Some(Conn::Stream(link)) = self.conn.as_mut() else {
            return Health::Up;
        };
        match link.poll_peer() {
            PeerState::Quiet => Health::Up,
            PeerState::Closed => {
                self.drain_closing(stop);
                Health::Closed
            }
            PeerState::Failed(e) => Health::Failed {
                error: format!("connection failed: {e}"),
                after: None,
            },
        }
    }

    fn fates(&mut self, inflight: usize, fates: &mut Vec<Fate>) -> Learned {
        match self.conn.as_ref() {
            Some(Conn::Stream(link)) => {
                let acked = link.acked();
                let mut delivered = 0;
                while delivered < inflight && self.ends.front().is_some_and(|&end| end <= acked) {
                    self.ends.pop_front();
                    fates.push(Fate::Delivered);
                    delivered += 1;
                }
                Learned {
                    progress: delivered > 0,
                    revoked: 0,
                }
            }
            _ => {
                fates.append(&mut self.sent);
                Learned {
                    progress: false,
                    revoked: std::mem::take(&mut self.refused),
                }
            }
        }
    }

    fn end_of_records(&mut self) {
        if let Some(Conn::Stream(link)) = self.conn.as_mut() {
            link.shutdown();
        }
    }

    fn close(&mut self, stop: Option<Instant>, last: bool) {
        match self.conn.take() {
            Some(Conn::Stream(mut link)) if last => {
                if self.ends.back().is_some_and(|&end| end > link.acked()) {
                    link.abort();
                } else {
                    // The deadline has passed: the close_notify and FIN go only if there is
                    // room.
                    let _ = link.set_write_timeout(Duration::ZERO);
                    link.shutdown();
                }
            }
            Some(Conn::Udp(sock)) if last => {
                // The refusals of the last datagrams may still be on their way (on loopback
                // they come back within the send; across a network, within a round trip).
                let mut until = Instant::now() + udp::LAST_REFUSALS;
                if let Some(stop) = stop {
                    until = until.min(stop);
                }
                udp::wait_for_error(&sock, until);
                self.take_refusals(&sock);
            }
            _ => {}
        }
        self.ends.clear();
        self.shared.set_socket(None);
        self.shared.connected.store(false, Ordering::Relaxed);
    }
}
