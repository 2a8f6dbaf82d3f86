//! Every waiting datagram carries the local address its session belongs to, so a server on a
//! wildcard address can answer from the address each peer talked to.

use std::net::SocketAddr;

use kcpwatch_proto::{Endpoint, EndpointConfig, EndpointEvent, Transmit};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The datagrams a fresh client produces for one message to `server`.
fn client_hello(client: SocketAddr, server: SocketAddr, conv: u32) -> Vec<Vec<u8>> {
    let config = EndpointConfig {
        accept_inbound: false,
        ..EndpointConfig::default()
    };
    let mut endpoint = Endpoint::new(config, 0).unwrap();
    let conn = endpoint.connect(0, server, client, conv, None).unwrap();
    endpoint.send(0, conn, b"hello").unwrap();
    endpoint.flush(0);
    let transmits = endpoint.transmits();
    assert!(!transmits.is_empty());
    transmits
        .iter()
        .map(|t| {
            assert_eq!(t.destination, server);
            assert_eq!(
                t.source, client,
                "a client's datagrams leave from its own address"
            );
            t.data.to_vec()
        })
        .collect()
}

#[test]
fn replies_leave_from_the_address_each_peer_talked_to() {
    let config = EndpointConfig {
        accept_inbound: true,
        ..EndpointConfig::default()
    };
    let mut server = Endpoint::new(config, 0).unwrap();
    // One socket bound to 0.0.0.0:4000, reached on two of the host's addresses.
    let peers = [
        (addr("192.0.2.7:5000"), addr("10.0.0.1:4000"), 1u32),
        (addr("198.51.100.9:6000"), addr("10.0.0.2:4000"), 2u32),
    ];
    for (peer, local, conv) in peers {
        for datagram in client_hello(peer, local, conv) {
            server.handle_datagram(0, peer, local, &datagram);
        }
    }
    let mut accepted = 0;
    while let Some(event) = server.poll_event() {
        if let EndpointEvent::Accepted { handle, .. } = event {
            accepted += 1;
            let info = server.connection_info(handle).unwrap();
            server.send(0, handle, b"reply").unwrap();
            let expected = peers.iter().find(|p| p.0 == info.remote).unwrap();
            assert_eq!(info.local, expected.1);
        }
    }
    assert_eq!(accepted, 2);
    server.flush(1);
    let transmits = server.transmits();
    let sent: Vec<Transmit<'_>> = transmits.iter().collect();
    for (peer, local, _) in peers {
        let to_peer: Vec<_> = sent.iter().filter(|t| t.destination == peer).collect();
        assert!(!to_peer.is_empty(), "nothing sent to {peer}");
        assert!(
            to_peer.iter().all(|t| t.source == local),
            "reply to {peer} not from {local}"
        );
    }
    assert_eq!(transmits.get(0), sent.first().copied());
    assert_eq!(transmits.get(sent.len()), None);
}
