//! The sink thread: takes records from the queue, frames and writes them, spools what cannot
//! be delivered, replays the spool in order when the receiver returns.
//!
//! Order of delivery, oldest first, is always: `retry` (records written on a connection that
//! failed before the receiver acknowledged them), then the spool, then the queue. Each source
//! only holds records newer than the ones before it:
//! - the queue is read only when `retry` and the unread spool are empty;
//! - queue records move to the spool only at its end (outage, or queue filling up);
//! - on a failure, the unacknowledged records go to the front of `retry` and the spool gives
//!   up the ones that came from it (they now live in `retry`).
//!
//! On close, `retry` is put in front of the spool ([`Spool::prepend`]) and the queue after it,
//! so a later sink on the same directory replays everything in the original order.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, TryRecvError};

use super::backoff::Backoff;
use super::config::{NetworkSinkConfig, SinkTarget};
use super::framing::cut_datagram;
use super::link::{Link, PeerState};
use super::spool::{Pos, Spool, HEADER};
use super::stats::{Loss, Shared};
use super::tls::TlsSetup;

/// Records and bytes written per batch before the thread looks at acknowledgements, the
/// receiver and the queue again.
const BATCH_RECORDS: usize = 256;
const BATCH_BYTES: usize = 64 << 10;

/// How often acknowledgements are checked while records wait for them.
const ACK_POLL: Duration = Duration::from_millis(2);

/// How long an idle connection waits for records before looking at the receiver again (a
/// receiver that closed is then noticed even with nothing to send).
const IDLE_POLL: Duration = Duration::from_millis(500);

/// The record type of the queue.
pub(crate) type Rec = Box<[u8]>;

/// Messages from the handle.
pub(crate) enum Control {
    /// Stop: deliver until the deadline, then spool (or drop) the rest.
    Stop(Instant),
}

struct Sent {
    /// End of the record in the connection's byte stream.
    end: u64,
    data: Rec,
    /// Where the spool continues after it, when it came from the spool.
    spool: Option<Pos>,
}

pub(crate) struct Worker {
    cfg: NetworkSinkConfig,
    rx: Receiver<Rec>,
    ctl: Receiver<Control>,
    shared: Arc<Shared>,
    spool: Option<Spool>,
    tls: Option<TlsSetup>,
    backoff: Backoff,
    retry: VecDeque<Rec>,
    /// A queue record that did not fit in the full spool: newer than the spool, older than the
    /// queue (which has no front to put it back to).
    parked: Option<Rec>,
    unacked: VecDeque<Sent>,
    link: Option<Link>,
    next_attempt: Instant,
    stop: Option<Instant>,
    connected_once: bool,
    high_water: usize,
}

/// What the thread returns to `close`.
pub(crate) struct Finished {
    pub(crate) spooled_on_close: u64,
}

impl Worker {
    pub(crate) fn new(
        cfg: NetworkSinkConfig,
        rx: Receiver<Rec>,
        ctl: Receiver<Control>,
        shared: Arc<Shared>,
        spool: Option<Spool>,
        tls: Option<TlsSetup>,
    ) -> Self {
        let backoff = Backoff::new(cfg.backoff.0, cfg.backoff.1);
        // A queue three quarters full while connected means the receiver is slower than the
        // records: move them to the spool rather than let `send` drop them.
        let high_water = (cfg.queue_records * 3 / 4).max(1);
        Self {
            cfg,
            rx,
            ctl,
            shared,
            spool,
            tls,
            backoff,
            retry: VecDeque::new(),
            parked: None,
            unacked: VecDeque::new(),
            link: None,
            next_attempt: Instant::now(),
            stop: None,
            connected_once: false,
            high_water,
        }
    }

    pub(crate) fn run(mut self) -> Finished {
        if let SinkTarget::SyslogUdp(addr) = self.cfg.target {
            return self.run_udp(addr);
        }
        loop {
            self.check_control();
            self.publish();
            if let Some(deadline) = self.stop {
                if self.all_delivered() || Instant::now() >= deadline {
                    break;
                }
            }
            if self.link.is_none() {
                if Instant::now() >= self.next_attempt {
                    self.connect();
                    if self.link.is_some() {
                        continue;
                    }
                }
                // Down: the spool takes what arrives until the next attempt (not before the
                // first one, so that a healthy start does not go through the disk).
                self.spill(usize::MAX);
                let until = self.cap(self.next_attempt);
                // With a full spool the queue just waits (and `send` drops when it is full
                // too), so its records must not wake the thread.
                let spilling = self.spool.is_some() && self.parked.is_none();
                self.wait(until, spilling);
                continue;
            }
            self.serve();
        }
        self.finish()
    }

    /// One round on a live connection: check the receiver, settle acknowledgements, write a
    /// batch, or wait.
    fn serve(&mut self) {
        let state = match self.link.as_mut() {
            Some(link) => link.poll_peer(),
            None => return,
        };
        match state {
            PeerState::Quiet => {}
            PeerState::Closed => {
                self.drain_closing_link();
                let closing = self.stop.is_some() && self.nothing_to_send();
                if closing && self.unacked.is_empty() {
                    // The receiver's answer to our own end of stream: nothing went wrong.
                    self.link = None;
                    self.shared.connected.store(false, Ordering::Relaxed);
                } else {
                    self.drop_link("receiver closed the connection".to_owned());
                }
                return;
            }
            PeerState::Failed(e) => {
                self.drop_link(format!("connection failed: {e}"));
                return;
            }
        }
        self.settle();
        if self.queue_len() >= self.high_water {
            self.spill(self.queue_len());
        }
        match self.write_batch() {
            Err(e) => self.drop_link(format!("write failed: {e}")),
            Ok(0) => {
                if self.stop.is_some() && self.nothing_to_send() {
                    // Everything is written: say so, and wait for the acknowledgements.
                    if let Some(link) = self.link.as_mut() {
                        link.shutdown();
                    }
                }
                let poll = if self.unacked.is_empty() {
                    IDLE_POLL
                } else {
                    ACK_POLL
                };
                let until = self.cap(Instant::now() + poll);
                self.wait(until, true);
            }
            Ok(_) => {}
        }
    }

    fn connect(&mut self) {
        let addr = self.cfg.target.addr();
        let mut timeout = self.cfg.connect_timeout;
        let mut write_timeout = self.cfg.write_timeout;
        if let Some(deadline) = self.stop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            timeout = timeout.min(left);
            write_timeout = write_timeout.min(left);
        }
        let shared = Arc::clone(&self.shared);
        let on_socket = move |sock: &std::net::TcpStream| shared.set_socket(sock.try_clone().ok());
        match Link::connect(addr, self.tls.as_ref(), timeout, write_timeout, &on_socket) {
            Ok(link) => {
                self.link = Some(link);
                if self.connected_once {
                    Shared::add(&self.shared.reconnects, 1);
                }
                self.connected_once = true;
                self.shared.connected.store(true, Ordering::Relaxed);
            }
            Err(e) => {
                self.shared.set_socket(None);
                self.shared.set_error(format!("connect to {addr}: {e}"));
                self.next_attempt = Instant::now() + self.backoff.next_delay();
            }
        }
    }

    /// Encodes and writes the next records, oldest first. Returns how many.
    fn write_batch(&mut self) -> io::Result<usize> {
        let Some(link) = self.link.as_mut() else {
            return Ok(0);
        };
        let mut n = 0;
        while n < BATCH_RECORDS && link.pending() < BATCH_BYTES {
            let (data, spool) = if let Some(r) = self.retry.pop_front() {
                (r, None)
            } else if let Some(spool) = self.spool.as_mut().filter(|s| s.unread() > 0) {
                match spool.read_next() {
                    Ok(Some(r)) => (r.data.into_boxed_slice(), Some(r.after)),
                    Ok(None) => break,
                    Err((e, lost)) => {
                        self.shared.lose(Loss::Io, lost);
                        self.shared.set_error(format!("reading the spool: {e}"));
                        continue;
                    }
                }
            } else if let Some(r) = self.parked.take() {
                (r, None)
            } else {
                match self.rx.try_recv() {
                    Ok(r) => (r, None),
                    Err(_) => break,
                }
            };
            let end = match link.encode(&data) {
                Ok(end) => end,
                Err(e) => {
                    // Not written: first in line for the next attempt.
                    self.unacked.push_back(Sent {
                        end: u64::MAX,
                        data,
                        spool,
                    });
                    return Err(e);
                }
            };
            self.unacked.push_back(Sent { end, data, spool });
            n += 1;
        }
        if link.pending() > 0 {
            if let Some(deadline) = self.stop {
                // A blocked write must not outlast the grace period by the whole timeout.
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = link.set_write_timeout(self.cfg.write_timeout.min(left));
            }
            link.flush()?;
        }
        self.settle();
        Ok(n)
    }

    /// Marks what the receiver acknowledged as delivered.
    fn settle(&mut self) {
        let Some(link) = self.link.as_ref() else {
            return;
        };
        let acked = link.acked();
        let mut delivered = 0;
        let mut replayed = 0;
        let mut spool_to = None;
        let mut spool_bytes = 0;
        while self.unacked.front().is_some_and(|s| s.end <= acked) {
            let Some(sent) = self.unacked.pop_front() else {
                break;
            };
            delivered += 1;
            if let Some(pos) = sent.spool {
                replayed += 1;
                spool_to = Some(pos);
                spool_bytes += HEADER + sent.data.len() as u64;
            }
        }
        if delivered == 0 {
            return;
        }
        self.backoff.reset();
        Shared::add(&self.shared.delivered, delivered);
        Shared::add(&self.shared.replayed, replayed);
        if let (Some(pos), Some(spool)) = (spool_to, self.spool.as_mut()) {
            if let Err(e) = spool.consume_to(pos, replayed, spool_bytes) {
                self.shared.set_error(format!("updating the spool: {e}"));
            }
        }
    }

    /// After the receiver closed its side: stop writing, close ours, and give what is in
    /// flight a moment to be acknowledged (a receiver that closes gracefully reads until our
    /// end of stream), so that it is not sent twice.
    fn drain_closing_link(&mut self) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        link.shutdown();
        let mut deadline = Instant::now() + self.cfg.write_timeout.min(Duration::from_secs(2));
        if let Some(stop) = self.stop {
            deadline = deadline.min(stop);
        }
        while !self.unacked.is_empty() && Instant::now() < deadline {
            self.settle();
            let Some(link) = self.link.as_mut() else {
                return;
            };
            if let PeerState::Failed(_) = link.poll_peer() {
                break;
            }
            std::thread::sleep(ACK_POLL);
        }
    }

    /// Ends the connection: what it did not get acknowledged is retried first on the next.
    fn drop_link(&mut self, error: String) {
        self.settle();
        self.link = None;
        self.shared.set_socket(None);
        self.shared.connected.store(false, Ordering::Relaxed);
        self.shared.set_error(error);
        self.requeue_unacked();
        self.next_attempt = Instant::now() + self.backoff.next_delay();
    }

    fn requeue_unacked(&mut self) {
        if self.unacked.is_empty() {
            return;
        }
        let mut from_spool = 0;
        let mut spool_bytes = 0;
        Shared::add(&self.shared.retried, self.unacked.len() as u64);
        for sent in self.unacked.drain(..).rev() {
            if sent.spool.is_some() {
                from_spool += 1;
                spool_bytes += HEADER + sent.data.len() as u64;
            }
            self.retry.push_front(sent.data);
        }
        if let (true, Some(spool)) = (from_spool > 0, self.spool.as_mut()) {
            // Every record read from the spool is in `unacked` until acknowledged, so the ones
            // just moved to `retry` are exactly those between the cursor and the read position.
            let pos = spool.read_pos();
            if let Err(e) = spool.consume_to(pos, from_spool, spool_bytes) {
                self.shared.set_error(format!("updating the spool: {e}"));
            }
        }
    }

    /// Moves up to `max` records from the queue to the end of the spool, while it has room.
    /// A record that can never fit is dropped; one that does not fit now is parked, and the
    /// queue behind it waits for room (when it fills, `send` drops the newest records).
    fn spill(&mut self, max: usize) {
        let Some(spool) = self.spool.as_mut() else {
            return;
        };
        let mut moved = 0;
        while moved < max {
            let record = match self.parked.take() {
                Some(r) => r,
                None => match self.rx.try_recv() {
                    Ok(r) => r,
                    Err(_) => break,
                },
            };
            if !spool.could_fit(record.len()) {
                self.shared.lose(Loss::SpoolFull, 1);
                continue;
            }
            if !spool.has_room(record.len()) {
                self.parked = Some(record);
                break;
            }
            match spool.append(&record) {
                Ok(()) => {
                    moved += 1;
                    Shared::add(&self.shared.spooled_total, 1);
                }
                Err(e) => {
                    self.shared.lose(Loss::Io, 1);
                    self.shared.set_error(format!("writing the spool: {e}"));
                }
            }
        }
        self.publish();
    }

    fn finish(mut self) -> Finished {
        self.shared.set_socket(None);
        if self.shared.is_abandoned() {
            // The handle stopped waiting and counted everything held here as lost.
            return Finished {
                spooled_on_close: 0,
            };
        }
        // Whatever was not acknowledged within the grace period is treated like a failed
        // connection's: retried later, from the spool.
        if self.link.is_some() {
            self.settle();
            if let Some(link) = self.link.as_mut() {
                // The deadline has passed: the close_notify and FIN go only if there is room.
                let _ = link.set_write_timeout(Duration::ZERO);
                link.shutdown();
            }
            self.link = None;
            self.requeue_unacked();
        }
        self.shared.connected.store(false, Ordering::Relaxed);
        let mut spooled_on_close = 0;
        let queued: Vec<Rec> = self
            .parked
            .take()
            .into_iter()
            .chain(self.rx.try_iter())
            .collect();
        match self.spool.as_mut() {
            Some(spool) => {
                let retry: Vec<Vec<u8>> = self.retry.drain(..).map(Vec::from).collect();
                let n = retry.len() as u64;
                match spool.prepend(&retry) {
                    Ok(()) => {
                        spooled_on_close += n;
                        Shared::add(&self.shared.spooled_total, n);
                    }
                    Err(e) => {
                        self.shared.lose(Loss::Io, n);
                        self.shared.set_error(format!("writing the spool: {e}"));
                    }
                }
                let mut full = false;
                for record in queued {
                    // What is left goes in order until the first record that does not fit;
                    // from there on everything is the newest, and dropped.
                    full = full || !spool.has_room(record.len());
                    if full {
                        self.shared.lose(Loss::OnClose, 1);
                        continue;
                    }
                    match spool.append(&record) {
                        Ok(()) => {
                            spooled_on_close += 1;
                            Shared::add(&self.shared.spooled_total, 1);
                        }
                        Err(e) => {
                            self.shared.lose(Loss::Io, 1);
                            self.shared.set_error(format!("writing the spool: {e}"));
                        }
                    }
                }
                if let Err(e) = spool.sync() {
                    self.shared.set_error(format!("syncing the spool: {e}"));
                }
            }
            None => {
                let n = (self.retry.len() + queued.len()) as u64;
                self.retry.clear();
                self.shared.lose(Loss::OnClose, n);
            }
        }
        self.publish();
        Finished { spooled_on_close }
    }

    fn run_udp(mut self, addr: SocketAddr) -> Finished {
        let mut socket: Option<UdpSocket> = None;
        loop {
            self.check_control();
            self.publish();
            let stopping = self.stop.is_some_and(|d| Instant::now() >= d);
            if stopping || (self.stop.is_some() && self.rx.is_empty()) {
                break;
            }
            if socket.is_none() {
                if Instant::now() < self.next_attempt {
                    let until = self.cap(self.next_attempt);
                    self.wait(until, false);
                    continue;
                }
                match udp_socket(addr) {
                    Ok(s) => {
                        socket = Some(s);
                        self.shared.connected.store(true, Ordering::Relaxed);
                    }
                    Err(e) => {
                        self.shared.set_error(format!("UDP socket for {addr}: {e}"));
                        self.next_attempt = Instant::now() + self.backoff.next_delay();
                        continue;
                    }
                }
            }
            let Some(sock) = socket.as_ref() else {
                continue;
            };
            let record = match self.rx.try_recv() {
                Ok(r) => r,
                Err(TryRecvError::Empty) => {
                    let until = self.cap(Instant::now() + IDLE_POLL);
                    self.wait(until, true);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
            };
            self.take_refusals(sock);
            let datagram = cut_datagram(&record, self.cfg.max_udp_datagram);
            if datagram.len() < record.len() {
                Shared::add(&self.shared.truncated, 1);
            }
            match sock.send(&datagram) {
                Ok(_) => Shared::add(&self.shared.delivered, 1),
                Err(e) => {
                    // Not sent: a local error, or a refusal that arrived between
                    // `take_refusals` and this send (that earlier datagram is still in the
                    // error queue, and counted from there).
                    self.shared.lose(Loss::Io, 1);
                    self.shared.set_error(format!("UDP send to {addr}: {e}"));
                }
            }
        }
        if let Some(sock) = socket.as_ref() {
            self.last_refusals(sock);
        }
        self.shared.connected.store(false, Ordering::Relaxed);
        let left = self.rx.try_iter().count() as u64;
        if !self.shared.is_abandoned() {
            self.shared.lose(Loss::OnClose, left);
        }
        self.publish();
        Finished {
            spooled_on_close: 0,
        }
    }

    /// Datagrams the receiver's host refused (ICMP "port unreachable": the receiver is down)
    /// were counted as delivered when the socket took them: they are lost, and counted so.
    /// Each refusal is one entry of the socket's error queue (`IP_RECVERR`). Taking them
    /// before every send also clears the socket's pending error, so that the next datagram
    /// is sent rather than refused locally: every record to a receiver that is down is counted
    /// exactly once, however the ICMP messages and the sends interleave.
    fn take_refusals(&self, sock: &UdpSocket) {
        let refused = udp_refusals(sock);
        if refused > 0 {
            let _ = self
                .shared
                .delivered
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                    Some(d.saturating_sub(refused))
                });
            self.shared.lose(Loss::Io, refused);
            self.shared.set_error(format!(
                "UDP to {}: {refused} datagrams refused (port unreachable)",
                self.cfg.target.addr()
            ));
        }
    }

    /// On close: the refusals of the last datagrams, which may still be on their way (on
    /// loopback they come back within the send; across a network, within a round trip). Waits
    /// at most [`LAST_REFUSALS`], and not past the close deadline.
    fn last_refusals(&self, sock: &UdpSocket) {
        let until = self.cap(Instant::now() + LAST_REFUSALS);
        wait_for_udp_error(sock, until);
        self.take_refusals(sock);
    }

    fn check_control(&mut self) {
        while let Ok(Control::Stop(deadline)) = self.ctl.try_recv() {
            self.stop = Some(deadline);
        }
    }

    /// Waits until `until`, a control message, or (when `queue`) a record in the queue.
    fn wait(&mut self, until: Instant, queue: bool) {
        let timeout = until.saturating_duration_since(Instant::now());
        if timeout.is_zero() {
            return;
        }
        if queue {
            let mut sel = Select::new();
            sel.recv(&self.rx);
            sel.recv(&self.ctl);
            let _ = sel.ready_timeout(timeout);
        } else {
            match self.ctl.recv_timeout(timeout) {
                Ok(Control::Stop(deadline)) => self.stop = Some(deadline),
                Err(_) => {}
            }
        }
    }

    /// `t`, or the stop deadline if sooner.
    fn cap(&self, t: Instant) -> Instant {
        self.stop.map_or(t, |d| d.min(t))
    }

    fn queue_len(&self) -> usize {
        self.rx.len()
    }

    fn nothing_to_send(&self) -> bool {
        self.retry.is_empty()
            && self.parked.is_none()
            && self.rx.is_empty()
            && self.spool.as_ref().map_or(true, |s| s.unread() == 0)
    }

    fn all_delivered(&self) -> bool {
        self.nothing_to_send()
            && self.unacked.is_empty()
            && self.spool.as_ref().map_or(true, |s| s.records() == 0)
    }

    fn publish(&self) {
        let inflight =
            (self.retry.len() + self.unacked.len() + usize::from(self.parked.is_some())) as u64;
        self.shared.inflight.store(inflight, Ordering::Relaxed);
        if let Some(spool) = &self.spool {
            self.shared
                .spooled
                .store(spool.records(), Ordering::Relaxed);
        }
    }
}

/// How long closing a UDP sink waits for the refusals of the last datagrams.
const LAST_REFUSALS: Duration = Duration::from_millis(20);

/// Takes the socket's error queue, returning how many datagrams it says were refused (ICMP
/// or ICMPv6 errors about them).
#[cfg(target_os = "linux")]
fn udp_refusals(sock: &UdpSocket) -> u64 {
    use std::os::unix::io::AsRawFd;
    let mut refused = 0;
    // Bounded: the queue is limited by the socket's receive buffer.
    for _ in 0..10_000 {
        let mut data = [0u8; 64];
        let mut control = [0u64; 64];
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // SAFETY: a zeroed msghdr pointing at live buffers of the given sizes.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: recvmsg on our socket into the msghdr above; never blocks.
        let n = unsafe {
            libc::recvmsg(
                sock.as_raw_fd(),
                &mut msg,
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            break;
        }
        // SAFETY: walking the control messages recvmsg filled in, within msg_controllen.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                let level = (*cmsg).cmsg_level;
                let kind = (*cmsg).cmsg_type;
                if (level == libc::SOL_IP && kind == libc::IP_RECVERR)
                    || (level == libc::SOL_IPV6 && kind == libc::IPV6_RECVERR)
                {
                    let err: libc::sock_extended_err =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    // Only errors from the network are refusals of a datagram that was sent;
                    // a local error was also the failed send's own result, counted there.
                    if err.ee_origin == libc::SO_EE_ORIGIN_ICMP
                        || err.ee_origin == libc::SO_EE_ORIGIN_ICMP6
                    {
                        refused += 1;
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
    }
    refused
}

#[cfg(not(target_os = "linux"))]
fn udp_refusals(_sock: &UdpSocket) -> u64 {
    0
}

/// Waits until the socket has an error pending, or `until`.
#[cfg(target_os = "linux")]
fn wait_for_udp_error(sock: &UdpSocket, until: Instant) {
    use std::os::unix::io::AsRawFd;
    let left = until.saturating_duration_since(Instant::now());
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        // POLLERR is reported whatever is asked; nothing else is wanted.
        events: 0,
        revents: 0,
    };
    // SAFETY: poll on one live pollfd.
    unsafe { libc::poll(&mut pfd, 1, left.as_millis() as libc::c_int) };
}

#[cfg(not(target_os = "linux"))]
fn wait_for_udp_error(_sock: &UdpSocket, _until: Instant) {}

/// Asks for the socket's ICMP errors in its error queue, one per refused datagram.
#[cfg(target_os = "linux")]
fn recv_errors(sock: &UdpSocket, v6: bool) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let one: libc::c_int = 1;
    let (level, name) = if v6 {
        (libc::SOL_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::SOL_IP, libc::IP_RECVERR)
    };
    // SAFETY: setsockopt with a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn recv_errors(_sock: &UdpSocket, _v6: bool) -> io::Result<()> {
    Ok(())
}

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local)?;
    recv_errors(&sock, addr.is_ipv6())?;
    // Connected, so that the kernel reports "port unreachable" back to us as a send error.
    sock.connect(addr)?;
    Ok(sock)
}
