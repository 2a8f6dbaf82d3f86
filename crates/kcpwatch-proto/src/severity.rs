//! Syslog severity (RFC 5424), which every record carries and the `level` option filters by.

/// Syslog severity (RFC 5424); lower is more severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Severity {
    /// 0: the system is unusable.
    Emergency = 0,
    /// 1: act immediately.
    Alert = 1,
    /// 2: critical conditions.
    Critical = 2,
    /// 3: error conditions.
    Error = 3,
    /// 4: warning conditions.
    Warning = 4,
    /// 5: normal but significant.
    Notice = 5,
    /// 6: informational.
    Informational = 6,
    /// 7: debug-level.
    Debug = 7,
}

impl Severity {
    /// Every severity, indexed by its syslog number.
    pub const ALL: [Severity; 8] = [
        Self::Emergency,
        Self::Alert,
        Self::Critical,
        Self::Error,
        Self::Warning,
        Self::Notice,
        Self::Informational,
        Self::Debug,
    ];

    /// The syslog number.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The name used in `level_name` and in the `level` option.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Emergency => "emergency",
            Self::Alert => "alert",
            Self::Critical => "critical",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Notice => "notice",
            Self::Informational => "info",
            Self::Debug => "debug",
        }
    }

    /// Parses a name as [`Severity::as_str`] prints it.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "emergency" => Self::Emergency,
            "alert" => Self::Alert,
            "critical" => Self::Critical,
            "error" => Self::Error,
            "warning" => Self::Warning,
            "notice" => Self::Notice,
            "info" => Self::Informational,
            "debug" => Self::Debug,
            _ => return None,
        })
    }

    /// The pino level number (pino has no notice, alert or emergency: they map to the
    /// nearest pino level at or above their urgency).
    pub fn pino_level(self) -> u8 {
        match self {
            Self::Debug => 20,
            Self::Informational | Self::Notice => 30,
            Self::Warning => 40,
            Self::Error => 50,
            Self::Critical | Self::Alert | Self::Emergency => 60,
        }
    }
}
