//! Raw mode: the (address, conv) pairs of sessions this endpoint ended because the peer broke
//! the session's contract (`protocol_violation`), kept for a bounded time.
//!
//! Raw KCP has no handshake and no close message: a peer whose session we ended keeps sending
//! the rest of its stream. If it never heard from us (`una` still 0), its next PUSH looks like
//! an opening, and a fresh session at `rcv_nxt` 0 would acknowledge and then hold those
//! segments for ever, waiting for ones it will never get. So datagrams from such a pair are
//! dropped (`unknown_connection` / `recently_closed`) until the block expires.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// Pairs remembered at most: a burst of violations only shortens how long each is kept, so
/// memory stays bounded whatever a peer does.
const CAPACITY: usize = 4_096;

/// The blocked pairs with when each was closed (extended clock, ms).
#[derive(Debug, Default)]
pub(super) struct RawClosed {
    until: HashMap<(SocketAddr, u32), u64>,
    order: VecDeque<((SocketAddr, u32), u64)>,
}

impl RawClosed {
    /// Blocks `key` until `until`.
    pub(super) fn insert(&mut self, key: (SocketAddr, u32), until: u64) {
        if self.order.len() >= CAPACITY {
            if let Some((old, at)) = self.order.pop_front() {
                if self.until.get(&old) == Some(&at) {
                    self.until.remove(&old);
                }
            }
        }
        self.until.insert(key, until);
        self.order.push_back((key, until));
    }

    /// Whether `key` is blocked at `now`; forgets it once the block expired.
    pub(super) fn blocks(&mut self, key: &(SocketAddr, u32), now: u64) -> bool {
        if self.until.is_empty() {
            return false;
        }
        match self.until.get(key) {
            Some(&until) if now < until => true,
            Some(_) => {
                self.until.remove(key);
                false
            }
            None => false,
        }
    }
}
