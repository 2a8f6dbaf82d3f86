//! The worked example of `docs/protocol.md` (secure mode version 2), pinned: another
//! implementation checks itself against these bytes (the Go client's `secure_test.go` does), so
//! they change only with the wire format (the HELLO and ACCEPT ones did when they began to carry
//! the MTU, and again with the receive window, message size and stream flag), and then with the Go client and `docs/protocol.md` in the same change.

#[path = "vectors/protocol_v2.rs"]
mod protocol_v2;

#[test]
fn the_documented_vectors_are_what_the_code_produces() {
    let pinned: &[(&str, &str)] = &[
        (r#"server static public key"#, "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f"),
        (r#"key id"#, "eedd883d"),
        (r#"HELLO, zero cookie"#, "01020100eedd883da0a1a2a3a4a5a6a7a8a9aaabacadaeaf00000000000000000000000000000000358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd1662548e635aedcf8e96273ac95df4d35da86101c310507621b189ace09aba77bd86"),
        (r#"COOKIE"#, "02020000a0a1a2a3a4a5a6a7a8a9aaabacadaeafc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"),
        (r#"HELLO, cookie c0 c1 .. cf"#, "01020100eedd883da0a1a2a3a4a5a6a7a8a9aaabacadaeafc0c1c2c3c4c5c6c7c8c9cacbcccdcecf358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd1662548e635aedcf8e96273ac95df4d35da86101c310507621b189ace09aba77bd86"),
        (r#"ACCEPT (conv 0x11223344, idle timeout 30000 ms, mtu 1200, window 256, max message 65536, message mode)"#, "03020100a0a1a2a3a4a5a6a7a8a9aaabacadaeaf79a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a0e142d2554cbb1d0f07a66317bbfa7fa305bdf6ef81d71cb6355fedb78d48d8058"),
        (r#"key_c2s"#, "bb74860fe000c03af83f8523bbf8c8959cebf3e12abf6cbfc74323b03d4de1ff"),
        (r#"key_s2c"#, "b67bf8f0ace9eae3a1da287d2bb4c15ec3550c0f81152c7097559db0f9d15347"),
        (r#"client DATA, packet number 0, body "KCP""#, "104433221100000000000000000e810470b0a77e4e409873909dbf20485916e6"),
        (r#"server KEEPALIVE, packet number 7"#, "1144332211070000000000000034906a1ffaa27613a3c5f07544cee375"),
        (r#"client DISCONNECT, packet number 8, reason 4, code 4000, text "bye""#, "12443322110800000000000000acc3ed2ae78b809d5a67a6159eb457b830b3b472a69f"),
        (r#"RESET answering the client DATA above"#, "0544332211000000000000000070b0a77e4e409873"),
        (r#"REJECT auth_rejected, application code 7"#, "04020200a0a1a2a3a4a5a6a7a8a9aaabacadaeaf0700"),
        (r#"client DATAGRAM, packet number 9, sequenced, channel 3, payload "pos""#, "13443322110900000000000000425cace38fcc6545d2624ef80cd52f866ba4a625e9"),
        (r#"server DATAGRAM, packet number 8, unsequenced, channel 0, payload "hi""#, "134433221108000000000000007484ebf2139a15d053f331c47fba2f94b5e31f11"),
    ];
    let got = protocol_v2::vectors();
    assert_eq!(got.len(), pinned.len());
    for ((name, value), (pinned_name, pinned_value)) in got.iter().zip(pinned) {
        assert_eq!((*name, value.as_str()), (*pinned_name, *pinned_value));
    }
}

#[test]
fn the_document_shows_the_same_vectors() {
    let doc = include_str!("../../../docs/protocol.md");
    for (name, value) in protocol_v2::vectors() {
        assert!(
            doc.contains(&format!("{name}:\n{value}")),
            "docs/protocol.md lacks {name}"
        );
    }
}
