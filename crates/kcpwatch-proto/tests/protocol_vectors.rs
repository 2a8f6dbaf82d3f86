//! The worked example of `docs/protocol.md`, pinned: another implementation checks itself
//! against these bytes, so they must never change for protocol version 1.

use kcpwatch_proto::secure::keys::{seal_into, Role, SessionKeys, TagKey};
use kcpwatch_proto::secure::wire::{self, Accept, TYPE_DATA, TYPE_DISCONNECT, TYPE_KEEPALIVE};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const SECRET: [u8; 32] = {
    let mut s = [0; 32];
    let mut i = 0;
    while i < 32 {
        s[i] = i as u8;
        i += 1;
    }
    s
};

#[test]
fn handshake_layouts() {
    let nonce: [u8; 16] = std::array::from_fn(|i| 0xA0 + i as u8);
    let cookie: [u8; 16] = std::array::from_fn(|i| 0xC0 + i as u8);
    let mut hello = Vec::new();
    wire::write_hello(&mut hello, &nonce, None, b"ticket");
    assert_eq!(hex(&hello), "01010600a0a1a2a3a4a5a6a7a8a9aaabacadaeaf000000000000000000000000000000007469636b657400000000000000000000000000000000000000000000");
    wire::write_hello(&mut hello, &nonce, Some(&cookie), b"ticket");
    assert_eq!(hex(&hello), "01010600a0a1a2a3a4a5a6a7a8a9aaabacadaeafc0c1c2c3c4c5c6c7c8c9cacbcccdcecf7469636b657400000000000000000000000000000000000000000000");
    let mut accept = [0; wire::ACCEPT_LEN];
    wire::write_accept(
        &mut accept,
        &Accept {
            nonce,
            conv: 0x1122_3344,
            secret: SECRET,
            idle_timeout_ms: 30_000,
        },
    );
    assert_eq!(hex(&accept), "03010000a0a1a2a3a4a5a6a7a8a9aaabacadaeaf44332211000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f30750000");
}

#[test]
fn keys_and_tags() {
    let master = TagKey::new(&SECRET);
    assert_eq!(
        hex(&master.mac(b"kcpwatch v1 client to server")),
        "048726debebcb88ec4f1b0458100d9538f68da603068ee764651a253c32200e8"
    );
    assert_eq!(
        hex(&master.mac(b"kcpwatch v1 server to client")),
        "a82aff3452ae38505ef2c063bd91024eb5a3715cd0154b8df0e4b938c661f27f"
    );
    let client = SessionKeys::derive(&SECRET, Role::Client);
    let server = SessionKeys::derive(&SECRET, Role::Server);
    let mut out = Vec::new();
    seal_into(&mut out, &client.send, TYPE_DATA, 0x1122_3344, 0, b"KCP");
    assert_eq!(
        hex(&out),
        "104433221100000000000000004b4350f2e95a2ef81c407f"
    );
    // The RESET a server without this session answers it with: its conv, packet number and
    // tag, echoed.
    let (header, _, tag) = wire::parse_session(&out).unwrap();
    let mut reset = [0; wire::RESET_LEN];
    wire::write_reset(&mut reset, &header, tag);
    assert_eq!(hex(&reset), "05443322110000000000000000f2e95a2ef81c407f");
    assert_eq!(wire::parse_reset(&reset), Some((0x1122_3344, 0, *tag)));
    out.clear();
    seal_into(&mut out, &server.send, TYPE_KEEPALIVE, 0x1122_3344, 7, b"");
    assert_eq!(hex(&out), "11443322110700000000000000e8ca5d535d9c949c");
    out.clear();
    seal_into(
        &mut out,
        &client.send,
        TYPE_DISCONNECT,
        0x1122_3344,
        8,
        &[4],
    );
    assert_eq!(hex(&out), "1244332211080000000000000004ccc10e479b1860df");
}
