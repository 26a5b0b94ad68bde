//! A local HTTP receiver for webhooks on 127.0.0.1: it answers as told
//! (a status, a redirect, or holding each request until a gate opens), and
//! reports every request as it arrives, with its path, the status it is
//! answered with and its JSON body; it also counts requests in flight.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use effex::server::ServerConfig;
use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};

use super::exchange::BOUND;
use super::loopback;

/// `config` with the receivers' address, 127.0.0.1, allowed as a webhook
/// target (loopback is refused by default, protocol.md §3).
pub fn allowing_receivers(config: ServerConfig) -> ServerConfig {
    ServerConfig {
        webhook_allow: vec!["127.0.0.1".to_owned()],
        ..config
    }
}

/// How a [`WebhookReceiver`] answers.
#[derive(Clone, Debug)]
pub enum Answer {
    /// This status, at once.
    Status(u16),
    /// 302 to this URL, at once.
    Redirect(String),
    /// 200 once the gate gives a permit.
    Hold(Arc<Semaphore>),
}

impl Answer {
    /// The status this answer sends.
    fn status(&self) -> u16 {
        match self {
            Answer::Status(status) => *status,
            Answer::Redirect(_) => 302,
            Answer::Hold(_) => 200,
        }
    }
}

/// One request the receiver got.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The request's path.
    pub path: String,
    /// The status it is answered with.
    pub status: u16,
    /// Its body as JSON (`Null` when it is not JSON).
    pub body: Value,
}

/// What the handler shares with the test.
struct Shared {
    /// The standing answer.
    answer: Mutex<Answer>,
    /// Statuses for the next requests, in order, before the standing answer.
    planned: Mutex<VecDeque<u16>>,
    requests: mpsc::UnboundedSender<Request>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// A local webhook receiver (see the module doc).
pub struct WebhookReceiver {
    /// Its base URL, `http://127.0.0.1:PORT` (any path reaches it).
    pub url: String,
    shared: Arc<Shared>,
    requests: mpsc::UnboundedReceiver<Request>,
    server: actix_web::dev::ServerHandle,
}

impl WebhookReceiver {
    /// A receiver answering 200 to every request.
    pub fn start() -> Self {
        Self::answering(Answer::Status(200))
    }

    /// A receiver answering every request with `answer`.
    pub fn answering(answer: Answer) -> Self {
        let (tx, requests) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            answer: Mutex::new(answer),
            planned: Mutex::new(VecDeque::new()),
            requests: tx,
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
        });
        let state = web::Data::from(shared.clone());
        let (addr, server) = loopback::serve(move |app| {
            app.app_data(state.clone())
                .default_service(web::to(receive));
        });
        WebhookReceiver {
            url: format!("http://{addr}"),
            shared,
            requests,
            server,
        }
    }

    /// Answers every request with `status` from now on.
    pub fn answer(&self, status: u16) {
        *self.shared.answer.lock().expect("not poisoned") = Answer::Status(status);
    }

    /// Answers the next requests with `statuses`, one each, before going
    /// back to the standing answer.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.shared
            .planned
            .lock()
            .expect("not poisoned")
            .extend(statuses);
    }

    /// The next request, within [`BOUND`].
    pub async fn next(&mut self) -> Request {
        tokio::time::timeout(BOUND, self.requests.recv())
            .await
            .expect("a webhook request within the bound")
            .expect("receiver running")
    }

    /// Asserts that no request arrives within `quiet` (used only once
    /// everything expected has arrived).
    pub async fn expect_none(&mut self, quiet: Duration) {
        if let Ok(got) = tokio::time::timeout(quiet, self.requests.recv()).await {
            panic!("expected no webhook request, got {got:?}");
        }
    }

    /// Asserts that no request has arrived so far.
    pub fn expect_none_yet(&mut self) {
        if let Ok(got) = self.requests.try_recv() {
            panic!("expected no webhook request, got {got:?}");
        }
    }

    /// The most requests that were in flight at once.
    pub fn most_in_flight(&self) -> usize {
        self.shared.most_in_flight.load(Ordering::SeqCst)
    }

    /// Stops the receiver.
    pub async fn stop(&self) {
        self.server.stop(false).await;
    }
}

/// The handler of every request: reports it, then answers it.
async fn receive(shared: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let planned = shared.planned.lock().expect("not poisoned").pop_front();
    let answer = match planned {
        Some(status) => Answer::Status(status),
        None => shared.answer.lock().expect("not poisoned").clone(),
    };
    let _ = shared.requests.send(Request {
        path: req.path().to_owned(),
        status: answer.status(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let response = match answer {
        Answer::Status(status) => {
            HttpResponse::build(StatusCode::from_u16(status).expect("a valid test status")).finish()
        }
        Answer::Redirect(to) => HttpResponse::Found()
            .insert_header(("Location", to))
            .finish(),
        Answer::Hold(gate) => {
            let _permit = gate.acquire().await;
            HttpResponse::Ok().finish()
        }
    };
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}
