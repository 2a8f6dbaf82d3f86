//! Property tests over the datagram path: arbitrary bytes, mutated real datagrams and forged
//! segments from many sources never panic the endpoint, never open more sessions than the
//! limit, and every datagram is either accepted or counted as dropped.

mod common;

use common::addr;
use kcpwatch_proto::segment::{SegmentHeader, CMD_ACK, CMD_PUSH, CMD_WASK, CMD_WINS};
use kcpwatch_proto::{Endpoint, EndpointConfig, EndpointEvent, Preset};
use proptest::prelude::*;
use std::net::SocketAddr;

fn endpoint(max_connections: usize) -> Endpoint {
    Endpoint::new(
        EndpointConfig {
            session: Preset::Game.config(),
            max_connections,
            // The connection cap is under test here, not the handshake rate that would
            // otherwise refuse most of a 10,000-source burst first.
            limits: kcpwatch_proto::limits::Limits {
                handshakes_global: u32::MAX / 1000,
                handshake_burst_global: u32::MAX / 1000,
                ..Default::default()
            },
            ..EndpointConfig::default()
        },
        0,
    )
    .unwrap()
}

fn segment_strategy() -> impl Strategy<Value = Vec<u8>> {
    (
        0u32..4,
        prop_oneof![
            Just(CMD_PUSH),
            Just(CMD_ACK),
            Just(CMD_WASK),
            Just(CMD_WINS),
            any::<u8>()
        ],
        any::<u8>(),
        any::<u16>(),
        any::<u32>(),
        prop_oneof![0u32..300, any::<u32>()],
        prop_oneof![0u32..300, any::<u32>()],
        prop::collection::vec(any::<u8>(), 0..64),
        prop_oneof![Just(None), any::<u32>().prop_map(Some)],
    )
        .prop_map(
            |(conv, cmd, frg, wnd, ts, sn, una, payload, len_override)| {
                let mut out = Vec::new();
                SegmentHeader {
                    conv,
                    cmd,
                    frg: frg % 4,
                    wnd,
                    ts,
                    sn,
                    una,
                    len: len_override.unwrap_or(payload.len() as u32),
                }
                .encode(&mut out);
                out.extend_from_slice(&payload);
                out
            },
        )
}

fn datagram_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        prop::collection::vec(segment_strategy(), 1..4).prop_map(|s| s.concat()),
        (
            prop::collection::vec(segment_strategy(), 1..3),
            any::<usize>()
        )
            .prop_map(|(s, cut)| {
                let d = s.concat();
                let cut = cut % (d.len() + 1);
                d[..cut].to_vec()
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_datagrams_never_panic_and_are_all_accounted_for(
        datagrams in prop::collection::vec((0u16..64, datagram_strategy(), 0u32..50), 1..60)
    ) {
        let mut ep = endpoint(8);
        let local = addr("10.0.0.1:4000");
        let mut now = 0u32;
        for (port, datagram, advance) in &datagrams {
            now = now.wrapping_add(*advance);
            let from = SocketAddr::from(([10, 0, 0, 2], 1000 + port));
            ep.handle_datagram(now, from, local, datagram);
            ep.handle_timeout(now);
            ep.flush(now);
            ep.clear_transmits();
            while let Some(e) = ep.poll_event() {
                if let EndpointEvent::Readable { handle } = e {
                    while let Some(size) = ep.peek_size(handle) {
                        let mut buf = vec![0; size];
                        prop_assert!(ep.recv(handle, &mut buf).is_some());
                    }
                }
            }
            prop_assert!(ep.connection_count() <= 8);
        }
        let stats = ep.stats();
        prop_assert_eq!(stats.datagrams_in, datagrams.len() as u64);
        prop_assert_eq!(stats.datagrams_accepted + stats.dropped_total(), stats.datagrams_in);
        prop_assert_eq!(stats.panics, 0);
    }
}

#[test]
fn a_flood_of_new_sources_is_capped_by_max_connections() {
    let mut ep = endpoint(100);
    let local = addr("10.0.0.1:4000");
    let mut hello = Vec::new();
    SegmentHeader {
        conv: 1,
        cmd: CMD_PUSH,
        frg: 0,
        wnd: 128,
        ts: 0,
        sn: 0,
        una: 0,
        len: 1,
    }
    .encode(&mut hello);
    hello.push(b'x');
    for i in 0..10_000u32 {
        let from = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 7000));
        ep.handle_datagram(i / 100, from, local, &hello);
        while ep.poll_event().is_some() {}
    }
    assert_eq!(ep.connection_count(), 100);
    assert_eq!(
        ep.stats()
            .dropped_by(kcpwatch_proto::DropTrigger::OverLimit),
        9_900
    );
}
