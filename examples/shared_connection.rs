//! Two parts of an application ask for the push connection at once and get
//! the same one: one socket, one pass.
//!
//! ```text
//! cargo run --example shared_connection
//! ```

use actix::Actor;
use effex::client::{ClientConfig, ConnectionActor, GetConnected, Stop};
use effex::server::{Server, ServerConfig};

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::start(ServerConfig {
        passphrase: Some("secret".into()),
        ..ServerConfig::default()
    })
    .await?;
    let config = ClientConfig::builder(server.ws_url())
        .pass("secret")
        .build()?;
    let conn = ConnectionActor::new(config).start();

    // Both ask while nothing is connected yet: the second waits for the
    // first one's attempt instead of opening a socket of its own.
    let (prices, orders) = futures_util::join!(conn.send(GetConnected), conn.send(GetConnected));
    let (prices, orders) = (prices??, orders??);
    assert!(prices.same_as(&orders));
    println!(
        "prices and orders share connection {} (push id {})",
        prices.connection(),
        prices.push_id()
    );
    println!(
        "sockets the server saw: {}",
        server.stats().connections_opened
    );

    conn.send(Stop).await?;
    server.stop().await;
    Ok(())
}
