//! How an HTTP endpoint's answer settles the records of a request: per endpoint kind, which
//! statuses are retried, refused for good or accepted, and for Elasticsearch `_bulk` and
//! OTLP partial success, which records of the batch.

use std::time::Duration;

use serde_json::Value;

use super::super::transport::Fate;
use super::config::HttpKind;

/// The endpoint's answer to one request, as far as the sink cares.
pub(super) enum Outcome {
    /// Each record sent (in order) has its fate; `error` explains the failed ones.
    Items {
        fates: Vec<Fate>,
        error: Option<String>,
    },
    /// Send the whole batch again, not before `after`.
    Retry {
        error: String,
        after: Option<Duration>,
        /// Whether the endpoint answered at all (an HTTP status) rather than failing to.
        answered: bool,
    },
    /// The whole batch is refused for good.
    Permanent(String),
}

/// Reads an answer of `status` to a request of `n` records.
pub(super) fn classify(
    kind: &HttpKind,
    status: u16,
    after: Option<Duration>,
    text: &str,
    n: usize,
) -> Outcome {
    let ok = (200..300).contains(&status);
    let retryable = match kind {
        HttpKind::OtlpHttp => matches!(status, 429 | 502 | 503 | 504),
        _ => status == 429 || status >= 500,
    };
    let answer = || {
        let t = text.trim();
        let t = t.get(..t.len().min(300)).unwrap_or(t);
        format!("HTTP {status}: {t}")
    };
    if !ok {
        return if retryable {
            Outcome::Retry {
                error: answer(),
                after,
                answered: true,
            }
        } else {
            Outcome::Permanent(answer())
        };
    }
    let all = |fate| Outcome::Items {
        fates: vec![fate; n],
        error: None,
    };
    match kind {
        HttpKind::SplunkHec { .. } => match serde_json::from_str::<Value>(text) {
            Ok(v) => match v.get("code").and_then(Value::as_i64) {
                Some(0) | None => all(Fate::Delivered),
                Some(_) => Outcome::Permanent(answer()),
            },
            // An empty or non-JSON 2xx (a HEC-compatible relay): accepted.
            Err(_) => all(Fate::Delivered),
        },
        HttpKind::ElasticBulk { .. } => bulk_items(text, n).unwrap_or_else(|| Outcome::Retry {
            error: format!("unreadable bulk answer: {}", answer()),
            after,
            answered: true,
        }),
        HttpKind::OtlpHttp => {
            let rejected = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get("partialSuccess")?.get("rejectedLogRecords").cloned())
                .and_then(|r| match r {
                    // proto3 JSON writes int64 as a string.
                    Value::String(s) => s.parse::<u64>().ok(),
                    v => v.as_u64(),
                })
                .unwrap_or(0)
                .min(n as u64) as usize;
            if rejected == 0 {
                return all(Fate::Delivered);
            }
            // Which ones is not said: the count is what matters.
            let mut fates = vec![Fate::Delivered; n];
            fates[n - rejected..].fill(Fate::Rejected);
            Outcome::Items {
                fates,
                error: Some(format!("OTLP partial success: {}", answer())),
            }
        }
    }
}

/// The fate of each document from a `_bulk` answer, or `None` if it cannot be read.
fn bulk_items(text: &str, n: usize) -> Option<Outcome> {
    let v: Value = serde_json::from_str(text).ok()?;
    if !v.get("errors")?.as_bool()? {
        return Some(Outcome::Items {
            fates: vec![Fate::Delivered; n],
            error: None,
        });
    }
    let items = v.get("items")?.as_array()?;
    if items.len() != n {
        return None;
    }
    let mut first = None;
    let mut fates = Vec::with_capacity(n);
    for item in items {
        // Each item is `{"<action>": {"status": ..., "error": {...}}}`.
        let result = item.as_object()?.values().next()?;
        let status = result.get("status")?.as_u64()?;
        let fate = match status {
            200..=299 => Fate::Delivered,
            429 | 500..=599 => Fate::Retry,
            _ => Fate::Rejected,
        };
        if fate != Fate::Delivered && first.is_none() {
            let reason = result
                .get("error")
                .map(Value::to_string)
                .unwrap_or_default();
            first = Some(format!("status {status} {reason}"));
        }
        fates.push(fate);
    }
    let error = first.map(|first| {
        let count = |f| fates.iter().filter(|&&x| x == f).count();
        format!(
            "bulk answer: {} item(s) to retry, {} lost; first: {first}",
            count(Fate::Retry),
            count(Fate::Rejected)
        )
    });
    Some(Outcome::Items { fates, error })
}
