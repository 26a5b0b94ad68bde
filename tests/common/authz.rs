//! Fixtures of the authorization and quota tests (tests/authz.rs): a server
//! with its store and keys made straight on the store.

use std::sync::Arc;
use std::time::Duration;

use effex::protocol::rest::{KeysReply, KeysRequest};
use effex::server::{ServerConfig, ServerHandle};
use effex::store::{KeyKind, Store, WriteItem};
use serde_json::Value;

use crate::common::wire::http_client;

/// The common test config (long timers) with the loopback receivers of
/// these tests allowed as webhook targets (refused by default, §3).
pub fn config() -> ServerConfig {
    crate::common::webhook_receiver::allowing_receivers(crate::common::server::config())
}

/// A running server and its store.
pub struct Authz {
    pub server: ServerHandle,
    pub store: Arc<dyn Store>,
    pub boss: String,
    pub writer: String,
}

impl Authz {
    pub async fn start(config: ServerConfig) -> Self {
        let server = crate::common::server::start(config).await;
        let store = server.store().clone();
        let boss = server.boss_key().expect("embedded store").to_owned();
        let mut fixture = Authz {
            server,
            store,
            boss,
            writer: String::new(),
        };
        fixture.writer = fixture.keys(KeyKind::Writer, None).await.keys.remove(0);
        fixture
    }

    /// One key of `kind`, living `seconds` (the store's default when `None`).
    pub async fn keys(&self, kind: KeyKind, seconds: Option<Duration>) -> KeysReply {
        let mut request = KeysRequest::new(kind);
        request.seconds = seconds;
        self.store
            .make_keys(&self.boss, request)
            .await
            .expect("make keys")
    }

    /// A reader key living the store's default lifetime.
    pub async fn reader(&self) -> String {
        self.keys(KeyKind::Reader, None).await.keys.remove(0)
    }

    /// A new reader key and an item (value 0) it may read: (key, id).
    pub async fn readable_item(&self) -> (String, String) {
        let reader = self.reader().await;
        let id = self.write(Value::from(0), &[&reader], None).await;
        (reader, id)
    }

    /// Writes an item readable by `readers` (with `alias` pointed at it);
    /// returns its id.
    pub async fn write(&self, value: Value, readers: &[&str], alias: Option<&str>) -> String {
        let mut item = WriteItem::new(value);
        item.lifetime = Some(Duration::from_secs(600));
        item.readers = readers.iter().map(|r| (*r).to_owned()).collect();
        item.alias = alias.map(str::to_owned);
        let written = self.store.write(&self.writer, item).await.expect("write");
        written.id.to_string()
    }

    /// Updates an item; returns the event's seq.
    pub async fn update(&self, id: &str, value: Value) -> u64 {
        self.store
            .update(&self.writer, id, effex::store::UpdateItem::new(value))
            .await
            .expect("update")
            .seq
    }

    /// Points `alias` at `id` (through the server's store, as REST does).
    pub async fn alias(&self, alias: &str, id: &str) {
        self.store
            .alias(&self.writer, alias, id)
            .await
            .expect("re-point the alias");
    }

    /// `GET path` on the server: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let client = http_client(None);
        let mut response = client
            .get(format!("{}{path}", self.server.http_url()))
            .send()
            .await
            .expect("GET");
        let body = response.json().await.expect("a JSON body");
        (response.status().as_u16(), body)
    }

    /// `POST /watches` with `key`: status and JSON body.
    pub async fn post_webhook(&self, key: &str, body: &Value) -> (u16, Value) {
        crate::common::watches::post(&self.server.http_url(), key, body).await
    }

    /// `POST /watches` with `key` that must succeed: the watchable.
    pub async fn webhook(&self, key: &str, body: &Value) -> String {
        crate::common::watches::create(&self.server.http_url(), key, body).await
    }

    /// `DELETE /watches/{watchable}` with `key`: the status.
    pub async fn delete_webhook(&self, key: &str, watchable: &str) -> u16 {
        crate::common::watches::delete(&self.server.http_url(), key, watchable)
            .await
            .0
    }
}
