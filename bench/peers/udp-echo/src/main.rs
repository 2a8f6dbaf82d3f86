//! A plain UDP echo and its client, no reliability layer: the round-trip floor of this
//! machine's loopback, which `npm run bench -- --only floor` (bench/scenarios/floor.mjs) puts
//! next to kcpwatch and kcp-go.
//!
//! ```text
//! udp-echo server [--host 127.0.0.1] [--port 0]
//! udp-echo client --addr HOST:PORT [--size 64] [--conns 1] [--window 1] [--count N]
//!                 [--warmup M] [--duration-ms T] [--drain-ms D] [--timeout-ms L]
//! ```
//!
//! The server keeps the contract of the other bench servers (bench/lib/process.mjs): its port
//! on the first stdout line; stdin EOF stops it, and it then prints one JSON line of counters.
//! One thread echoes: a blocking `recvmmsg` of up to 64 datagrams, then `sendmmsg` of them
//! back to their senders.
//!
//! The client prints one JSON line with the fields of the other drivers (`ok`, `messages`,
//! `elapsed_ms`, `msgs_per_sec`, `p50_us`, `p99_us`, `max_us`) plus `lost`, or `{"ok":false,
//! "error":..}` and exit 1. With one connection and a window of one it is a ping-pong on one
//! blocking connected socket (`send`, then `recv`): `--warmup` round trips unmeasured, then
//! `--count` measured, cut short at `--duration-ms`; an echo missing for `--timeout-ms` fails
//! the run. Otherwise it is a load: `--conns` non-blocking sockets under `poll`, each keeping
//! `--window` datagrams in flight with `recvmmsg`/`sendmmsg`, sending until `--duration-ms` or
//! `--count` echoes, then waiting up to `--drain-ms`; a socket without an echo for
//! `--timeout-ms` counts its window lost and sends a fresh one. Every datagram carries its
//! sequence number (bytes 0..8, big endian) and its send time (bytes 8..16), so an echo's
//! round trip is read from the echo itself.

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use std::{mem, process, ptr, thread};

/// Datagrams per `recvmmsg`/`sendmmsg` call.
const BATCH: usize = 64;
/// As the other bench servers (kcp-go's, the dgram peer): the kernel caps it at rmem_max/wmem_max.
const SOCKET_BUFFER: libc::c_int = 4 << 20;
/// Sequence number and send time.
const HEADER: usize = 16;

fn main() {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let flags = Flags::parse(args);
    match command.as_str() {
        "server" => server(&flags),
        "client" => client(&flags),
        _ => usage("the first argument must be `server` or `client`"),
    }
}

fn usage(message: &str) -> ! {
    eprintln!("udp-echo: {message}");
    process::exit(2);
}

/// `--name value` pairs, looked up by name.
struct Flags(Vec<(String, String)>);

impl Flags {
    fn parse(mut args: impl Iterator<Item = String>) -> Flags {
        let mut pairs = Vec::new();
        while let Some(flag) = args.next() {
            let Some(name) = flag.strip_prefix("--") else {
                usage(&format!("unexpected argument {flag}"))
            };
            let value = args
                .next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
            pairs.push((name.to_string(), value));
        }
        Flags(pairs)
    }

    fn text(&self, name: &str, default: &str) -> String {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or_else(|| default.to_string(), |(_, v)| v.clone())
    }

    fn int(&self, name: &str, default: u64, min: u64, max: u64) -> u64 {
        let text = self.text(name, &default.to_string());
        match text.parse::<u64>() {
            Ok(v) if (min..=max).contains(&v) => v,
            _ => usage(&format!(
                "--{name} must be an integer in {min}..={max}, got {text}"
            )),
        }
    }

    fn check(&self, known: &[&str]) {
        if let Some((name, _)) = self.0.iter().find(|(n, _)| !known.contains(&n.as_str())) {
            usage(&format!("unknown flag --{name}"));
        }
    }
}

/// Asks for 4 MiB socket buffers, as the other bench peers; a refusal leaves the defaults.
fn set_buffers(socket: &UdpSocket) {
    for option in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: the fd is open for the life of `socket`, and the value pointer and length
        // describe one live c_int.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                ptr::from_ref(&SOCKET_BUFFER).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// Up to `BATCH` datagram buffers with their headers, for `recvmmsg` and `sendmmsg`.
struct Batch {
    bufs: Vec<u8>,
    buf_len: usize,
    iovs: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_storage>,
    hdrs: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new(buf_len: usize) -> Batch {
        // SAFETY: iovec, sockaddr_storage and mmsghdr are plain C structs for which all-zero
        // bytes are a valid value (null pointers, zero lengths).
        let (iov, name, hdr) = unsafe { (mem::zeroed(), mem::zeroed(), mem::zeroed()) };
        Batch {
            bufs: vec![0; BATCH * buf_len],
            buf_len,
            iovs: vec![iov; BATCH],
            names: vec![name; BATCH],
            hdrs: vec![hdr; BATCH],
        }
    }

    /// Points header `i` at `len` bytes of buffer `i` and, for an unconnected socket, at
    /// address slot `i`. Done before every call, so no pointer outlives a move of `self`.
    fn prepare(&mut self, i: usize, len: usize, named: bool) {
        let at = i * self.buf_len;
        self.iovs[i] = libc::iovec {
            iov_base: self.bufs[at..].as_mut_ptr().cast(),
            iov_len: len,
        };
        let hdr = &mut self.hdrs[i].msg_hdr;
        hdr.msg_iov = &mut self.iovs[i];
        hdr.msg_iovlen = 1;
        if named {
            hdr.msg_name = ptr::from_mut(&mut self.names[i]).cast();
            hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        } else {
            hdr.msg_name = ptr::null_mut();
            hdr.msg_namelen = 0;
        }
    }

    fn buf(&mut self, i: usize) -> &mut [u8] {
        &mut self.bufs[i * self.buf_len..(i + 1) * self.buf_len]
    }

    /// Receives up to `n` datagrams; `len(i)` is then the size of the i-th.
    fn recv(&mut self, fd: RawFd, n: usize, flags: libc::c_int, named: bool) -> io::Result<usize> {
        for i in 0..n {
            self.prepare(i, self.buf_len, named);
        }
        // SAFETY: headers 0..n point at iovecs, buffers and address slots owned by `self`, with
        // the lengths `prepare` set, and nothing else touches them during the call.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                flags,
                ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(got as usize)
    }

    fn len(&self, i: usize) -> usize {
        self.hdrs[i].msg_len as usize
    }

    /// Sends the prepared datagrams `from..to`; returns how many left.
    fn send(&mut self, fd: RawFd, from: usize, to: usize) -> io::Result<usize> {
        let hdrs = &mut self.hdrs[from..to];
        // SAFETY: these headers were set by `prepare` (and filled by `recv`) and point into
        // `self`; the slice bounds the count.
        let sent = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), hdrs.len() as libc::c_uint, 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }
}

fn server(flags: &Flags) {
    flags.check(&["host", "port"]);
    let host = flags.text("host", "127.0.0.1");
    let port = flags.int("port", 0, 0, 65535) as u16;
    let fail = |what: &str, err: io::Error| -> ! {
        eprintln!("udp-echo server: {what}: {err}");
        process::exit(1);
    };
    let socket = UdpSocket::bind((host.as_str(), port)).unwrap_or_else(|e| fail("bind", e));
    set_buffers(&socket);
    // The receive wakes every 100 ms to see whether stdin asked to stop.
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap_or_else(|e| fail("SO_RCVTIMEO", e));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = Arc::clone(&stop);
    thread::spawn(move || {
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        watcher.store(true, Ordering::Relaxed);
    });
    let local = socket
        .local_addr()
        .unwrap_or_else(|e| fail("local address", e));
    println!("{}", local.port());

    let fd = socket.as_raw_fd();
    let mut batch = Batch::new(65_536);
    let (mut datagrams_in, mut datagrams_out, mut recv_calls, mut send_errors) =
        (0u64, 0u64, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let n = match batch.recv(fd, BATCH, libc::MSG_WAITFORONE, true) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => fail("recvmmsg", e),
        };
        recv_calls += 1;
        datagrams_in += n as u64;
        for i in 0..n {
            batch.iovs[i].iov_len = batch.len(i);
        }
        let mut at = 0;
        while at < n {
            match batch.send(fd, at, n) {
                Ok(sent) => {
                    at += sent;
                    datagrams_out += sent as u64;
                }
                // A sender that went away, a full queue: that one datagram is dropped.
                Err(_) => {
                    at += 1;
                    send_errors += 1;
                }
            }
        }
    }
    println!(
        "{{\"datagrams_in\":{datagrams_in},\"datagrams_out\":{datagrams_out},\"recv_calls\":{recv_calls},\"send_errors\":{send_errors}}}"
    );
}

struct ClientConfig {
    addr: SocketAddr,
    size: usize,
    conns: usize,
    window: usize,
    count: u64,
    warmup: u64,
    duration: Duration,
    drain: Duration,
    timeout: Duration,
}

/// What a run measured: round trips in ns, the time they took, datagrams given up.
struct Outcome {
    samples: Vec<u64>,
    elapsed: Duration,
    lost: u64,
}

fn client(flags: &Flags) {
    flags.check(&[
        "addr",
        "size",
        "conns",
        "window",
        "count",
        "warmup",
        "duration-ms",
        "drain-ms",
        "timeout-ms",
    ]);
    let addr_text = flags.text("addr", "");
    let addr = addr_text
        .parse()
        .unwrap_or_else(|_| usage(&format!("--addr must be IP:PORT, got {addr_text:?}")));
    let ms = |name, default| Duration::from_millis(flags.int(name, default, 1, 600_000));
    let config = ClientConfig {
        addr,
        size: flags.int("size", 64, HEADER as u64, 65_507) as usize,
        conns: flags.int("conns", 1, 1, 10_000) as usize,
        window: flags.int("window", 1, 1, 65_536) as usize,
        count: flags.int("count", u64::MAX, 1, u64::MAX),
        warmup: flags.int("warmup", 0, 0, 1_000_000),
        duration: ms("duration-ms", 5_000),
        drain: ms("drain-ms", 2_000),
        timeout: ms("timeout-ms", 1_000),
    };
    let outcome = if config.conns == 1 && config.window == 1 {
        ping_pong(&config)
    } else {
        load(&config)
    };
    match outcome {
        Ok(o) => println!("{}", summary(o, &config)),
        Err(e) => {
            let text: String = e
                .chars()
                .map(|c| {
                    if c == '"' || c == '\\' || c.is_control() {
                        ' '
                    } else {
                        c
                    }
                })
                .collect();
            println!("{{\"ok\":false,\"error\":\"{text}\"}}");
            process::exit(1);
        }
    }
}

fn summary(o: Outcome, config: &ClientConfig) -> String {
    let mut s = o.samples;
    s.sort_unstable();
    let n = s.len();
    // As the other drivers: index ceil(p * n) - 1, times truncated to whole microseconds.
    let pct = |p: f64| {
        if n == 0 {
            0
        } else {
            s[((p * n as f64).ceil() as usize).max(1) - 1] / 1000
        }
    };
    let secs = o.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        (n as f64 / secs * 10.0).round() / 10.0
    } else {
        0.0
    };
    format!(
        "{{\"ok\":true,\"messages\":{n},\"elapsed_ms\":{},\"msgs_per_sec\":{rate},\"p50_us\":{},\"p99_us\":{},\"max_us\":{},\"lost\":{},\"conns\":{},\"window\":{},\"warmup\":{}}}",
        o.elapsed.as_millis(),
        pct(0.5),
        pct(0.99),
        s.last().map_or(0, |m| m / 1000),
        o.lost,
        config.conns,
        config.window,
        config.warmup
    )
}

fn connect(config: &ClientConfig) -> Result<UdpSocket, String> {
    let local: SocketAddr = if config.addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("a literal address");
    let socket = UdpSocket::bind(local).map_err(|e| format!("bind: {e}"))?;
    socket
        .connect(config.addr)
        .map_err(|e| format!("connect {}: {e}", config.addr))?;
    set_buffers(&socket);
    Ok(socket)
}

/// Byte k is k & 0xff past the header, so a wrong echo does not match.
fn fill_pattern(buf: &mut [u8]) {
    for (k, b) in buf.iter_mut().enumerate().skip(HEADER) {
        *b = k as u8;
    }
}

fn ping_pong(config: &ClientConfig) -> Result<Outcome, String> {
    let socket = connect(config)?;
    socket
        .set_read_timeout(Some(config.timeout))
        .map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
    let mut out = vec![0u8; config.size];
    fill_pattern(&mut out);
    // One byte more than sent, so a longer echo shows.
    let mut back = vec![0u8; config.size + 1];
    let mut samples = Vec::with_capacity(config.count.min(10_000_000) as usize);
    let deadline = Instant::now() + config.duration;
    let mut start = Instant::now();
    let mut last = start;
    for seq in 0..config.warmup.saturating_add(config.count) {
        if seq == config.warmup {
            start = Instant::now();
            last = start;
        }
        if Instant::now() >= deadline {
            break;
        }
        out[..8].copy_from_slice(&seq.to_be_bytes());
        let sent = Instant::now();
        socket.send(&out).map_err(|e| format!("send: {e}"))?;
        let n = socket.recv(&mut back).map_err(|e| match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                format!(
                    "no echo of message {seq} within {} ms",
                    config.timeout.as_millis()
                )
            }
            _ => format!("recv: {e}"),
        })?;
        let now = Instant::now();
        if back[..n] != out[..] {
            return Err(format!(
                "message {seq}: the echo differs ({n} bytes back, {} sent)",
                out.len()
            ));
        }
        if seq >= config.warmup {
            samples.push((now - sent).as_nanos() as u64);
            last = now;
        }
    }
    Ok(Outcome {
        samples,
        elapsed: last - start,
        lost: 0,
    })
}

struct Conn {
    socket: UdpSocket,
    in_flight: usize,
    next_seq: u64,
    last_progress: Instant,
}

/// Tops `conn` up to the window: sequence number and send time (ns since `epoch`) in front.
fn refill(
    conn: &mut Conn,
    batch: &mut Batch,
    config: &ClientConfig,
    epoch: Instant,
) -> Result<(), String> {
    while conn.in_flight < config.window {
        let k = (config.window - conn.in_flight).min(BATCH);
        let now = epoch.elapsed().as_nanos() as u64;
        for i in 0..k {
            let buf = batch.buf(i);
            buf[..8].copy_from_slice(&(conn.next_seq + i as u64).to_be_bytes());
            buf[8..16].copy_from_slice(&now.to_le_bytes());
            batch.prepare(i, config.size, false);
        }
        let sent = match batch.send(conn.socket.as_raw_fd(), 0, k) {
            Ok(sent) => sent,
            // A full send buffer: the next echo or the timeout tops up again.
            Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
            Err(e) => return Err(format!("sendmmsg: {e}")),
        };
        conn.in_flight += sent;
        conn.next_seq += sent as u64;
        if sent < k {
            break;
        }
    }
    Ok(())
}

fn load(config: &ClientConfig) -> Result<Outcome, String> {
    let epoch = Instant::now();
    let mut conns = Vec::with_capacity(config.conns);
    for _ in 0..config.conns {
        let socket = connect(config)?;
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("O_NONBLOCK: {e}"))?;
        conns.push(Conn {
            socket,
            in_flight: 0,
            next_seq: 0,
            last_progress: epoch,
        });
    }
    let mut fds: Vec<libc::pollfd> = conns
        .iter()
        .map(|c| libc::pollfd {
            fd: c.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut out = Batch::new(config.size);
    for i in 0..BATCH {
        fill_pattern(out.buf(i));
    }
    let mut back = Batch::new(config.size + 1);
    let mut samples = Vec::new();
    let mut lost = 0u64;
    let start = Instant::now();
    let (stop_at, give_up) = (
        start + config.duration,
        start + config.duration + config.drain,
    );
    let mut last = start;
    for conn in &mut conns {
        conn.last_progress = start;
        refill(conn, &mut out, config, epoch)?;
    }
    loop {
        let now = Instant::now();
        let sending = now < stop_at && (samples.len() as u64) < config.count;
        let in_flight: usize = conns.iter().map(|c| c.in_flight).sum();
        if !sending && in_flight == 0 {
            break;
        }
        if now >= give_up {
            lost += in_flight as u64;
            break;
        }
        // SAFETY: `fds` is a live array of `fds.len()` pollfd structs.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 10) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        for (conn, fd) in conns.iter_mut().zip(&fds) {
            let now = Instant::now();
            if fd.revents != 0 {
                let n = match back.recv(fd.fd, BATCH, libc::MSG_DONTWAIT, false) {
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
                    Err(e) => return Err(format!("recvmmsg: {e}")),
                };
                let now_ns = epoch.elapsed().as_nanos() as u64;
                for i in 0..n {
                    let len = back.len(i);
                    let buf = back.buf(i);
                    let sent_ns = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
                    if len != config.size || sent_ns > now_ns {
                        return Err(format!(
                            "a corrupt echo ({len} bytes, {} sent)",
                            config.size
                        ));
                    }
                    samples.push(now_ns - sent_ns);
                }
                if n > 0 {
                    conn.in_flight -= n.min(conn.in_flight);
                    conn.last_progress = now;
                    last = now;
                }
            } else if conn.in_flight > 0 && now - conn.last_progress > config.timeout {
                lost += conn.in_flight as u64;
                conn.in_flight = 0;
                conn.last_progress = now;
            }
            if sending {
                refill(conn, &mut out, config, epoch)?;
            }
        }
    }
    Ok(Outcome {
        samples,
        elapsed: last - start,
        lost,
    })
}
