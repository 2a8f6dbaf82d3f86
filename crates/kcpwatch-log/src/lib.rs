//! Security events from the I/O thread to the logs (docs/architecture.md, "Security events"): the lock-free [`ring`], the
//! [`canonical`] NDJSON form, and the [`log_thread`] that writes it and hands it to JavaScript.
#![warn(missing_docs)]

pub mod canonical;
pub mod clock;
mod error;
pub mod formats;
pub mod log_thread;
pub mod ring;
pub mod rotating_file;
pub mod sinks;

use kcpwatch_proto::privacy::IpPrivacy;
use kcpwatch_proto::Severity;

pub use canonical::{CanonicalWriter, Observer};
pub use error::{LogStartError, OutputError};
pub use log_thread::{LogDestination, LogOutput, LogThread, Outbox};
pub use ring::{EventRing, Record};
pub use rotating_file::Rotation;

/// How one runtime logs its security events.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Records below this severity are not produced at all.
    pub level: Severity,
    /// Where the records are written, each output in its own format.
    pub outputs: Vec<LogOutput>,
    /// Records per ring lane.
    pub ring_capacity: usize,
    /// Bytes of lines held for JavaScript before the newest are dropped (and counted).
    pub outbox_limit: usize,
    /// Period of `kcp:stats` records; 0 disables them.
    pub stats_interval_ms: u64,
    /// Written into every record.
    pub observer: Observer,
    /// Community ID seed.
    pub community_id_seed: u16,
    /// Per trigger and window, records logged one by one before the rest are aggregated.
    pub sample_burst: u32,
    /// The sampling window.
    pub sample_window_ms: u32,
    /// Hand records to JavaScript from the start (before the first can be missed).
    pub deliver_to_js: bool,
    /// How addresses appear in every record (docs/privacy.md).
    pub privacy: IpPrivacy,
    /// With `truncate` or `cryptopan`, compute `community_id` over the transformed addresses.
    pub community_id_over_transformed: bool,
}

impl LogConfig {
    /// The canonical writer this configuration describes.
    pub fn writer(&self) -> CanonicalWriter {
        CanonicalWriter::with_privacy(
            self.observer.clone(),
            self.community_id_seed,
            self.privacy.clone(),
            self.community_id_over_transformed,
        )
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: Severity::Informational,
            outputs: vec![LogOutput::canonical(LogDestination::Stdout)],
            ring_capacity: 4096,
            outbox_limit: 8 << 20,
            stats_interval_ms: 60_000,
            observer: Observer::default(),
            community_id_seed: 0,
            sample_burst: 20,
            sample_window_ms: 1_000,
            deliver_to_js: false,
            privacy: IpPrivacy::Full,
            community_id_over_transformed: false,
        }
    }
}
