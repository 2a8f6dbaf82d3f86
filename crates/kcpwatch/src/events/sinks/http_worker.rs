//! The HTTP sink thread: groups records into batches, POSTs them, reads the answers, spools
//! what cannot be delivered, replays the spool in order when the endpoint returns.
//!
//! Order of the records, oldest first, is always: `retry` (a batch that failed, or its items
//! to send again), then the spool, then `parked`, then the queue. A batch is filled in that
//! order, and the spool only grows (at its end) while no batch is being filled, so a batch
//! holding queue records never has older records behind it in `retry` or the spool.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select};
use serde_json::Value;

use super::super::backoff::Backoff;
use super::super::spool::{Pos, Spool, HEADER};
use super::super::stats::{Loss, Shared};
use super::{HttpKind, HttpSinkConfig, MAX_RETRY_AFTER};

/// How long an idle thread waits before looking at its control channel again.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// The largest answer read: a bulk answer for a large batch is a few hundred kilobytes.
const MAX_ANSWER_BYTES: u64 = 16 << 20;

type Rec = Box<[u8]>;

/// Messages from the handle.
pub(super) enum Control {
    /// Stop: deliver until the deadline, then spool (or drop) the rest.
    Stop(Instant),
}

/// What the thread returns to `close`.
pub(super) struct Finished {
    pub(super) spooled_on_close: u64,
}

struct Item {
    data: Rec,
    /// Where the spool continues after it, when it came from the spool.
    spool: Option<Pos>,
}

/// What became of one record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Delivered,
    Retry,
    Lost,
}

/// The endpoint's answer to one request, as far as the sink cares.
enum Outcome {
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

pub(super) struct Worker {
    cfg: HttpSinkConfig,
    agent: ureq::Agent,
    rx: Receiver<Rec>,
    ctl: Receiver<Control>,
    shared: Arc<Shared>,
    rejected: Arc<AtomicU64>,
    spool: Option<Spool>,
    backoff: Backoff,
    retry: VecDeque<Rec>,
    /// A queue record that did not fit in the full spool: newer than the spool, older than the
    /// queue (which has no front to put it back to).
    parked: Option<Rec>,
    batch: Vec<Item>,
    /// When the first record of `batch` was taken.
    since: Option<Instant>,
    /// Whether `batch` holds records that already waited (retried or spooled): it leaves now.
    backlog: bool,
    failures: u32,
    next_attempt: Instant,
    stop: Option<Instant>,
    high_water: usize,
    /// The Elasticsearch action line, the same for every document.
    bulk_action: Vec<u8>,
}

impl Worker {
    pub(super) fn new(
        cfg: HttpSinkConfig,
        tls: Option<ureq::tls::TlsConfig>,
        rx: Receiver<Rec>,
        ctl: Receiver<Control>,
        shared: Arc<Shared>,
        rejected: Arc<AtomicU64>,
        spool: Option<Spool>,
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
        let backoff = Backoff::new(cfg.backoff.0, cfg.backoff.1);
        // Three quarters full means the endpoint is slower than the records: move them to the
        // spool rather than let `send` drop them.
        let high_water = (cfg.queue_records * 3 / 4).max(1);
        Self {
            cfg,
            agent,
            rx,
            ctl,
            shared,
            rejected,
            spool,
            backoff,
            retry: VecDeque::new(),
            parked: None,
            batch: Vec::new(),
            since: None,
            backlog: false,
            failures: 0,
            next_attempt: Instant::now(),
            stop: None,
            high_water,
            bulk_action,
        }
    }

    pub(super) fn run(mut self) -> Finished {
        loop {
            self.check_control();
            self.publish();
            if let Some(deadline) = self.stop {
                if self.all_delivered() || Instant::now() >= deadline {
                    break;
                }
            }
            let now = Instant::now();
            if now < self.next_attempt {
                // Backing off; the batch is empty (a failed one went to `retry`), so the spool
                // can take what arrives.
                let spill = self.down() || self.rx.len() >= self.high_water;
                if spill {
                    self.spill(usize::MAX);
                }
                let watch = spill && self.spool.is_some() && self.parked.is_none();
                let until = self.cap(self.next_attempt);
                self.wait(until, watch);
                continue;
            }
            self.fill();
            let Some(since) = self.since else {
                let until = self.cap(now + IDLE_POLL);
                self.wait(until, true);
                continue;
            };
            let due = self.batch.len() >= self.cfg.batch_records
                || self.backlog
                || self.stop.is_some()
                || now >= since + self.cfg.batch_delay;
            if !due {
                let until = self.cap(since + self.cfg.batch_delay);
                self.wait(until, true);
                continue;
            }
            self.post();
            if self.rx.len() >= self.high_water {
                self.spill(self.rx.len());
            }
        }
        self.finish()
    }

    fn down(&self) -> bool {
        self.failures >= self.cfg.max_attempts_before_spool
    }

    /// Takes records into the batch, oldest first, up to its size.
    fn fill(&mut self) {
        while self.batch.len() < self.cfg.batch_records {
            let item = if let Some(data) = self.retry.pop_front() {
                self.backlog = true;
                Item { data, spool: None }
            } else if let Some(spool) = self.spool.as_mut().filter(|s| s.unread() > 0) {
                match spool.read_next() {
                    Ok(Some(r)) => {
                        self.backlog = true;
                        Item {
                            data: r.data.into_boxed_slice(),
                            spool: Some(r.after),
                        }
                    }
                    Ok(None) => continue,
                    Err((e, lost)) => {
                        self.shared.lose(Loss::Io, lost);
                        self.shared.set_error(format!("reading the spool: {e}"));
                        continue;
                    }
                }
            } else if let Some(data) = self.parked.take() {
                Item { data, spool: None }
            } else {
                match self.rx.try_recv() {
                    Ok(data) => Item { data, spool: None },
                    Err(_) => break,
                }
            };
            self.since.get_or_insert_with(Instant::now);
            self.batch.push(item);
        }
    }

    /// Sends the batch and settles every record of it.
    fn post(&mut self) {
        let items = std::mem::take(&mut self.batch);
        self.since = None;
        self.backlog = false;
        // What the thread holds during the request, should the handle have to abandon it.
        self.shared.inflight.store(
            (self.retry.len() + items.len() + usize::from(self.parked.is_some())) as u64,
            Ordering::Relaxed,
        );
        let (body, sent) = self.body(&items);
        let mut fates = vec![Fate::Lost; items.len()];
        let invalid = items.len() - sent.len();
        let mut error = (invalid > 0).then(|| {
            format!("{invalid} record(s) could not be put in a request body for this endpoint")
        });
        let mut after = None;
        let mut answered = true;
        if !sent.is_empty() {
            match self.request(body, sent.len()) {
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
        self.settle(items, &fates, error, after, answered);
    }

    fn settle(
        &mut self,
        items: Vec<Item>,
        fates: &[Fate],
        error: Option<String>,
        after: Option<Duration>,
        answered: bool,
    ) {
        // Every spooled record of the batch is done with the spool now: delivered, lost, or
        // back in memory to be sent again.
        let mut spool_to = None;
        let mut spool_records = 0;
        let mut spool_bytes = 0;
        let mut delivered = 0;
        let mut replayed = 0;
        let mut lost = 0;
        let mut again = Vec::new();
        for (item, &fate) in items.into_iter().zip(fates) {
            if let Some(pos) = item.spool {
                spool_to = Some(pos);
                spool_records += 1;
                spool_bytes += HEADER + item.data.len() as u64;
            }
            match fate {
                Fate::Delivered => {
                    delivered += 1;
                    replayed += u64::from(item.spool.is_some());
                }
                Fate::Lost => lost += 1,
                Fate::Retry => again.push(item.data),
            }
        }
        if let (Some(pos), Some(spool)) = (spool_to, self.spool.as_mut()) {
            if let Err(e) = spool.consume_to(pos, spool_records, spool_bytes) {
                self.shared.set_error(format!("updating the spool: {e}"));
            }
        }
        Shared::add(&self.shared.delivered, delivered);
        Shared::add(&self.shared.replayed, replayed);
        if lost > 0 {
            self.shared.lose(Loss::Invalid, lost);
            self.rejected.fetch_add(lost, Ordering::Relaxed);
        }
        self.shared.connected.store(answered, Ordering::Relaxed);
        if let Some(e) = error {
            self.shared.set_error(e);
        }
        if again.is_empty() {
            if self.failures > 0 {
                Shared::add(&self.shared.reconnects, 1);
            }
            self.failures = 0;
            self.backoff.reset();
            return;
        }
        Shared::add(&self.shared.retried, again.len() as u64);
        for data in again.into_iter().rev() {
            self.retry.push_front(data);
        }
        self.failures = self.failures.saturating_add(1);
        let delay = self
            .backoff
            .next_delay()
            .max(after.unwrap_or_default().min(MAX_RETRY_AFTER));
        self.next_attempt = Instant::now() + delay;
    }

    /// The request body for the batch, and the indices of the records in it (the others
    /// cannot be sent to this kind of endpoint).
    fn body(&self, items: &[Item]) -> (Vec<u8>, Vec<usize>) {
        let mut body = Vec::new();
        let mut sent = Vec::with_capacity(items.len());
        match &self.cfg.kind {
            HttpKind::SplunkHec { .. } => {
                for (i, item) in items.iter().enumerate() {
                    body.extend_from_slice(&item.data);
                    body.push(b'\n');
                    sent.push(i);
                }
            }
            HttpKind::ElasticBulk { .. } => {
                for (i, item) in items.iter().enumerate() {
                    // A line feed inside would split the document and shift every later
                    // item of the answer against the records.
                    if item.data.contains(&b'\n') {
                        continue;
                    }
                    body.extend_from_slice(&self.bulk_action);
                    body.extend_from_slice(&item.data);
                    body.push(b'\n');
                    sent.push(i);
                }
            }
            HttpKind::OtlpHttp => {
                let mut logs = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let Ok(Value::Object(mut request)) = serde_json::from_slice(&item.data) else {
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

    fn request(&mut self, body: Vec<u8>, n: usize) -> Outcome {
        let mut timeout = self.cfg.timeout;
        if let Some(deadline) = self.stop {
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

    /// Moves up to `max` records from the queue to the end of the spool, while it has room.
    /// A record that can never fit is dropped; one that does not fit now is parked, and the
    /// queue behind it waits for room (when it fills, `send` drops the newest records).
    fn spill(&mut self, max: usize) {
        debug_assert!(
            self.batch.is_empty(),
            "the spool grows only between batches"
        );
        let Some(spool) = self.spool.as_mut() else {
            return;
        };
        let mut moved = 0;
        while moved < max {
            let record = match self.parked.take() {
                Some(r) => r,
                None => match self.rx.try_recv() {
                    Ok(r) => r,
                    Err(_) => break,
                },
            };
            if !spool.could_fit(record.len()) {
                self.shared.lose(Loss::SpoolFull, 1);
                continue;
            }
            if !spool.has_room(record.len()) {
                self.parked = Some(record);
                break;
            }
            match spool.append(&record) {
                Ok(()) => {
                    moved += 1;
                    Shared::add(&self.shared.spooled_total, 1);
                }
                Err(e) => {
                    self.shared.lose(Loss::Io, 1);
                    self.shared.set_error(format!("writing the spool: {e}"));
                }
            }
        }
        self.publish();
    }

    fn finish(mut self) -> Finished {
        if self.shared.is_abandoned() {
            // The handle stopped waiting and counted everything held here as lost.
            return Finished {
                spooled_on_close: 0,
            };
        }
        // A batch still being filled is older than the queue and newer than `retry`.
        let items = std::mem::take(&mut self.batch);
        let mut spool_to = None;
        let mut spool_records = 0;
        let mut spool_bytes = 0;
        for item in items {
            if let Some(pos) = item.spool {
                spool_to = Some(pos);
                spool_records += 1;
                spool_bytes += HEADER + item.data.len() as u64;
            }
            self.retry.push_back(item.data);
        }
        if let (Some(pos), Some(spool)) = (spool_to, self.spool.as_mut()) {
            if let Err(e) = spool.consume_to(pos, spool_records, spool_bytes) {
                self.shared.set_error(format!("updating the spool: {e}"));
            }
        }
        self.shared.connected.store(false, Ordering::Relaxed);
        let mut spooled_on_close = 0;
        let queued: Vec<Rec> = self
            .parked
            .take()
            .into_iter()
            .chain(self.rx.try_iter())
            .collect();
        match self.spool.as_mut() {
            Some(spool) => {
                let retry: Vec<Vec<u8>> = self.retry.drain(..).map(Vec::from).collect();
                let n = retry.len() as u64;
                match spool.prepend(&retry) {
                    Ok(()) => {
                        spooled_on_close += n;
                        Shared::add(&self.shared.spooled_total, n);
                    }
                    Err(e) => {
                        self.shared.lose(Loss::Io, n);
                        self.shared.set_error(format!("writing the spool: {e}"));
                    }
                }
                let mut full = false;
                for record in queued {
                    // In order until the first record that does not fit; everything after it
                    // is newer, and dropped.
                    full = full || !spool.has_room(record.len());
                    if full {
                        self.shared.lose(Loss::OnClose, 1);
                        continue;
                    }
                    match spool.append(&record) {
                        Ok(()) => {
                            spooled_on_close += 1;
                            Shared::add(&self.shared.spooled_total, 1);
                        }
                        Err(e) => {
                            self.shared.lose(Loss::Io, 1);
                            self.shared.set_error(format!("writing the spool: {e}"));
                        }
                    }
                }
                if let Err(e) = spool.sync() {
                    self.shared.set_error(format!("syncing the spool: {e}"));
                }
            }
            None => {
                let n = (self.retry.len() + queued.len()) as u64;
                self.retry.clear();
                self.shared.lose(Loss::OnClose, n);
            }
        }
        self.publish();
        Finished { spooled_on_close }
    }

    fn check_control(&mut self) {
        while let Ok(Control::Stop(deadline)) = self.ctl.try_recv() {
            self.stop = Some(deadline);
        }
    }

    /// Waits until `until`, a control message, or (when `queue`) a record in the queue.
    fn wait(&mut self, until: Instant, queue: bool) {
        let timeout = until.saturating_duration_since(Instant::now());
        if timeout.is_zero() {
            return;
        }
        if queue {
            let mut sel = Select::new();
            sel.recv(&self.rx);
            sel.recv(&self.ctl);
            let _ = sel.ready_timeout(timeout);
        } else if let Ok(Control::Stop(deadline)) = self.ctl.recv_timeout(timeout) {
            self.stop = Some(deadline);
        }
    }

    /// `t`, or the stop deadline if sooner.
    fn cap(&self, t: Instant) -> Instant {
        self.stop.map_or(t, |d| d.min(t))
    }

    fn all_delivered(&self) -> bool {
        self.batch.is_empty()
            && self.retry.is_empty()
            && self.parked.is_none()
            && self.rx.is_empty()
            && self.spool.as_ref().map_or(true, |s| s.records() == 0)
    }

    fn publish(&self) {
        let inflight =
            (self.retry.len() + self.batch.len() + usize::from(self.parked.is_some())) as u64;
        self.shared.inflight.store(inflight, Ordering::Relaxed);
        if let Some(spool) = &self.spool {
            self.shared
                .spooled
                .store(spool.records(), Ordering::Relaxed);
        }
    }
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::default(),
    );
    enc.write_all(body)?;
    enc.finish()
}

/// Reads an answer of `status` to a request of `n` records.
fn classify(
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
            fates[n - rejected..].fill(Fate::Lost);
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
            _ => Fate::Lost,
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
            count(Fate::Lost)
        )
    });
    Some(Outcome::Items { fates, error })
}
