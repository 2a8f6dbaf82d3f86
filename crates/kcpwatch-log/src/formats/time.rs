//! The record's time, and the RFC 3339 times some records carry in fields.

use std::time::{Duration, UNIX_EPOCH};

use super::fields::{get_str, get_u64, Fields};
use super::json_writer::push_u64;

/// An RFC 3339 text field (`first_seen`, `last_seen`) as Unix milliseconds.
pub(super) fn rfc3339_millis(r: &Fields<'_>, key: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(get_str(r, key)?).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64)
}

/// An instant with microsecond precision, the precision of `ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Timestamp {
    micros: u64,
}

impl Timestamp {
    pub(super) fn unix_millis(self) -> u64 {
        self.micros / 1000
    }

    pub(super) fn unix_nanos(self) -> u128 {
        u128::from(self.micros) * 1000
    }

    /// Seconds with six decimals, as a JSON number (GELF, HEC).
    pub(super) fn write_seconds(self, out: &mut String) {
        push_u64(out, self.micros / 1_000_000);
        let fraction = self.micros % 1_000_000;
        out.push('.');
        for digit in (0..6).rev() {
            out.push(char::from(b'0' + (fraction / 10u64.pow(digit) % 10) as u8));
        }
    }

    pub(super) fn rfc3339(self) -> String {
        humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(self.micros))
            .to_string()
    }

    pub(super) fn minus_millis(self, ms: u64) -> Self {
        Timestamp {
            micros: self.micros.saturating_sub(ms.saturating_mul(1000)),
        }
    }
}

/// The record's time: `ts` (microseconds), else `time` (milliseconds).
pub(super) fn timestamp(r: &Fields<'_>) -> Option<Timestamp> {
    if let Some(ts) = get_str(r, "ts") {
        if let Ok(t) = humantime::parse_rfc3339(ts) {
            if let Ok(d) = t.duration_since(UNIX_EPOCH) {
                return Some(Timestamp {
                    micros: d.as_micros() as u64,
                });
            }
        }
    }
    get_u64(r, "time").map(|ms| Timestamp {
        micros: ms.saturating_mul(1000),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::fields::Record;

    #[test]
    fn timestamp_prefers_ts() {
        let r: Record =
            serde_json::from_str(r#"{"ts":"2025-11-26T15:13:20.412305Z","time":1764170000412}"#)
                .unwrap();
        let t = timestamp(&Fields::of(&r)).unwrap();
        assert_eq!(t.micros, 1_764_170_000_412_305);
        assert_eq!(t.rfc3339(), "2025-11-26T15:13:20.412305Z");
        let mut s = String::new();
        t.write_seconds(&mut s);
        assert_eq!(s, "1764170000.412305");
        let r: Record = serde_json::from_str(r#"{"time":1764170000412}"#).unwrap();
        assert_eq!(
            timestamp(&Fields::of(&r)).unwrap().micros,
            1_764_170_000_412_000
        );
    }
}
