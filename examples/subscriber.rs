//! The example subscriber.
//!
//! ```text
//! cargo run --release --example subscriber                 # embedded server
//! cargo run --release --example subscriber -- --url ws://host:8150 --pass secret
//! ```
//!
//! With no server address it starts an embedded effex server in-process.
//! Two parts of the application then ask the same `ConnectionActor` for the
//! push connection at once: one socket is opened, one pass conversation runs,
//! and both get the same session. (Watches and pushes arrive with the
//! subscription issue.)

use std::time::Instant;

use actix::Actor;
use effex::client::{ClientConfig, ConnectionActor, Disconnect, GetConnected};
use effex::server::{Server, ServerConfig};

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut args = std::env::args().skip(1);
    let mut url = std::env::var("EFFEX_URL").ok();
    let mut pass = std::env::var("EFFEX_PASS").unwrap_or_else(|_| "let me in".to_owned());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--url" => url = args.next(),
            "--pass" => pass = args.next().unwrap_or_default(),
            other => {
                return Err(format!("unknown argument {other:?}; use --url URL --pass PASS").into())
            }
        }
    }

    let embedded = match &url {
        Some(_) => None,
        None => Some(
            Server::start(ServerConfig {
                passphrase: Some(pass.clone()),
                ..ServerConfig::default()
            })
            .await?,
        ),
    };
    let url = match (&url, &embedded) {
        (Some(url), _) => url.clone(),
        (None, Some(server)) => {
            println!("embedded effex server on {}", server.http_url());
            server.ws_url()
        }
        (None, None) => unreachable!("an embedded server exists when no url was given"),
    };

    let conn = ConnectionActor::new(ClientConfig::builder(url).pass(pass).build()?).start();
    let started = Instant::now();
    // Two parts of the application ask at once.
    let (a, b) = futures_util::join!(conn.send(GetConnected), conn.send(GetConnected));
    let (a, b) = (a??, b??);
    println!(
        "connected in {:?}: push id {}, connection {}, server time {}",
        started.elapsed(),
        a.push_id(),
        a.connection(),
        a.server_time()
    );
    println!("both callers got the same session: {}", a.same_as(&b));
    if let Some(server) = &embedded {
        println!(
            "sockets the server saw: {}",
            server.stats().connections_opened
        );
    }
    conn.send(Disconnect).await?;
    if let Some(server) = embedded {
        server.stop().await;
    }
    Ok(())
}
