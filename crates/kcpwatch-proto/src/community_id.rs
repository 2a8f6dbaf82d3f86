//! Community ID v1 (<https://github.com/corelight/community-id-spec>): a hash of a flow's
//! 5-tuple that Zeek, Suricata and Elastic (`network.community_id`) compute the same way, so a
//! kcpwatch record joins the records other sensors wrote about the same UDP flow. Both directions
//! of a flow give the same id.

use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// IANA protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// Length of an id: `1:` and 28 base64 characters.
pub const COMMUNITY_ID_LEN: usize = 30;

/// A Community ID, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommunityId([u8; COMMUNITY_ID_LEN]);

impl CommunityId {
    /// The id as text (`1:...`).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::fmt::Debug for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn ip_bytes(ip: IpAddr, out: &mut [u8; 16]) -> usize {
    match ip {
        IpAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.octets());
            4
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // A dual-stack socket reports IPv4 peers as mapped addresses; other sensors see
            // the IPv4 packet.
            Some(v4) => {
                out[..4].copy_from_slice(&v4.octets());
                4
            }
            None => {
                out.copy_from_slice(&v6.octets());
                16
            }
        },
    }
}

/// The Community ID of a flow between `a` and `b` with protocol `proto` and `seed`. `None`
/// when the two addresses are of different families (no such flow exists on the wire).
pub fn community_id(proto: u8, a: SocketAddr, b: SocketAddr, seed: u16) -> Option<CommunityId> {
    let (mut a_ip, mut b_ip) = ([0u8; 16], [0u8; 16]);
    let a_len = ip_bytes(a.ip(), &mut a_ip);
    let b_len = ip_bytes(b.ip(), &mut b_ip);
    if a_len != b_len {
        return None;
    }
    let a_key = (&a_ip[..a_len], a.port());
    let b_key = (&b_ip[..b_len], b.port());
    let (first, second) = if a_key <= b_key {
        (a_key, b_key)
    } else {
        (b_key, a_key)
    };
    let mut hash = Sha1::new();
    hash.update(seed.to_be_bytes());
    hash.update(first.0);
    hash.update(second.0);
    hash.update([proto, 0]);
    hash.update(first.1.to_be_bytes());
    hash.update(second.1.to_be_bytes());
    let digest = hash.finalize();
    let mut out = [0u8; COMMUNITY_ID_LEN];
    out[..2].copy_from_slice(b"1:");
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(digest, &mut out[2..])
        .ok()?;
    debug_assert_eq!(written, COMMUNITY_ID_LEN - 2);
    Some(CommunityId(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_and_plain_ipv4_hash_alike() {
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:6000".parse().unwrap();
        assert_eq!(
            community_id(PROTO_UDP, a, b, 0),
            community_id(PROTO_UDP, mapped, b, 0)
        );
        let v6: SocketAddr = "[::1]:6000".parse().unwrap();
        assert_eq!(community_id(PROTO_UDP, a, v6, 0), None);
    }
}
