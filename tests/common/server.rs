//! Starting the in-process effex server for a test: one config with timers
//! too long to fire by accident, and one start that sets up logging first.

use std::time::Duration;

use effex::server::{Server, ServerConfig, ServerHandle};

use super::{logs, store_switch};

/// Timers long enough never to fire in a test that is not about them (no
/// passphrase: any pass is accepted). Tests about a timer set it short.
pub fn config() -> ServerConfig {
    ServerConfig {
        ping_interval: Duration::from_secs(10),
        ping_timeout: Duration::from_secs(10),
        pass_timeout: Duration::from_secs(10),
        shutdown_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    }
}

/// Starts the server on 127.0.0.1:0 (inside an actix system), with test
/// logging (and its capture, see [`logs`]) in place, on the store chosen by
/// [`store_switch`] (with `EFFEX_TEST_STORE=redis`, a `redis-server` of its
/// own that lives as long as the test's System).
pub async fn start(config: ServerConfig) -> ServerHandle {
    logs::init();
    Server::start(store_switch::configure(config).await)
        .await
        .expect("start the in-process server")
}
