//! The kcpwatch runtime: owns UDP sockets and runs a [`kcpwatch_proto::Endpoint`] on its own
//! thread. JavaScript (through the binding) talks to it with commands and receives packed
//! batches of connection events and messages; nothing on the packet path calls into JavaScript.
#![warn(missing_docs)]

mod config;
mod connected;
pub mod datagram_batch;
pub mod delivery;
pub mod errno;
pub mod error;
/// The security records (the `kcpwatch-log` crate), under the name the runtime's users know.
pub use kcpwatch_log as events;
mod io_thread;
pub mod runtime;
pub mod socket;
pub mod stage_trace;
pub mod stats;
mod udp;

pub use delivery::{DeliveryQueue, RecordKind};
pub use error::RuntimeError;
pub use io_thread::LoopReception;
pub use runtime::{Runtime, RuntimeConfig, RuntimeStats};
