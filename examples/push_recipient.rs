//! A subscriber actor of the application's own handles pushes through a
//! `Recipient<Push>`: `SubscriberActor` acks each one after its handler ran.
//!
//! ```text
//! cargo run --example push_recipient
//! ```

use std::{sync::Arc, time::Duration};

use actix::prelude::*;
use effex::client::{ClientConfig, ConnectionActor, EffexClient};
use effex::client::{Subscribe, SubscriberActor};
use effex::protocol::messages::{EventKind, Push};
use effex::protocol::rest::NewItem;
use effex::protocol::rest::{KeyKind, KeysRequest};
use effex::server::{Server, ServerConfig};
use serde_json::json;
use tokio::sync::Notify;

/// The application's actor: prints each price; says when the last came.
struct PriceBoard(Arc<Notify>);

impl Actor for PriceBoard {
    type Context = Context<Self>;
}

impl Handler<Push> for PriceBoard {
    type Result = ();
    fn handle(&mut self, push: Push, _: &mut Context<Self>) {
        let price = push.value.clone().unwrap_or_default();
        println!("seq {}: price {price}", push.seq);
        if push.value == Some(json!(3)) {
            self.0.notify_one();
        }
    }
}

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::start(ServerConfig::default()).await?;
    let rest = EffexClient::new(server.http_url())?;
    let boss = server.boss_key().ok_or("no boss key")?;
    // The writer owns the item, so its key may watch it too.
    let keys = rest.make_keys(boss, KeysRequest::new(KeyKind::Writer));
    let writer = keys.await?.keys.remove(0);
    let item = NewItem::new(json!(0)).lifetime(Duration::from_secs(60));
    let id = rest.write(&writer, &item).await?.id;
    let done = Arc::new(Notify::new());
    let board = PriceBoard(done.clone()).start();
    let conn = ConnectionActor::new(ClientConfig::builder(server.ws_url()).build()?).start();
    let subscriber = SubscriberActor::new(conn, board.recipient()).start();
    let watch = Subscribe::new(EventKind::Update, &id, &writer).with_value();
    subscriber.send(watch).await??;
    for price in 1..=3 {
        rest.update(&writer, &id, json!(price), None).await?;
    }
    tokio::time::timeout(Duration::from_secs(10), done.notified()).await?;
    server.stop().await;
    Ok(())
}
