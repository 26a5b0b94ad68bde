//! effex
#![warn(missing_docs)]

pub mod protocol;

#[cfg(feature = "client")]
pub mod client;

#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "server")]
pub mod store;
