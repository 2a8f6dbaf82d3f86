//! The napi-rs binding. One file per JavaScript surface; every decision lives in the runtime
//! or the protocol crate, so this layer only converts values.
#![deny(clippy::all)]

#[macro_use]
extern crate napi_derive;

mod detection;
mod endpoint;
mod errors;
mod options;

pub use endpoint::NativeEndpoint;
