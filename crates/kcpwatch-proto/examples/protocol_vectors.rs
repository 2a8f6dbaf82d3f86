//! Prints the worked example of `docs/protocol.md` (§ "Test vectors"), so another
//! implementation can check its key derivation, tags and layouts byte for byte.
//! `tests/protocol_vectors.rs` pins the same values.

use kcpwatch_proto::secure::keys::{seal_into, Role, SessionKeys};
use kcpwatch_proto::secure::wire::{self, Accept, TYPE_DATA, TYPE_DISCONNECT, TYPE_KEEPALIVE};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn main() {
    let secret: [u8; 32] = std::array::from_fn(|i| i as u8);
    let nonce: [u8; 16] = std::array::from_fn(|i| 0xA0 + i as u8);
    let mut hello = Vec::new();
    wire::write_hello(&mut hello, &nonce, None, b"ticket");
    println!("hello (no cookie, token \"ticket\"): {}", hex(&hello));
    let cookie: [u8; 16] = std::array::from_fn(|i| 0xC0 + i as u8);
    wire::write_hello(&mut hello, &nonce, Some(&cookie), b"ticket");
    println!("hello (cookie c0..cf):              {}", hex(&hello));
    let mut accept = [0; wire::ACCEPT_LEN];
    wire::write_accept(
        &mut accept,
        &Accept {
            nonce,
            conv: 0x1122_3344,
            secret,
            idle_timeout_ms: 30_000,
        },
    );
    println!("accept:                             {}", hex(&accept));
    let client = SessionKeys::derive(&secret, Role::Client);
    let server = SessionKeys::derive(&secret, Role::Server);
    let master = kcpwatch_proto::secure::TagKey::new(&secret);
    println!(
        "key_c2s: {}",
        hex(&master.mac(b"kcpwatch v1 client to server"))
    );
    println!(
        "key_s2c: {}",
        hex(&master.mac(b"kcpwatch v1 server to client"))
    );
    let mut out = Vec::new();
    seal_into(&mut out, &client.send, TYPE_DATA, 0x1122_3344, 0, b"KCP");
    println!("client DATA pn 0 body \"KCP\": {}", hex(&out));
    let (header, _, tag) = wire::parse_session(&out).unwrap();
    let mut reset = [0; wire::RESET_LEN];
    wire::write_reset(&mut reset, &header, tag);
    println!("RESET answering it:          {}", hex(&reset));
    out.clear();
    seal_into(&mut out, &server.send, TYPE_KEEPALIVE, 0x1122_3344, 7, b"");
    println!("server KEEPALIVE pn 7:       {}", hex(&out));
    out.clear();
    seal_into(
        &mut out,
        &client.send,
        TYPE_DISCONNECT,
        0x1122_3344,
        8,
        &[4],
    );
    println!("client DISCONNECT pn 8 reason 4: {}", hex(&out));
}
