//! One TCP or TLS connection to a syslog receiver, with the byte accounting that tells which
//! records the receiver's TCP has acknowledged.
//!
//! Every byte written to the socket (TLS handshake included) advances `written`. Each record's
//! frame ends at a known offset in that stream (for TLS, the offset of the end of the TLS
//! records carrying it, since rustls encrypts into a buffer here before anything is written).
//! On Linux, `SIOCOUTQ` gives the bytes the peer has not acknowledged yet, so
//! `written - SIOCOUTQ` is how far the peer's TCP has confirmed receipt: records before that
//! are delivered, records after it are retried on the next connection if this one fails.
//! Without that, a failing connection would silently lose whatever sat in the kernel's send
//! buffer, up to megabytes. Elsewhere, bytes accepted by the socket count as acknowledged.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConnection;

use super::super::framing::octet_counted;
use super::super::tls::TlsSetup;

/// What the receiver has said on its side of the connection.
pub(crate) enum PeerState {
    /// Nothing: the connection looks alive.
    Quiet,
    /// It closed its side (TCP FIN, TLS close_notify): it is going away.
    Closed,
    /// The connection failed (reset, TLS alert, ...).
    Failed(io::Error),
}

pub(crate) struct Link {
    sock: TcpStream,
    tls: Option<ClientConnection>,
    /// Bytes the socket has accepted since connecting.
    written: u64,
    /// Encoded bytes not written yet.
    wire: Vec<u8>,
    frame: Vec<u8>,
    fin_sent: bool,
}

impl Link {
    /// Connects, and completes the TLS handshake when `tls` is set, within `timeout`.
    pub(crate) fn connect(
        addr: SocketAddr,
        tls: Option<&TlsSetup>,
        timeout: Duration,
        write_timeout: Duration,
        on_socket: &dyn Fn(&TcpStream),
    ) -> io::Result<Self> {
        let deadline = Instant::now() + timeout;
        let sock = TcpStream::connect_timeout(&addr, timeout)?;
        // Before the handshake, which can block on a receiver that never answers.
        on_socket(&sock);
        // The sink batches frames itself; Nagle would only add latency to the last batch.
        sock.set_nodelay(true)?;
        sock.set_write_timeout(Some(write_timeout))?;
        no_sigpipe(&sock)?;
        let mut link = Self {
            sock,
            tls: None,
            written: 0,
            wire: Vec::new(),
            frame: Vec::new(),
            fin_sent: false,
        };
        if let Some(setup) = tls {
            let mut conn =
                ClientConnection::new(Arc::clone(&setup.config), setup.server_name.clone())
                    .map_err(io::Error::other)?;
            // Records are drained into `wire` right after being encrypted, so rustls' own
            // buffer never grows beyond one frame; without this, a frame larger than its
            // default limit would be refused.
            conn.set_buffer_limit(None);
            link.tls = Some(conn);
            link.handshake(deadline)?;
            link.await_server_verdict(deadline)?;
        }
        Ok(link)
    }

    fn remaining(deadline: Instant) -> io::Result<Duration> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            ))
        } else {
            Ok(left)
        }
    }

    fn handshake(&mut self, deadline: Instant) -> io::Result<()> {
        loop {
            self.drain_tls()?;
            self.flush()?;
            let Some(conn) = self.tls.as_mut() else {
                return Ok(());
            };
            if !conn.is_handshaking() {
                return Ok(());
            }
            self.sock
                .set_read_timeout(Some(Self::remaining(deadline)?))?;
            let n = conn.read_tls(&mut self.sock)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "receiver closed the connection during the TLS handshake",
                ));
            }
            if let Err(e) = conn.process_new_packets() {
                // Tell the receiver why (the alert rustls queued), then give up.
                let _ = self.drain_tls().and_then(|_| self.flush());
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }

    /// In TLS 1.3 the client's handshake ends before the server has checked the client's
    /// certificate (or its absence, when the server requires one); a server that refuses it
    /// says so afterwards, and records written in the meantime would be acknowledged by TCP
    /// and then thrown away. Wait for the server's first word after the handshake (a session
    /// ticket, as OpenSSL and GnuTLS servers send, or the alert), for a quarter of what is left
    /// of the connect timeout at most: a server that sends no tickets costs that delay once
    /// per connection.
    fn await_server_verdict(&mut self, deadline: Instant) -> io::Result<()> {
        let tls13 = self
            .tls
            .as_ref()
            .and_then(|c| c.protocol_version())
            .is_some_and(|v| v == rustls::ProtocolVersion::TLSv1_3);
        if !tls13 {
            return Ok(());
        }
        let wait = deadline.saturating_duration_since(Instant::now()) / 4;
        if wait.is_zero() {
            return Ok(());
        }
        self.sock.set_read_timeout(Some(wait))?;
        let Some(conn) = self.tls.as_mut() else {
            return Ok(());
        };
        match conn.read_tls(&mut self.sock) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "receiver closed the connection after the TLS handshake",
            )),
            Ok(_) => {
                let state = conn
                    .process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                if state.peer_has_closed() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "receiver closed the TLS session after the handshake",
                    ));
                }
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Moves what rustls has to send into `wire`.
    fn drain_tls(&mut self) -> io::Result<()> {
        if let Some(conn) = self.tls.as_mut() {
            while conn.wants_write() {
                conn.write_tls(&mut self.wire)?;
            }
        }
        Ok(())
    }

    /// Encodes one record (octet-counted, encrypted for TLS) after what is pending, and
    /// returns the offset in the connection's byte stream where it ends.
    pub(crate) fn encode(&mut self, record: &[u8]) -> io::Result<u64> {
        match self.tls.as_mut() {
            None => octet_counted(&mut self.wire, record),
            Some(conn) => {
                self.frame.clear();
                octet_counted(&mut self.frame, record);
                conn.writer().write_all(&self.frame)?;
                self.drain_tls()?;
            }
        }
        Ok(self.written + self.wire.len() as u64)
    }

    /// Bounds the next blocked writes.
    pub(crate) fn set_write_timeout(&self, timeout: Duration) -> io::Result<()> {
        // std refuses a zero timeout; the shortest it takes stands for "now".
        self.sock
            .set_write_timeout(Some(timeout.max(Duration::from_millis(1))))
    }

    /// Bytes encoded and not written yet.
    pub(crate) fn pending(&self) -> usize {
        self.wire.len()
    }

    /// Writes everything pending. On error, `written` still counts exactly what the socket
    /// accepted.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        let mut at = 0;
        let result = loop {
            if at == self.wire.len() {
                break Ok(());
            }
            match send(&self.sock, &self.wire[at..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    at += n;
                    self.written += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.wire.drain(..at);
        result
    }

    /// How far the receiver's TCP has acknowledged the byte stream.
    pub(crate) fn acked(&self) -> u64 {
        match unacknowledged(&self.sock) {
            // The FIN takes one sequence number of its own and shows in the count until the
            // peer acknowledges it.
            Some(n) => {
                let n = if self.fin_sent {
                    n.saturating_sub(1)
                } else {
                    n
                };
                self.written.saturating_sub(n)
            }
            None => self.written,
        }
    }

    /// Looks, without blocking, at what the receiver sent: syslog receivers send nothing, so
    /// anything is either TLS housekeeping (session tickets), a TLS alert, or the end.
    pub(crate) fn poll_peer(&mut self) -> PeerState {
        match peek(&self.sock) {
            Ok(None) => PeerState::Quiet,
            Ok(Some(0)) => PeerState::Closed,
            Ok(Some(_)) => self.read_peer(),
            Err(e) => PeerState::Failed(e),
        }
    }

    fn read_peer(&mut self) -> PeerState {
        // Data is waiting, so the read returns at once; the timeout only guards a lie.
        if let Err(e) = self.sock.set_read_timeout(Some(Duration::from_millis(100))) {
            return PeerState::Failed(e);
        }
        let Some(conn) = self.tls.as_mut() else {
            let mut buf = [0u8; 4096];
            return match self.sock.read(&mut buf) {
                Ok(0) => PeerState::Closed,
                Ok(_) => PeerState::Quiet,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => PeerState::Quiet,
                Err(e) => PeerState::Failed(e),
            };
        };
        match conn.read_tls(&mut self.sock) {
            Ok(0) => return PeerState::Closed,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return PeerState::Quiet,
            Err(e) => return PeerState::Failed(e),
        }
        let state = match conn.process_new_packets() {
            Ok(state) => state,
            Err(e) => {
                let _ = self.drain_tls();
                return PeerState::Failed(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        };
        let closed = state.peer_has_closed();
        let plaintext = state.plaintext_bytes_to_read();
        if plaintext > 0 {
            // A syslog receiver has nothing to say; read it so that it does not pile up.
            let mut sink = vec![0u8; plaintext];
            let _ = conn.reader().read(&mut sink);
        }
        if closed {
            PeerState::Closed
        } else {
            PeerState::Quiet
        }
    }

    /// Ends the connection with a reset, dropping what the peer has not acknowledged: those
    /// records were just counted as not delivered (sent again from the spool, or lost), and a
    /// graceful close would let the kernel go on sending them after the count.
    pub(crate) fn abort(self) {
        let _ = socket2::SockRef::from(&self.sock).set_linger(Some(std::time::Duration::ZERO));
    }

    /// Ends our side: TLS close_notify, then TCP FIN. Records written before are still
    /// delivered, and [`Link::acked`] keeps counting them.
    pub(crate) fn shutdown(&mut self) {
        if self.fin_sent {
            return;
        }
        if let Some(conn) = self.tls.as_mut() {
            conn.send_close_notify();
        }
        let _ = self.drain_tls().and_then(|_| self.flush());
        self.fin_sent = self.sock.shutdown(Shutdown::Write).is_ok();
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn no_sigpipe(_sock: &TcpStream) -> io::Result<()> {
    // send() below passes MSG_NOSIGNAL.
    Ok(())
}

#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
fn no_sigpipe(sock: &TcpStream) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // Inside Node (or any host that did not ignore SIGPIPE), a write to a reset connection
    // would kill the process.
    super::sockopt::enable(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_NOSIGPIPE)
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd"
)))]
fn no_sigpipe(_sock: &TcpStream) -> io::Result<()> {
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send(sock: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: send from a live buffer of the given length on a descriptor we own.
    let n = unsafe {
        libc::send(
            sock.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if n >= 0 {
        return Ok(n as usize);
    }
    let e = io::Error::last_os_error();
    // SO_SNDTIMEO expiring shows as EAGAIN on a blocking socket.
    if e.kind() == io::ErrorKind::WouldBlock {
        Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"))
    } else {
        Err(e)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send(mut sock: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    sock.write(buf)
}

/// `Some(0)` at end of stream, `Some(n)` when bytes are waiting, `None` when nothing is.
#[cfg(unix)]
fn peek(sock: &TcpStream) -> io::Result<Option<usize>> {
    use std::os::unix::io::AsRawFd;
    let mut b = [0u8; 1];
    // SAFETY: recv into a live one-byte buffer on a descriptor we own.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n >= 0 {
        return Ok(Some(n as usize));
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
        _ => Err(e),
    }
}

#[cfg(not(unix))]
fn peek(sock: &TcpStream) -> io::Result<Option<usize>> {
    sock.set_nonblocking(true)?;
    let mut b = [0u8; 1];
    let r = match sock.peek(&mut b) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    };
    sock.set_nonblocking(false)?;
    r
}

/// Bytes written and not acknowledged by the peer (`SIOCOUTQ`), where the system tells.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn unacknowledged(sock: &TcpStream) -> Option<u64> {
    use std::os::unix::io::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ for TCP) writes one c_int through the pointer.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    (rc == 0 && n >= 0).then_some(n as u64)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn unacknowledged(_sock: &TcpStream) -> Option<u64> {
    None
}
