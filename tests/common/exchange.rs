//! An in-process exchange for client tests: the server on port 0, a REST
//! client, keys, and a push collector whose pushes a test can wait on.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use effex::client::{
    ClientConfig, ClientConfigBuilder, ConnectionActor, EffexClient, SubscriberActor,
    SubscriberEvent,
};
use effex::protocol::messages::Push;
use effex::protocol::rest::{KeyKind, KeysRequest, NewItem};
use effex::server::{ServerConfig, ServerHandle};
use effex::store::Store;
use tokio::sync::mpsc;

/// The passphrase of test servers.
pub const PASS: &str = "exchange pass";
/// The bound on every wait in these tests.
pub const BOUND: Duration = Duration::from_secs(10);

/// A running server with a REST client and one writer + one reader key.
pub struct Exchange {
    pub server: ServerHandle,
    pub rest: EffexClient,
    pub writer: String,
    pub reader: String,
    pub boss: String,
}

impl Exchange {
    /// A server with the given config (passphrase set here).
    pub async fn start(config: ServerConfig) -> Self {
        let server = super::server::start(ServerConfig {
            passphrase: Some(PASS.to_owned()),
            ..config
        })
        .await;
        let boss = server.boss_key().map(str::to_owned);
        Self::around(server, boss).await
    }

    /// A server on an injected store (so it can be restarted on the same data).
    pub async fn on_store(
        store: Arc<dyn Store>,
        boss: &str,
        bind: Option<std::net::SocketAddr>,
    ) -> Self {
        let mut config = ServerConfig {
            store: Some(store),
            boss_key: Some(boss.to_owned()),
            ..ServerConfig::default()
        };
        if let Some(bind) = bind {
            config.bind = bind;
        }
        let server = super::server::start(ServerConfig {
            passphrase: Some(PASS.to_owned()),
            ..config
        })
        .await;
        Self::around(server, Some(boss.to_owned())).await
    }

    async fn around(server: ServerHandle, boss: Option<String>) -> Self {
        let rest = EffexClient::new(server.http_url()).expect("a REST client");
        let boss = boss.expect("a boss key: the embedded store's, or the injected store's");
        let writer = Self::key(&rest, &boss, KeyKind::Writer).await;
        let reader = Self::key(&rest, &boss, KeyKind::Reader).await;
        Self {
            server,
            rest,
            writer,
            reader,
            boss,
        }
    }

    /// A new key of `kind`.
    pub async fn key(rest: &EffexClient, boss: &str, kind: KeyKind) -> String {
        rest.make_keys(boss, KeysRequest::new(kind))
            .await
            .expect("make a key")
            .keys
            .remove(0)
    }

    /// Writes an item readable by the reader key; returns (id, seq).
    pub async fn write(&self, value: serde_json::Value, lifetime: Duration) -> (String, u64) {
        let item = NewItem::new(value).lifetime(lifetime).reader(&self.reader);
        let written = self.rest.write(&self.writer, &item).await.expect("write");
        (written.id, written.seq)
    }

    /// Updates an item; returns the event's seq.
    pub async fn update(&self, id: &str, value: serde_json::Value) -> u64 {
        self.rest
            .update(&self.writer, id, value, None)
            .await
            .expect("update")
            .seq
    }

    /// A client config for this server.
    pub fn client(&self) -> ClientConfigBuilder {
        client_config(&self.server.ws_url())
    }

    /// A connection actor for this server.
    pub fn connect(&self) -> Addr<ConnectionActor> {
        ConnectionActor::new(self.client().build().expect("client config")).start()
    }
}

/// A client config for the server at `url` with [`PASS`] and connect and
/// pass timeouts (3 s) that only a broken server meets.
pub fn client_config(url: &str) -> ClientConfigBuilder {
    ClientConfig::builder(url)
        .pass(PASS)
        .connect_timeout(Duration::from_secs(3))
        .pass_timeout(Duration::from_secs(3))
}

/// A server config with [`PASS`] as its passphrase and default timers.
pub fn pass_config() -> ServerConfig {
    ServerConfig {
        passphrase: Some(PASS.to_owned()),
        ..ServerConfig::default()
    }
}

/// Collects pushes (and subscriber events) into channels a test waits on.
pub struct Collector {
    pushes: mpsc::UnboundedSender<Push>,
    events: mpsc::UnboundedSender<SubscriberEvent>,
}

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<Push> for Collector {
    type Result = ();
    fn handle(&mut self, push: Push, _: &mut Context<Self>) {
        let _ = self.pushes.send(push);
    }
}

impl Handler<SubscriberEvent> for Collector {
    type Result = ();
    fn handle(&mut self, event: SubscriberEvent, _: &mut Context<Self>) {
        let _ = self.events.send(event);
    }
}

/// What a test reads from a collector.
pub struct Collected {
    pub pushes: mpsc::UnboundedReceiver<Push>,
    pub events: mpsc::UnboundedReceiver<SubscriberEvent>,
}

impl Collected {
    /// The next push, within the bound.
    pub async fn push(&mut self) -> Push {
        tokio::time::timeout(BOUND, self.pushes.recv())
            .await
            .expect("a push within the bound")
            .expect("collector alive")
    }

    /// The next `n` pushes.
    pub async fn pushes(&mut self, n: usize) -> Vec<Push> {
        let mut got = Vec::with_capacity(n);
        for _ in 0..n {
            got.push(self.push().await);
        }
        got
    }

    /// Asserts no further push arrives within `quiet` (a bounded window:
    /// used only after everything expected has arrived).
    /// A closed channel fails too: a collector that died is not a quiet one.
    pub async fn no_more_pushes(&mut self, quiet: Duration) {
        match tokio::time::timeout(quiet, self.pushes.recv()).await {
            Err(_) => {}
            Ok(Some(extra)) => panic!("an unexpected extra push: {extra:?}"),
            Ok(None) => panic!("the push collector is gone: cannot tell whether pushes came"),
        }
    }

    /// The next subscriber event matching `want`, within the bound.
    pub async fn event(&mut self, want: impl Fn(&SubscriberEvent) -> bool) -> SubscriberEvent {
        tokio::time::timeout(BOUND, async {
            loop {
                let event = self.events.recv().await.expect("collector alive");
                if want(&event) {
                    return event;
                }
            }
        })
        .await
        .expect("a subscriber event within the bound")
    }
}

impl Collector {
    /// A running collector and the receiving end a test reads.
    pub fn start_pair() -> (Addr<Collector>, Collected) {
        let (push_tx, pushes) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::unbounded_channel();
        let collector = Collector {
            pushes: push_tx,
            events: event_tx,
        }
        .start();
        (collector, Collected { pushes, events })
    }
}

/// A subscriber on `conn` whose pushes and events a test can wait on.
pub fn subscriber(conn: Addr<ConnectionActor>) -> (Addr<SubscriberActor>, Collected) {
    let (collector, collected) = Collector::start_pair();
    let subscriber = SubscriberActor::new(conn, collector.clone().recipient())
        .notify(collector.recipient())
        .start();
    (subscriber, collected)
}
