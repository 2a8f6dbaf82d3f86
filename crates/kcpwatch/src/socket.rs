//! Creating the UDP socket: dual-stack when bound to `::`, optional SO_REUSEPORT for sharding,
//! and large kernel buffers so bursts are absorbed by the kernel rather than dropped.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// Kernel buffer sizes asked for; the kernel may clamp them (net.core.rmem_max).
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Options for one socket.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketOptions {
    /// Let several sockets share the port (one per worker shard).
    pub reuse_port: bool,
    /// For `::`, accept IPv4 too (the default) or IPv6 only.
    pub ipv6_only: bool,
}

/// Binds a non-blocking UDP socket.
pub fn bind(addr: SocketAddr, options: SocketOptions) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(options.ipv6_only)?;
    }
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    if options.reuse_port {
        socket.set_reuse_port(true)?;
    }
    // Best effort: a smaller buffer only means earlier drops under bursts.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// IPv4-mapped IPv6 addresses (what a dual-stack socket reports for IPv4 peers) as plain IPv4,
/// so keys, logs and the API show the address the peer really has.
pub fn normalize(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// The form of `addr` a socket of the given family can send to.
pub fn for_socket(addr: SocketAddr, socket_is_v6: bool) -> SocketAddr {
    match (addr, socket_is_v6) {
        (SocketAddr::V4(v4), true) => {
            SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
        }
        _ => addr,
    }
}

/// The unspecified address of the same family, for a client socket that talks to `remote`.
pub fn unspecified_for(remote: SocketAddr) -> SocketAddr {
    match remote {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_print_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:9".parse().unwrap();
        assert_eq!(normalize(mapped), "127.0.0.1:9".parse().unwrap());
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        assert_eq!(normalize(v6), v6);
        assert_eq!(for_socket("127.0.0.1:9".parse().unwrap(), true), mapped);
    }

    #[test]
    fn dual_stack_socket_binds() {
        let socket = bind("[::]:0".parse().unwrap(), SocketOptions::default()).unwrap();
        assert!(socket.local_addr().unwrap().port() > 0);
    }
}
