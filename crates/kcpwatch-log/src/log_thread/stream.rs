//! Writing records to stdout or stderr without ever blocking the log thread for good.

use std::collections::VecDeque;
use std::io;
#[cfg(not(unix))]
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Control;

/// Standard output or error, written through its descriptor.
///
/// A reader that is slow is waited for, whether the descriptor is blocking or not (Node puts
/// pipes in non-blocking mode, a shell does not): each write is preceded by `poll` and is at
/// most what the descriptor takes without blocking, so the wait can always be given up when
/// the listener closes ([`Control::abandon`]), with what was not written counted as lost.
///
/// For a pipe, it also remembers where the last pipe-full of records ends in the byte stream:
/// when the reader goes away (`EPIPE`), whatever is still in the pipe was never read, and the
/// records in it are counted as lost too, although their write had succeeded.
#[derive(Default)]
pub(super) struct StreamOut {
    fd: i32,
    /// Bytes written to the descriptor so far.
    total: u64,
    /// Stream offsets where the records written whole end, the last `window` bytes of them.
    ends: VecDeque<u64>,
    /// The pipe's capacity; 0 when the descriptor is not a pipe (nothing is tracked).
    window: u64,
    /// The most one write gives the descriptor once `poll` says it is writable (Unix only:
    /// elsewhere the descriptor is written through std, which takes what it can).
    #[cfg(unix)]
    chunk: usize,
}

/// How long one `poll` waits before looking at [`Control::abandon`] again.
#[cfg(unix)]
const STREAM_POLL_MS: i32 = 50;

impl StreamOut {
    #[cfg(unix)]
    pub(super) fn new(fd: i32) -> Self {
        // SAFETY: fstat fills the zeroed struct; fcntl(F_GETPIPE_SZ) only reads the descriptor.
        let (mode, pipe_size) = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            let mode = if libc::fstat(fd, &mut st) == 0 {
                st.st_mode & libc::S_IFMT
            } else {
                0
            };
            #[cfg(any(target_os = "linux", target_os = "android"))]
            let size = libc::fcntl(fd, libc::F_GETPIPE_SZ);
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            let size = 65_536;
            (mode, size)
        };
        let (window, chunk) = match mode {
            // A write of up to PIPE_BUF never blocks once poll said there is room.
            libc::S_IFIFO => (u64::try_from(pipe_size).unwrap_or(0), libc::PIPE_BUF),
            libc::S_IFREG => (0, usize::MAX),
            _ => (0, libc::PIPE_BUF),
        };
        Self {
            fd,
            total: 0,
            ends: VecDeque::new(),
            window,
            chunk,
        }
    }

    #[cfg(not(unix))]
    pub(super) fn new(fd: i32) -> Self {
        Self {
            fd,
            ..Default::default()
        }
    }

    /// Writes one batch (`ends`: where its records end). On failure returns how many bytes of
    /// it were written; `torn` says whether that ends inside a line (the next write ends it
    /// first), and `stranded` how many records written before were left unread in the pipe.
    pub(super) fn write(
        &mut self,
        bytes: &[u8],
        ends: &[usize],
        torn: &mut bool,
        control: &Control,
        stranded: &mut u64,
    ) -> Result<(), (usize, io::Error)> {
        if *torn {
            if let Err((_, e)) = self.write_all(b"\n", control) {
                *stranded = self.strand(&e);
                return Err((0, e));
            }
            *torn = false;
        }
        let base = self.total;
        let result = self.write_all(bytes, control);
        let written = result.as_ref().map_or_else(|(w, _)| *w, |()| bytes.len());
        if self.window > 0 {
            let whole = ends.iter().take_while(|&&end| end <= written);
            self.ends.extend(whole.map(|&end| base + end as u64));
            let read = self.total.saturating_sub(self.window);
            while self.ends.front().is_some_and(|&end| end <= read) {
                self.ends.pop_front();
            }
        }
        if let Err((written, e)) = &result {
            *torn = *written > 0 && bytes[*written - 1] != b'\n';
            *stranded = self.strand(e);
        }
        result
    }

    /// After a failed write: when the reader is gone, the records still in the pipe.
    pub(super) fn strand(&mut self, error: &io::Error) -> u64 {
        if error.kind() != io::ErrorKind::BrokenPipe || self.ends.is_empty() {
            return 0;
        }
        let unread = self.unread();
        let read = self.total.saturating_sub(unread);
        let n = self.ends.iter().filter(|&&end| end > read).count() as u64;
        // Counted once: nothing will be written to this pipe again.
        self.ends.clear();
        n
    }

    /// Bytes in the pipe that its reader did not read (it stays allocated while we hold our
    /// end, even with the reader gone).
    #[cfg(unix)]
    pub(super) fn unread(&self) -> u64 {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through the pointer.
        let rc = unsafe { libc::ioctl(self.fd, libc::FIONREAD as _, &mut n) };
        if rc == 0 {
            u64::try_from(n).unwrap_or(0)
        } else {
            0
        }
    }

    #[cfg(not(unix))]
    pub(super) fn unread(&self) -> u64 {
        0
    }

    #[cfg(unix)]
    pub(super) fn write_all(
        &mut self,
        bytes: &[u8],
        control: &Control,
    ) -> Result<(), (usize, io::Error)> {
        let mut written = 0;
        let stalled = || io::Error::new(io::ErrorKind::TimedOut, "the reader stalled past close");
        while written < bytes.len() {
            let mut pfd = libc::pollfd {
                fd: self.fd,
                events: libc::POLLOUT,
                revents: 0,
            };
            // Once the listener is closing, a reader that does not read is not waited for
            // at all: every batch still to come must fail at once, within the close bound.
            let wait = if control.abandon.load(Ordering::Acquire) {
                0
            } else {
                STREAM_POLL_MS
            };
            // SAFETY: poll on one live pollfd.
            let ready = unsafe { libc::poll(&mut pfd, 1, wait) };
            if ready < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err((written, e));
            }
            if ready == 0 {
                // The reader does not read: wait for it, unless the listener is closing.
                if control.abandon.load(Ordering::Acquire) {
                    return Err((written, stalled()));
                }
                continue;
            }
            let rest = &bytes[written..];
            let len = rest.len().min(self.chunk);
            // SAFETY: write from a live buffer of at least `len` bytes.
            let n = unsafe { libc::write(self.fd, rest.as_ptr().cast(), len) };
            if n > 0 {
                written += n as usize;
                self.total += n as u64;
                continue;
            }
            if n == 0 {
                return Err((written, io::ErrorKind::WriteZero.into()));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => {
                    // Writable by poll's measure but not for this much (a socket): a short
                    // pause rather than a busy loop.
                    if control.abandon.load(Ordering::Acquire) {
                        return Err((written, stalled()));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                _ => return Err((written, e)),
            }
        }
        Ok(())
    }

    #[cfg(not(unix))]
    pub(super) fn write_all(
        &mut self,
        bytes: &[u8],
        control: &Control,
    ) -> Result<(), (usize, io::Error)> {
        let result = if self.fd == 2 {
            write_all(&mut io::stderr().lock(), bytes, control)
        } else {
            write_all(&mut io::stdout().lock(), bytes, control)
        };
        let written = result.as_ref().map_or_else(|(w, _)| *w, |()| bytes.len());
        self.total += written as u64;
        result
    }
}

/// Writes everything to a stream, waiting when it is non-blocking and full.
#[cfg(not(unix))]
fn write_all(
    out: &mut impl Write,
    mut bytes: &[u8],
    control: &Control,
) -> Result<(), (usize, io::Error)> {
    let mut written = 0;
    let mut waits = 0u32;
    while !bytes.is_empty() {
        match out.write(bytes) {
            Ok(0) => return Err((written, io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                bytes = &bytes[n..];
                written += n;
                waits = 0;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if control.abandon.load(Ordering::Acquire) {
                    return Err((
                        written,
                        io::Error::new(io::ErrorKind::TimedOut, "the reader stalled past close"),
                    ));
                }
                waits = (waits + 1).min(10);
                std::thread::sleep(Duration::from_millis(u64::from(waits)));
            }
            Err(e) => return Err((written, e)),
        }
    }
    out.flush().map_err(|e| (written, e))
}
