//! Fixtures of the authorization and quota tests (tests/authz.rs): a server
//! with its store, keys made straight on the store, and a webhook receiver.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use effex::server::{Server, ServerConfig, ServerHandle};
use effex::store::{KeyKind, Keys, MakeKeys, Store, WriteItem};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::common::wire::{http_client, WAIT};

/// The common test config (long timers) with the loopback receivers of
/// these tests allowed as webhook targets (refused by default, §3).
pub fn config() -> ServerConfig {
    ServerConfig {
        webhook_allow: vec!["127.0.0.1".to_owned()],
        ..crate::common::server::config()
    }
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
        let _ = env_logger::builder().is_test(true).try_init();
        let server = Server::start(config).await.expect("server starts");
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
    pub async fn keys(&self, kind: KeyKind, seconds: Option<Duration>) -> Keys {
        let mut request = MakeKeys::new(kind);
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
        let client = http_client(None);
        let mut response = client
            .post(format!("{}/watches", self.server.http_url()))
            .bearer_auth(key)
            .send_json(body)
            .await
            .expect("POST /watches");
        let body = response.json().await.expect("a JSON body");
        (response.status().as_u16(), body)
    }
}

/// A local HTTP receiver for webhooks: answers every request with
/// `status` and reports each request's path and JSON body.
pub struct Hook {
    pub url: String,
    status: Arc<AtomicU16>,
    requests: mpsc::UnboundedReceiver<(String, Value)>,
    server: actix_web::dev::ServerHandle,
}

impl Hook {
    pub async fn start() -> Self {
        let status = Arc::new(AtomicU16::new(200));
        let (tx, requests) = mpsc::unbounded_channel();
        let state = (status.clone(), tx);
        let http = HttpServer::new(move || {
            let state = state.clone();
            App::new().default_service(web::to(
                move |req: actix_web::HttpRequest, body: web::Bytes| {
                    let (status, tx) = state.clone();
                    async move {
                        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let _ = tx.send((req.path().to_owned(), body));
                        let code = status.load(Ordering::Relaxed);
                        HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap())
                            .finish()
                    }
                },
            ))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind");
        let addr = http.addrs()[0];
        let server = http.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Hook {
            url: format!("http://{addr}"),
            status,
            requests,
            server: handle,
        }
    }

    /// Answers every request with `status` from now on.
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }

    /// The next request (path, body), within the wait.
    pub async fn next(&mut self) -> (String, Value) {
        tokio::time::timeout(WAIT, self.requests.recv())
            .await
            .expect("a webhook request within the wait")
            .expect("receiver running")
    }

    /// Asserts that no request arrives within `quiet` (used only once
    /// everything expected has arrived).
    pub async fn expect_none(&mut self, quiet: Duration) {
        if let Ok(got) = tokio::time::timeout(quiet, self.requests.recv()).await {
            panic!("expected no webhook request, got {got:?}");
        }
    }

    pub async fn stop(&self) {
        self.server.stop(false).await;
    }
}
