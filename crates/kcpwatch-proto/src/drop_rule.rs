//! The `rule` of `kcp:packet_dropped` and `kcp:connection_failed`, declared once: every name
//! the endpoint can write, the trigger each one is reported under (or, for a failed attempt
//! that refused no datagram, the reason and side it goes with) and what it means. The endpoint
//! names a rule only through [`DropRule`], so a rule cannot be written without being declared
//! here; `npm run codegen` writes the schema's `rule` vocabulary and pairings and the
//! TypeScript rule unions from this declaration.

use crate::lifecycle::{Direction, DropTrigger, FailReason};

/// Who applies a rule, which is also how the TypeScript unions group them (`GuardRule`,
/// `LimitRule`, `SecureRule`, and the endpoint's own rules inside `DropRule`; `FailRule` for
/// the rules of attempts that refused no datagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSource {
    /// The segment guard (`GuardViolation::rule`).
    Guard,
    /// The endpoint's routing: datagrams for no session, raw FEC, the receive buffer.
    Endpoint,
    /// The connection limits, the handshake rates and detector enforcement.
    Limit,
    /// Secure mode's checks of a datagram before any engine sees it.
    Secure,
    /// A failed attempt that refused no datagram (the application, a timeout, the server).
    Attempt,
}

/// What a rule refused: a datagram, under one trigger; or an attempt, with no datagram to
/// blame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A datagram, reported under this trigger (and only this one).
    Datagram(DropTrigger),
    /// An attempt without a refused datagram (`kcp:connection_failed` without `trigger`).
    Attempt {
        /// The failure reason it always has, when it has one (a client's `server_rejected`
        /// carries the server's reason, whatever it is).
        reason: Option<FailReason>,
        /// Whose attempt: a server's (`inbound`) or a client's (`outbound`).
        direction: Direction,
    },
}

macro_rules! rules {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident = $name:literal, $source:ident, $refused:expr;
    )+) => {
        /// The exact guard, limit or handshake rule behind a drop or a failed attempt (the
        /// `rule` field). In TypeScript the rules with a trigger are `DropRule` and the rules
        /// without one `FailRule`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum DropRule {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl DropRule {
            /// Every rule, in declaration order.
            pub const ALL: &'static [DropRule] = &[$(Self::$variant),+];

            /// The stable name written in `rule`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $name, )+
                }
            }

            /// Who applies it.
            pub const fn source(self) -> RuleSource {
                match self {
                    $( Self::$variant => RuleSource::$source, )+
                }
            }

            /// What it refused: a datagram under its trigger, or an attempt.
            pub const fn refused(self) -> Refused {
                match self {
                    $( Self::$variant => $refused, )+
                }
            }

            /// What it means, in a sentence (the docs of the variant).
            pub fn doc(self) -> &'static str {
                match self {
                    $( Self::$variant => concat!($($doc),+).trim_ascii(), )+
                }
            }
        }
    };
}

use DropTrigger as T;

const fn dgram(trigger: DropTrigger) -> Refused {
    Refused::Datagram(trigger)
}

const fn server(reason: FailReason) -> Refused {
    Refused::Attempt {
        reason: Some(reason),
        direction: Direction::Inbound,
    }
}

const fn client(reason: Option<FailReason>) -> Refused {
    Refused::Attempt {
        reason,
        direction: Direction::Outbound,
    }
}

rules! {
    /// Shorter than a 24-byte KCP header.
    TooShort = "too_short", Guard, dgram(T::TooShort);
    /// Bytes after the last complete segment that do not form a header.
    TrailingBytes = "trailing_bytes", Guard, dgram(T::BadLength);
    /// A segment whose conv is not the session's.
    BadConv = "bad_conv", Guard, dgram(T::BadConv);
    /// A segment with an unknown command.
    BadCmd = "bad_cmd", Guard, dgram(T::BadCmd);
    /// A segment length past the end of the datagram.
    LengthBeyondDatagram = "length_beyond_datagram", Guard, dgram(T::BadLength);
    /// A data segment larger than the MSS.
    LengthBeyondMss = "length_beyond_mss", Guard, dgram(T::BadLength);
    /// An ACK or window segment with payload.
    ControlWithPayload = "control_with_payload", Guard, dgram(T::BadLength);
    /// A fragment index the receive window could never reassemble.
    FragmentBeyondWindow = "fragment_beyond_window", Guard, dgram(T::GuardViolation);
    /// Data outside the receive window that is not a plausible retransmission.
    SequenceOutsideWindow = "sequence_outside_window", Guard, dgram(T::GuardViolation);
    /// An acknowledgement of a sequence number never sent.
    AckUnsent = "ack_unsent", Guard, dgram(T::GuardViolation);
    /// An acknowledgement of a sequence number far (> 65536) behind the send window.
    AckStale = "ack_stale", Guard, dgram(T::GuardViolation);
    /// An echoed timestamp ahead of our clock.
    AckFromFuture = "ack_from_future", Guard, dgram(T::GuardViolation);
    /// An echoed timestamp from before the session started.
    AckBeforeSession = "ack_before_session", Guard, dgram(T::GuardViolation);
    /// An echoed timestamp that matches none of that segment's transmissions (a forged RTT).
    AckTimestampMismatch = "ack_timestamp_mismatch", Guard, dgram(T::GuardViolation);
    /// A cumulative acknowledgement beyond anything sent.
    UnaBeyondSent = "una_beyond_sent", Guard, dgram(T::GuardViolation);

    /// A datagram that opens nothing: for a client endpoint from an unknown (address, conv),
    /// an ACK, a window probe or a PUSH acknowledging data for no session, or a secure session
    /// datagram whose conv no session has.
    NoSession = "no_session", Endpoint, dgram(T::UnknownConnection);
    /// A datagram only an existing session sends, for one this endpoint does not have, soon
    /// after it started (a restarted server's returning player).
    StaleSession = "stale_session", Endpoint, dgram(T::UnknownConnection);
    /// Raw mode: from an address and conv whose session was closed for a protocol violation
    /// less than an idle timeout ago.
    RecentlyClosed = "recently_closed", Endpoint, dgram(T::UnknownConnection);
    /// Longer than the receive buffer, so never read whole.
    DatagramTruncated = "datagram_truncated", Endpoint, dgram(T::BadLength);
    /// Raw FEC: a parity shard from an address with no session.
    FecParityNoSession = "fec_parity_no_session", Endpoint, dgram(T::UnknownConnection);
    /// Raw FEC: an out-of-band shard (kcp-go's OOB type), which kcpwatch does not take.
    FecOobUnsupported = "fec_oob_unsupported", Endpoint, dgram(T::BadCmd);
    /// Raw FEC: a shard whose size field or length is impossible.
    FecBadSize = "fec_bad_size", Endpoint, dgram(T::BadLength);

    /// A new connection beyond `maxConnections`.
    MaxConnections = "max_connections", Limit, dgram(T::OverLimit);
    /// A new connection beyond the per-address limit.
    MaxConnectionsPerIp = "max_connections_per_ip", Limit, dgram(T::OverLimit);
    /// A new connection beyond the per-prefix limit.
    MaxConnectionsPerPrefix = "max_connections_per_prefix", Limit, dgram(T::OverLimit);
    /// A validated HELLO while too many clients wait for the `authenticate` hook.
    MaxPendingAuth = "max_pending_auth", Limit, dgram(T::OverLimit);
    /// A HELLO (or raw opening datagram) beyond its source's handshake rate.
    HandshakeRatePerIp = "handshake_rate_per_ip", Limit, dgram(T::RateLimited);
    /// A HELLO (or raw opening datagram) beyond the handshake rate of all sources.
    HandshakeRateGlobal = "handshake_rate_global", Limit, dgram(T::RateLimited);
    /// Detector enforcement refused a source a per-source rule fired for (`docs/detection.md`).
    RefusedByDetector = "refused_by_detector", Limit, dgram(T::RateLimited);

    /// An empty datagram.
    Empty = "empty", Secure, dgram(T::TooShort);
    /// A HELLO shorter than its fixed part.
    HelloTooShort = "hello_too_short", Secure, dgram(T::TooShort);
    /// A session datagram shorter than its header and tag.
    SessionTooShort = "session_too_short", Secure, dgram(T::TooShort);
    /// An unknown datagram type.
    UnknownType = "unknown_type", Secure, dgram(T::BadCmd);
    /// A datagram of the other mode (a secure HELLO at a raw server, plain KCP at a secure
    /// one).
    ModeMismatch = "mode_mismatch", Secure, dgram(T::BadCmd);
    /// A HELLO from a client in the other KCP mode (`stream: true` on one side only; reason
    /// `stream_mismatch`; the client gets a REJECT `stream_mismatch`).
    HelloStream = "hello_stream", Secure, dgram(T::BadCmd);
    /// A HELLO with a protocol version this server does not speak.
    UnsupportedVersion = "unsupported_version", Secure, dgram(T::BadCmd);
    /// A HELLO sent to a client endpoint.
    HelloToClient = "hello_to_client", Secure, dgram(T::BadCmd);
    /// A COOKIE, ACCEPT or REJECT of the wrong size.
    HandshakeLength = "handshake_length", Secure, dgram(T::BadLength);
    /// A HELLO whose nonce a session from another address already uses.
    NonceInUse = "nonce_in_use", Secure, dgram(T::UnknownConnection);
    /// A COOKIE, ACCEPT or REJECT that answers no handshake in progress.
    NoHandshake = "no_handshake", Secure, dgram(T::UnknownConnection);
    /// A HELLO cookie whose MAC did not verify.
    CookieMac = "cookie_mac", Secure, dgram(T::BadTag);
    /// A HELLO cookie whose time slot has passed.
    CookieExpired = "cookie_expired", Secure, dgram(T::BadTag);
    /// A packet number seen before, or behind the replay window.
    ReplayWindow = "replay_window", Secure, dgram(T::Replayed);
    /// A HELLO naming a cipher suite this server does not speak (reason `version_mismatch`).
    UnsupportedSuite = "unsupported_suite", Secure, dgram(T::BadCmd);
    /// A HELLO naming (by key id) a server key this server does not hold (reason
    /// `unknown_server_key`).
    UnknownKeyId = "unknown_key_id", Secure, dgram(T::BadCmd);
    /// A HELLO with a valid cookie whose Noise message does not decrypt with the named key (no
    /// answer).
    HelloNoise = "hello_noise", Secure, dgram(T::DecryptFailed);
    /// A session datagram whose AEAD tag does not verify under the session's key.
    SessionAead = "session_aead", Secure, dgram(T::DecryptFailed);
    /// A HELLO longer than its largest size (a token over 1024 bytes).
    HelloTooLong = "hello_too_long", Secure, dgram(T::BadLength);
    /// A HELLO stating an MTU below 79, the smallest a secure session works with (reason
    /// `malformed`; the client gets a REJECT `malformed`).
    HelloMtu = "hello_mtu", Secure, dgram(T::BadLength);
    /// A HELLO stating a receive window of 0 segments (reason `malformed`; the client gets a
    /// REJECT `malformed`).
    HelloWindow = "hello_window", Secure, dgram(T::BadLength);
    /// A datagram rebuilt from FEC parity that does not authenticate (never applied; counted
    /// in `fecErrs`).
    FecRebuiltAead = "fec_rebuilt_aead", Secure, dgram(T::DecryptFailed);
    /// A FEC_PARITY datagram with an impossible header (counted in `fecErrs`).
    FecParityMalformed = "fec_parity_malformed", Secure, dgram(T::BadLength);
    /// A RESET of the wrong size (a client).
    ResetLength = "reset_length", Secure, dgram(T::BadLength);
    /// A RESET that echoes no datagram this client sent recently.
    ResetTag = "reset_tag", Secure, dgram(T::BadTag);
    /// An authenticated unreliable DATAGRAM whose plaintext is shorter than its header.
    DatagramTooShort = "datagram_too_short", Secure, dgram(T::TooShort);
    /// An authenticated unreliable DATAGRAM whose header sets flags this version does not
    /// know.
    DatagramFlags = "datagram_flags", Secure, dgram(T::BadCmd);

    /// The `authenticate` hook refused the client's token.
    Authenticate = "authenticate", Attempt, server(FailReason::AuthRejected);
    /// The `authenticate` hook did not answer within its timeout.
    AuthTimeout = "auth_timeout", Attempt, server(FailReason::AuthRejected);
    /// No ACCEPT or REJECT before the handshake timeout.
    HandshakeTimeout = "handshake_timeout", Attempt, client(Some(FailReason::HandshakeTimeout));
    /// ICMP reported the server's address unreachable for two different HELLOs.
    IcmpUnreachable = "icmp_unreachable", Attempt, client(Some(FailReason::Unreachable));
    /// The server answered with a REJECT, whose reason is the record's `reason`.
    ServerRejected = "server_rejected", Attempt, client(None);
    /// The server shut down during the handshake.
    Shutdown = "shutdown", Attempt, server(FailReason::Shutdown);
    /// The client never confirmed the ACCEPT within the handshake timeout.
    HandshakeAbandoned = "handshake_abandoned", Attempt, server(FailReason::HandshakeAbandoned);
    /// The client's first datagram after the ACCEPT was a DISCONNECT.
    PeerDisconnect = "peer_disconnect", Attempt, server(FailReason::HandshakeAbandoned);
    /// The ACCEPT did not decrypt with the pinned server key, or its payload is not valid
    /// (`KcpServerAuthError`).
    AcceptNoise = "accept_noise", Attempt, client(Some(FailReason::ServerAuthFailed));
    /// The ACCEPT agreed an MTU above the one the client's HELLO stated.
    AcceptMtu = "accept_mtu", Attempt, client(Some(FailReason::Malformed));
    /// A message queued during the handshake is larger than the handshake's ceiling (the
    /// server's `maxMessageSize`, or more fragments than its receive window or KCP's 127 at
    /// the agreed MTU).
    QueuedMessageTooLarge = "queued_message_too_large", Attempt, client(Some(FailReason::Malformed));
    /// The ACCEPT states the other KCP mode (a server refuses a mismatch with a REJECT
    /// instead).
    AcceptStream = "accept_stream", Attempt, client(Some(FailReason::StreamMismatch));
}

impl DropRule {
    /// The rule of this wire name, if one is declared.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.as_str() == name)
    }

    /// The trigger it is reported under; `None` for a failed attempt that refused no datagram.
    pub const fn trigger(self) -> Option<DropTrigger> {
        match self.refused() {
            Refused::Datagram(trigger) => Some(trigger),
            Refused::Attempt { .. } => None,
        }
    }
}

impl std::fmt::Display for DropRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tests and tools compare a rule with its wire name.
impl PartialEq<&str> for DropRule {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_follow_the_variant() {
        let mut seen = std::collections::HashSet::new();
        for rule in DropRule::ALL {
            let name = rule.as_str();
            assert!(seen.insert(name), "{name} declared twice");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            let pascal: String = name
                .split('_')
                .map(|w| w[..1].to_ascii_uppercase() + &w[1..])
                .collect();
            assert_eq!(format!("{rule:?}"), pascal);
            assert!(!rule.doc().is_empty());
        }
    }

    #[test]
    fn only_attempt_rules_go_without_a_trigger() {
        for rule in DropRule::ALL {
            assert_eq!(
                rule.trigger().is_none(),
                rule.source() == RuleSource::Attempt,
                "{rule}"
            );
        }
    }
}
