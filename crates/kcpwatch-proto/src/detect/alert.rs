//! What a detector reports when it fires: the `kcp:alert` record's content. The detectors own it,
//! so that they need nothing from the event catalogue, which carries it.

use super::Rule;

/// `kcp:alert`: a detector fired (`docs/detection.md`). One per episode and key,
/// then an update (`update: true`) per update interval while it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alert {
    /// The rule (id, name, severity and technique come from it).
    pub rule: Rule,
    /// The source it is about (an address, or an IPv6 /64's first address), or `None` for a
    /// listener-wide rule. Written through the privacy mode like every address.
    pub key: Option<std::net::IpAddr>,
    /// The rule's threshold (for KCPW-002 the effective one, baseline included; for KCPW-007 a
    /// percentage).
    pub threshold: u64,
    /// The rule's window in milliseconds.
    pub window_ms: u64,
    /// What the window held when the alert was raised.
    pub observed: u64,
    /// Unix ms the episode started (at most a window before it fired).
    pub first_seen_ms: u64,
    /// Unix ms of this alert.
    pub last_seen_ms: u64,
    /// A periodic update of an episode already alerted on.
    pub update: bool,
}
