//! The REST client: keys, write, read, update, the event log, remove.
//!
//! ```text
//! cargo run --example rest_client
//! ```

use std::time::Duration;

use effex::client::EffexClient;
use effex::protocol::messages::EventKind;
use effex::protocol::rest::{KeyKind, KeysRequest, NewItem};
use effex::server::{Server, ServerConfig};
use serde_json::json;

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::start(ServerConfig::default()).await?;
    let rest = EffexClient::new(server.http_url())?;
    let boss = server.boss_key().ok_or("no boss key")?;
    let writer = rest
        .make_keys(boss, KeysRequest::new(KeyKind::Writer))
        .await?
        .keys
        .remove(0);
    let reader = rest
        .make_keys(boss, KeysRequest::new(KeyKind::Reader))
        .await?
        .keys
        .remove(0);

    let item = NewItem::new(json!({"price": 1}))
        .lifetime(Duration::from_secs(60))
        .reader(&reader);
    let written = rest.write(&writer, &item).await?;
    println!(
        "wrote {} ({} bytes, lives {:?})",
        written.id, written.size, written.lifetime
    );
    let read = rest.read(&reader, &written.id).await?;
    println!("read {}: {}", read.id, read.value);
    let updated = rest
        .update(&writer, &written.id, json!({"price": 2}), None)
        .await?;
    println!("updated: event seq {}", updated.seq);
    let log = rest
        .events(&reader, &written.id, 0, Some(EventKind::Update))
        .await?;
    for event in &log.events {
        println!("logged: seq {} {} at {}", event.seq, event.event, event.at);
    }
    let removed = rest.remove(&writer, &written.id).await?;
    println!("removed: event seq {}", removed.seq);
    server.stop().await;
    Ok(())
}
