//! What the formats share in meaning: the product name, the syslog severity, how an event
//! turned out, whether this endpoint refused what a record is about, the user, and the MITRE
//! ATT&CK technique of an alert. ECS, OCSF, CEF and the others map these to their own fields,
//! so every format says the same thing about a record.

use kcpwatch_proto::events::{abnormal_close, Control, OutcomeRule, UNREFUSED_FAILURES};
use kcpwatch_proto::CloseReason;

use super::fields::{get_str, get_u64, Fields};

/// Vendor and product in every format's product fields.
pub(super) const PRODUCT: &str = "kcpwatch";

/// Syslog severity names, by code (RFC 5424 §6.2.1), as `level_name` spells them.
pub(super) const SEVERITY_NAMES: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
];

/// Syslog severity 0-7: `severity`, else `level_name`, else info (6).
pub(super) fn severity(r: &Fields<'_>) -> u8 {
    if let Some(code) = get_u64(r, "severity") {
        return code.min(7) as u8;
    }
    get_str(r, "level_name")
        .and_then(|n| SEVERITY_NAMES.iter().position(|s| *s == n))
        .map_or(6, |i| i as u8)
}

/// How an event turned out, the same in ECS `event.outcome`, OCSF `status_id` and CEF
/// `outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Success,
    Failure,
    Unknown,
}

impl Outcome {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        }
    }
}

/// Whether `reason` is a close reason that means the connection broke rather than ended.
pub(super) fn abnormal_close_reason(reason: &str) -> bool {
    CloseReason::ALL
        .into_iter()
        .find(|r| r.as_str() == reason)
        .is_some_and(abnormal_close)
}

/// A `connection_failed` whose reason says this endpoint refused nothing
/// ([`UNREFUSED_FAILURES`]): a client's own attempt that timed out or that ICMP said nothing
/// answers, a handshake the client abandoned, a shutdown.
pub(super) fn unrefused_failure(r: &Fields<'_>) -> bool {
    get_str(r, "reason")
        .is_some_and(|reason| UNREFUSED_FAILURES.iter().any(|f| f.as_str() == reason))
}

/// `None` for records that report rather than do something (`stats`, `alert`, unknown ones).
pub(super) fn outcome(r: &Fields<'_>) -> Option<Outcome> {
    Some(match r.kind?.spec().outcome {
        OutcomeRule::None => return None,
        OutcomeRule::Success => Outcome::Success,
        OutcomeRule::Failure => Outcome::Failure,
        OutcomeRule::Unknown => Outcome::Unknown,
        OutcomeRule::ByStateTransition => {
            // An attempt or a handshake that ended without a connection.
            if matches!(get_str(r, "prev_state"), Some("attempted" | "handshaking"))
                && get_str(r, "state") == Some("closed")
            {
                Outcome::Failure
            } else {
                Outcome::Success
            }
        }
        OutcomeRule::ByCloseReason => {
            if get_str(r, "reason").is_some_and(abnormal_close_reason) {
                Outcome::Failure
            } else {
                Outcome::Success
            }
        }
    })
}

/// Whether this endpoint itself turned away what the record is about: a dropped datagram, or
/// an attempt it refused (by a guard or limit rule, or the application's token check). Not a
/// client's own attempt that timed out (`handshake_timeout`), that ICMP said nothing answers
/// (`unreachable`) or that the server refused
/// (rule `server_rejected`): nothing was blocked here, so the formats' "blocked" / "denied"
/// control fields are left out for those.
pub(super) fn refused_here(r: &Fields<'_>) -> bool {
    let Some(kind) = r.kind else {
        return false;
    };
    match kind.spec().control {
        Control::Blocked => true,
        Control::BlockedUnlessUnrefused => {
            !unrefused_failure(r)
                && !matches!(
                    get_str(r, "rule"),
                    Some("server_rejected" | "handshake_timeout")
                )
        }
        Control::None | Control::Allowed | Control::RefusedMessage => false,
    }
}

/// The user `authenticate` named (`user_id`), or its keyed pseudonym (`user_id_pseudonym`,
/// under hmac): what each format's user id field carries.
pub(super) fn user_id<'a>(r: &Fields<'a>) -> Option<&'a str> {
    get_str(r, "user_id").or_else(|| get_str(r, "user_id_pseudonym"))
}

/// A MITRE ATT&CK technique as the alert formats spell it out (`mitre_technique` carries only
/// the id): the technique, its sub-technique when the id has one, and its tactic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Attack<'a> {
    pub(super) technique_id: &'a str,
    pub(super) technique_name: Option<&'static str>,
    pub(super) subtechnique: Option<(&'a str, Option<&'static str>)>,
    pub(super) tactic: Option<(&'static str, &'static str)>,
}

/// `Rule::technique()`'s ids (crates/kcpwatch-proto/src/detect), named; an id not listed here
/// is passed on with no name or tactic.
pub(super) fn attack(id: &str) -> Attack<'_> {
    const IMPACT: (&str, &str) = ("TA0040", "Impact");
    let (technique_id, sub) = match id.split_once('.') {
        Some((parent, _)) => (parent, Some(id)),
        None => (id, None),
    };
    let (technique_name, sub_name, tactic) = match id {
        "T1498.001" => (
            Some("Network Denial of Service"),
            Some("Direct Network Flood"),
            Some(IMPACT),
        ),
        "T1499.002" => (
            Some("Endpoint Denial of Service"),
            Some("Service Exhaustion Flood"),
            Some(IMPACT),
        ),
        "T1110" => (
            Some("Brute Force"),
            None,
            Some(("TA0006", "Credential Access")),
        ),
        "T1046" => (
            Some("Network Service Discovery"),
            None,
            Some(("TA0007", "Discovery")),
        ),
        "T1565.002" => (
            Some("Data Manipulation"),
            Some("Transmitted Data Manipulation"),
            Some(IMPACT),
        ),
        _ => (None, None, None),
    };
    Attack {
        technique_id,
        technique_name,
        subtechnique: sub.map(|s| (s, sub_name)),
        tactic,
    }
}
