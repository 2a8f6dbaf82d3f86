//! HMAC-SHA256 with its state precomputed: cookies and the endpoint's internal key derivations
//! (never a session datagram: those are sealed with the AEAD of [`super::keys`]).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A key with its HMAC state precomputed, so each MAC costs only the data's blocks.
#[derive(Clone)]
pub struct TagKey(HmacSha256);

impl std::fmt::Debug for TagKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TagKey(..)")
    }
}

impl TagKey {
    /// A MAC key from raw key bytes.
    pub fn new(key: &[u8]) -> Self {
        Self(HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length"))
    }

    /// The full 32-byte HMAC of `data`.
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
}
