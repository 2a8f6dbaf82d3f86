//! The endpoint fuzz harness, shared by the cargo-fuzz target
//! (`fuzz/fuzz_targets/endpoint_input.rs`, included with `#[path]`) and the CI-budget test
//! (`tests/endpoint_fuzz.rs`). `docs/security.md` ("Fuzzing") describes it for readers.
//!
//! One input drives one endpoint under test, **T**, whose peer **P** is a real endpoint. Before
//! the input is read, T and P establish one real session (raw KCP or the secure handshake,
//! depending on the configuration byte) and exchange a message each, so fuzzed datagrams meet
//! live sessions. Everything is deterministic (fixed secrets, seeds and clock), so datagrams
//! recorded from one run are valid in the next: the seed corpus holds real HELLO, COOKIE,
//! ACCEPT, REJECT, DATA, KEEPALIVE, DISCONNECT and KCP PUSH/ACK/WASK/WINS datagrams that the
//! fuzzer mutates, and [`seeds`] writes it.
//!
//! Input format: byte 0 is the configuration ([`Setup::from_byte`]); then operations, each an
//! op byte (`op % 8` chooses the kind) and an argument byte, some followed by a u16 (LE)
//! length and that many bytes (fewer if the input ends first):
//!
//! | op | name | argument | data |
//! |---|---|---|---|
//! | 0 | INJECT | source `& 7`, our-alternate-address `>> 3 & 1`, time step `>> 4` | datagram |
//! | 1 | SEALED | session `& 3`, kind `>> 2 & 3` (DATA, DATAGRAM, KEEPALIVE, DISCONNECT), packet number `>> 4 & 3`, source `>> 6` | body |
//! | 2 | ADVANCE | time step `& 15` (1 ms to 12 days) | |
//! | 3 | PUMP | rounds `& 7` + 1, NAT rebinding `& 8` | |
//! | 4 | PEER | P: send (`& 3 == 0`), close, connect again, connect with a refused token | |
//! | 5 | LOCAL | T: send (`& 3 == 0`), close, answer an auth request, connect out | |
//! | 6 | FORGE | like SEALED: one KCP segment from 14 structured bytes, sealed or raw; with `& 0x80` (secure mode) a DATAGRAM whose flags and channel are the first 2 bytes; with `& 0x40` (secure mode) FEC ([`Harness::fec_op`]): a group P really sends with its parity, or one parity whose header and bytes are the input's, sealed or forged | fields |
//! | 7 | REPLAY | a datagram P already delivered to T, index `& 31`, source `>> 5` | |
//!
//! After every datagram and every operation the invariants below are checked; a violation
//! panics with a message saying which.
//!
//! Raw mode with the `CFG_AUTH` bit runs kcp-go FEC ([`FUZZ_FEC`]) on both sides; secure mode
//! with the clock at 0 (`CFG_EPOCH_0`) has both sides send FEC with the same counts.
//!
//! - **Accounting.** Every datagram handed to an endpoint is counted exactly once: accepted,
//!   dropped (any trigger), `late_after_close`, a parity shard kept by a session (FEC; what
//!   it rebuilds is `fec.recovered` or, refused by the guard, a drop counted apart in
//!   `fec.rebuilt_refused`, at most a group's data shards per datagram), or one of the handshake outcomes that no
//!   per-datagram counter records (see [`Outcome`]); so `datagrams_in == datagrams_accepted +
//!   dropped_total() + late_after_close + answered - answer_drops`, where `answered` is the
//!   harness's tally of those outcomes, each checked against its visible effect (a COOKIE sent,
//!   a session opened, an auth request, an ACCEPT repeated, a client's HELLO or `Established` or
//!   `ConnectFailed`), and `answer_drops` the auth answers the endpoint counts as drops (see
//!   [`Side::resolve`]). A datagram with no counter and no such effect is an accounting hole.
//! - **No panic**, contained or not (`stats.panics == 0`; libFuzzer aborts on any panic).
//! - **Limits and state.** `connection_count + pending_auth_count <= max_connections`;
//!   `pending_auth_count <= max_pending_auth`; every live connection was announced and every
//!   ended one reported (the handles the events name are exactly the live ones); unacknowledged
//!   bytes within `max_send_queue_bytes`; no delivered message larger than `max_message_size`.
//! - **Bounded output.** Security and endpoint events are drained after every operation and
//!   their number per operation is bounded (none lost); transmits per operation are bounded;
//!   no datagram is larger than the MTU.
//! - **No amplification before validation** (secure mode): `bytes_sent_unvalidated <=
//!   bytes_received_unvalidated` overall and per datagram, and a source with no session gets
//!   no more bytes back than it sent; a HELLO without a valid cookie creates no state.
//! - **Replays never move a session** (secure mode): a session datagram T already saw,
//!   delivered again from any address, is dropped and changes no peer address.
//! - **Datagrams** (secure mode): an unreliable datagram is handed to the application only
//!   while one arrives (at most one per DATAGRAM), never twice (by packet number, per
//!   connection), and on a sequenced channel only if its packet number is higher than that of
//!   the last one delivered on that channel.
//! - **Secure FEC.** A rebuilt datagram T accepts (`fec.recovered`) is one P sealed and T had
//!   not opened (where the harness knows every number P sealed), an unreliable datagram T
//!   delivers is one P sealed, never twice; a genuine group rebuilds exactly what it should
//!   with no error, garbled parity never rebuilds an accepted datagram; a rebuilt datagram
//!   that opens counts as recovered and once more as accepted or dropped, every refused one as
//!   an FEC error, a malformed parity as one, and no FEC counter moves for a datagram that did
//!   not open; each session's FEC receiver stays within `(4 × (data + parity) + data) × MTU`
//!   bytes and never changes once made.
//! - **No busy loop.** After `handle_timeout(now)`, `poll_timeout` is `None` or after `now`.
//! - **State is reclaimed.** When the input ends, time runs on without traffic: every session
//!   and pending authentication ends, and no timer stays armed.
#![allow(dead_code)]

use std::net::{Ipv6Addr, SocketAddr};

use kcpwatch_proto::detect::{DetectorConfig, Threshold};
use kcpwatch_proto::fec::FecConfig;
use kcpwatch_proto::limits::Limits;
use kcpwatch_proto::secure::fec::{Footprint, ParityHeader};
use kcpwatch_proto::secure::wire::{
    self, ACCEPT_LEN, COOKIE_DATAGRAM_LEN, TYPE_ACCEPT, TYPE_COOKIE, TYPE_DATA, TYPE_DATAGRAM,
    TYPE_DISCONNECT, TYPE_FEC_PARITY, TYPE_HELLO, TYPE_KEEPALIVE, TYPE_REJECT, TYPE_RESET,
};
use kcpwatch_proto::segment::{SegmentHeader, CMD_ACK, CMD_PUSH, CMD_WASK, CMD_WINS};
use kcpwatch_proto::{
    ConnectionHandle, DropTrigger, Endpoint, EndpointConfig, EndpointEvent, EndpointStats, Millis,
    Mode, Preset, SessionConfig, Severity,
};

/// Operations read from one input at most (longer inputs are cut).
pub const MAX_OPS: usize = 128;
/// Datagrams queued between T and P at most (more are lost, like on a congested link).
const WIRE_LIMIT: usize = 1024;
/// Connections P opens or T opens again at most per input.
const MAX_EXTRA_CONNECTS: usize = 6;
/// Sessions whose keys the harness learned, at most.
const MAX_KNOWN: usize = 8;
/// Datagrams P delivered to T kept for REPLAY.
const REPLAY_RING: usize = 32;

pub const OP_INJECT: u8 = 0;
pub const OP_SEALED: u8 = 1;
pub const OP_ADVANCE: u8 = 2;
pub const OP_PUMP: u8 = 3;
pub const OP_PEER: u8 = 4;
pub const OP_LOCAL: u8 = 5;
pub const OP_FORGE: u8 = 6;
pub const OP_REPLAY: u8 = 7;

/// Configuration byte bits.
pub const CFG_SECURE: u8 = 0x01;
pub const CFG_T_CLIENT: u8 = 0x02;
pub const CFG_AUTH: u8 = 0x04;
pub const CFG_EPOCH_2_31: u8 = 1 << 3;
pub const CFG_EPOCH_2_32: u8 = 2 << 3;
pub const CFG_EPOCH_0: u8 = 3 << 3;
pub const CFG_GAME: u8 = 1 << 5;
pub const CFG_NORMAL: u8 = 2 << 5;
pub const CFG_STREAM: u8 = 3 << 5;
pub const CFG_ROOMY: u8 = 0x80;

/// Time steps of INJECT (argument `>> 4`), in ms.
pub const INJECT_STEPS: [u64; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 5, 10, 20, 100, 1_000, 10_000];
/// Time steps of ADVANCE, in ms (the largest is 2^30 ms, 12.4 days: below the 2^31 ms that
/// the wrapping clock can tell apart in one step).
pub const ADVANCE_STEPS: [u64; 16] = [
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    30_000,
    100_000,
    1 << 30,
];
/// Message sizes of PEER and LOCAL sends: around one segment, a few fragments, and both sides
/// of `max_message_size` (64 KiB; stream mode has no such limit).
pub const SIZES: [usize; 16] = [
    1, 5, 24, 100, 500, 1_000, 1_155, 1_156, 1_400, 2_000, 3_000, 4_000, 8_000, 16_000, 65_536,
    65_537,
];

const SERVER: SocketAddr = addr([10, 0, 0, 1], 4000);
const SERVER_ALT: SocketAddr = addr([10, 0, 0, 1], 4001);
const CLIENT: SocketAddr = addr([10, 0, 0, 2], 50000);
const CLIENT_ALT: SocketAddr = addr([10, 0, 0, 2], 50001);
const RAW_CONV: u32 = 0x1234_5678;

const fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]),
        port,
    ))
}

/// What an input's first byte selects.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub secure: bool,
    /// T is the client of the established session (P the server), else the server.
    pub t_is_client: bool,
    /// The server side waits for the application's answer to each token.
    pub require_auth: bool,
    /// The clock reading at which both endpoints start.
    pub epoch: Millis,
    pub session: SessionConfig,
    /// T's `max_connections`.
    pub max_connections: usize,
    /// Raw mode with kcp-go FEC ([`FUZZ_FEC`]) on both sides (`CFG_AUTH` in raw mode, where
    /// authentication has no meaning).
    pub fec: bool,
    /// Secure mode with FEC ([`FUZZ_FEC`]) sent by both sides (`CFG_EPOCH_0` in secure mode:
    /// the clock starts at 0 and both encoders run).
    pub secure_fec: bool,
}

/// FEC shard counts of a raw FEC input: small, so short inputs complete groups.
pub const FUZZ_FEC: FecConfig = FecConfig {
    data_shards: 3,
    parity_shards: 2,
};

impl Setup {
    pub fn from_byte(b: u8) -> Self {
        let mut session = match (b >> 5) & 3 {
            0 | 3 => Preset::Fast3.config(),
            1 => Preset::Game.config(),
            _ => Preset::Normal.config(),
        };
        session.stream = (b >> 5) & 3 == 3;
        Self {
            secure: b & CFG_SECURE != 0,
            t_is_client: b & CFG_T_CLIENT != 0,
            require_auth: b & CFG_AUTH != 0,
            epoch: match (b >> 3) & 3 {
                0 => 1_000,
                1 => 0x8000_0000 - 3_000,
                2 => 0u32.wrapping_sub(3_000),
                _ => 0,
            },
            session,
            max_connections: if b & CFG_ROOMY != 0 { 32 } else { 4 },
            fec: b & CFG_SECURE == 0 && b & CFG_AUTH != 0,
            secure_fec: b & CFG_SECURE != 0 && (b >> 3) & 3 == 3,
        }
    }
}

/// What one datagram did, as the endpoint's counters and effects show it. Exactly one applies
/// to every datagram; the last eight have no per-datagram counter of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `datagrams_accepted`.
    Accepted,
    /// `dropped[..]` (any trigger; a refused HELLO may also have been answered).
    Dropped,
    /// `late_after_close`.
    LateAfterClose,
    /// Server: a HELLO without a cookie, answered with a COOKIE (`cookies_sent`).
    CookieSent,
    /// Server: a HELLO with a valid cookie opened a session and its ACCEPT (`passive_opens`).
    Opened,
    /// Server: a HELLO with a valid cookie became an auth request (`auth_requests`).
    AuthRequested,
    /// Server: a HELLO for a session that exists, answered with its ACCEPT again (only
    /// `hellos_received` counts it).
    AcceptRepeated,
    /// Server: a HELLO for an auth request still waiting for the application (only
    /// `hellos_received` counts it; nothing is sent).
    AwaitingAuth,
    /// Client: a COOKIE for our handshake, answered with a HELLO (no counter).
    ClientCookie,
    /// Client: an ACCEPT for our handshake; the connection is established (no counter).
    ClientAccept,
    /// Client: a REJECT for our handshake (`failed`).
    ClientReject,
    /// Raw mode with FEC: a parity shard kept by a session's decoder (`fec.parity_shards`;
    /// what it rebuilt is counted as `fec.recovered` or, refused by the guard, as a drop).
    FecParity,
}

impl Outcome {
    fn counted(self) -> bool {
        matches!(self, Self::Accepted | Self::Dropped | Self::LateAfterClose)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    events: usize,
    security: usize,
    accepted: usize,
    established: usize,
    connect_failed: usize,
    auth_requests: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    T,
    P,
}

struct Side {
    ep: Endpoint,
    addr: SocketAddr,
    handles: Vec<ConnectionHandle>,
    /// Auth requests waiting for an answer (T; P answers its own at once).
    auth: Vec<u64>,
    /// Nonces of HELLOs that became auth requests.
    auth_nonces: Vec<[u8; 16]>,
    /// Datagrams whose outcome has no counter of its own ([`Outcome::counted`] false).
    answered: u64,
    /// Auth requests answered "accept" but refused because the limits filled meanwhile: the
    /// endpoint counts each in `dropped[over_limit]` although its HELLO was already counted as
    /// an auth request (an accounting quirk reported in docs/security.md).
    answer_drops: u64,
    /// Messages delivered by `recv`.
    received: u64,
    /// Unreliable datagrams taken since the last look: (connection, channel, payload).
    datagrams_now: Vec<(ConnectionHandle, u8, Vec<u8>)>,
}

impl Side {
    fn new(ep: Endpoint, addr: SocketAddr) -> Self {
        Self {
            ep,
            addr,
            handles: Vec::new(),
            auth: Vec::new(),
            auth_nonces: Vec::new(),
            answered: 0,
            answer_drops: 0,
            received: 0,
            datagrams_now: Vec::new(),
        }
    }

    /// Drains both event queues, reading every readable message; P answers auth requests at
    /// once (tokens other than `deny` are accepted).
    fn drain(&mut self, who: Who, seen: &mut Seen) {
        loop {
            let mut answers = Vec::new();
            while let Some(event) = self.ep.poll_event() {
                seen.events += 1;
                match event {
                    EndpointEvent::Accepted { handle, .. } => {
                        seen.accepted += 1;
                        self.handles.push(handle);
                    }
                    EndpointEvent::Readable { handle } => self.read_all(handle),
                    EndpointEvent::Established { .. } => seen.established += 1,
                    EndpointEvent::ConnectFailed { handle, .. } => {
                        seen.connect_failed += 1;
                        self.handles.retain(|&h| h != handle);
                    }
                    EndpointEvent::AuthRequest { id, token, .. } => {
                        seen.auth_requests += 1;
                        match who {
                            Who::T => self.auth.push(id),
                            Who::P => answers.push((id, &*token != b"deny")),
                        }
                    }
                    EndpointEvent::Closed { handle, .. } => {
                        self.handles.retain(|&h| h != handle);
                    }
                }
            }
            if answers.is_empty() {
                break;
            }
            for (id, accept) in answers {
                assert!(self.resolve(id, accept), "fresh auth request unknown");
            }
        }
        while self.ep.poll_security_event().is_some() {
            seen.security += 1;
        }
        let now = &mut self.datagrams_now;
        self.ep.take_datagrams(|handle, channel, payload| {
            now.push((handle, channel, payload.to_vec()));
            true
        });
        let stats = self.ep.stats();
        assert_eq!(
            stats.events_lost, 0,
            "security events lost between two drains"
        );
    }

    /// Answers an auth request, noting a refusal the endpoint counts as a dropped datagram.
    fn resolve(&mut self, id: u64, accept: bool) -> bool {
        let before = self.ep.stats().dropped;
        let known = self.ep.resolve_auth(id, accept);
        let after = self.ep.stats().dropped;
        let over_limit = EndpointStats::trigger_index(DropTrigger::OverLimit);
        for (i, (a, b)) in before.iter().zip(after.iter()).enumerate() {
            let expected = u64::from(i == over_limit && (b - a) == 1 && accept);
            assert_eq!(
                b - a,
                expected,
                "an auth answer counted drops {before:?} -> {after:?}"
            );
            self.answer_drops += expected;
        }
        known
    }

    fn read_all(&mut self, handle: ConnectionHandle) {
        let session = self.ep.config().session;
        while let Some(size) = self.ep.peek_size(handle) {
            // Stream mode has no message limit: a chunk is bounded by what the guard lets
            // reassemble.
            let bound = if session.stream {
                session.max_fragments() * session.receive_mss()
            } else {
                session.max_message_size
            };
            assert!(
                size <= bound,
                "message of {size} bytes delivered (limit {bound})"
            );
            let mut buf = vec![0u8; size];
            let n = self.ep.recv(handle, &mut buf).expect("peeked message");
            assert!(n <= size);
            self.received += 1;
        }
        let _ = self.ep.recv(handle, &mut []);
    }
}

/// A session the harness can speak for P in: its conv, and in secure mode P's handle, whose
/// endpoint seals for the harness (`seal_for_tests`: the keys never leave it).
#[derive(Clone)]
struct Known {
    conv: u32,
    p_handle: Option<ConnectionHandle>,
    next_pn: u64,
}

/// One datagram on the simulated wire.
struct Wire {
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

pub struct Harness {
    pub setup: Setup,
    t: Side,
    p: Side,
    /// Extended virtual time since the start; the endpoints read `epoch + now` (wrapping).
    now: u64,
    to_p: Vec<Wire>,
    to_t: Vec<Wire>,
    known: Vec<Known>,
    /// Datagrams P delivered to T (through PUMP), newest last.
    replay: Vec<Vec<u8>>,
    p_connects: usize,
    t_connects: usize,
    /// When set, every operation that reaches T is appended here, encoded as an input, so a
    /// scenario can be saved as a seed that replays exactly what T saw.
    trace: Option<Vec<u8>>,
    /// Datagrams injected into T while tracing, each with the trace length just after it (for
    /// the seed generator).
    pub injected: Vec<(usize, Vec<u8>)>,
    /// DATAGRAM bodies (flags, channel, payload) the harness sealed, by (conv, packet number):
    /// which ones are sequenced, and what a delivered one may be (a number sealed twice, by
    /// the "repeated" packet number, has two).
    sealed_dgrams: std::collections::HashMap<(u32, u64), Vec<Vec<u8>>>,
    /// Secure mode: the packet numbers sealed with P's key for T, by conv (by the harness, and
    /// P's own datagrams once delivered to T or lost on the wire).
    sealed_pns: std::collections::HashMap<u32, std::collections::HashSet<u64>>,
    /// Secure mode: the packet numbers T certainly opened (an authentic datagram T accepted,
    /// or dropped as replayed or by the guard after opening it), by conv. A datagram FEC
    /// rebuilds and T accepts must be one of `sealed_pns` not in here.
    opened_pns: std::collections::HashMap<u32, std::collections::HashSet<u64>>,
    /// Secure mode: sessions in which T opened a datagram the harness did not see sealed (an
    /// INJECT of one recorded in an earlier run, as the seeds' traces hold): the harness does
    /// not know every number P sealed there, so the checks that rely on it are skipped.
    foreign_convs: std::collections::HashSet<u32>,
    /// The FEC receiver of each session as first seen (T: true), which must never change.
    fec_footprints: std::collections::HashMap<(bool, ConnectionHandle), Footprint>,
    /// Datagrams T delivered: (connection, packet number).
    dgram_delivered: std::collections::HashSet<(ConnectionHandle, u64)>,
    /// Per (connection, channel): the packet number of the last sequenced datagram delivered.
    dgram_newest: std::collections::HashMap<(ConnectionHandle, u8), u64>,
}

// `..EndpointConfig::default()` keeps the harness compiling when a field is added.
#[allow(clippy::needless_update)]
/// The static key of the serving side (fixed, like every secret here, so runs repeat).
fn fuzz_server_key() -> kcpwatch_proto::secure::StaticKey {
    // Made once: its public half is a scalar multiplication, and every input builds four
    // endpoint configurations.
    static KEY: std::sync::OnceLock<kcpwatch_proto::secure::StaticKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| kcpwatch_proto::secure::StaticKey::from_private([0x5E; 32]))
        .clone()
}

fn endpoint_config(setup: &Setup, server: bool, t: bool) -> EndpointConfig {
    let mut config = endpoint_config_without_fec(setup, server, t);
    config.fec = (setup.fec || setup.secure_fec).then_some(FUZZ_FEC);
    config
}

fn endpoint_config_without_fec(setup: &Setup, server: bool, t: bool) -> EndpointConfig {
    EndpointConfig {
        session: setup.session,
        accept_inbound: server,
        max_connections: if t { setup.max_connections } else { 64 },
        rng_seed: if t { 0x7e57 } else { 0x9ee7 },
        unix_ms_at_zero: 1_700_000_000_000,
        event_level: Some(Severity::Debug),
        sample_burst: 4,
        sample_window_ms: 1_000,
        mode: if setup.secure {
            Mode::Secure
        } else {
            Mode::Raw
        },
        secret: if t { [0x54; 32] } else { [0x50; 32] },
        // One server static key for whichever side serves; the client pins it.
        server_keys: vec![fuzz_server_key()],
        server_key: Some(*fuzz_server_key().public()),
        // Ephemerals from a fixed seed too, so a recorded secure conversation replays.
        test_ephemeral_seed: Some(if t { [0x45; 32] } else { [0x46; 32] }),
        limits: Limits {
            max_per_ip: 3,
            max_per_prefix: 6,
            handshakes_per_ip: 5,
            handshake_burst_per_ip: 10,
            handshakes_global: 50,
            handshake_burst_global: 100,
        },
        cookie_slot_ms: 10_000,
        handshake_timeout_ms: 10_000,
        require_auth: setup.require_auth && server,
        auth_timeout_ms: 5_000,
        max_pending_auth: 2,
        keepalive_ms: None,
        // The detectors see every datagram too: thresholds low enough for short inputs to
        // fire them, a small table (eviction; and cheap to create once per input), and on T
        // enforcement, so refused sources are part of the accounting.
        detectors: DetectorConfig {
            table_capacity: 16,
            update_interval_ms: 2_000,
            handshake_flood_source: Threshold {
                threshold: 10,
                window_ms: 10_000,
            },
            handshake_flood_global: Threshold {
                threshold: 20,
                window_ms: 10_000,
            },
            failed_handshakes_source: Threshold {
                threshold: 3,
                window_ms: 60_000,
            },
            conv_scan_source: Threshold {
                threshold: 4,
                window_ms: 60_000,
            },
            invalid_burst: Threshold {
                threshold: 8,
                window_ms: 10_000,
            },
            dead_link_burst: Threshold {
                threshold: 2,
                window_ms: 60_000,
            },
            error_rate_min_attempts: 4,
            churn_source: Threshold {
                threshold: 4,
                window_ms: 60_000,
            },
            per_ip_cap: Threshold {
                threshold: 2,
                window_ms: 60_000,
            },
            decrypt_failed_source: Threshold {
                threshold: 3,
                window_ms: 10_000,
            },
            refuse_ms: if t { 5_000 } else { 0 },
            ..DetectorConfig::default()
        },
        ..EndpointConfig::default()
    }
}

fn take_u8(input: &mut &[u8]) -> u8 {
    match input.split_first() {
        Some((&b, rest)) => {
            *input = rest;
            b
        }
        None => 0,
    }
}

fn take_data<'a>(input: &mut &'a [u8]) -> &'a [u8] {
    let len = usize::from(u16::from_le_bytes([take_u8(input), take_u8(input)]));
    let len = len.min(input.len());
    let (data, rest) = input.split_at(len);
    *input = rest;
    data
}

/// Runs one input and checks every invariant; panics on a violation.
pub fn run(data: &[u8]) {
    run_for_stats(data);
}

/// [`run`], returning T's counters as they were when the input ended (before the final
/// quiet spell).
pub fn run_for_stats(data: &[u8]) -> Option<EndpointStats> {
    let (&config, mut ops) = data.split_first()?;
    let mut h = Harness::new(Setup::from_byte(config));
    let mut count = 0;
    while !ops.is_empty() && count < MAX_OPS {
        count += 1;
        h.op(&mut ops);
    }
    let stats = h.t.ep.stats().clone();
    h.finish();
    Some(stats)
}

impl Harness {
    /// T and P with one established session (and a message each way).
    pub fn new(setup: Setup) -> Self {
        let (t_addr, p_addr) = if setup.t_is_client {
            (CLIENT, SERVER)
        } else {
            (SERVER, CLIENT)
        };
        let t = Endpoint::new(
            endpoint_config(&setup, !setup.t_is_client, true),
            setup.epoch,
        )
        .expect("T config");
        let p = Endpoint::new(
            endpoint_config(&setup, setup.t_is_client, false),
            setup.epoch,
        )
        .expect("P config");
        let mut h = Self {
            setup,
            t: Side::new(t, t_addr),
            p: Side::new(p, p_addr),
            now: 0,
            to_p: Vec::new(),
            to_t: Vec::new(),
            known: Vec::new(),
            replay: Vec::new(),
            p_connects: 0,
            t_connects: 0,
            trace: None,
            injected: Vec::new(),
            sealed_dgrams: Default::default(),
            sealed_pns: Default::default(),
            opened_pns: Default::default(),
            foreign_convs: Default::default(),
            fec_footprints: Default::default(),
            dgram_delivered: Default::default(),
            dgram_newest: Default::default(),
        };
        if !setup.secure {
            h.known.push(Known {
                conv: RAW_CONV,
                p_handle: None,
                next_pn: 0,
            });
        }
        let client = if setup.t_is_client { Who::T } else { Who::P };
        let (client_side, server_addr) = match client {
            Who::T => (&mut h.t, SERVER),
            Who::P => (&mut h.p, SERVER),
        };
        let now = setup.epoch;
        let conn = if setup.secure {
            client_side
                .ep
                .connect_secure(now, server_addr, CLIENT, b"token", None)
        } else {
            client_side
                .ep
                .connect(now, server_addr, CLIENT, RAW_CONV, None)
        }
        .expect("setup connect");
        client_side.handles.push(conn);
        client_side
            .ep
            .send(now, conn, b"hello")
            .expect("queue hello");
        h.tick(client);
        // The server answers its auth request (if any) as soon as it appears.
        for _ in 0..200 {
            let server = if setup.t_is_client {
                &mut h.p
            } else {
                &mut h.t
            };
            if let Some(id) = server.auth.pop() {
                assert!(server.resolve(id, true));
            }
            if server.received > 0 {
                break;
            }
            h.pump(1, false);
        }
        let server = if setup.t_is_client { Who::P } else { Who::T };
        let side = h.side(server);
        assert!(
            side.received > 0,
            "setup: the server never got the first message"
        );
        let conn = side.handles[0];
        let now = h.clock();
        h.side(server)
            .ep
            .send(now, conn, b"welcome")
            .expect("queue welcome");
        h.tick(server);
        for _ in 0..200 {
            if h.side(client).received > 0 {
                break;
            }
            h.pump(1, false);
        }
        assert!(
            h.side(client).received > 0,
            "setup: the client never got the reply"
        );
        if setup.secure {
            assert!(!h.known.is_empty(), "setup: no ACCEPT seen");
        }
        h
    }

    fn side(&mut self, who: Who) -> &mut Side {
        match who {
            Who::T => &mut self.t,
            Who::P => &mut self.p,
        }
    }

    pub fn clock(&self) -> Millis {
        self.setup.epoch.wrapping_add(self.now as u32)
    }

    /// Starts recording what reaches T (see [`Harness::trace`]).
    pub fn start_trace(&mut self) {
        self.trace = Some(Vec::new());
        self.injected.clear();
    }

    /// The recorded operations (without the configuration byte).
    pub fn take_trace(&mut self) -> Vec<u8> {
        self.trace.take().unwrap_or_default()
    }

    fn record(&mut self, bytes: &[u8]) {
        if let Some(trace) = self.trace.as_mut() {
            trace.extend_from_slice(bytes);
        }
    }

    /// The addresses a datagram to T may come from.
    pub fn sources(&self) -> [SocketAddr; 8] {
        let p = self.p.addr;
        let mapped = match p {
            SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
            v6 => v6,
        };
        [
            p,
            SocketAddr::new(p.ip(), p.port() + 1),
            addr([10, 0, 0, 3], 7000),
            addr([192, 0, 2, 7], 9),
            SocketAddr::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7).into(), 9000),
            mapped,
            addr([0, 0, 0, 0], 0),
            self.t.addr,
        ]
    }

    fn t_locals(&self) -> [SocketAddr; 2] {
        if self.setup.t_is_client {
            [CLIENT, CLIENT_ALT]
        } else {
            [SERVER, SERVER_ALT]
        }
    }

    /// Whether a datagram to `to` reaches P (its address, or its NAT's other port).
    fn reaches_p(&self, to: SocketAddr) -> bool {
        let s = self.sources();
        to == s[0] || to == s[1] || to == s[5]
    }

    /// Applies one operation read from `input`.
    pub fn op(&mut self, input: &mut &[u8]) {
        let op = take_u8(input) % 8;
        let arg = take_u8(input);
        match op {
            OP_INJECT => {
                let data = take_data(input);
                let from = self.sources()[usize::from(arg & 7)];
                let local = self.t_locals()[usize::from((arg >> 3) & 1)];
                self.t_inject(from, local, arg >> 4, data, false);
            }
            OP_SEALED => {
                let data = take_data(input);
                let kind = [TYPE_DATA, TYPE_DATAGRAM, TYPE_KEEPALIVE, TYPE_DISCONNECT]
                    [usize::from((arg >> 2) & 3)];
                self.speak_for_p(arg & 3, kind, (arg >> 4) & 3, arg >> 6, data);
            }
            OP_ADVANCE => self.advance(arg & 15),
            OP_PUMP => self.pump(1 + usize::from(arg & 7), arg & 8 != 0),
            OP_PEER => self.peer(arg),
            OP_LOCAL => self.local(arg),
            OP_FORGE => {
                let fields = take_data(input);
                let conv = match self.known.len() {
                    0 => RAW_CONV,
                    n => self.known[usize::from(arg & 3) % n].conv,
                };
                if arg & 0x40 != 0 && self.setup.secure {
                    self.fec_op(arg, fields);
                    return;
                }
                if arg & 0x80 != 0 && self.setup.secure {
                    // A DATAGRAM: flags and channel as given (reserved bits included), then the
                    // payload.
                    self.speak_for_p(arg & 3, TYPE_DATAGRAM, (arg >> 2) & 3, arg >> 4, fields);
                    return;
                }
                let segment = self.forge(conv, fields);
                self.speak_for_p(arg & 3, TYPE_DATA, (arg >> 2) & 3, arg >> 4, &segment);
            }
            _ => {
                if self.replay.is_empty() {
                    return;
                }
                let index = usize::from(arg & 31) % self.replay.len();
                let bytes = self.replay[self.replay.len() - 1 - index].clone();
                let from = self.sources()[usize::from(arg >> 5)];
                let local = self.t_locals()[0];
                let moved = self.t.ep.stats().peer_address_changes;
                let outcome = self.t_inject(from, local, 0, &bytes, true);
                let session_kind = matches!(
                    bytes.first(),
                    Some(
                        &(TYPE_DATA
                            | TYPE_KEEPALIVE
                            | TYPE_DISCONNECT
                            | TYPE_DATAGRAM
                            | TYPE_FEC_PARITY)
                    )
                );
                if self.setup.secure && session_kind {
                    assert!(
                        matches!(outcome, Outcome::Dropped | Outcome::LateAfterClose),
                        "a replayed datagram was not refused: {outcome:?}"
                    );
                    assert_eq!(
                        self.t.ep.stats().peer_address_changes,
                        moved,
                        "a replayed datagram moved a session"
                    );
                }
            }
        }
    }

    /// One KCP segment built from structured fields: command, fragment, window, timestamp
    /// relative to T's clock, sn, una, payload.
    fn forge(&self, conv: u32, fields: &[u8]) -> Vec<u8> {
        let mut f = [0u8; 14];
        let n = fields.len().min(14);
        f[..n].copy_from_slice(&fields[..n]);
        let payload = &fields[n..];
        let cmd = if f[0] < 128 {
            [CMD_PUSH, CMD_ACK, CMD_WASK, CMD_WINS][usize::from(f[0] & 3)]
        } else {
            f[0]
        };
        let delta = i32::from_le_bytes([f[4], f[5], f[6], f[7]]);
        let mut out = Vec::new();
        SegmentHeader {
            conv,
            cmd,
            frg: f[1],
            wnd: u16::from_le_bytes([f[2], f[3]]),
            ts: self.clock().wrapping_add(delta as u32),
            sn: u32::from_le_bytes([f[8], f[9], f[10], f[11]]),
            una: u32::from(u16::from_le_bytes([f[12], f[13]])),
            len: payload.len() as u32,
        }
        .encode(&mut out);
        out.extend_from_slice(payload);
        out
    }

    /// Sends `body` to T as P would in a known session: sealed with P's key and a packet number
    /// (next, last used again, 64 ahead, 2^20 ahead) in secure mode, with the session's conv in
    /// raw mode.
    fn speak_for_p(&mut self, session: u8, kind: u8, pn_mode: u8, source: u8, body: &[u8]) {
        let from = self.sources()[[0, 1, 3, 4][usize::from(source & 3)]];
        let local = self.t_locals()[0];
        if self.known.is_empty() {
            self.t_inject(from, local, 0, body, false);
            return;
        }
        let index = usize::from(session) % self.known.len();
        let known = &mut self.known[index];
        let datagram = match known.p_handle {
            Some(handle) => {
                let pn = match pn_mode {
                    0 => known.next_pn,
                    // A DATAGRAM goes one further back: after a skip that number was never
                    // used, so it is authentic, fresh to the window and older than the last.
                    1 if kind == TYPE_DATAGRAM => known.next_pn.saturating_sub(2),
                    1 => known.next_pn.saturating_sub(1),
                    2 => known.next_pn + 64,
                    _ => known.next_pn + (1 << 20),
                };
                known.next_pn = known.next_pn.max(pn + 1);
                let conv = known.conv;
                self.seal_as_p(handle, conv, kind, pn, body)
                    .unwrap_or_else(|| body.to_vec())
            }
            None => {
                let mut out = body.to_vec();
                if out.len() >= 4 {
                    out[..4].copy_from_slice(&known.conv.to_le_bytes());
                }
                out
            }
        };
        self.t_inject(from, local, 0, &datagram, false);
    }

    /// `body` sealed by P's endpoint as a datagram of `kind` with packet number `pn` in P's
    /// session `handle` (conv `conv`), noted as sealed for T; `None` once P's session is gone
    /// (what it would have sent cannot be made any more).
    fn seal_as_p(
        &mut self,
        handle: ConnectionHandle,
        conv: u32,
        kind: u8,
        pn: u64,
        body: &[u8],
    ) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(body.len() + wire::SESSION_OVERHEAD);
        self.p.ep.seal_for_tests(handle, kind, pn, body, &mut out)?;
        self.sealed_pns.entry(conv).or_default().insert(pn);
        if kind == TYPE_DATAGRAM {
            self.sealed_dgrams
                .entry((conv, pn))
                .or_default()
                .push(body.to_vec());
        }
        Some(out)
    }

    /// An FEC_PARITY as someone without the key makes it: the session's conv and a packet
    /// number, the plaintext where the ciphertext goes and a tag of zeros.
    fn unsealed_parity(conv: u32, pn: u64, body: &[u8]) -> Vec<u8> {
        let mut out = vec![TYPE_FEC_PARITY];
        out.extend_from_slice(&conv.to_le_bytes());
        out.extend_from_slice(&pn.to_le_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&[0; 16]);
        out
    }

    /// The packet number P's next datagram in a known session gets for a packet number mode
    /// (next, last used again, 64 ahead, 2^20 ahead; see [`Harness::speak_for_p`]).
    fn pn_for(known: &Known, pn_mode: u8) -> u64 {
        match pn_mode & 3 {
            0 => known.next_pn,
            1 => known.next_pn.saturating_sub(1),
            2 => known.next_pn + 64,
            _ => known.next_pn + (1 << 20),
        }
    }

    /// Secure-mode FEC as P (FORGE with `arg & 0x40`; `docs/protocol.md`, FEC_PARITY): session
    /// `arg & 3`, packet number mode `arg >> 2 & 3`, from the peer or its NAT's other port
    /// (`arg >> 4 & 1`), the parity left unsealed (forged) with `arg & 0x20`; with
    /// `arg & 0x80` one parity whose header and bytes the input chooses
    /// ([`Harness::fec_chosen`]), else a group P really sends ([`Harness::fec_group`]).
    fn fec_op(&mut self, arg: u8, fields: &[u8]) {
        let from = self.sources()[usize::from((arg >> 4) & 1)];
        if self.known.is_empty() {
            return;
        }
        let index = usize::from(arg & 3) % self.known.len();
        let Some(handle) = self.known[index].p_handle else {
            return;
        };
        let forged = arg & 0x20 != 0;
        if arg & 0x80 != 0 {
            self.fec_chosen(index, handle, (arg >> 2) & 3, from, forged, fields);
        } else {
            self.fec_group(index, handle, (arg >> 2) & 3, from, forged, fields);
        }
    }

    /// One authentic FEC_PARITY (unless `forged`) whose plaintext the input chooses: the group's
    /// first packet number as a distance back from its own (`fields[0]`), the counts
    /// (`fields[1]`, `fields[2]`), the index (`fields[3]`), and the parity bytes (the rest). A
    /// parity that does not fit a group rebuilds garbage, which must fail the AEAD.
    fn fec_chosen(
        &mut self,
        index: usize,
        handle: ConnectionHandle,
        pn_mode: u8,
        from: SocketAddr,
        forged: bool,
        fields: &[u8],
    ) {
        let mut f = [0u8; 4];
        let n = fields.len().min(4);
        f[..n].copy_from_slice(&fields[..n]);
        let known = &mut self.known[index];
        let pn = Self::pn_for(known, pn_mode);
        known.next_pn = known.next_pn.max(pn + 1);
        let conv = known.conv;
        let mut body = ParityHeader {
            first: pn.wrapping_sub(u64::from(f[0])),
            data: f[1],
            parity: f[2],
            index: f[3],
        }
        .to_bytes()
        .to_vec();
        body.extend_from_slice(&fields[n..]);
        let datagram = if forged {
            Self::unsealed_parity(conv, pn, &body)
        } else {
            match self.seal_as_p(handle, conv, TYPE_FEC_PARITY, pn, &body) {
                Some(d) => d,
                None => return,
            }
        };
        let local = self.t_locals()[0];
        let outcome = self.t_inject(from, local, 0, &datagram, false);
        if forged {
            assert!(
                matches!(outcome, Outcome::Dropped | Outcome::LateAfterClose),
                "a forged FEC_PARITY was not refused: {outcome:?}"
            );
        }
    }

    /// A group P really sends in a known session: [`FUZZ_FEC`]'s data shards (unsequenced
    /// DATAGRAMs on channels 0x40.., with the input's bytes, at most 200, as payload) with
    /// consecutive packet numbers from the packet number mode's, and their parity as P's
    /// encoder computes it. `fields[0]`: data shards withheld (bits 0-2), parity shards sent
    /// (bits 3-4), parity first (bit 5), the withheld shards delivered at the end (bit 6),
    /// the parity's bytes garbled (bit 7: XORed with the payload, past each rebuilt shard's
    /// length and type; a wrong reconstruction that must fail the AEAD). With genuine parity
    /// and every shard accepted, each withheld shard is rebuilt (as many as parity came) and
    /// delivered once, with no FEC error; one arriving after its rebuild is a replay.
    fn fec_group(
        &mut self,
        index: usize,
        handle: ConnectionHandle,
        pn_mode: u8,
        from: SocketAddr,
        forged: bool,
        fields: &[u8],
    ) {
        let (d, p) = (
            usize::from(FUZZ_FEC.data_shards),
            usize::from(FUZZ_FEC.parity_shards),
        );
        let plan = fields.first().copied().unwrap_or(0);
        let payload = &fields[fields.len().min(1)..fields.len().min(201)];
        let garble = plan & 0x80 != 0;
        let known = &mut self.known[index];
        let first = Self::pn_for(known, pn_mode);
        known.next_pn = known.next_pn.max(first + (d + p) as u64);
        let conv = known.conv;
        let codec = std::sync::Arc::new(kcpwatch_proto::fec::Codec::new(FUZZ_FEC).expect("codec"));
        let mut encoder = kcpwatch_proto::secure::fec::Encoder::new(codec, self.setup.session.mtu);
        let mut data = Vec::new();
        let mut ready = 0;
        for i in 0..d {
            let mut body = vec![0, 0x40 | i as u8];
            body.extend_from_slice(payload);
            let pn = first + i as u64;
            let Some(sealed) = self.seal_as_p(handle, conv, TYPE_DATAGRAM, pn, &body) else {
                return;
            };
            ready = encoder.add(0, pn, &sealed);
            data.push(sealed);
        }
        let mut parity = Vec::new();
        for k in 0..ready {
            let mut body = encoder.parity_body(k).to_vec();
            if garble {
                // Past the header and the rebuilt shards' length and type: only their sealed
                // bytes come out wrong.
                for (j, b) in body
                    .iter_mut()
                    .skip(kcpwatch_proto::secure::fec::PARITY_HEADER_LEN + 3)
                    .enumerate()
                {
                    *b ^= payload
                        .get(j % payload.len().max(1))
                        .copied()
                        .unwrap_or(0x5a)
                        | 1;
                }
            }
            let pn = first + (d + k) as u64;
            let datagram = if forged {
                Self::unsealed_parity(conv, pn, &body)
            } else {
                match self.seal_as_p(handle, conv, TYPE_FEC_PARITY, pn, &body) {
                    Some(sealed) => sealed,
                    None => return,
                }
            };
            parity.push(datagram);
        }
        let withheld: Vec<usize> = (0..d).filter(|&i| plan & (1 << i) != 0).collect();
        let sent_parity: Vec<usize> = (0..parity.len())
            .filter(|&k| plan & (1 << (3 + k)) != 0)
            .collect();
        let mut order: Vec<&[u8]> = Vec::new();
        let data_sent = (0..d)
            .filter(|i| !withheld.contains(i))
            .map(|i| &data[i][..]);
        let parity_sent = sent_parity.iter().map(|&k| &parity[k][..]);
        if plan & 0x20 != 0 {
            order.extend(parity_sent.chain(data_sent));
        } else {
            order.extend(data_sent.chain(parity_sent));
        }
        let order: Vec<Vec<u8>> = order.into_iter().map(<[u8]>::to_vec).collect();
        // T's receiver for the session before: a genuine group is exact for one with our
        // counts, or for none yet if the parity comes first (a receiver keeps nothing before
        // the session's first parity).
        let t_handle = self
            .t
            .handles
            .iter()
            .copied()
            .find(|&h| self.t.ep.connection_info(h).is_some_and(|i| i.conv == conv));
        let counts_ours = match t_handle.map(|h| self.t.ep.fec_receiver_for_tests(h)) {
            Some(Some(f)) => (f.data, f.parity) == (d, p),
            Some(None) => plan & 0x20 != 0,
            None => false,
        };
        // The group's numbers are fresh to T as far as the harness knows (mode 1 starts at a
        // number already used, and recorded datagrams an input injects may have used them):
        // else a rebuild may be a replay, silently discarded.
        let fresh = pn_mode != 1
            && !self.foreign_convs.contains(&conv)
            && (first..first + (d + p) as u64)
                .all(|n| !self.opened_pns.get(&conv).is_some_and(|o| o.contains(&n)));
        let before = self.t.ep.stats().fec;
        let live = self.t.ep.connection_count();
        let local = self.t_locals()[0];
        let mut all_accepted = true;
        // What the forged parity datagrams alone did to the counters: the group's data shards
        // are genuine, and may complete an earlier group whose (authentic) parity does not fit
        // them, which is counted as an error of that parity, not of the forged one.
        let mut forged_moved = (0, 0, 0);
        for datagram in &order {
            let is_forged_parity = forged && parity.contains(datagram);
            let ahead = self.t.ep.stats().fec;
            all_accepted &= self.t_inject(from, local, 0, datagram, false) == Outcome::Accepted;
            if is_forged_parity {
                let behind = self.t.ep.stats().fec;
                forged_moved.0 += behind.parity_shards - ahead.parity_shards;
                forged_moved.1 += behind.recovered - ahead.recovered;
                forged_moved.2 += behind.errors - ahead.errors;
            }
        }
        let after = self.t.ep.stats().fec;
        if forged {
            assert_eq!(
                forged_moved,
                (0, 0, 0),
                "a forged FEC_PARITY moved the FEC counters (parity shards, recovered, errors)"
            );
        }
        let exact = all_accepted
            && fresh
            && counts_ours
            && !forged
            && !garble
            && parity.len() == p
            && live == self.t.ep.connection_count();
        let rebuilt = if withheld.len() <= sent_parity.len() {
            withheld.len() as u64
        } else {
            0
        };
        if exact {
            assert_eq!(
                (
                    after.recovered - before.recovered,
                    after.errors - before.errors
                ),
                (rebuilt, 0),
                "a genuine FEC group (withheld {withheld:?}, parity {sent_parity:?}) rebuilt \
                 a different number of datagrams, or counted an error: {before:?} -> {after:?}"
            );
        }
        // Garbled parity rebuilding one lost datagram alters its sealed bytes (each rebuilt
        // byte follows its parity byte), so it must fail the AEAD: refused, never accepted.
        let garbled_exact = all_accepted
            && fresh
            && counts_ours
            && !forged
            && garble
            && withheld.len() == 1
            && !sent_parity.is_empty()
            && live == self.t.ep.connection_count();
        if garbled_exact {
            // Refused at each parity that arrives for the group, never accepted.
            let refused = after.rebuilt_refused - before.rebuilt_refused;
            assert!(
                after.recovered == before.recovered
                    && refused >= 1
                    && refused <= sent_parity.len() as u64,
                "a datagram rebuilt from garbled parity was not refused by the AEAD: \
                 {before:?} -> {after:?}"
            );
        }
        if plan & 0x40 != 0 {
            for i in withheld {
                let outcome = self.t_inject(from, local, 0, &data[i].clone(), false);
                if exact && rebuilt > 0 {
                    assert_eq!(
                        outcome,
                        Outcome::Dropped,
                        "a datagram FEC rebuilt was accepted again when it arrived"
                    );
                }
            }
        }
    }

    /// Advances the clock and lets both endpoints run their timers.
    pub fn advance(&mut self, step: u8) {
        let step = step & 15;
        self.record(&[OP_ADVANCE, step]);
        self.now += ADVANCE_STEPS[usize::from(step)];
        self.tick(Who::T);
        self.tick(Who::P);
    }

    /// Advances by `ms` in ADVANCE steps (largest first).
    pub fn advance_ms(&mut self, mut ms: u64) {
        while ms > 0 {
            let step = (0..16)
                .rev()
                .find(|&i| ADVANCE_STEPS[i] <= ms)
                .expect("a 1 ms step");
            ms -= ADVANCE_STEPS[step];
            self.advance(step as u8);
        }
    }

    /// Delivers what is on the wire, `rounds` times, 10 ms apart. With `nat`, P's datagrams
    /// reach T from P's other port (a NAT that rebinds).
    pub fn pump(&mut self, rounds: usize, nat: bool) {
        for _ in 0..rounds {
            for w in std::mem::take(&mut self.to_p) {
                self.deliver(Who::P, w.from, w.to, &w.bytes);
            }
            self.tick(Who::P);
            for w in std::mem::take(&mut self.to_t) {
                let from = if nat { self.sources()[1] } else { w.from };
                if let Some((header, _)) = wire::parse_session(&w.bytes) {
                    if let Some(k) = self.known.iter_mut().find(|k| k.conv == header.conv) {
                        k.next_pn = k.next_pn.max(header.packet_number + 1);
                    }
                    if self.setup.secure {
                        self.sealed_pns
                            .entry(header.conv)
                            .or_default()
                            .insert(header.packet_number);
                    }
                }
                self.t_inject(from, w.to, 0, &w.bytes, false);
                if self.replay.len() >= REPLAY_RING {
                    self.replay.remove(0);
                }
                self.replay.push(w.bytes);
            }
            self.advance(3);
        }
    }

    /// A command on P: send, close, connect again, connect with a token P's server refuses.
    pub fn peer(&mut self, arg: u8) {
        let now = self.clock();
        let handle = (!self.p.handles.is_empty())
            .then(|| self.p.handles[usize::from((arg >> 2) & 3) % self.p.handles.len()]);
        match arg & 3 {
            0 => {
                if let Some(handle) = handle {
                    let data = vec![0x5a; SIZES[usize::from(arg >> 4)]];
                    let _ = self.p.ep.send(now, handle, &data);
                }
            }
            1 => {
                if let Some(handle) = handle {
                    self.p.ep.close(now, handle);
                }
            }
            _ => {
                if self.setup.t_is_client || self.p_connects >= MAX_EXTRA_CONNECTS {
                    return;
                }
                self.p_connects += 1;
                let token: &[u8] = if arg & 3 == 3 { b"deny" } else { b"again" };
                let conv = RAW_CONV + self.p_connects as u32;
                let result = if self.setup.secure {
                    self.p.ep.connect_secure(now, SERVER, CLIENT, token, None)
                } else {
                    self.p.ep.connect(now, SERVER, CLIENT, conv, None)
                };
                if let Ok(handle) = result {
                    self.p.handles.push(handle);
                    if !self.setup.secure && self.known.len() < MAX_KNOWN {
                        self.known.push(Known {
                            conv,
                            p_handle: None,
                            next_pn: 0,
                        });
                    }
                    let _ = self.p.ep.send(now, handle, b"again");
                }
            }
        }
        self.tick(Who::P);
    }

    /// A command on T: send, close, answer an auth request, or connect out.
    pub fn local(&mut self, arg: u8) {
        self.record(&[OP_LOCAL, arg]);
        let now = self.clock();
        let handle = (!self.t.handles.is_empty())
            .then(|| self.t.handles[usize::from((arg >> 2) & 3) % self.t.handles.len()]);
        match arg & 3 {
            0 => {
                if let Some(handle) = handle {
                    let data = vec![0xa5; SIZES[usize::from(arg >> 4)]];
                    let _ = self.t.ep.send(now, handle, &data);
                }
            }
            1 => {
                if let Some(handle) = handle {
                    self.t.ep.close(now, handle);
                }
            }
            2 => {
                if !self.t.auth.is_empty() {
                    let index = usize::from(arg >> 3) % self.t.auth.len();
                    let id = self.t.auth.remove(index);
                    // False when it already timed out: that is the endpoint's answer.
                    let _ = self.t.resolve(id, arg & 4 != 0);
                }
            }
            _ => {
                if self.t_connects < MAX_EXTRA_CONNECTS {
                    self.t_connects += 1;
                    let to = self.sources()[0];
                    let local = self.t_locals()[0];
                    let token: &[u8] = if arg & 4 != 0 { b"deny" } else { b"again" };
                    let conv = 0xC0DE_0000 + self.t_connects as u32;
                    let result = if self.setup.secure {
                        self.t.ep.connect_secure(now, to, local, token, None)
                    } else {
                        self.t.ep.connect(now, to, local, conv, None)
                    };
                    if let Ok(handle) = result {
                        self.t.handles.push(handle);
                        if !self.setup.secure && self.known.len() < MAX_KNOWN {
                            self.known.push(Known {
                                conv,
                                p_handle: None,
                                next_pn: 0,
                            });
                        }
                        let _ = self.t.ep.send(now, handle, b"out");
                    }
                }
            }
        }
        self.tick(Who::T);
    }

    /// A datagram reaches T; `step` (an INJECT time step) moves the clock first.
    fn t_inject(
        &mut self,
        from: SocketAddr,
        local: SocketAddr,
        step: u8,
        bytes: &[u8],
        replay: bool,
    ) -> Outcome {
        let step = step & 15;
        if self.trace.is_some() {
            let sources = self.sources();
            let source = sources.iter().position(|&s| s == from).unwrap_or(0) as u8;
            let alt = u8::from(local == self.t_locals()[1]);
            let len = bytes.len().min(usize::from(u16::MAX));
            self.record(&[OP_INJECT, source | (alt << 3) | (step << 4)]);
            self.record(&(len as u16).to_le_bytes());
            self.record(&bytes[..len]);
        }
        // As in the runtime's loop, a datagram that arrives after a deadline passed is handled
        // before the timers run (the fuzzer's first find: such a deadline used to be lost).
        self.now += INJECT_STEPS[usize::from(step)];
        if let Some(trace) = self.trace.as_ref() {
            self.injected.push((trace.len(), bytes.to_vec()));
        }
        let known_before = self.t.ep.connection_for_peer(from).is_some();
        let tx_before = self.t.ep.transmits().len();
        let outcome = self.deliver(Who::T, from, local, bytes);
        if self.setup.secure && !replay {
            // Learn the keys of a session T (as a client) accepted from the input.
            if outcome == Outcome::ClientAccept {
                self.learn_sessions();
            }
        }
        let known_after = self.t.ep.connection_for_peer(from).is_some();
        if self.setup.secure && !known_before && !known_after {
            let sent: usize = self
                .t
                .ep
                .transmits()
                .iter()
                .skip(tx_before)
                .filter(|t| t.destination == from)
                .map(|t| t.data.len())
                .sum();
            assert!(
                sent <= bytes.len(),
                "{sent} bytes sent to a source with no session that sent {} ({outcome:?})",
                bytes.len()
            );
        }
        self.tick(Who::T);
        outcome
    }

    /// Learns P's secure sessions with keys (an ACCEPT went by: one may have started), so
    /// SEALED and FORGE can speak for P in them.
    fn learn_sessions(&mut self) {
        let mut probe = Vec::new();
        for &handle in &self.p.handles {
            probe.clear();
            let Some(conv) = self
                .p
                .ep
                .seal_for_tests(handle, TYPE_KEEPALIVE, 0, b"", &mut probe)
            else {
                continue;
            };
            if self.known.iter().any(|k| k.conv == conv) {
                continue;
            }
            if self.known.len() >= MAX_KNOWN {
                self.known.remove(0);
            }
            self.known.push(Known {
                conv,
                p_handle: Some(handle),
                next_pn: 0,
            });
        }
    }

    /// Hands one datagram to an endpoint and checks what it did.
    fn deliver(&mut self, who: Who, from: SocketAddr, local: SocketAddr, bytes: &[u8]) -> Outcome {
        let now = self.clock();
        let secure = self.setup.secure;
        let side = self.side(who);
        let before = side.ep.stats().clone();
        let live_before = side.ep.connection_count();
        let tx_before = side.ep.transmits().len();
        side.ep.handle_datagram(now, from, local, bytes);
        let after = side.ep.stats().clone();
        let (new_tx, accept_repeated, hello_sent) = {
            let tx = side.ep.transmits();
            let new: Vec<_> = tx.iter().skip(tx_before).collect();
            let accept_repeated = new.len() == 1
                && new[0].destination == from
                && new[0].data.len() == ACCEPT_LEN
                && new[0].data[0] == TYPE_ACCEPT;
            let hello_sent = new.iter().any(|t| t.data.first() == Some(&TYPE_HELLO));
            (new.len(), accept_repeated, hello_sent)
        };
        let mut seen = Seen::default();
        side.drain(who, &mut seen);
        let live_after = side.ep.connection_count();

        let d = |f: fn(&EndpointStats) -> u64| f(&after) - f(&before);
        let accepted = d(|s| s.datagrams_accepted);
        // Datagrams FEC rebuilt and the guard refused are drops too, on top of the datagram
        // that completed their group.
        let refused = d(|s| s.fec.rebuilt_refused);
        let dropped = after.dropped_total() - before.dropped_total() - refused;
        let recovered = d(|s| s.fec.recovered);
        let rebuilt = recovered + refused;
        // Raw: one group's data shards. Secure: a rebuilt datagram may complete another group
        // the peer's parity named (at most one per group a receiver tracks).
        let rebuilt_bound = if secure {
            (kcpwatch_proto::secure::fec::RING_GROUPS as u64 + 1)
                * (kcpwatch_proto::secure::fec::MAX_SHARDS as u64 - 1)
        } else {
            u64::from(FUZZ_FEC.data_shards)
        };
        assert!(
            rebuilt <= rebuilt_bound,
            "one datagram rebuilt more than a group's data shards: {rebuilt}"
        );
        assert!(
            d(|s| s.fec.errors) >= refused,
            "a rebuilt datagram refused without an FEC error"
        );
        assert!(
            rebuilt == 0 || self_fec(&after),
            "FEC rebuilt datagrams while off"
        );
        let late = d(|s| s.late_after_close);
        let kind = bytes.first().copied();
        let session_kind = matches!(
            kind,
            Some(TYPE_DATA | TYPE_KEEPALIVE | TYPE_DISCONNECT | TYPE_DATAGRAM | TYPE_FEC_PARITY)
        );
        let datagrams_now = std::mem::take(&mut side.datagrams_now);
        // Secure FEC: a rebuilt datagram that opens counts as recovered and, processed as if it
        // had arrived (docs/protocol.md, FEC_PARITY), as accepted or dropped too.
        let secure_recovered = if secure { recovered } else { 0 };
        let trigger = |t: DropTrigger| {
            let i = EndpointStats::trigger_index(t);
            after.dropped[i] - before.dropped[i]
        };
        let ctx = || {
            format!(
                "{who:?} secure={secure} from={from} len={} kind={kind:?} delta={:?}",
                bytes.len(),
                StatsDelta::new(&before, &after)
            )
        };
        assert_eq!(after.datagrams_in, before.datagrams_in + 1);
        assert_eq!(after.panics, 0, "a session panicked: {}", ctx());
        assert!(
            accepted + dropped + late <= 1 + secure_recovered,
            "datagram counted twice: {}",
            ctx()
        );
        let fec_moved = d(|s| s.fec.parity_shards + s.fec.errors + s.fec.recovered) > 0;
        if secure {
            // Parity is counted once it opened, and nothing FEC does follows from a datagram
            // that did not open.
            assert!(
                d(|s| s.fec.parity_shards) == 0
                    || (d(|s| s.fec.parity_shards) == 1 && kind == Some(TYPE_FEC_PARITY)),
                "parity counted for a {kind:?}: {}",
                ctx()
            );
            // `too_short` is an unopened datagram only below the session framing: a datagram
            // of the framing's length or more that is too short opened (its body is empty or
            // too short for KCP or a DATAGRAM header), and an opened datagram feeds FEC.
            let too_short_unopened = if bytes.len() < kcpwatch_proto::secure::wire::SESSION_OVERHEAD
            {
                trigger(DropTrigger::TooShort)
            } else {
                0
            };
            let unopened = accepted == 0
                && late + trigger(DropTrigger::DecryptFailed) - refused
                    + trigger(DropTrigger::UnknownConnection)
                    + too_short_unopened
                    == 1;
            assert!(
                !(unopened && fec_moved),
                "FEC counters moved for a datagram that did not open: {} {:?} -> {:?}",
                ctx(),
                before.fec,
                after.fec
            );
            if kind == Some(TYPE_FEC_PARITY)
                && accepted == 0
                && trigger(DropTrigger::BadLength) == 1
            {
                assert!(
                    d(|s| s.fec.errors) >= 1,
                    "a malformed FEC_PARITY dropped without an FEC error: {}",
                    ctx()
                );
            }
        }
        let outcome = if secure_recovered > 0 {
            // The datagram that completed the group opened (nothing is rebuilt otherwise) and
            // was counted once, each rebuilt one once more.
            assert_eq!(
                accepted + dropped + late,
                1 + secure_recovered,
                "rebuilt datagrams not counted as received ones: {}",
                ctx()
            );
            assert!(session_kind && late == 0, "{}", ctx());
            if accepted > 0 {
                Outcome::Accepted
            } else {
                Outcome::Dropped
            }
        } else if accepted == 1 {
            // A RESET is accepted only when it echoes one of our own datagrams, and then it
            // ends that session.
            // (Raw datagrams have no type byte: an FEC seqid may start with any.)
            let reset = secure && kind == Some(TYPE_RESET);
            assert!(
                !secure || session_kind || reset,
                "accepted a non-session datagram"
            );
            if reset {
                assert!(
                    live_after < live_before,
                    "an accepted RESET ended no session: {}",
                    ctx()
                );
            }
            if !secure {
                // A datagram FEC rebuilt takes a received one's path: it may open one too.
                assert!(d(|s| s.passive_opens) <= 1 + rebuilt);
            }
            Outcome::Accepted
        } else if dropped == 1 {
            assert!(
                live_after <= live_before,
                "a dropped datagram opened a session: {}",
                ctx()
            );
            assert_eq!(d(|s| s.passive_opens), 0, "dropped but opened: {}", ctx());
            Outcome::Dropped
        } else if late == 1 {
            assert!(secure && session_kind, "late_after_close for {}", ctx());
            Outcome::LateAfterClose
        } else if d(|s| s.fec.parity_shards) == 1 {
            assert!(
                !secure && self_fec(&after),
                "a parity shard without FEC: {}",
                ctx()
            );
            assert_eq!(
                kcpwatch_proto::fec::parse(bytes),
                kcpwatch_proto::fec::Packet::Parity {
                    seqid: u32::from_le_bytes(bytes[..4].try_into().unwrap()),
                    shard: &bytes[6..],
                }
            );
            Outcome::FecParity
        } else if secure && d(|s| s.hellos_received) == 1 {
            if d(|s| s.cookies_sent) == 1 {
                assert_eq!(live_after, live_before, "a HELLO without cookie made state");
                assert_eq!(d(|s| s.bytes_sent_unvalidated), COOKIE_DATAGRAM_LEN as u64);
                Outcome::CookieSent
            } else if d(|s| s.passive_opens) == 1 {
                assert_eq!(seen.accepted, 1, "opened without Accepted: {}", ctx());
                Outcome::Opened
            } else if d(|s| s.auth_requests) == 1 {
                assert_eq!(seen.auth_requests, 1);
                let mut nonce = [0u8; 16];
                nonce.copy_from_slice(&bytes[4..20]);
                side.auth_nonces.push(nonce);
                Outcome::AuthRequested
            } else if accept_repeated {
                Outcome::AcceptRepeated
            } else if new_tx == 0
                && seen.events == 0
                && side.ep.pending_auth_count() > 0
                && bytes.len() >= 20
                && side.auth_nonces.iter().any(|n| n[..] == bytes[4..20])
            {
                Outcome::AwaitingAuth
            } else {
                panic!("accounting hole (HELLO): {}", ctx());
            }
        } else if secure && kind == Some(TYPE_COOKIE) && hello_sent {
            Outcome::ClientCookie
        } else if secure && kind == Some(TYPE_ACCEPT) && seen.established == 1 {
            Outcome::ClientAccept
        } else if secure
            && kind == Some(TYPE_REJECT)
            && d(|s| s.failed) == 1
            && seen.connect_failed == 1
        {
            Outcome::ClientReject
        } else {
            panic!("accounting hole: no counter and no effect: {}", ctx());
        };
        if !outcome.counted() {
            side.answered += 1;
        }
        let opened = accepted > 0
            || rebuilt > 0
            || trigger(DropTrigger::Replayed) + trigger(DropTrigger::GuardViolation) > 0;
        if secure && who == Who::T {
            self.check_rebuilt_sealed(bytes, recovered, opened);
        }
        self.check_datagrams(who, bytes, outcome, secure_recovered, &datagrams_now);
        assert!(
            d(|s| s.bytes_sent_unvalidated) <= bytes.len() as u64,
            "more bytes sent unvalidated than received: {}",
            ctx()
        );
        assert!(
            d(|s| s.bytes_received_unvalidated) == 0
                || d(|s| s.bytes_received_unvalidated) == bytes.len() as u64
        );
        outcome
    }

    /// Runs an endpoint's timers and flush, drains its events and moves its datagrams onto the
    /// wire; then checks its invariants.
    fn tick(&mut self, who: Who) {
        let now = self.clock();
        let secure = self.setup.secure;
        let side = self.side(who);
        let live_before = side.ep.connection_count();
        side.ep.handle_timeout(now);
        side.ep.flush(now);
        let mut seen = Seen::default();
        side.drain(who, &mut seen);
        assert!(
            side.datagrams_now.is_empty(),
            "{who:?}: a datagram delivered with none arriving"
        );
        // Answering auth requests (P) or reading messages may have queued more.
        side.ep.flush(now);
        // No busy loop: once the timers due now have run, the next one is in the future (a
        // deadline in the past would make the runtime's loop wake at once, again and again).
        if let Some(deadline) = side.ep.poll_timeout() {
            assert!(
                kcpwatch_proto::clock::diff(deadline, now) > 0,
                "{who:?}: poll_timeout {deadline} is not after now {now} after handle_timeout"
            );
        }
        let config = side.ep.config().clone();
        let max_live = live_before.max(side.ep.connection_count()) + 1;
        let mtu = config.session.mtu.max(36 + 1024);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for t in side.ep.transmits().iter() {
            assert!(
                t.data.len() <= mtu,
                "{who:?}: datagram of {} bytes (mtu {})",
                t.data.len(),
                config.session.mtu
            );
            bytes += t.data.len();
            out.push(Wire {
                from: if t.source.ip().is_unspecified() {
                    side.addr
                } else {
                    t.source
                },
                to: t.destination,
                bytes: t.data.to_vec(),
            });
        }
        side.ep.clear_transmits();
        let window = usize::from(
            config
                .session
                .send_window
                .max(config.session.receive_window),
        );
        let tx_limit = 64 + max_live * (2 * window + 16);
        assert!(
            out.len() <= tx_limit,
            "{who:?}: {} datagrams ({bytes} bytes) in one step, limit {tx_limit}",
            out.len()
        );
        let event_limit = 64 + 8 * config.max_connections;
        assert!(
            seen.security <= event_limit && seen.events <= event_limit,
            "{who:?}: {} security / {} endpoint events in one step",
            seen.security,
            seen.events
        );
        self.check(who);
        if secure {
            // A handshake may have finished on either side: P's sessions with keys.
            self.learn_sessions();
        }
        for w in out {
            match who {
                Who::T if self.reaches_p(w.to) && self.to_p.len() < WIRE_LIMIT => {
                    self.to_p.push(w);
                }
                Who::P if self.to_t.len() < WIRE_LIMIT => self.to_t.push(w),
                Who::P => {
                    // Lost on the way: sealed for T all the same (FEC may rebuild it).
                    if let Some((header, _)) = wire::parse_session(&w.bytes) {
                        self.sealed_pns
                            .entry(header.conv)
                            .or_default()
                            .insert(header.packet_number);
                    }
                }
                _ => {}
            }
        }
    }

    /// Secure mode, T: a datagram FEC rebuilt is accepted (`fec.recovered`) only if it
    /// authenticates, so only for a packet number P sealed and T never opened; then notes the
    /// arriving datagram's number as opened.
    fn check_rebuilt_sealed(&mut self, bytes: &[u8], recovered: u64, opened: bool) {
        let Some((header, _)) = wire::parse_session(bytes) else {
            assert_eq!(
                recovered, 0,
                "FEC rebuilt from a datagram that is no session's"
            );
            return;
        };
        let (conv, pn) = (header.conv, header.packet_number);
        if opened && !self.sealed_pns.get(&conv).is_some_and(|s| s.contains(&pn)) {
            self.foreign_convs.insert(conv);
        }
        if recovered > 0 && !self.foreign_convs.contains(&conv) {
            let opened_pns = self.opened_pns.get(&conv);
            let unopened = self.sealed_pns.get(&conv).map_or(0, |sealed| {
                sealed
                    .iter()
                    .filter(|&&p| p != pn && !opened_pns.is_some_and(|o| o.contains(&p)))
                    .count()
            }) as u64;
            assert!(
                recovered <= unopened,
                "{recovered} datagram(s) rebuilt by FEC accepted on conv {conv:#x}, but P sealed \
                 only {unopened} that T has not opened: a rebuilt datagram was applied without \
                 authenticating"
            );
        }
        if opened {
            self.opened_pns.entry(conv).or_default().insert(pn);
        }
    }

    /// What T handed to the application while one datagram arrived: at most one unreliable
    /// datagram for an accepted DATAGRAM, plus at most one for each datagram FEC rebuilt
    /// (`recovered`, secure mode); each one P sealed (same channel and payload), never the same
    /// packet number twice on a connection, and on a sequenced channel only newer than the
    /// last delivered there.
    fn check_datagrams(
        &mut self,
        who: Who,
        bytes: &[u8],
        outcome: Outcome,
        recovered: u64,
        delivered: &[(ConnectionHandle, u8, Vec<u8>)],
    ) {
        if delivered.is_empty() {
            return;
        }
        let arrived = outcome == Outcome::Accepted && bytes.first() == Some(&TYPE_DATAGRAM);
        assert!(
            delivered.len() as u64 <= u64::from(arrived) + recovered,
            "{who:?}: {} datagrams delivered for one {outcome:?} datagram of type {:?} \
             ({recovered} rebuilt)",
            delivered.len(),
            bytes.first()
        );
        let conv = u32::from_le_bytes(bytes[1..5].try_into().unwrap());
        let pn_in = u64::from_le_bytes(bytes[5..13].try_into().unwrap());
        if self.foreign_convs.contains(&conv) {
            // Not every datagram P sealed here is known: only the one that arrived is checked.
            if arrived {
                let handle = delivered[0].0;
                assert!(
                    self.dgram_delivered.insert((handle, pn_in)),
                    "{who:?}: datagram with packet number {pn_in} delivered twice"
                );
            }
            return;
        }
        for (i, (handle, channel, payload)) in delivered.iter().enumerate() {
            let (handle, channel) = (*handle, *channel);
            // The flags of what P sealed at `pn` with this channel and payload.
            let sealed_as = |pn: u64| {
                self.sealed_dgrams.get(&(conv, pn)).and_then(|bodies| {
                    bodies
                        .iter()
                        .find(|b| b.len() >= 2 && b[1] == channel && b[2..] == payload[..])
                        .map(|b| b[0])
                })
            };
            let sequenced =
                |flags: u8| flags & kcpwatch_proto::secure::datagram::FLAG_SEQUENCED != 0;
            let fits = |pn: u64| {
                sealed_as(pn).is_some_and(|f| {
                    !self.dgram_delivered.contains(&(handle, pn))
                        && (!sequenced(f)
                            || self
                                .dgram_newest
                                .get(&(handle, channel))
                                .map_or(true, |&n| pn > n))
                })
            };
            let pn = if i == 0 && arrived && (recovered == 0 || fits(pn_in)) {
                // The datagram that arrived is delivered first.
                assert!(
                    sealed_as(pn_in).is_some(),
                    "{who:?}: datagram {pn_in} delivered with a payload P never sealed"
                );
                pn_in
            } else {
                // One FEC rebuilt: any number P sealed with that content, not delivered yet.
                let mut candidates: Vec<u64> = self
                    .sealed_dgrams
                    .keys()
                    .filter(|&&(c, p)| c == conv && fits(p))
                    .map(|&(_, p)| p)
                    .collect();
                candidates.sort_unstable();
                *candidates.first().unwrap_or_else(|| {
                    panic!(
                        "{who:?}: a rebuilt datagram on channel {channel} ({} bytes) was \
                         delivered that P never sealed, or delivered twice",
                        payload.len()
                    )
                })
            };
            assert!(
                self.dgram_delivered.insert((handle, pn)),
                "{who:?}: datagram with packet number {pn} delivered twice"
            );
            if sealed_as(pn).is_some_and(sequenced) {
                if let Some(&newest) = self.dgram_newest.get(&(handle, channel)) {
                    assert!(
                        pn > newest,
                        "{who:?}: sequenced datagram {pn} delivered after {newest} on channel {channel}"
                    );
                }
                self.dgram_newest.insert((handle, channel), pn);
            }
        }
    }

    /// Invariants that hold between operations.
    fn check(&mut self, who: Who) {
        let secure = self.setup.secure;
        self.check_fec_memory(who);
        let side = self.side(who);
        let ep = &side.ep;
        let stats = ep.stats();
        let config = ep.config();
        // Secure mode counts a rebuilt datagram that opened as received too.
        let recovered_as_received = if secure { stats.fec.recovered } else { 0 };
        assert_eq!(
            stats.datagrams_in,
            stats.datagrams_accepted + stats.dropped_total()
                - stats.fec.rebuilt_refused
                - recovered_as_received
                - side.answer_drops
                + stats.late_after_close
                + side.answered,
            "{who:?}: accounting: {stats:?}, answered {}, answer drops {}",
            side.answered,
            side.answer_drops
        );
        assert_eq!(stats.panics, 0, "{who:?}: a session panicked");
        // Every live session was announced (Accepted, or our connect) and every ended one
        // reported (Closed, ConnectFailed).
        assert_eq!(
            side.handles.len(),
            ep.connection_count(),
            "{who:?}: live sessions and events disagree"
        );
        // Pending authentications hold a place: live + pending never exceed the limit.
        assert!(
            ep.connection_count() + ep.pending_auth_count() <= config.max_connections,
            "{who:?}: {} connections + {} pending, limit {}",
            ep.connection_count(),
            ep.pending_auth_count(),
            config.max_connections
        );
        assert!(ep.pending_auth_count() <= config.max_pending_auth);
        assert!(
            stats.bytes_sent_unvalidated <= stats.bytes_received_unvalidated,
            "{who:?}: amplification: {stats:?}"
        );
        for &handle in &side.handles {
            if let Some(waiting) = ep.waiting_bytes(handle) {
                assert!(waiting <= config.session.max_send_queue_bytes);
            }
        }
    }

    /// Secure mode: each session's FEC receiver is made once, at the peer's first authentic
    /// parity, sized by its counts and the agreed MTU, and never grows (docs/fec.md, "Memory"):
    /// at most `(4 × (data + parity) + data) × MTU` bytes, with at most 64 shards a group.
    fn check_fec_memory(&mut self, who: Who) {
        let mtu = self.setup.session.mtu;
        let side = match who {
            Who::T => &self.t,
            Who::P => &self.p,
        };
        for &handle in &side.handles {
            let Some(now) = side.ep.fec_receiver_for_tests(handle) else {
                continue;
            };
            let total = now.data + now.parity;
            assert!(
                now.data >= 1
                    && now.parity >= 1
                    && total <= kcpwatch_proto::secure::fec::MAX_SHARDS,
                "{who:?}: FEC receiver with {} + {} shards",
                now.data,
                now.parity
            );
            assert!(
                now.mtu <= mtu,
                "{who:?}: FEC receiver sized for MTU {}",
                now.mtu
            );
            let bound = (4 * total + now.data) * now.mtu;
            assert!(
                now.bytes <= bound,
                "{who:?}: FEC receiver holds {} bytes, bound {bound} ({now:?})",
                now.bytes
            );
            let first = *self
                .fec_footprints
                .entry((who == Who::T, handle))
                .or_insert(now);
            assert_eq!(
                now, first,
                "{who:?}: FEC receiver changed after it was made"
            );
        }
    }

    /// After the input: time runs on with no traffic; everything must be reclaimed.
    fn finish(&mut self) {
        for _ in 0..4 {
            self.now += 60_000;
            self.tick(Who::T);
        }
        let ep = &mut self.t.ep;
        assert_eq!(
            ep.connection_count(),
            0,
            "sessions outlived their idle timeout"
        );
        assert_eq!(ep.pending_auth_count(), 0, "auth requests never expired");
        assert_eq!(ep.poll_timeout(), None, "a timer is still armed");
    }
}

/// Whether the endpoint these stats are from runs FEC.
fn self_fec(stats: &EndpointStats) -> bool {
    stats.fec.enabled
}

/// The nonzero differences between two snapshots, for failure messages.
struct StatsDelta(Vec<(&'static str, u64)>);

impl StatsDelta {
    fn new(a: &EndpointStats, b: &EndpointStats) -> Self {
        type Counter = fn(&EndpointStats) -> u64;
        let fields: [(&'static str, Counter); 12] = [
            ("accepted", |s| s.datagrams_accepted),
            ("dropped", |s| s.dropped_total()),
            ("late", |s| s.late_after_close),
            ("hellos", |s| s.hellos_received),
            ("cookies", |s| s.cookies_sent),
            ("rejects", |s| s.rejects_sent),
            ("auth", |s| s.auth_requests),
            ("passive", |s| s.passive_opens),
            ("failed", |s| s.failed),
            ("closed", |s| s.closed),
            ("moved", |s| s.peer_address_changes),
            ("panics", |s| s.panics),
        ];
        let mut moved: Vec<(&'static str, u64)> = fields
            .iter()
            .map(|&(name, f)| (name, f(b) - f(a)))
            .filter(|&(_, v)| v != 0)
            .collect();
        // Which drop triggers moved, so a failure says why the datagram was dropped.
        moved.extend(
            DropTrigger::ALL
                .iter()
                .map(|&t| {
                    let i = EndpointStats::trigger_index(t);
                    (t.as_str(), b.dropped[i] - a.dropped[i])
                })
                .filter(|&(_, v)| v != 0),
        );
        Self(moved)
    }
}

impl std::fmt::Debug for StatsDelta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.iter().copied()).finish()
    }
}

// ---------------------------------------------------------------------------------------------
// The seed corpus.

impl Harness {
    /// Injects `bytes` into T from source `source` (index into [`Harness::sources`]).
    pub fn inject(&mut self, source: u8, bytes: &[u8]) -> Outcome {
        let from = self.sources()[usize::from(source & 7)];
        let local = self.t_locals()[0];
        self.t_inject(from, local, 0, bytes, false)
    }

    /// Sends a KCP datagram to T as P in the established session (sealed with the next packet
    /// number in secure mode).
    pub fn as_peer(&mut self, kcp: &[u8]) {
        self.speak_for_p(0, TYPE_DATA, 0, 0, kcp);
    }

    /// The KCP conv of the established session.
    pub fn session_conv(&self) -> u32 {
        self.known[0].conv
    }

    /// The HELLO T most recently put on the wire to P, if any (for building replies to it).
    pub fn last_hello_to_p(&self) -> Option<Vec<u8>> {
        self.to_p
            .iter()
            .rev()
            .find(|w| w.bytes.first() == Some(&TYPE_HELLO))
            .map(|w| w.bytes.clone())
    }
}

/// The configurations the seed corpus covers, with the name each seed file starts with.
pub const SEED_CONFIGS: &[(&str, u8)] = &[
    ("secure-server", CFG_SECURE),
    ("secure-client", CFG_SECURE | CFG_T_CLIENT),
    ("raw-server", 0),
    ("raw-client", CFG_T_CLIENT),
    ("raw-server-fec", CFG_AUTH),
    ("raw-client-fec", CFG_T_CLIENT | CFG_AUTH),
    ("secure-server-auth", CFG_SECURE | CFG_AUTH),
    ("secure-client-auth", CFG_SECURE | CFG_T_CLIENT | CFG_AUTH),
    ("secure-server-game", CFG_SECURE | CFG_GAME | CFG_ROOMY),
    ("raw-server-stream", CFG_STREAM | CFG_ROOMY),
    (
        "secure-client-normal",
        CFG_SECURE | CFG_T_CLIENT | CFG_NORMAL,
    ),
    ("secure-server-wrap31", CFG_SECURE | CFG_EPOCH_2_31),
    ("raw-server-wrap32", CFG_EPOCH_2_32),
    ("raw-client-wrap31", CFG_T_CLIENT | CFG_EPOCH_2_31),
    (
        "secure-client-wrap32",
        CFG_SECURE | CFG_T_CLIENT | CFG_EPOCH_2_32,
    ),
    // Secure mode with FEC sent by both sides (the clock starts at 0).
    ("secure-server-fec", CFG_SECURE | CFG_EPOCH_0),
    ("secure-client-fec", CFG_SECURE | CFG_T_CLIENT | CFG_EPOCH_0),
];

/// A real conversation: messages both ways (small and fragmented), NAT rebinding, a quiet spell
/// (keepalives), a second connection (answered or refused), closes from both ends and the
/// stragglers after them.
fn conversation(h: &mut Harness) {
    h.peer(0);
    h.local(0);
    h.pump(3, false);
    // A second connection; with authentication T's application accepts it.
    if h.setup.t_is_client {
        h.local(3);
    } else {
        h.peer(2);
    }
    h.pump(3, false);
    h.local(2 | 4);
    h.pump(4, false);
    // A third whose token is refused (by P's server; T's application refuses every other one).
    if h.setup.t_is_client {
        h.local(3 | 4);
    } else {
        h.peer(3);
    }
    h.pump(3, false);
    h.local(2);
    h.pump(4, false);
    // Bigger messages both ways, NAT rebinding, a quiet spell (keepalives).
    for size in [3u8, 8, 10] {
        h.peer(size << 4);
        h.pump(3, false);
    }
    h.local(3 << 4);
    h.local(9 << 4);
    h.pump(4, false);
    h.peer(2 << 4);
    h.pump(2, true);
    h.pump(2, false);
    h.advance_ms(8_000);
    h.pump(3, false);
    // Closes from both ends, then the stragglers.
    h.peer(1 | (1 << 2));
    h.pump(4, false);
    h.local(1);
    h.pump(4, false);
    h.advance_ms(2_000);
    h.pump(2, false);
}

fn kcp_label(d: &[u8]) -> String {
    let mut cmds = Vec::new();
    let mut rest = d;
    while let Some(h) = SegmentHeader::parse(rest) {
        cmds.push(match h.cmd {
            CMD_PUSH => "push",
            CMD_ACK => "ack",
            CMD_WASK => "wask",
            CMD_WINS => "wins",
            _ => "bad",
        });
        let skip = (24 + h.len as usize).min(rest.len());
        rest = &rest[skip..];
    }
    cmds.dedup();
    if cmds.is_empty() {
        "short".into()
    } else {
        cmds.join("+")
    }
}

fn label(secure: bool, d: &[u8]) -> String {
    if !secure {
        return match kcpwatch_proto::fec::parse(d) {
            kcpwatch_proto::fec::Packet::Data { kcp, .. } => format!("fec-data-{}", kcp_label(kcp)),
            kcpwatch_proto::fec::Packet::Parity { .. } => "fec-parity".into(),
            _ => kcp_label(d),
        };
    }
    match d.first() {
        Some(&TYPE_HELLO)
            if d.len() >= wire::HELLO_HEADER_LEN
                && d[wire::HELLO_PROLOGUE_LEN..wire::HELLO_HEADER_LEN]
                    .iter()
                    .any(|&b| b != 0) =>
        {
            "hello-cookie".into()
        }
        Some(&TYPE_HELLO) => "hello".into(),
        Some(&TYPE_COOKIE) => "cookie".into(),
        Some(&TYPE_ACCEPT) => "accept".into(),
        Some(&TYPE_REJECT) => "reject".into(),
        Some(&TYPE_KEEPALIVE) => "keepalive".into(),
        Some(&TYPE_DISCONNECT) => "disconnect".into(),
        Some(&TYPE_FEC_PARITY) => "fec-parity".into(),
        // Secure DATA is ciphertext: its KCP content has no label.
        Some(&TYPE_DATA) if secure => "data".into(),
        Some(&TYPE_DATA) => match wire::parse_session(d) {
            Some((_, sealed)) => format!("data-{}", kcp_label(sealed)),
            None => "data-short".into(),
        },
        _ => "other".into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn segment(
    conv: u32,
    cmd: u8,
    frg: u8,
    wnd: u16,
    ts: u32,
    sn: u32,
    una: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    SegmentHeader {
        conv,
        cmd,
        frg,
        wnd,
        ts,
        sn,
        una,
        len: payload.len() as u32,
    }
    .encode(&mut out);
    out.extend_from_slice(payload);
    out
}

/// defect cases A-L in docs/security.md against the established session (sent as P: sealed in secure mode),
/// each as the operations that lead to it. Cases G and H are the configurations whose clock
/// crosses 2^31 and 2^32 ms (`*-wrap31`, `*-wrap32`).
fn guard_cases(config: u8) -> Vec<(&'static str, Vec<u8>)> {
    type Case = fn(&mut Harness);
    let cases: [(&'static str, Case); 17] = [
        ("case-a-ack-ts-far", |h| {
            let (c, now) = (h.session_conv(), h.clock());
            h.as_peer(&segment(
                c,
                CMD_ACK,
                0,
                128,
                now.wrapping_add(0x8000_0000),
                0,
                0,
                &[],
            ));
            h.as_peer(&segment(
                c,
                CMD_ACK,
                0,
                128,
                now.wrapping_add(0x7FFF_0000),
                0,
                0,
                &[],
            ));
        }),
        ("case-b-ack-rtt-2-31", |h| {
            let (c, now) = (h.session_conv(), h.clock());
            h.local(0);
            h.as_peer(&segment(
                c,
                CMD_ACK,
                0,
                128,
                now.wrapping_sub(0x7FFF_FFF0),
                1,
                0,
                &[],
            ));
        }),
        ("case-c-ack-30s-old", |h| {
            for _ in 0..7 {
                h.peer(0);
                h.local(0);
                h.pump(2, false);
                h.advance_ms(5_000);
            }
            h.pump(2, false);
            h.local(3 << 4);
            let (c, now) = (h.session_conv(), h.clock());
            h.as_peer(&segment(
                c,
                CMD_ACK,
                0,
                128,
                now.wrapping_sub(30_000),
                8,
                0,
                &[],
            ));
            h.as_peer(&segment(
                c,
                CMD_ACK,
                0,
                128,
                now.wrapping_sub(30_000),
                3,
                0,
                &[],
            ));
        }),
        ("case-d-una-beyond-sent", |h| {
            h.local(0);
            h.local(0);
            let c = h.session_conv();
            h.as_peer(&segment(c, CMD_WINS, 0, 128, 0, 0, 100, &[]));
        }),
        ("case-e-zero-window", |h| {
            let c = h.session_conv();
            h.as_peer(&segment(c, CMD_WINS, 0, 0, 0, 0, 1, &[]));
            h.local(3 << 4);
            h.advance_ms(150);
            h.pump(3, false);
            h.advance_ms(1_000);
            h.pump(3, false);
        }),
        ("case-f-valid-then-invalid", |h| {
            let c = h.session_conv();
            let mut d = segment(c, CMD_PUSH, 0, 128, 0, 1, 1, b"first");
            d.extend_from_slice(&segment(c, 99, 0, 128, 0, 2, 1, b"x"));
            h.as_peer(&d);
        }),
        ("case-i-short", |h| {
            for len in 0..24 {
                h.as_peer(&vec![0xAB; len]);
            }
        }),
        ("case-i-empty", |h| {
            h.inject(0, &[]);
        }),
        ("case-j-len-max", |h| {
            let c = h.session_conv();
            let mut d = segment(c, CMD_PUSH, 0, 128, 0, 1, 1, b"abc");
            d[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
            h.as_peer(&d);
        }),
        ("case-k-frg-255", |h| {
            let c = h.session_conv();
            h.as_peer(&segment(c, CMD_PUSH, 255, 128, 0, 1, 1, b"x"));
        }),
        ("case-l-frg-beyond-window", |h| {
            let c = h.session_conv();
            h.as_peer(&segment(c, CMD_PUSH, 127, 128, 0, 1, 1, b"head"));
            h.as_peer(&segment(c, CMD_PUSH, 40, 128, 0, 1, 1, b"head"));
            h.peer(0);
            h.pump(3, false);
        }),
        ("wask", |h| {
            let (c, now) = (h.session_conv(), h.clock());
            h.as_peer(&segment(c, CMD_WASK, 0, 128, now, 0, 1, &[]));
            h.pump(2, false);
        }),
        ("push-ack-multi", |h| {
            let (c, now) = (h.session_conv(), h.clock());
            let mut d = segment(c, CMD_PUSH, 1, 128, now, 1, 1, b"two ");
            d.extend_from_slice(&segment(c, CMD_PUSH, 0, 128, now, 2, 1, b"fragments"));
            d.extend_from_slice(&segment(c, CMD_ACK, 0, 128, now, 0, 1, &[]));
            h.as_peer(&d);
            h.pump(2, false);
        }),
        ("aead-bit-flips", |h| {
            // A DATA P really sent, with one bit flipped in the type, the conv, the packet
            // number, the ciphertext and the tag, and with its whole ciphertext and tag
            // garbled, each from P's address; then the genuine one.
            h.peer(0);
            let Some(genuine) = h.queued_to_t(TYPE_DATA) else {
                return;
            };
            let n = genuine.len();
            for bit in [0, 8, 5 * 8 + 3, 13 * 8, (n - 16) * 8, n * 8 - 1] {
                let mut d = genuine.clone();
                d[bit / 8] ^= 1 << (bit % 8);
                h.inject(0, &d);
            }
            let mut forged = genuine.clone();
            for b in &mut forged[13..] {
                *b ^= 0x5a;
            }
            h.inject(3, &forged);
            h.pump(2, false);
        }),
        ("reset", |h| {
            // The server side forgets the session without its DISCONNECTs arriving (as after
            // a restart); after the 10 s in which stragglers are expected, the client's next
            // datagram is answered with a RESET that ends the client's session.
            if h.setup.t_is_client {
                h.peer(1);
            } else {
                h.local(1);
            }
            // The DISCONNECTs leave when the linger ends; they are lost, as is everything the
            // server side sends meanwhile.
            for ms in [4_000, 11_000] {
                h.advance_ms(ms);
                if h.setup.t_is_client {
                    h.to_t.clear();
                } else {
                    h.to_p.clear();
                }
            }
            if h.setup.t_is_client {
                h.local(0);
            } else {
                h.peer(0);
            }
            h.pump(3, false);
            // A RESET that echoes no datagram of ours, then one for another conv.
            let mut reset = [0u8; wire::RESET_LEN];
            reset[0] = TYPE_RESET;
            reset[1..5].copy_from_slice(&h.session_conv().to_le_bytes());
            h.inject(0, &reset);
            reset[1] ^= 0xff;
            h.inject(3, &reset);
        }),
        ("hello-refusals", |h| {
            // Server: a HELLO naming a key it does not hold (REJECT unknown_server_key), one of
            // another version (REJECT version_mismatch), then the genuine handshake whose
            // HELLO with cookie arrives first with its Noise message altered (its e, its
            // tag: decrypt_failed) and with its nonce changed (the cookie no longer verifies).
            // Client: an ACCEPT with one bit flipped in its Noise message (server_auth_failed),
            // then the genuine one, too late.
            if h.setup.t_is_client {
                h.local(3);
                let Some(accept) = h.step_until_t_gets(TYPE_ACCEPT) else {
                    return;
                };
                let mut forged = accept.clone();
                forged[40] ^= 0x04;
                h.inject(0, &forged);
                h.pump(2, false);
                return;
            }
            h.peer(2);
            let Some(hello) = h.queued_to_t(TYPE_HELLO) else {
                return;
            };
            // From elsewhere: the REJECTs carry P's nonce and would end P's attempt.
            let mut other_key = hello.clone();
            other_key[4] ^= 0xff;
            h.inject(3, &other_key);
            let mut other_version = hello.clone();
            other_version[1] = 3;
            h.inject(3, &other_version);
            h.pump(1, false);
            for w in std::mem::take(&mut h.to_p) {
                h.deliver(Who::P, w.from, w.to, &w.bytes);
            }
            h.tick(Who::P);
            let cookie_hello = h.to_t.iter().rev().find(|w| {
                w.bytes.first() == Some(&TYPE_HELLO)
                    && w.bytes.len() >= wire::HELLO_HEADER_LEN
                    && w.bytes[wire::HELLO_PROLOGUE_LEN..wire::HELLO_HEADER_LEN]
                        .iter()
                        .any(|&b| b != 0)
            });
            let Some(cookie_hello) = cookie_hello.map(|w| w.bytes.clone()) else {
                return;
            };
            let n = cookie_hello.len();
            for at in [wire::HELLO_HEADER_LEN + 5, n - 1, 10] {
                let mut d = cookie_hello.clone();
                d[at] ^= 0x01;
                h.inject(0, &d);
            }
            h.pump(3, false);
        }),
        ("reject-reasons", |h| {
            // Handshakes of T's own, each answered with one REJECT reason (or an unknown one).
            for code in [1u8, 2, 3, 4, 5, 9] {
                h.local(3);
                let Some(hello) = h.last_hello_to_p() else {
                    return;
                };
                let mut reject = [0u8; wire::REJECT_LEN];
                reject[..4].copy_from_slice(&[TYPE_REJECT, wire::VERSION, code, 0]);
                reject[4..20].copy_from_slice(&hello[8..24]);
                reject[20] = code;
                h.inject(0, &reject);
            }
        }),
    ];
    let mut out = Vec::new();
    for (name, case) in cases {
        if name == "reject-reasons" && config & CFG_SECURE == 0 {
            continue;
        }
        if SECURE_V2_CASES.contains(&name) && config & CFG_SECURE == 0 {
            continue;
        }
        let mut h = Harness::new(Setup::from_byte(config));
        h.start_trace();
        case(&mut h);
        out.push((name, [&[config][..], &h.take_trace()].concat()));
    }
    out
}

/// The guard cases for secure mode only.
const SECURE_V2_CASES: &[&str] = &["aead-bit-flips", "reset", "hello-refusals"];

impl Harness {
    /// The first datagram of type `kind` on the wire to T (not yet delivered).
    fn queued_to_t(&self, kind: u8) -> Option<Vec<u8>> {
        self.to_t
            .iter()
            .find(|w| w.bytes.first() == Some(&kind))
            .map(|w| w.bytes.clone())
    }

    /// Runs the wire a step at a time (P's side, then T's) until a datagram of type `kind` is
    /// on its way to T, and returns it, undelivered; at most 16 steps.
    fn step_until_t_gets(&mut self, kind: u8) -> Option<Vec<u8>> {
        for _ in 0..16 {
            for w in std::mem::take(&mut self.to_p) {
                self.deliver(Who::P, w.from, w.to, &w.bytes);
            }
            self.tick(Who::P);
            if let Some(d) = self.queued_to_t(kind) {
                return Some(d);
            }
            for w in std::mem::take(&mut self.to_t) {
                self.t_inject(w.from, w.to, 0, &w.bytes, false);
            }
            self.advance(3);
        }
        None
    }
}

/// The seed corpus: for each configuration of [`SEED_CONFIGS`], the whole conversation as T
/// saw it, and for each kind of datagram T received in it the conversation up to the first one
/// of that kind (so it arrives in the state it was made for); defect cases A-L in docs/security.md and a REJECT
/// of each reason for the four basic configurations.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for &(name, config) in SEED_CONFIGS {
        let mut h = Harness::new(Setup::from_byte(config));
        h.start_trace();
        conversation(&mut h);
        h.finish();
        let trace = h.take_trace();
        out.push((
            format!("{name}-conversation"),
            [&[config][..], &trace].concat(),
        ));
        let secure = config & CFG_SECURE != 0;
        let mut labels: Vec<String> = Vec::new();
        for (end, bytes) in &h.injected {
            let label = label(secure, bytes);
            if labels.contains(&label) {
                continue;
            }
            labels.push(label.clone());
            out.push((
                format!("{name}-{label}"),
                [&[config][..], &trace[..*end]].concat(),
            ));
        }
    }
    for &(name, config) in &SEED_CONFIGS[..4] {
        for (case, seed) in guard_cases(config) {
            out.push((format!("{name}-{case}"), seed));
        }
    }
    out.extend(fec_seeds());
    out.push(("secure-server-late-datagram".into(), late_datagram_input()));
    for (name, config) in [
        ("secure-server-datagrams", CFG_SECURE),
        ("secure-client-datagrams", CFG_SECURE | CFG_T_CLIENT),
    ] {
        out.push((name.into(), datagram_input(config)));
    }
    for (side, config) in [
        ("secure-server", CFG_SECURE),
        ("secure-client", CFG_SECURE | CFG_T_CLIENT),
    ] {
        out.push((
            format!("{side}-fec-parity-cases"),
            fec_input(config | CFG_EPOCH_0),
        ));
        out.push((
            format!("{side}-fec-rebuilt-aead"),
            fec_chosen_input(config, TYPE_DATAGRAM),
        ));
        out.push((
            format!("{side}-fec-rebuilt-not-a-shard"),
            fec_chosen_input(config, 0x99),
        ));
    }
    out
}

/// One operation with data, as an input holds it.
fn op_with_data(op: u8, arg: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![op, arg];
    out.extend_from_slice(&(data.len() as u16).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// FORGE's FEC operations (`Harness::fec_op`): a group P really sends (with the `plan` byte
/// of [`Harness::fec_group`]), or one parity with the given header fields and bytes.
fn fec_group_op(pn_mode: u8, forged: bool, plan: u8, payload: &[u8]) -> Vec<u8> {
    let arg = 0x40 | (pn_mode << 2) | if forged { 0x20 } else { 0 };
    op_with_data(OP_FORGE, arg, &[&[plan][..], payload].concat())
}

fn fec_chosen_op(pn_mode: u8, forged: bool, fields: [u8; 4], bytes: &[u8]) -> Vec<u8> {
    let arg = 0xC0 | (pn_mode << 2) | if forged { 0x20 } else { 0 };
    op_with_data(OP_FORGE, arg, &[&fields[..], bytes].concat())
}

/// Secure-mode FEC (`docs/protocol.md`, FEC_PARITY), with FEC sent by both sides: a group with
/// one datagram lost, rebuilt from its two parity (the lost one arriving afterwards is a
/// replay); one whose single parity comes first and rebuilds the group's first datagram; one
/// whose parity's bytes are garbled (authentic parity that does not fit: the rebuilt datagram
/// fails the AEAD); a parity whose index is past its count (malformed); then a forged
/// (unsealed) parity, alone and after a group.
pub fn fec_input(config: u8) -> Vec<u8> {
    [
        vec![config],
        fec_group_op(0, false, 0x02 | 0x18 | 0x40, b"lost and rebuilt"),
        fec_group_op(0, false, 0x01 | 0x08 | 0x20 | 0x40, b"parity first"),
        fec_group_op(0, false, 0x04 | 0x08 | 0x80, b"garbled parity"),
        fec_chosen_op(0, false, [5, 3, 2, 2], &[0x33; 40]),
        fec_chosen_op(0, true, [3, 3, 2, 0], &[0x33; 40]),
        fec_group_op(0, true, 0x02 | 0x18, b"forged parity"),
    ]
    .concat()
}

/// Authentic parity with header fields and bytes of the input's choosing, naming a group of
/// one data datagram P never sealed: the datagram rebuilt from it (the parity's bytes, a
/// shard whose length field fits and whose type byte is `kind`) must be refused: by the AEAD
/// for a session type, as not a shard a sender writes for any other.
pub fn fec_chosen_input(config: u8, kind: u8) -> Vec<u8> {
    let mut shard = vec![0x5c; 40];
    shard[..2].copy_from_slice(&50u16.to_le_bytes());
    shard[2] = kind;
    [vec![config], fec_chosen_op(2, false, [1, 1, 1, 0], &shard)].concat()
}

/// Unreliable datagrams P seals in the live session (`docs/protocol.md`, DATAGRAM), through
/// SEALED so the harness knows which are sequenced: channel 1 sequenced 64 packet numbers ahead
/// (N), one older on the same channel (N - 1: stale), an unsequenced one on channel 2 (N + 1),
/// the first number again (replayed), one with a reserved flag bit, one shorter than its
/// header, and an empty sequenced one on channel 1 (N + 4).
pub fn datagram_input(config: u8) -> Vec<u8> {
    // SEALED, session 0, kind 1 (DATAGRAM), packet number mode, source 0 (the peer).
    let sealed = |pn_mode: u8| [OP_SEALED, (1 << 2) | (pn_mode << 4)];
    let cases: [(u8, &[u8]); 7] = [
        (2, b"\x01\x01new position"),
        (1, b"\x01\x01stale position"),
        (0, b"\x00\x02input"),
        (1, b"\x01\x01new position again"),
        (0, b"\x80\x01reserved flag"),
        (0, b"\x01"),
        (0, b"\x01\x01"),
    ];
    let mut input = vec![config];
    for (pn_mode, body) in cases {
        input.extend_from_slice(&sealed(pn_mode));
        input.extend_from_slice(&(body.len() as u16).to_le_bytes());
        input.extend_from_slice(body);
    }
    input
}

/// Finding 1 of `docs/security.md` ("Fuzzing") in protocol version 2: a secure server, and 10 s
/// after the handshake one authentic DATA (a KCP WINS, window 0, una 1) from P's NAT's other
/// port, handled before T's due timers run. The committed `crash-lost-timer-after-late-datagram`
/// is the same input made with version 1, whose datagram no version 2 session accepts.
pub fn late_datagram_input() -> Vec<u8> {
    let config = CFG_SECURE;
    let h = Harness::new(Setup::from_byte(config));
    let known = &h.known[0];
    let handle = known.p_handle.expect("a secure session");
    let wins = segment(known.conv, CMD_WINS, 0, 0, 0, 0, 1, &[]);
    let mut datagram = Vec::new();
    h.p.ep
        .seal_for_tests(handle, TYPE_DATA, known.next_pn, &wins, &mut datagram)
        .expect("P's session");
    // Source 1 (P's other port), T's alternate address, a 10 s time step.
    let mut input = vec![config, OP_INJECT, 1 | (1 << 3) | (15 << 4)];
    input.extend_from_slice(&(datagram.len() as u16).to_le_bytes());
    input.extend_from_slice(&datagram);
    input
}

/// Raw FEC: the conversation, then a complete group P sent, moved to a fresh group and
/// delivered again without one data shard: once with its real parity (rebuilt and accepted),
/// once with garbled parity (rebuilt garbage the guard refuses, counted, never applied), and
/// once as parity alone from a source with no session.
fn fec_seeds() -> Vec<(String, Vec<u8>)> {
    let config = CFG_AUTH;
    let mut h = Harness::new(Setup::from_byte(config));
    h.start_trace();
    conversation(&mut h);
    let trace = h.take_trace();
    let total = u32::from(FUZZ_FEC.data_shards + FUZZ_FEC.parity_shards);
    let seqid = |d: &[u8]| u32::from_le_bytes(d[..4].try_into().unwrap());
    let shards: Vec<&Vec<u8>> = h.injected.iter().map(|(_, b)| b).collect();
    let (start, group) = shards
        .windows(total as usize)
        .enumerate()
        .find(|(_, w)| {
            seqid(w[0]) % total == 0
                && w.iter().enumerate().all(|(i, d)| {
                    d.len() >= 8
                        && seqid(d) == seqid(w[0]) + i as u32
                        && d[4] == [0xf2, 0xf1][usize::from(i < usize::from(FUZZ_FEC.data_shards))]
                })
        })
        .expect("a complete FEC group in the conversation");
    // The conversation up to that group: the session is live there.
    let prefix = &trace[..h.injected[start + total as usize - 1].0];
    let inject = |source: u8, d: &[u8]| {
        let mut op = vec![OP_INJECT, source];
        op.extend_from_slice(&(d.len() as u16).to_le_bytes());
        op.extend_from_slice(d);
        op
    };
    let moved = |garble: bool, to_group: u32, source: u8| -> Vec<u8> {
        let mut ops = Vec::new();
        for (i, d) in group.iter().enumerate() {
            // From a stranger, parity alone: the group's data shards (of any of the
            // conversation's connections, which share one FEC sequence) could open a session.
            if i == 1 || (source != 0 && i < usize::from(FUZZ_FEC.data_shards)) {
                continue;
            }
            let mut d = d.to_vec();
            d[..4].copy_from_slice(&(to_group * total + i as u32).to_le_bytes());
            if garble && i >= usize::from(FUZZ_FEC.data_shards) {
                for b in &mut d[8..14] {
                    *b ^= 0x5a;
                }
            }
            ops.extend(inject(source, &d));
        }
        ops
    };
    [
        ("rebuilt", moved(false, 1_000, 0)),
        ("forged-parity", moved(true, 1_000, 0)),
        ("stray-parity", moved(false, 1_000, 3)),
    ]
    .into_iter()
    .map(|(name, ops)| {
        (
            format!("raw-server-fec-{name}"),
            [&[config][..], prefix, &ops].concat(),
        )
    })
    .collect()
}
