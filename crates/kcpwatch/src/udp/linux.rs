//! recvmmsg / sendmmsg with packet info, and the socket error queue. The message headers point
//! into buffers owned by [`State`]; the pointers are rebuilt for every call, so nothing
//! self-referential survives between calls.
//!
//! Packet info is turned on only for a socket bound to a wildcard address: a socket bound to
//! one address only ever receives datagrams sent to that address and can only send from it,
//! so there the kernel would spend a control message per datagram to tell us what we know.
#![deny(unsafe_op_in_unsafe_fn)]

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::ptr;

use kcpwatch_proto::{Transmit, Transmits};
use socket2::{SockAddr, SockRef};
use tracing::debug;

use super::{Received, SendFailure, BATCH};
use crate::socket::{for_socket, normalize};

/// Room for the control messages of one datagram. On a dual-stack socket an IPv4 datagram
/// carries both an `in_pktinfo` and an `in6_pktinfo` (72 bytes with their headers); an error
/// report carries a `sock_extended_err` and the offender's address (64 bytes). The slack means
/// an option turned on later truncates nothing (a truncated message is ignored, not misread).
const CONTROL_LEN: usize = 128;

/// Error reports read per `drain_errors` call; the rest wait for the next call, so a flood of
/// ICMP cannot hold the I/O thread in the error queue.
const ERRORS_PER_DRAIN: usize = 256;

/// recvmmsg calls per `recv_batch` that may return the socket's pending error instead of
/// datagrams. Each such call clears the error it returns, so only errors arriving while we
/// retry use these up.
const RECV_ATTEMPTS: usize = 4;

const _: () = assert!(
    cmsg_space::<libc::in_pktinfo>()
        + cmsg_space::<libc::in6_pktinfo>()
        + cmsg_space::<libc::timespec>()
        <= CONTROL_LEN
);
const _: () = assert!(mem::align_of::<Control>() >= mem::align_of::<libc::cmsghdr>());

/// `cmsg_len` of a control message carrying a `T`.
const fn cmsg_len<T>() -> usize {
    // SAFETY: CMSG_LEN is arithmetic on its argument only.
    unsafe { libc::CMSG_LEN(mem::size_of::<T>() as libc::c_uint) as usize }
}

/// The room a control message carrying a `T` takes, padding included.
const fn cmsg_space<T>() -> usize {
    // SAFETY: CMSG_SPACE is arithmetic on its argument only.
    unsafe { libc::CMSG_SPACE(mem::size_of::<T>() as libc::c_uint) as usize }
}

/// A control-message buffer, aligned as `cmsghdr` requires.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Control([u8; CONTROL_LEN]);

impl Control {
    const ZERO: Self = Self([0; CONTROL_LEN]);
}

pub(crate) struct State {
    max_datagram: usize,
    is_v6: bool,
    /// The socket's own address, normalized: what `Received::local` says when the kernel gives
    /// no packet info.
    local: SocketAddr,
    /// Bound to `0.0.0.0` or `::`: packet info is on, and replies name their source address.
    wildcard: bool,
    /// The kernel stamps each datagram's arrival (`SO_TIMESTAMPNS`): the bench's stage trace.
    kernel_stamps: bool,
    /// A receive returned the socket's error flag, which the kernel raises with every ICMP
    /// error it queues; or a send failed in a way the kernel also queues. Until drained, the
    /// queue may hold reports (each one taking room from the receive buffer).
    errors_pending: bool,
    buffers: Vec<u8>,
    addresses: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    destinations: Vec<SockAddr>,
    /// One per header, shared by the receive and the send path (never in use at once). Empty
    /// unless `wildcard`.
    controls: Vec<Control>,
    error_control: Control,
    error_address: libc::sockaddr_storage,
}

// SAFETY: the raw pointers in `iovecs` and `headers` are scratch. Each receive or send points
// them at the buffers it borrows for that one call before handing them to the kernel, and
// nothing reads them at any other time; they never refer to another thread's memory. So the
// state may move to (or be locked by) another thread: the runtime runs send turns on the
// JavaScript thread while the I/O thread sleeps.
unsafe impl Send for State {}

impl State {
    /// Turns on the socket options this module reads: IP_RECVERR / IPV6_RECVERR always,
    /// IP_PKTINFO / IPV6_RECVPKTINFO for a wildcard address. A dual-stack socket gets the IPv4
    /// options as well, since IPv4 traffic on it follows the IPv4 rules.
    pub(crate) fn new(socket: &mio::net::UdpSocket, max_datagram: usize) -> io::Result<Self> {
        let local = socket.local_addr()?;
        let is_v6 = local.is_ipv6();
        let wildcard = local.ip().is_unspecified();
        let fd = socket.as_raw_fd();
        let carries_v4 = !is_v6 || !SockRef::from(socket).only_v6()?;
        if carries_v4 {
            enable(fd, libc::IPPROTO_IP, libc::IP_RECVERR)?;
            if wildcard {
                enable(fd, libc::IPPROTO_IP, libc::IP_PKTINFO)?;
            }
        }
        if is_v6 {
            enable(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVERR)?;
            if wildcard {
                enable(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)?;
            }
        }
        // SAFETY: all-zero is a valid value for these plain C structs.
        let zero_storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let zero_header: libc::mmsghdr = unsafe { mem::zeroed() };
        Ok(Self {
            max_datagram,
            is_v6,
            local: normalize(local),
            wildcard,
            kernel_stamps: false,
            errors_pending: false,
            buffers: vec![0; max_datagram * BATCH],
            addresses: vec![zero_storage; BATCH],
            iovecs: vec![
                libc::iovec {
                    iov_base: ptr::null_mut(),
                    iov_len: 0
                };
                BATCH
            ],
            headers: vec![zero_header; BATCH],
            destinations: Vec::with_capacity(BATCH),
            controls: if wildcard {
                vec![Control::ZERO; BATCH]
            } else {
                Vec::new()
            },
            error_control: Control::ZERO,
            error_address: zero_storage,
        })
    }
}

fn enable(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: the option value is a live c_int of the stated size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&on as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks the kernel to stamp each datagram's arrival, for the stage trace.
pub(crate) fn enable_kernel_stamps(
    socket: &mio::net::UdpSocket,
    state: &mut State,
) -> io::Result<()> {
    enable(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS)?;
    state.kernel_stamps = true;
    if state.controls.is_empty() {
        state.controls = vec![Control::ZERO; BATCH];
    }
    Ok(())
}

pub(crate) fn recv_batch(
    socket: &mio::net::UdpSocket,
    state: &mut State,
    mut each: impl FnMut(Received<'_>),
) -> io::Result<usize> {
    let size = state.max_datagram;
    let mut notifications = 0;
    let mut attempts = 0;
    let n = loop {
        for i in 0..BATCH {
            state.iovecs[i] = libc::iovec {
                iov_base: state.buffers[i * size..].as_mut_ptr().cast(),
                iov_len: size,
            };
            let header = &mut state.headers[i].msg_hdr;
            header.msg_name = (&mut state.addresses[i] as *mut libc::sockaddr_storage).cast();
            header.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_iov = &mut state.iovecs[i];
            header.msg_iovlen = 1;
            match state.controls.get_mut(i) {
                Some(control) => {
                    header.msg_control = control.0.as_mut_ptr().cast();
                    header.msg_controllen = CONTROL_LEN as _;
                }
                None => {
                    header.msg_control = ptr::null_mut();
                    header.msg_controllen = 0;
                }
            }
            header.msg_flags = 0;
            state.headers[i].msg_len = 0;
        }
        // SAFETY: every header points at live buffers of the stated sizes owned by `state`.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                state.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                // MSG_TRUNC: `msg_len` is the datagram's real length even when it was longer
                // than the buffer, so a truncated one is recorded with its size.
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                ptr::null_mut(),
            )
        };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) => return Ok(notifications),
            Some(libc::EINTR) => {}
            // The kernel hands out the socket's error flag before any datagram, and clears it
            // in doing so: the datagrams behind it are there for the next call. The details
            // (which peer) are in the error queue.
            Some(code) if errno_name(code).is_some() => {
                state.errors_pending = true;
                notifications += 1;
            }
            _ => return Err(err),
        }
        attempts += 1;
        if attempts == RECV_ATTEMPTS {
            // Not `Ok(0)`: the socket may well have datagrams, and the caller must come back.
            return Ok(notifications.max(1));
        }
    };
    for i in 0..n {
        let header = &state.headers[i];
        let len = header.msg_len as usize;
        let truncated = header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes into the storage.
        let from = unsafe { SockAddr::new(state.addresses[i], header.msg_hdr.msg_namelen) };
        let Some(from) = from.as_socket() else {
            continue;
        };
        let local = if state.wildcard {
            // SAFETY: the header's control pointer and length describe `state.controls[i]` as
            // the kernel filled it (it lowered `msg_controllen` to what it wrote).
            unsafe { packet_destination(&header.msg_hdr, state.local.port()) }
                .unwrap_or(state.local)
        } else {
            state.local
        };
        let kernel_ns = if state.kernel_stamps {
            // SAFETY: as for `packet_destination` above.
            unsafe { arrival_stamp(&header.msg_hdr) }.unwrap_or(0)
        } else {
            0
        };
        each(Received {
            from: normalize(from),
            local,
            data: &state.buffers[i * size..i * size + len.min(size)],
            truncated,
            len,
            kernel_ns,
        });
    }
    Ok(n + notifications)
}

/// The datagram's destination from its packet info, with our `port`.
///
/// # Safety
/// As for [`find_cmsg`].
unsafe fn packet_destination(msg: &libc::msghdr, port: u16) -> Option<SocketAddr> {
    let find = |level, kind, data: &[u8]| match (level, kind) {
        (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
            // SAFETY: in_pktinfo is integers only.
            let info: libc::in_pktinfo = unsafe { read_c_struct(data) }?;
            // ipi_addr is the address in the IP header; ipi_spec_dst would be the interface's
            // address, which differs for broadcasts.
            let ip = Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), port))
        }
        (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
            // SAFETY: in6_pktinfo is integers only.
            let info: libc::in6_pktinfo = unsafe { read_c_struct(data) }?;
            let ip = Ipv6Addr::from(info.ipi6_addr.s6_addr);
            if let Some(v4) = ip.to_ipv4_mapped() {
                return Some(SocketAddr::new(IpAddr::V4(v4), port));
            }
            // A link-local address means nothing without its interface; the interface also
            // lets the reply leave where the datagram came in.
            let scope = if is_unicast_link_local(&ip) {
                info.ipi6_ifindex
            } else {
                0
            };
            Some(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope)))
        }
        _ => None,
    };
    // SAFETY: passed on to our caller.
    unsafe { find_cmsg(msg, find) }
}

/// The kernel's arrival stamp of a datagram (`SO_TIMESTAMPNS`), in wall-clock nanoseconds.
///
/// # Safety
/// As for [`find_cmsg`].
unsafe fn arrival_stamp(msg: &libc::msghdr) -> Option<u64> {
    let find = |level, kind, data: &[u8]| match (level, kind) {
        (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => {
            // SAFETY: timespec is integers only.
            let at: libc::timespec = unsafe { read_c_struct(data) }?;
            Some(at.tv_sec as u64 * 1_000_000_000 + at.tv_nsec as u64)
        }
        _ => None,
    };
    // SAFETY: passed on to our caller.
    unsafe { find_cmsg(msg, find) }
}

/// The first control message of a received header that `pick` turns into a value; `pick`
/// gets the level, the type and the payload.
///
/// # Safety
/// `msg` must describe a control buffer the kernel filled: `msg_control` points at it and
/// `msg_controllen` is what the kernel wrote (the kernel lowers it on return).
unsafe fn find_cmsg<R>(
    msg: &libc::msghdr,
    mut pick: impl FnMut(libc::c_int, libc::c_int, &[u8]) -> Option<R>,
) -> Option<R> {
    // SAFETY: the caller vouches for the buffer; CMSG_FIRSTHDR and CMSG_NXTHDR only return
    // headers that lie within `msg_controllen`, and null at its end.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: the header is aligned and within the buffer, and the kernel never lets
        // `cmsg_len` run past the buffer (it truncates and sets MSG_CTRUNC instead).
        let (level, kind, data) = unsafe {
            let header = &*cmsg;
            let len = (header.cmsg_len as usize).saturating_sub(cmsg_len::<()>());
            let data = std::slice::from_raw_parts(libc::CMSG_DATA(cmsg).cast_const(), len);
            (header.cmsg_level, header.cmsg_type, data)
        };
        if let Some(found) = pick(level, kind, data) {
            return Some(found);
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    None
}

/// A C struct from the start of a control message payload; `None` if the payload is short.
///
/// # Safety
/// Every bit pattern must be a valid `T` (a C struct of integers).
unsafe fn read_c_struct<T: Copy>(data: &[u8]) -> Option<T> {
    if data.len() < mem::size_of::<T>() {
        return None;
    }
    // SAFETY: `data` holds a whole `T`, read unaligned; the caller vouches for its bytes.
    Some(unsafe { ptr::read_unaligned(data.as_ptr().cast::<T>()) })
}

/// `Ipv6Addr::is_unicast_link_local` needs Rust 1.84; the workspace supports 1.80.
fn is_unicast_link_local(ip: &Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

pub(crate) fn send_batch(
    socket: &mio::net::UdpSocket,
    state: &mut State,
    transmits: &Transmits,
) -> io::Result<usize> {
    let mut sent = 0;
    while sent < transmits.len() {
        let count = (transmits.len() - sent).min(BATCH);
        state.destinations.clear();
        for i in 0..count {
            let to = transmits
                .get(sent + i)
                .expect("index within len")
                .destination;
            state
                .destinations
                .push(SockAddr::from(for_socket(to, state.is_v6)));
        }
        for i in 0..count {
            let transmit = transmits.get(sent + i).expect("index within len");
            state.iovecs[i] = libc::iovec {
                iov_base: transmit.data.as_ptr() as *mut libc::c_void,
                iov_len: transmit.data.len(),
            };
            let control_len = match state.controls.get_mut(i) {
                Some(control) => write_source(control, &transmit, state.is_v6),
                None => 0,
            };
            let header = &mut state.headers[i].msg_hdr;
            header.msg_name = state.destinations[i].as_ptr() as *mut libc::c_void;
            header.msg_namelen = state.destinations[i].len();
            header.msg_iov = &mut state.iovecs[i];
            header.msg_iovlen = 1;
            if control_len > 0 {
                header.msg_control = state.controls[i].0.as_mut_ptr().cast();
                header.msg_controllen = control_len as _;
            } else {
                header.msg_control = ptr::null_mut();
                header.msg_controllen = 0;
            }
            header.msg_flags = 0;
        }
        // SAFETY: headers point at the datagrams in `transmits` and the addresses and control
        // messages in `state`, all alive for the duration of the call.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                state.headers.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                return Ok(sent);
            }
            if err.raw_os_error() == Some(libc::EMSGSIZE) {
                // With IP_RECVERR the kernel also queues a copy of this error; it must not sit
                // in the receive buffer's room until an unrelated ICMP error gets it drained.
                state.errors_pending = true;
            }
            if sent > 0 {
                return Ok(sent);
            }
            return Err(err);
        }
        sent += n as usize;
        if (n as usize) < count {
            break;
        }
    }
    Ok(sent)
}

/// Writes the control message that makes the kernel send `transmit` from its source address
/// and returns its length; 0 leaves the choice to the kernel (no source known, or one it
/// would refuse).
fn write_source(control: &mut Control, transmit: &Transmit<'_>, socket_is_v6: bool) -> usize {
    let source = normalize(transmit.source);
    let destination = normalize(transmit.destination);
    if source.ip().is_unspecified() || source.ip().is_multicast() {
        return 0;
    }
    match (source, destination, socket_is_v6) {
        (SocketAddr::V4(source), SocketAddr::V4(_), false) => {
            if source.ip().is_broadcast() {
                return 0;
            }
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                // The source for routing and for the header (ipi_addr is ignored on send).
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(*source.ip()).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            put_cmsg(control, libc::IPPROTO_IP, libc::IP_PKTINFO, info)
        }
        // An IPv4 peer on a dual-stack socket: the kernel takes the IPv6 form with the mapped
        // address and applies it to the IPv4 send.
        (SocketAddr::V4(source), SocketAddr::V4(_), true) => {
            if source.ip().is_broadcast() {
                return 0;
            }
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: source.ip().to_ipv6_mapped().octets(),
                },
                ipi6_ifindex: 0,
            };
            put_cmsg(control, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, info)
        }
        (SocketAddr::V6(source), SocketAddr::V6(_), true) => {
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: source.ip().octets(),
                },
                ipi6_ifindex: source.scope_id(),
            };
            put_cmsg(control, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, info)
        }
        // Families that cannot meet on this socket; the send reports its own error.
        _ => 0,
    }
}

/// Writes one control message holding `value` at the start of `control`; returns the space it
/// takes.
fn put_cmsg<T: Copy>(
    control: &mut Control,
    level: libc::c_int,
    kind: libc::c_int,
    value: T,
) -> usize {
    let space = cmsg_space::<T>();
    assert!(space <= CONTROL_LEN, "control message does not fit");
    control.0[..space].fill(0);
    let cmsg = control.0.as_mut_ptr().cast::<libc::cmsghdr>();
    // SAFETY: `control` is aligned for `cmsghdr` and its first `space` bytes hold the header and
    // the payload at CMSG_DATA; the payload is written unaligned.
    unsafe {
        (*cmsg).cmsg_level = level;
        (*cmsg).cmsg_type = kind;
        (*cmsg).cmsg_len = cmsg_len::<T>() as _;
        ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<T>(), value);
    }
    space
}

pub(crate) fn note_pending_errors(state: &mut State) {
    state.errors_pending = true;
}

pub(crate) fn drain_errors(
    socket: &mio::net::UdpSocket,
    state: &mut State,
    mut each: impl FnMut(SendFailure),
) {
    if !state.errors_pending {
        return;
    }
    for _ in 0..ERRORS_PER_DRAIN {
        // SAFETY: all-zero is a valid msghdr (no name, no data, no control).
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = (&mut state.error_address as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // The payload (the start of our own datagram) is of no use; it is cut off and
        // MSG_TRUNC set, which is harmless.
        msg.msg_control = state.error_control.0.as_mut_ptr().cast();
        msg.msg_controllen = CONTROL_LEN as _;
        // SAFETY: the name and control pointers cover buffers of the stated sizes in `state`.
        let n = unsafe {
            libc::recvmsg(
                socket.as_raw_fd(),
                &mut msg,
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => {}
                _ => debug!(error = %err, "reading the socket error queue failed"),
            }
            state.errors_pending = false;
            return;
        }
        // SAFETY: `msg` describes the control buffer the kernel just filled.
        let Some(errno) = (unsafe { extended_error(&msg) }) else {
            continue;
        };
        // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes into the storage.
        let remote = unsafe { SockAddr::new(state.error_address, msg.msg_namelen) };
        let Some(remote) = remote.as_socket() else {
            continue;
        };
        each(SendFailure {
            remote: normalize(remote),
            errno,
            kind: errno_name(errno).unwrap_or("EIO"),
        });
    }
    // More may be queued: `errors_pending` stays set for the next call.
}

/// The error number of an ICMP error report, or `None` for anything else in the queue (local
/// errors such as EMSGSIZE, which the failed send already returned).
///
/// # Safety
/// As for [`find_cmsg`].
unsafe fn extended_error(msg: &libc::msghdr) -> Option<i32> {
    let find = |level, kind, data: &[u8]| {
        let is_report = (level == libc::IPPROTO_IP && kind == libc::IP_RECVERR)
            || (level == libc::IPPROTO_IPV6 && kind == libc::IPV6_RECVERR);
        if !is_report {
            return None;
        }
        // SAFETY: sock_extended_err is integers only.
        let report: libc::sock_extended_err = unsafe { read_c_struct(data) }?;
        let from_icmp = matches!(
            report.ee_origin,
            libc::SO_EE_ORIGIN_ICMP | libc::SO_EE_ORIGIN_ICMP6
        );
        // A report, even one we skip, ends the search: there is one per queue entry.
        Some((from_icmp && report.ee_errno != 0).then_some(report.ee_errno as i32))
    };
    // SAFETY: passed on to our caller.
    unsafe { find_cmsg(msg, find) }.flatten()
}

/// The errors ICMP messages turn into (net/ipv4/icmp.c `icmp_err_convert`,
/// net/ipv6/icmp.c `icmpv6_err_convert`), by name. A receive failing with one of these reports
/// the socket's error flag rather than a broken receive.
fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EHOSTDOWN => "EHOSTDOWN",
        libc::ENONET => "ENONET",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EPROTO => "EPROTO",
        libc::EACCES => "EACCES",
        _ => return None,
    })
}
