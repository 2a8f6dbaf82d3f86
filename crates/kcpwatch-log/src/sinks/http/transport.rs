//! HTTP as a [`Transport`]: each batch is one POST whose answer gives each record its fate.
//! One request is in flight at a time, so batches leave in order.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::super::stats::Shared;
use super::super::transport::{Fate, Health, Learned, Policy, Rec, Transport};
use super::answer::{classify, Outcome};
use super::config::{HttpKind, HttpSinkConfig, MAX_RETRY_AFTER};

/// The largest answer read: a bulk answer for a large batch is a few hundred kilobytes.
const MAX_ANSWER_BYTES: u64 = 16 << 20;

/// The transport of an [`HttpSink`](super::HttpSink): Splunk HEC, Elasticsearch `_bulk` or
/// OTLP/HTTP. Made by [`HttpSink::start`](super::HttpSink::start).
pub struct HttpTransport {
    cfg: HttpSinkConfig,
    agent: ureq::Agent,
    shared: Arc<Shared>,
    /// The Elasticsearch action line, the same for every document.
    bulk_action: Vec<u8>,
    /// The fates of the last request's records, until they are asked for.
    fates: Vec<Fate>,
    /// Why the last request is to be sent again, and not before when, until asked for.
    failure: Option<(String, Option<Duration>)>,
    /// Whether the last request failed: the next success counts as a reconnection.
    failing: bool,
}

impl HttpTransport {
    pub(super) fn new(
        cfg: HttpSinkConfig,
        tls: Option<ureq::tls::TlsConfig>,
        shared: Arc<Shared>,
    ) -> Self {
        let mut builder = ureq::Agent::config_builder()
            // Error statuses are answers to classify (and may carry Retry-After), not errors.
            .http_status_as_error(false)
            .proxy(None)
            // A redirected POST is a misconfigured URL: refuse it as an answer, do not follow.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(concat!("kcpwatch/", env!("CARGO_PKG_VERSION")))
            .timeout_global(Some(cfg.timeout));
        if let Some(tls) = tls {
            builder = builder.tls_config(tls);
        }
        let agent = builder.build().new_agent();
        let bulk_action = match &cfg.kind {
            HttpKind::ElasticBulk { index } => {
                let index = Value::String(index.clone()).to_string();
                format!("{{\"create\":{{\"_index\":{index}}}}}\n").into_bytes()
            }
            _ => Vec::new(),
        };
        Self {
            cfg,
            agent,
            shared,
            bulk_action,
            fates: Vec::new(),
            failure: None,
            failing: false,
        }
    }

    /// The request body for the batch, and the indices of the records in it (the others
    /// cannot be sent to this kind of endpoint).
    fn body(&self, items: &[Rec]) -> (Vec<u8>, Vec<usize>) {
        let mut body = Vec::new();
        let mut sent = Vec::with_capacity(items.len());
        match &self.cfg.kind {
            HttpKind::SplunkHec { .. } => {
                for (i, item) in items.iter().enumerate() {
                    body.extend_from_slice(item);
                    body.push(b'\n');
                    sent.push(i);
                }
            }
            HttpKind::ElasticBulk { .. } => {
                for (i, item) in items.iter().enumerate() {
                    // A line feed inside would split the document and shift every later
                    // item of the answer against the records.
                    if item.contains(&b'\n') {
                        continue;
                    }
                    body.extend_from_slice(&self.bulk_action);
                    body.extend_from_slice(item);
                    body.push(b'\n');
                    sent.push(i);
                }
            }
            HttpKind::OtlpHttp => {
                let mut logs = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let Ok(Value::Object(mut request)) = serde_json::from_slice(item) else {
                        continue;
                    };
                    let Some(Value::Array(resource_logs)) = request.remove("resourceLogs") else {
                        continue;
                    };
                    logs.extend(resource_logs);
                    sent.push(i);
                }
                let mut request = serde_json::Map::new();
                request.insert("resourceLogs".to_owned(), Value::Array(logs));
                body = Value::Object(request).to_string().into_bytes();
            }
        }
        (body, sent)
    }

    fn request(&mut self, body: Vec<u8>, n: usize, stop: Option<Instant>) -> Outcome {
        let mut timeout = self.cfg.timeout;
        if let Some(deadline) = stop {
            // A request must not outlast the grace period by the whole timeout.
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Outcome::Retry {
                    error: "grace period over before the request".to_owned(),
                    after: None,
                    answered: false,
                };
            }
            timeout = timeout.min(left);
        }
        let content_type = match self.cfg.kind {
            HttpKind::ElasticBulk { .. } => "application/x-ndjson",
            _ => "application/json",
        };
        let mut req = self
            .agent
            .post(&self.cfg.url)
            .header("Content-Type", content_type);
        if let HttpKind::SplunkHec { token } = &self.cfg.kind {
            req = req.header("Authorization", format!("Splunk {token}"));
        }
        let body = if self.cfg.gzip {
            req = req.header("Content-Encoding", "gzip");
            match gzip(&body) {
                Ok(b) => b,
                Err(e) => {
                    return Outcome::Retry {
                        error: format!("gzip: {e}"),
                        after: None,
                        answered: false,
                    }
                }
            }
        } else {
            body
        };
        let req = req.config().timeout_global(Some(timeout)).build();
        let mut resp = match req.send(&body[..]) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    error: format!("POST {}: {e}", self.cfg.url),
                    after: None,
                    answered: false,
                }
            }
        };
        let status = resp.status().as_u16();
        let after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string();
        let text = match text {
            Ok(t) => t,
            // The status is known; only the bulk answer needs the body to settle items.
            Err(e) if (200..300).contains(&status) => {
                if matches!(self.cfg.kind, HttpKind::ElasticBulk { .. }) {
                    return Outcome::Retry {
                        error: format!("reading the bulk answer: {e}"),
                        after: None,
                        answered: true,
                    };
                }
                String::new()
            }
            Err(_) => String::new(),
        };
        classify(&self.cfg.kind, status, after, &text, n)
    }
}

impl Transport for HttpTransport {
    const THREAD_NAME: &'static str = "kcpwatch-http-sink";

    fn policy(&self) -> Policy {
        Policy {
            batch_records: self.cfg.batch_records,
            batch_bytes: usize::MAX,
            batch_delay: Some(self.cfg.batch_delay),
            spill_after: self.cfg.max_attempts_before_spool,
        }
    }

    fn connect(&mut self, _stop: Option<Instant>) -> Result<(), String> {
        // Each request connects (or reuses the agent's connection) by itself.
        Ok(())
    }

    /// Sends the batch and keeps the fate of every record of it.
    fn send(&mut self, batch: &[Rec], stop: Option<Instant>) -> Result<(), String> {
        let (body, sent) = self.body(batch);
        let mut fates = vec![Fate::Rejected; batch.len()];
        let invalid = batch.len() - sent.len();
        let mut error = (invalid > 0).then(|| {
            format!("{invalid} record(s) could not be put in a request body for this endpoint")
        });
        let mut after = None;
        let mut answered = true;
        if !sent.is_empty() {
            match self.request(body, sent.len(), stop) {
                Outcome::Items { fates: f, error: e } => {
                    for (&i, fate) in sent.iter().zip(f) {
                        fates[i] = fate;
                    }
                    error = e.or(error);
                }
                Outcome::Retry {
                    error: e,
                    after: a,
                    answered: ans,
                } => {
                    for &i in &sent {
                        fates[i] = Fate::Retry;
                    }
                    error = Some(e);
                    after = a;
                    answered = ans;
                }
                Outcome::Permanent(e) => error = Some(e),
            }
        }
        self.shared.connected.store(answered, Ordering::Relaxed);
        if fates.contains(&Fate::Retry) {
            let after = after.map(|a| a.min(MAX_RETRY_AFTER));
            self.failure = Some((error.unwrap_or_default(), after));
            self.failing = true;
        } else {
            if let Some(e) = error {
                self.shared.set_error(e);
            }
            if self.failing {
                Shared::add(&self.shared.reconnects, 1);
            }
            self.failing = false;
        }
        self.fates = fates;
        Ok(())
    }

    fn health(&mut self, _stop: Option<Instant>) -> Health {
        match self.failure.take() {
            Some((error, after)) => Health::Failed { error, after },
            None => Health::Up,
        }
    }

    fn fates(&mut self, _inflight: usize, fates: &mut Vec<Fate>) -> Learned {
        let answered = !self.fates.is_empty();
        fates.append(&mut self.fates);
        Learned {
            // A request that needs no retry: whatever went wrong before is over.
            progress: answered && !self.failing,
            revoked: 0,
        }
    }

    fn close(&mut self, _stop: Option<Instant>, _last: bool) {}
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::default(),
    );
    enc.write_all(body)?;
    enc.finish()
}
