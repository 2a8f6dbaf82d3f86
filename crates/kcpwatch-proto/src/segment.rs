//! The KCP segment header, parsed without trusting a single byte.
//!
//! Layout (little endian): conv u32, cmd u8, frg u8, wnd u16, ts u32, sn u32, una u32, len u32,
//! then `len` payload bytes. Several segments may share one datagram.

/// The KCP header length in bytes.
pub const KCP_HEADER_LEN: usize = 24;
/// KCP refuses to fragment a message into this many segments or more; a peer that claims a
/// larger fragment count is lying (defect case K in docs/security.md).
pub const KCP_MAX_FRAGMENTS: usize = 128;

/// KCP command: data.
pub const CMD_PUSH: u8 = 81;
/// KCP command: acknowledgement.
pub const CMD_ACK: u8 = 82;
/// KCP command: window probe (ask).
pub const CMD_WASK: u8 = 83;
/// KCP command: window size (tell).
pub const CMD_WINS: u8 = 84;

/// One parsed segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Conversation id.
    pub conv: u32,
    /// Command byte.
    pub cmd: u8,
    /// Fragments that follow this one in its message.
    pub frg: u8,
    /// The sender's free receive window.
    pub wnd: u16,
    /// Timestamp (the sender's clock for PUSH, our echoed clock for ACK).
    pub ts: u32,
    /// Sequence number.
    pub sn: u32,
    /// The sender's next expected sequence number (cumulative ACK).
    pub una: u32,
    /// Payload length as claimed by the header.
    pub len: u32,
}

impl SegmentHeader {
    /// Parses a header from the first 24 bytes; `None` when fewer are available.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let h = bytes.get(..KCP_HEADER_LEN)?;
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        Some(Self {
            conv: u32_at(0),
            cmd: h[4],
            frg: h[5],
            wnd: u16::from_le_bytes([h[6], h[7]]),
            ts: u32_at(8),
            sn: u32_at(12),
            una: u32_at(16),
            len: u32_at(20),
        })
    }

    /// Writes the header into `out` (tests and tools build datagrams with it).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.conv.to_le_bytes());
        out.push(self.cmd);
        out.push(self.frg);
        out.extend_from_slice(&self.wnd.to_le_bytes());
        out.extend_from_slice(&self.ts.to_le_bytes());
        out.extend_from_slice(&self.sn.to_le_bytes());
        out.extend_from_slice(&self.una.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
    }
}

/// The conv of a datagram, if it is long enough to carry one (unlike `kcp::get_conv`, which
/// panics on short input: defect case I in docs/security.md).
pub fn datagram_conv(datagram: &[u8]) -> Option<u32> {
    SegmentHeader::parse(datagram).map(|h| h.conv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let header = SegmentHeader {
            conv: 0xdead_beef,
            cmd: CMD_PUSH,
            frg: 3,
            wnd: 256,
            ts: 1,
            sn: 2,
            una: 3,
            len: 4,
        };
        let mut bytes = Vec::new();
        header.encode(&mut bytes);
        assert_eq!(bytes.len(), KCP_HEADER_LEN);
        assert_eq!(SegmentHeader::parse(&bytes), Some(header));
        assert_eq!(SegmentHeader::parse(&bytes[..23]), None);
        assert_eq!(datagram_conv(&[1, 2, 3]), None);
    }
}
