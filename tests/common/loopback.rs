//! Serving a test's own actix-web app on 127.0.0.1: one worker, no signal
//! handling, a short shutdown, a free port.

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

/// Starts an HTTP server on 127.0.0.1:0 (inside an actix system) whose app
/// is set up by `configure`; returns its address and handle.
pub fn serve<F>(configure: F) -> (SocketAddr, ServerHandle)
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let http = HttpServer::new(move || App::new().configure(configure.clone()))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(("127.0.0.1", 0))
        .expect("bind a loopback port");
    let addr = http.addrs()[0];
    let server = http.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (addr, handle)
}
