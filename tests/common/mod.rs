//! Fixtures shared by the integration tests (each test binary uses a part).
#![allow(dead_code)]

pub mod child;
#[cfg(feature = "cli")]
pub mod effex_bin;
pub mod exchange;
pub mod fake_server;
pub mod json_child;
pub mod logs;
pub mod loopback;
pub mod node_watcher;
pub mod poll;
pub mod raw_ws;
pub mod redis;
pub mod server;
pub mod states;
pub mod store_switch;
pub mod tls;
pub mod watches;
pub mod webhook_receiver;
pub mod wire;
