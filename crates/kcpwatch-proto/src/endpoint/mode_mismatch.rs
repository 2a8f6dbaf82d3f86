//! Recognising the other mode's datagrams, so that a client in the wrong mode is named in the
//! server's records (rule `mode_mismatch`) instead of looking like a stale session or garbage.
//! Only datagrams the server refuses anyway are classified: a genuine raw opening whose conv
//! happens to start like a HELLO is still served (docs/security.md, "Mode mismatch").

use crate::secure::wire::{HELLO_MAX_LEN, HELLO_PROLOGUE_LEN, TYPE_HELLO};
use crate::segment::KCP_HEADER_LEN;
use crate::segment::{SegmentHeader, CMD_PUSH, CMD_WINS};

/// A secure-mode HELLO of any version, as a raw-mode server sees it: type 1, a non-zero
/// version, the reserved byte 0, at least the prologue (key id and nonce) and at most the
/// longest HELLO.
pub(super) fn secure_hello(datagram: &[u8]) -> bool {
    matches!(datagram, [TYPE_HELLO, version, _, 0, ..] if *version != 0)
        && (HELLO_PROLOGUE_LEN..=HELLO_MAX_LEN).contains(&datagram.len())
}

/// A plain KCP datagram, as a secure-mode server sees it: whole segments of one conv, each
/// with a KCP command, whose lengths add up to exactly the datagram. Encrypted secure-mode
/// datagrams almost never do (a command byte and every length field would have to line up).
pub(super) fn raw_kcp(datagram: &[u8]) -> bool {
    let Some(first) = SegmentHeader::parse(datagram) else {
        return false;
    };
    let mut rest = datagram;
    // A datagram holds at most one segment per header's worth of bytes: bounded.
    while !rest.is_empty() {
        let Some(h) = SegmentHeader::parse(rest) else {
            return false;
        };
        if h.conv != first.conv || !(CMD_PUSH..=CMD_WINS).contains(&h.cmd) {
            return false;
        }
        let Some(end) = usize::try_from(h.len)
            .ok()
            .and_then(|len| len.checked_add(KCP_HEADER_LEN))
            .filter(|&end| end <= rest.len())
        else {
            return false;
        };
        rest = &rest[end..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(conv: u32, cmd: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        SegmentHeader {
            conv,
            cmd,
            frg: 0,
            wnd: 128,
            ts: 1,
            sn: 0,
            una: 0,
            len: payload.len() as u32,
        }
        .encode(&mut out);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn kcp_datagrams_are_recognised_and_others_are_not() {
        let mut two = segment(0x1234_5678, CMD_PUSH, b"hello");
        two.extend(segment(0x1234_5678, 82, b""));
        assert!(raw_kcp(&two));
        assert!(raw_kcp(&segment(7, CMD_WINS, b"")));
        // A trailing byte, a short length, another conv, a command KCP does not have.
        let mut trailing = two.clone();
        trailing.push(0);
        assert!(!raw_kcp(&trailing));
        assert!(!raw_kcp(&two[..two.len() - 1]));
        let mut mixed = segment(1, CMD_PUSH, b"a");
        mixed.extend(segment(2, CMD_PUSH, b"b"));
        assert!(!raw_kcp(&mixed));
        assert!(!raw_kcp(&segment(1, 99, b"")));
        assert!(!raw_kcp(&[0x10; 40]));
        assert!(!raw_kcp(&[]));
    }

    #[test]
    fn hellos_are_recognised_by_their_prefix_and_length() {
        let mut hello = vec![TYPE_HELLO, 2, 1, 0];
        hello.resize(88, 0xAB);
        assert!(secure_hello(&hello));
        hello[1] = 1;
        assert!(secure_hello(&hello), "a version 1 HELLO too");
        hello[3] = 9;
        assert!(!secure_hello(&hello), "the reserved byte");
        hello[3] = 0;
        hello[1] = 0;
        assert!(!secure_hello(&hello));
        hello[1] = 2;
        assert!(!secure_hello(&hello[..HELLO_PROLOGUE_LEN - 1]));
        hello.resize(HELLO_MAX_LEN + 1, 0);
        assert!(!secure_hello(&hello));
    }
}
