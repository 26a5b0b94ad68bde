//! Cross-origin access for browsers (CORS): which web pages may call the
//! REST API with `fetch()`, and open the push socket.
//!
//! - No list configured ([`ServerConfig::cors_origins`] empty, the default):
//!   any origin may call the REST API. That is safe here because effex
//!   authenticates with access keys sent in `Authorization` (or `?key=`),
//!   never with cookies, so a page can only do what the keys it holds allow;
//!   no credentials mode is offered.
//! - A list configured: only those origins get CORS headers (the browser
//!   blocks the others' reads), and the push endpoint refuses (403) a
//!   WebSocket upgrade whose `Origin` header names another origin. A request
//!   without `Origin` (a server, the CLI, a Node client) is not a browser's
//!   cross-origin request and is let through.
//!
//! Preflights (`OPTIONS` with `Access-Control-Request-Method`) are answered
//! by [`actix_cors`], which keeps the rules of the Fetch standard (a kept
//! crate rather than hand-written header logic).

use actix_cors::Cors;
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::Method;

use super::ServerConfig;

/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: usize = 3600;

/// The CORS middleware for the server's routes.
pub(crate) fn middleware(config: &ServerConfig) -> Cors {
    let cors = if config.cors_origins.is_empty() {
        Cors::default().allow_any_origin().send_wildcard()
    } else {
        config
            .cors_origins
            .iter()
            .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
    };
    // Other origins get no CORS headers (so the browser keeps their pages
    // from reading the answer) rather than a 400 from the middleware: the
    // push endpoint answers their WebSocket upgrades with its own 403.
    cors.block_on_origin_mismatch(false)
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::RETRY_AFTER])
        .max_age(PREFLIGHT_MAX_AGE)
}

/// Whether a push socket's upgrade request may come from where it says it
/// comes from (see the module docs).
pub(crate) fn websocket_origin_allowed(config: &ServerConfig, headers: &HeaderMap) -> bool {
    if config.cors_origins.is_empty() {
        return true;
    }
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => origin
            .to_str()
            .is_ok_and(|origin| config.cors_origins.iter().any(|o| o == origin)),
    }
}

/// Adds to `response` (a refusal made outside the CORS middleware: the
/// per-address limits' 429, which must also stop preflights) the headers that
/// let the page that sent `request` read it, by the same rules as the
/// middleware: `*` with no list, the page's own origin when it is listed,
/// nothing for other origins or requests without `Origin`.
pub(crate) fn add_refusal_headers(
    config: &ServerConfig,
    request: &HeaderMap,
    response: &mut HeaderMap,
) {
    let Some(origin) = request.get(header::ORIGIN) else {
        return;
    };
    let allow = if config.cors_origins.is_empty() {
        header::HeaderValue::from_static("*")
    } else if websocket_origin_allowed(config, request) {
        response.append(header::VARY, header::HeaderValue::from_static("Origin"));
        origin.clone()
    } else {
        return;
    };
    response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    response.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        header::HeaderValue::from_static("retry-after"),
    );
}

/// Checks one configured origin: `scheme://host[:port]`, no path, query or
/// trailing slash, as browsers send it in `Origin`.
pub(crate) fn check_origin(origin: &str) -> Result<(), String> {
    let parsed = url::Url::parse(origin).map_err(|e| format!("{origin:?} is not a URL ({e})"))?;
    let serialized = parsed.origin().ascii_serialization();
    if !matches!(parsed.scheme(), "http" | "https") || serialized != origin {
        return Err(format!(
            "{origin:?} is not an origin: write it as a browser sends it, e.g. \
             https://app.example.com or http://localhost:3000 (no path, no trailing slash)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_must_be_written_as_browsers_send_them() {
        for good in [
            "https://app.example.com",
            "http://localhost:3000",
            "http://127.0.0.1:8150",
        ] {
            assert_eq!(check_origin(good), Ok(()), "{good}");
        }
        for bad in [
            "https://app.example.com/",
            "https://app.example.com/path",
            "app.example.com",
            "*",
            "ftp://files.example.com",
            "https://APP.example.com",
            "",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_list_refuses_other_websocket_origins_but_not_originless_clients() {
        let mut config = ServerConfig {
            cors_origins: vec!["https://app.example.com".to_owned()],
            ..ServerConfig::default()
        };
        let mut headers = HeaderMap::new();
        assert!(websocket_origin_allowed(&config, &headers));
        headers.insert(
            header::ORIGIN,
            header::HeaderValue::from_static("https://evil.example.com"),
        );
        assert!(!websocket_origin_allowed(&config, &headers));
        headers.insert(
            header::ORIGIN,
            header::HeaderValue::from_static("https://app.example.com"),
        );
        assert!(websocket_origin_allowed(&config, &headers));
        config.cors_origins.clear();
        headers.insert(
            header::ORIGIN,
            header::HeaderValue::from_static("https://evil.example.com"),
        );
        assert!(websocket_origin_allowed(&config, &headers));
    }
}
