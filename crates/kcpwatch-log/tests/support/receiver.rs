//! A syslog-over-TCP receiver (octet-counted frames) that the outage tests stop and restart on
//! the same port. It stops the way a receiver shutting down cleanly does: it accepts nothing
//! more, ends its side of each connection (FIN), and reads what the sender still sends until
//! the sender's end of stream. rsyslog itself does not do that (it closes with data possibly
//! unread, which plain TCP syslog cannot recover); the sink handles both, and this receiver
//! lets the test check the sink's bookkeeping exactly.

use std::io::{ErrorKind, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Everything received, across restarts, in arrival order.
#[derive(Default)]
pub struct Collected {
    pub records: Vec<Vec<u8>>,
    pub connections: u64,
    /// Connections that ended inside a frame (its bytes are not in `records`).
    pub partial_frames: u64,
}

pub type Shared = Arc<Mutex<Collected>>;

pub struct Receiver {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    sessions: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Receiver {
    /// Listens on `addr` (port 0 for any) and collects into `out`.
    pub fn start(addr: SocketAddr, out: Shared) -> Self {
        // The previous receiver's port may be briefly unavailable; bounded retries.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("bind {addr}: {e}"),
            }
        };
        let addr = listener.local_addr().expect("local addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let sessions: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let stop = Arc::clone(&stop);
            let sessions = Arc::clone(&sessions);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            out.lock().unwrap().connections += 1;
                            let stop = Arc::clone(&stop);
                            let out = Arc::clone(&out);
                            let h = std::thread::spawn(move || session(stream, stop, out));
                            sessions.lock().unwrap().push(h);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        Err(e) => panic!("accept: {e}"),
                    }
                }
                // The listener closes here: new connections are refused from now on.
            })
        };
        Self {
            addr,
            stop,
            accept: Some(accept),
            sessions,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops cleanly (see the module doc) and returns once every session ended.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(a) = self.accept.take() {
            a.join().expect("accept thread");
        }
        let sessions: Vec<_> = self.sessions.lock().unwrap().drain(..).collect();
        for s in sessions {
            s.join().expect("session thread");
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn session(mut stream: TcpStream, stop: Arc<AtomicBool>, out: Shared) {
    stream
        .set_read_timeout(Some(Duration::from_millis(10)))
        .expect("read timeout");
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut drain_until: Option<Instant> = None;
    loop {
        if drain_until.is_none() && stop.load(Ordering::Acquire) {
            let _ = stream.shutdown(Shutdown::Write);
            // Bounded: a sender that never ends its side is cut off.
            drain_until = Some(Instant::now() + Duration::from_secs(10));
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                let frames = parse_frames(&mut buf);
                if !frames.is_empty() {
                    out.lock().unwrap().records.extend(frames);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if drain_until.is_some_and(|d| Instant::now() > d) {
                    break;
                }
            }
            // The sender reset the connection: what was received is kept.
            Err(_) => break,
        }
    }
    if !buf.is_empty() {
        out.lock().unwrap().partial_frames += 1;
    }
}

/// Takes the complete `LEN SP MSG` frames off the front of `buf`.
pub fn parse_frames(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        let rest = &buf[at..];
        let Some(sp) = rest.iter().position(|&b| b == b' ') else {
            assert!(
                rest.len() < 10,
                "no frame length in {:?}",
                String::from_utf8_lossy(rest)
            );
            break;
        };
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "bad frame length {:?}",
                    String::from_utf8_lossy(&rest[..sp])
                )
            });
        assert!(
            len > 0 && rest[0] != b'0',
            "MSG-LEN must be NONZERO-DIGIT *DIGIT"
        );
        if rest.len() < sp + 1 + len {
            break;
        }
        frames.push(rest[sp + 1..sp + 1 + len].to_vec());
        at += sp + 1 + len;
    }
    buf.drain(..at);
    frames
}
