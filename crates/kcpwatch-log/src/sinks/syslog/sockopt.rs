//! Turning on an integer socket option that std does not expose (`SO_NOSIGPIPE` for streams
//! on the BSDs, `IP_RECVERR` for UDP on Linux).

use std::io;
use std::os::unix::io::RawFd;

/// Sets the option `name` at `level` to 1 on the socket `fd`.
pub(super) fn enable(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
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
