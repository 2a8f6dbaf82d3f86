//! Computes the worked example of `docs/protocol.md` (secure mode version 2) from fixed keys,
//! ephemerals and inputs. Shared by the test that pins it (`tests/protocol_vectors.rs`) and the
//! example that prints it (`examples/protocol_vectors.rs`).

use kcpwatch_proto::secure::datagram::DatagramHeader;
use kcpwatch_proto::secure::keys::{seal_into, Role, SessionKeys};
use kcpwatch_proto::secure::wire::{
    self, AcceptPayload, DisconnectBody, KcpParams, RejectReason, TYPE_DATA, TYPE_DATAGRAM,
    TYPE_DISCONNECT, TYPE_KEEPALIVE,
};
use kcpwatch_proto::secure::{ClientNoise, ServerNoise, StaticKey};

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn counting(from: u8) -> [u8; 32] {
    std::array::from_fn(|i| from + i as u8)
}

/// (name, hex) pairs, in the order the document lists them.
pub fn vectors() -> Vec<(&'static str, String)> {
    let server = StaticKey::from_private(counting(0x00));
    let client_e = counting(0x20);
    let server_e = counting(0x40);
    let nonce: [u8; 16] = std::array::from_fn(|i| 0xA0 + i as u8);
    let cookie: [u8; 16] = std::array::from_fn(|i| 0xC0 + i as u8);
    let mut out = Vec::new();
    out.push(("server static public key", hex(server.public())));
    out.push(("key id", hex(&server.id())));

    // The client's and the server's KCP parameters: the `game` preset's.
    let params = KcpParams {
        mtu: 1200,
        receive_window: 256,
        max_message_size: 65_536,
        stream: false,
    };
    let mut hello = Vec::new();
    let client = ClientNoise::start_with_ephemeral_for_tests(
        server.public(),
        &nonce,
        params,
        b"ticket",
        &mut hello,
        &client_e,
    )
    .unwrap();
    out.push(("HELLO, zero cookie", hex(&hello)));
    let mut cookie_reply = [0; wire::COOKIE_DATAGRAM_LEN];
    wire::write_cookie(&mut cookie_reply, &nonce, &cookie);
    out.push(("COOKIE", hex(&cookie_reply)));
    wire::set_hello_cookie(&mut hello, &cookie);
    out.push(("HELLO, cookie c0 c1 .. cf", hex(&hello)));

    let parsed = wire::parse_hello(&hello).unwrap();
    let mut token = Vec::new();
    let (responder, stated) =
        ServerNoise::read_hello_with_ephemeral_for_tests(&server, &parsed, &mut token, &server_e)
            .unwrap();
    assert_eq!((token.as_slice(), stated), (&b"ticket"[..], params));
    let mut accept = [0; wire::ACCEPT_LEN];
    let payload = AcceptPayload {
        conv: 0x1122_3344,
        idle_timeout_ms: 30_000,
        params,
    };
    let split = responder.accept(&nonce, payload, &mut accept).unwrap();
    out.push((
        "ACCEPT (conv 0x11223344, idle timeout 30000 ms, mtu 1200, window 256, max message 65536, message mode)",
        hex(&accept),
    ));
    let (_, noise) = wire::parse_accept(&accept).unwrap();
    let (got, client_split) = client.finish(noise).unwrap();
    assert_eq!((got, client_split), (payload, split));
    out.push(("key_c2s", hex(&split.0)));
    out.push(("key_s2c", hex(&split.1)));

    let client_keys = SessionKeys::from_split(&split, Role::Client);
    let server_keys = SessionKeys::from_split(&split, Role::Server);
    let conv = payload.conv;
    let mut data = Vec::new();
    seal_into(&mut data, &client_keys.send, TYPE_DATA, conv, 0, b"KCP");
    out.push(("client DATA, packet number 0, body \"KCP\"", hex(&data)));
    let mut keepalive = Vec::new();
    seal_into(
        &mut keepalive,
        &server_keys.send,
        TYPE_KEEPALIVE,
        conv,
        7,
        b"",
    );
    out.push(("server KEEPALIVE, packet number 7", hex(&keepalive)));
    let mut body = [0; wire::DISCONNECT_BODY_MAX];
    let len = wire::write_disconnect_body(
        &mut body,
        &DisconnectBody {
            reason: 4,
            app_code: 4000,
            text: "bye",
        },
    );
    let mut disconnect = Vec::new();
    seal_into(
        &mut disconnect,
        &client_keys.send,
        TYPE_DISCONNECT,
        conv,
        8,
        &body[..len],
    );
    out.push((
        "client DISCONNECT, packet number 8, reason 4, code 4000, text \"bye\"",
        hex(&disconnect),
    ));
    let (header, _) = wire::parse_session(&data).unwrap();
    let mut reset = [0; wire::RESET_LEN];
    wire::write_reset(&mut reset, &header, &wire::reset_tag(&data).unwrap());
    out.push(("RESET answering the client DATA above", hex(&reset)));
    let mut reject = [0; wire::REJECT_LEN];
    let len = wire::write_reject(&mut reject, &nonce, RejectReason::AuthRejected, 7);
    out.push((
        "REJECT auth_rejected, application code 7",
        hex(&reject[..len]),
    ));
    let mut dgram_body = DatagramHeader {
        channel: 3,
        sequenced: true,
    }
    .to_bytes()
    .to_vec();
    dgram_body.extend_from_slice(b"pos");
    let mut dgram = Vec::new();
    seal_into(
        &mut dgram,
        &client_keys.send,
        TYPE_DATAGRAM,
        conv,
        9,
        &dgram_body,
    );
    out.push((
        "client DATAGRAM, packet number 9, sequenced, channel 3, payload \"pos\"",
        hex(&dgram),
    ));
    let mut dgram_body = DatagramHeader::default().to_bytes().to_vec();
    dgram_body.extend_from_slice(b"hi");
    let mut dgram = Vec::new();
    seal_into(
        &mut dgram,
        &server_keys.send,
        TYPE_DATAGRAM,
        conv,
        8,
        &dgram_body,
    );
    out.push((
        "server DATAGRAM, packet number 8, unsequenced, channel 0, payload \"hi\"",
        hex(&dgram),
    ));
    out
}
