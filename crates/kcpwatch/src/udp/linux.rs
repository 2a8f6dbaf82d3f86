//! recvmmsg / sendmmsg. The message headers point into buffers owned by [`State`]; the pointers
//! are rebuilt for every call, so nothing self-referential survives between calls.

use std::io;
use std::mem;
use std::os::fd::AsRawFd;

use kcpwatch_proto::Transmits;
use socket2::SockAddr;

use super::{Received, BATCH};
use crate::socket::{for_socket, normalize};

pub(crate) struct State {
    max_datagram: usize,
    buffers: Vec<u8>,
    addresses: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    destinations: Vec<SockAddr>,
}

impl State {
    pub(crate) fn new(max_datagram: usize) -> Self {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let zero_storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let zero_header: libc::mmsghdr = unsafe { mem::zeroed() };
        Self {
            max_datagram,
            buffers: vec![0; max_datagram * BATCH],
            addresses: vec![zero_storage; BATCH],
            iovecs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                BATCH
            ],
            headers: vec![zero_header; BATCH],
            destinations: Vec::with_capacity(BATCH),
        }
    }
}

pub(crate) fn recv_batch(
    socket: &mio::net::UdpSocket,
    state: &mut State,
    mut each: impl FnMut(Received<'_>),
) -> io::Result<usize> {
    let size = state.max_datagram;
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
        header.msg_control = std::ptr::null_mut();
        header.msg_controllen = 0;
        header.msg_flags = 0;
        state.headers[i].msg_len = 0;
    }
    // SAFETY: every header points at live buffers of the stated sizes owned by `state`.
    let n = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            state.headers.as_mut_ptr(),
            BATCH as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            return Ok(0);
        }
        return Err(err);
    }
    let n = n as usize;
    for i in 0..n {
        let header = &state.headers[i];
        let len = header.msg_len as usize;
        let truncated = header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes into the storage.
        let from = unsafe { SockAddr::new(state.addresses[i], header.msg_hdr.msg_namelen) };
        let Some(from) = from.as_socket() else {
            continue;
        };
        each(Received {
            from: normalize(from),
            data: &state.buffers[i * size..i * size + len.min(size)],
            truncated,
        });
    }
    Ok(n)
}

pub(crate) fn send_batch(
    socket: &mio::net::UdpSocket,
    state: &mut State,
    socket_is_v6: bool,
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
                .push(SockAddr::from(for_socket(to, socket_is_v6)));
        }
        for i in 0..count {
            let data = transmits.get(sent + i).expect("index within len").data;
            state.iovecs[i] = libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            };
            let header = &mut state.headers[i].msg_hdr;
            header.msg_name = state.destinations[i].as_ptr() as *mut libc::c_void;
            header.msg_namelen = state.destinations[i].len();
            header.msg_iov = &mut state.iovecs[i];
            header.msg_iovlen = 1;
            header.msg_control = std::ptr::null_mut();
            header.msg_controllen = 0;
            header.msg_flags = 0;
        }
        // SAFETY: headers point at the datagrams in `transmits` and the addresses in `state`,
        // both alive for the duration of the call.
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
