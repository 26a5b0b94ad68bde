//! Fixtures shared by the integration tests (each test binary uses a part).
#![allow(dead_code)]

pub mod exchange;
pub mod fake_server;
pub mod states;
pub mod wire;
