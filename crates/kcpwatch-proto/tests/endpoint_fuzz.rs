//! The CI budget of the endpoint fuzz target (`fuzz/fuzz_targets/endpoint_input.rs`): the same
//! harness and invariants (`tests/fuzz_harness/mod.rs`), run on stable over the committed corpus
//! and a fixed number of deterministic mutations of it. The long run is cargo-fuzz's; see
//! `docs/security.md` ("Fuzzing").
//!
//! `KCPWATCH_FUZZ_ITERATIONS` sets the number of mutations (default 30,000: about 1 s in a debug build), and
//! `KCPWATCH_FUZZ_SEED` changes the mutation seed. Regenerate the seed files after a protocol
//! change with `KCPWATCH_WRITE_SEED_CORPUS=1 cargo test -p kcpwatch-proto --test endpoint_fuzz seed_files`.

mod common;
mod fuzz_harness;

use std::fs;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/endpoint_input")
}

/// Every committed corpus file, sorted by name so runs repeat.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(corpus_dir())
        .expect("the committed corpus")
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Runs one input; on a failure prints it so it can be replayed (and added to the corpus).
fn run_reporting(what: &str, input: &[u8]) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| fuzz_harness::run(input))) {
        let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
        eprintln!(
            "endpoint fuzz harness failed on {what}; input ({} bytes): {hex}",
            input.len()
        );
        resume_unwind(panic);
    }
}

#[test]
fn the_committed_corpus_runs_clean() {
    let corpus = corpus();
    assert!(corpus.len() >= 100, "corpus has {} files", corpus.len());
    for (name, input) in &corpus {
        run_reporting(name, input);
    }
}

/// The FEC seeds reach what they were made for: a group rebuilt through the guard, garbled
/// parity refused by the guard and counted, parity from a stranger dropped.
#[test]
fn the_fec_seeds_rebuild_refuse_and_drop() {
    let seeds: Vec<(String, Vec<u8>)> = fuzz_harness::seeds()
        .into_iter()
        .filter(|(name, _)| name.starts_with("raw-server-fec-"))
        .collect();
    let stats = |name: &str| {
        let (_, input) = seeds.iter().find(|(n, _)| n == name).expect(name);
        fuzz_harness::run_for_stats(input).unwrap()
    };
    let rebuilt = stats("raw-server-fec-rebuilt");
    assert!(rebuilt.fec.recovered >= 1, "{:?}", rebuilt.fec);
    assert_eq!(rebuilt.fec.rebuilt_refused, 0);
    let forged = stats("raw-server-fec-forged-parity");
    assert_eq!(
        forged.fec.recovered,
        rebuilt.fec.recovered - 1,
        "{:?}",
        forged.fec
    );
    assert_eq!(forged.fec.rebuilt_refused, 1, "{:?}", forged.fec);
    let stray = stats("raw-server-fec-stray-parity");
    assert_eq!(
        stray.fec.recovered,
        rebuilt.fec.recovered - 1,
        "{:?}",
        stray.fec
    );
    assert_eq!(stray.fec.parity_shards, rebuilt.fec.parity_shards - 2);
}

/// The datagram seeds reach what they were made for: two datagrams delivered, one stale, one
/// replayed, two malformed (and the harness's datagram invariants held on the way).
#[test]
fn the_datagram_seeds_reach_their_cases() {
    for config in [
        fuzz_harness::CFG_SECURE,
        fuzz_harness::CFG_SECURE | fuzz_harness::CFG_T_CLIENT,
    ] {
        let input = fuzz_harness::datagram_input(config);
        let stats = fuzz_harness::run_for_stats(&input).expect("stats");
        let u = stats.unreliable;
        assert_eq!(
            (u.received, u.dropped_stale, u.dropped_malformed),
            (3, 1, 2),
            "{config:#x}: {u:?}"
        );
        assert_eq!(stats.dropped_by(kcpwatch_proto::DropTrigger::Replayed), 1);
    }
}

/// The secure-mode seeds made for protocol v2 reach what they were made for: bit-flipped and
/// forged AEAD datagrams dropped as `decrypt_failed`, a RESET sent by the server and matched
/// by the client, HELLOs for an unknown key, of another version and with an altered Noise
/// message refused, and a forged ACCEPT failing the client's attempt.
#[test]
fn the_secure_v2_seeds_reach_their_cases() {
    use kcpwatch_proto::events::FailReason;
    use kcpwatch_proto::DropTrigger;
    let seeds = fuzz_harness::seeds();
    let stats = |name: &str| {
        let (_, input) = seeds.iter().find(|(n, _)| n == name).expect(name);
        fuzz_harness::run_for_stats(input).unwrap()
    };
    for side in ["secure-server", "secure-client"] {
        let s = stats(&format!("{side}-aead-bit-flips"));
        // Type, packet number, ciphertext, first and last tag bit, all garbled (the conv
        // flip names no session).
        assert_eq!(s.dropped_by(DropTrigger::DecryptFailed), 6, "{side}: {s:?}");
    }
    let server = stats("secure-server-reset");
    assert!(server.resets_sent >= 1, "{server:?}");
    let client = stats("secure-client-reset");
    assert_eq!(client.resets_received, 1, "{client:?}");

    let server = stats("secure-server-hello-refusals");
    assert_eq!(
        server.failed_by(FailReason::UnknownServerKey),
        1,
        "{server:?}"
    );
    assert_eq!(
        server.failed_by(FailReason::VersionMismatch),
        1,
        "{server:?}"
    );
    assert_eq!(server.failed_by(FailReason::DecryptFailed), 2, "{server:?}");
    assert!(
        server.failed_by(FailReason::InvalidCookie) >= 1,
        "{server:?}"
    );
    let client = stats("secure-client-hello-refusals");
    assert_eq!(
        client.failed_by(FailReason::ServerAuthFailed),
        1,
        "{client:?}"
    );
}

#[test]
fn the_seed_files_are_what_the_generator_writes() {
    if std::env::var_os("KCPWATCH_WRITE_SEED_CORPUS").is_some() {
        write_seed_corpus();
    }
    let dir = corpus_dir();
    for (name, seed) in fuzz_harness::seeds() {
        let path = dir.join(format!("seed-{name}"));
        let committed = fs::read(&path).unwrap_or_default();
        assert!(
            committed == seed,
            "{} differs from the generator's seed: regenerate with \
             `KCPWATCH_WRITE_SEED_CORPUS=1 cargo test -p kcpwatch-proto --test endpoint_fuzz seed_files`",
            path.display()
        );
    }
}

/// A small deterministic generator (SplitMix64), so the mutations repeat on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// libFuzzer-style mutations: bit flips, interesting bytes, inserted, erased and copied ranges,
/// splices with another input, a different configuration byte.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8]) {
    const INTERESTING: [u8; 8] = [0, 1, 0x7F, 0x80, 0xFF, 0x10, 0x11, 0x12];
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            3 => {
                let at = rng.below(len + 1);
                let bytes: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                input.splice(at..at, bytes);
            }
            4 if len > 1 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(32)).min(len);
                input.drain(at..end);
            }
            5 if len > 1 => {
                let from = rng.below(len);
                let end = (from + 1 + rng.below(64)).min(len);
                let chunk = input[from..end].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, chunk);
            }
            6 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = 1 + rng.below(other.len());
                input.truncate(cut);
                input.extend_from_slice(&other[from.min(other.len())..]);
            }
            7 if len > 0 => input[0] = rng.next() as u8,
            _ => input.push(rng.next() as u8),
        }
    }
}

#[test]
fn mutations_of_the_corpus_keep_every_invariant() {
    let iterations: usize = std::env::var("KCPWATCH_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let seed: u64 = std::env::var("KCPWATCH_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6b63_7077);
    let corpus = corpus();
    let mut rng = Rng(seed);
    for i in 0..iterations {
        let (name, base) = &corpus[rng.below(corpus.len())];
        let (_, other) = &corpus[rng.below(corpus.len())];
        let mut input = base.clone();
        // Big seeds are mostly cut short: the interesting part of a mutation is near it.
        if input.len() > 4_096 && rng.below(2) == 0 {
            input.truncate(256 + rng.below(4_096));
        }
        mutate(&mut rng, &mut input, other);
        run_reporting(&format!("mutation {i} of {name} (seed {seed})"), &input);
    }
}

// Regression tests for the fuzzer's finds (docs/security.md, "Fuzzing"); their minimised inputs
// are also in the corpus as `crash-*`.

/// A datagram handled after a session's keepalive deadline had passed (and before
/// `handle_timeout`) used to reschedule the session 2^32 ms ahead: its timer was lost, it never
/// idled out, and `poll_timeout` reported a time in the past.
#[test]
fn a_late_datagram_keeps_the_session_timer() {
    // Made with protocol version 1; still replayed, though its datagram no longer decrypts.
    let input = fs::read(corpus_dir().join("crash-lost-timer-after-late-datagram")).unwrap();
    fuzz_harness::run(&input);
    // The same case in version 2: the late DATA is authentic, and the session still ends by
    // its idle timeout when the input does (the invariant "state is reclaimed").
    let input = fuzz_harness::late_datagram_input();
    let stats = fuzz_harness::run_for_stats(&input).unwrap();
    let setup = fuzz_harness::run_for_stats(&input[..1]).unwrap();
    assert_eq!(
        stats.datagrams_accepted - setup.datagrams_accepted,
        1,
        "{stats:?}"
    );
}

/// `max_message_size` also bounds what the peer may send: the guard bounds each segment and the
/// fragment count, so 48 full fragments used to make a 66,048-byte message. Now it is never
/// delivered and the session closes as a protocol violation.
#[test]
fn a_message_beyond_max_message_size_is_never_delivered() {
    use common::{addr, Link, Pair, CLIENT};
    use kcpwatch_proto::segment::{SegmentHeader, CMD_PUSH};
    use kcpwatch_proto::{CloseReason, EndpointEvent, Preset, SessionConfig};

    let config = SessionConfig {
        idle_timeout_ms: 120_000,
        ..Preset::Fast3.config()
    };
    let mut pair = Pair::new(77, config, Link::clean());
    pair.establish();
    let conn = pair.server_conn.unwrap();
    let mss = config.mss();
    let fragments = 48u8;
    assert!(usize::from(fragments) * mss > config.max_message_size);
    for i in 0..fragments {
        let mut datagram = Vec::new();
        SegmentHeader {
            conv: 0x1234_5678,
            cmd: CMD_PUSH,
            frg: fragments - 1 - i,
            wnd: 128,
            ts: pair.clock(),
            sn: 1 + u32::from(i),
            una: 0,
            len: mss as u32,
        }
        .encode(&mut datagram);
        datagram.resize(24 + mss, 0x41);
        pair.inject_to_server(addr(CLIENT), &datagram);
    }
    assert_eq!(pair.server.peek_size(conn), None);
    assert!(pair.server_events.iter().any(|e| matches!(
        e,
        EndpointEvent::Closed { handle, reason: CloseReason::ProtocolViolation, .. } if *handle == conn
    )));
}

/// Replaces the `seed-*` files with what the generator writes now (after a protocol change).
fn write_seed_corpus() {
    let dir = corpus_dir();
    fs::create_dir_all(&dir).unwrap();
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
        {
            fs::remove_file(path).unwrap();
        }
    }
    for (name, seed) in fuzz_harness::seeds() {
        fs::write(dir.join(format!("seed-{name}")), seed).unwrap();
    }
}

/// Secure-mode FEC seeds reach their cases: datagrams rebuilt from genuine parity, a rebuilt
/// datagram refused by the AEAD (garbled parity; and parity bytes of the input's choosing), a
/// malformed parity, forged parity dropped before FEC sees it, and a rebuilt shard whose type
/// is no session datagram's discarded as an FEC error.
#[test]
fn the_secure_fec_seeds_reach_their_cases() {
    use kcpwatch_proto::DropTrigger;
    for config in [
        fuzz_harness::CFG_SECURE,
        fuzz_harness::CFG_SECURE | fuzz_harness::CFG_T_CLIENT,
    ] {
        let stats = |input: &[u8]| fuzz_harness::run_for_stats(input).expect("stats");
        let s = stats(&fuzz_harness::fec_input(config | fuzz_harness::CFG_EPOCH_0));
        let f = s.fec;
        // Two groups rebuilt (one datagram each), one garbled (refused by the AEAD), one
        // malformed parity; the forged ones never reach FEC.
        assert_eq!(f.recovered, 2, "{config:#x}: {f:?}");
        assert_eq!(f.rebuilt_refused, 1, "{config:#x}: {f:?}");
        assert_eq!(f.errors, 2, "{config:#x}: {f:?}");
        assert!(
            s.dropped_by(DropTrigger::BadLength) >= 1,
            "{config:#x}: {s:?}"
        );
        // The garbled group's rebuilt datagram, and the three forged parity.
        assert_eq!(
            s.dropped_by(DropTrigger::DecryptFailed),
            4,
            "{config:#x}: {s:?}"
        );
        // The two datagrams arriving after their rebuild.
        assert_eq!(s.dropped_by(DropTrigger::Replayed), 2, "{config:#x}: {s:?}");
        // Every datagram of the groups delivered once: 3 + 3, then 2 of the garbled group (its
        // third was never rebuilt) and 2 of the forged group's (its lost one stays lost).
        assert_eq!(s.unreliable.received, 10, "{config:#x}: {:?}", s.unreliable);

        let s = stats(&fuzz_harness::fec_chosen_input(
            config,
            kcpwatch_proto::secure::wire::TYPE_DATAGRAM,
        ));
        assert_eq!(
            (s.fec.recovered, s.fec.rebuilt_refused, s.fec.errors),
            (0, 1, 1),
            "{config:#x}: {:?}",
            s.fec
        );
        let s = stats(&fuzz_harness::fec_chosen_input(config, 0x99));
        assert_eq!(
            (s.fec.recovered, s.fec.rebuilt_refused, s.fec.errors),
            (0, 0, 1),
            "{config:#x}: {:?}",
            s.fec
        );
    }
}
