//! `GET /metrics`: the server's series as Prometheus text, behind the
//! optional [`ServerConfig::metrics_key`](crate::server::ServerConfig::metrics_key).
//! It must not count anything itself.
//!
//! - Answers `text/plain; version=0.0.4` (what Prometheus scrapes).
//! - With a metrics key, the request must carry it as `Authorization:
//!   Bearer <key>` (or `?key=`, as the REST API reads keys); no key or
//!   another is a JSON 401, which the limits count as a failed
//!   authentication of the address (so the key cannot be guessed quickly).
//! - The per-address request rate applies as to every route: a scraper
//!   asking every few seconds is far below it.

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::protocol::messages::Failure;
use crate::secret::same_secret;
use crate::server::request::access_key;
use crate::server::Shared;

/// The path of the endpoint.
pub(crate) const METRICS_PATH: &str = "/metrics";

/// Registers `GET /metrics` (other methods get the REST API's JSON 405).
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::server::http::resource(
        METRICS_PATH,
        vec![(Method::GET, web::get().to(metrics))],
    ));
}

/// `GET /metrics`.
async fn metrics(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(expected) = &shared.config.metrics_key {
        let given = access_key(&req).unwrap_or_default();
        if !same_secret(expected.as_bytes(), given.as_bytes()) {
            return HttpResponse::Unauthorized().json(Failure::new(
                401,
                "GET /metrics needs the server's metrics key: send Authorization: Bearer <key> \
                 (set with --metrics-key or EFFEX_METRICS_KEY)",
            ));
        }
    }
    match super::render(&shared).await {
        Ok(text) => HttpResponse::Ok()
            .content_type(prometheus::TEXT_FORMAT)
            .body(text),
        Err(e) => {
            log::error!("metrics: cannot encode the series: {e}");
            HttpResponse::build(StatusCode::INTERNAL_SERVER_ERROR).json(Failure::new(
                500,
                "the metrics could not be encoded (a bug in effex: see the server log)",
            ))
        }
    }
}
