//! The KCP knobs of [`SessionConfig`] and the presets, declared once: each knob's option name,
//! type, default, range and doc; each preset's values. [`SessionConfig::DEFAULT`],
//! [`Preset::config`] and [`SessionConfig::validate`] read this table, and `npm run codegen`
//! (crates/kcpwatch-codegen) writes it to `src/generated/kcp-options.ts`, from which
//! `src/options.ts` resolves and checks the options: both sides accept the same values by
//! construction.
//!
//! A new knob is a field of [`SessionConfig`], a [`Knob`] variant in [`Knob::ALL`], and an arm
//! in each of [`Knob::spec`], [`Knob::get`] and [`Knob::set`] (the matches have no catch-all,
//! so a forgotten arm does not compile); then `npm run codegen`, and the field in the addon's
//! `SessionOptions` (crates/kcpwatch-node/src/options.rs).

use super::{Preset, SessionConfig};

/// Largest value of the knobs counted in milliseconds or bytes: Node's timers take at most
/// 2^31 - 1 ms, and the addon passes these as 32-bit integers.
pub const MAX_I32: u64 = (1 << 31) - 1;

/// One KCP knob of [`SessionConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Knob {
    /// [`SessionConfig::nodelay`].
    Nodelay,
    /// [`SessionConfig::interval_ms`].
    Interval,
    /// [`SessionConfig::fast_resend`].
    Resend,
    /// [`SessionConfig::no_congestion_window`].
    Nc,
    /// [`SessionConfig::send_window`].
    SndWnd,
    /// [`SessionConfig::receive_window`].
    RcvWnd,
    /// [`SessionConfig::mtu`].
    Mtu,
    /// [`SessionConfig::stream`].
    Stream,
    /// [`SessionConfig::dead_link`].
    DeadLink,
    /// [`SessionConfig::idle_timeout_ms`].
    IdleTimeout,
    /// [`SessionConfig::max_message_size`].
    MaxMessageSize,
    /// [`SessionConfig::max_send_queue_bytes`].
    MaxSendQueueBytes,
    /// [`SessionConfig::linger_ms`].
    Linger,
    /// [`SessionConfig::min_rto_ms`].
    MinRto,
    /// [`SessionConfig::dead_link_ms`] (not an option of the Node API).
    DeadLinkMs,
}

/// A knob's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnobValue {
    /// An on/off knob.
    Bool(bool),
    /// A count, in the knob's unit.
    Int(u64),
}

/// What values a knob takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnobKind {
    /// On or off.
    Bool {
        /// Its value when neither the options nor a preset set it.
        default: bool,
    },
    /// An integer in `min..=max`.
    Int {
        /// Its value when neither the options nor a preset set it; `None`: unset (the knob is
        /// optional, and unset means something of its own).
        default: Option<u64>,
        /// The smallest value accepted.
        min: u64,
        /// The largest value accepted.
        max: u64,
    },
}

/// A knob's declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnobSpec {
    /// Its name in the options of the Node API (`KcpOptions`); `None` for a knob only Rust sets.
    pub option: Option<&'static str>,
    /// Its field in [`SessionConfig`], which errors name.
    pub field: &'static str,
    /// Its type, default and range.
    pub kind: KnobKind,
    /// One line on what it does.
    pub doc: &'static str,
}

const fn int(default: u64, min: u64, max: u64) -> KnobKind {
    KnobKind::Int {
        default: Some(default),
        min,
        max,
    }
}

impl Knob {
    /// Every knob, in the order options are resolved and checked.
    pub const ALL: [Knob; 15] = [
        Knob::Nodelay,
        Knob::Interval,
        Knob::Resend,
        Knob::Nc,
        Knob::SndWnd,
        Knob::RcvWnd,
        Knob::Mtu,
        Knob::Stream,
        Knob::DeadLink,
        Knob::IdleTimeout,
        Knob::MaxMessageSize,
        Knob::MaxSendQueueBytes,
        Knob::Linger,
        Knob::MinRto,
        Knob::DeadLinkMs,
    ];

    /// Its declaration.
    pub const fn spec(self) -> KnobSpec {
        let (option, field, kind, doc) = match self {
            Knob::Nodelay => (
                Some("nodelay"),
                "nodelay",
                KnobKind::Bool { default: false },
                "KCP nodelay mode: lower minimum RTO and gentler backoff.",
            ),
            Knob::Interval => (
                Some("interval"),
                "interval_ms",
                // The range KCP itself clamps the interval to.
                int(100, 10, 5_000),
                "Internal flush interval in ms.",
            ),
            Knob::Resend => (
                Some("resend"),
                "fast_resend",
                int(0, 0, 1_000),
                "Fast retransmit after this many duplicate ACKs (0 disables).",
            ),
            Knob::Nc => (
                Some("nc"),
                "no_congestion_window",
                KnobKind::Bool { default: false },
                "Disable congestion control.",
            ),
            Knob::SndWnd => (
                Some("sndWnd"),
                "send_window",
                int(32, 1, u16::MAX as u64),
                "Send window in segments.",
            ),
            Knob::RcvWnd => (
                Some("rcvWnd"),
                "receive_window",
                int(128, 1, u16::MAX as u64),
                "Receive window in segments.",
            ),
            Knob::Mtu => (
                Some("mtu"),
                "mtu",
                // KCP's smallest MTU, the largest UDP payload over IPv4. Secure mode and FEC
                // raise the smallest (src/options.ts, `EndpointConfig::validate_fec`).
                int(1_400, 50, 65_507),
                "Largest datagram KCP produces, header included.",
            ),
            Knob::Stream => (
                Some("stream"),
                "stream",
                KnobKind::Bool { default: false },
                "Stream mode: no message boundaries, small writes coalesce.",
            ),
            Knob::DeadLink => (
                Some("deadLink"),
                "dead_link",
                // At least one retransmission; past 1000, KCP's backoff would keep a dead
                // peer's data for hours.
                int(20, 2, 1_000),
                "Transmissions of one segment after which the link is declared dead.",
            ),
            Knob::IdleTimeout => (
                Some("idleTimeout"),
                "idle_timeout_ms",
                int(30_000, 1, MAX_I32),
                "Close after this many ms without a valid datagram from the peer.",
            ),
            Knob::MaxMessageSize => (
                Some("maxMessageSize"),
                "max_message_size",
                int(64 * 1024, 1, MAX_I32),
                "Largest message in bytes, sent or received.",
            ),
            Knob::MaxSendQueueBytes => (
                Some("maxSendQueueBytes"),
                "max_send_queue_bytes",
                int(4 * 1024 * 1024, 1, MAX_I32),
                "Bytes that may wait unacknowledged before `send()` refuses more.",
            ),
            Knob::Linger => (
                Some("linger"),
                "linger_ms",
                int(3_000, 0, MAX_I32),
                "How long a closed connection keeps flushing queued data, in ms.",
            ),
            Knob::MinRto => (
                Some("minRto"),
                "min_rto_ms",
                KnobKind::Int {
                    default: None,
                    min: 1,
                    max: 60_000,
                },
                "Minimum retransmission timeout in ms; unset keeps KCP's (30 with nodelay, else 100).",
            ),
            Knob::DeadLinkMs => (
                None,
                "dead_link_ms",
                // Room for at least one retransmission.
                KnobKind::Int {
                    default: None,
                    min: 100,
                    max: u32::MAX as u64,
                },
                "Longest a segment may wait for its acknowledgement before the link is dead; unset uses the idle timeout.",
            ),
        };
        KnobSpec {
            option,
            field,
            kind,
            doc,
        }
    }

    /// Its value in `config`; `None` for an optional knob that is unset.
    pub fn get(self, config: &SessionConfig) -> Option<KnobValue> {
        use KnobValue::{Bool, Int};
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Some(match self {
            Knob::Nodelay => Bool(config.nodelay),
            Knob::Interval => Int(config.interval_ms.into()),
            Knob::Resend => Int(config.fast_resend.into()),
            Knob::Nc => Bool(config.no_congestion_window),
            Knob::SndWnd => Int(config.send_window.into()),
            Knob::RcvWnd => Int(config.receive_window.into()),
            Knob::Mtu => Int(wide(config.mtu)),
            Knob::Stream => Bool(config.stream),
            Knob::DeadLink => Int(config.dead_link.into()),
            Knob::IdleTimeout => Int(config.idle_timeout_ms.into()),
            Knob::MaxMessageSize => Int(wide(config.max_message_size)),
            Knob::MaxSendQueueBytes => Int(wide(config.max_send_queue_bytes)),
            Knob::Linger => Int(config.linger_ms.into()),
            Knob::MinRto => Int(config.min_rto_ms?.into()),
            Knob::DeadLinkMs => Int(config.dead_link_ms?.into()),
        })
    }

    /// Sets it in `config`. Panics on a value of the wrong type or one its field cannot hold:
    /// only declared values (defaults and presets, checked by this module's tests) are set.
    pub fn set(self, config: &mut SessionConfig, value: KnobValue) {
        match self {
            Knob::Nodelay => config.nodelay = self.on(value),
            Knob::Interval => config.interval_ms = self.fit(value),
            Knob::Resend => config.fast_resend = self.fit(value),
            Knob::Nc => config.no_congestion_window = self.on(value),
            Knob::SndWnd => config.send_window = self.fit(value),
            Knob::RcvWnd => config.receive_window = self.fit(value),
            Knob::Mtu => config.mtu = self.fit(value),
            Knob::Stream => config.stream = self.on(value),
            Knob::DeadLink => config.dead_link = self.fit(value),
            Knob::IdleTimeout => config.idle_timeout_ms = self.fit(value),
            Knob::MaxMessageSize => config.max_message_size = self.fit(value),
            Knob::MaxSendQueueBytes => config.max_send_queue_bytes = self.fit(value),
            Knob::Linger => config.linger_ms = self.fit(value),
            Knob::MinRto => config.min_rto_ms = Some(self.fit(value)),
            Knob::DeadLinkMs => config.dead_link_ms = Some(self.fit(value)),
        }
    }

    fn on(self, value: KnobValue) -> bool {
        match value {
            KnobValue::Bool(on) => on,
            KnobValue::Int(_) => panic!("{self:?} is a boolean knob, not {value:?}"),
        }
    }

    fn fit<T: TryFrom<u64>>(self, value: KnobValue) -> T {
        match value {
            KnobValue::Int(n) => n
                .try_into()
                .unwrap_or_else(|_| panic!("{self:?} cannot hold {n}")),
            KnobValue::Bool(_) => panic!("{self:?} is an integer knob, not {value:?}"),
        }
    }
}

/// A knob's declared default as a `u64`, at compile time (a wrong declaration does not build).
pub(super) const fn default_int(knob: Knob) -> u64 {
    match knob.spec().kind {
        KnobKind::Int {
            default: Some(n), ..
        } => n,
        _ => panic!("not an integer knob with a default"),
    }
}

/// A knob's declared default as a `bool`, at compile time.
pub(super) const fn default_bool(knob: Knob) -> bool {
    match knob.spec().kind {
        KnobKind::Bool { default } => default,
        KnobKind::Int { .. } => panic!("not a boolean knob"),
    }
}

/// The knobs every preset sets, in the order of [`Preset::values`]; the rest keep their
/// defaults.
pub const PRESET_KNOBS: [Knob; 7] = [
    Knob::Nodelay,
    Knob::Interval,
    Knob::Resend,
    Knob::Nc,
    Knob::SndWnd,
    Knob::RcvWnd,
    Knob::Mtu,
];

impl Preset {
    /// Every preset, in the order options and the CLI list them.
    pub const ALL: [Preset; 5] = [
        Preset::Normal,
        Preset::Fast,
        Preset::Fast2,
        Preset::Fast3,
        Preset::Game,
    ];

    /// The preset of the Node API and the CLI when none is named.
    pub const PRODUCT_DEFAULT: Preset = Preset::Game;

    /// Its name in options and the CLI.
    pub const fn name(self) -> &'static str {
        match self {
            Preset::Normal => "normal",
            Preset::Fast => "fast",
            Preset::Fast2 => "fast2",
            Preset::Fast3 => "fast3",
            Preset::Game => "game",
        }
    }

    /// Its values of [`PRESET_KNOBS`], in that order.
    #[rustfmt::skip]
    pub const fn values(self) -> [KnobValue; 7] {
        use KnobValue::{Bool, Int};
        match self {
            //                 nodelay      interval resend  nc          sndWnd    rcvWnd    mtu
            Preset::Normal => [Bool(false), Int(40), Int(2), Bool(true), Int(32),  Int(128), Int(1400)],
            Preset::Fast =>   [Bool(false), Int(30), Int(2), Bool(true), Int(32),  Int(128), Int(1400)],
            Preset::Fast2 =>  [Bool(true),  Int(20), Int(2), Bool(true), Int(32),  Int(128), Int(1400)],
            Preset::Fast3 =>  [Bool(true),  Int(10), Int(2), Bool(true), Int(32),  Int(128), Int(1400)],
            // Fast3 with larger windows and an MTU that survives tunnels and mobile networks
            // without IP fragmentation.
            Preset::Game =>   [Bool(true),  Int(10), Int(2), Bool(true), Int(256), Int(256), Int(1200)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_presets_are_in_range_and_typed() {
        let config = SessionConfig::default();
        for knob in Knob::ALL {
            match (knob.spec().kind, knob.get(&config)) {
                (KnobKind::Bool { default }, Some(KnobValue::Bool(v))) => assert_eq!(v, default),
                (KnobKind::Int { default, min, max }, value) => {
                    assert_eq!(value, default.map(KnobValue::Int), "{knob:?}");
                    assert!(min <= max, "{knob:?}");
                    if let Some(d) = default {
                        assert!((min..=max).contains(&d), "{knob:?} default {d}");
                    }
                }
                (kind, value) => panic!("{knob:?}: {kind:?} holds {value:?}"),
            }
        }
        for preset in Preset::ALL {
            assert_eq!(Preset::from_name(preset.name()), Some(preset));
            let config = preset.config();
            config.validate().unwrap();
            for (knob, value) in PRESET_KNOBS.into_iter().zip(preset.values()) {
                assert_eq!(knob.get(&config), Some(value), "{preset:?} {knob:?}");
            }
        }
    }

    #[test]
    fn names_are_unique() {
        let mut options: Vec<_> = Knob::ALL.iter().filter_map(|k| k.spec().option).collect();
        let mut fields: Vec<_> = Knob::ALL.iter().map(|k| k.spec().field).collect();
        let n = (options.len(), fields.len());
        options.sort_unstable();
        options.dedup();
        fields.sort_unstable();
        fields.dedup();
        assert_eq!((options.len(), fields.len()), n);
    }

    #[test]
    fn set_then_get_round_trips_each_bound() {
        for knob in Knob::ALL {
            let mut config = SessionConfig::default();
            match knob.spec().kind {
                KnobKind::Bool { default } => {
                    knob.set(&mut config, KnobValue::Bool(!default));
                    assert_eq!(knob.get(&config), Some(KnobValue::Bool(!default)));
                }
                KnobKind::Int { min, max, .. } => {
                    for n in [min, max] {
                        knob.set(&mut config, KnobValue::Int(n));
                        assert_eq!(knob.get(&config), Some(KnobValue::Int(n)), "{knob:?}");
                    }
                }
            }
        }
    }
}
