//! What a protocol-version-2 handshake costs the server, for `npm run bench -- --only handshake`
//! (see `docs/performance.md`): handshakes completed per CPU-second of one thread, on the
//! sans-IO endpoint (no sockets, no system calls: the kernel's share of the four datagrams is
//! not in it).
//!
//! A handshake is HELLO → COOKIE → HELLO with the cookie and the Noise message → ACCEPT. The
//! server cannot skip the cookie round trip (there is no such mode: the cookie is what lets it
//! keep nothing and compute no Diffie-Hellman for an unvalidated address), so the two halves are
//! timed separately, each over a batch of clients:
//!
//! - `cookie half`: first HELLOs in, COOKIEs out (parse, rate limits, one MAC);
//! - `noise half`: HELLOs with the cookie in, ACCEPTs out (cookie check, the Noise responder's
//!   two X25519 and one key generation, the session with its KCP engine, the records), then the
//!   client's confirming KEEPALIVE in (the connection is announced);
//! - `full`: both, what one handshake costs the server with the cookie round trip;
//! - `without the cookie`: the noise half less one cookie check (timed alone), i.e. what the
//!   server would pay per handshake if it skipped the round trip. An estimate, not a mode.
//!
//! The client side (one client endpoint opening every connection of a batch) runs between the
//! timed sections and is not counted. CPU time is the thread's own (`CLOCK_THREAD_CPUTIME_ID`,
//! so Linux only), so other processes on a shared machine do not add to it; wall time is
//! printed next to it.
//!
//! Run with `cargo run --release -p kcpwatch-proto --example handshake_cost [-- --batches N]`.
//! Prints one JSON object.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use kcpwatch_proto::limits::Limits;
use kcpwatch_proto::secure::{CookieJar, StaticKey};
use kcpwatch_proto::{
    Endpoint, EndpointConfig, EndpointEvent, Millis, Mode, Preset, SessionConfig, Severity,
};

/// Clients per batch: large enough that reading the clock is noise, small enough that a batch's
/// sessions stay in cache about as a busy server's would.
const BATCH: usize = 500;
const SERVER: &str = "10.0.0.1:4000";

/// `struct timespec` on 64-bit Linux.
#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    /// From the C library std already links (no crate for one call).
    fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
}

/// Linux's `CLOCK_THREAD_CPUTIME_ID`.
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

/// The thread's CPU time in nanoseconds. `clock_gettime` brings the scheduler's count up to
/// the moment of the call (`/proc/thread-self/schedstat` lags by up to a tick, more than a
/// batch's cookie half takes).
fn thread_cpu_ns() -> u64 {
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU and wall nanoseconds of `f`.
fn timed(f: impl FnOnce()) -> (u64, u64) {
    let cpu = thread_cpu_ns();
    let wall = Instant::now();
    f();
    (thread_cpu_ns() - cpu, wall.elapsed().as_nanos() as u64)
}

fn client_addr(i: usize) -> SocketAddr {
    SocketAddr::from((
        [10, 1, (i >> 8) as u8, i as u8],
        40_000 + (i % 20_000) as u16,
    ))
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn server(key: &StaticKey, seed: u64) -> Endpoint {
    // The limits are opened so that only the handshake's own work is measured; the records
    // are on at `informational`, as with logging on (they are moved out as the I/O thread does).
    let open = u32::MAX / 2;
    Endpoint::new(
        EndpointConfig {
            session: SessionConfig {
                ..Preset::Game.config()
            },
            mode: Mode::Secure,
            accept_inbound: true,
            max_connections: BATCH * 2,
            rng_seed: seed,
            secret: rand_secret(seed),
            server_keys: vec![key.clone()],
            unix_ms_at_zero: unix_ms(),
            event_level: Some(Severity::Informational),
            limits: Limits {
                max_per_ip: usize::MAX,
                max_per_prefix: usize::MAX,
                handshakes_per_ip: open,
                handshake_burst_per_ip: open,
                handshakes_global: open,
                handshake_burst_global: open,
            },
            ..EndpointConfig::default()
        },
        0,
    )
    .unwrap()
}

fn client(key: &StaticKey, seed: u64) -> Endpoint {
    Endpoint::new(
        EndpointConfig {
            session: Preset::Game.config(),
            mode: Mode::Secure,
            accept_inbound: false,
            max_connections: BATCH * 2,
            rng_seed: seed ^ 0x5555,
            secret: rand_secret(seed ^ 0x5555),
            server_key: Some(*key.public()),
            unix_ms_at_zero: unix_ms(),
            ..EndpointConfig::default()
        },
        0,
    )
    .unwrap()
}

fn rand_secret(seed: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = (seed.rotate_left(i as u32 * 7) as u8) ^ (i as u8).wrapping_mul(31) ^ 0xA5;
    }
    s
}

/// Takes what `from` queued: (source, destination, bytes).
fn take(from: &mut Endpoint, now: Millis) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
    from.flush(now);
    let out = from
        .transmits()
        .iter()
        .map(|t| (t.source, t.destination, t.data.to_vec()))
        .collect();
    from.clear_transmits();
    out
}

/// The server's work on a batch of datagrams, as the I/O thread does it: handle each, flush,
/// move the events and records out. The transmits stay queued for the caller.
fn serve(server: &mut Endpoint, now: Millis, datagrams: &[(SocketAddr, SocketAddr, Vec<u8>)]) {
    let local: SocketAddr = SERVER.parse().unwrap();
    for (from, _, bytes) in datagrams {
        server.handle_datagram(now, *from, local, bytes);
    }
    server.flush(now);
    while let Some(e) = server.poll_event() {
        black_box(e);
    }
    while let Some(e) = server.poll_security_event() {
        black_box(e);
    }
}

#[derive(Default)]
struct Totals {
    cookie_cpu: u64,
    cookie_wall: u64,
    noise_cpu: u64,
    noise_wall: u64,
    handshakes: u64,
}

fn batch(key: &StaticKey, seed: u64, t: &mut Totals) {
    let now: Millis = 10;
    let server_addr: SocketAddr = SERVER.parse().unwrap();
    let mut srv = server(key, seed);
    let mut cli = client(key, seed);
    for i in 0..BATCH {
        cli.connect_secure(now, server_addr, client_addr(i), b"", None)
            .unwrap();
    }
    let hellos = take(&mut cli, now);
    assert_eq!(hellos.len(), BATCH, "one HELLO per client");

    let (cpu, wall) = timed(|| serve(&mut srv, now, &hellos));
    let cookies = take(&mut srv, now);
    assert_eq!(cookies.len(), BATCH, "one COOKIE per HELLO");
    t.cookie_cpu += cpu;
    t.cookie_wall += wall;

    for (_, to, bytes) in &cookies {
        cli.handle_datagram(now, server_addr, *to, bytes);
    }
    let hellos2 = take(&mut cli, now);
    assert_eq!(hellos2.len(), BATCH, "one HELLO with the cookie per client");

    let (cpu, wall) = timed(|| serve(&mut srv, now, &hellos2));
    let accepts = take(&mut srv, now);
    t.noise_cpu += cpu;
    t.noise_wall += wall;

    for (_, to, bytes) in &accepts {
        cli.handle_datagram(now, server_addr, *to, bytes);
    }
    let mut established = 0;
    while let Some(e) = cli.poll_event() {
        if matches!(e, EndpointEvent::Established { .. }) {
            established += 1;
        }
    }
    assert_eq!(established, BATCH, "every client has its session");
    // The server announces a connection only once the client's first authenticated datagram
    // (the KEEPALIVE it sends at once after ACCEPT) confirms it: part of every handshake's cost.
    let confirmations = take(&mut cli, now);
    let (cpu, wall) = timed(|| serve(&mut srv, now, &confirmations));
    take(&mut srv, now);
    t.noise_cpu += cpu;
    t.noise_wall += wall;
    assert_eq!(srv.connection_count(), BATCH, "every handshake confirmed");
    t.handshakes += BATCH as u64;
}

/// Nanoseconds (CPU) of one cookie check, the part of the noise half that exists only because
/// of the cookie round trip.
fn cookie_check_ns() -> f64 {
    let mut jar = CookieJar::new(&[7; 32], 10_000);
    let now = unix_ms();
    let addr = client_addr(1);
    let nonce = [3u8; 16];
    let cookie = jar.mint(now, addr, &nonce);
    let n = 200_000u64;
    let (cpu, _) = timed(|| {
        for _ in 0..n {
            black_box(jar.check(now, black_box(addr), &nonce, black_box(&cookie)));
        }
    });
    cpu as f64 / n as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batches: usize = args
        .iter()
        .position(|a| a == "--batches")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(20);
    let key = StaticKey::generate().unwrap();
    // One untimed batch warms the allocator and the caches.
    batch(&key, 1, &mut Totals::default());
    let mut t = Totals::default();
    for b in 0..batches {
        batch(&key, 100 + b as u64, &mut t);
    }
    let check_ns = cookie_check_ns();
    let n = t.handshakes as f64;
    let per_s = |ns_each: f64| (1e9 / ns_each).round();
    let cookie_ns = t.cookie_cpu as f64 / n;
    let noise_ns = t.noise_cpu as f64 / n;
    let full_ns = cookie_ns + noise_ns;
    let without_ns = noise_ns - check_ns;
    println!(
        "{}",
        format_args!(
            concat!(
                "{{\"handshakes\":{},\"batch\":{},",
                "\"cookie_half_us\":{:.2},\"noise_half_us\":{:.2},\"full_us\":{:.2},",
                "\"cookie_check_us\":{:.3},\"without_cookie_us\":{:.2},",
                "\"full_per_core_s\":{},\"without_cookie_per_core_s\":{},\"cookie_replies_per_core_s\":{},",
                "\"cookie_half_wall_us\":{:.2},\"noise_half_wall_us\":{:.2}}}"
            ),
            t.handshakes,
            BATCH,
            cookie_ns / 1e3,
            noise_ns / 1e3,
            full_ns / 1e3,
            check_ns / 1e3,
            without_ns / 1e3,
            per_s(full_ns),
            per_s(without_ns),
            per_s(cookie_ns),
            t.cookie_wall as f64 / n / 1e3,
            t.noise_wall as f64 / n / 1e3,
        )
    );
}
