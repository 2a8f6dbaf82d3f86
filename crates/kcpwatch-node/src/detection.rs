//! Detector settings as JavaScript passes them (resolved by `src/detection.ts`), and the
//! built-in rules with their defaults for JavaScript (the Sigma rules' test compares them).

// `detector_rules` and what only it uses are reached from JavaScript through the napi export,
// which rustc's test build of this crate does not see.
#![cfg_attr(test, allow(dead_code))]

use std::net::IpAddr;

use kcpwatch_proto::detect::{DetectorConfig, Rule, Threshold};

use crate::errors::invalid;

/// One rule's threshold and window.
#[napi(object)]
pub struct RuleThresholdOptions {
    pub rule: RuleId,
    pub threshold: u32,
    /// Milliseconds.
    pub window: u32,
}

/// The detectors' settings.
#[napi(object)]
pub struct DetectionOptions {
    pub enabled: bool,
    pub table_capacity: u32,
    /// Milliseconds between updates of an ongoing alert.
    pub update_interval: u32,
    pub thresholds: Vec<RuleThresholdOptions>,
    /// KCPW-002: how far above its baseline the global handshake rate must rise.
    pub spike_factor: u32,
    /// KCPW-007: attempts in the window before the ratio counts.
    pub error_rate_min_attempts: u32,
    /// Enforcement: milliseconds a flagged source may open no new connection (0: off).
    pub refuse_ms: u32,
    /// Rules that enforce (empty: every per-source rule).
    pub enforce_rules: Vec<RuleId>,
    /// Networks never refused (`ADDRESS/PREFIX`, split and checked by `resolveDetection`).
    pub allow_list: Vec<NetworkOptions>,
}

/// A network: an IP address literal and a prefix length (at most 32 for IPv4, 128 for IPv6).
#[napi(object)]
pub struct NetworkOptions {
    pub address: String,
    pub prefix: u32,
}

/// A rule's stable id (`rule_id`), shared with the Sigma rules in `rules/`.
#[napi(string_enum)]
#[derive(Clone, Copy)]
pub enum RuleId {
    #[napi(value = "KCPW-001")]
    Kcpw001,
    #[napi(value = "KCPW-002")]
    Kcpw002,
    #[napi(value = "KCPW-003")]
    Kcpw003,
    #[napi(value = "KCPW-004")]
    Kcpw004,
    #[napi(value = "KCPW-005")]
    Kcpw005,
    #[napi(value = "KCPW-006")]
    Kcpw006,
    #[napi(value = "KCPW-007")]
    Kcpw007,
    #[napi(value = "KCPW-008")]
    Kcpw008,
    #[napi(value = "KCPW-009")]
    Kcpw009,
    #[napi(value = "KCPW-010")]
    Kcpw010,
}

impl From<RuleId> for Rule {
    fn from(id: RuleId) -> Self {
        match id {
            RuleId::Kcpw001 => Rule::HandshakeFloodSource,
            RuleId::Kcpw002 => Rule::HandshakeFloodGlobal,
            RuleId::Kcpw003 => Rule::FailedHandshakesSource,
            RuleId::Kcpw004 => Rule::ConvScanSource,
            RuleId::Kcpw005 => Rule::InvalidBurst,
            RuleId::Kcpw006 => Rule::DeadLinkBurst,
            RuleId::Kcpw007 => Rule::ErrorRateSpike,
            RuleId::Kcpw008 => Rule::ChurnSource,
            RuleId::Kcpw009 => Rule::PerIpCap,
            RuleId::Kcpw010 => Rule::DecryptFailedSource,
        }
    }
}

// No catch-all either way: a rule added to kcpwatch-proto fails to compile here until it has
// an id JavaScript can name.
impl From<Rule> for RuleId {
    fn from(rule: Rule) -> Self {
        match rule {
            Rule::HandshakeFloodSource => RuleId::Kcpw001,
            Rule::HandshakeFloodGlobal => RuleId::Kcpw002,
            Rule::FailedHandshakesSource => RuleId::Kcpw003,
            Rule::ConvScanSource => RuleId::Kcpw004,
            Rule::InvalidBurst => RuleId::Kcpw005,
            Rule::DeadLinkBurst => RuleId::Kcpw006,
            Rule::ErrorRateSpike => RuleId::Kcpw007,
            Rule::ChurnSource => RuleId::Kcpw008,
            Rule::PerIpCap => RuleId::Kcpw009,
            Rule::DecryptFailedSource => RuleId::Kcpw010,
        }
    }
}

/// A built-in rule and its defaults.
#[napi(object)]
pub struct RuleInfo {
    pub id: RuleId,
    pub name: String,
    pub threshold: u32,
    /// Milliseconds.
    pub window: u32,
    /// `source` or `listener`.
    pub key: String,
    /// Syslog severity name of its alert.
    pub severity: String,
    pub technique: Option<String>,
    /// A rate rule (KCPW-007): the attempts in its window below which it does not fire.
    pub min_attempts: Option<u32>,
}

fn slot(config: &mut DetectorConfig, rule: Rule) -> ThresholdSlot<'_> {
    match rule {
        Rule::HandshakeFloodSource => ThresholdSlot::Plain(&mut config.handshake_flood_source),
        Rule::HandshakeFloodGlobal => ThresholdSlot::Plain(&mut config.handshake_flood_global),
        Rule::FailedHandshakesSource => ThresholdSlot::Plain(&mut config.failed_handshakes_source),
        Rule::ConvScanSource => ThresholdSlot::Plain(&mut config.conv_scan_source),
        Rule::InvalidBurst => ThresholdSlot::Plain(&mut config.invalid_burst),
        Rule::DeadLinkBurst => ThresholdSlot::Plain(&mut config.dead_link_burst),
        Rule::ErrorRateSpike => ThresholdSlot::Rate(
            &mut config.error_rate_percent,
            &mut config.error_rate_window_ms,
        ),
        Rule::ChurnSource => ThresholdSlot::Plain(&mut config.churn_source),
        Rule::PerIpCap => ThresholdSlot::Plain(&mut config.per_ip_cap),
        Rule::DecryptFailedSource => ThresholdSlot::Plain(&mut config.decrypt_failed_source),
    }
}

enum ThresholdSlot<'a> {
    Plain(&'a mut Threshold),
    Rate(&'a mut u32, &'a mut u64),
}

fn read(config: &mut DetectorConfig, rule: Rule) -> (u32, u64) {
    match slot(config, rule) {
        ThresholdSlot::Plain(t) => (t.threshold, t.window_ms),
        ThresholdSlot::Rate(percent, window) => (*percent, *window),
    }
}

/// The runtime's detector configuration.
pub(crate) fn detector_config(o: &DetectionOptions) -> crate::errors::Result<DetectorConfig> {
    let mut config = DetectorConfig {
        enabled: o.enabled,
        table_capacity: o.table_capacity.max(8) as usize,
        update_interval_ms: u64::from(o.update_interval.max(1)),
        spike_factor: o.spike_factor.max(1),
        error_rate_min_attempts: o.error_rate_min_attempts,
        refuse_ms: u64::from(o.refuse_ms),
        ..DetectorConfig::default()
    };
    for t in &o.thresholds {
        let rule = Rule::from(t.rule);
        match slot(&mut config, rule) {
            ThresholdSlot::Plain(slot) => {
                *slot = Threshold {
                    threshold: t.threshold.max(1),
                    window_ms: u64::from(t.window.max(1)),
                }
            }
            ThresholdSlot::Rate(percent, window) => {
                *percent = t.threshold.clamp(1, 100);
                *window = u64::from(t.window.max(1));
            }
        }
    }
    config.enforce_rules = o.enforce_rules.iter().map(|&id| Rule::from(id)).collect();
    config.allow_list = o
        .allow_list
        .iter()
        .map(|net| {
            let ip: IpAddr = net.address.parse().map_err(|_| {
                invalid(format!(
                    "allowList address {:?} is not an IP address",
                    net.address
                ))
            })?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = u8::try_from(net.prefix)
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| {
                    invalid(format!(
                        "allowList entry {}/{} has a bad prefix",
                        net.address, net.prefix
                    ))
                })?;
            Ok((ip, len))
        })
        .collect::<crate::errors::Result<_>>()?;
    Ok(config)
}

/// The built-in rules with their default thresholds and windows.
#[napi]
pub fn detector_rules() -> Vec<RuleInfo> {
    let mut defaults = DetectorConfig::default();
    Rule::ALL
        .into_iter()
        .map(|rule| {
            let (threshold, window) = read(&mut defaults, rule);
            let min_attempts = matches!(slot(&mut defaults, rule), ThresholdSlot::Rate(..))
                .then_some(defaults.error_rate_min_attempts);
            let per_source = matches!(
                rule,
                Rule::HandshakeFloodSource
                    | Rule::FailedHandshakesSource
                    | Rule::ConvScanSource
                    | Rule::ChurnSource
                    | Rule::PerIpCap
                    | Rule::DecryptFailedSource
            );
            RuleInfo {
                id: rule.into(),
                name: rule.name().into(),
                threshold,
                window: window as u32,
                key: if per_source { "source" } else { "listener" }.into(),
                severity: rule.severity().as_str().into(),
                technique: rule.technique().map(Into::into),
                min_attempts,
            }
        })
        .collect()
}
