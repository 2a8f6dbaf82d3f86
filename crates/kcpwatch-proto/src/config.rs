//! Engine knobs, presets and endpoint limits.

pub use crate::segment::{KCP_HEADER_LEN, KCP_MAX_FRAGMENTS};
use thiserror::Error;

use crate::limits::Limits;
use crate::severity::Severity;

mod knobs;

use knobs::{default_bool, default_int};
pub use knobs::{Knob, KnobKind, KnobSpec, KnobValue, MAX_I32, PRESET_KNOBS};

/// A named set of KCP knobs, declared with their values in [`Preset::values`] (config/knobs.rs).
/// `Game` is `Fast3` with larger windows and a 1200-byte MTU that survives tunnels and mobile
/// networks without IP fragmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// nodelay 0, interval 40 ms, resend 2, no congestion window.
    Normal,
    /// nodelay 0, interval 30 ms, resend 2, no congestion window.
    Fast,
    /// nodelay 1, interval 20 ms, resend 2, no congestion window.
    Fast2,
    /// nodelay 1, interval 10 ms, resend 2, no congestion window.
    Fast3,
    /// `Fast3` with windows 256/256 and MTU 1200.
    Game,
}

impl Preset {
    /// Parses a preset name as used in options and the CLI.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The knobs of this preset: the defaults, with the preset's values of [`PRESET_KNOBS`].
    pub fn config(self) -> SessionConfig {
        let mut config = SessionConfig::DEFAULT;
        for (knob, value) in PRESET_KNOBS.into_iter().zip(self.values()) {
            knob.set(&mut config, value);
        }
        config
    }
}

/// Every knob of one KCP session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// KCP nodelay mode: lower minimum RTO and gentler backoff.
    pub nodelay: bool,
    /// Internal flush interval in milliseconds (10..=5000).
    pub interval_ms: u32,
    /// Fast retransmit after this many duplicate ACKs (0 disables).
    pub fast_resend: u32,
    /// Disable the congestion window (game traffic prefers latency over fairness).
    pub no_congestion_window: bool,
    /// Send window in segments.
    pub send_window: u16,
    /// Receive window in segments.
    pub receive_window: u16,
    /// Maximum datagram size KCP produces, header included.
    pub mtu: usize,
    /// Minimum retransmission timeout in milliseconds; `None` keeps KCP's (30 with nodelay, else 100).
    pub min_rto_ms: Option<u32>,
    /// Stream mode: message boundaries are not kept and small writes coalesce.
    pub stream: bool,
    /// Transmissions of one segment after which the link is declared dead.
    pub dead_link: u32,
    /// Longest a segment may wait for its acknowledgement, from its first transmission, before
    /// the link is declared dead whatever its transmission count; `None` uses the idle
    /// timeout. Bounds how long a peer that talks but never acknowledges pins queued data.
    pub dead_link_ms: Option<u32>,
    /// A session with no valid datagram from the peer for this long is closed (`idle_timeout`).
    pub idle_timeout_ms: u32,
    /// Largest message `send()` accepts, and largest message accepted from the peer.
    pub max_message_size: usize,
    /// Payload bytes that may wait in the send queue before `send()` refuses more.
    pub max_send_queue_bytes: usize,
    /// How long a locally closed session keeps flushing queued data before it is dropped.
    pub linger_ms: u32,
}

impl SessionConfig {
    /// Every knob at its declared default ([`Knob::spec`]); evaluated at compile time, so a
    /// default of the wrong type does not build.
    pub const DEFAULT: SessionConfig = SessionConfig {
        nodelay: default_bool(Knob::Nodelay),
        interval_ms: default_int(Knob::Interval) as u32,
        fast_resend: default_int(Knob::Resend) as u32,
        no_congestion_window: default_bool(Knob::Nc),
        send_window: default_int(Knob::SndWnd) as u16,
        receive_window: default_int(Knob::RcvWnd) as u16,
        mtu: default_int(Knob::Mtu) as usize,
        min_rto_ms: None,
        stream: default_bool(Knob::Stream),
        dead_link: default_int(Knob::DeadLink) as u32,
        dead_link_ms: None,
        idle_timeout_ms: default_int(Knob::IdleTimeout) as u32,
        max_message_size: default_int(Knob::MaxMessageSize) as usize,
        max_send_queue_bytes: default_int(Knob::MaxSendQueueBytes) as usize,
        linger_ms: default_int(Knob::Linger) as u32,
    };
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A knob is outside its declared range ([`Knob::spec`]).
    #[error("{field} {value} is outside {min}..={max}")]
    OutOfRange {
        /// The knob.
        knob: Knob,
        /// Its field in [`SessionConfig`].
        field: &'static str,
        /// The value given.
        value: u64,
        /// The smallest value accepted.
        min: u64,
        /// The largest value accepted.
        max: u64,
    },
    /// The largest message does not fit in the fragments KCP can reassemble with this MTU and
    /// receive window.
    #[error("max message size {size} exceeds {limit} bytes (fragments x mss for this mtu and receive window)")]
    MessageSize {
        /// The configured size.
        size: usize,
        /// The largest size that can work.
        limit: usize,
    },
    /// More server static keys than a rotation needs.
    #[error("{0} server keys given; at most {MAX_SERVER_KEYS} (two during a rotation)")]
    TooManyServerKeys(usize),
    /// The FEC shard counts are outside secure mode's limits (at most 64 shards a group).
    #[error(transparent)]
    SecureFec(#[from] crate::secure::fec::SecureFecConfigError),
    /// The FEC shard counts are outside kcp-go's limits.
    #[error(transparent)]
    Fec(#[from] crate::fec::FecConfigError),
    /// With FEC, a datagram is at most kcp-go's 1500 bytes, FEC header included.
    #[error("mtu {0} is above 1500, the largest datagram kcp-go's FEC handles")]
    FecMtu(usize),
    /// Two server keys have the same key id (the same key twice).
    #[error("two server keys have the same key id (the same key given twice?)")]
    DuplicateServerKey,
}

/// Server static keys held at once (the current one, the next, and room for a slow rotation).
pub const MAX_SERVER_KEYS: usize = 4;

impl SessionConfig {
    /// KCP's maximum segment payload for this MTU.
    pub fn mss(&self) -> usize {
        self.mtu - KCP_HEADER_LEN
    }

    /// The largest segment payload accepted from a peer. Peers often run KCP's default MTU of
    /// 1400 while we send with a smaller one (the `game` preset uses 1200), so the receive
    /// limit is the larger of our MSS and what a 1500-byte Ethernet MTU can carry.
    pub fn receive_mss(&self) -> usize {
        self.mtu.max(1500) - KCP_HEADER_LEN
    }

    /// The largest fragment count a message may have: bounded by KCP's own limit and by the
    /// receive window (a message with more fragments than the window can never be reassembled,
    /// defect case L in docs/security.md).
    pub fn max_fragments(&self) -> usize {
        (KCP_MAX_FRAGMENTS - 1).min(usize::from(self.receive_window))
    }

    /// The largest message this configuration can carry in message mode.
    pub fn message_size_limit(&self) -> usize {
        self.max_fragments() * self.mss()
    }

    /// The largest message this side may send to a peer that stated `peer_receive_window` and
    /// `peer_max_message_size` (secure mode's handshake, `docs/protocol.md`): our own
    /// `max_message_size`, the peer's, and what the peer's window reassembles at our MSS (a
    /// message of more fragments than the receiver's window can never be received). Stream
    /// mode keeps no messages, so nothing lowers it there.
    pub fn send_ceiling(&self, peer_receive_window: u16, peer_max_message_size: usize) -> usize {
        if self.stream {
            return self.max_message_size;
        }
        let fragments = (KCP_MAX_FRAGMENTS - 1).min(usize::from(peer_receive_window));
        self.max_message_size
            .min(peer_max_message_size)
            .min(fragments * self.mss())
    }

    /// Checks that the configuration can work: every knob within its declared range
    /// ([`Knob::spec`], the ranges `src/options.ts` checks too), and the largest message within
    /// what the MTU and receive window carry.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for knob in Knob::ALL {
            if let (KnobKind::Int { min, max, .. }, Some(KnobValue::Int(value))) =
                (knob.spec().kind, knob.get(self))
            {
                if !(min..=max).contains(&value) {
                    return Err(ConfigError::OutOfRange {
                        knob,
                        field: knob.spec().field,
                        value,
                        min,
                        max,
                    });
                }
            }
        }
        if !self.stream && self.max_message_size > self.message_size_limit() {
            return Err(ConfigError::MessageSize {
                size: self.max_message_size,
                limit: self.message_size_limit(),
            });
        }
        Ok(())
    }

    /// How long a segment may go unacknowledged before the link is dead.
    pub fn dead_link_bound_ms(&self) -> u32 {
        self.dead_link_ms.unwrap_or(self.idle_timeout_ms)
    }
}

/// Limits and identity of one endpoint (one UDP socket).
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Knobs for sessions this endpoint accepts or opens.
    pub session: SessionConfig,
    /// Whether unknown (address, conv) pairs may open a session (a server); a client-only
    /// endpoint drops them as `unknown_connection`.
    pub accept_inbound: bool,
    /// Most sessions at once; a new source beyond it is refused (`capacity`).
    pub max_connections: usize,
    /// Seed for connection ids; the runtime passes entropy, tests pass a constant.
    pub rng_seed: u64,
    /// Unix time in milliseconds at which the protocol clock read 0 (for time-sortable ids).
    pub unix_ms_at_zero: u64,
    /// Security events at or above this severity are recorded for
    /// [`crate::Endpoint::poll_security_event`]; `None` records none (and costs nothing).
    pub event_level: Option<Severity>,
    /// Per-datagram records (drops, failed attempts) logged one by one per trigger and window
    /// before the rest are only counted (see [`crate::events::Sampler`]).
    pub sample_burst: u32,
    /// The sampling window in milliseconds.
    pub sample_window_ms: u32,
    /// Plain KCP, or the secure control layer (docs/protocol.md).
    pub mode: Mode,
    /// Entropy for cookies, session secrets and convs (secure mode). The runtime fills it from
    /// the OS; tests pass a constant so runs repeat.
    pub secret: [u8; 32],
    /// Admission limits.
    pub limits: Limits,
    /// Secure mode, server: its static key pairs (more than one during a rotation; a HELLO
    /// names the one it is for by key id). Empty: the endpoint makes one from `secret`, which
    /// lives as long as the endpoint (see [`crate::Endpoint::server_keys`]).
    pub server_keys: Vec<crate::secure::StaticKey>,
    /// Secure mode, client: the server's static public key, which the handshake authenticates
    /// the server by. A client endpoint without one cannot open secure sessions.
    pub server_key: Option<[u8; 32]>,
    /// Tests only (feature `test-keys`): handshake ephemeral keys drawn from a generator seeded
    /// with this instead of the operating system, so a test's datagrams repeat run after run.
    /// Predictable ephemerals give up forward secrecy; the runtime never sets it.
    #[cfg(feature = "test-keys")]
    pub test_ephemeral_seed: Option<[u8; 32]>,
    /// How long one cookie key lives; a cookie is accepted for one to two of these.
    pub cookie_slot_ms: u32,
    /// A client gives up a handshake that got no answer after this long (`handshake_timeout`).
    pub handshake_timeout_ms: u32,
    /// Handshakes wait for the application's `authenticate` answer (see
    /// [`crate::EndpointEvent::AuthRequest`]) instead of being accepted at once.
    pub require_auth: bool,
    /// An authentication answer later than this rejects the handshake (`auth_rejected`).
    pub auth_timeout_ms: u32,
    /// Handshakes waiting for authentication at once; more are refused (`capacity`).
    pub max_pending_auth: usize,
    /// Secure sessions send a keepalive after this long without sending anything; `None`
    /// uses a quarter of the idle timeout.
    pub keepalive_ms: Option<u32>,
    /// The detectors and their thresholds (`kcp:alert`).
    pub detectors: crate::detect::DetectorConfig,
    /// Raw mode: kcp-go's Reed-Solomon FEC with these shard counts (the peer must use the
    /// same). Every datagram then carries an 8-byte FEC header, so KCP's MTU is `mtu - 8`.
    /// Secure mode: this endpoint sends FEC_PARITY after every `data_shards` session datagrams
    /// (any peer reads them); KCP's MTU is 30 bytes less to leave room for the parity.
    pub fec: Option<crate::fec::FecConfig>,
}

impl EndpointConfig {
    /// Checks the `fec` option against the mode and a session's knobs; the session config
    /// KCP then runs with (its MTU less the FEC header) is what [`SessionConfig::validate`]
    /// must accept.
    pub fn validate_fec(&self, session: &SessionConfig) -> Result<(), ConfigError> {
        let Some(fec) = self.fec else {
            return Ok(());
        };
        if self.mode == Mode::Secure {
            // Only the sender needs the option; its data datagrams leave room for parity.
            crate::secure::fec::validate(&fec)?;
            return SessionConfig {
                mtu: session.mtu.saturating_sub(
                    crate::secure::wire::SESSION_OVERHEAD + crate::secure::fec::OVERHEAD,
                ),
                ..*session
            }
            .validate();
        }
        fec.validate()?;
        if session.mtu > crate::fec::MAX_SHARD_LEN {
            return Err(ConfigError::FecMtu(session.mtu));
        }
        Self::fec_session(session).validate()
    }

    /// The knobs KCP runs with under FEC: each datagram is the FEC header plus KCP's, so KCP's
    /// MTU is 8 bytes less (as kcp-go's `SetMtu` does).
    pub fn fec_session(session: &SessionConfig) -> SessionConfig {
        SessionConfig {
            mtu: session.mtu.saturating_sub(crate::fec::OVERHEAD),
            ..*session
        }
    }
}

/// What a server puts in front of KCP. The core defaults to `Raw` so a bare `EndpointConfig`
/// speaks plain KCP; the product defaults (the Node API and `kcpwatch serve`) choose `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Plain KCP: interoperable with every KCP peer, no handshake, no authentication.
    #[default]
    Raw,
    /// Handshake with address validation, tagged datagrams, replay protection.
    Secure,
}

impl Mode {
    /// The name in options and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Secure => "secure",
        }
    }
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            accept_inbound: true,
            max_connections: 10_000,
            rng_seed: 0,
            unix_ms_at_zero: 0,
            event_level: None,
            sample_burst: 20,
            sample_window_ms: 1_000,
            mode: Mode::Raw,
            secret: [0; 32],
            limits: Limits::default(),
            server_keys: Vec::new(),
            server_key: None,
            #[cfg(feature = "test-keys")]
            test_ephemeral_seed: None,
            cookie_slot_ms: 10_000,
            handshake_timeout_ms: 10_000,
            require_auth: false,
            auth_timeout_ms: 5_000,
            max_pending_auth: 1_024,
            keepalive_ms: None,
            detectors: crate::detect::DetectorConfig::default(),
            fec: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_design_table() {
        let game = Preset::Game.config();
        assert!(game.nodelay);
        assert_eq!(
            (
                game.interval_ms,
                game.fast_resend,
                game.no_congestion_window
            ),
            (10, 2, true)
        );
        assert_eq!(
            (game.send_window, game.receive_window, game.mtu),
            (256, 256, 1200)
        );
        let normal = Preset::Normal.config();
        assert!(!normal.nodelay);
        assert_eq!(normal.interval_ms, 40);
        assert_eq!(Preset::Fast.config().interval_ms, 30);
        assert_eq!(Preset::Fast2.config().interval_ms, 20);
        assert_eq!(Preset::from_name("fast3"), Some(Preset::Fast3));
        assert_eq!(Preset::from_name("turbo"), None);
        for preset in Preset::ALL {
            preset.config().validate().unwrap();
        }
    }

    #[test]
    fn rejects_configurations_that_cannot_work() {
        let bad_mtu = SessionConfig {
            mtu: 20,
            ..SessionConfig::default()
        };
        assert_eq!(
            bad_mtu.validate(),
            Err(ConfigError::OutOfRange {
                knob: Knob::Mtu,
                field: "mtu",
                value: 20,
                min: 50,
                max: 65_507
            })
        );
        let too_big = SessionConfig {
            receive_window: 8,
            ..SessionConfig::default()
        };
        assert!(matches!(
            too_big.validate(),
            Err(ConfigError::MessageSize { .. })
        ));
    }

    /// What `resolveKcpOptions` (src/options.ts) refuses, `validate` refuses too: a config
    /// built in Rust (tests, the runtime) has the same ranges as one from JavaScript.
    #[test]
    fn refuses_what_typescript_refuses() {
        let base = SessionConfig::default();
        let cases = [
            (
                "deadLink 5000",
                SessionConfig {
                    dead_link: 5000,
                    ..base
                },
            ),
            (
                "resend 1001",
                SessionConfig {
                    fast_resend: 1001,
                    ..base
                },
            ),
            (
                "minRto 0",
                SessionConfig {
                    min_rto_ms: Some(0),
                    ..base
                },
            ),
            (
                "minRto 60001",
                SessionConfig {
                    min_rto_ms: Some(60_001),
                    ..base
                },
            ),
            (
                "idleTimeout 2^31",
                SessionConfig {
                    idle_timeout_ms: 1 << 31,
                    ..base
                },
            ),
            (
                "maxMessageSize 0",
                SessionConfig {
                    max_message_size: 0,
                    ..base
                },
            ),
            (
                "maxMessageSize 2^31 in stream mode",
                SessionConfig {
                    stream: true,
                    max_message_size: 1 << 31,
                    ..base
                },
            ),
            (
                "maxSendQueueBytes 0",
                SessionConfig {
                    max_send_queue_bytes: 0,
                    ..base
                },
            ),
            (
                "maxSendQueueBytes 2^31",
                SessionConfig {
                    max_send_queue_bytes: 1 << 31,
                    ..base
                },
            ),
            (
                "linger 2^31",
                SessionConfig {
                    linger_ms: 1 << 31,
                    ..base
                },
            ),
        ];
        let accepted: Vec<&str> = cases
            .iter()
            .filter(|(_, config)| config.validate().is_ok())
            .map(|(name, _)| *name)
            .collect();
        assert!(accepted.is_empty(), "accepted out of range: {accepted:?}");
    }
}
