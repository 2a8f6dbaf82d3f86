//! The bench's stage trace as JavaScript reads it (see `kcpwatch::stage_trace`): only
//! `bench/echo-server.mjs` and src/stage-trace.ts call these, and only with
//! `KCPWATCH_STAGE_TRACE=1` in the environment.

use super::NativeEndpoint;

/// One hop of the I/O thread's part of a round trip, with its durations in nanoseconds.
#[napi(object)]
pub struct StageHop {
    pub name: String,
    pub nanos: Vec<u32>,
}

/// The I/O thread's samples, and how many were left out once a hop's vector was full.
#[napi(object)]
pub struct StageTrace {
    pub hops: Vec<StageHop>,
    pub overflow: f64,
}

#[napi]
impl NativeEndpoint {
    /// The I/O thread's stage samples so far; `null` when the trace is off or once closed.
    #[napi]
    pub fn stage_trace(&self) -> Option<StageTrace> {
        let report = self.live.as_ref()?.runtime.stage_samples()?;
        Some(StageTrace {
            hops: report
                .hops
                .into_iter()
                .map(|(name, nanos)| StageHop {
                    name: name.to_owned(),
                    nanos,
                })
                .collect(),
            overflow: report.overflow as f64,
        })
    }

    /// When the oldest records `takeRecords()` is about to return were staged, in
    /// `CLOCK_MONOTONIC` nanoseconds (`process.hrtime.bigint()`'s clock); 0 when the trace is
    /// off or nothing new was staged.
    #[napi]
    pub fn take_staged_at(&self) -> f64 {
        self.live
            .as_ref()
            .map_or(0.0, |live| live.runtime.take_staged_at() as f64)
    }
}
