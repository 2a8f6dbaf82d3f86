//! The UDP socket of a syslog sink (RFC 5426), and what it learns of refused datagrams: a
//! connected socket with `IP_RECVERR` on Linux, so that each ICMP "port unreachable" the
//! receiver's host sends back is one entry in the socket's error queue.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// How long closing a UDP sink waits for the refusals of the last datagrams.
pub(super) const LAST_REFUSALS: Duration = Duration::from_millis(20);

/// Takes the socket's error queue, returning how many datagrams it says were refused (ICMP
/// or ICMPv6 errors about them).
#[cfg(target_os = "linux")]
pub(super) fn refusals(sock: &UdpSocket) -> u64 {
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
pub(super) fn refusals(_sock: &UdpSocket) -> u64 {
    0
}

/// Waits until the socket has an error pending, or `until`.
#[cfg(target_os = "linux")]
pub(super) fn wait_for_error(sock: &UdpSocket, until: Instant) {
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
pub(super) fn wait_for_error(_sock: &UdpSocket, _until: Instant) {}

/// Asks for the socket's ICMP errors in its error queue, one per refused datagram.
#[cfg(target_os = "linux")]
fn recv_errors(sock: &UdpSocket, v6: bool) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let (level, name) = if v6 {
        (libc::SOL_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::SOL_IP, libc::IP_RECVERR)
    };
    super::sockopt::enable(sock.as_raw_fd(), level, name)
}

#[cfg(not(target_os = "linux"))]
fn recv_errors(_sock: &UdpSocket, _v6: bool) -> io::Result<()> {
    Ok(())
}

pub(super) fn socket(addr: SocketAddr) -> io::Result<UdpSocket> {
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
