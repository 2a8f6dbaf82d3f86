//! Stable names for the operating-system errors a UDP socket reports, for `error_code` in
//! `kcp:error` records (analysts search for `ECONNREFUSED`, not for a platform's number).

use std::io;

/// The errno name of `error`, or a kind-based name where the platform number is unknown.
pub fn name(error: &io::Error) -> &'static str {
    #[cfg(unix)]
    if let Some(code) = error.raw_os_error() {
        let known = match code {
            libc::EADDRINUSE => Some("EADDRINUSE"),
            libc::EADDRNOTAVAIL => Some("EADDRNOTAVAIL"),
            libc::EACCES => Some("EACCES"),
            libc::EPERM => Some("EPERM"),
            libc::ECONNREFUSED => Some("ECONNREFUSED"),
            libc::ECONNRESET => Some("ECONNRESET"),
            libc::EHOSTUNREACH => Some("EHOSTUNREACH"),
            libc::ENETUNREACH => Some("ENETUNREACH"),
            libc::ENETDOWN => Some("ENETDOWN"),
            libc::EHOSTDOWN => Some("EHOSTDOWN"),
            libc::EMSGSIZE => Some("EMSGSIZE"),
            libc::ENOBUFS => Some("ENOBUFS"),
            libc::ENOMEM => Some("ENOMEM"),
            libc::EINVAL => Some("EINVAL"),
            libc::EAFNOSUPPORT => Some("EAFNOSUPPORT"),
            libc::EMFILE => Some("EMFILE"),
            libc::ENFILE => Some("ENFILE"),
            libc::ETIMEDOUT => Some("ETIMEDOUT"),
            libc::EPROTO => Some("EPROTO"),
            _ => None,
        };
        if let Some(name) = known {
            return name;
        }
    }
    match error.kind() {
        io::ErrorKind::AddrInUse => "EADDRINUSE",
        io::ErrorKind::AddrNotAvailable => "EADDRNOTAVAIL",
        io::ErrorKind::PermissionDenied => "EACCES",
        io::ErrorKind::ConnectionRefused => "ECONNREFUSED",
        io::ErrorKind::ConnectionReset => "ECONNRESET",
        io::ErrorKind::InvalidInput => "EINVAL",
        io::ErrorKind::TimedOut => "ETIMEDOUT",
        io::ErrorKind::OutOfMemory => "ENOMEM",
        _ => "EIO",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_common_socket_errors() {
        #[cfg(unix)]
        assert_eq!(
            name(&io::Error::from_raw_os_error(libc::ECONNREFUSED)),
            "ECONNREFUSED"
        );
        assert_eq!(name(&io::ErrorKind::AddrInUse.into()), "EADDRINUSE");
        assert_eq!(name(&io::Error::other("x")), "EIO");
    }
}
