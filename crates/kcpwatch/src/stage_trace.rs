//! The bench mode's stage breakdown: how long each hop of a message's round trip through the
//! I/O thread takes (`npm run bench -- --only stages`; figures in docs/performance.md).
//!
//! It is off unless the environment has `KCPWATCH_STAGE_TRACE=1` when an endpoint starts.
//! Off, an I/O turn pays one branch on an `Option` and the send path one more; no clock is read.
//! On, each hop's durations go into a vector of at most [`SAMPLES_PER_HOP`] entries reserved at
//! start (later ones are only counted), so tracing itself allocates nothing per turn.
//!
//! Every stamp is `CLOCK_MONOTONIC` in nanoseconds, the clock Node's `process.hrtime` reads, so
//! the JavaScript half of the round trip (src/stage-trace.ts) measures against the same time
//! line. The kernel's receive stamp (`SO_TIMESTAMPNS`) is wall-clock time and is compared only
//! with wall-clock time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Samples kept per hop; past this a hop only counts what it left out.
pub const SAMPLES_PER_HOP: usize = 200_000;

macro_rules! hops {
    ($($(#[$doc:meta])* $hop:ident => $name:literal,)*) => {
        /// One hop of a message's way through the I/O thread, measured from its start to its end.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Hop {
            $($(#[$doc])* $hop,)*
        }

        impl Hop {
            /// Every hop, in the order a round trip meets them.
            pub const ALL: &'static [Hop] = &[$(Hop::$hop,)*];

            /// The hop's name in bench output and docs/performance.md.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Hop::$hop => $name,)*
                }
            }
        }
    };
}

hops! {
    /// The kernel's receive stamp to the I/O thread's `recvmmsg` returning it (per datagram).
    KernelToRecv => "kernel_to_recvmmsg",
    /// `recvmmsg` returning to every datagram of the turn fed to the engines.
    RecvToInput => "recvmmsg_to_engine_input",
    /// Engine input done to the turn's messages written to the staging ring (through timers,
    /// the flush and the send of whatever the flush produced, ACKs included).
    InputToStaged => "engine_input_to_ring_push",
    /// Staged to published: the hand-over to the queue JavaScript reads, and its wake-up call.
    Publish => "ring_publish_and_notify",
    /// A send batch handed to the command queue to the I/O thread's wake-up that takes it (0
    /// when the thread was awake already).
    CommandToWake => "command_queue_to_io_wakeup",
    /// Wake-up to the turn's send commands applied to the engines.
    WakeToApplied => "io_wakeup_to_sends_applied",
    /// Sends applied to the engine flush that puts their datagrams in the send queue.
    AppliedToFlushed => "sends_applied_to_engine_flush",
    /// The flush to `sendmmsg` returning, for turns that had datagrams to send.
    FlushedToSent => "engine_flush_to_sendmmsg",
}

/// Durations per hop, in nanoseconds.
#[derive(Debug)]
pub struct StageSamples {
    samples: Vec<Vec<u32>>,
    /// Samples left out because their hop's vector was full.
    pub overflow: u64,
}

impl StageSamples {
    fn new() -> Self {
        Self {
            samples: Hop::ALL
                .iter()
                .map(|_| Vec::with_capacity(SAMPLES_PER_HOP))
                .collect(),
            overflow: 0,
        }
    }

    /// Adds one duration to `hop`.
    pub fn record(&mut self, hop: Hop, nanos: u64) {
        let kept = &mut self.samples[hop as usize];
        if kept.len() < SAMPLES_PER_HOP {
            kept.push(nanos.min(u32::MAX as u64) as u32);
        } else {
            self.overflow += 1;
        }
    }

    /// The durations kept for `hop`, in the order they were measured.
    pub fn of(&self, hop: Hop) -> &[u32] {
        &self.samples[hop as usize]
    }

    /// A copy of everything kept, for the bench to read.
    pub fn report(&self) -> StageReport {
        StageReport {
            hops: Hop::ALL
                .iter()
                .map(|&hop| (hop.name(), self.of(hop).to_vec()))
                .collect(),
            overflow: self.overflow,
        }
    }
}

/// Each hop's name and durations in nanoseconds, and how many samples were left out.
#[derive(Debug)]
pub struct StageReport {
    /// Every hop in [`Hop::ALL`]'s order, with its durations.
    pub hops: Vec<(&'static str, Vec<u32>)>,
    /// Samples left out because their hop's vector was full.
    pub overflow: u64,
}

/// What the I/O thread and the endpoint's handle share while tracing.
#[derive(Debug)]
pub struct StageShared {
    /// The I/O thread's samples; locked once per traced turn, and by the reader.
    pub samples: Mutex<StageSamples>,
    /// When the oldest send batch the I/O thread has not taken yet was queued (0: none).
    pub command_at: AtomicU64,
    /// When the oldest messages JavaScript has not looked at yet were staged (0: none).
    pub staged_at: AtomicU64,
}

impl StageShared {
    /// Tracing state for one endpoint, when the environment asks for it.
    pub fn from_env() -> Option<Self> {
        // Unix only: the JavaScript half stamps with CLOCK_MONOTONIC, read here through libc.
        let on = cfg!(unix) && std::env::var_os("KCPWATCH_STAGE_TRACE").is_some_and(|v| v == "1");
        on.then(|| Self {
            samples: Mutex::new(StageSamples::new()),
            command_at: AtomicU64::new(0),
            staged_at: AtomicU64::new(0),
        })
    }

    /// A send batch was queued now: keeps the oldest untaken one's time.
    pub fn command_queued(&self) {
        let _ = self.command_at.compare_exchange(
            0,
            monotonic_ns(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// JavaScript takes what was published: when the oldest of it was staged (0: unknown).
    pub fn take_staged_at(&self) -> u64 {
        self.staged_at.swap(0, Ordering::AcqRel)
    }
}

/// The stamps of one I/O turn (the thread's own, never shared).
#[derive(Debug, Default)]
pub(crate) struct Turn {
    pub(crate) woke: u64,
    pub(crate) applied: u64,
    /// A send command was applied this turn, queued at this time.
    pub(crate) command_at: u64,
    /// The first `recvmmsg` of the turn returned.
    pub(crate) received: u64,
    pub(crate) input_done: u64,
    pub(crate) flushed: u64,
    pub(crate) sent: u64,
    pub(crate) staged: u64,
    pub(crate) published: u64,
}

impl Turn {
    /// Records the turn's hops and starts a new turn.
    pub(crate) fn finish(&mut self, shared: &StageShared) {
        let turn = std::mem::take(self);
        let Ok(mut samples) = shared.samples.lock() else {
            return;
        };
        let span = |from: u64, to: u64| (from != 0 && to != 0).then(|| to.saturating_sub(from));
        let mut put = |hop, nanos: Option<u64>| {
            if let Some(nanos) = nanos {
                samples.record(hop, nanos);
            }
        };
        if turn.command_at != 0 {
            put(
                Hop::CommandToWake,
                Some(turn.woke.saturating_sub(turn.command_at)),
            );
            put(Hop::WakeToApplied, span(turn.woke, turn.applied));
            put(Hop::AppliedToFlushed, span(turn.applied, turn.flushed));
        }
        put(Hop::RecvToInput, span(turn.received, turn.input_done));
        if turn.staged != 0 {
            put(Hop::InputToStaged, span(turn.input_done, turn.staged));
            put(Hop::Publish, span(turn.staged, turn.published));
        }
        put(Hop::FlushedToSent, span(turn.flushed, turn.sent));
    }
}

/// `CLOCK_MONOTONIC` now, in nanoseconds (what Node's `process.hrtime.bigint()` reads).
#[cfg(unix)]
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write; CLOCK_MONOTONIC exists on every Unix.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Elsewhere Node's clock is not one Rust can read directly, so the trace stays off
/// ([`StageShared::from_env`]) and nothing calls this.
#[cfg(not(unix))]
pub fn monotonic_ns() -> u64 {
    0
}

/// Wall-clock time now, in nanoseconds since the Unix epoch (the kernel's receive stamps).
pub(crate) fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_records_only_the_hops_it_went_through() {
        let shared = StageShared {
            samples: Mutex::new(StageSamples::new()),
            command_at: AtomicU64::new(0),
            staged_at: AtomicU64::new(0),
        };
        let mut turn = Turn {
            woke: 1_000,
            applied: 1_300,
            command_at: 900,
            flushed: 1_700,
            sent: 2_000,
            ..Turn::default()
        };
        turn.finish(&shared);
        let samples = shared.samples.lock().unwrap();
        assert_eq!(samples.of(Hop::CommandToWake), &[100]);
        assert_eq!(samples.of(Hop::WakeToApplied), &[300]);
        assert_eq!(samples.of(Hop::AppliedToFlushed), &[400]);
        assert_eq!(samples.of(Hop::FlushedToSent), &[300]);
        assert!(samples.of(Hop::RecvToInput).is_empty());
        assert!(samples.of(Hop::InputToStaged).is_empty());
        drop(samples);
        assert_eq!(turn.woke, 0, "finish starts a new turn");
    }

    #[test]
    fn a_full_hop_counts_what_it_leaves_out() {
        let mut samples = StageSamples::new();
        for _ in 0..SAMPLES_PER_HOP + 3 {
            samples.record(Hop::Publish, 5);
        }
        assert_eq!(samples.of(Hop::Publish).len(), SAMPLES_PER_HOP);
        assert_eq!(samples.overflow, 3);
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
    }
}
