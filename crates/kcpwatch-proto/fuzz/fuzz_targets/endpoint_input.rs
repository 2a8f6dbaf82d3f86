//! Fuzzes `Endpoint::handle_datagram` (and the timers, flushes and commands around it) in raw
//! and secure mode, as server and as client, against live sessions. The harness and its
//! invariants are shared with the CI-budget test `tests/endpoint_fuzz.rs`; the input format is
//! described in `tests/fuzz_harness/mod.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz_harness/mod.rs"]
mod fuzz_harness;

fuzz_target!(|data: &[u8]| {
    fuzz_harness::run(data);
});
