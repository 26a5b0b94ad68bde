//! `GET /metrics` (issue 10 item 2) through real sockets on an in-process
//! server on port 0: a pass refused and one accepted, a watch, REST writes,
//! a push and its ack, then a scrape whose exact figures must have moved;
//! the route label is the pattern, never the raw path; the metrics key;
//! ack timeouts and replays; rate-limit hits; webhook deliveries; expiry
//! lateness. The text format is parsed here (a small parser of
//! `name{labels} value` lines).
//!
//! Every wait is on a figure, polled within a generous bound.
#![cfg(all(feature = "server", feature = "client"))]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use awc::http::Method;
use effex::server::{ServerConfig, ServerHandle};
use serde_json::{json, Value};

use common::poll::poll_until;
use common::webhook_receiver::WebhookReceiver;
use common::wire::{http_client, Wire};

/// The bound on every wait for a figure.
const BOUND: Duration = Duration::from_secs(10);

/// One sample line: its series name, its labels and its value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed scrape.
#[derive(Debug)]
struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

/// Parses `name{a="x",b="y"} value` and `name value` lines (label values
/// here never hold `"`, `,` or `}`), skipping comments.
fn parse(text: &str) -> Scrape {
    let samples = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample line: {line:?}"));
            let value = value
                .parse()
                .unwrap_or_else(|e| panic!("bad value in {line:?}: {e}"));
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("labels end with }");
                    let labels = inner
                        .split(',')
                        .filter(|pair| !pair.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').expect("label=value");
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
            };
            Sample {
                name,
                labels,
                value,
            }
        })
        .collect();
    Scrape {
        text: text.to_owned(),
        samples,
    }
}

impl Scrape {
    /// The value of the series `name` with exactly `labels`, if present.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// As [`Scrape::get`], but the series must be there.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{}", self.text))
    }
}

/// A server and raw HTTP to it.
struct Fixture {
    server: ServerHandle,
    http: awc::Client,
    /// Sent as `X-Forwarded-For` (for a server that trusts loopback as a
    /// proxy): HTTP then comes from another client address than the sockets.
    forwarded_for: Option<&'static str>,
}

impl Fixture {
    async fn start(config: ServerConfig) -> Self {
        Fixture {
            server: common::server::start(config).await,
            http: http_client(None),
            forwarded_for: None,
        }
    }

    /// A request with an optional bearer key: status, content type, body.
    async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, String, String) {
        let url = format!("{}{path}", self.server.http_url());
        let mut request = self.http.request(method.clone(), url);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(address) = self.forwarded_for {
            request = request.insert_header(("x-forwarded-for", address));
        }
        let sent = match body {
            Some(body) => request.send_json(&body).await,
            None => request.send().await,
        };
        let mut response = sent.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let body = response.body().await.expect("a body");
        (
            response.status().as_u16(),
            content_type,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    /// A JSON request that must answer `status`: its body.
    async fn json(&self, method: Method, path: &str, key: &str, body: Value, status: u16) -> Value {
        let (got, _, text) = self.call(method.clone(), path, Some(key), Some(body)).await;
        assert_eq!(got, status, "{method} {path}: {text}");
        serde_json::from_str(&text).expect("a JSON body")
    }

    /// A new key of `kind` (`POST /keys` with the boss key).
    async fn key(&self, kind: &str) -> String {
        let boss = self
            .server
            .boss_key()
            .expect("the embedded store")
            .to_owned();
        let reply = self
            .json(
                Method::POST,
                "/keys",
                &boss,
                json!({"type": kind, "count": 1}),
                201,
            )
            .await;
        reply["keys"][0].as_str().expect("a key").to_owned()
    }

    /// `GET /metrics` (with `key`), which must answer 200: parsed.
    async fn scrape_with(&self, key: Option<&str>) -> Scrape {
        let (status, content_type, text) = self.call(Method::GET, "/metrics", key, None).await;
        assert_eq!(status, 200, "GET /metrics: {text}");
        assert_eq!(content_type, "text/plain; version=0.0.4");
        parse(&text)
    }

    async fn scrape(&self) -> Scrape {
        self.scrape_with(None).await
    }

    /// Scrapes until `done` holds, within [`BOUND`]; returns that scrape.
    async fn scrape_until(&self, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
        poll_until(what, BOUND, || async {
            let scrape = self.scrape().await;
            done(&scrape).then_some(scrape)
        })
        .await
    }
}

fn with_passphrase() -> ServerConfig {
    ServerConfig {
        passphrase: Some("let me in".into()),
        ..common::server::config()
    }
}

#[actix_rt::test]
async fn a_conversation_moves_exactly_its_series() {
    let fx = Fixture::start(with_passphrase()).await;
    let before = fx.scrape().await;
    assert_eq!(before.value("effex_connections_opened_total", &[]), 0.0);
    assert_eq!(before.value("effex_items_stored", &[]), 0.0);
    assert_eq!(
        before.value(
            "effex_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    // A pass refused (bad passphrase): the server says goodbye.
    let (mut refused, _) = Wire::joined(&fx.server.ws_url()).await;
    let reply = refused.pass(0, "wrong", "metrics-bad").await;
    assert_eq!(reply["code"], json!(401), "{reply}");
    refused.expect_goodbye().await;

    // An owner writes an item a reader may read, through REST.
    let owner = fx.key("writer").await;
    let reader = fx.key("reader").await;
    let written = fx
        .json(
            Method::POST,
            "/items",
            &owner,
            json!({"value": "first", "readers": [reader]}),
            201,
        )
        .await;
    let id = written["id"].as_str().expect("an id").to_owned();

    // A socket passes and watches it; a REST update is pushed and acked.
    let mut wire = Wire::passed(&fx.server.ws_url(), "let me in", "metrics-good").await;
    wire.watch_ok(1, json!({"event": "update", "id": id, "key": reader}))
        .await;
    fx.json(
        Method::PUT,
        &format!("/items/{id}"),
        &owner,
        json!({"value": "second"}),
        200,
    )
    .await;
    let push = wire.next_push_acked().await;
    assert_eq!(push["id"], json!(id));
    // An unknown path is counted without its raw path.
    let (status, _, _) = fx.call(Method::GET, "/no/such/route", None, None).await;
    assert_eq!(status, 404);

    let s = fx
        .scrape_until("the ack counted", |s| {
            s.get("effex_pushes_acked_total", &[]) == Some(1.0)
                && s.get("effex_connections_open", &[]) == Some(1.0)
        })
        .await;
    assert_eq!(s.value("effex_connections_opened_total", &[]), 2.0);
    assert_eq!(s.value("effex_passes_total", &[("result", "ok")]), 1.0);
    assert_eq!(s.value("effex_passes_total", &[("result", "failed")]), 1.0);
    assert_eq!(s.value("effex_passes_total", &[("result", "limited")]), 0.0);
    let watches =
        |kind: &str, outlet: &str| s.value("effex_watches", &[("kind", kind), ("outlet", outlet)]);
    assert_eq!(watches("update", "socket"), 1.0);
    assert_eq!(watches("expire", "socket"), 0.0);
    assert_eq!(watches("update", "webhook"), 0.0);
    assert_eq!(s.value("effex_pushes_sent_total", &[]), 1.0);
    assert_eq!(s.value("effex_pushes_replayed_total", &[]), 0.0);
    assert_eq!(s.value("effex_ack_timeouts_total", &[]), 0.0);
    assert_eq!(s.value("effex_session_queue_depth", &[]), 0.0);
    assert_eq!(s.value("effex_items_stored", &[]), 1.0);
    assert!(s.value("effex_item_bytes_stored", &[]) >= "\"second\"".len() as f64);
    let requests = |route: &str, method: &str, status: &str| {
        s.get(
            "effex_http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(requests("/items", "POST", "201"), Some(1.0));
    assert_eq!(requests("/items/{id}", "PUT", "200"), Some(1.0));
    assert_eq!(requests("/keys", "POST", "201"), Some(2.0));
    assert_eq!(requests("unmatched", "GET", "404"), Some(1.0));
    assert_eq!(
        s.value(
            "effex_http_request_duration_seconds_count",
            &[("route", "/items/{id}"), ("method", "PUT")]
        ),
        1.0
    );
    assert!(
        !s.text.contains(&id) && !s.text.contains("/no/such/route"),
        "raw paths leak into labels:\n{}",
        s.text
    );
    assert!(!s.text.contains(&owner) && !s.text.contains(&reader));
}

#[actix_rt::test]
async fn a_pass_during_a_lockout_counts_as_limited() {
    let mut fx = Fixture::start(ServerConfig {
        failed_auth_burst: 1,
        failed_auth_period: Duration::from_secs(60),
        trusted_proxies: vec!["127.0.0.1/32".parse().expect("a network")],
        ..with_passphrase()
    })
    .await;
    // The scrapes come from another address than the locked-out sockets.
    fx.forwarded_for = Some("192.0.2.7");
    // The burst and the failure past it are checked; then the lockout.
    for n in 0..2 {
        let (mut wire, _) = Wire::joined(&fx.server.ws_url()).await;
        let reply = wire.pass(0, "wrong", &format!("metrics-lock-{n}")).await;
        assert_eq!(reply["code"], json!(401), "{reply}");
        wire.expect_goodbye().await;
    }
    let (mut wire, _) = Wire::joined(&fx.server.ws_url()).await;
    let reply = wire.pass(0, "let me in", "metrics-lock-2").await;
    assert_eq!(reply["code"], json!(429), "{reply}");
    let s = fx.scrape().await;
    assert_eq!(s.value("effex_passes_total", &[("result", "failed")]), 2.0);
    assert_eq!(s.value("effex_passes_total", &[("result", "limited")]), 1.0);
    assert_eq!(s.value("effex_passes_total", &[("result", "ok")]), 0.0);
    assert_eq!(
        s.value("effex_rate_limited_total", &[("limit", "failed_auth")]),
        1.0
    );
}

#[actix_rt::test]
async fn a_webhook_that_keeps_failing_counts_once_as_failed() {
    let fx = Fixture::start(ServerConfig {
        webhook_retries: 1,
        webhook_retry_base: Duration::from_millis(10),
        ..common::webhook_receiver::allowing_receivers(common::server::config())
    })
    .await;
    let mut hook = WebhookReceiver::answering(common::webhook_receiver::Answer::Status(500));
    update_under_webhook_watch(&fx, &hook.url).await;
    // The attempt and its one retry.
    hook.next().await;
    hook.next().await;
    let s = fx
        .scrape_until("the failure counted", |s| {
            s.get("effex_webhook_deliveries_total", &[("result", "failed")]) == Some(1.0)
        })
        .await;
    assert_eq!(
        s.value("effex_webhook_deliveries_total", &[("result", "ok")]),
        0.0
    );
    // The watch ended with its failure.
    let watches = fx
        .scrape_until("the failed watch ended", |s| {
            s.get(
                "effex_watches",
                &[("kind", "update"), ("outlet", "webhook")],
            ) == Some(0.0)
        })
        .await;
    assert_eq!(
        watches.value("effex_webhook_deliveries_total", &[("result", "failed")]),
        1.0
    );
}

#[actix_rt::test]
async fn the_metrics_key_is_asked_for_when_set() {
    let fx = Fixture::start(ServerConfig {
        metrics_key: Some("scrape-secret".into()),
        ..common::server::config()
    })
    .await;
    for key in [None, Some("scrape-secreT"), Some("scrape-secret-longer")] {
        let (status, _, body) = fx.call(Method::GET, "/metrics", key, None).await;
        assert_eq!(status, 401, "key {key:?}: {body}");
        let body: Value = serde_json::from_str(&body).expect("a JSON error");
        assert_eq!(body["ok"], json!(false));
        assert_eq!(body["code"], json!(401));
        assert!(
            body["error"].as_str().unwrap().contains("metrics key"),
            "{body}"
        );
    }
    let s = fx.scrape_with(Some("scrape-secret")).await;
    assert_eq!(
        s.value(
            "effex_http_requests_total",
            &[("route", "/metrics"), ("method", "GET"), ("status", "401")]
        ),
        3.0
    );
}

#[actix_rt::test]
async fn guessing_the_metrics_key_locks_the_address_out() {
    let mut fx = Fixture::start(ServerConfig {
        metrics_key: Some("scrape-secret".into()),
        failed_auth_burst: 2,
        failed_auth_period: Duration::from_secs(60),
        trusted_proxies: vec!["127.0.0.1/32".parse().expect("a network")],
        ..common::server::config()
    })
    .await;
    fx.forwarded_for = Some("192.0.2.9");
    // Wrong keys count as failed authentication of the address ...
    let mut statuses = Vec::new();
    for n in 0..6 {
        let guess = format!("guess-{n}");
        let (status, _, _) = fx.call(Method::GET, "/metrics", Some(&guess), None).await;
        statuses.push(status);
        if status == 429 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // ... so that even the right key is refused, unchecked, from there.
    let (status, _, _) = fx
        .call(Method::GET, "/metrics", Some("scrape-secret"), None)
        .await;
    assert_eq!(status, 429);
    // Another address still scrapes; an unknown method on an unknown path
    // counts under the bounded labels `other` / `unmatched`, never raw text.
    fx.forwarded_for = Some("192.0.2.10");
    let brew = Method::from_bytes(b"BREW").expect("a method token");
    let (status, _, _) = fx.call(brew, "/coffee-pot-42", None, None).await;
    assert_eq!(status, 404);
    let s = fx.scrape_with(Some("scrape-secret")).await;
    assert_eq!(
        s.value(
            "effex_http_requests_total",
            &[
                ("route", "unmatched"),
                ("method", "other"),
                ("status", "404")
            ]
        ),
        1.0
    );
    assert!(!s.text.contains("coffee") && !s.text.contains("BREW"));
    assert!(!s.text.contains("guess-"));
}

#[actix_rt::test]
async fn an_ack_timeout_and_a_replay_count() {
    let fx = Fixture::start(ServerConfig {
        ack_timeout: Duration::from_millis(300),
        ..common::server::config()
    })
    .await;
    let owner = fx.key("writer").await;
    let written = fx
        .json(Method::POST, "/items", &owner, json!({"value": 0}), 201)
        .await;
    let id = written["id"].as_str().expect("an id").to_owned();

    // A push left unacknowledged closes the socket (1002).
    let mut wire = Wire::passed(&fx.server.ws_url(), "", "metrics-slow").await;
    wire.watch_ok(1, json!({"event": "update", "id": id, "key": owner}))
        .await;
    let updated = fx
        .json(
            Method::PUT,
            &format!("/items/{id}"),
            &owner,
            json!({"value": 1}),
            200,
        )
        .await;
    let seq = updated["seq"].as_u64().expect("a seq");
    let _unacked = wire.next_push().await;
    wire.expect_close_code(1002).await;
    fx.scrape_until("the ack timeout counted", |s| {
        s.get("effex_ack_timeouts_total", &[]) == Some(1.0)
    })
    .await;

    // The client comes back and re-watches from before that push: replayed.
    let mut again = Wire::passed(&fx.server.ws_url(), "", "metrics-slow").await;
    again
        .watch_ok(
            1,
            json!({"event": "update", "id": id, "key": owner, "after": seq - 1}),
        )
        .await;
    let replayed = again.next_push_acked().await;
    assert_eq!(replayed["seq"], json!(seq));
    let s = fx
        .scrape_until("the replayed push acked", |s| {
            s.get("effex_pushes_acked_total", &[]) == Some(1.0)
        })
        .await;
    assert_eq!(s.value("effex_pushes_replayed_total", &[]), 1.0);
    assert_eq!(s.value("effex_pushes_sent_total", &[]), 2.0);
    assert_eq!(s.value("effex_ack_timeouts_total", &[]), 1.0);
    assert_eq!(
        s.value("effex_watches", &[("kind", "update"), ("outlet", "socket")]),
        1.0,
        "the re-watch is the same watch"
    );
}

#[actix_rt::test]
async fn rate_limit_hits_count_by_limit() {
    let fx = Fixture::start(ServerConfig {
        writes_per_second_per_key: 1,
        write_burst_per_key: 1,
        ..common::server::config()
    })
    .await;
    let owner = fx.key("writer").await;
    fx.json(Method::POST, "/items", &owner, json!({"value": 1}), 201)
        .await;
    fx.json(Method::POST, "/items", &owner, json!({"value": 2}), 429)
        .await;
    let s = fx.scrape().await;
    assert_eq!(
        s.value("effex_rate_limited_total", &[("limit", "writes")]),
        1.0
    );
    assert_eq!(
        s.value("effex_rate_limited_total", &[("limit", "requests")]),
        0.0
    );
    assert_eq!(
        s.value(
            "effex_http_requests_total",
            &[("route", "/items"), ("method", "POST"), ("status", "429")]
        ),
        1.0
    );
}

#[actix_rt::test]
async fn webhook_deliveries_count() {
    let fx = Fixture::start(common::webhook_receiver::allowing_receivers(
        common::server::config(),
    ))
    .await;
    let mut hook = WebhookReceiver::start();
    update_under_webhook_watch(&fx, &hook.url).await;
    hook.next().await;
    let s = fx
        .scrape_until("the delivery counted", |s| {
            s.get("effex_webhook_deliveries_total", &[("result", "ok")]) == Some(1.0)
        })
        .await;
    assert_eq!(
        s.value("effex_webhook_deliveries_total", &[("result", "failed")]),
        0.0
    );
    assert_eq!(
        s.value(
            "effex_watches",
            &[("kind", "update"), ("outlet", "webhook")]
        ),
        1.0
    );
}

#[actix_rt::test]
async fn expiries_are_observed_with_their_lateness() {
    let fx = Fixture::start(common::server::config()).await;
    if fx.server.store().kind() != "memory" {
        // The Redis store does not time its sweeps' expiries (yet).
        return;
    }
    let owner = fx.key("writer").await;
    fx.json(
        Method::POST,
        "/items",
        &owner,
        json!({"value": 0, "lifetime": 0.2}),
        201,
    )
    .await;
    let s = fx
        .scrape_until("the expiry observed", |s| {
            s.get("effex_expiry_lateness_seconds_count", &[]) == Some(1.0)
        })
        .await;
    assert_eq!(s.value("effex_items_stored", &[]), 0.0);
    let late = s.value("effex_expiry_lateness_seconds_sum", &[]);
    assert!((0.0..BOUND.as_secs_f64()).contains(&late), "{late}");
}

/// Writes an item, watches its updates with a webhook to `{hook_url}/hook`
/// and updates it once: one delivery (and its retries) follow.
async fn update_under_webhook_watch(fx: &Fixture, hook_url: &str) {
    let owner = fx.key("writer").await;
    let written = fx
        .json(Method::POST, "/items", &owner, json!({"value": 0}), 201)
        .await;
    let id = written["id"].as_str().expect("an id").to_owned();
    common::watches::create(
        &fx.server.http_url(),
        &owner,
        &json!({"event": "update", "id": id, "url": format!("{hook_url}/hook")}),
    )
    .await;
    fx.json(
        Method::PUT,
        &format!("/items/{id}"),
        &owner,
        json!({"value": 1}),
        200,
    )
    .await;
}
